//! Box constraints `l ≤ x ≤ u`, one pair for all variables or one per variable.

use crate::Real;
use crate::vector::{fold_lanes, fold_parts, fold_parts_mut, for_parts, largest, slice};
use ndarray::{Array1, ArrayView1, ArrayViewMut1, Zip};

/// Evaluates `$body` with `$get` the bounds of variable `i` as a function of `i`, the match on
/// the kind of bounds made once, outside the pass: a match per variable kept the compiler
/// from vectorizing L-BFGS-B's passes, which were bound by the core, not by memory.
macro_rules! per_kind {
    ($bounds:expr, $get:ident => $body:expr) => {
        match $bounds {
            Bounds::None => {
                let $get = |_: usize| (F::neg_infinity(), F::infinity());
                $body
            }
            Bounds::Uniform { lower, upper } => {
                let (l, u) = (*lower, *upper);
                let $get = move |_: usize| (l, u);
                $body
            }
            Bounds::PerVariable { lower, upper } => {
                let $get = |i: usize| (lower[i], upper[i]);
                $body
            }
        }
    };
}

pub(crate) use per_kind;

/// How the solver keeps the variables within their [`Bounds`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BoxMethod {
    /// L-BFGS-B: the generalized Cauchy point and subspace minimization; the default.
    #[default]
    Projected,
    /// A change of variables, `xᵢ = lᵢ + (uᵢ − lᵢ)·σ(zᵢ)`, and plain L-BFGS over z: fewer passes
    /// over the variables per iteration than L-BFGS-B (where those passes are what an
    /// iteration costs, as beside a network on a GPU). Every variable needs both bounds or
    /// neither; one whose bounds are equal stays there. A start on a bound is moved inside by
    /// [`EDGE`](crate::EDGE) of the range (σ never reaches a bound). The gradient tolerance applies to the
    /// gradient with respect to z, and an [`Observer`](crate::Observer) sees the point in x.
    Sigmoid,
    /// An active set: the plain L-BFGS direction of the gradient on the variables not held at
    /// a bound (on one, the gradient pointing out), projected into the box, the line search
    /// along that step. Fewer passes over the variables per iteration than L-BFGS-B (two
    /// more than plain L-BFGS), every point inside the box, a variable that reaches a bound
    /// exactly there. Its H is that of all the variables, applied to the free gradient,
    /// where L-BFGS-B's subspace step solves with the free variables' own block.
    ActiveSet,
}

/// Box constraints. Infinite entries leave that side open.
#[derive(Clone, Debug, Default)]
pub enum Bounds<F> {
    /// Unconstrained: plain L-BFGS.
    #[default]
    None,
    /// The same `lower ≤ xᵢ ≤ upper` for every variable (pixels in [0, 1]).
    Uniform {
        /// Lower bound of every variable.
        lower: F,
        /// Upper bound of every variable.
        upper: F,
    },
    /// `lower[i] ≤ xᵢ ≤ upper[i]`.
    PerVariable {
        /// Lower bounds, one per variable.
        lower: Array1<F>,
        /// Upper bounds, one per variable.
        upper: Array1<F>,
    },
}

impl<F: Real> Bounds<F> {
    /// `true` unless [`Bounds::None`].
    pub fn is_constrained(&self) -> bool {
        !matches!(self, Bounds::None)
    }

    /// The bounds of variable `i`.
    #[inline]
    pub fn get(&self, i: usize) -> (F, F) {
        match self {
            Bounds::None => (F::neg_infinity(), F::infinity()),
            Bounds::Uniform { lower, upper } => (*lower, *upper),
            Bounds::PerVariable { lower, upper } => (lower[i], upper[i]),
        }
    }

    /// Checks lengths and that `lower ≤ upper` with no NaN; returns the first bad index.
    pub(crate) fn validate(&self, n: usize) -> Result<(), BoundsProblem> {
        if let Bounds::PerVariable { lower, upper } = self
            && (lower.len() != n || upper.len() != n)
        {
            return Err(BoundsProblem::Length { expected: n, lower: lower.len(), upper: upper.len() });
        }
        for i in self.distinct(n) {
            let (l, u) = self.get(i);
            if l.is_nan() || u.is_nan() || l > u || l == F::infinity() || u == F::neg_infinity() {
                return Err(BoundsProblem::Empty { index: i });
            }
        }
        Ok(())
    }

    /// The variables whose bounds stand for a kind of their own: every one of the `n` when
    /// they are per variable, else the first (all share its bounds).
    fn distinct(&self, n: usize) -> std::ops::Range<usize> {
        0..if matches!(self, Bounds::PerVariable { .. }) { n } else { n.min(1) }
    }

    /// `true` when every variable has both bounds finite.
    pub(crate) fn boxed(&self, n: usize) -> bool {
        self.distinct(n).all(|i| {
            let (l, u) = self.get(i);
            l.is_finite() && u.is_finite()
        })
    }

    /// The first variable with exactly one bound, which a change of variables
    /// ([`crate::BoxMethod::Sigmoid`]) cannot serve.
    pub(crate) fn one_sided(&self, n: usize) -> Option<usize> {
        self.distinct(n).find(|&i| {
            let (l, u) = self.get(i);
            l.is_finite() != u.is_finite()
        })
    }

    /// `x ← P(x)`, the projection onto the box.
    pub fn project(&self, mut x: ArrayViewMut1<F>) {
        if !self.is_constrained() {
            return;
        }
        Zip::indexed(&mut x).par_for_each(|i, x| {
            let (l, u) = self.get(i);
            *x = x.max(l).min(u);
        });
    }

