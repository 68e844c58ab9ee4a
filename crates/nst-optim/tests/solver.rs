//! Behaviour of the solver: bounds (KKT conditions), stops, observers, errors, f32.

use approx::assert_relative_eq;
use ndarray::{Array1, ArrayView1, ArrayViewMut1, array};
use nst_optim::{Bounds, BoxMethod, Control, Error, Iteration, Lbfgs, LineSearch, Objective, State, Termination};
use std::convert::Infallible;

/// Extended Rosenbrock, generic over the float type.
struct Rosenbrock;
impl<F: nst_optim::Real> Objective<F> for Rosenbrock {
    type Error = Infallible;
    fn value_and_gradient(&mut self, x: ArrayView1<F>, mut g: ArrayViewMut1<F>) -> Result<F, Infallible> {
        let (c100, c2, c1) = (F::lit(100.0), F::lit(2.0), F::one());
        let mut f = F::zero();
        g.fill(F::zero());
        for i in (0..x.len()).step_by(2) {
            let (a, b) = (x[i], x[i + 1]);
            let t = b - a * a;
            f = f + c100 * t * t + (c1 - a) * (c1 - a);
            g[i] = g[i] - F::lit(400.0) * a * t - c2 * (c1 - a);
            g[i + 1] = g[i + 1] + F::lit(200.0) * t;
        }
        Ok(f)
    }
}

/// f = Σ wᵢ (xᵢ − cᵢ)².
struct Bowl {
    c: Array1<f64>,
    w: Array1<f64>,
}
impl Objective<f64> for Bowl {
    type Error = Infallible;
    fn value_and_gradient(&mut self, x: ArrayView1<f64>, mut g: ArrayViewMut1<f64>) -> Result<f64, Infallible> {
        let r = &x - &self.c;
        g.assign(&(&r * &self.w * 2.0));
        Ok((&r * &r * &self.w).sum())
    }
}

/// Checks the KKT conditions of `min f s.t. l ≤ x ≤ u` at `x`.
fn assert_kkt(b: &Bounds<f64>, x: ArrayView1<f64>, g: ArrayView1<f64>, tol: f64) {
    for i in 0..x.len() {
        let (l, u) = b.get(i);
        assert!(x[i] >= l && x[i] <= u, "x[{i}] = {} outside [{l}, {u}]", x[i]);
        if x[i] == l && l > f64::NEG_INFINITY {
            assert!(g[i] >= -tol, "at lower bound x[{i}], g = {} must be ≥ 0", g[i]);
        } else if x[i] == u && u < f64::INFINITY {
            assert!(g[i] <= tol, "at upper bound x[{i}], g = {} must be ≤ 0", g[i]);
        } else {
            assert!(g[i].abs() <= tol, "free x[{i}] = {} has g = {}", x[i], g[i]);
        }
    }
    assert!(b.projected_gradient_norm(x, g) <= tol);
}

fn gradient<O: Objective<f64>>(o: &mut O, x: ArrayView1<f64>) -> Array1<f64> {
    let mut g = Array1::zeros(x.len());
    let _ = o.value_and_gradient(x, g.view_mut());
    g
}

/// The ways of keeping bounds that land on a bound exactly (not [`BoxMethod::Sigmoid`]).
const EXACT: [BoxMethod; 2] = [BoxMethod::Projected, BoxMethod::ActiveSet];

#[test]
fn bowl_with_centre_outside_the_box_lands_on_the_clamped_centre() {
    for method in EXACT {
        let c = array![-1.0, 0.3, 2.0, 0.7, -5.0];
        let mut obj = Bowl { c: c.clone(), w: array![1.0, 10.0, 0.1, 1000.0, 3.0] };
        let b = Bounds::Uniform { lower: 0.0, upper: 1.0 };
        let solver =
            Lbfgs::new().with_bounds(b.clone()).with_box_method(method).with_gradient_tolerance(1e-10).unwrap();
        let mut x = Array1::from_elem(5, 0.5);
        let r = solver.minimize(&mut obj, x.view_mut()).unwrap();
        assert_eq!(r.termination, Termination::GradientTolerance, "{method:?}");
        assert_relative_eq!(x, c.mapv(|v: f64| v.clamp(0.0, 1.0)), epsilon = 1e-9);
        let g = gradient(&mut obj, x.view());
        assert_kkt(&b, x.view(), g.view(), 1e-10);
    }
}

