//! Errors of a transfer.

/// Why a transfer could not be planned or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The network side: weights, graphs, ONNX Runtime, provisioning, a bad layer or weight.
    #[error(transparent)]
    Features(#[from] nst_features::Error),
    /// A setting out of its range, or settings that do not fit together.
    #[error("{name}: {reason}")]
    Setting {
        /// The setting, as [`crate::Settings`] names it (`stride` for the swap's).
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An image that cannot be read or decoded.
    #[error("{what}: {reason}")]
    Image {
        /// The file, or what the image is (`upload`).
        what: String,
        /// Why.
        reason: String,
    },
    /// An image too small for the deepest layer the loss uses.
    #[error("{image} would be {}×{}: too small for the chosen layers, which need at least {min}×{min} pixels", size.0, size.1)]
    TooSmall {
        /// Which: `the output`, `the style image` (of one), `style image 2`, …
        image: String,
        /// Its (width, height) at the requested size.
        size: (u32, u32),
        /// The smallest side allowed.
        min: usize,
    },
    /// The run needs more memory than allowed, even in the smallest tiles.
    #[error(
        "a {width}×{height} output needs about {}{}{}, more than the {} {}",
        gb(*needed),
        if *gpu { " of GPU memory" } else { "" },
        how(*tile, *history),
        gb(*allowed),
        if *gpu { "free on the GPU" } else { "allowed" }
    )]
    TooLarge {
        /// Output width.
        width: usize,
        /// Output height.
        height: usize,
        /// The smallest estimate, in bytes.
        needed: u64,
        /// The budget, in bytes.
        allowed: u64,
        /// The tile core of that estimate, if tiled.
        tile: Option<usize>,
        /// The history of that estimate.
        history: usize,
        /// Whether the budget is the GPU's free memory (the network on CUDA), not the
        /// machine's memory nst may use.
        gpu: bool,
    },
    /// The loss or its gradient is not finite where the optimization starts: the weights
    /// overflow float32.
    #[error("{}", if loss.is_finite() {
        format!("the loss's gradient overflows float32 at the starting image (the loss is {loss}): the weights are too large")
    } else {
        format!("the loss is {loss} at the starting image: the weights are too large for float32")
    })]
    NonFiniteStart {
        /// The loss seen.
        loss: f32,
    },
    /// The optimizer failed.
    #[error("optimizer: {0}")]
    Optimizer(String),
    /// Cancelled before the first evaluation: there is no image to give.
    #[error("cancelled before the first evaluation ended")]
    Cancelled,
}

/// Gigabytes, for messages.
pub fn gb(bytes: u64) -> String {
    // Below 0.1 GB in MB: 0.0 GB says nothing.
    if bytes >= 100_000_000 { format!("{:.1} GB", bytes as f64 / 1e9) } else { format!("{:.0} MB", bytes as f64 / 1e6) }
}

fn how(tile: Option<usize>, history: usize) -> String {
    let tiles = tile.map(|t| format!(" in tiles of {t} px")).unwrap_or_default();
    format!("{tiles} with a history of {history}")
}

impl From<nst_optim::SettingError> for Error {
    fn from(e: nst_optim::SettingError) -> Self {
        Error::Setting { name: e.name, reason: e.reason }
    }
}

impl Error {
    /// Whether the run's switch stopped a graph ([`crate::Cancel`]).
    pub(crate) fn is_interruption(&self) -> bool {
        matches!(self, Error::Features(nst_features::Error::Interrupted))
    }

    pub(crate) fn setting(name: &'static str, reason: impl Into<String>) -> Self {
        Error::Setting { name, reason: reason.into() }
    }
}
