//! Bounds by a change of variables: `xᵢ = lᵢ + (uᵢ − lᵢ)·σ(zᵢ)`, σ the logistic function, and
//! plain L-BFGS over z ([`BoxMethod::Sigmoid`](crate::BoxMethod::Sigmoid)).
//!
//! Every point the objective sees is inside the box, and no iteration pays for L-BFGS-B's
//! generalized Cauchy point and subspace step. What it costs: two passes per evaluation (x
//! from z, and the gradient's chain rule), and a variable near a bound moves slowly there (σ′
//! is small), so the optimum is approached a little later than by L-BFGS-B.

use crate::bounds::{Bounds, per_kind};
use crate::observer::{Control, Iteration, Observer};
use crate::vector::for_parts;
use crate::{Objective, Real};
use ndarray::{Array1, ArrayView1, ArrayViewMut1};
use std::cell::RefCell;

/// How far inside its bounds, as a share of their range, a start on a bound is moved: 2⁻⁹,
/// half an 8-bit step of a pixel in [0, 1].
pub const EDGE: f64 = 1.0 / 512.0;

fn sigmoid<F: Real>(z: F) -> F {
    F::one() / (F::one() + (-z).exp())
}

/// `σ′(z)`, from `e^(−|z|)` so that it stays positive where `σ(z)` rounds to 0 or 1: a
/// variable driven to its bound can come back.
fn slope<F: Real>(z: F) -> F {
    let e = (-z.abs()).exp();
    e / ((F::one() + e) * (F::one() + e))
}

/// x of z, within `(l, u)`.
fn to_x<F: Real>((l, u): (F, F), z: F) -> F {
    if !l.is_finite() { z } else { (l + (u - l) * sigmoid(z)).max(l).min(u) }
}

/// z of x, a start on a bound (or beyond) moved [`EDGE`] inside.
fn to_z<F: Real>((l, u): (F, F), x: F) -> F {
    if !l.is_finite() {
        return x;
    }
    if l == u {
        return F::zero();
    }
    let edge = F::lit(EDGE);
    let p = ((x - l) / (u - l)).max(edge).min(F::one() - edge);
    (p / (F::one() - p)).ln()
}

/// `∂x/∂z`.
fn derivative<F: Real>((l, u): (F, F), z: F) -> F {
    if !l.is_finite() { F::one() } else { (u - l) * slope(z) }
}

/// `vᵢ ← f(bounds of i, i, vᵢ)` for every variable, in parallel when long.
fn each<F: Real>(bounds: &Bounds<F>, mut v: ArrayViewMut1<F>, f: impl Fn((F, F), usize, F) -> F + Sync) {
    let v = v.as_slice_mut().expect("the solver's vectors are contiguous");
    per_kind!(bounds, get => for_parts(v, |lo, part| {
        for (i, v) in (lo..).zip(part.iter_mut()) {
            *v = f(get(i), i, *v);
        }
    }));
}

/// x ← z, in place, where the run starts.
pub(crate) fn into_z<F: Real>(bounds: &Bounds<F>, x: ArrayViewMut1<F>) {
    each(bounds, x, |b, _, x| to_z(b, x));
}

/// z ← x, in place, where the run ends.
pub(crate) fn into_x<F: Real>(bounds: &Bounds<F>, z: ArrayViewMut1<F>) {
    each(bounds, z, |b, _, z| to_x(b, z));
}

/// The objective in z: x from z (kept for the observer), then the objective's gradient times
/// `∂x/∂z`.
pub(crate) struct Changed<'a, F, O> {
    pub objective: O,
    pub bounds: &'a Bounds<F>,
    /// The point last evaluated: after an accepted iteration, the new point.
    pub x: &'a RefCell<Array1<F>>,
}

impl<F: Real, O: Objective<F>> Objective<F> for Changed<'_, F, O> {
    type Error = O::Error;
    fn value_and_gradient(&mut self, z: ArrayView1<F>, mut g: ArrayViewMut1<F>) -> Result<F, O::Error> {
        let mut x = self.x.borrow_mut();
        let z = z.as_slice().expect("the solver's z is contiguous");
        each(self.bounds, x.view_mut(), |b, i, _| to_x(b, z[i]));
        let f = self.objective.value_and_gradient(x.view(), g.view_mut())?;
        each(self.bounds, g, |b, i, g| g * derivative(b, z[i]));
        Ok(f)
    }
}

/// The observer, shown each new point in x.
pub(crate) struct Seen<'a, F, B: ?Sized> {
    pub observer: &'a mut B,
    pub x: &'a RefCell<Array1<F>>,
}

impl<F: Real, B: Observer<F> + ?Sized> Observer<F> for Seen<'_, F, B> {
    fn observe(&mut self, it: &Iteration<'_, F>) -> Control {
        let x = self.x.borrow();
        self.observer.observe(&Iteration { x: x.view(), ..*it })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_maps_the_box_and_back() {
        let b = (0.0f64, 1.0);
        for x in [0.1, 0.5, 0.9] {
            assert!((to_x(b, to_z(b, x)) - x).abs() < 1e-12);
        }
        // A start on a bound is moved EDGE inside; σ′ stays positive far out.
        assert!((to_x(b, to_z(b, 0.0)) - EDGE).abs() < 1e-12);
        assert!((to_x(b, to_z(b, 1.0)) - (1.0 - EDGE)).abs() < 1e-12);
        assert!(slope(40.0f32) > 0.0 && to_x((0.0f32, 1.0), 40.0) == 1.0);
        // Equal bounds hold the variable; open ones leave it as it is.
        assert_eq!((to_x((0.3, 0.3), 5.0), derivative((0.3, 0.3), 5.0)), (0.3, 0.0));
        let open = (f64::NEG_INFINITY, f64::INFINITY);
        assert_eq!((to_z(open, 7.0), to_x(open, 7.0), derivative(open, 7.0)), (7.0, 7.0, 1.0));
        // ∂x/∂z against a central difference, on [−2, 3].
        let (b, z, h) = ((-2.0f64, 3.0), 0.7, 1e-6);
        let numeric = (to_x(b, z + h) - to_x(b, z - h)) / (2.0 * h);
        assert!((derivative(b, z) - numeric).abs() < 1e-8);
    }
}
