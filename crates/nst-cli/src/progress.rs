//! What the user sees while nst works: a progress bar on a terminal, plain log lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nst_transfer::Evaluation;
use std::io::{IsTerminal, Write};

/// Writes a line to stderr; a closed or full stderr (`| head`, `2>/dev/full`) loses the
/// line, never the run.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// How much to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Messages and progress.
    Normal,
    /// Also every evaluation's loss terms.
    Verbose,
}

/// Messages and the evaluation progress of one run.
pub struct Progress {
    verbosity: Verbosity,
    bar: Option<ProgressBar>,
    total: usize,
    every: usize,
}

impl Progress {
    /// A reporter for a run of `total` evaluations.
    pub fn new(verbosity: Verbosity, total: usize) -> Self {
        let bar = (verbosity == Verbosity::Normal && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} evaluations  loss {msg}  {per_sec}  ETA {eta}")
                    .expect("valid template"),
            );
            bar
        });
        Self { verbosity, bar, total, every: (total / 10).max(1) }
    }

    /// A line of information (not in quiet mode).
    pub fn info(&self, msg: &str) {
        match (&self.bar, self.verbosity) {
            (_, Verbosity::Quiet) => {}
            (Some(bar), _) => bar.println(format!("nst: {msg}")),
            (None, _) => say(&format!("nst: {msg}")),
        }
    }

    /// One evaluation done, of the total.
    pub fn evaluation(&self, e: &Evaluation) {
        let (k, loss) = (e.evaluation, e.loss);
        match (&self.bar, self.verbosity) {
            (_, Verbosity::Quiet) => {}
            (Some(bar), _) => {
                bar.set_position(k as u64);
                bar.set_message(format!("{loss:.4e}"));
            }
            (None, Verbosity::Verbose) => {
                // Analogy's deconvolutions have one term, the loss itself: no list.
                let t: Vec<String> = e.terms.iter().map(|(n, v)| format!("{n} {v:.4e}")).collect();
                let terms = if t.is_empty() { String::new() } else { format!(" ({})", t.join(", ")) };
                say(&format!("nst: evaluation {k}/{}: loss {loss:.6e}{terms}", self.total));
            }
            (None, _) if k.is_multiple_of(self.every) || k == self.total => {
                let rate = k as f64 / e.elapsed_s.max(1e-9);
                say(&format!("nst: evaluation {k}/{}: loss {loss:.6e} ({rate:.2} evaluations/s)", self.total));
            }
            _ => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