#[test]
fn rosenbrock_in_a_box_that_excludes_the_minimum() {
    for method in EXACT {
        let b = Bounds::Uniform { lower: -2.0, upper: 0.5 };
        let solver = Lbfgs::new().with_bounds(b.clone()).with_box_method(method).with_gradient_tolerance(1e-9).unwrap();
        let mut x = array![-1.2, 1.0];
        let r = solver.minimize(Rosenbrock, x.view_mut()).unwrap();
        assert_eq!(r.termination, Termination::GradientTolerance, "{method:?}");
        assert_eq!(x[0], 0.5);
        assert_relative_eq!(x[1], 0.25, epsilon = 1e-9);
        let g = gradient(&mut Rosenbrock, x.view());
        assert!(g[0] < 0.0, "the upper bound must be binding");
        assert_kkt(&b, x.view(), g.view(), 1e-9);
    }
}

#[test]
fn per_variable_bounds_with_open_sides_on_a_large_problem() {
    for method in EXACT {
        let n = 1000;
        let lower = Array1::from_shape_fn(n, |i| if i % 3 == 0 { f64::NEG_INFINITY } else { -1.5 });
        let upper = Array1::from_shape_fn(n, |i| if i % 4 == 0 { 0.8 } else { f64::INFINITY });
        let b = Bounds::PerVariable { lower, upper };
        let solver = Lbfgs::new().with_bounds(b.clone()).with_box_method(method).with_gradient_tolerance(1e-7).unwrap();
        let mut x = Array1::from_shape_fn(n, |i| [-1.2, 1.0][i % 2]);
        let r = solver.minimize(Rosenbrock, x.view_mut()).unwrap();
        assert_eq!(r.termination, Termination::GradientTolerance, "{method:?}: {r:?}");
        let g = gradient(&mut Rosenbrock, x.view());
        assert_kkt(&b, x.view(), g.view(), 1e-7);
        assert!(x.iter().any(|&v| v == 0.8), "some upper bounds must be active");
    }
}

/// A strided x (a matrix's column) takes the path a contiguous one does, bit for bit: with
/// per-variable bounds, above the size from which passes run in parallel.
#[test]
fn a_strided_x_gives_the_contiguous_run() {
    let n = 2 * nst_optim::PARALLEL_THRESHOLD + 6;
    let lower = Array1::from_shape_fn(n, |i| if i % 3 == 0 { f64::NEG_INFINITY } else { -1.5 });
    let upper = Array1::from_shape_fn(n, |i| if i % 4 == 0 { 0.8 } else { f64::INFINITY });
    let bounds = Bounds::PerVariable { lower, upper };
    for method in EXACT {
        let solver = Lbfgs::new().with_bounds(bounds.clone()).with_box_method(method).with_max_evaluations(30).unwrap();
        let start = Array1::from_shape_fn(n, |i| [-1.2, 1.0][i % 2] + (i % 7) as f64 * 0.01);
        let mut contiguous = start.clone();
        let whole = solver.minimize(Rosenbrock, contiguous.view_mut()).unwrap();
        let mut matrix = ndarray::Array2::zeros((n, 2));
        matrix.column_mut(1).assign(&start);
        let strided = solver.minimize(Rosenbrock, matrix.column_mut(1)).unwrap();
        assert_eq!((strided.f, strided.evaluations), (whole.f, whole.evaluations), "{method:?}");
        assert_eq!(matrix.column(1), contiguous);
        assert!(matrix.column(0).iter().all(|&v| v == 0.0), "the other column untouched");
    }
}

