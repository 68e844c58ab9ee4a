//! Jobs: what was asked, where each stands, and the small interface the server and the
//! worker use — submit, claim, report progress, cancel, finish. [`MemoryQueue`] keeps them
//! in this process; a store shared by several workers (SQLite, PostgreSQL) can implement
//! the same [`Queue`], since nothing above it holds a job, only ids and views.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// A job's id: unique to its server, and never one an earlier server gave (see
/// [`MemoryQueue`]), so that a page's old link finds no job rather than another's.
pub type JobId = u64;

/// What a job is: its settings, its inputs' names, and where its files are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's folder in the server's store of files: its uploads, then its results.
    pub files: String,
    /// The engine's settings.
    pub settings: nst_transfer::Settings,
    /// The content image's file name as uploaded (shown, never used as a path).
    pub content_name: String,
    /// The style images' file names as uploaded, and their blend weights.
    pub styles: Vec<(String, f32)>,
    /// The masks' file names as uploaded, and how they are used.
    #[serde(default)]
    pub masks: MaskSpec,
    /// What the check of the uploads said of them, a line each: the pictures whose colour
    /// profile was converted to sRGB, or not applied, and why.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// A job's masks: a style mask per style (or none), a keep mask, and how they are used.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MaskSpec {
    /// The style masks' file names as uploaded, one per style, or none.
    pub styles: Vec<String>,
    /// The keep mask's file name as uploaded.
    pub keep: Option<String>,
    /// How masks reach the deeper layers.
    pub mode: nst_transfer::MaskMode,
    /// Pixels over which kept regions blend into the result.
    pub feather: u32,
}

impl MaskSpec {
    /// The engine's masks, each image got by `image(stored name, shown name)`.
    pub fn read<E>(
        &self,
        image: impl Fn(&str, &str) -> Result<image::Rgb32FImage, E>,
    ) -> Result<nst_transfer::Masks, E> {
        let mask = |stored: &str, shown: &str| image(stored, shown).map(|i| nst_transfer::Masks::from_image(&i));
        Ok(nst_transfer::Masks {
            styles: self
                .styles
                .iter()
                .enumerate()
                .map(|(i, n)| mask(&format!("mask-{i}"), n))
                .collect::<Result<_, E>>()?,
            keep: self.keep.as_deref().map(|n| mask("keep", n)).transpose()?,
            mode: self.mode,
            feather: self.feather,
            ..Default::default()
        })
    }
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for the device.
    Queued,
    /// Running.
    Running,
    /// Finished with a result.
    Done,
    /// Stopped with an error.
    Failed,
    /// Cancelled (with a result if it had begun optimizing).
    Cancelled,
}

impl Status {
    /// Whether the job will change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

/// A running job's latest progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Evaluations done.
    pub evaluation: usize,
    /// The loss of the last evaluation.
    pub loss: f32,
    /// The stage: (number from 1, count, width, height).
    pub stage: Option<(usize, usize, usize, usize)>,
    /// Seconds since the job started running.
    pub elapsed_s: f64,
    /// Seconds to go, estimated from the rate so far.
    pub eta_s: Option<f64>,
}

/// A job as the page sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobView {
    /// Its id.
    pub id: JobId,
    /// Its number on this server, from 1: what the page shows.
    pub number: u64,
    /// Where it stands.
    pub status: Status,
    /// Its place in the line while queued: 1 is next.
    pub position: Option<usize>,
    /// When it was submitted, seconds since 1970.
    pub submitted: u64,
    /// What was asked.
    pub spec: JobSpec,
    /// The evaluation budget.
    pub evaluations: usize,
    /// The latest progress.
    pub progress: Progress,
    /// How many loss values there are (see [`Queue::losses`]).
    pub losses: usize,
    /// Bumped whenever a new preview image is stored.
    pub preview: u64,
    /// Whether a result image is stored.
    pub result: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// How a worker ends a job.
#[derive(Clone, Debug, PartialEq)]
pub enum Finish {
    /// A result is stored (also after a cancel that came once the optimization began).
    Result,
    /// No result: the error, in words.
    Failed(String),
    /// Cancelled before there was anything to keep.
    Cancelled,
}

