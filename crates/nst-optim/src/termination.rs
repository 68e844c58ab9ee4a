//! Why a run stopped, and what it reached.

/// Why the solver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Termination {
    /// `‖g‖∞` (projected onto the box when bounded) fell to the tolerance.
    GradientTolerance,
    /// The relative decrease of f over one iteration fell to the tolerance.
    FunctionTolerance,
    /// The iteration limit was reached.
    MaxIterations,
    /// The evaluation budget was spent.
    MaxEvaluations,
    /// An observer asked to stop.
    Stopped,
    /// No acceptable step was found, even along steepest descent.
    LineSearchFailed,
    /// Steepest descent is not a descent direction (g = 0 in every free variable).
    NoDescent,
}

impl Termination {
    /// `true` for the stops that mean a (local) solution within tolerance.
    pub fn converged(self) -> bool {
        matches!(self, Termination::GradientTolerance | Termination::FunctionTolerance)
    }
}

impl std::fmt::Display for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Termination::GradientTolerance => "gradient below tolerance",
            Termination::FunctionTolerance => "relative decrease below tolerance",
            Termination::MaxIterations => "iteration limit reached",
            Termination::MaxEvaluations => "evaluation budget spent",
            Termination::Stopped => "stopped by observer",
            Termination::LineSearchFailed => "line search failed",
            Termination::NoDescent => "no descent direction",
        })
    }
}

/// The outcome of a run; the solution itself is in the caller's `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report<F> {
    /// Why the run stopped.
    pub termination: Termination,
    /// Accepted iterations (steps) in this run.
    pub iterations: usize,
    /// Objective evaluations in this run.
    pub evaluations: usize,
    /// f at the returned x.
    pub f: F,
    /// `‖g‖∞` at the returned x, projected onto the box when bounded.
    pub gnorm: F,
}
