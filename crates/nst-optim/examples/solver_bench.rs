//! Times the solver's own work per evaluation on an image-sized problem whose objective costs
//! almost nothing: a separable quadratic with curvatures spread over three decades, its
//! minimum either inside [0, 1]ⁿ or with many coordinates outside it (L-BFGS-B then runs
//! with many variables at their bounds, the case of real images).
//!
//! ```text
//! cargo run --release -p nst-optim --example solver_bench -- [N] [M] [EVALUATIONS]
//! ```
//! Defaults: n = 786 432 (a 512² RGB image), m = 100, 150 evaluations, f32; prints plain
//! L-BFGS, and L-BFGS-B and the active set ([`BoxMethod::ActiveSet`]) with the minimum
//! inside, then the two bounded ones with it partly outside (where some curvatures are
//! negative and only the box bounds f below).

use ndarray::{Array1, ArrayView1, ArrayViewMut1, Zip};
use nst_optim::{Bounds, BoxMethod, Lbfgs, Objective};
use std::convert::Infallible;
use std::time::Instant;

/// f = ½ Σ hᵢ (xᵢ − cᵢ)², hᵢ = 1 + 1000 cᵢ³, timing itself.
struct Quadratic {
    centre: Array1<f32>,
    spent: f64,
}

impl Objective<f32> for &mut Quadratic {
    type Error = Infallible;
    fn value_and_gradient(&mut self, x: ArrayView1<f32>, mut g: ArrayViewMut1<f32>) -> Result<f32, Infallible> {
        let start = Instant::now();
        // Serial, so that f, and with it every run's path, is the same each time.
        let f = Zip::from(&mut g).and(&x).and(&self.centre).fold(0.0f32, |f, g, &x, &c| {
            let (d, h) = (x - c, 1.0 + 1000.0 * c * c * c);
            *g = d * h;
            f + 0.5 * d * d * h
        });
        self.spent += start.elapsed().as_secs_f64();
        Ok(f)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(3 * 512 * 512);
    let m = args.get(1).copied().unwrap_or(100);
    let evaluations = args.get(2).copied().unwrap_or(150);
    println!("n = {n}, m = {m}, {evaluations} evaluations, f32, {} rayon threads", rayon::current_num_threads());
    for (placement, lowest, span) in [("minimum inside the box", 0.05, 0.9), ("minimum partly outside", -0.2, 1.4)] {
        // With centres below −0.1 some curvatures are negative: only the box bounds f below.
        let bounded = [Some(BoxMethod::Projected), Some(BoxMethod::ActiveSet)];
        let runs: &[Option<BoxMethod>] = if lowest < 0.0 { &bounded } else { &[None, bounded[0], bounded[1]] };
        for &method in runs {
            let centre = Array1::from_shape_fn(n, |i| ((i * 7919) % 1000) as f32 / 1000.0 * span + lowest);
            let mut quadratic = Quadratic { centre, spent: 0.0 };
            let mut x = Array1::from_elem(n, 0.5f32);
            let mut solver =
                Lbfgs::new().with_history(m)?.with_gradient_tolerance(0.0)?.with_max_evaluations(evaluations)?;
            if let Some(method) = method {
                solver = solver.with_bounds(Bounds::Uniform { lower: 0.0, upper: 1.0 }).with_box_method(method);
            }
            let start = Instant::now();
            let report = solver.minimize(&mut quadratic, x.view_mut())?;
            let solver_s = start.elapsed().as_secs_f64() - quadratic.spent;
            // Per iteration too: line searches take more or fewer evaluations as rounding moves the path.
            println!(
                "{placement}, {}: {} iterations, f = {:.6e}, {:.1} ms of solver per evaluation, {:.1} per iteration",
                match method {
                    None => "L-BFGS",
                    Some(BoxMethod::ActiveSet) => "active set",
                    Some(_) => "L-BFGS-B",
                },
                report.iterations,
                report.f,
                solver_s * 1e3 / report.evaluations as f64,
                solver_s * 1e3 / report.iterations.max(1) as f64
            );
        }
    }
    Ok(())
}
