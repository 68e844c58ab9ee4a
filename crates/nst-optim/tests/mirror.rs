//! A history with a [`PairMirror`] runs as one without. The mirror here is a copy in host
//! memory with its products written as plain loops (the oracle), that counts its calls and
//! can be told to fail.

use ndarray::{Array1, ArrayView1, ArrayViewMut1};
use nst_optim::{Bounds, Lbfgs, MirrorError, NoObserver, Objective, PairMirror, Report, State};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Extended Rosenbrock.
struct Rosenbrock;
impl Objective<f64> for Rosenbrock {
    type Error = Infallible;
    fn value_and_gradient(&mut self, x: ArrayView1<f64>, mut g: ArrayViewMut1<f64>) -> Result<f64, Infallible> {
        let mut f = 0.0;
        for i in (0..x.len()).step_by(2) {
            let (a, b) = (x[i], x[i + 1]);
            let t = b - a * a;
            f += 100.0 * t * t + (1.0 - a) * (1.0 - a);
            g[i] = -400.0 * a * t - 2.0 * (1.0 - a);
            g[i + 1] = 200.0 * t;
        }
        Ok(f)
    }
}

struct HostCopy {
    s: Vec<Array1<f64>>,
    y: Vec<Array1<f64>>,
    calls: Arc<AtomicUsize>,
    /// The call that fails, counting from 1.
    fails_at: Option<usize>,
    pays_from: usize,
    /// The stores before the first pass.
    stores_first: Arc<AtomicUsize>,
    /// Gives one product too few from its passes.
    short: bool,
}

impl HostCopy {
    fn new(capacity: usize, n: usize, fails_at: Option<usize>) -> (Box<Self>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let zeros = vec![Array1::zeros(n); capacity];
        let stores_first = Arc::new(AtomicUsize::new(0));
        (
            Box::new(HostCopy {
                s: zeros.clone(),
                y: zeros,
                calls: calls.clone(),
                fails_at,
                pays_from: 0,
                stores_first,
                short: false,
            }),
            calls,
        )
    }

    fn call(&self, store: bool) -> Result<(), MirrorError> {
        if store && self.stores_first.load(Ordering::Relaxed) == self.calls.load(Ordering::Relaxed) {
            self.stores_first.fetch_add(1, Ordering::Relaxed);
        }
        let k = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fails_at == Some(k) { Err(format!("call {k} failed").into()) } else { Ok(()) }
    }

    fn row(&self, v: ArrayView1<f64>, keep: Option<&[bool]>) -> Vec<f64> {
        let dot = |a: &Array1<f64>| (0..v.len()).filter(|&i| keep.is_none_or(|k| k[i])).map(|i| v[i] * a[i]).sum();
        self.y.iter().chain(&self.s).map(dot).collect()
    }
}

impl PairMirror<f64> for HostCopy {
    fn capacity(&self) -> usize {
        self.s.len()
    }

    fn pays_from(&self) -> usize {
        self.pays_from
    }

    fn store(&mut self, slot: usize, s: ArrayView1<f64>, y: ArrayView1<f64>) -> Result<Vec<f64>, MirrorError> {
        self.call(true)?;
        self.s[slot].assign(&s);
        self.y[slot].assign(&y);
        Ok([self.row(s, None), self.row(y, None)].concat())
    }

    fn dots(&mut self, vs: &[ArrayView1<f64>], keep: Option<&[bool]>) -> Result<Vec<f64>, MirrorError> {
        self.call(false)?;
        let mut rows: Vec<f64> = vs.iter().flat_map(|v| self.row(*v, keep)).collect();
        if self.short {
            rows.pop();
        }
        Ok(rows)
    }

    fn add_combination(&mut self, coefficients: &[f64], mut out: ArrayViewMut1<f64>) -> Result<(), MirrorError> {
        self.call(false)?;
        for (c, a) in coefficients.iter().zip(self.y.iter().chain(&self.s)) {
            out.scaled_add(*c, a);
        }
        Ok(())
    }
}

const N: usize = 200;
const PAIRS: usize = 5;

/// Rosenbrock from the standard start, 5 pairs (so the history wraps), bounded or not, with
/// `mirror` attached: the report and the solution.
fn run(bounded: bool, mirror: Option<Box<HostCopy>>) -> (Report<f64>, Array1<f64>, State<f64>) {
    let mut solver = Lbfgs::new().with_history(PAIRS).unwrap().with_max_evaluations(150).unwrap();
    if bounded {
        let upper = Array1::from_shape_fn(N, |i| if i % 4 == 0 { 0.8 } else { 2.0 });
        solver = solver.with_bounds(Bounds::PerVariable { lower: Array1::from_elem(N, -1.5), upper });
    }
    let mut state = State::new();
    if let Some(m) = mirror {
        state.history.set_mirror(m, PAIRS).unwrap();
    }
    let mut x = Array1::from_shape_fn(N, |i| [-1.2, 1.0][i % 2]);
    let report = solver.run(Rosenbrock, x.view_mut(), &mut state, &mut NoObserver).unwrap();
    (report, x, state)
}

fn assert_same(a: &(Report<f64>, Array1<f64>, State<f64>), b: &(Report<f64>, Array1<f64>, State<f64>)) {
    assert_eq!((a.0.iterations, a.0.evaluations, a.0.termination), (b.0.iterations, b.0.evaluations, b.0.termination));
    assert!((a.0.f - b.0.f).abs() <= 1e-9 * a.0.f.abs().max(1.0), "f {} vs {}", a.0.f, b.0.f);
    let worst = (&a.1 - &b.1).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(worst <= 1e-9, "x differs by {worst:e}");
}