/// The queue the server and the workers share.
pub trait Queue: Send + Sync {
    /// Adds a job at the end of the line; `None` once the queue is closed.
    fn submit(&self, spec: JobSpec) -> Option<JobId>;
    /// Takes the next queued job for a worker, marking it running (none once closed).
    fn claim(&self) -> Option<(JobId, JobSpec)>;
    /// Records a running job's progress, with the loss of each evaluation in `losses` and
    /// `preview` when a new preview image was stored.
    fn progress(&self, id: JobId, progress: Progress, losses: &[(usize, f32)], preview: bool);
    /// Asks a job to stop: a queued one is cancelled at once; a running one stops within its
    /// evaluation (the worker passes the cancel on) and keeps the image of the lowest loss
    /// evaluated. Returns whether the job was still queued or running.
    fn cancel(&self, id: JobId) -> bool;
    /// Whether a running job was asked to stop.
    fn cancel_requested(&self, id: JobId) -> bool;
    /// Closes the queue (the server is stopping): cancels every job and takes no more.
    fn close(&self);
    /// Ends a running job.
    fn finish(&self, id: JobId, finish: Finish);
    /// Forgets the finished jobs beyond the `keep` that ended last, counting those with a
    /// result and those without apart, returning their specs, whose files can go.
    fn forget(&self, keep: usize) -> Vec<JobSpec>;
    /// One job.
    fn job(&self, id: JobId) -> Option<JobView>;
    /// Every job, newest first.
    fn jobs(&self) -> Vec<JobView>;
    /// The loss values of a job from the `from`-th on: (evaluation, loss).
    fn losses(&self, id: JobId, from: usize) -> Vec<(usize, f32)>;
    /// A counter bumped on every change, to wait on.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// One job's record.
struct Record {
    view: JobView,
    cancel: bool,
    losses: Vec<(usize, f32)>,
    /// When it ended, in the order jobs end (0 while it has not).
    ended: u64,
}

#[derive(Default)]
struct State {
    /// The first job's id.
    first: JobId,
    next: JobId,
    /// Jobs ended so far.
    ends: u64,
    /// No more jobs are taken or handed out.
    closed: bool,
    /// All jobs, oldest first.
    records: Vec<Record>,
    /// Queued ids in order.
    line: VecDeque<JobId>,
}

impl State {
    fn record(&mut self, id: JobId) -> Option<&mut Record> {
        self.records.iter_mut().find(|r| r.view.id == id)
    }

    /// Marks `id`'s record as ended now.
    fn end(&mut self, id: JobId) {
        self.ends += 1;
        let ends = self.ends;
        if let Some(r) = self.record(id) {
            r.ended = ends;
            r.view.progress.eta_s = None;
        }
    }

    fn positions(&mut self) {
        let line: Vec<JobId> = self.line.iter().copied().collect();
        for r in &mut self.records {
            r.view.position = line.iter().position(|&id| id == r.view.id).map(|p| p + 1);
        }
    }
}

/// The queue in this process's memory.
///
/// Ids count up from the time the queue was made, in milliseconds since 1970: a server
/// started later gives ids above those of one stopped before (unless the earlier one took
/// more jobs than milliseconds passed), so an old `#job=` link names no job of a new server.
pub struct MemoryQueue {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        let first = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64);
        Self { state: Mutex::new(State { first, next: first, ..State::default() }), changes: watch::Sender::new(0) }
    }
}

