//! The command line, parsed into plain values; nothing is opened here.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// Repaint a photo in the style of one or more paintings (Gatys et al., VGG16 + L-BFGS).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nst",
    version,
    about,
    long_about = None,
    allow_negative_numbers = true,
    after_help = "The web app, with a live preview: nst serve [--port 8080] [--bind 127.0.0.1] (see nst serve --help)"
)]
pub struct Args {
    /// The photo to repaint.
    pub content: PathBuf,

    /// One or more style images (paintings).
    #[arg(required = true)]
    pub styles: Vec<PathBuf>,

    /// Where to write the result; the format follows the extension (.png, .jpg, …).
    ///
    /// Written atomically when the run ends (and on Ctrl-C, with the best image so far).
    /// nst refuses to overwrite one of its inputs.
    #[arg(short, long)]
    pub output: PathBuf,

    /// Longest side of the output in pixels.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..=16384))]
    pub size: u32,

    /// Evaluation budget: network passes (loss and gradient) the optimizer may spend
    /// [default: 500; 100 with --method swap; 800 with --method analogy, over its 8
    /// feature deconvolutions].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: Option<u32>,

    /// Seed of the random initialization (runs with the same seed are identical).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Write a JSON report here: configuration, timings, and the loss after every evaluation.
    #[arg(long)]
    pub report: Option<PathBuf>,

    /// Where the network runs: auto (CUDA when present, else CPU), cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: nst_transfer::Device,

    /// Arithmetic: fp32; bf16 (CPU only: about twice as fast on CPUs with bf16 units,
    /// AVX512-BF16 or AMX, through OpenVINO, fetched on first use; others run fp32 and say
    /// so); or fp16 (CUDA only: the network in half precision on the tensor cores, the Gram
    /// matrices and losses in fp32; `auto` without a GPU runs fp32 and says so).
    #[arg(long, default_value = "fp32")]
    pub precision: nst_transfer::Precision,

    /// Method: gatys (Gram statistics, optimized over the whole budget), swap (Chen &
    /// Schmidt's patch-based style swap: one swap, then a short reconstruction) or analogy
    /// (Liao et al.'s Deep Image Analogy: the painting's own pixels along semantic
    /// correspondences; one style image).
    #[arg(long, value_enum, default_value_t = MethodArg::Gatys)]
    pub method: MethodArg,

    /// Swap: the layer whose patches are swapped [default: relu3_1].
    #[arg(long)]
    pub swap_layer: Option<String>,

    /// Swap: patch size in feature pixels (larger is more abstract) [default: 3].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=15))]
    pub patch_size: Option<u32>,

    /// Swap: distance between patch corners (1 ≤ stride ≤ patch size) [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=15))]
    pub patch_stride: Option<u32>,

    /// Swap: how many swap-and-reconstruct rounds, each on the previous output [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub swaps: Option<u32>,

    /// Analogy: how much of the photo's structure to keep, 1 (least) to 3 (most); 3 suits
    /// photo → painting, 2 painting → photo [default: 3].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub analogy_weights: Option<u8>,

    /// Analogy: also write B, the painting's layout in the photo's look (at the painting's size).
    #[arg(long)]
    pub analogy_reverse: Option<PathBuf>,

    /// Analogy: photo-realistic refinement, the photo's own detail put back (for photo → photo).
    #[arg(long)]
    pub photo: bool,

    /// Layer preset: gatys (content relu4_2, style relu1_1…relu5_1) or seed (the original blog's
    /// pre-ReLU layers); Gatys only [default: gatys].
    #[arg(long)]
    pub preset: Option<String>,

    /// Weight of each content layer (default: the preset's).
    #[arg(long)]
    pub content_weight: Option<f64>,

    /// Weight of each style layer (default: the preset's).
    #[arg(long)]
    pub style_weight: Option<f64>,

    /// Total-variation (smoothness) weight (default: the preset's).
    #[arg(long)]
    pub tv_weight: Option<f64>,

    /// Content layers, comma-separated, each with an optional factor: relu4_2 or relu3_1:0.5,relu4_2.
    #[arg(long)]
    pub content_layers: Option<String>,

    /// Style layers, comma-separated, each with an optional factor: relu1_1,relu2_1:0.5.
    #[arg(long)]
    pub style_layers: Option<String>,

    /// Pooling between VGG blocks (default: the preset's, max; avg with --method swap).
    #[arg(long)]
    pub pool: Option<PoolArg>,

    /// Blend weights of the style images, comma-separated, one per style (default: equal).
    #[arg(long)]
    pub style_blend: Option<String>,

    /// Size of the style images relative to the output's longest side.
    #[arg(long, default_value_t = 1.0)]
    pub style_scale: f64,

    /// Keep the content's colours: the stylized luminance with the content's chroma.
    #[arg(long)]
    pub original_colors: bool,

    /// Recolour the style images to the content's colour mean and covariance before the transfer.
    #[arg(long)]
    pub color_transfer: bool,

    /// Optimize at a single scale instead of coarse to fine.
    #[arg(long)]
    pub no_multiscale: bool,

