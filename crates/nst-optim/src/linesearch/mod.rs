//! Line searches along a descent direction `d`, as reverse-communication state
//! machines: the solver evaluates each trial step the search asks for.

mod backtracking;
mod more_thuente;

pub(crate) use backtracking::Backtracking;
pub(crate) use more_thuente::MoreThuente;

use crate::Real;

/// How the step length along each search direction is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineSearch<F> {
    /// Strong Wolfe conditions by Moré & Thuente (1994), as MINPACK-2's `dcsrch`:
    /// `f(t) ≤ f(0) + c1·t·f'(0)` and `|f'(t)| ≤ c2·|f'(0)|`.
    StrongWolfe {
        /// Sufficient-decrease constant (default 1e-4).
        c1: F,
        /// Curvature constant (default 0.9).
        c2: F,
        /// Evaluations allowed per line search (default 20).
        max_trials: usize,
    },
    /// Backtracking until the Armijo condition `f(t) ≤ f(0) + c1·t·f'(0)` holds.
    Armijo {
        /// Sufficient-decrease constant (default 1e-4).
        c1: F,
        /// Factor the step is multiplied by after each rejection, in (0, 1) (default 0.5).
        shrink: F,
        /// Evaluations allowed per line search (default 20).
        max_trials: usize,
    },
    /// No search: step `lr` (the first step `min(1, 1/‖g‖₁)·lr`), accepted whatever
    /// `f` does, as `torch.optim.LBFGS` without `line_search_fn`. A non-finite
    /// value still halves the step.
    Fixed {
        /// The learning rate (1 in neural-style).
        lr: F,
    },
}

impl<F: Real> LineSearch<F> {
    /// Strong Wolfe with `c1 = 1e-4`, `c2 = 0.9`, 20 trials.
    pub fn strong_wolfe() -> Self {
        LineSearch::StrongWolfe { c1: F::lit(1e-4), c2: F::lit(0.9), max_trials: 20 }
    }

    /// Armijo backtracking with `c1 = 1e-4`, halving, 20 trials.
    pub fn armijo() -> Self {
        LineSearch::Armijo { c1: F::lit(1e-4), shrink: F::lit(0.5), max_trials: 20 }
    }

    /// The fixed step of `torch.optim.LBFGS` with learning rate `lr`.
    pub fn fixed(lr: F) -> Self {
        LineSearch::Fixed { lr }
    }

    /// Checks the constants; returns a reason when one is out of range.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let open01 = |v: F| v > F::zero() && v < F::one();
        match *self {
            LineSearch::StrongWolfe { c1, c2, max_trials } => {
                if !(open01(c1) && open01(c2) && c1 < c2) {
                    return Err(format!("need 0 < c1 < c2 < 1, got c1 = {c1}, c2 = {c2}"));
                }
                if max_trials == 0 {
                    return Err("max_trials must be at least 1".into());
                }
            }
            LineSearch::Armijo { c1, shrink, max_trials } => {
                if !(open01(c1) && open01(shrink)) {
                    return Err(format!("need c1 and shrink in (0, 1), got c1 = {c1}, shrink = {shrink}"));
                }
                if max_trials == 0 {
                    return Err("max_trials must be at least 1".into());
                }
            }
            LineSearch::Fixed { lr } => {
                if !(lr > F::zero() && lr.is_finite()) {
                    return Err(format!("lr must be positive and finite, got {lr}"));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn max_trials(&self) -> usize {
        match *self {
            LineSearch::StrongWolfe { max_trials, .. } | LineSearch::Armijo { max_trials, .. } => max_trials,
            LineSearch::Fixed { .. } => 20,
        }
    }
}

/// What the search wants after seeing `f(t)` and `f'(t) = gᵀd`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Next<F> {
    /// Evaluate at this step next.
    Try(F),
    /// The last evaluated step is accepted.
    Accept,
    /// No acceptable step can be found from here.
    Fail,
}

/// A line search in progress.
pub(crate) enum Search<F> {
    Wolfe(MoreThuente<F>),
    Armijo(Backtracking<F>),
    Fixed,
}

impl<F: Real> Search<F> {
    /// Starts a search from `f(0) = f0`, `f'(0) = dg0 < 0`, first trial `stp`, steps in `[0, stpmax]`.
    pub fn start(kind: &LineSearch<F>, f0: F, dg0: F, stp: F, stpmax: F) -> Self {
        match *kind {
            LineSearch::StrongWolfe { c1, c2, .. } => Search::Wolfe(MoreThuente::new(f0, dg0, stp, c1, c2, stpmax)),
            LineSearch::Armijo { c1, shrink, .. } => Search::Armijo(Backtracking::new(f0, dg0, c1, shrink)),
            LineSearch::Fixed { .. } => Search::Fixed,
        }
    }

    /// Digests the trial `(stp, f, dg)`. Non-finite values shrink the step.
    pub fn next(&mut self, stp: F, f: F, dg: F) -> Next<F> {
        let finite = f.is_finite() && dg.is_finite();
        match self {
            Search::Wolfe(mt) => mt.next(stp, f, dg),
            Search::Armijo(bt) => bt.next(stp, f, dg),
            Search::Fixed if finite => Next::Accept,
            Search::Fixed => Next::Try(stp * F::lit(0.5)),
        }
    }
}
