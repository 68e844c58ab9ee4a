//! A second copy of the correction pairs, kept where passes over them are fast (a GPU's
//! memory), that makes the history's passes over the pairs.
//!
//! At 2048² with 100 pairs the pairs are 10 GB: one pass over them costs a host with a few
//! memory channels about 100 ms, a GPU's memory a few. The history keeps its own copy all the
//! same (L-BFGS-B reads single variables' rows from it), so that when a mirror fails, the run
//! goes on, on the host, with the same pairs.

use ndarray::{ArrayView1, ArrayViewMut1};
use std::sync::{Mutex, PoisonError};

/// What a [`PairMirror`] failed with.
pub type MirrorError = Box<dyn std::error::Error + Send + Sync>;

/// A copy of the correction pairs in `capacity` numbered slots, each holding one pair's `s`
/// and `y`, that computes the history's products with them.
///
/// A new mirror's slots hold zeros. Rows of products and coefficients are in slot order, the
/// `y`s first: `[·y₀ … ·y_{c−1}, ·s₀ … ·s_{c−1}]`, `c` the capacity. A slot the history does
/// not use holds zeros or an older pair; its products are not read, and its coefficients are 0.
///
/// Attach one with [`crate::History::set_mirror`].
pub trait PairMirror<F>: Send {
    /// The number of slots.
    fn capacity(&self) -> usize;

    /// The number of pairs from which the mirror pays: below it, the history passes over its
    /// own copy, and copies the pairs over once it holds this many. 0 by default.
    fn pays_from(&self) -> usize {
        0
    }

    /// Stores the pair `(s, y)` in `slot`, and returns the products of `s`, then `y`, with
    /// every slot (two rows; those with `slot` itself are not read).
    fn store(&mut self, slot: usize, s: ArrayView1<F>, y: ArrayView1<F>) -> Result<Vec<F>, MirrorError>;

    /// The products of each of `vs` with every slot, one row per `v`: over the elements
    /// `keep` marks, or over all.
    fn dots(&mut self, vs: &[ArrayView1<F>], keep: Option<&[bool]>) -> Result<Vec<F>, MirrorError>;

    /// `out ← out + Σ aⱼ·yⱼ + bⱼ·sⱼ` over the slots, `coefficients` = `[a₀ … a_{c−1}, b₀ …
    /// b_{c−1}]`. On an error, `out` is as it was.
    fn add_combination(&mut self, coefficients: &[F], out: ArrayViewMut1<F>) -> Result<(), MirrorError>;
}

/// A history's mirror, if it has one, and why it has none any longer if it failed.
pub(crate) struct Mirror<F>(Mutex<State<F>>);

enum State<F> {
    None,
    /// Waiting for the history to hold [`PairMirror::pays_from`] pairs; it holds none of them yet.
    Waiting(Box<dyn PairMirror<F>>),
    Attached(Box<dyn PairMirror<F>>),
    Failed(String),
}

impl<F> Mirror<F> {
    pub fn none() -> Self {
        Mirror(Mutex::new(State::None))
    }

    pub fn waiting(mirror: Box<dyn PairMirror<F>>) -> Self {
        Mirror(Mutex::new(State::Waiting(mirror)))
    }

    /// Attaches a waiting mirror once the history holds `pairs` pairs, at least as many as it
    /// pays from, after `copy` copied them there; detaches it if that fails.
    pub fn wake(&self, pairs: usize, copy: impl FnOnce(&mut dyn PairMirror<F>) -> Result<(), MirrorError>) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(&*state, State::Waiting(m) if pairs >= m.pays_from()) {
            return;
        }
        let State::Waiting(mut mirror) = std::mem::replace(&mut *state, State::None) else { unreachable!() };
        *state = match copy(mirror.as_mut()) {
            Ok(()) => State::Attached(mirror),
            Err(e) => State::Failed(e.to_string()),
        };
    }

    /// Runs `f` on the mirror, if one is attached: `None` when none is, or when `f` fails,
    /// which detaches it (the caller then computes on the host).
    pub fn with<R>(&self, f: impl FnOnce(&mut dyn PairMirror<F>) -> Result<R, MirrorError>) -> Option<R> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let State::Attached(mirror) = &mut *state else { return None };
        match f(mirror.as_mut()) {
            Ok(r) => Some(r),
            Err(e) => {
                *state = State::Failed(e.to_string());
                None
            }
        }
    }

    /// The mirror's capacity, when one is attached or waiting.
    pub fn capacity(&self) -> Option<usize> {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Waiting(m) | State::Attached(m) => Some(m.capacity()),
            _ => None,
        }
    }

    /// Detaches the mirror, saying why.
    pub fn fail(&self, reason: String) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let State::Waiting(_) | State::Attached(_) = *state {
            *state = State::Failed(reason);
        }
    }

    /// Why the mirror was detached, if it failed.
    pub fn failure(&self) -> Option<String> {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Failed(reason) => Some(reason.clone()),
            _ => None,
        }
    }
}

/// A clone has no mirror: it computes on the host (a mirror's memory is not copied).
impl<F> Clone for Mirror<F> {
    fn clone(&self) -> Self {
        Mirror::none()
    }
}

impl<F> std::fmt::Debug for Mirror<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            State::None => f.write_str("no mirror"),
            State::Waiting(m) => write!(f, "a mirror of {} pairs, from {} on", m.capacity(), m.pays_from()),
            State::Attached(m) => write!(f, "a mirror of {} pairs", m.capacity()),
            State::Failed(reason) => write!(f, "a mirror that failed: {reason}"),
        }
    }
}
