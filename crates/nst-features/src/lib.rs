//! The heart of nst: ONNX graphs that take an image and return the style-transfer
//! loss **and its gradient with respect to the image**, the backward pass written
//! op by op (convolutions with flipped weights for convolutions, masks for ReLU and
//! pooling, closed forms for the Gram and TV terms), run by ONNX Runtime on CPU or CUDA
//! (there also with the network in fp16), or by OpenVINO on the CPU in bf16 ([`Precision`]).
//!
//! Data flows one way: a [`Cache`] provisions the runtime and the [`VggWeights`]; a
//! [`LossConfig`] is checked into a [`LossSpec`] → graphs ([`graph::features_graph`],
//! [`graph::loss_graph`]) → sessions on a [`Runtime`] → [`Targets`] from the content and
//! style images ([`FeatureNet`]) → [`Loss`], an [`nst_optim::Objective`] the optimizer
//! drives without knowing about the network. Images too large for one pass run in tiles
//! ([`Tiling`]) with the same results; [`LossSpec::working_set`] says what a pass needs.
//!
//! ```no_run
//! use nst_features::{Cache, Device, LossConfig, Loss, Precision};
//! use ndarray::Array4;
//!
//! # fn main() -> Result<(), nst_features::Error> {
//! let log = |m: &str| eprintln!("{m}");
//! let cache = Cache::locate()?;
//! let weights = cache.weights(&log)?;
//! let rt = cache.open_runtime(Device::Auto, Precision::Fp32, &log)?;
//! let spec = LossConfig::preset("gatys")?.resolve()?;
//! let (content, style) = (Array4::<f32>::from_elem((1, 3, 64, 80), 0.5), Array4::<f32>::from_elem((1, 3, 64, 96), 0.2));
//! // Targets from the content and the style, then the loss of 64×80 images, whole (no tiles).
//! let mut loss = Loss::from_images(&rt, &spec, &weights, content.view(), &[(style.view(), 1.0)], None)?;
//! let mut grad = Array4::<f32>::zeros((1, 3, 64, 80));
//! let value = loss.evaluate(content.view(), grad.view_mut())?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod checksum;
mod config;
mod deconv;
mod error;
mod features;
pub mod fixture;
pub mod graph;
mod guide;
mod layers;
pub mod leftovers;
mod loss;
mod memory;
mod pairs;
mod patchmatch;
pub mod provision;
mod runtime;
mod swap;
mod targets;
mod tiles;
mod weights;

pub use checksum::{sha256_file, sha256_hex};
pub use config::{LossConfig, LossSpec, Pool, check_blend, check_weight, is_weight};
pub use deconv::Deconvolution;
pub use error::{Error, number};
pub use features::{FeatureNet, RegionStyle};
pub use guide::{Guides, MaskMode, carry, region_weights};
pub use layers::{BGR_MEAN, Layer, VGG16_CONVS};
pub use loss::Loss;
pub use memory::{
    CUDA_RUNTIME_BYTES, CUDA_SESSION_BYTES_PER_PIXEL, CUDA_TILED_BYTES_PER_PIXEL, RUNTIME_BYTES,
    SESSION_BYTES_PER_PIXEL, WorkingSet,
};
pub use pairs::DevicePairs;
pub use patchmatch::{Nnf, NormalizedMap, PatchMatch};
pub use provision::Cache;
pub use runtime::{
    CudaOptions, Device, Interrupt, Precision, Runtime, cpu_has_bf16, preload, prepare_process, release_free_memory,
};
pub use swap::PatchBank;
pub use targets::Targets;
pub use tiles::Tiling;
pub use weights::{Found, VggWeights, WEIGHTS_FILE, WEIGHTS_SHA256};
