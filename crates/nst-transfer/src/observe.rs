//! Watching and stopping a run: the [`Observer`] a front end attaches, the [`Snapshot`] of
//! the best image so far, and the [`Cancel`] token.

use crate::plan::Plan;
use crate::report::Evaluation;
use crate::{color, images};
use image::RgbImage;
use ndarray::Array4;
use nst_features::Interrupt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// What a run tells as it goes; every method does nothing unless overridden. Calls come
/// from the thread that runs the transfer.
pub trait Observer {
    /// A line about the run: the output size and schedule, each stage's plan and time, a warning.
    fn note(&mut self, message: &str) {
        let _ = message;
    }

    /// A stage begins: its targets (for swap, the swapped features) are computed next, then
    /// it is optimized.
    fn stage(&mut self, stage: &Stage) {
        let _ = stage;
    }

    /// An evaluation of the loss and its gradient is done.
    fn evaluation(&mut self, evaluation: &Evaluation) {
        let _ = evaluation;
    }

    /// An iteration is done: the best image so far, to render when wanted.
    fn image(&mut self, snapshot: &Snapshot<'_>) {
        let _ = snapshot;
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// A stage as it begins.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// Its number, from 1.
    pub index: usize,
    /// How many stages the run has.
    pub count: usize,
    /// The image's (width, height) at this stage.
    pub size: [usize; 2],
    /// Its evaluation budget.
    pub evaluations: usize,
    /// Whole or tiled, and the history.
    pub plan: Plan,
}

/// The best image so far, rendered only on demand.
pub struct Snapshot<'a> {
    pub(crate) evaluations: usize,
    pub(crate) image: &'a Array4<f32>,
    pub(crate) colors_of: Option<&'a Array4<f32>>,
}

impl Snapshot<'_> {
    /// Evaluations spent so far, over all stages.
    pub fn evaluations(&self) -> usize {
        self.evaluations
    }

    /// The image's (width, height) at the current stage.
    pub fn size(&self) -> [usize; 2] {
        [self.image.shape()[3], self.image.shape()[2]]
    }

    /// The image as optimized, (1, 3, H, W), RGB in [0, 1] (without colour options).
    pub fn tensor(&self) -> &Array4<f32> {
        self.image
    }

    /// The image as it would be saved now (with the content's chroma under original colours).
    pub fn render(&self) -> RgbImage {
        render(self.image, self.colors_of)
    }
}

/// An image tensor as saved: with the content's chroma when `colors_of` is given (and of the same size).
pub(crate) fn render(image: &Array4<f32>, colors_of: Option<&Array4<f32>>) -> RgbImage {
    match colors_of.filter(|c| c.shape() == image.shape()) {
        Some(content) => images::from_tensor(color::original_colors(image.view(), content.view()).view()),
        None => images::from_tensor(image.view()),
    }
}

/// Stops a run from another thread (a signal handler, a web request): the run ends at
/// once, dropping the evaluation under way (its graph stops between two operators, or a
/// tiled one at its tile; PatchMatch and a swap's matching at their pass under way), and
/// gives the image of the lowest loss evaluated so far.
#[derive(Debug, Default)]
pub struct Cancel {
    asked: AtomicBool,
    /// The switches of the runs under way, tripped by [`Cancel::cancel`].
    armed: Mutex<Vec<Interrupt>>,
}

/// A run's switch armed on a [`Cancel`] until this drops, which disarms it (the switch is
/// the run's own, made for it: [`nst_features::Runtime::with_new_interrupt`]).
pub(crate) struct Armed<'c> {
    cancel: &'c Cancel,
    interrupt: Interrupt,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        let mut armed = self.cancel.armed.lock().unwrap_or_else(PoisonError::into_inner);
        armed.retain(|i| *i != self.interrupt);
    }
}

impl Cancel {
    /// A token no one has tripped.
    pub const fn new() -> Self {
        Self { asked: AtomicBool::new(false), armed: Mutex::new(Vec::new()) }
    }

    /// Asks the run to stop.
    pub fn cancel(&self) {
        self.asked.store(true, Ordering::SeqCst);
        for interrupt in self.armed.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            interrupt.interrupt();
        }
    }

    /// Trips `interrupt` when the run is cancelled, at once if it already is, until the
    /// guard drops.
    pub(crate) fn arm(&self, interrupt: Interrupt) -> Armed<'_> {
        self.armed.lock().unwrap_or_else(PoisonError::into_inner).push(interrupt.clone());
        // After the push: a cancel before it is seen here, one after it trips the switch.
        if self.is_cancelled() {
            interrupt.interrupt();
        }
        Armed { cancel: self, interrupt }
    }

    /// Whether a stop was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }
}
