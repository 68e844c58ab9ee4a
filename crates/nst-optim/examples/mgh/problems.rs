//! The Moré–Garbow–Hillstrom test problems (ACM TOMS 7(1), 1981) as least squares
//! `f = Σ rᵢ²`, residuals written once, generically, and differentiated exactly by
//! forward-mode dual numbers. Data tables and starting points come from `mgh.json`
//! (`tests/data/mgh.json`, a copy of the project's benchmark description).

use ndarray::{Array1, ArrayView1, ArrayViewMut1};
use num_dual::{DualDVec64, DualNum};
use serde::Deserialize;
use std::convert::Infallible;

/// One problem's description, as in `mgh.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct Spec {
    pub key: String,
    pub n: usize,
    #[serde(default)]
    pub x0: Option<Vec<f64>>,
    pub f_x0: f64,
    pub f_star: f64,
    pub other_local_minima: Vec<LocalMin>,
    pub data: std::collections::HashMap<String, Vec<f64>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LocalMin {
    pub f: f64,
}

#[derive(Deserialize)]
struct File {
    problems: Vec<Spec>,
}

/// All 32 problems of `mgh.json`.
pub fn load() -> Vec<Spec> {
    let text = include_str!("../../tests/data/mgh.json");
    serde_json::from_str::<File>(text).expect("mgh.json parses").problems
}

impl Spec {
    /// The standard starting point.
    pub fn start(&self) -> Array1<f64> {
        if let Some(x0) = &self.x0 {
            return Array1::from(x0.clone());
        }
        let n = self.n;
        let h = 1.0 / (n as f64 + 1.0);
        Array1::from_shape_fn(n, |j| match self.key.as_str() {
            k if k.starts_with("ext_rosenbrock") => [-1.2, 1.0][j % 2],
            k if k.starts_with("ext_powell") => [3.0, -1.0, 0.0, 1.0][j % 4],
            k if k.starts_with("trigonometric") => 1.0 / n as f64,
            k if k.starts_with("disc_bv") => {
                let t = (j + 1) as f64 * h;
                t * (t - 1.0)
            }
            k if k.starts_with("broyden") => -1.0,
            k => panic!("no starting point for {k}"),
        })
    }