    /// Longest side of the first, coarsest stage; the next ones double up to --size
    /// (Gatys only: the final stage gets half the budget, the coarse ones share the rest;
    /// not with --no-multiscale) [default: 256].
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..), conflicts_with = "no_multiscale")]
    pub multiscale_start: Option<u32>,

    /// Evaluations per stage, comma-separated, coarsest first (one number per stage
    /// of the schedule); overrides the split of --iterations.
    ///
    /// For very large outputs, where one evaluation at the final size costs minutes:
    /// `--size 4096 --stage-iterations 150,60,20,6,4`.
    #[arg(long)]
    pub stage_iterations: Option<String>,

    /// Memory the run may use, in GB [default: half the machine's memory].
    ///
    /// Before each stage nst estimates what it needs; an image too large for one
    /// pass through the network is run in tiles (same loss and gradient, less
    /// memory, more time), and the L-BFGS history is shortened if it must be. A
    /// run that cannot fit is refused before it starts.
    #[arg(long)]
    pub max_memory: Option<f64>,

    /// Always run the network in tiles of about this many pixels (a multiple of 16
    /// for the default layers); by default only when the memory estimate requires it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..))]
    pub tile: Option<u32>,

    /// Masks: one greyscale image per style, comma-separated, of the photo's shape: how
    /// much of that style goes where (white: all of it). Where they add up to more than 1
    /// they are shared out; where to less, the rest of the pixel takes no style.
    #[arg(long, conflicts_with = "label_map", help_heading = "Masks")]
    pub style_masks: Option<String>,

    /// Masks: per style, comma-separated, where in that painting its style is taken from
    /// (a greyscale image of the painting's shape); `-` for all of it.
    #[arg(long, allow_hyphen_values = true, help_heading = "Masks")]
    pub style_source_masks: Option<String>,

    /// Masks: a colour label map of the photo's shape; --labels says what its colours stand for.
    #[arg(long, requires = "labels", help_heading = "Masks")]
    pub label_map: Option<PathBuf>,

    /// Masks: what each colour of --label-map stands for, e.g.
    /// '#0000ff=a.jpg,#00ff00=b.jpg,#ffffff=keep': a style by its path, file name or
    /// number (1 = the first), or keep (the photo stays). Colours match within 24/255.
    #[arg(long, requires = "label_map", help_heading = "Masks")]
    pub labels: Option<String>,

    /// Masks: regions that stay exactly the photo, a greyscale image of the photo's shape
    /// (white: kept; its pixels are the photo's, bit for bit).
    #[arg(long, help_heading = "Masks")]
    pub keep_photo: Option<PathBuf>,

    /// Masks: blend kept regions into the result over this many pixels outside their edge
    /// [default: 0, a hard edge].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=256), help_heading = "Masks")]
    pub feather: Option<u32>,

    /// Masks: how masks reach the deeper layers: soft (each feature by the share of its
    /// field inside) or inside (only features that see nothing else: a cleaner split,
    /// narrower regions) [default: soft].
    #[arg(long, value_enum, help_heading = "Masks")]
    pub mask_mode: Option<MaskModeArg>,

    /// Starting image: content, random, painting (swap with one style: the painting's
    /// pixels along the swap's matches), or a path to an image [default: painting with
    /// --method swap and one style, else content].
    #[arg(long)]
    pub init: Option<String>,

    /// L-BFGS history: correction pairs kept [default: 100; 4 with --method analogy].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub history: Option<u32>,

    /// Line search: wolfe (strong Wolfe, Moré–Thuente), armijo, or fixed (torch.optim.LBFGS without a search).
    #[arg(long, value_enum, default_value_t = LineSearchArg::Wolfe)]
    pub line_search: LineSearchArg,

    /// Step length of the fixed line search (with --line-search fixed) [default: 1].
    #[arg(long)]
    pub lr: Option<f64>,

    /// Do not keep pixels in [0, 1] during optimization (they are clipped when saved).
    #[arg(long)]
    pub no_bounds: bool,

    /// How pixels are kept in [0, 1]: lbfgsb (L-BFGS-B); active-set (the L-BFGS step of the pixels not held at 0 or 1, projected into [0, 1]: fewer passes over the pixels per iteration, which matters where the network is fast, as on a GPU); or sigmoid (plain L-BFGS over z, each pixel σ(z): as few passes, but pixels near 0 or 1 move slowly: a style of saturated colours converges far later) [default: lbfgsb].
    #[arg(long, value_enum, conflicts_with = "no_bounds")]
    pub bounds: Option<BoundsArg>,

    /// Also save the image every N evaluations, beside the output as NAME_<evaluations>.EXT
    /// (out_0042.png): at the end of each iteration that reaches or passes the next multiple
    /// of N (an iteration may take several evaluations).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub save_every: Option<u32>,

    /// Print only errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print each evaluation's loss terms.
    #[arg(short, long)]
    pub verbose: bool,
}

/// A clap error as one line: `invalid value 'x' for '--size <SIZE>': …` (see `nst --help`).
pub fn one_line(e: &clap::Error) -> anyhow::Error {
    let text = e.to_string();
    // The message and what it lists (the missing arguments), without the usage and tips.
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let message = parts.join(" ");
    anyhow::anyhow!("{} (see nst --help)", message.trim_start_matches("error: "))
}

/// `--pool`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolArg {
    /// Max pooling.
    Max,
    /// Average pooling.
    Avg,
}

/// `--method`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodArg {
    /// Gatys et al.: match Gram matrices.
    Gatys,
    /// Chen & Schmidt: swap feature patches, then reconstruct.
    Swap,
    /// Liao et al.: Deep Image Analogy.
    Analogy,
}

/// `--mask-mode`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskModeArg {
    /// The share of each feature's receptive field inside the region.
    Soft,
    /// Only features whose whole receptive field is inside.
    Inside,
}

/// `--bounds`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundsArg {
    /// L-BFGS-B.
    Lbfgsb,
    /// The projected L-BFGS step of the pixels not held at a bound.
    ActiveSet,
    /// Plain L-BFGS over a change of variables.
    Sigmoid,
}

/// `--line-search`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineSearchArg {
    /// Strong Wolfe (Moré–Thuente).
    Wolfe,
    /// Armijo backtracking.
    Armijo,
    /// Fixed step `--lr`.
    Fixed,
}