/// An active set evaluates only points inside the box, on a problem long enough for the
/// passes to run in parallel, and lands on the clamped centre of a bowl as L-BFGS-B does.
#[test]
fn an_active_set_evaluates_inside_the_box_and_lands_on_the_clamped_centre() {
    let n = 3 * nst_optim::PARALLEL_THRESHOLD;
    let c = Array1::from_shape_fn(n, |i| ((i * 7919) % 1000) as f64 / 1000.0 * 1.6 - 0.3);
    let w = Array1::from_shape_fn(n, |i| 1.0 + (i % 13) as f64 * 10.0);
    struct Inside(Bowl, bool);
    impl Objective<f64> for Inside {
        type Error = Infallible;
        fn value_and_gradient(&mut self, x: ArrayView1<f64>, g: ArrayViewMut1<f64>) -> Result<f64, Infallible> {
            self.1 &= x.iter().all(|&x| (0.0..=1.0).contains(&x));
            self.0.value_and_gradient(x, g)
        }
    }
    let mut objective = Inside(Bowl { c: c.clone(), w }, true);
    let b = Bounds::Uniform { lower: 0.0, upper: 1.0 };
    let solver =
        Lbfgs::new().with_bounds(b).with_box_method(BoxMethod::ActiveSet).with_gradient_tolerance(1e-9).unwrap();
    let mut x = Array1::from_elem(n, 0.5);
    let r = solver.minimize(&mut objective, x.view_mut()).unwrap();
    assert_eq!(r.termination, Termination::GradientTolerance, "{r:?}");
    assert!(objective.1, "every evaluated point in the box");
    let clamped = c.mapv(|v| v.clamp(0.0, 1.0));
    assert_relative_eq!(x, clamped, epsilon = 1e-9);
    let on_bounds = x.iter().filter(|&&v| v == 0.0 || v == 1.0).count();
    assert_eq!(on_bounds, clamped.iter().filter(|&&v| v == 0.0 || v == 1.0).count(), "exactly on the bounds");
}

/// An active set in f32, from a start on a bound whose gradient holds it there, with a
/// variable whose bounds are equal, and with bounds open on one side.
#[test]
fn an_active_set_serves_f32_equal_and_one_sided_bounds() {
    fn active<F: nst_optim::Real>(b: Bounds<F>) -> Lbfgs<F> {
        Lbfgs::new().with_bounds(b).with_box_method(BoxMethod::ActiveSet)
    }
    // Rosenbrock in [−2, 0.5]², x₀ starting on its upper bound with g₀ = −151 < 0: held.
    let mut x = array![0.5f32, 1.0];
    let solver = active(Bounds::Uniform { lower: -2.0f32, upper: 0.5 }).with_gradient_tolerance(1e-3).unwrap();
    let r = solver.minimize(Rosenbrock, x.view_mut()).unwrap();
    assert_eq!(r.termination, Termination::GradientTolerance, "{r:?}");
    assert_eq!(x[0], 0.5);
    assert!((x[1] - 0.25).abs() < 1e-4, "{x}");
    // The bowl with its last variable's bounds equal (it stays there), then open above.
    let c = array![-1.0, 0.3, 2.0, 0.7, -5.0, 0.5];
    let mut bowl = Bowl { c: c.clone(), w: array![1.0, 10.0, 0.1, 1000.0, 3.0, 1.0] };
    let lower = array![0.0, 0.0, 0.0, 0.0, 0.0, 0.25];
    let upper = array![1.0, 1.0, 1.0, 1.0, 1.0, 0.25];
    let b = Bounds::PerVariable { lower, upper };
    let mut x = Array1::from_elem(6, 0.5);
    active(b).with_gradient_tolerance(1e-10).unwrap().minimize(&mut bowl, x.view_mut()).unwrap();
    assert_relative_eq!(x, array![0.0, 0.3, 1.0, 0.7, 0.0, 0.25], epsilon = 1e-9);
    assert_eq!(x[5], 0.25, "held where its bounds are equal");
    let b = Bounds::Uniform { lower: 0.0, upper: f64::INFINITY };
    let mut x = Array1::from_elem(6, 0.5);
    let r = active(b.clone()).with_gradient_tolerance(1e-10).unwrap().minimize(&mut bowl, x.view_mut()).unwrap();
    assert_eq!(r.termination, Termination::GradientTolerance, "{r:?}");
    assert_relative_eq!(x, c.mapv(|v: f64| v.max(0.0)), epsilon = 1e-9);
    assert_kkt(&b, x.view(), gradient(&mut bowl, x.view()).view(), 1e-10);
}

#[test]
fn f32_runs_generically() {
    let mut x = array![-1.2f32, 1.0, -1.2, 1.0];
    let r = Lbfgs::<f32>::new().with_gradient_tolerance(1e-3).unwrap().minimize(Rosenbrock, x.view_mut()).unwrap();
    assert!(r.termination.converged(), "{r:?}");
    assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-2), "{x}");
}

#[test]
fn evaluation_budget_is_exact_and_f_only_goes_down() {
    for ls in [LineSearch::strong_wolfe(), LineSearch::armijo()] {
        let mut seen = Vec::new();
        let mut obs = |it: &Iteration<'_, f64>| {
            seen.push(it.f);
            Control::Continue
        };
        let solver = Lbfgs::new().with_line_search(ls).unwrap().with_max_evaluations(17).unwrap();
        let mut x = array![-1.2, 1.0];
        let r = solver.run(Rosenbrock, x.view_mut(), &mut State::new(), &mut obs).unwrap();
        assert_eq!(r.termination, Termination::MaxEvaluations);
        assert_eq!(r.evaluations, 17);
        assert!(seen.windows(2).all(|w| w[1] <= w[0]), "{seen:?}");
        assert_eq!(r.f, *seen.last().unwrap());
    }
}

