//! The floating-point types the solver works in.

use ndarray::{Array1, Array2, ScalarOperand};
use ndarray_linalg::{Inverse, Solve};
use num_traits::{Float, FromPrimitive};
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A floating-point element type the solver works in: `f32` or `f64`.
///
/// The only LAPACK work, the small dense solves and inverse of L-BFGS-B's compact
/// representation (at most 2m × 2m), goes through [`Real::solve`] and [`Real::inverse`].
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

    /// This value as `f64`, for the small dense algebra done in `f64` whatever the type.
    fn wide(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
}

unsafe extern "C" {
    /// OpenBLAS's thread count (ndarray-linalg's `openblas-system` backend).
    fn openblas_set_num_threads(threads: std::ffi::c_int);
}

/// Puts OpenBLAS on one thread, once: its only work here is a few solves of at most 2m × 2m
/// between rayon's parallel passes over n, where a pool of its own only contends with rayon's
/// (measured on 2 cores: L-BFGS-B's compact form 6.9 ms per iteration with OpenBLAS's default
/// threads, 0.1 ms with one).
fn one_lapack_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: sets the count OpenBLAS reads when it next splits work; called once, before the
    // solver's first LAPACK call (nothing else in nst calls OpenBLAS concurrently with it).
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}

macro_rules! impl_real {
    ($($t:ty),*) => {$(
        impl Real for $t {
            fn solve(a: &Array2<Self>, b: &Array1<Self>) -> Option<Array1<Self>> {
                one_lapack_thread();
                let x = a.solve(b).ok()?;
                x.iter().all(|v| v.is_finite()).then_some(x)
            }
            fn inverse(a: &Array2<Self>) -> Option<Array2<Self>> {
                one_lapack_thread();
                let x = a.inv().ok()?;
                x.iter().all(|v| v.is_finite()).then_some(x)
            }
        }
    )*};
}
impl_real!(f32, f64);
