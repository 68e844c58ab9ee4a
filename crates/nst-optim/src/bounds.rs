//! Box constraints `l ≤ x ≤ u`, one pair for all variables or one per variable.

use crate::Real;
use ndarray::{Array1, ArrayView1, ArrayViewMut1, Zip};

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
        let count = if matches!(self, Bounds::PerVariable { .. }) { n } else { n.min(1) };
        for i in 0..count {
            let (l, u) = self.get(i);
            if l.is_nan() || u.is_nan() || l > u || l == F::infinity() || u == F::neg_infinity() {
                return Err(BoundsProblem::Empty { index: i });
            }
        }
        Ok(())
    }

    /// `true` when every variable has both bounds finite.
    pub(crate) fn boxed(&self, n: usize) -> bool {
        (0..n).all(|i| {
            let (l, u) = self.get(i);
            l.is_finite() && u.is_finite()
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

    /// `out ← P(x + t·d)`, in one pass (in parallel when long).
    pub(crate) fn point_along(&self, x: ArrayView1<F>, t: F, d: ArrayView1<F>, mut out: ArrayViewMut1<F>) {
        let constrained = self.is_constrained();
        let along = Zip::indexed(&mut out).and(&x).and(&d);
        let step = |i, o: &mut F, &x: &F, &d: &F| {
            *o = x + t * d;
            if constrained {
                let (l, u) = self.get(i);
                *o = o.max(l).min(u);
            }
        };
        if x.len() < crate::vector::PARALLEL_THRESHOLD { along.for_each(step) } else { along.par_for_each(step) }
    }

    /// `‖P(x − g) − x‖∞`, the infinity norm of the projected gradient (just `‖g‖∞` unconstrained).
    pub fn projected_gradient_norm(&self, x: ArrayView1<F>, g: ArrayView1<F>) -> F {
        if !self.is_constrained() {
            return crate::vector::norm_inf(g);
        }
        let pick = |m: F, v: F| if v.is_nan() || m.is_nan() { F::nan() } else { m.max(v) };
        Zip::indexed(&x).and(&g).par_fold(
            F::zero,
            |m, i, &x, &g| {
                let (l, u) = self.get(i);
                let pg = if g < F::zero() { (x - u).max(g) } else { (x - l).min(g) };
                pick(m, pg.abs())
            },
            pick,
        )
    }

    /// The largest step `t` with `x + t·d` inside the box (infinite when no bound blocks).
    pub(crate) fn max_step(&self, x: ArrayView1<F>, d: ArrayView1<F>) -> F {
        if !self.is_constrained() {
            return F::infinity();
        }
        Zip::indexed(&x).and(&d).par_fold(
            F::infinity,
            |t, i, &x, &d| {
                let (l, u) = self.get(i);
                let ti = if d < F::zero() {
                    ((l - x) / d).max(F::zero())
                } else if d > F::zero() {
                    ((u - x) / d).max(F::zero())
                } else {
                    F::infinity()
                };
                t.min(ti)
            },
            |a, b| a.min(b),
        )
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
    fn rejects_crossed_and_mismatched_bounds() {
        let b = Bounds::Uniform { lower: 1.0, upper: 0.0 };
        assert_eq!(b.validate(3), Err(BoundsProblem::Empty { index: 0 }));
        let b = Bounds::PerVariable { lower: array![0.0], upper: array![1.0, 2.0] };
        assert!(matches!(b.validate(2), Err(BoundsProblem::Length { .. })));
    }

    #[test]
    fn max_step_stops_at_first_bound() {
        let b = Bounds::Uniform { lower: -1.0, upper: 1.0 };
        let t = b.max_step(array![0.0, 0.5].view(), array![-2.0, 1.0].view());
        assert_eq!(t, 0.5);
    }
}