#[test]
fn fixed_step_takes_torch_first_step_and_one_evaluation_per_iteration() {
    let mut x = array![-1.2, 1.0];
    let g0 = gradient(&mut Rosenbrock, x.view());
    let mut steps = Vec::new();
    let mut obs = |it: &Iteration<'_, f64>| {
        steps.push(it.step);
        Control::Continue
    };
    let solver = Lbfgs::new().with_line_search(LineSearch::fixed(0.5)).unwrap().with_max_iterations(30).unwrap();
    let r = solver.run(Rosenbrock, x.view_mut(), &mut State::new(), &mut obs).unwrap();
    assert_eq!(r.evaluations, r.iterations + 1);
    let g1: f64 = g0.iter().map(|v| v.abs()).sum();
    assert_eq!(steps[0], (1.0f64).min(1.0 / g1) * 0.5);
    assert!(steps[1..].iter().all(|&s| s == 0.5));
}

#[test]
fn observer_stops_and_state_continues_the_run() {
    let solver = Lbfgs::new().with_gradient_tolerance(1e-8).unwrap();
    let mut x = array![-1.2, 1.0, -1.2, 1.0];
    let mut state = State::new();
    let mut stop_at_5 = |it: &Iteration<'_, f64>| if it.k == 5 { Control::Stop } else { Control::Continue };
    let r = solver.run(Rosenbrock, x.view_mut(), &mut state, &mut stop_at_5).unwrap();
    assert_eq!((r.termination, r.iterations), (Termination::Stopped, 5));
    assert_eq!(state.history.len(), 5);
    let r2 = solver.run(Rosenbrock, x.view_mut(), &mut state, &mut nst_optim::NoObserver).unwrap();
    assert_eq!(r2.termination, Termination::GradientTolerance);
    assert_relative_eq!(x, Array1::ones(4), epsilon = 1e-6);
}

#[derive(Debug, thiserror::Error)]
#[error("network failed on call {0}")]
struct Broken(usize);

struct FailsAt(usize, usize);
impl Objective<f64> for FailsAt {
    type Error = Broken;
    fn value_and_gradient(&mut self, x: ArrayView1<f64>, g: ArrayViewMut1<f64>) -> Result<f64, Broken> {
        self.1 += 1;
        if self.1 == self.0 {
            return Err(Broken(self.1));
        }
        Ok(Rosenbrock.value_and_gradient(x, g).unwrap())
    }
}

#[test]
fn objective_errors_propagate() {
    let mut x = array![-1.2, 1.0];
    let e = Lbfgs::new().minimize(FailsAt(4, 0), x.view_mut()).unwrap_err();
    assert!(matches!(e, Error::Objective(Broken(4))));
    assert_eq!(e.to_string(), "objective failed: network failed on call 4");
}

#[test]
fn a_lower_bound_scales_the_first_step() {
    // Far from its centre a bowl's 1/‖g‖ is 10⁶ times short of the best step, 1/(2w); the
    // step where the linear model reaches 0 is half of it.
    let n = 100;
    let bowl = || Bowl { c: Array1::ones(n), w: Array1::from_elem(n, 1e3) };
    let first_iteration = |solver: Lbfgs<f64>| {
        let mut x = Array1::from_elem(n, 1e5 + 1.0);
        let mut first = None;
        let mut obs = |it: &Iteration<'_, f64>| {
            first = Some((it.evaluations, it.step));
            Control::Stop
        };
        solver.run(bowl(), x.view_mut(), &mut State::new(), &mut obs).unwrap();
        first.unwrap()
    };
    let (evaluations, step) = first_iteration(Lbfgs::new().with_lower_bound(0.0).unwrap());
    assert_eq!((evaluations, step), (2, 1.0 / 4e3), "the linear model's zero, accepted");
    let (evaluations, _) = first_iteration(Lbfgs::new());
    assert!(evaluations >= 10, "without a bound, the line search extrapolates from 1/‖g‖: {evaluations}");
}

