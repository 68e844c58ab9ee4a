//! Runs nst-optim on the 32 Moré–Garbow–Hillstrom problems under the benchmark's
//! config B (m = 10, stop at ‖g‖∞ ≤ 1e-6, ≤ 15000 iterations and evaluations,
//! 20 line-search trials, f64) and prints a table, or with `--json` one JSON
//! object per problem.
//!
//! ```text
//! cargo run --release -p nst-optim --example mgh -- --json
//! ```

mod problems;

use nst_optim::Report;
use problems::{Problem, Spec, config_b};

/// Solves one problem from its standard start.
pub fn solve(spec: &Spec) -> Report<f64> {
    let mut x = spec.start();
    config_b().minimize(Problem(spec), x.view_mut()).expect("the problems are finite at their starts")
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    if !json {
        println!("{:<24} {:>5} {:>12} {:>12} {:>7} {:>7}  verdict", "problem", "n", "f*", "f", "iters", "evals");
    }
    let (mut iters, mut evals) = (0, 0);
    for spec in problems::load() {
        let r = solve(&spec);
        let verdict = spec.verdict(r.f, r.termination.converged());
        iters += r.iterations;
        evals += r.evaluations;
        if json {
            let line = serde_json::json!({
                "problem": spec.key, "n": spec.n, "f_star": spec.f_star, "f": r.f,
                "iterations": r.iterations, "evaluations": r.evaluations, "verdict": verdict,
            });
            println!("{line}");
        } else {
            println!(
                "{:<24} {:>5} {:>12.5e} {:>12.5e} {:>7} {:>7}  {verdict} ({})",
                spec.key, spec.n, spec.f_star, r.f, r.iterations, r.evaluations, r.termination
            );
        }
    }
    if !json {
        println!("total iterations {iters}, evaluations {evals}");
    }
}