impl MemoryQueue {
    fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.changes.send_modify(|v| *v += 1);
        out
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl Queue for MemoryQueue {
    fn submit(&self, spec: JobSpec) -> Option<JobId> {
        // The budget is the settings' (checked before a job is submitted).
        let evaluations = spec.settings.total_evaluations().unwrap_or(spec.settings.evaluations);
        self.change(|s| {
            if s.closed {
                return None;
            }
            let id = s.next;
            s.next += 1;
            let submitted = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let view = JobView {
                id,
                number: id - s.first + 1,
                status: Status::Queued,
                position: None,
                submitted,
                spec,
                evaluations,
                progress: Progress::default(),
                losses: 0,
                preview: 0,
                result: false,
                error: None,
            };
            s.records.push(Record { view, cancel: false, losses: Vec::new(), ended: 0 });
            s.line.push_back(id);
            s.positions();
            Some(id)
        })
    }

    fn claim(&self) -> Option<(JobId, JobSpec)> {
        if self.read(|s| s.closed || s.line.is_empty()) {
            return None;
        }
        self.change(|s| {
            let id = s.line.pop_front()?;
            s.positions();
            let r = s.record(id)?;
            r.view.status = Status::Running;
            Some((id, r.view.spec.clone()))
        })
    }

    fn progress(&self, id: JobId, progress: Progress, losses: &[(usize, f32)], preview: bool) {
        self.change(|s| {
            if let Some(r) = s.record(id) {
                let winding_down = r.cancel;
                r.view.progress = progress;
                if winding_down {
                    r.view.progress.eta_s = None;
                }
                r.losses.extend_from_slice(losses);
                r.view.losses = r.losses.len();
                r.view.preview += u64::from(preview);
            }
        });
    }

    fn cancel(&self, id: JobId) -> bool {
        self.change(|s| {
            let queued = s.line.iter().position(|&q| q == id);
            if let Some(at) = queued {
                s.line.remove(at);
                s.positions();
            }
            let Some(r) = s.record(id) else { return false };
            match r.view.status {
                Status::Queued => {
                    r.view.status = Status::Cancelled;
                    s.end(id);
                    true
                }
                Status::Running => {
                    // No time to go is shown while it winds down.
                    r.cancel = true;
                    r.view.progress.eta_s = None;
                    true
                }
                _ => false,
            }
        })
    }

    fn cancel_requested(&self, id: JobId) -> bool {
        self.read(|s| s.records.iter().any(|r| r.view.id == id && r.cancel))
    }

    fn close(&self) {
        let ids: Vec<JobId> = self.change(|s| {
            s.closed = true;
            s.records.iter().map(|r| r.view.id).collect()
        });
        for id in ids {
            self.cancel(id);
        }
    }

    fn finish(&self, id: JobId, finish: Finish) {
        self.change(|s| {
            if let Some(r) = s.record(id) {
                let cancelled = r.cancel;
                match finish {
                    Finish::Result => {
                        r.view.result = true;
                        r.view.status = if cancelled { Status::Cancelled } else { Status::Done };
                    }
                    Finish::Failed(e) => {
                        r.view.status = Status::Failed;
                        r.view.error = Some(e);
                    }
                    Finish::Cancelled => r.view.status = Status::Cancelled,
                }
                s.end(id);
            }
        });
    }

    fn forget(&self, keep: usize) -> Vec<JobSpec> {
        // Those with a result, and those without, each kept apart.
        let ended = |r: &Record, with_result: bool| r.view.status.is_final() && r.view.result == with_result;
        let over =
            |s: &State| [true, false].into_iter().any(|w| s.records.iter().filter(|r| ended(r, w)).count() > keep);
        if !self.read(|s| over(s)) {
            return Vec::new();
        }
        self.change(|s| {
            let mut gone = Vec::new();
            for with_result in [true, false] {
                // Counted again: another caller may have forgotten some since. The earliest to
                // end go first (not the earliest submitted: a long job ends after many
                // submitted later).
                let mut ends: Vec<u64> = s.records.iter().filter(|r| ended(r, with_result)).map(|r| r.ended).collect();
                let Some(over) = ends.len().checked_sub(keep).filter(|&over| over > 0) else { continue };
                ends.sort_unstable();
                let last_gone = ends[over - 1];
                s.records.retain(|r| {
                    let forget = ended(r, with_result) && r.ended <= last_gone;
                    if forget {
                        gone.push(r.view.spec.clone());
                    }
                    !forget
                });
            }
            gone
        })
    }

    fn job(&self, id: JobId) -> Option<JobView> {
        self.read(|s| s.records.iter().find(|r| r.view.id == id).map(|r| r.view.clone()))
    }

    fn jobs(&self) -> Vec<JobView> {
        self.read(|s| s.records.iter().rev().map(|r| r.view.clone()).collect())
    }

    fn losses(&self, id: JobId, from: usize) -> Vec<(usize, f32)> {
        self.read(|s| {
            s.records
                .iter()
                .find(|r| r.view.id == id)
                .map_or(Vec::new(), |r| r.losses.get(from..).unwrap_or(&[]).to_vec())
        })
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        let settings = nst_transfer::Settings::default();
        JobSpec {
            files: "job-x".into(),
            settings,
            content_name: "c.png".into(),
            styles: vec![],
            masks: Default::default(),
            notes: vec![],
        }
    }

    #[test]
    fn jobs_run_in_order_and_show_their_place() {
        let q = MemoryQueue::default();
        let submit = || q.submit(spec()).unwrap();
        let (a, b, c) = (submit(), submit(), submit());
        assert_eq!([a, b, c].map(|id| q.job(id).unwrap().position), [Some(1), Some(2), Some(3)]);
        assert_eq!([a, b, c].map(|id| q.job(id).unwrap().number), [1, 2, 3]);
        assert!(a > 1_700_000_000_000, "ids count from the time, in ms: {a}");
        assert_eq!(q.claim().map(|j| j.0), Some(a));
        assert_eq!(q.job(a).unwrap().status, Status::Running);
        assert_eq!([b, c].map(|id| q.job(id).unwrap().position), [Some(1), Some(2)]);
        // Cancelling a queued job takes it out of the line at once.
        assert!(q.cancel(b));
        assert_eq!(q.job(b).unwrap().status, Status::Cancelled);
        assert_eq!(q.job(c).unwrap().position, Some(1));
        q.progress(a, Progress { evaluation: 2, ..Progress::default() }, &[(1, 9.0), (2, 8.0)], true);
        assert_eq!(q.losses(a, 1), vec![(2, 8.0)]);
        assert_eq!(q.job(a).unwrap().preview, 1);
        q.finish(a, Finish::Result);
        assert_eq!(q.job(a).unwrap().status, Status::Done);
        assert_eq!(q.claim().map(|j| j.0), Some(c));
        assert!(q.claim().is_none());
        // A running job that is cancelled keeps its result if it has one.
        assert!(q.cancel(c) && q.cancel_requested(c));
        q.progress(c, Progress { evaluation: 1, eta_s: Some(9.0), ..Progress::default() }, &[], false);
        q.finish(c, Finish::Result);
        let view = q.job(c).unwrap();
        assert_eq!((view.status, view.result), (Status::Cancelled, true));
        assert!(!q.cancel(c), "a finished job cannot be cancelled");
        assert_eq!(q.jobs().iter().map(|j| j.id).collect::<Vec<_>>(), vec![c, b, a]);
        assert_eq!(q.job(a).unwrap().evaluations, 500, "the budget of the settings");
        assert_eq!(view.progress.eta_s, None, "a finished job has nothing to go");
        // Finished jobs beyond the newest `keep` are forgotten, oldest first, those with a
        // result (a, c) and those without (b) counted apart.
        assert!(q.forget(3).is_empty());
        let gone = q.forget(1);
        assert_eq!(gone.len(), 1);
        assert_eq!(q.jobs().iter().map(|j| j.id).collect::<Vec<_>>(), vec![c, b]);
        // Closed: the queued job is cancelled, and nothing more is taken or handed out.
        let d = q.submit(spec()).unwrap();
        q.close();
        assert_eq!(q.job(d).unwrap().status, Status::Cancelled);
        assert!(q.submit(spec()).is_none() && q.claim().is_none());
    }

    /// The jobs that ended first are forgotten first: a long job that ends after others
    /// submitted later is kept, and a job winding down after a cancel shows no time to go.
    #[test]
    fn the_earliest_ended_are_forgotten_first() {
        let q = MemoryQueue::default();
        let long = q.submit(spec()).unwrap();
        assert_eq!(q.claim().map(|j| j.0), Some(long));
        let later: Vec<JobId> = (0..3).map(|_| q.submit(spec()).unwrap()).collect();
        for &id in &later {
            assert!(q.cancel(id));
        }
        q.progress(long, Progress { eta_s: Some(5.0), ..Progress::default() }, &[], false);
        assert!(q.cancel(long));
        q.progress(long, Progress { eta_s: Some(4.0), ..Progress::default() }, &[], false);
        assert_eq!(q.job(long).unwrap().progress.eta_s, None);
        q.finish(long, Finish::Cancelled);
        assert_eq!(q.forget(2).len(), 2);
        assert_eq!(q.jobs().iter().map(|j| j.id).collect::<Vec<_>>(), vec![later[2], long]);
    }

    /// Jobs without a result (cancelled in line, failed) do not push out those with one:
    /// cancelling many jobs cannot take other people's results away.
    #[test]
    fn jobs_without_a_result_do_not_push_out_results() {
        let q = MemoryQueue::default();
        let done = q.submit(spec()).unwrap();
        assert_eq!(q.claim().map(|j| j.0), Some(done));
        q.finish(done, Finish::Result);
        let cancelled: Vec<JobId> = (0..5).map(|_| q.submit(spec()).unwrap()).collect();
        for &id in &cancelled {
            assert!(q.cancel(id));
        }
        assert_eq!(q.forget(2).len(), 3);
        assert_eq!(q.jobs().iter().map(|j| j.id).collect::<Vec<_>>(), vec![cancelled[4], cancelled[3], done]);
    }
}