    /// `out ← P(x + t·d)`, in one pass (in parallel when long); `out` contiguous.
    pub(crate) fn point_along(&self, x: ArrayView1<F>, t: F, d: ArrayView1<F>, mut out: ArrayViewMut1<F>) {
        let (x, d) = (x.as_standard_layout(), d.as_standard_layout());
        let (x, d) = (slice(&x), slice(&d));
        let out = out.as_slice_mut().expect("the solver's x is contiguous");
        if !self.is_constrained() {
            return for_parts(out, |lo, out| {
                for ((o, &x), &d) in out.iter_mut().zip(&x[lo..]).zip(&d[lo..]) {
                    *o = x + t * d;
                }
            });
        }
        per_kind!(self, bound => for_parts(out, |lo, out| {
            for (j, ((o, &x), &d)) in out.iter_mut().zip(&x[lo..]).zip(&d[lo..]).enumerate() {
                let (l, u) = bound(lo + j);
                *o = (x + t * d).max(l).min(u);
            }
        }))
    }

    /// `‖P(x − g) − x‖∞`, the infinity norm of the projected gradient (just `‖g‖∞` unconstrained).
    pub fn projected_gradient_norm(&self, x: ArrayView1<F>, g: ArrayView1<F>) -> F {
        if !self.is_constrained() {
            return crate::vector::norm_inf(g);
        }
        let (x, g) = (x.as_standard_layout(), g.as_standard_layout());
        let (x, g) = (slice(&x), slice(&g));
        per_kind!(self, bound => largest((x, g), |i, x, g| {
            let (lower, upper) = bound(i);
            // Both sides, then a pick: a branch on g's sign, unpredictable, kept the loop scalar.
            let (up, down) = ((x - upper).max(g), (x - lower).min(g));
            if g < F::zero() { up.abs() } else { down.abs() }
        }))
    }

    /// The largest step `t` with `x + t·d` inside the box (infinite when no bound blocks); with
    /// `keep`, x is copied there in the same pass.
    pub(crate) fn max_step(&self, x: ArrayView1<F>, d: ArrayView1<F>, mut keep: Option<ArrayViewMut1<F>>) -> F {
        let (x, d) = (x.as_standard_layout(), d.as_standard_layout());
        let (x, d) = (slice(&x), slice(&d));
        let keep = keep.as_mut().map(|k| k.as_slice_mut().expect("the solver's vectors are contiguous"));
        if !self.is_constrained() {
            if let Some(keep) = keep {
                for_parts(keep, |lo, keep| keep.copy_from_slice(&x[lo..lo + keep.len()]));
            }
            return F::infinity();
        }
        let n = x.len();
        per_kind!(self, bound => {
            // The smallest, x copied to `keep`'s part if given.
            let part = |lo: usize, hi: usize, keep: Option<&mut [F]>| {
                let step = |i: usize, x: F, d: F| {
                    let (lower, upper) = bound(i);
                    // Picks, not branches (see `projected_gradient_norm`); 0 or NaN: no bound.
                    let to = if d < F::zero() { lower } else { upper };
                    let t = ((to - x) / d).max(F::zero());
                    if (d < F::zero()) | (d > F::zero()) { t } else { F::infinity() }
                };
                let t = fold_lanes((&x[lo..hi], &d[lo..hi]), lo, F::infinity(), |t, i, x, d| t.min(step(i, x, d)));
                if let Some(keep) = keep {
                    keep.copy_from_slice(&x[lo..hi]);
                }
                t.into_iter().fold(F::infinity(), F::min)
            };
            match keep {
                Some(keep) => fold_parts_mut(keep, |lo, keep| part(lo, lo + keep.len(), Some(keep)), F::min),
                None => fold_parts(n, |lo, hi| part(lo, hi, None), F::min),
            }
        })
    }
}

/// Why a set of bounds was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BoundsProblem {
    Length { expected: usize, lower: usize, upper: usize },
    Empty { index: usize },
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn projected_gradient_is_zero_at_active_bounds_pushing_out() {
        let b = Bounds::Uniform { lower: 0.0, upper: 1.0 };
        let x = array![0.0, 1.0, 0.5];
        // At x=0 a positive gradient pushes out of the box (descent is −g < 0): zero.
        assert_eq!(b.projected_gradient_norm(x.view(), array![3.0, -2.0, 0.0].view()), 0.0);
        // Pointing inward the step is capped by the box: P(0 + 3) − 0 = 1.
        assert_eq!(b.projected_gradient_norm(x.view(), array![-3.0, 0.0, 0.0].view()), 1.0);
    }

    #[test]
    fn one_sided_bounds_are_found() {
        let inf = f64::INFINITY;
        assert_eq!(Bounds::Uniform { lower: 0.0, upper: 1.0 }.one_sided(4), None);
        assert_eq!(Bounds::Uniform { lower: 0.0, upper: inf }.one_sided(4), Some(0));
        let per = Bounds::PerVariable { lower: array![0.0, -inf, 0.0], upper: array![1.0, inf, inf] };
        assert_eq!(per.one_sided(3), Some(2));
    }

    #[test]
    fn rejects_crossed_and_mismatched_bounds() {
        let b = Bounds::Uniform { lower: 1.0, upper: 0.0 };
        assert_eq!(b.validate(3), Err(BoundsProblem::Empty { index: 0 }));
        let b = Bounds::PerVariable { lower: array![0.0], upper: array![1.0, 2.0] };
        assert!(matches!(b.validate(2), Err(BoundsProblem::Length { .. })));
    }

    #[test]
    fn max_step_stops_at_first_bound() {
        let b = Bounds::Uniform { lower: -1.0, upper: 1.0 };
        let t = b.max_step(array![0.0, 0.5].view(), array![-2.0, 1.0].view(), None);
        assert_eq!(t, 0.5);
    }
}
