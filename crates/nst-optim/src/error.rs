//! Errors of the solver.

/// A setting that was refused by a `with_*` method.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {name}: {reason}")]
pub struct SettingError {
    /// The setting's name.
    pub name: &'static str,
    /// Why it was refused.
    pub reason: String,
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// The objective failed; its error is handed back unchanged.
    #[error("objective failed: {0}")]
    Objective(#[source] E),
    /// The problem has no variables.
    #[error("the problem has no variables")]
    Empty,
    /// Per-variable bounds do not match the number of variables.
    #[error("bounds have {lower} lower and {upper} upper entries for {expected} variables")]
    BoundsLength {
        /// Number of variables.
        expected: usize,
        /// Length of the lower bounds.
        lower: usize,
        /// Length of the upper bounds.
        upper: usize,
    },
    /// A variable's bounds are crossed or NaN.
    #[error("bounds of variable {index} leave no feasible value")]
    EmptyBounds {
        /// The variable's index.
        index: usize,
    },
    /// A variable has one bound only, which [`crate::BoxMethod::Sigmoid`] cannot keep.
    #[error("variable {index} has one bound only: a change of variables needs both or neither")]
    OneSidedBounds {
        /// The variable's index.
        index: usize,
    },
    /// The starting point gives a non-finite value or gradient.
    #[error("the objective is not finite at the starting point")]
    NonFiniteStart,
}