#[test]
fn rejects_bad_settings_and_inputs() {
    assert!(Lbfgs::<f64>::new().with_history(0).is_err());
    assert!(Lbfgs::<f64>::new().with_gradient_tolerance(-1.0).is_err());
    assert!(Lbfgs::<f64>::new().with_function_tolerance(f64::NAN).is_err());
    assert!(
        Lbfgs::<f64>::new().with_line_search(LineSearch::StrongWolfe { c1: 0.9, c2: 0.1, max_trials: 20 }).is_err()
    );
    assert!(Lbfgs::<f64>::new().with_line_search(LineSearch::fixed(0.0)).is_err());
    assert!(Lbfgs::<f64>::new().with_max_evaluations(0).is_err());
    assert!(Lbfgs::<f64>::new().with_lower_bound(f64::NEG_INFINITY).is_err());
    let mut x = array![0.0, 0.0];
    let crossed = Lbfgs::new().with_bounds(Bounds::Uniform { lower: 1.0, upper: 0.0 });
    assert!(matches!(crossed.minimize(Rosenbrock, x.view_mut()), Err(Error::EmptyBounds { index: 0 })));
    let short = Lbfgs::new().with_bounds(Bounds::PerVariable { lower: array![0.0], upper: array![1.0] });
    assert!(matches!(short.minimize(Rosenbrock, x.view_mut()), Err(Error::BoundsLength { expected: 2, .. })));
    let mut empty = Array1::<f64>::zeros(0);
    assert!(matches!(Lbfgs::new().minimize(Rosenbrock, empty.view_mut()), Err(Error::Empty)));
    let mut nan = array![f64::NAN, 1.0];
    assert!(matches!(Lbfgs::new().minimize(Rosenbrock, nan.view_mut()), Err(Error::NonFiniteStart)));
}

#[test]
fn function_tolerance_stops_early_when_enabled() {
    let mut x = array![-1.2, 1.0];
    let r = Lbfgs::new().with_function_tolerance(1e-3).unwrap().minimize(Rosenbrock, x.view_mut()).unwrap();
    assert_eq!(r.termination, Termination::FunctionTolerance);
}

#[test]
fn blowing_up_objective_shrinks_the_step() {
    /// f = eˣ⁰ʸ-like: non-finite beyond |x| > 3.
    struct Cliff;
    impl Objective<f64> for Cliff {
        type Error = Infallible;
        fn value_and_gradient(&mut self, x: ArrayView1<f64>, mut g: ArrayViewMut1<f64>) -> Result<f64, Infallible> {
            if x[0].abs() > 3.0 {
                g[0] = f64::NAN;
                return Ok(f64::INFINITY);
            }
            g[0] = 2.0 * (x[0] - 2.5);
            Ok((x[0] - 2.5).powi(2))
        }
    }
    for ls in [LineSearch::strong_wolfe(), LineSearch::armijo(), LineSearch::fixed(100.0)] {
        let mut x = array![-2.9];
        let solver = Lbfgs::new().with_line_search(ls).unwrap().with_max_iterations(50).unwrap();
        let r = solver.minimize(Cliff, x.view_mut()).unwrap();
        assert!(r.f.is_finite() && x[0].abs() <= 3.0, "{ls:?}: {r:?} at {x}");
    }
}

#[test]
fn memory_counts_the_history_and_the_working_vectors() {
    let n = 1000;
    let plain = Lbfgs::<f32>::new().with_history(7).unwrap();
    assert_eq!(plain.memory(n), (2 * 8 + 4) * 4 * 1000);
    let boxed = plain.with_bounds(Bounds::Uniform { lower: 0.0, upper: 1.0 });
    assert_eq!(boxed.memory(n), (2 * 8 + 6) * 4 * 1000 + 2 * 1000);
    assert_eq!(Lbfgs::<f64>::new().with_history(1).unwrap().memory(10), (2 * 2 + 4) * 8 * 10);
    // A change of variables keeps the point in x beside z.
    let changed = boxed.clone().with_box_method(BoxMethod::Sigmoid);
    assert_eq!(changed.memory(n), (2 * 8 + 5) * 4 * 1000);
    // An active set keeps the gradient on the free variables.
    assert_eq!(boxed.with_box_method(BoxMethod::ActiveSet).memory(n), (2 * 8 + 5) * 4 * 1000);
}