    /// The residuals at `x`, for plain `f64` or dual numbers.
    pub fn residuals<D: DualNum<Primitive = f64>>(&self, x: &[D]) -> Vec<D> {
        let c = |v: f64| D::from(v);
        let n = x.len();
        let y = |i: usize| self.data["y"][i - 1];
        let xi = |j: usize| x[j - 1].clone();
        let base =
            self.key.rsplit_once('_').filter(|(_, s)| s.parse::<usize>().is_ok()).map_or(self.key.as_str(), |(b, _)| b);
        match base {
            "rosenbrock" => vec![(xi(2) - xi(1).powi(2)) * 10.0, c(1.0) - xi(1)],
            "freudenstein_roth" => vec![
                xi(1) - 13.0 + ((c(5.0) - xi(2)) * xi(2) - 2.0) * xi(2),
                xi(1) - 29.0 + ((xi(2) + 1.0) * xi(2) - 14.0) * xi(2),
            ],
            "powell_badly_scaled" => vec![xi(1) * xi(2) * 1e4 - 1.0, (-xi(1)).exp() + (-xi(2)).exp() - 1.0001],
            "brown_badly_scaled" => vec![xi(1) - 1e6, xi(2) - 2e-6, xi(1) * xi(2) - 2.0],
            "beale" => (1..=3).map(|i| c(y(i)) - xi(1) * (c(1.0) - xi(2).powi(i as i32))).collect(),
            "jennrich_sampson" => (1..=10)
                .map(|i| {
                    let i = i as f64;
                    c(2.0 + 2.0 * i) - ((xi(1) * i).exp() + (xi(2) * i).exp())
                })
                .collect(),
            "helical_valley" => {
                let mut theta = (xi(2) / xi(1)).atan() / (2.0 * std::f64::consts::PI);
                if x[0].re() < 0.0 {
                    theta += 0.5;
                }
                vec![(xi(3) - theta * 10.0) * 10.0, ((xi(1).powi(2) + xi(2).powi(2)).sqrt() - 1.0) * 10.0, xi(3)]
            }
            "bard" => (1..=15)
                .map(|i| {
                    let (u, v) = (i as f64, 16.0 - i as f64);
                    c(y(i)) - (xi(1) + c(u) / (xi(2) * v + xi(3) * u.min(v)))
                })
                .collect(),
            "gaussian" => (1..=15)
                .map(|i| {
                    let t = (8.0 - i as f64) / 2.0;
                    xi(1) * (-(xi(2) * (c(t) - xi(3)).powi(2)) / 2.0).exp() - y(i)
                })
                .collect(),
            "meyer" => (1..=16).map(|i| xi(1) * (xi(2) / (xi(3) + 45.0 + 5.0 * i as f64)).exp() - y(i)).collect(),
            "gulf" => (1..=99)
                .map(|i| {
                    let t = i as f64 / 100.0;
                    let yi = 25.0 + (-50.0 * t.ln()).powf(2.0 / 3.0);
                    (-((c(yi) - xi(2)).abs().powd(xi(3))) / xi(1)).exp() - t
                })
                .collect(),
            "box_3d" => (1..=10)
                .map(|i| {
                    let t = 0.1 * i as f64;
                    (xi(1) * -t).exp() - (xi(2) * -t).exp() - xi(3) * ((-t).exp() - (-10.0 * t).exp())
                })
                .collect(),
            "powell_singular" => powell_block(&x[..4]),
            "wood" => vec![
                (xi(2) - xi(1).powi(2)) * 10.0,
                c(1.0) - xi(1),
                (xi(4) - xi(3).powi(2)) * 90f64.sqrt(),
                c(1.0) - xi(3),
                (xi(2) + xi(4) - 2.0) * 10f64.sqrt(),
                (xi(2) - xi(4)) / 10f64.sqrt(),
            ],
            "kowalik_osborne" => (1..=11)
                .map(|i| {
                    let u = self.data["u"][i - 1];
                    c(y(i)) - xi(1) * (xi(2) * u + u * u) / (xi(3) * u + xi(4) + u * u)
                })
                .collect(),
            "brown_dennis" => (1..=20)
                .map(|i| {
                    let t = i as f64 / 5.0;
                    (xi(1) + xi(2) * t - t.exp()).powi(2) + (xi(3) + xi(4) * t.sin() - t.cos()).powi(2)
                })
                .collect(),
            "osborne1" => (1..=33)
                .map(|i| {
                    let t = 10.0 * (i as f64 - 1.0);
                    c(y(i)) - (xi(1) + xi(2) * (xi(4) * -t).exp() + xi(3) * (xi(5) * -t).exp())
                })
                .collect(),
            "biggs_exp6" => (1..=13)
                .map(|i| {
                    let t = 0.1 * i as f64;
                    let yi = (-t).exp() - 5.0 * (-10.0 * t).exp() + 3.0 * (-4.0 * t).exp();
                    xi(3) * (xi(1) * -t).exp() - xi(4) * (xi(2) * -t).exp() + xi(6) * (xi(5) * -t).exp() - yi
                })
                .collect(),
            "watson" => {
                let mut r: Vec<D> = (1..=29)
                    .map(|i| {
                        let t = i as f64 / 29.0;
                        let s1: D = (2..=n).map(|j| xi(j) * ((j - 1) as f64 * t.powi(j as i32 - 2))).sum();
                        let s2: D = (1..=n).map(|j| xi(j) * t.powi(j as i32 - 1)).sum();
                        s1 - s2.powi(2) - 1.0
                    })
                    .collect();
                r.push(xi(1));
                r.push(xi(2) - xi(1).powi(2) - 1.0);
                r
            }
            "ext_rosenbrock" => {
                x.chunks(2).flat_map(|p| [(p[1].clone() - p[0].powi(2)) * 10.0, c(1.0) - p[0].clone()]).collect()
            }
            "ext_powell" => x.chunks(4).flat_map(powell_block).collect(),
            "penalty1" => {
                let mut r: Vec<D> = x.iter().map(|v| (v.clone() - 1.0) * 1e-5f64.sqrt()).collect();
                r.push(x.iter().map(|v| v.powi(2)).sum::<D>() - 0.25);
                r
            }
            "penalty2" => {
                let a = 1e-5f64.sqrt();
                let mut r = vec![xi(1) - 0.2];
                for i in 2..=n {
                    let yi = (i as f64 / 10.0).exp() + ((i as f64 - 1.0) / 10.0).exp();
                    r.push(((xi(i) / 10.0).exp() + (xi(i - 1) / 10.0).exp() - yi) * a);
                }
                for i in n + 1..2 * n {
                    r.push(((xi(i - n + 1) / 10.0).exp() - (-0.1f64).exp()) * a);
                }
                r.push((1..=n).map(|j| xi(j).powi(2) * (n - j + 1) as f64).sum::<D>() - 1.0);
                r
            }
            "var_dim" => {
                let mut r: Vec<D> = x.iter().map(|v| v.clone() - 1.0).collect();
                let s: D = (1..=n).map(|j| (xi(j) - 1.0) * j as f64).sum();
                r.push(s.clone());
                r.push(s.powi(2));
                r
            }
            "trigonometric" => {
                let cos_sum: D = x.iter().map(|v| v.cos()).sum();
                (1..=n)
                    .map(|i| c(n as f64) - cos_sum.clone() + (c(1.0) - xi(i).cos()) * i as f64 - xi(i).sin())
                    .collect()
            }
            "brown_almost_linear" => {
                let sum: D = x.iter().cloned().sum();
                let mut r: Vec<D> = (1..n).map(|i| xi(i) + sum.clone() - (n + 1) as f64).collect();
                r.push(x.iter().cloned().product::<D>() - 1.0);
                r
            }
            "disc_bv" => {
                let h = 1.0 / (n as f64 + 1.0);
                let at = |j: usize| if j == 0 || j == n + 1 { c(0.0) } else { xi(j) };
                (1..=n)
                    .map(|i| {
                        let t = i as f64 * h;
                        xi(i) * 2.0 - at(i - 1) - at(i + 1) + (xi(i) + t + 1.0).powi(3) * (h * h / 2.0)
                    })
                    .collect()
            }
            "broyden_tri" => {
                let at = |j: usize| if j == 0 || j == n + 1 { c(0.0) } else { xi(j) };
                (1..=n).map(|i| (c(3.0) - xi(i) * 2.0) * xi(i) - at(i - 1) - at(i + 1) * 2.0 + 1.0).collect()
            }
            "broyden_band" => (1..=n)
                .map(|i| {
                    let band: D = (i.saturating_sub(5).max(1)..=(i + 1).min(n))
                        .filter(|&j| j != i)
                        .map(|j| xi(j) * (xi(j) + 1.0))
                        .sum();
                    xi(i) * (xi(i).powi(2) * 5.0 + 2.0) + 1.0 - band
                })
                .collect(),
            "chebyquad" => (1..=n)
                .map(|i| {
                    let sum: D = x
                        .iter()
                        .map(|v| {
                            // Shifted Chebyshev T_i on [0, 1] by its recurrence.
                            let z = v.clone() * 2.0 - 1.0;
                            let (mut t0, mut t1) = (c(1.0), z.clone());
                            for _ in 1..i {
                                let t2 = z.clone() * t1.clone() * 2.0 - t0;
                                t0 = t1;
                                t1 = t2;
                            }
                            t1
                        })
                        .sum();
                    let integral = if i % 2 == 1 { 0.0 } else { -1.0 / ((i * i) as f64 - 1.0) };
                    sum / n as f64 - integral
                })
                .collect(),
            other => panic!("unknown problem {other}"),
        }
    }