#[test]
fn a_mirrored_history_takes_the_host_path() {
    for bounded in [false, true] {
        let (mirror, calls) = HostCopy::new(PAIRS, N, None);
        let mirrored = run(bounded, Some(mirror));
        assert_same(&mirrored, &run(bounded, None));
        // A store and at least one pass per iteration (none while the history is empty).
        let used = calls.load(Ordering::Relaxed);
        assert!(used >= 2 * mirrored.0.iterations - 1, "{used} calls in {} iterations", mirrored.0.iterations);
        assert_eq!(mirrored.2.history.mirror_failure(), None);
    }
}

#[test]
fn a_failing_mirror_is_detached_and_the_run_goes_on_on_the_host() {
    for bounded in [false, true] {
        for fails_at in [1, 2, 3, 40] {
            let (mirror, calls) = HostCopy::new(PAIRS, N, Some(fails_at));
            let mirrored = run(bounded, Some(mirror));
            assert_same(&mirrored, &run(bounded, None));
            assert_eq!(calls.load(Ordering::Relaxed), fails_at, "no call after the failure");
            assert_eq!(mirrored.2.history.mirror_failure(), Some(format!("call {fails_at} failed")));
        }
    }
}

#[test]
fn a_mirror_waits_for_the_pairs_it_pays_from_then_takes_them_all() {
    for bounded in [false, true] {
        let (mut mirror, calls) = HostCopy::new(PAIRS, N, None);
        mirror.pays_from = 4;
        let stores_first = mirror.stores_first.clone();
        let mirrored = run(bounded, Some(mirror));
        assert_same(&mirrored, &run(bounded, None));
        assert!(calls.load(Ordering::Relaxed) > 2 * mirrored.0.iterations - 16);
        // Its first calls copy the 4 pairs the history then holds, the newest among them.
        assert_eq!(stores_first.load(Ordering::Relaxed), 4);
        assert_eq!(mirrored.2.history.mirror_failure(), None);
    }
}

#[test]
fn a_mirror_that_gives_too_few_products_is_detached() {
    let (mut mirror, _) = HostCopy::new(PAIRS, N, None);
    mirror.short = true;
    let mirrored = run(false, Some(mirror));
    assert_same(&mirrored, &run(false, None));
    assert_eq!(mirrored.2.history.mirror_failure().as_deref(), Some("9 products from a mirror of 5 slots, for 1 rows"));
}

/// Pairs kept from a longer history, then a mirror with as many slots as the shorter one.
#[test]
fn a_mirror_attached_after_the_history_shrank_gets_slots_it_has() {
    let solver = |m: usize| Lbfgs::new().with_history(m).unwrap().with_max_evaluations(12).unwrap();
    let (mut state, mut x) = (State::new(), Array1::from_shape_fn(N, |i| [-1.2, 1.0][i % 2]));
    solver(8).run(Rosenbrock, x.view_mut(), &mut state, &mut NoObserver).unwrap();
    assert!(state.history.len() >= 6, "{} pairs", state.history.len());
    // A run that keeps 3 pairs: the newest, whose slots were numbered up to 7.
    solver(3).run(Rosenbrock, x.view_mut(), &mut state, &mut NoObserver).unwrap();
    let (mirror, calls) = HostCopy::new(3, N, None);
    state.history.set_mirror(mirror, 3).unwrap();
    let mut host = state.clone();
    let mut y = x.clone();
    let with = solver(3).run(Rosenbrock, x.view_mut(), &mut state, &mut NoObserver).unwrap();
    let without = solver(3).run(Rosenbrock, y.view_mut(), &mut host, &mut NoObserver).unwrap();
    assert_eq!(state.history.mirror_failure(), None);
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert_eq!((with.iterations, with.evaluations), (without.iterations, without.evaluations));
    assert!((&x - &y).iter().all(|d| d.abs() <= 1e-9));
}

#[test]
fn a_mirror_with_too_few_slots_is_refused() {
    let mut state = State::<f64>::new();
    let (mirror, _) = HostCopy::new(PAIRS, N, None);
    let e = state.history.set_mirror(mirror, PAIRS + 1).unwrap_err();
    assert_eq!(e.to_string(), "a mirror of 5 pairs for a history of 6");
    // And one that would wait for more pairs than the history keeps.
    let (mut mirror, _) = HostCopy::new(PAIRS, N, None);
    mirror.pays_from = PAIRS + 1;
    let e = state.history.set_mirror(mirror, PAIRS).unwrap_err();
    assert_eq!(e.to_string(), "a mirror that pays from 6 pairs for a history of 5");
    // A run that keeps more pairs than its mirror holds computes on the host, and says why.
    let (mirror, _) = HostCopy::new(PAIRS, N, None);
    state.history.set_mirror(mirror, PAIRS).unwrap();
    let mut x = Array1::from_shape_fn(N, |i| [-1.2, 1.0][i % 2]);
    let solver = Lbfgs::new().with_history(PAIRS + 1).unwrap().with_max_evaluations(20).unwrap();
    solver.run(Rosenbrock, x.view_mut(), &mut state, &mut NoObserver).unwrap();
    assert_eq!(
        state.history.mirror_failure().as_deref(),
        Some("the history grew to 6 pairs, beyond its mirror's slots")
    );
}
