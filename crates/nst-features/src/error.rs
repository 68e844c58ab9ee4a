//! Errors of the feature engine.

use std::path::PathBuf;

/// What went wrong building graphs, loading weights or running the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The runtime's [`crate::Interrupt`] stopped the run.
    #[error("interrupted")]
    Interrupted,
    /// A layer name that is not `convB_I` or `reluB_I` of VGG16.
    #[error("unknown layer {0:?} (expected convB_I or reluB_I, e.g. relu4_2)")]
    UnknownLayer(String),
    /// A preset name that is not known.
    #[error("unknown preset {0:?} (known: gatys, seed)")]
    UnknownPreset(String),
    /// A weight that is negative or not finite in float32.
    #[error("{what} must be a finite number ≥ 0 (at most 3.4e38, float32's largest), got {}", number(*value))]
    BadWeight {
        /// Which weight.
        what: String,
        /// Its value.
        value: f64,
    },
    /// A setting out of its range.
    #[error("{0}")]
    InvalidSetting(String),
    /// The objective has no style layer.
    #[error("at least one style layer is needed")]
    NoStyleLayers,
    /// An image too small for the deepest layer.
    #[error("image of {width}×{height} is too small: the chosen layers need at least {min}×{min} pixels")]
    ImageTooSmall {
        /// Image height.
        height: usize,
        /// Image width.
        width: usize,
        /// The smallest side allowed.
        min: usize,
    },
    /// A graph could not be built.
    #[error("graph node {node} ({op}): {reason}")]
    Graph {
        /// The node's name.
        node: String,
        /// Its operator.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// The weights file does not hold VGG16's conv layers.
    #[error("weights {path}: {reason}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file's checksum is not the one expected.
    #[error("{path} fails its check (sha256 {actual}, expected {expected}): {remedy}")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The checksum found.
        actual: String,
        /// The checksum expected.
        expected: String,
        /// What it means and what to do.
        remedy: String,
    },
    /// No cache folder can be named.
    #[error(
        "no folder to cache ONNX Runtime and the VGG16 weights in: HOME is not set; set NST_CACHE_DIR to a folder of yours"
    )]
    NoCache,
    /// A cache folder that a library must not be loaded from.
    #[error("will not load ONNX Runtime from {path}: {reason}")]
    UnsafeCache {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Fetching a file from PyPI failed.
    #[error("could not fetch {what}: {reason}")]
    Fetch {
        /// What was being fetched.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// ONNX Runtime's library could not be loaded.
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Runtime {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// CUDA was asked for and cannot be used.
    #[error("CUDA is not available: {reason}. Install the NVIDIA driver with CUDA 13 and cuDNN 9, or use --device cpu")]
    Cuda {
        /// Why.
        reason: String,
    },
    /// ONNX Runtime failed.
    #[error("onnx runtime: {0}")]
    Ort(ort::Error),
    /// OpenVINO failed.
    #[error("openvino: {0}")]
    OpenVino(String),
    /// A tensor of the wrong shape was given.
    #[error("{what}: expected shape {expected:?}, got {actual:?}")]
    Shape {
        /// Which tensor.
        what: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The given shape.
        actual: Vec<usize>,
    },
    /// File input or output failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

// The wrapped errors are part of each message and not also exposed as a `source`,
// so that a chain printed on one line (`{:#}`) says each thing once.
impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Self {
        Error::Ort(e)
    }
}

/// A number as a person would write it: `1e39` and `1e-50`, not forty digits; `0.5` as it is.
pub fn number(v: f64) -> String {
    if v.is_finite() && v != 0.0 && !(1e-6..1e9).contains(&v.abs()) { format!("{v:e}") } else { v.to_string() }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |error| Error::Io { path, error }
    }
}
