//! One style transfer: images → tensors → targets → objective → optimizer → image.

use crate::args::LineSearchArg;
use crate::color;
use crate::files::{self, Existing};
use crate::images;
use crate::memory::{self, Plan};
use crate::progress::Progress;
use crate::settings::{Init, SWAP_STYLE_MAX, Settings};
use anyhow::{Context, Result, anyhow};
use ndarray::{Array4, ArrayView1, ArrayViewMut1};
use nst_features::{Cache, Device, FeatureNet, Objective as Loss, PatchBank, Runtime, StyleLoss, Targets, VggWeights};
use nst_optim::{Bounds, Control, Iteration, Lbfgs, LineSearch, Objective, State};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Serialize, Serializer};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Stops a run from outside (a signal handler): after [`Stop::request`] the run ends
/// after its current iteration, keeping the best image so far.
#[derive(Debug, Default)]
pub struct Stop {
    requested: AtomicBool,
    optimizing: AtomicBool,
}

impl Stop {
    /// A token no one has tripped.
    pub const fn new() -> Self {
        Self { requested: AtomicBool::new(false), optimizing: AtomicBool::new(false) }
    }

    /// Asks the run to stop after its current iteration.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Whether the optimization has begun, so that stopping keeps an image.
    pub fn optimizing(&self) -> bool {
        self.optimizing.load(Ordering::SeqCst)
    }
}

/// A loss in the report: a number, or `"inf"`, `"-inf"`, `"nan"` (JSON has no such numbers).
fn loss_value<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() { s.serialize_f32(*v) } else { s.serialize_str(&v.to_string().to_lowercase()) }
}

fn loss_terms<S: Serializer>(terms: &BTreeMap<String, f32>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Loss(#[serde(serialize_with = "loss_value")] f32);
    s.collect_map(terms.iter().map(|(k, &v)| (k, Loss(v))))
}

/// One evaluation in the report.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub evaluation: usize,
    #[serde(serialize_with = "loss_value")]
    pub loss: f32,
    #[serde(serialize_with = "loss_terms")]
    pub terms: BTreeMap<String, f32>,
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
    pub stages: Vec<StageReport>,
    pub termination: String,
    pub interrupted: bool,
    #[serde(serialize_with = "loss_value")]
    pub initial_loss: f32,
    #[serde(serialize_with = "loss_value")]
    pub final_loss: f32,
    pub evaluations: Vec<Evaluation>,
}

/// What a run gives: the image to save and its report.
pub struct Outcome {
    pub image: image::RgbImage,
    pub report: Report,
}

/// One stage of the run: its size, how it ran, and its time.
#[derive(Debug, Serialize)]
pub struct StageReport {
    pub size: [usize; 2],
    pub evaluations: usize,
    #[serde(flatten)]
    pub plan: Plan,
    pub targets_s: f64,
    pub optimize_s: f64,
    pub ms_per_evaluation: f64,
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
    loss: &'a mut StyleLoss,
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
        if !f.is_finite() && !records.is_empty() && records.iter().all(|r| r.loss.is_finite()) {
            self.progress.info(&format!(
                "warning: evaluation {k} gave a loss of {f}; the optimizer steps back (if it keeps happening, lower the weights)"
            ));
        }
        self.progress.evaluation(k, f, &terms, k as f64 / elapsed.max(1e-9));
        records.push(Evaluation { evaluation: k, loss: f, terms: terms.into_iter().collect(), elapsed_s: elapsed });
        Ok(f)
    }
}

fn tensor_size(t: &Array4<f32>) -> [usize; 2] {
    [t.shape()[3], t.shape()[2]]
}

/// The optimizer side of a run: the solver, the evaluation log, intermediate saves.
/// A run is one or more stages (several for repeated style swaps), each optimizing
/// one loss from the image the previous one left.
struct Optimization<'a> {
    s: &'a Settings,
    /// The content image, when its colours are kept in what is saved.
    colors_of: Option<&'a Array4<f32>>,
    solver: Lbfgs<f32>,
    progress: &'a Progress,
    stop: &'a Stop,
    records: RefCell<Vec<Evaluation>>,
    start: Instant,
    last_saved: usize,
    termination: String,
    /// Loss at the start and at the end of the last stage.
    stage_losses: (f32, f32),
}

