//! `nst`: neural style transfer from the command line. `main` calls `run`; errors
//! are printed on one line and exit non-zero.

mod args;
mod color;
mod files;
mod images;
mod memory;
mod progress;
mod settings;
mod signals;
mod transfer;

use anyhow::Result;
use clap::Parser;
use files::Existing;
use nst_features::Cache;
use progress::{Progress, Verbosity};
use signals::Phase;

fn main() {
    nst_features::tune_allocator();
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("nst: error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<i32> {
    let args = args::Args::parse();
    signals::install()?;
    let settings = settings::Settings::from_args(&args)?;
    let cache = Cache::locate()?;
    files::Files {
        inputs: settings.inputs(),
        output: &settings.output,
        report: args.report.as_deref(),
        numbered_up_to: settings.save_every.map(|_| settings.evaluations),
        cache: &cache,
    }
    .check()?;
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let progress = Progress::new(verbosity, settings.evaluations);
    let outcome = transfer::run(&settings, args.device, &cache, &progress, &signals::STOP)?;
    signals::set_phase(Phase::Saving);
    images::save(&outcome.image, &settings.output, Existing::Replace)?;
    signals::set_phase(Phase::Saved);
    progress.info(&format!("{}; wrote {}", outcome.report.summary(), settings.output.display()));
    if let Some(path) = &args.report {
        outcome.report.write(path)?;
    }
    Ok(match signals::received() {
        Some(signal) if outcome.report.interrupted => signals::exit_code(signal),
        _ => 0,
    })
}
