//! The floating-point types the solver works in.

use ndarray::{Array1, Array2, ScalarOperand};
use ndarray_linalg::{Inverse, Solve};
use num_traits::{Float, FromPrimitive};
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A floating-point element type the solver works in: `f32` or `f64`.
///
/// The only LAPACK work, the small dense solves of L-BFGS-B's compact
/// representation (at most 2m × 2m), goes through [`Real::solve`].
pub trait Real:
    Float + FromPrimitive + ScalarOperand + Sum + Send + Sync + Debug + Display + Default + 'static
{
    /// Solves `a · x = b` for a small dense square `a`; `None` when `a` is singular.
    fn solve(a: &Array2<Self>, b: &Array1<Self>) -> Option<Array1<Self>>;

    /// Inverts a small dense square matrix; `None` when it is singular.
    fn inverse(a: &Array2<Self>) -> Option<Array2<Self>>;

    /// Converts an `f64` constant into this type.
    fn lit(v: f64) -> Self {
        Self::from_f64(v).unwrap_or_else(Self::nan)
    }
}

macro_rules! impl_real {
    ($($t:ty),*) => {$(
        impl Real for $t {
            fn solve(a: &Array2<Self>, b: &Array1<Self>) -> Option<Array1<Self>> {
                let x = a.solve(b).ok()?;
                x.iter().all(|v| v.is_finite()).then_some(x)
            }
            fn inverse(a: &Array2<Self>) -> Option<Array2<Self>> {
                let x = a.inv().ok()?;
                x.iter().all(|v| v.is_finite()).then_some(x)
            }
        }
    )*};
}
impl_real!(f32, f64);