impl<'a> Optimization<'a> {
    fn new(s: &'a Settings, progress: &'a Progress, stop: &'a Stop, content: &'a Array4<f32>) -> Result<Self> {
        let line_search = match s.line_search {
            LineSearchArg::Wolfe => LineSearch::strong_wolfe(),
            LineSearchArg::Armijo => LineSearch::armijo(),
            LineSearchArg::Fixed => LineSearch::fixed(s.lr as f32),
        };
        let mut solver =
            Lbfgs::<f32>::new().with_history(s.history)?.with_line_search(line_search)?.with_gradient_tolerance(0.0)?;
        if s.bounds {
            solver = solver.with_bounds(Bounds::Uniform { lower: 0.0, upper: 1.0 });
        }
        Ok(Self {
            s,
            colors_of: s.original_colors.then_some(content),
            solver,
            progress,
            stop,
            records: RefCell::new(Vec::with_capacity(s.evaluations + 1)),
            start: Instant::now(),
            last_saved: 0,
            termination: String::new(),
            stage_losses: (f32::NAN, f32::NAN),
        })
    }

    /// The image as it is saved: with the content's chroma under `--original-colors`.
    fn picture(&self, x: &Array4<f32>) -> image::RgbImage {
        match self.colors_of {
            Some(content) => images::from_tensor(color::original_colors(x.view(), content.view()).view()),
            None => images::from_tensor(x.view()),
        }
    }

    /// Minimizes `loss` from `x` with `budget` evaluations and `history` pairs,
    /// leaving the best image seen in `x`; returns the evaluations spent.
    fn stage(&mut self, loss: &mut StyleLoss, x: &mut Array4<f32>, budget: usize, history: usize) -> Result<usize> {
        let first = self.records.borrow().len();
        let solver = self.solver.clone().with_history(history)?.with_max_evaluations(budget)?;
        let mut best = x.clone();
        let best_f = Cell::new(f32::INFINITY);
        let (s, records, progress, stop) = (self.s, &self.records, self.progress, self.stop);
        let mut last_saved = self.last_saved;
        let picture = |x: &Array4<f32>| self.picture(x);
        stop.optimizing.store(true, Ordering::SeqCst);
        let mut observer = |it: &Iteration<'_, f32>| {
            if best_f.get().is_infinite() {
                best_f.set(records.borrow().get(first).map_or(f32::INFINITY, |r| r.loss));
            }
            if it.f <= best_f.get() {
                best_f.set(it.f);
                best.as_slice_mut().expect("standard layout").copy_from_slice(it.x.as_slice().expect("contiguous"));
            }
            let done = records.borrow().len();
            if let Some(n) = s.save_every
                && done / n > last_saved / n
            {
                last_saved = done;
                // A failed intermediate save costs that picture, not the run.
                let path = files::numbered(&s.output, done);
                if let Err(e) = images::save(&picture(&best), &path, Existing::Keep) {
                    progress.info(&format!("warning: {e:#}; the run goes on"));
                }
            }
            if stop.requested() { Control::Stop } else { Control::Continue }
        };
        let objective = Recorded { loss, records, progress, start: self.start };
        let flat = ArrayViewMut1::from(x.as_slice_mut().expect("standard layout"));
        let result = solver.run(objective, flat, &mut State::new(), &mut observer);
        self.last_saved = last_saved;
        let report = result.map_err(|e| match e {
            nst_optim::Error::NonFiniteStart => anyhow!(
                "the loss is {} at the starting image: the weights are too large for float32; lower --style-weight, --content-weight or --tv-weight",
                records.borrow().get(first).map_or(f32::NAN, |r| r.loss)
            ),
            e => anyhow!("{e}"),
        })?;
        // The best point seen: the last one unless a fixed step went uphill.
        if report.f > best_f.get() {
            x.assign(&best);
        }
        self.termination = report.termination.to_string();
        self.stage_losses = (records.borrow().get(first).map_or(f32::NAN, |r| r.loss), report.f.min(best_f.get()));
        Ok(records.borrow().len() - first)
    }
}

