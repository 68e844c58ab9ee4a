//! The L-BFGS / L-BFGS-B solver: settings, the iteration loop, and the state a run leaves.

use crate::active::active_direction;
use crate::bounds::{Bounds, BoundsProblem, BoxMethod};
use crate::change::{self, Changed, Seen};
use crate::error::{Error, SettingError};
use crate::history::History;
use crate::linesearch::{LineSearch, Next, Search};
use crate::observer::{Control, Iteration, NoObserver, Observer};
use crate::subspace::{BoundedWork, bounded_direction};
use crate::termination::{Report, Termination};
use crate::vector::{all_finite, dot, norm_inf};
use crate::{Objective, Real};
use ndarray::{Array1, ArrayViewMut1};
use std::cell::RefCell;

/// Limited-memory BFGS, with bound constraints L-BFGS-B style.
///
/// **Algorithm.** Unconstrained, the direction is `−H·g`, H the L-BFGS inverse
/// Hessian of the last m pairs `(s, y)` with initial scaling `γ = sᵀy/yᵀy`: the two-loop
/// recursion's direction (Nocedal & Wright, *Numerical Optimization*, Alg. 7.4), computed
/// from H's compact form (Byrd, Nocedal & Schnabel, *Math. Prog.* 63, 1994) in two passes
/// over the pairs.
/// With [`Bounds`], the direction comes from the generalized Cauchy point and
/// subspace minimization on the compact representation (Byrd, Lu, Nocedal &
/// Zhu, *SIAM J. Sci. Comput.* 16(5), 1995; Morales & Nocedal, *ACM TOMS* 38(1), 2011),
/// so iterates stay feasible without clamping; or, with [`BoxMethod::ActiveSet`], the plain
/// L-BFGS direction on the variables not held at a bound, projected into the box; or, with
/// [`BoxMethod::Sigmoid`], plain L-BFGS over a change of variables that maps every point into
/// the box. A pair with
/// `sᵀy ≤ ε·‖s‖·‖y‖` is skipped; a direction that is not downhill resets the history.
///
/// **Problem.** An [`Objective`] returning f and ∇f from one call.
///
/// **Defaults.** m = 10, strong Wolfe line search (c1 = 1e-4, c2 = 0.9, 20
/// trials), no bounds, `‖g‖∞ ≤ 1e-5`, relative f-change test off, no
/// iteration or evaluation limit.
#[derive(Clone, Debug)]
pub struct Lbfgs<F> {
    history: usize,
    line_search: LineSearch<F>,
    bounds: Bounds<F>,
    box_method: BoxMethod,
    max_iterations: usize,
    max_evaluations: usize,
    gtol: F,
    ftol: F,
    lower_bound: Option<F>,
    /// Where no lower bound is known, the first step moves no variable by more than this
    /// (else it is `1/‖d‖`, at most 1): over [`BoxMethod::Sigmoid`]'s z, whose unit is the
    /// scale at which x moves, 1.
    first_change: Option<F>,
}

/// The working vectors of a run's direction, by how the bounds are kept.
enum Work<F> {
    /// No bounds (or [`BoxMethod::Sigmoid`]'s z): none.
    Plain,
    /// L-BFGS-B's.
    Lbfgsb(BoundedWork<F>),
    /// [`BoxMethod::ActiveSet`]'s gradient on the free variables.
    ActiveSet(Array1<F>),
}

/// What a run keeps for the next: the correction pairs and `γ`.
///
/// Pass the same state to successive [`Lbfgs::run`] calls (with the same
/// `x`) to continue a run as if it had not stopped, the first evaluation aside.
#[derive(Clone, Debug)]
pub struct State<F> {
    /// The limited memory.
    pub history: History<F>,
}

impl<F: Real> State<F> {
    /// A fresh state with no curvature information.
    pub fn new() -> Self {
        Self { history: History::new(1) }
    }
}

impl<F: Real> Default for State<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Real> Default for Lbfgs<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Real> Lbfgs<F> {
    /// A solver with the default settings.
    pub fn new() -> Self {
        Self {
            history: 10,
            line_search: LineSearch::strong_wolfe(),
            bounds: Bounds::None,
            box_method: BoxMethod::Projected,
            max_iterations: usize::MAX,
            max_evaluations: usize::MAX,
            gtol: F::lit(1e-5),
            ftol: F::zero(),
            lower_bound: None,
            first_change: None,
        }
    }

    /// Number of correction pairs kept (m ≥ 1).
    pub fn with_history(mut self, m: usize) -> Result<Self, SettingError> {
        if m == 0 {
            return Err(SettingError { name: "history", reason: "must be at least 1".into() });
        }
        self.history = m;
        Ok(self)
    }