/// With the bounds kept by a change of variables, the bowl whose centre is partly outside
/// the box lands on the clamped centre (within EDGE's reach of the bounds: σ reaches none),
/// every point evaluated and observed inside, the held variable where it is held.
#[test]
fn a_change_of_variables_keeps_the_box_and_finds_its_optimum() {
    let c = array![-1.0, 0.3, 2.0, 0.7, -5.0, 0.5];
    let w = array![1.0, 10.0, 0.1, 1000.0, 3.0, 1.0];
    let lower = array![0.0, 0.0, 0.0, 0.0, 0.0, 0.25];
    let upper = array![1.0, 1.0, 1.0, 1.0, 1.0, 0.25];
    let b = Bounds::PerVariable { lower: lower.clone(), upper: upper.clone() };
    struct Watched<'a>(Bowl, &'a std::cell::Cell<bool>, Array1<f64>, Array1<f64>);
    impl Objective<f64> for Watched<'_> {
        type Error = Infallible;
        fn value_and_gradient(&mut self, x: ArrayView1<f64>, g: ArrayViewMut1<f64>) -> Result<f64, Infallible> {
            let inside = x.iter().zip(&self.2).zip(&self.3).all(|((&x, &l), &u)| l <= x && x <= u);
            self.1.set(self.1.get() && inside);
            self.0.value_and_gradient(x, g)
        }
    }
    let inside = std::cell::Cell::new(true);
    let mut objective = Watched(Bowl { c: c.clone(), w: w.clone() }, &inside, lower.clone(), upper.clone());
    let solver = Lbfgs::new()
        .with_bounds(b)
        .with_box_method(BoxMethod::Sigmoid)
        .with_gradient_tolerance(1e-12)
        .unwrap()
        .with_max_evaluations(400)
        .unwrap();
    let mut x = Array1::from_elem(6, 0.5);
    let mut observed_inside = true;
    let mut observer = |it: &Iteration<'_, f64>| {
        observed_inside &= it.x.iter().zip(&lower).zip(&upper).all(|((&x, &l), &u)| l <= x && x <= u);
        Control::Continue
    };
    solver.run(&mut objective, x.view_mut(), &mut State::new(), &mut observer).unwrap();
    assert!(inside.get() && observed_inside, "every point in the box");
    let clamped = array![0.0, 0.3, 1.0, 0.7, 0.0, 0.25];
    assert_relative_eq!(x, clamped, epsilon = 1e-4);
    assert_eq!(x[5], 0.25, "held where its bounds are equal");
    // The free variables as L-BFGS-B finds them.
    assert_relative_eq!(x[1], 0.3, epsilon = 1e-8);
    assert_relative_eq!(x[3], 0.7, epsilon = 1e-8);
}

#[test]
fn a_change_of_variables_refuses_a_one_sided_bound_and_leaves_x() {
    let b = Bounds::PerVariable { lower: array![0.0, 0.0], upper: array![1.0, f64::INFINITY] };
    let solver = Lbfgs::new().with_bounds(b).with_box_method(BoxMethod::Sigmoid);
    let mut x = array![0.5, 0.5];
    let e = solver.minimize(Rosenbrock, x.view_mut()).unwrap_err();
    assert!(matches!(e, Error::OneSidedBounds { index: 1 }), "{e}");
    assert_eq!(x, array![0.5, 0.5]);
    // Without bounds the method changes nothing: plain L-BFGS.
    let (mut a, mut b) = (array![-1.2, 1.0], array![-1.2, 1.0]);
    let plain = Lbfgs::new().minimize(Rosenbrock, a.view_mut()).unwrap();
    let sigmoid = Lbfgs::new().with_box_method(BoxMethod::Sigmoid).minimize(Rosenbrock, b.view_mut()).unwrap();
    assert_eq!((a, plain.evaluations), (b, sigmoid.evaluations));
}

/// On Rosenbrock in [−2, 0.5]², whose minimum is on the upper bound of x₀, the change of
/// variables comes to L-BFGS-B's solution.
#[test]
fn a_change_of_variables_approaches_a_binding_bound() {
    let b = Bounds::Uniform { lower: -2.0, upper: 0.5 };
    let solver = Lbfgs::new().with_bounds(b).with_box_method(BoxMethod::Sigmoid).with_max_evaluations(500).unwrap();
    let mut x = array![-1.2, 1.0];
    let r = solver.minimize(Rosenbrock, x.view_mut()).unwrap();
    assert!(x[0] < 0.5 && x[0] > 0.5 - 1e-4, "{x} {r:?}");
    assert_relative_eq!(x[1], 0.25, epsilon = 1e-4);
}
