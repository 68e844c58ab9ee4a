//! `nst`: neural style transfer from the command line. `main` calls `run`; errors are
//! printed on one line and exit non-zero. What a transfer is lives in `nst-transfer`;
//! here are the flags, the files, progress, the report and signals.

mod args;
mod files;
mod masks;
mod observer;
mod progress;
mod report;
mod request;
mod serve;
mod signals;

use anyhow::{Context, Result};
use clap::Parser;
use files::NumberedSaves;
use nst_transfer::{Cache, Engine};
use progress::{Progress, Verbosity, say};
use signals::Phase;

fn main() {
    nst_transfer::prepare_process();
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            say(&format!("nst: error: {}", printable(format!("{e:#}").trim_end())));
            // After a signal, its status, as shells expect, even when saving then failed.
            std::process::exit(signals::received().map_or(1, signals::exit_code));
        }
    }
}

/// `text` on one line: control characters (a line break in a file's name, say) escaped.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn run() -> Result<i32> {
    if std::env::args_os().nth(1).is_some_and(|a| a == "serve") {
        let args = match serve::ServeArgs::try_parse_from(std::env::args_os().skip(1)) {
            Ok(args) => args,
            Err(e) if !e.use_stderr() => {
                let _ = e.print();
                return Ok(0);
            }
            Err(e) => return Err(args::one_line(&e)),
        };
        return serve::run(args);
    }
    let args = match args::Args::try_parse() {
        Ok(args) => args,
        // Help and version go to stdout as clap writes them; a bad argument is one line.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return Ok(0);
        }
        Err(e) => return Err(args::one_line(&e)),
    };
    signals::install()?;
    let job = request::Job::from_args(&args)?;
    let cache = Cache::locate()?;
    let targets = files::Files {
        inputs: job.inputs(&args),
        output: &args.output,
        report: args.report.as_deref(),
        reverse: args.analogy_reverse.as_deref(),
        numbered_up_to: args.save_every.map(|_| job.settings.evaluations),
        cache: &cache,
    }
    .check()?;
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let progress = Progress::new(verbosity, job.settings.evaluations);
    let request = job.request(&args, &|m| progress.info(m))?;
    let engine = Engine::open(&cache, args.device, args.precision, &|m| progress.info(m))?;
    let saves = args.save_every.map(|n| NumberedSaves::new(&targets.output, n as usize));
    let mut watch = observer::Watch { progress: &progress, saves, warned: None };
    let outcome = engine.run(&request, &mut watch, &signals::CANCEL).map_err(|e| job.explain(e))?;
    progress.finish();
    signals::set_phase(Phase::Saving);
    let format = nst_transfer::images::output_format(&args.output)?;
    let saved = files::write_or_rescue(&targets.output, "image", |out| {
        nst_transfer::images::encode(&outcome.image, format, out).context("cannot encode the image")
    });
    let reversed = match (&targets.reverse, &outcome.reverse, &args.analogy_reverse) {
        (Some(path), Some(b), Some(named)) => files::write_or_rescue(path, "reverse", |out| {
            let format = nst_transfer::images::output_format(named)?;
            nst_transfer::images::encode(b, format, out).context("cannot encode the reverse image")
        }),
        _ => Ok(()),
    };
    if saved.is_ok() && reversed.is_ok() {
        signals::set_phase(Phase::Saved);
    }
    // The report names where images went that could not be written where asked.
    let rescued: Vec<(&str, &std::path::Path)> = [("image", &saved), ("reverse", &reversed)]
        .into_iter()
        .filter_map(|(what, r)| Some((what, r.as_ref().err()?.to.as_deref()?)))
        .collect();
    let reported = match &targets.report {
        Some(path) => report::write(path, &args, &job, &request.stages()?, &outcome.report, &rescued),
        None => Ok(()),
    };
    // Every file that failed is named, with where it went instead.
    let failures: Vec<String> = [saved.err().map(|r| r.error), reversed.err().map(|r| r.error), reported.err()]
        .into_iter()
        .flatten()
        .map(|e| format!("{e:#}"))
        .collect();
    if !failures.is_empty() {
        anyhow::bail!("{}", failures.join("; "));
    }
    let mut wrote = printable(&args.output.display().to_string());
    if let Some(reverse) = &args.analogy_reverse {
        wrote += &format!(" and the reverse, {}", printable(&reverse.display().to_string()));
    }
    progress.info(&format!("{}; wrote {wrote}", outcome.report.summary()));
    // A signal received at any point is the exit status, as shells expect.
    Ok(signals::received().map_or(0, signals::exit_code))
}
