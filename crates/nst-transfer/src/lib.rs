//! A whole style transfer, for any front end (the `nst` command, a web server, a batch job):
//! a [`Request`] (the photo, the styles with their blend weights, where to start, and the
//! [`Settings`]: method, size, schedule, loss, colours, solver, memory budget) is planned
//! ([`Request::plan`], before any work: whole or in tiles, or [`Error::TooLarge`]) and run by an
//! [`Engine`] (ONNX Runtime and the weights, opened once) with an [`Observer`] and a [`Cancel`]
//! token; the run gives the image and a [`Report`].
//!
//! Data flows one way, a module each: [`images`] → tensors → targets and loss
//! ([`nst_features`]) → the optimizer (`optimize`, over [`nst_optim`]) → the image, stage by
//! stage (`engine`), within the memory [`Plan`] (`plan`); [`color`] holds the colour control.
//!
//! ```
//! use nst_transfer::{Cache, Cancel, Device, Engine, NoObserver, Precision, Request};
//! use image::{Rgb, Rgb32FImage};
//!
//! # fn main() -> Result<(), nst_transfer::Error> {
//! let photo = Rgb32FImage::from_fn(64, 48, |x, y| Rgb([x as f32 / 64.0, y as f32 / 48.0, 0.5]));
//! let painting = Rgb32FImage::from_fn(64, 64, |x, y| Rgb([((x + y) % 8) as f32 / 8.0, 0.2, 0.8]));
//! let engine = Engine::open(&Cache::locate()?, Device::Auto, Precision::Fp32, &|m| eprintln!("{m}"))?;
//! let mut request = Request::new(photo, vec![painting]);
//! (request.settings.size, request.settings.evaluations) = (48, 10);
//! let outcome = engine.run(&request, &mut NoObserver, &Cancel::new())?;
//! assert_eq!(outcome.image.dimensions(), (48, 36));
//! println!("{}", outcome.report.summary());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod analogy;
pub mod color;
mod engine;
mod error;
pub mod images;
pub mod masks;
pub mod measure;
mod observe;
mod optimize;
mod photo;
mod plan;
mod report;
mod request;
mod settings;
pub mod words;

pub use engine::{Engine, Outcome};
pub use error::{Error, gb};
pub use masks::{Label, Mask, Masks};
pub use nst_features::{
    Cache, Device, Layer, LossConfig, MaskMode, Pool, Precision, check_weight, cpu_has_bf16, prepare_process,
    release_free_memory,
};
pub use nst_features::{leftovers, provision};
pub use observe::{Cancel, NoObserver, Observer, Snapshot, Stage};
pub use plan::Plan;
pub use report::{Evaluation, Report, StageReport, Timings};
pub use request::{Init, Request, Style};
pub use settings::{
    ANALOGY_EVALUATIONS, ANALOGY_HISTORY, Analogy, BoundsMethod, LineSearchKind, MAX_SIZE, Method, SWAP_EVALUATIONS,
    SWAP_POOL, SWAP_STYLE_MAX, SWAP_TV, Settings, Swap, physical_memory, schedule,
};
