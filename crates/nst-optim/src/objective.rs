//! The problem the solver minimizes.

use ndarray::{ArrayView1, ArrayViewMut1};

/// A function `f: Rⁿ → R` that returns its value and gradient from one call.
///
/// One call, not two: for a neural network the gradient comes from the same
/// pass that gives the value, so asking for them separately would double the work.
///
/// ```
/// use ndarray::{ArrayView1, ArrayViewMut1};
/// use nst_optim::Objective;
///
/// /// f(x) = Σ (x_i − 1)²
/// struct Bowl;
/// impl Objective<f64> for Bowl {
///     type Error = std::convert::Infallible;
///     fn value_and_gradient(&mut self, x: ArrayView1<f64>, mut g: ArrayViewMut1<f64>) -> Result<f64, Self::Error> {
///         g.zip_mut_with(&x, |g, &x| *g = 2.0 * (x - 1.0));
///         Ok(x.iter().map(|x| (x - 1.0).powi(2)).sum())
///     }
/// }
/// ```
pub trait Objective<F> {
    /// The error the objective can fail with; the solver hands it back unchanged.
    type Error;

    /// Returns `f(x)` and writes `∇f(x)` into `g` (same length as `x`).
    ///
    /// A non-finite value or gradient is allowed: inside a line search the
    /// solver then shortens the step.
    fn value_and_gradient(&mut self, x: ArrayView1<F>, g: ArrayViewMut1<F>) -> Result<F, Self::Error>;
}

impl<F, O: Objective<F> + ?Sized> Objective<F> for &mut O {
    type Error = O::Error;
    fn value_and_gradient(&mut self, x: ArrayView1<F>, g: ArrayViewMut1<F>) -> Result<F, Self::Error> {
        (**self).value_and_gradient(x, g)
    }
}
