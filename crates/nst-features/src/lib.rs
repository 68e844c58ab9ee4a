//! The heart of nst: ONNX graphs that take an image and return the style-transfer
//! loss **and its gradient with respect to the image**, the backward pass written
//! op by op (ConvTranspose for convolutions, masks for ReLU and pooling, closed
//! forms for the Gram and TV terms), run by ONNX Runtime on CPU or CUDA.
//!
//! Data flows one way: [`VggWeights`] and a [`LossConfig`] → graphs
//! ([`graph::features_graph`], [`graph::loss_graph`]) → sessions on a
//! [`Runtime`] → [`Targets`] from the content and style images → [`StyleLoss`],
//! an [`nst_optim::Objective`] the optimizer drives without knowing about the network.
//!
//! ```no_run
//! use nst_features::{Cache, Device, FeatureNet, LossConfig, StyleLoss};
//! use ndarray::Array4;
//!
//! # fn main() -> Result<(), nst_features::Error> {
//! let log = |m: &str| eprintln!("{m}");
//! let cache = Cache::locate()?;
//! let weights = cache.weights(&log)?;
//! let rt = cache.open_runtime(Device::Auto, &log)?;
//! let objective = LossConfig::preset("gatys")?.resolve()?;
//! let (content, style) = (Array4::<f32>::from_elem((1, 3, 64, 80), 0.5), Array4::<f32>::from_elem((1, 3, 64, 96), 0.2));
//! let targets = FeatureNet::new(&rt, &objective, &weights)?.targets(content.view(), &[(style.view(), 1.0)])?;
//! let mut loss = StyleLoss::new(&rt, &objective, &weights, targets, 64, 80)?;
//! let mut grad = Array4::<f32>::zeros((1, 3, 64, 80));
//! let value = loss.evaluate(content.view(), grad.view_mut())?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod config;
mod error;
pub mod fixture;
pub mod graph;
mod layers;
mod loss;
pub mod provision;
mod runtime;
mod swap;
mod targets;
mod tiles;
mod weights;

pub use config::{LossConfig, Objective, Pool};
pub use error::Error;
pub use layers::{BGR_MEAN, Layer, VGG16_CONVS};
pub use loss::StyleLoss;
pub use provision::Cache;
pub use runtime::{Device, Runtime, release_free_memory, tune_allocator};
pub use swap::PatchBank;
pub use targets::{FeatureNet, Targets};
pub use tiles::{SESSION_BYTES_PER_PIXEL, Tiling};
pub use weights::{Found, VggWeights, WEIGHTS_FILE, WEIGHTS_SHA256};