    /// Bytes a run on `n` variables allocates: the history (`s` and `y` per pair, and one
    /// pair more, where the next is formed), the gradient, direction, previous point and previous gradient, and with bounds the
    /// generalized Cauchy point, a residual, and the free-variable flags of this direction and
    /// the last ([`BoxMethod::Sigmoid`]: the point in x; [`BoxMethod::ActiveSet`]: the
    /// gradient on the free variables). The caller's `x` is not counted.
    pub fn memory(&self, n: usize) -> u64 {
        let vector = (n * std::mem::size_of::<F>()) as u64;
        let bounded = match (self.bounds.is_constrained(), self.box_method) {
            (false, _) => 0,
            (true, BoxMethod::Projected) => 2 * vector + 2 * n as u64,
            (true, BoxMethod::Sigmoid | BoxMethod::ActiveSet) => vector,
        };
        2 * (self.history as u64 + 1) * vector + 4 * vector + bounded
    }

    /// The line search.
    pub fn with_line_search(mut self, line_search: LineSearch<F>) -> Result<Self, SettingError> {
        line_search.validate().map_err(|reason| SettingError { name: "line_search", reason })?;
        self.line_search = line_search;
        Ok(self)
    }

    /// Box constraints; [`Bounds::None`] for an unconstrained run.
    /// Lengths are checked when the run starts.
    pub fn with_bounds(mut self, bounds: Bounds<F>) -> Self {
        self.bounds = bounds;
        self
    }

    /// How the bounds are kept: L-BFGS-B (the default), an active set or a change of variables.
    pub fn with_box_method(mut self, method: BoxMethod) -> Self {
        self.box_method = method;
        self
    }

    /// How the bounds are kept.
    pub fn box_method(&self) -> BoxMethod {
        self.box_method
    }

    /// Stop after this many accepted iterations.
    pub fn with_max_iterations(mut self, n: usize) -> Result<Self, SettingError> {
        if n == 0 {
            return Err(SettingError { name: "max_iterations", reason: "must be at least 1".into() });
        }
        self.max_iterations = n;
        Ok(self)
    }

    /// Stop once this many evaluations were made (the first one included).
    pub fn with_max_evaluations(mut self, n: usize) -> Result<Self, SettingError> {
        if n == 0 {
            return Err(SettingError { name: "max_evaluations", reason: "must be at least 1".into() });
        }
        self.max_evaluations = n;
        Ok(self)
    }

    /// Stop when `‖g‖∞` (projected when bounded) is at most `tol` (≥ 0).
    pub fn with_gradient_tolerance(mut self, tol: F) -> Result<Self, SettingError> {
        if !(tol >= F::zero()) {
            return Err(SettingError { name: "gradient_tolerance", reason: format!("must be ≥ 0, got {tol}") });
        }
        self.gtol = tol;
        Ok(self)
    }

    /// Stop when `(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ tol`; 0 (the default) turns it off.
    pub fn with_function_tolerance(mut self, tol: F) -> Result<Self, SettingError> {
        if !(tol >= F::zero()) {
            return Err(SettingError { name: "function_tolerance", reason: format!("must be ≥ 0, got {tol}") });
        }
        self.ftol = tol;
        Ok(self)
    }

    /// A lower bound of f, when one is known (0 for a sum of squares). A line search without
    /// curvature information (the first, or after a reset) then starts at the step where
    /// f's linear model reaches it, `(f − bound)/|gᵀd|` (Polyak's step), instead of `1/‖d‖`,
    /// which for a badly scaled f can be orders of magnitude short, each extrapolation of
    /// the line search only quadrupling it. Not with bounds on both sides of every variable,
    /// where the first step is 1 (as L-BFGS-B's), nor with a fixed step.
    pub fn with_lower_bound(mut self, bound: F) -> Result<Self, SettingError> {
        if !bound.is_finite() {
            return Err(SettingError { name: "lower_bound", reason: format!("must be finite, got {bound}") });
        }
        self.lower_bound = Some(bound);
        Ok(self)
    }

    /// The bounds in use.
    pub fn bounds(&self) -> &Bounds<F> {
        &self.bounds
    }

    /// Minimizes from `x`, leaving the solution in `x`.
    pub fn minimize<O: Objective<F>>(&self, objective: O, x: ArrayViewMut1<F>) -> Result<Report<F>, Error<O::Error>> {
        self.run(objective, x, &mut State::new(), &mut NoObserver)
    }

