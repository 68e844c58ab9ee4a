//! Backtracking line search with the Armijo sufficient-decrease test.

use super::Next;
use crate::Real;

/// Shrinks the step by `shrink` until `f(t) ≤ f(0) + c1·t·f'(0)`.
pub(crate) struct Backtracking<F> {
    f0: F,
    dg0: F,
    c1: F,
    shrink: F,
}

impl<F: Real> Backtracking<F> {
    pub fn new(f0: F, dg0: F, c1: F, shrink: F) -> Self {
        Self { f0, dg0, c1, shrink }
    }

    pub fn next(&mut self, stp: F, f: F, _dg: F) -> Next<F> {
        if f.is_finite() && f <= self.f0 + self.c1 * stp * self.dg0 {
            Next::Accept
        } else if stp * self.shrink > F::zero() {
            Next::Try(stp * self.shrink)
        } else {
            Next::Fail
        }
    }
}
