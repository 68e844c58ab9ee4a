//! `nst`: neural style transfer from the command line. `main` calls `run`; errors
//! are printed on one line and exit non-zero.

mod args;
mod color;
mod images;
mod memory;
mod progress;
mod settings;
mod transfer;

use anyhow::Result;
use clap::Parser;
use progress::Verbosity;
use std::sync::atomic::Ordering;

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
    let settings = settings::Settings::from_args(&args)?;
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    ctrlc::set_handler(|| {
        if transfer::INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("nst: interrupted twice, exiting without saving");
            std::process::exit(130);
        }
        eprintln!(
            "nst: interrupted: stopping after this iteration and saving the best image (Ctrl-C again to quit now)"
        );
    })?;
    let report = transfer::run(&settings, args.device, verbosity)?;
    if let Some(path) = &args.report {
        transfer::write_report(&report, path)?;
    }
    Ok(if report.interrupted { 130 } else { 0 })
}