    /// Minimizes from `x` with a kept `state` and an `observer`, leaving the solution in `x`.
    ///
    /// A strided `x` (a column of a matrix, say) is worked on in a contiguous copy, one vector
    /// more than [`Lbfgs::memory`] counts: the passes read and write x as one slice.
    pub fn run<O: Objective<F>, B: Observer<F> + ?Sized>(
        &self,
        objective: O,
        mut x: ArrayViewMut1<F>,
        state: &mut State<F>,
        observer: &mut B,
    ) -> Result<Report<F>, Error<O::Error>> {
        if x.as_slice().is_some() {
            return self.run_contiguous(objective, x, state, observer);
        }
        let mut copy = x.to_owned();
        let report = self.run_contiguous(objective, copy.view_mut(), state, observer);
        x.assign(&copy);
        report
    }

    fn run_contiguous<O: Objective<F>, B: Observer<F> + ?Sized>(
        &self,
        objective: O,
        x: ArrayViewMut1<F>,
        state: &mut State<F>,
        observer: &mut B,
    ) -> Result<Report<F>, Error<O::Error>> {
        let n = x.len();
        if n == 0 {
            return Err(Error::Empty);
        }
        self.bounds.validate(n).map_err(|p| match p {
            BoundsProblem::Length { expected, lower, upper } => Error::BoundsLength { expected, lower, upper },
            BoundsProblem::Empty { index } => Error::EmptyBounds { index },
        })?;
        if self.box_method == BoxMethod::Sigmoid && self.bounds.is_constrained() {
            return self.run_changed(objective, x, state, observer);
        }
        self.iterate(objective, x, state, observer)
    }

