//! The Moré–Garbow–Hillstrom set under SciPy's config B rules, against SciPy 1.17.1's results.

#[path = "../examples/mgh/problems.rs"]
mod problems;

use problems::{Problem, Spec, config_b};
use std::collections::HashMap;

/// SciPy's config B rows: problem → (verdict, nfev).
fn scipy_config_b() -> HashMap<String, (String, usize)> {
    let text = include_str!("data/reference_output_scipy-1.17.1.txt");
    let section = text.split("=== Config B").nth(1).unwrap();
    section
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let verdict = *w.get(9)?;
            w[1].parse::<u32>().ok()?;
            ["solved", "local", "stationary", "fail"]
                .contains(&verdict)
                .then(|| (w[0].to_string(), (verdict.to_string(), w[7].parse().unwrap())))
        })
        .collect()
}

#[test]
fn ports_reproduce_f_at_the_standard_start() {
    for spec in problems::load() {
        let f = spec.value(spec.start().view());
        let tol = 1e-9 * spec.f_x0.abs();
        assert!((f - spec.f_x0).abs() <= tol, "{}: f(x0) = {f:e}, expected {:e}", spec.key, spec.f_x0);
    }
}

#[test]
fn gradients_match_finite_differences() {
    use nst_optim::Objective;
    for spec in problems::load().iter().filter(|s| s.n <= 12) {
        let x = spec.start().mapv(|v| v * 0.9 + 0.05);
        let mut g = ndarray::Array1::zeros(spec.n);
        Problem(spec).value_and_gradient(x.view(), g.view_mut()).unwrap();
        for j in 0..spec.n {
            let h = 1e-6 * x[j].abs().max(1.0);
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += h;
            xm[j] -= h;
            let fd = (spec.value(xp.view()) - spec.value(xm.view())) / (2.0 * h);
            // Central differences lose ~1e-10·|f|/h to rounding on badly scaled problems.
            let tol = 1e-5 * g[j].abs().max(1.0) + 1e-10 * spec.value(x.view()).abs() / h;
            assert!((fd - g[j]).abs() <= tol, "{} ∂{j}: {fd} vs {}", spec.key, g[j]);
        }
    }
}

#[test]
fn solves_what_scipy_solves_with_no_more_evaluations() {
    let scipy = scipy_config_b();
    let specs: Vec<Spec> = problems::load();
    let (mut ours_common, mut scipy_common) = (0, 0);
    let mut report = Vec::new();
    for spec in &specs {
        let mut x = spec.start();
        let r = config_b().minimize(Problem(spec), x.view_mut()).unwrap();
        let verdict = spec.verdict(r.f, r.termination.converged());
        let (sv, snfev) = &scipy[&spec.key];
        report.push(format!("{:<24} ours {verdict:<10} {:>6}  scipy {sv:<10} {snfev:>6}", spec.key, r.evaluations));
        if sv == "solved" {
            assert_eq!(verdict, "solved", "{}: f = {:e} ({})", spec.key, r.f, r.termination);
            ours_common += r.evaluations;
            scipy_common += snfev;
        }
    }
    let by_key: HashMap<&str, &Spec> = specs.iter().map(|s| (s.key.as_str(), s)).collect();
    let js = by_key["jennrich_sampson"];
    let mut x = js.start();
    let r = config_b().minimize(Problem(js), x.view_mut()).unwrap();
    assert_eq!(js.verdict(r.f, r.termination.converged()), "solved", "jennrich_sampson: f = {}", r.f);
    println!("{}", report.join("\n"));
    println!("evaluations on SciPy's solved problems: ours {ours_common}, SciPy {scipy_common}");
    assert!(ours_common <= scipy_common, "ours {ours_common} > SciPy {scipy_common}");
}