impl StageReport {
    fn new(size: [usize; 2], evaluations: usize, plan: &Plan, targets_s: f64, optimize_start: Instant) -> Self {
        let optimize_s = optimize_start.elapsed().as_secs_f64();
        let ms_per_evaluation = optimize_s * 1e3 / evaluations.max(1) as f64;
        Self { size, evaluations, plan: plan.clone(), targets_s, optimize_s, ms_per_evaluation }
    }
}

/// The features network a stage's plan calls for: whole images or tiles.
fn feature_net(rt: &Runtime, objective: &Loss, weights: &VggWeights, plan: &Plan) -> Result<FeatureNet> {
    Ok(match plan.tile {
        Some(core) => FeatureNet::tiled(rt, objective, weights, core)?,
        None => FeatureNet::new(rt, objective, weights)?,
    })
}

/// The loss a stage's plan calls for: whole images or tiles.
fn style_loss(
    rt: &Runtime,
    objective: &Loss,
    weights: &VggWeights,
    targets: Targets,
    (h, w): (usize, usize),
    plan: &Plan,
) -> Result<StyleLoss> {
    Ok(match plan.tile {
        Some(core) => StyleLoss::tiled(rt, objective, weights, targets, (h, w), core)?,
        None => StyleLoss::new(rt, objective, weights, targets, h, w)?,
    })
}

/// `, 64 tiles of 512 px, history 10 (memory estimate 9.8 GB)` — what differs from a plain run.
fn describe(plan: &Plan, history: usize) -> String {
    let mut out = String::new();
    if let Some(core) = plan.tile {
        out += &format!(", {} tiles of {core} px", plan.tiles);
    }
    if plan.history != history {
        out += &format!(", history {} (shortened to fit)", plan.history);
    }
    if !out.is_empty() {
        out += &format!(" (memory estimate {})", memory::gb(plan.bytes));
    }
    out
}