    /// The iterations, from a checked start.
    fn iterate<O: Objective<F>, B: Observer<F> + ?Sized>(
        &self,
        mut objective: O,
        mut x: ArrayViewMut1<F>,
        state: &mut State<F>,
        observer: &mut B,
    ) -> Result<Report<F>, Error<O::Error>> {
        let n = x.len();
        let bounded = self.bounds.is_constrained();
        let boxed = bounded && self.bounds.boxed(n);
        let history = &mut state.history;
        history.set_capacity(self.history);
        self.bounds.project(x.view_mut());

        let mut g = Array1::zeros(n);
        let mut d = Array1::zeros(n);
        let mut x_prev = Array1::zeros(n);
        let mut g_prev = Array1::zeros(n);
        // What `memory` counts.
        let mut work = match self.box_method {
            _ if !bounded => Work::Plain,
            BoxMethod::ActiveSet => Work::ActiveSet(Array1::zeros(n)),
            BoxMethod::Projected => Work::Lbfgsb(BoundedWork::new(n)),
            BoxMethod::Sigmoid => unreachable!("a change of variables iterates over z, without bounds"),
        };

        let mut f = objective.value_and_gradient(x.view(), g.view_mut()).map_err(Error::Objective)?;
        let mut evaluations = 1;
        if !f.is_finite() || !all_finite(g.view()) {
            return Err(Error::NonFiniteStart);
        }
        let mut gnorm = self.bounds.projected_gradient_norm(x.view(), g.view());
        let mut iterations = 0;
        let report = |termination, iterations, evaluations, f, gnorm| {
            Ok(Report { termination, iterations, evaluations, f, gnorm })
        };
        if gnorm <= self.gtol {
            return report(Termination::GradientTolerance, 0, evaluations, f, gnorm);
        }
        if evaluations >= self.max_evaluations {
            return report(Termination::MaxEvaluations, 0, evaluations, f, gnorm);
        }

        loop {
            // Search direction, with a reset to steepest descent when it is not downhill.
            let mut gd = F::nan();
            for _attempt in 0..2 {
                gd = match &mut work {
                    Work::Lbfgsb(w) => bounded_direction(x.view(), g.view(), &self.bounds, history, w, d.view_mut()),
                    Work::ActiveSet(free) => {
                        active_direction((x.view(), g.view()), &self.bounds, history, free.view_mut(), d.view_mut())
                    }
                    Work::Plain => {
                        history.direction(g.view(), d.view_mut());
                        dot(g.view(), d.view())
                    }
                };
                if gd < F::zero() || history.is_empty() {
                    break;
                }
                history.clear();
            }
            if !(gd < F::zero()) {
                return report(Termination::NoDescent, iterations, evaluations, f, gnorm);
            }

            // Line search from x_prev along d.
            let f_prev = f;
            let stpmax = self.bounds.max_step(x.view(), d.view(), Some(x_prev.view_mut())).min(F::lit(1e10));
            let mut stp = match self.line_search {
                LineSearch::Fixed { lr } if iterations == 0 && history.is_empty() => {
                    let g1: F = g.iter().map(|v| v.abs()).sum();
                    F::one().min(F::one() / g1) * lr
                }
                LineSearch::Fixed { lr } => lr,
                _ if history.is_empty() && !boxed => match (self.lower_bound, self.first_change) {
                    (Some(low), _) if f_prev > low => (f_prev - low) / -gd,
                    (_, Some(change)) => change / norm_inf(d.view()),
                    _ => F::one().min(F::one() / dot(d.view(), d.view()).sqrt()),
                }
                .max(F::epsilon()),
                _ => F::one(),
            }
            .min(stpmax);
            let mut search = Search::start(&self.line_search, f_prev, gd, stp, stpmax);
            // The trials write g: the gradient at x_prev goes to g_prev, without a copy.
            std::mem::swap(&mut g, &mut g_prev);
            let mut accepted = false;
            let mut out_of_budget = false;
            for _trial in 0..self.line_search.max_trials() {
                self.bounds.point_along(x_prev.view(), stp, d.view(), x.view_mut());
                f = objective.value_and_gradient(x.view(), g.view_mut()).map_err(Error::Objective)?;
                evaluations += 1;
                let dg = if f.is_finite() { dot(g.view(), d.view()) } else { F::nan() };
                match search.next(stp, f, dg) {
                    Next::Accept => {
                        accepted = true;
                        break;
                    }
                    Next::Fail => break,
                    Next::Try(next) => stp = next,
                }
                if evaluations >= self.max_evaluations {
                    // Keep a trial that lowered f; otherwise fall back to the start.
                    accepted = f.is_finite() && f < f_prev && all_finite(g.view());
                    out_of_budget = true;
                    break;
                }
            }
            if !accepted {
                x.assign(&x_prev);
                std::mem::swap(&mut g, &mut g_prev);
                f = f_prev;
                if out_of_budget {
                    return report(Termination::MaxEvaluations, iterations, evaluations, f, gnorm);
                }
                if history.is_empty() {
                    return report(Termination::LineSearchFailed, iterations, evaluations, f, gnorm);
                }
                // Retry along steepest descent, as L-BFGS-B does.
                history.clear();
                continue;
            }

            iterations += 1;
            history.update(stp, d.view(), g.view(), g_prev.view());
            gnorm = self.bounds.projected_gradient_norm(x.view(), g.view());
            let it = Iteration { k: iterations, evaluations, f, gnorm, step: stp, x: x.view() };
            let control = observer.observe(&it);
            let stop = if gnorm <= self.gtol {
                Some(Termination::GradientTolerance)
            } else if self.ftol > F::zero() && (f_prev - f) <= self.ftol * f_prev.abs().max(f.abs()).max(F::one()) {
                Some(Termination::FunctionTolerance)
            } else if control == Control::Stop {
                Some(Termination::Stopped)
            } else if out_of_budget || evaluations >= self.max_evaluations {
                Some(Termination::MaxEvaluations)
            } else if iterations >= self.max_iterations {
                Some(Termination::MaxIterations)
            } else {
                None
            };
            if let Some(t) = stop {
                return report(t, iterations, evaluations, f, gnorm);
            }
        }
    }

    /// [`BoxMethod::Sigmoid`]: plain L-BFGS over z in `x`'s place, x written back at the end
    /// (an error's too).
    fn run_changed<O: Objective<F>, B: Observer<F> + ?Sized>(
        &self,
        objective: O,
        mut x: ArrayViewMut1<F>,
        state: &mut State<F>,
        observer: &mut B,
    ) -> Result<Report<F>, Error<O::Error>> {
        if let Some(index) = self.bounds.one_sided(x.len()) {
            return Err(Error::OneSidedBounds { index });
        }
        let plain = self.unbounded();
        let seen = RefCell::new(Array1::zeros(x.len()));
        change::into_z(&self.bounds, x.view_mut());
        let objective = Changed { objective, bounds: &self.bounds, x: &seen };
        let result = plain.iterate(objective, x.view_mut(), state, &mut Seen { observer, x: &seen });
        change::into_x(&self.bounds, x);
        result
    }

    /// The same settings without bounds (not copied: per-variable ones are as long as x), for
    /// a run over [`BoxMethod::Sigmoid`]'s z.
    fn unbounded(&self) -> Self {
        Lbfgs {
            history: self.history,
            line_search: self.line_search,
            bounds: Bounds::None,
            box_method: BoxMethod::Projected,
            max_iterations: self.max_iterations,
            max_evaluations: self.max_evaluations,
            gtol: self.gtol,
            ftol: self.ftol,
            lower_bound: self.lower_bound,
            first_change: Some(F::one()),
        }
    }
}
