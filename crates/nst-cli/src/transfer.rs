//! One style transfer: images → tensors → targets → objective → optimizer → image.

use crate::args::LineSearchArg;
use crate::images;
use crate::progress::{Progress, Verbosity};
use crate::settings::{Init, Settings};
use anyhow::{Context, Result};
use ndarray::{Array4, ArrayView1, ArrayViewMut1};
use nst_features::{Device, FeatureNet, Runtime, StyleLoss, provision};
use nst_optim::{Bounds, Control, Iteration, Lbfgs, LineSearch, Objective, State};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Set by the first Ctrl-C: stop after the current iteration and save.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// One evaluation in the report.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub evaluation: usize,
    pub loss: f32,
    pub terms: std::collections::BTreeMap<String, f32>,
    pub elapsed_s: f64,
}

/// The `--report` JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    pub nst: &'static str,
    pub settings: Settings,
    pub device: &'static str,
    pub output_size: [usize; 2],
    pub style_sizes: Vec<[usize; 2]>,
    pub timings: Timings,
    pub termination: String,
    pub interrupted: bool,
    pub initial_loss: f32,
    pub final_loss: f32,
    pub evaluations: Vec<Evaluation>,
}

/// Where the time went, in seconds.
#[derive(Debug, Serialize, Default)]
pub struct Timings {
    pub setup_s: f64,
    pub targets_s: f64,
    pub optimize_s: f64,
    pub total_s: f64,
    pub ms_per_evaluation: f64,
}

/// The loss, recording every evaluation and showing progress.
struct Recorded<'a> {
    loss: StyleLoss,
    records: &'a RefCell<Vec<Evaluation>>,
    progress: &'a Progress,
    start: Instant,
}

impl Objective<f32> for Recorded<'_> {
    type Error = nst_features::Error;
    fn value_and_gradient(&mut self, x: ArrayView1<f32>, g: ArrayViewMut1<f32>) -> Result<f32, Self::Error> {
        let f = self.loss.value_and_gradient(x, g)?;
        let terms: Vec<(String, f32)> = self.loss.terms().map(|(n, v)| (n.to_string(), v)).collect();
        let mut records = self.records.borrow_mut();
        let k = records.len() + 1;
        let elapsed = self.start.elapsed().as_secs_f64();
        self.progress.evaluation(k, f, &terms, k as f64 / elapsed.max(1e-9));
        records.push(Evaluation { evaluation: k, loss: f, terms: terms.into_iter().collect(), elapsed_s: elapsed });
        Ok(f)
    }
}

fn tensor_size(t: &Array4<f32>) -> [usize; 2] {
    [t.shape()[3], t.shape()[2]]
}

/// `out.png` → `out_0100.png`.
fn numbered(path: &Path, k: usize) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("nst");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("png");
    path.with_file_name(format!("{stem}_{k:04}.{ext}"))
}

