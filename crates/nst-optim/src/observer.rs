//! Watching a run: an observer sees every accepted iteration and may stop it.

use ndarray::ArrayView1;

/// One accepted iteration, as an observer sees it.
#[derive(Clone, Copy, Debug)]
pub struct Iteration<'a, F> {
    /// Iterations accepted so far in this run (1 for the first).
    pub k: usize,
    /// Objective evaluations so far in this run.
    pub evaluations: usize,
    /// f at the new point.
    pub f: F,
    /// `‖g‖∞` at the new point (projected when bounded).
    pub gnorm: F,
    /// The accepted step length along the search direction.
    pub step: F,
    /// The new point.
    pub x: ArrayView1<'a, F>,
}

/// What the observer wants after an iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now and report [`crate::Termination::Stopped`].
    Stop,
}

/// Sees each accepted iteration.
pub trait Observer<F> {
    /// Called after every accepted iteration.
    fn observe(&mut self, iteration: &Iteration<'_, F>) -> Control;
}

impl<F, T: FnMut(&Iteration<'_, F>) -> Control> Observer<F> for T {
    fn observe(&mut self, iteration: &Iteration<'_, F>) -> Control {
        self(iteration)
    }
}

/// An observer that never stops the run.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl<F> Observer<F> for NoObserver {
    fn observe(&mut self, _: &Iteration<'_, F>) -> Control {
        Control::Continue
    }
}
