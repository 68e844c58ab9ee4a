//! L-BFGS and L-BFGS-B over [`ndarray`], for problems with millions of variables.
//!
//! - One combined call returns f and ∇f ([`Objective`]): a neural network
//!   computes both in one pass.
//! - Generic over `f32` and `f64`; `x` is the caller's [`ndarray::ArrayViewMut1`], so an image
//!   tensor of shape (1, 3, H, W) is optimized in place through a flat view.
//! - Line searches: strong Wolfe (Moré–Thuente), Armijo backtracking, and the
//!   fixed step of `torch.optim.LBFGS` ([`LineSearch`]); a known lower bound of f (0 for a
//!   sum of squares) scales the first step ([`Lbfgs::with_lower_bound`]).
//! - Box constraints the L-BFGS-B way ([`Bounds`]): generalized Cauchy point
//!   and subspace minimization, so pixels stay in [0, 1] without clamping; or, with fewer
//!   passes per iteration, by an active set and the projected L-BFGS step
//!   ([`BoxMethod::ActiveSet`]) or a change of variables and plain L-BFGS ([`BoxMethod::Sigmoid`]).
//! - Stops on `‖g‖∞`, relative f change, iterations or an evaluation budget;
//!   an [`Observer`] sees every iteration and may stop the run; a [`State`]
//!   keeps the history to continue.
//! - Non-finite values inside a line search shorten the step instead of aborting.
//! - Vector work runs in parallel with rayon above [`PARALLEL_THRESHOLD`] elements; the passes
//!   over the correction pairs can run where a copy of them is faster to read, a GPU's memory
//!   ([`PairMirror`]), the run going on with its own copy should that fail.
//!
//! ```
//! use ndarray::{array, ArrayView1, ArrayViewMut1};
//! use nst_optim::{Bounds, Lbfgs, Objective, Termination};
//!
//! /// Rosenbrock: f = 100 (y − x²)² + (1 − x)².
//! struct Rosenbrock;
//! impl Objective<f64> for Rosenbrock {
//!     type Error = std::convert::Infallible;
//!     fn value_and_gradient(&mut self, v: ArrayView1<f64>, mut g: ArrayViewMut1<f64>) -> Result<f64, Self::Error> {
//!         let (x, y) = (v[0], v[1]);
//!         g[0] = -400.0 * x * (y - x * x) - 2.0 * (1.0 - x);
//!         g[1] = 200.0 * (y - x * x);
//!         Ok(100.0 * (y - x * x).powi(2) + (1.0 - x).powi(2))
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut x = array![-1.2, 1.0];
//! let report = Lbfgs::new().with_gradient_tolerance(1e-8)?.minimize(Rosenbrock, x.view_mut())?;
//! assert_eq!(report.termination, Termination::GradientTolerance);
//! assert!((x[0] - 1.0).abs() < 1e-6);
//!
//! // The same with x kept in [−2, 0.5]: the solution moves to the box's edge.
//! let mut x = array![-1.2, 1.0];
//! let boxed = Lbfgs::new().with_bounds(Bounds::Uniform { lower: -2.0, upper: 0.5 });
//! boxed.minimize(Rosenbrock, x.view_mut())?;
//! assert_eq!(x[0], 0.5);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
// `!(a < b)` is deliberate throughout: it is true for NaN, which must take the safe branch.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod active;
mod bounds;
mod cauchy;
mod change;
mod error;
mod history;
mod linesearch;
mod mirror;
mod objective;
mod observer;
mod real;
mod solver;
mod subspace;
mod termination;
mod vector;

pub use bounds::{Bounds, BoxMethod};
pub use change::EDGE;
pub use error::{Error, SettingError};
pub use history::{History, Update};
pub use linesearch::LineSearch;
pub use mirror::{MirrorError, PairMirror};
pub use objective::Objective;
pub use observer::{Control, Iteration, NoObserver, Observer};
pub use real::Real;
pub use solver::{Lbfgs, State};
pub use termination::{Report, Termination};
pub use vector::PARALLEL_THRESHOLD;