/// Runs the transfer described by `s`, writes the output (and report), returns the report.
pub fn run(s: &Settings, device: Device, verbosity: Verbosity) -> Result<Report> {
    let t0 = Instant::now();
    let progress = Progress::new(verbosity, s.evaluations);
    let log = |m: &str| progress.info(m);

    // Images → tensors.
    let content_img = images::load(&s.content)?;
    let (w, h) = images::fit(content_img.width(), content_img.height(), s.size);
    let content = images::to_tensor(&content_img, w, h);
    let style_side = ((f64::from(s.size) * s.style_scale).round() as u32).max(1);
    let styles = s
        .styles
        .iter()
        .map(|p| {
            let img = images::load(p)?;
            let (sw, sh) = images::fit(img.width(), img.height(), style_side);
            Ok(images::to_tensor(&img, sw, sh))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut x = match &s.init {
        Init::Content => content.clone(),
        Init::Random => {
            let mut rng = StdRng::seed_from_u64(s.seed);
            Array4::from_shape_simple_fn(content.raw_dim(), || rng.random::<f32>())
        }
        Init::Image(p) => images::to_tensor(&images::load(p)?, w, h),
    };
    let objective = s.loss.resolve()?;
    objective.check_size(h as usize, w as usize).context("output")?;
    for (p, t) in s.styles.iter().zip(&styles) {
        objective.check_size(t.shape()[2], t.shape()[3]).with_context(|| format!("style {}", p.display()))?;
    }

    // The network.
    let weights = provision::weights(&provision::cache_dir(), &log)?;
    let rt = Runtime::new(device, &log)?;
    let setup_s = t0.elapsed().as_secs_f64();

    // Targets.
    let t1 = Instant::now();
    let blended: Vec<_> = styles.iter().zip(&s.blend).map(|(t, &b)| (t.view(), b)).collect();
    let targets = FeatureNet::new(&rt, &objective, &weights)?.targets(content.view(), &blended)?;
    let loss = StyleLoss::new(&rt, &objective, &weights, targets, h as usize, w as usize)?;
    let targets_s = t1.elapsed().as_secs_f64();
    log(&format!("{}×{} output, {} evaluations on {}", w, h, s.evaluations, if rt.is_cuda() { "CUDA" } else { "CPU" }));

    // Optimizer.
    let line_search = match s.line_search {
        LineSearchArg::Wolfe => LineSearch::strong_wolfe(),
        LineSearchArg::Armijo => LineSearch::armijo(),
        LineSearchArg::Fixed => LineSearch::fixed(s.lr as f32),
    };
    let mut solver = Lbfgs::<f32>::new()
        .with_history(s.history)?
        .with_line_search(line_search)?
        .with_max_evaluations(s.evaluations)?
        .with_gradient_tolerance(0.0)?;
    if s.bounds {
        solver = solver.with_bounds(Bounds::Uniform { lower: 0.0, upper: 1.0 });
    }

    let t2 = Instant::now();
    let records: RefCell<Vec<Evaluation>> = RefCell::new(Vec::with_capacity(s.evaluations + 1));
    let mut best = x.clone();
    let best_f = Cell::new(f32::INFINITY);
    let mut last_saved = 0;
    let mut save_error = None;
    let mut observer = |it: &Iteration<'_, f32>| {
        if best_f.get().is_infinite() {
            best_f.set(records.borrow().first().map_or(f32::INFINITY, |r| r.loss));
        }
        if it.f <= best_f.get() {
            best_f.set(it.f);
            best.as_slice_mut().expect("standard layout").copy_from_slice(it.x.as_slice().expect("contiguous"));
        }
        if let Some(n) = s.save_every
            && it.evaluations / n > last_saved / n
        {
            last_saved = it.evaluations;
            let path = numbered(&s.output, it.evaluations);
            if let Err(e) = images::save_atomic(&images::from_tensor(best.view()), &path) {
                save_error = Some(e);
                return Control::Stop;
            }
        }
        if INTERRUPTED.load(Ordering::SeqCst) { Control::Stop } else { Control::Continue }
    };
    let objective_fn = Recorded { loss, records: &records, progress: &progress, start: t2 };
    let flat = ArrayViewMut1::from(x.as_slice_mut().expect("standard layout"));
    let result = solver.run(objective_fn, flat, &mut State::new(), &mut observer);
    progress.finish();
    if let Some(e) = save_error {
        return Err(e);
    }
    let report = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    let optimize_s = t2.elapsed().as_secs_f64();
    // The best point seen: the last one unless a fixed step went uphill.
    let final_image = if report.f <= best_f.get() { &x } else { &best };
    images::save_atomic(&images::from_tensor(final_image.view()), &s.output)?;

    let records = records.into_inner();
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    let final_loss = report.f.min(best_f.get());
    log(&format!(
        "{} after {} evaluations: loss {:.4e} → {final_loss:.4e}; wrote {}",
        if interrupted { "interrupted".to_string() } else { report.termination.to_string() },
        report.evaluations,
        records.first().map_or(f32::NAN, |r| r.loss),
        s.output.display()
    ));
    Ok(Report {
        nst: env!("CARGO_PKG_VERSION"),
        settings: s.clone(),
        device: if rt.is_cuda() { "cuda" } else { "cpu" },
        output_size: tensor_size(&content),
        style_sizes: styles.iter().map(tensor_size).collect(),
        timings: Timings {
            setup_s,
            targets_s,
            optimize_s,
            total_s: t0.elapsed().as_secs_f64(),
            ms_per_evaluation: optimize_s * 1e3 / records.len().max(1) as f64,
        },
        termination: report.termination.to_string(),
        interrupted,
        initial_loss: records.first().map_or(f32::NAN, |r| r.loss),
        final_loss,
        evaluations: records,
    })
}

/// Writes the report as pretty JSON, atomically.
pub fn write_report(report: &Report, path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = images::new_file_in(dir)?;
    serde_json::to_writer_pretty(&mut tmp, report)?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
