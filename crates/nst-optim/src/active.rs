//! Bounds by an active set ([`BoxMethod::ActiveSet`](crate::BoxMethod::ActiveSet)): the
//! L-BFGS direction of the gradient on the variables not held at a bound, projected into the
//! box (Kim, Sra & Dhillon's projected quasi-Newton step, *SIAM J. Sci. Comput.* 32(6), 2010,
//! with the line search along the projected step, as L-BFGS-B's).
//!
//! A variable is held when it is on a bound and its gradient points out of the box. The held
//! variables' gradient is taken as 0 and the plain L-BFGS direction `δ = −H·g_free` formed
//! (H of every variable: the free block of its product, not the inverse of the free
//! variables' own Hessian block that L-BFGS-B's subspace step solves with); the direction is
//! then `P(x + δ) − x` on the free variables whose gradient is not 0, and 0 on the others, so
//! every point on `[x, x + d]` is inside the box and a variable that reaches a bound stops
//! there. Should the projection turn the direction uphill, the solver resets the history, as
//! for the other methods (not seen on photographs nor on the tests' saturated strokes). What
//! an iteration adds to plain L-BFGS: two passes over the variables (the free gradient, the
//! projected step), against L-BFGS-B's Cauchy point, free set and subspace step.

use crate::Real;
use crate::bounds::{Bounds, per_kind};
use crate::history::History;
use crate::vector::{dot, for_parts, slice};
use ndarray::{ArrayView1, ArrayViewMut1};

/// `d` for [`BoxMethod::ActiveSet`](crate::BoxMethod::ActiveSet) at `x` with gradient `g`,
/// `free` the gradient on the free variables (written); returns `gᵀd`.
pub(crate) fn active_direction<F: Real>(
    (x, g): (ArrayView1<F>, ArrayView1<F>),
    bounds: &Bounds<F>,
    history: &mut History<F>,
    mut free: ArrayViewMut1<F>,
    mut d: ArrayViewMut1<F>,
) -> F {
    let (xs, gs) = (x.as_standard_layout(), g.as_standard_layout());
    let (xs, gs) = (slice(&xs), slice(&gs));
    let out = free.as_slice_mut().expect("the solver's vectors are contiguous");
    per_kind!(bounds, get => for_parts(out, |lo, out| {
        for (i, (o, (&x, &g))) in (lo..).zip(out.iter_mut().zip(xs[lo..].iter().zip(&gs[lo..]))) {
            let (l, u) = get(i);
            let held = (x <= l) & (g > F::zero()) | (x >= u) & (g < F::zero());
            *o = if held { F::zero() } else { g };
        }
    }));
    history.direction(free.view(), d.view_mut());
    let frees = free.as_slice().expect("contiguous");
    let out = d.as_slice_mut().expect("the solver's vectors are contiguous");
    per_kind!(bounds, get => for_parts(out, |lo, out| {
        for (i, (d, (&x, &f))) in (lo..).zip(out.iter_mut().zip(xs[lo..].iter().zip(&frees[lo..]))) {
            let (l, u) = get(i);
            // A free variable whose gradient is 0 has no step either. The clamp lets a NaN
            // through (`max` and `min` would take the bound): the solver then resets.
            let t = x + *d;
            *d = if f == F::zero() { F::zero() } else if t < l { l - x } else if t > u { u - x } else { t - x };
        }
    }));
    dot(g, d.view())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, array};

    #[test]
    fn held_variables_stay_and_free_ones_stop_at_their_bound() {
        let b = Bounds::Uniform { lower: 0.0, upper: 1.0 };
        // Held at 0 (g > 0) and at 1 (g < 0); free at 0 (g < 0); free inside, whose step
        // −g would leave the box; free inside with a small step; free with g = 0.
        let x = array![0.0, 1.0, 0.0, 0.9, 0.5, 0.5];
        let g = array![2.0, -2.0, -0.25, -0.5, 0.25, 0.0];
        let (mut free, mut d) = (Array1::zeros(6), Array1::zeros(6));
        let gd = active_direction((x.view(), g.view()), &b, &mut History::new(3), free.view_mut(), d.view_mut());
        assert_eq!(free, array![0.0, 0.0, -0.25, -0.5, 0.25, 0.0]);
        assert_eq!(d, array![0.0, 0.0, 0.25, 1.0 - 0.9, -0.25, 0.0]);
        assert_eq!(gd, g.dot(&d));
        assert!(gd < 0.0);
        // A NaN goes through to gᵀd (a clamp by max and min would have put it on a bound).
        let g = array![f64::NAN, 0.25];
        let gd = active_direction(
            (x.slice(ndarray::s![..2]), g.view()),
            &b,
            &mut History::new(3),
            free.slice_mut(ndarray::s![..2]),
            d.slice_mut(ndarray::s![..2]),
        );
        assert!(gd.is_nan() && d[0].is_nan());
    }
}
