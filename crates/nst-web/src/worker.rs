//! The worker: one thread per device, taking jobs from the queue one at a time and running
//! them on the engine, reporting progress and previews as they go.

use crate::queue::{Finish, JobId, JobSpec, Progress, Queue};
use crate::store::Store;
use nst_transfer::images::{self, Pixels};
use nst_transfer::{Cancel, Engine, Error, Evaluation, Observer, Request, Snapshot, Stage, Style};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the worker looks whether the running job was asked to stop.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// How often the page hears of a running job at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How often a new preview image is made.
const PREVIEW_EVERY: Duration = Duration::from_secs(2);

/// The longest side of a preview image.
const PREVIEW_SIDE: u32 = 768;

/// The longest side of a job's thumbnail.
const THUMBNAIL: u32 = 160;

/// What the worker needs.
pub struct Worker {
    pub engine: Arc<Engine>,
    pub queue: Arc<dyn Queue>,
    pub store: Arc<Store>,
    /// The largest image decoded, in pixels.
    pub max_pixels: u64,
    /// The most finished jobs kept ([`crate::Limits::kept`]).
    pub kept: usize,
}

impl Worker {
    /// Runs jobs until `stop` is set, forgetting the finished ones beyond those kept as each
    /// ends (a job cancelled in line ends at the cancel, which forgets for itself).
    pub fn run(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            match self.queue.claim() {
                Some((id, spec)) => {
                    self.job(id, &spec);
                    forget_finished(self.queue.as_ref(), &self.store, self.kept);
                    // The process keeps freed memory for reuse (`prepare_process`): a server
                    // waiting for its next job hands back what the last one used.
                    nst_transfer::release_free_memory();
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The request of a claimed job, from its stored uploads.
    fn request(&self, spec: &JobSpec) -> Result<Request, String> {
        let image = |name: &str, shown: &str, kind| -> Result<_, String> {
            let bytes = self.store.get(&spec.files, name).ok_or_else(|| format!("{shown}: the upload is gone"))?;
            images::decode(&bytes, shown, self.max_pixels, kind).map_err(|e| e.to_string())
        };
        let content = image("content", &spec.content_name, Pixels::Picture)?;
        let styles = spec
            .styles
            .iter()
            .enumerate()
            .map(|(i, (name, weight))| {
                Ok(Style { image: image(&format!("style-{i}"), name, Pixels::Picture)?, weight: *weight })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let masks = spec.masks.read(|stored, shown| image(stored, shown, Pixels::Data))?;
        let init = nst_transfer::Init::default_for(&spec.settings, styles.len(), !masks.styles.is_empty());
        Ok(Request { content, styles, init, settings: spec.settings.clone(), masks })
    }

    fn job(&self, id: JobId, spec: &JobSpec) {
        let request = match self.request(spec) {
            Ok(r) => r,
            Err(e) => return self.queue.finish(id, Finish::Failed(e)),
        };
        let cancel = Cancel::new();
        let total = spec.settings.total_evaluations().unwrap_or(spec.settings.evaluations);
        let mut watch = Watch::new(self, id, &spec.files, total);
        let ran = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            // Passes a cancel asked of the queue on to the engine's token as it comes: the
            // evaluation under way stops at once (one of a large image takes minutes).
            scope.spawn(|| {
                while !ran.load(Ordering::SeqCst) {
                    if self.queue.cancel_requested(id) {
                        cancel.cancel();
                        break;
                    }
                    std::thread::sleep(CANCEL_POLL);
                }
            });
            let result = self.engine.run(&request, &mut watch, &cancel);
            ran.store(true, Ordering::SeqCst);
            result
        });
        let finish = match result {
            Ok(outcome) => match self.keep(id, spec, &outcome) {
                Ok(()) => Finish::Result,
                Err(e) => Finish::Failed(format!("cannot store the result: {e}")),
            },
            Err(Error::Cancelled) => Finish::Cancelled,
            Err(e) => Finish::Failed(e.to_string()),
        };
        watch.flush(false);
        self.queue.finish(id, finish);
    }

    /// Stores the result as PNG and JPEG, its thumbnail, and the report.
    fn keep(&self, id: JobId, spec: &JobSpec, outcome: &nst_transfer::Outcome) -> Result<(), String> {
        let encode = |img: &image::RgbImage, format| -> Result<Vec<u8>, String> {
            let mut out = std::io::Cursor::new(Vec::new());
            images::encode(img, format, &mut out).map_err(|e| e.to_string())?;
            Ok(out.into_inner())
        };
        // Never larger than the result.
        let (width, height) = outcome.image.dimensions();
        let (w, h) = images::fit(width, height, THUMBNAIL.min(width.max(height)));
        let thumb = image::imageops::thumbnail(&outcome.image, w, h);
        let report = serde_json::json!({ "job": id, "settings": spec.settings, "content": spec.content_name,
            "styles": spec.styles, "report": outcome.report });
        let put = |name: &str, bytes: &[u8]| self.store.put(&spec.files, name, bytes).map_err(|e| e.to_string());
        put("result.png", &encode(&outcome.image, image::ImageFormat::Png)?)?;
        put("result.jpg", &encode(&outcome.image, image::ImageFormat::Jpeg)?)?;
        put("thumb.png", &encode(&thumb, image::ImageFormat::Png)?)?;
        put("report.json", &serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?)
    }
}

/// Forgets the finished jobs beyond the `kept` that ended last, and removes their files.
pub fn forget_finished(queue: &dyn Queue, store: &Store, kept: usize) {
    for gone in queue.forget(kept) {
        // A folder that cannot go now goes with the server's.
        let _ = store.remove(&gone.files);
    }
}

/// A running job's observer: progress and losses to the queue, previews to the store.
struct Watch<'a> {
    worker: &'a Worker,
    id: JobId,
    files: &'a str,
    total: usize,
    start: Instant,
    /// When the first evaluation ended: the rate is measured from there, past the targets.
    first: Option<Instant>,
    progress: Progress,
    losses: Vec<(usize, f32)>,
    sent: Option<Instant>,
    previewed: Option<Instant>,
}

impl<'a> Watch<'a> {
    fn new(worker: &'a Worker, id: JobId, files: &'a str, total: usize) -> Self {
        Self {
            worker,
            id,
            files,
            total,
            start: Instant::now(),
            first: None,
            progress: Progress::default(),
            losses: Vec::new(),
            sent: None,
            previewed: None,
        }
    }

    /// Sends what was gathered since the last send (and that a new preview is stored).
    fn flush(&mut self, preview: bool) {
        self.worker.queue.progress(self.id, self.progress.clone(), &self.losses, preview);
        self.losses.clear();
        self.sent = Some(Instant::now());
    }
}

impl Observer for Watch<'_> {
    fn stage(&mut self, stage: &Stage) {
        self.progress.stage = Some((stage.index, stage.count, stage.size[0], stage.size[1]));
        self.flush(false);
    }

    fn evaluation(&mut self, e: &Evaluation) {
        let first = *self.first.get_or_insert_with(Instant::now);
        self.progress.evaluation = e.evaluation;
        self.progress.loss = e.loss;
        self.progress.elapsed_s = self.start.elapsed().as_secs_f64();
        let rate = first.elapsed().as_secs_f64() / (e.evaluation.saturating_sub(1)).max(1) as f64;
        self.progress.eta_s = (e.evaluation > 1).then(|| rate * self.total.saturating_sub(e.evaluation) as f64);
        self.losses.push((e.evaluation, e.loss));
        if self.sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            self.flush(false);
        }
    }

    fn image(&mut self, snapshot: &Snapshot<'_>) {
        if self.previewed.is_some_and(|t| t.elapsed() < PREVIEW_EVERY) {
            return;
        }
        self.previewed = Some(Instant::now());
        // At the page's size, not the output's: this runs between the optimizer's iterations.
        let image = snapshot.render();
        let (w, h) = images::fit(image.width(), image.height(), PREVIEW_SIDE.min(image.width().max(image.height())));
        let small = image::imageops::thumbnail(&image, w, h);
        let mut png = std::io::Cursor::new(Vec::new());
        if images::encode(&small, image::ImageFormat::Png, &mut png).is_ok()
            && self.worker.store.put(self.files, "preview.png", png.get_ref()).is_ok()
        {
            self.flush(true);
        }
    }
}