/// Runs the transfer described by `s`, until it ends or `stop` is tripped; returns the image
/// to save and the report.
pub fn run(s: &Settings, device: Device, cache: &Cache, progress: &Progress, stop: &Stop) -> Result<Outcome> {
    let t0 = Instant::now();
    let log = |m: &str| progress.info(m);

    // Images, and the sizes they will have.
    let content_img = images::load(&s.content)?;
    let (w, h) = images::fit(content_img.width(), content_img.height(), s.size);
    let style_imgs = s.styles.iter().map(|p| images::load(p)).collect::<Result<Vec<_>>>()?;
    // The style images' sizes (width, height) for an output whose longest side is `side`.
    let style_sizes = |side: u32| -> Vec<(u32, u32)> {
        let mut style_side = ((f64::from(side) * s.style_scale).round() as u32).max(1);
        if s.swap.is_some() {
            style_side = style_side.min(SWAP_STYLE_MAX);
        }
        style_imgs.iter().map(|img| images::fit(img.width(), img.height(), style_side)).collect()
    };
    let objective = match &s.swap {
        None => s.loss.resolve()?,
        Some(sw) => Loss { pool: s.loss.pool, content: vec![(sw.layer, 1.0)], style: vec![], tv: s.loss.tv as f32 },
    };
    objective.check_size(h as usize, w as usize).context("output")?;
    for (p, (sw, sh)) in s.styles.iter().zip(style_sizes(s.size)) {
        objective.check_size(sh as usize, sw as usize).with_context(|| format!("style {}", p.display()))?;
    }

    // What each stage needs, before anything large is allocated: a run that cannot fit stops
    // here, on its largest stage.
    // The full-size content and style tensors live through the coarse stages too.
    let full_styles: u64 = style_sizes(s.size).iter().map(|&(sw, sh)| u64::from(sw) * u64::from(sh)).sum();
    let held = 3 * 4 * (u64::from(w) * u64::from(h) + full_styles);
    let mut plans = s
        .stages
        .iter()
        .rev()
        .map(|&(side, budget)| {
            let (sw, sh) = images::fit(w, h, side);
            let styles: Vec<_> = style_sizes(side).into_iter().map(|(w, h)| (h as usize, w as usize)).collect();
            // The last stage's own tensors are the full-size ones.
            let held = if (sw, sh) == (w, h) { 0 } else { held };
            let stage = (sh as usize, sw as usize);
            memory::plan(&objective, stage, &styles, (s.history, budget), held, s.max_memory, s.tile)
        })
        .collect::<Result<Vec<_>>>()?;
    plans.reverse();

    // Images → tensors.
    let content = images::to_tensor(&content_img, w, h);
    // The style tensors for an output whose longest side is `side`.
    let styles_for = |side: u32, content: &Array4<f32>| -> Result<Vec<Array4<f32>>> {
        style_imgs
            .iter()
            .zip(style_sizes(side))
            .map(|(img, (sw, sh))| {
                let t = images::to_tensor(img, sw, sh);
                if s.color_transfer { color::match_colors(t.view(), content.view()) } else { Ok(t) }
            })
            .collect()
    };
    let styles = styles_for(s.size, &content)?;
    let mut x = match &s.init {
        Init::Content => content.clone(),
        Init::Random => {
            let mut rng = StdRng::seed_from_u64(s.seed);
            Array4::from_shape_simple_fn(content.raw_dim(), || rng.random::<f32>())
        }
        Init::Image(p) => images::to_tensor(&images::load(p)?, w, h),
    };

    // The network: the runtime first, so a device that cannot work fails before any download.
    let rt = cache.open_runtime(device, &log)?;
    let weights = cache.weights(&log)?;
    let setup_s = t0.elapsed().as_secs_f64();
    let on = if rt.is_cuda() { "CUDA" } else { "CPU" };
    let mut opt = Optimization::new(s, progress, stop, &content)?;
    let mut targets_s = 0.0;
    let mut stages = Vec::with_capacity(s.stages.len());
    match &s.swap {
        None => {
            let schedule: Vec<String> = s.stages.iter().map(|(side, n)| format!("{n} at {side} px")).collect();
            log(&format!("{w}×{h} output, {} evaluations on {on} ({})", s.evaluations, schedule.join(", ")));
            for (i, (&(side, budget), plan)) in s.stages.iter().zip(&plans).enumerate() {
                if stop.requested() {
                    break;
                }
                // The last stage's network and history are gone; its holes must not stay resident.
                nst_features::release_free_memory();
                let t1 = Instant::now();
                // Coarse stages see the content and styles resized; each starts from the last result.
                let (sw, sh) = images::fit(w, h, side);
                let resized;
                let (stage_content, stage_styles) = if (sw, sh) == (w, h) {
                    (&content, &styles)
                } else {
                    let c = images::to_tensor(&content_img, sw, sh);
                    let st = styles_for(side, &c)?;
                    resized = (c, st);
                    (&resized.0, &resized.1)
                };
                if x.shape()[2..] != [sh as usize, sw as usize] {
                    x = images::resize_tensor(&x, sw, sh);
                }
                let blended: Vec<_> = stage_styles.iter().zip(&s.blend).map(|(t, &b)| (t.view(), b)).collect();
                let targets = feature_net(&rt, &objective, &weights, plan)?.targets(stage_content.view(), &blended)?;
                nst_features::release_free_memory();
                let mut loss = style_loss(&rt, &objective, &weights, targets, (sh as usize, sw as usize), plan)?;
                let stage_targets_s = t1.elapsed().as_secs_f64();
                targets_s += stage_targets_s;
                // Say what each stage does when there is more than one, or it runs in tiles.
                let staged = s.stages.len() > 1 || plan.tile.is_some();
                if staged {
                    log(&format!("stage {}: {sw}×{sh}, {budget} evaluations{}", i + 1, describe(plan, s.history)));
                }
                let t2 = Instant::now();
                let spent = opt.stage(&mut loss, &mut x, budget, plan.history)?;
                let report = StageReport::new([sw as usize, sh as usize], spent, plan, stage_targets_s, t2);
                if staged {
                    log(&format!(
                        "stage {}: {spent} evaluations in {:.1} s ({:.2} s each; targets {:.1} s)",
                        i + 1,
                        report.optimize_s,
                        report.ms_per_evaluation / 1e3,
                        stage_targets_s
                    ));
                }
                stages.push(report);
            }
            if x.shape()[2..] != [h as usize, w as usize] {
                x = images::resize_tensor(&x, w, h);
            }
        }
        Some(sw) => {
            // The features of the swap layer, of the style images and then of each round's image.
            let t1 = Instant::now();
            let plan = &plans[0];
            let mut net = feature_net(&rt, &objective, &weights, plan)?;
            let mut features =
                |img: &Array4<f32>| -> Result<Array4<f32>> { Ok(net.run(img.view())?.content.remove(0).1) };
            let style_features = styles.iter().map(&mut features).collect::<Result<Vec<_>>>()?;
            let views: Vec<_> = style_features.iter().map(|f| f.view()).collect();
            let bank = PatchBank::new(&views, sw.patch, sw.stride)?;
            targets_s += t1.elapsed().as_secs_f64();
            let mut source = content.clone();
            let mut loss: Option<StyleLoss> = None;
            log(&format!(
                "{w}×{h} output, style swap at {} with {} {}×{} patches, {} round(s), {} evaluations on {on}{}",
                sw.layer,
                bank.len(),
                sw.patch,
                sw.patch,
                sw.swaps,
                s.evaluations,
                describe(plan, s.history)
            ));
            for round in 0..sw.swaps {
                let t = Instant::now();
                let swapped = bank.swap(features(&source)?.view())?;
                let targets = Targets { content: vec![(sw.layer, swapped)], style: vec![] };
                let loss = match &mut loss {
                    Some(l) => {
                        l.set_targets(targets)?;
                        l
                    }
                    None => {
                        loss.insert(style_loss(&rt, &objective, &weights, targets, (h as usize, w as usize), plan)?)
                    }
                };
                let round_targets_s = t.elapsed().as_secs_f64();
                targets_s += round_targets_s;
                let budget = s.evaluations / sw.swaps + usize::from(round < s.evaluations % sw.swaps);
                let t2 = Instant::now();
                let spent = opt.stage(loss, &mut x, budget, plan.history)?;
                stages.push(StageReport::new([w as usize, h as usize], spent, plan, round_targets_s, t2));
                if stop.requested() {
                    break;
                }
                source.assign(&x);
            }
        }
    }
    progress.finish();
    // Targets were built after the optimizer's clock started; their time is not the optimizer's.
    let optimize_s = opt.start.elapsed().as_secs_f64() - targets_s;
    let image = opt.picture(&x);
    let records = opt.records.into_inner();
    let interrupted = stop.requested();
    let (initial_loss, final_loss) = opt.stage_losses;
    let report = Report {
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
        stages,
        termination: opt.termination,
        interrupted,
        initial_loss,
        final_loss,
        evaluations: records,
    };
    Ok(Outcome { image, report })
}

impl Report {
    /// `converged after 100 evaluations: loss 1.2e9 → 3.4e7` (or `interrupted after …`).
    pub fn summary(&self) -> String {
        format!(
            "{} after {} evaluations: loss {:.4e} → {:.4e}",
            if self.interrupted { "interrupted" } else { &self.termination },
            self.evaluations.len(),
            self.initial_loss,
            self.final_loss
        )
    }

    /// Writes the report as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        files::write_atomic(path, Existing::Replace, |out| {
            serde_json::to_writer_pretty(out, self).with_context(|| format!("cannot write {}", path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_losses_are_named_in_the_report() {
        let e = Evaluation {
            evaluation: 2,
            loss: f32::INFINITY,
            terms: [("style_relu1_1".to_string(), f32::NAN), ("tv".to_string(), 0.5)].into(),
            elapsed_s: 1.0,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["loss"], "inf");
        assert_eq!(json["terms"]["style_relu1_1"], "nan");
        assert_eq!(json["terms"]["tv"], 0.5);
    }
}