    /// `f(x) = Σ rᵢ(x)²` in plain arithmetic.
    pub fn value(&self, x: ArrayView1<f64>) -> f64 {
        self.residuals(x.as_slice().expect("contiguous")).iter().map(|r| r * r).sum()
    }

    /// A verdict by the benchmark's rules: `solved` when `f − f* ≤ 1e-6·max(1,|f*|) + 1e-4·|f*|`,
    /// `local` at a documented other minimum (same tolerance), `stationary` when the gradient
    /// test was met elsewhere, else `fail`.
    pub fn verdict(&self, f: f64, converged: bool) -> &'static str {
        let near = |m: f64| f - m <= 1e-6 * m.abs().max(1.0) + 1e-4 * m.abs();
        if near(self.f_star) {
            "solved"
        } else if self
            .other_local_minima
            .iter()
            .any(|m| (f - m.f).abs() <= 1e-6 * m.f.abs().max(1.0) + 1e-4 * m.f.abs())
        {
            "local"
        } else if converged {
            "stationary"
        } else {
            "fail"
        }
    }
}

fn powell_block<D: DualNum<Primitive = f64>>(x: &[D]) -> Vec<D> {
    let (x1, x2, x3, x4) = (x[0].clone(), x[1].clone(), x[2].clone(), x[3].clone());
    vec![
        x1.clone() + x2.clone() * 10.0,
        (x3.clone() - x4.clone()) * 5f64.sqrt(),
        (x2 - x3 * 2.0).powi(2),
        (x1 - x4).powi(2) * 10f64.sqrt(),
    ]
}

/// SciPy's config B: m = 10, stop at ‖g‖∞ ≤ 1e-6, at most 15000 iterations and
/// evaluations, strong Wolfe with 20 trials.
pub fn config_b() -> nst_optim::Lbfgs<f64> {
    use nst_optim::{Lbfgs, LineSearch};
    Lbfgs::new()
        .with_history(10)
        .and_then(|s| s.with_gradient_tolerance(1e-6))
        .and_then(|s| s.with_max_iterations(15000))
        .and_then(|s| s.with_max_evaluations(15000))
        .and_then(|s| s.with_line_search(LineSearch::StrongWolfe { c1: 1e-4, c2: 0.9, max_trials: 20 }))
        .expect("config B settings are valid")
}

/// A problem as an [`nst_optim::Objective`], with an exact gradient from dual numbers.
pub struct Problem<'a>(pub &'a Spec);

impl nst_optim::Objective<f64> for Problem<'_> {
    type Error = Infallible;
    fn value_and_gradient(&mut self, x: ArrayView1<f64>, mut g: ArrayViewMut1<f64>) -> Result<f64, Infallible> {
        let n = x.len();
        let duals: Vec<DualDVec64> = (0..n)
            .map(|j| {
                let mut e = nalgebra::DVector::zeros(n);
                e[j] = 1.0;
                DualDVec64::new(x[j], num_dual::Derivative::some(e))
            })
            .collect();
        let f: DualDVec64 = self.0.residuals(&duals).into_iter().map(|r| r.powi(2)).sum();
        let grad = f.eps.unwrap_generic(nalgebra::Dyn(n), nalgebra::U1);
        for j in 0..n {
            g[j] = grad[j];
        }
        Ok(f.re)
    }
}
