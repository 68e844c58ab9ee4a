//! The optimizer side of a run: the solver the settings ask for, the record of every
//! evaluation, the best image so far, and what the observer hears.

use crate::Error;
use crate::observe::{Cancel, Observer, Snapshot};
use crate::report::Evaluation;
use crate::settings::Settings;
use ndarray::{Array4, ArrayView1, ArrayViewMut1};
use nst_features::{Deconvolution, DevicePairs, Loss, Runtime};
use nst_optim::{Bounds, Control, Iteration, Lbfgs, Objective, State};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Instant;

/// An objective whose evaluations a run records: the loss of an image, or a feature
/// deconvolution of Deep Image Analogy.
pub(crate) trait Recordable: Objective<f32, Error = nst_features::Error> {
    /// The terms of the last evaluation, by name.
    fn terms(&self) -> BTreeMap<String, f32>;
}

impl Recordable for Loss {
    fn terms(&self) -> BTreeMap<String, f32> {
        Loss::terms(self).map(|(n, v)| (n.to_string(), v)).collect()
    }
}

impl Recordable for Deconvolution {
    fn terms(&self) -> BTreeMap<String, f32> {
        BTreeMap::new()
    }
}

/// What the observer is shown of the point being optimized.
#[derive(Clone, Copy)]
pub(crate) enum Shown<'c> {
    /// The image, with the content whose colours are kept, if they are.
    Image { colors_of: Option<&'c Array4<f32>> },
    /// Nothing: the point is not an image (features being deconvolved).
    Nothing,
}

/// The loss, recording every evaluation, keeping the point of the lowest, and telling the
/// observer.
struct Recorded<'r, 'o, L> {
    loss: &'r mut L,
    records: &'r RefCell<Vec<Evaluation>>,
    /// The point of the lowest loss evaluated (a line search's trial too), and its loss.
    best: &'r RefCell<Array4<f32>>,
    best_f: &'r Cell<f32>,
    /// Whether a non-finite loss was already warned of.
    warned: &'r Cell<bool>,
    observer: &'r RefCell<&'o mut dyn Observer>,
    cancel: &'r Cancel,
    start: Instant,
}

/// Why an evaluation did not happen.
enum Halt {
    Features(nst_features::Error),
    /// The run was asked to stop: the solver's iteration ends there, not after its line
    /// search, and an evaluation under way ends unfinished (one of a large image takes
    /// minutes).
    Cancelled,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Halt::Features(e) => e.fmt(f),
            Halt::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl<L: Recordable> Objective<f32> for Recorded<'_, '_, L> {
    type Error = Halt;
    fn value_and_gradient(&mut self, x: ArrayView1<f32>, g: ArrayViewMut1<f32>) -> Result<f32, Self::Error> {
        if self.cancel.is_cancelled() {
            return Err(Halt::Cancelled);
        }
        // A cancel during the evaluation interrupts it (the run's switch is armed on it).
        let f = self.loss.value_and_gradient(x, g).map_err(|e| match e {
            nst_features::Error::Interrupted => Halt::Cancelled,
            e => Halt::Features(e),
        })?;
        if f < self.best_f.get() {
            self.best_f.set(f);
            let mut best = self.best.borrow_mut();
            ArrayViewMut1::from(best.as_slice_mut().expect("an owned array in standard layout")).assign(&x);
        }
        let mut records = self.records.borrow_mut();
        let k = records.len() + 1;
        let mut observer = self.observer.borrow_mut();
        if !f.is_finite() && !records.is_empty() && !self.warned.replace(true) {
            observer.note(&format!(
                "warning: evaluation {k} gave a loss of {f}; the optimizer steps back (if it keeps happening, lower the weights)"
            ));
        }
        let terms = self.loss.terms();
        let evaluation = Evaluation { evaluation: k, loss: f, terms, elapsed_s: self.start.elapsed().as_secs_f64() };
        observer.evaluation(&evaluation);
        records.push(evaluation);
        Ok(f)
    }
}

/// A run's optimization: one or more stages (coarse to fine, or swap rounds), each
/// minimizing one loss from the image the previous one left.
pub(crate) struct Optimization<'a> {
    solver: Lbfgs<f32>,
    observer: RefCell<&'a mut dyn Observer>,
    cancel: &'a Cancel,
    pub records: RefCell<Vec<Evaluation>>,
    warned: Cell<bool>,
    pub start: Instant,
    /// Why the last stage ended.
    pub termination: String,
    /// Loss at the start and at the end of the last stage.
    pub stage_losses: (f32, f32),
}

/// What one stage did.
pub(crate) struct StageRun {
    pub evaluations: usize,
    pub iterations: usize,
    /// Seconds from the stage's start to the end of its last evaluation: its time, but for
    /// an evaluation a stop cut short, which is not counted.
    pub evaluating_s: f64,
}

impl<'a> Optimization<'a> {
    pub fn new(s: &Settings, observer: &'a mut dyn Observer, cancel: &'a Cancel) -> Result<Self, Error> {
        Ok(Self {
            solver: s.solver()?,
            observer: RefCell::new(observer),
            cancel,
            // Grown as evaluations come: a budget may be far larger than what a run spends.
            records: RefCell::new(Vec::with_capacity(s.evaluations.saturating_add(1).min(1 << 12))),
            warned: Cell::new(false),
            start: Instant::now(),
            termination: String::new(),
            stage_losses: (f32::NAN, f32::NAN),
        })
    }

    /// The solver's bounds (the settings').
    pub fn bounds(&self) -> &Bounds<f32> {
        self.solver.bounds()
    }

    /// Runs the next stages within `bounds` (per-pixel, to hold kept pixels).
    pub fn set_bounds(&mut self, bounds: Bounds<f32>) {
        self.solver = self.solver.clone().with_bounds(bounds);
    }

    /// Whether the run was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Tells the observer something.
    pub fn note(&self, message: &str) {
        self.observer.borrow_mut().note(message);
    }

    /// The observer, for events outside an optimization.
    pub fn observer(&self) -> std::cell::RefMut<'_, &'a mut dyn Observer> {
        self.observer.borrow_mut()
    }

    /// Minimizes `loss` from `x` with `budget` evaluations and `history` pairs, leaving the
    /// best point seen in `x`; `shown` says what the observer sees of it. With `pairs_on`, the
    /// pairs are copied to that runtime's device, whose memory makes the passes over them
    /// ([`DevicePairs`]); should that fail, the run goes on with the host's copy, and says so.
    pub fn stage<L: Recordable>(
        &mut self,
        loss: &mut L,
        x: &mut Array4<f32>,
        (budget, history): (usize, usize),
        shown: Shown<'_>,
        pairs_on: Option<&Runtime>,
    ) -> Result<StageRun, Error> {
        let first = self.records.borrow().len();
        let began_s = self.start.elapsed().as_secs_f64();
        // A run of `budget` evaluations stores at most that many pairs.
        let history = history.min(budget).max(1);
        let solver = self.solver.clone().with_history(history)?.with_max_evaluations(budget)?;
        let mut state = State::new();
        if let Some(runtime) = pairs_on {
            let attached = DevicePairs::new(runtime, x.len(), history)
                .map_err(|e| e.to_string())
                .and_then(|pairs| state.history.set_mirror(Box::new(pairs), history).map_err(|e| e.to_string()));
            if let Err(e) = attached {
                self.note(&format!("warning: the optimizer's pairs stay in host memory ({e})"));
            }
        }
        let best = RefCell::new(x.clone());
        let best_f = Cell::new(f32::INFINITY);
        let (records, observer, cancel) = (&self.records, &self.observer, self.cancel);
        let done = Cell::new(0);
        let mut on_iteration = |it: &Iteration<'_, f32>| {
            done.set(it.k);
            if let Shown::Image { colors_of } = shown {
                let best = best.borrow();
                let snapshot = Snapshot { evaluations: records.borrow().len(), image: &best, colors_of };
                observer.borrow_mut().image(&snapshot);
            }
            if cancel.is_cancelled() { Control::Stop } else { Control::Continue }
        };
        let (warned, start) = (&self.warned, self.start);
        let objective = Recorded { loss, records, best: &best, best_f: &best_f, warned, observer, cancel, start };
        let flat = ArrayViewMut1::from(x.as_slice_mut().expect("standard layout"));
        let result = solver.run(objective, flat, &mut state, &mut on_iteration);
        if let Some(e) = state.history.mirror_failure() {
            self.note(&format!(
                "warning: the optimizer's pairs on the GPU failed ({e}); it went on with those in host memory"
            ));
        }
        let start_f = records.borrow().get(first).map_or(f32::NAN, |r| r.loss);
        let (f, termination, iterations) = match result {
            Ok(report) => (report.f, report.termination.to_string(), report.iterations),
            // Stopped inside an iteration: the point of the lowest loss evaluated (a line
            // search's trial too), or the start.
            Err(nst_optim::Error::Objective(Halt::Cancelled)) => {
                x.assign(&best.borrow());
                if records.borrow().len() == first {
                    // Stopped in the stage's first evaluation: the losses stay the last stage's.
                    self.termination = "cancelled".into();
                    return Ok(StageRun { evaluations: 0, iterations: 0, evaluating_s: 0.0 });
                }
                let f = if best_f.get().is_finite() { best_f.get() } else { start_f };
                (f, "cancelled".to_string(), done.get())
            }
            Err(nst_optim::Error::NonFiniteStart) => return Err(Error::NonFiniteStart { loss: start_f }),
            Err(nst_optim::Error::Objective(Halt::Features(e))) => return Err(Error::Features(e)),
            Err(e) => return Err(Error::Optimizer(e.to_string())),
        };
        // The point of the lowest loss evaluated: the last one, unless a fixed step went
        // uphill or a line search's rejected trial went lower.
        if f > best_f.get() {
            x.assign(&best.borrow());
        }
        self.termination = termination;
        self.stage_losses = (start_f, f.min(best_f.get()));
        let records = records.borrow();
        let evaluating_s = records.last().map_or(0.0, |r| r.elapsed_s - began_s).max(0.0);
        Ok(StageRun { evaluations: records.len() - first, iterations, evaluating_s })
    }
}
