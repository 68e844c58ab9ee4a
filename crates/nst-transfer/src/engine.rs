//! The engine: the runtime and the VGG16 weights, opened once, and [`Engine::run`], one
//! transfer: images → tensors → targets → loss → optimizer → image, stage by stage.

use crate::masks::{StageMasks, composite};
use crate::observe::{Cancel, Observer, Stage, render};
use crate::optimize::{Optimization, Shown, StageRun};
use crate::plan::Plan;
use crate::report::{Report, StageReport, Timings};
use crate::request::{Init, Request};
use crate::settings::{ANALOGY_DECONVOLUTIONS, Method, Settings, Swap};
use crate::words::count;
use crate::{Error, analogy, color, images};
use image::RgbImage;
use ndarray::{Array2, Array4, ArrayView2, s};
use nst_features::{
    Cache, Device, FeatureNet, Guides, Loss, LossSpec, PatchBank, Precision, RegionStyle, Runtime, Targets, VggWeights,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::time::Instant;

/// The patch of the vote that lays the painting's pixels out for [`Init::Painting`].
const PAINTING_PATCH: usize = 3;

/// The runtime on its device (ONNX Runtime, or OpenVINO for bf16) and the VGG16 weights:
/// what every transfer needs, opened once and shared by any number of runs (one after
/// another, or from several threads).
pub struct Engine {
    pub(crate) runtime: Runtime,
    pub(crate) weights: VggWeights,
}

/// What a run gives: the image and its report.
pub struct Outcome {
    /// The result (with the content's colours under `original_colors`).
    pub image: RgbImage,
    /// How it went.
    pub report: Report,
    /// Deep Image Analogy's other result, B: the painting's layout in the photo's look
    /// (at the painting's size); `None` for the other methods.
    pub reverse: Option<RgbImage>,
}

impl Engine {
    /// An engine on a loaded runtime with these weights.
    pub fn new(runtime: Runtime, weights: VggWeights) -> Self {
        Self { runtime, weights }
    }

    /// Provisions the runtime for `device` and `precision` (ONNX Runtime; OpenVINO for bf16)
    /// and the weights from `cache` (fetching them on first use, verifying them every time),
    /// and loads the runtime; `log` hears what happens.
    pub fn open(cache: &Cache, device: Device, precision: Precision, log: &dyn Fn(&str)) -> Result<Self, Error> {
        let runtime = cache.open_runtime(device, precision, log)?;
        let weights = cache.weights(log)?;
        Ok(Self::new(runtime, weights))
    }

    /// Whether the network runs on CUDA.
    pub fn is_cuda(&self) -> bool {
        self.runtime.is_cuda()
    }

    /// The runtime the network runs on (one ONNX Runtime per process, which every engine of
    /// the process shares).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The VGG16 weights.
    pub fn weights(&self) -> &VggWeights {
        &self.weights
    }

    /// The arithmetic the network runs in.
    pub fn precision(&self) -> Precision {
        self.runtime.precision()
    }

    /// Where the network runs, for the notes: `CUDA`, `CUDA in fp16`, `CPU` or `CPU in bf16`.
    fn place(&self) -> String {
        let device = if self.is_cuda() { "CUDA" } else { "CPU" };
        match self.precision() {
            Precision::Fp32 => device.into(),
            p => format!("{device} in {p}"),
        }
    }

    /// Runs `request`, telling `observer` as it goes, until it ends or `cancel` is tripped
    /// (then at once, the evaluation under way dropped, with the best image so far;
    /// [`Error::Cancelled`] before the first evaluation ends).
    ///
    /// Call it from a thread with a main thread's stack (8 MiB or more): LAPACK inside
    /// L-BFGS-B (OpenBLAS) keeps large buffers on the stack, more than a spawned thread's
    /// default 2 MiB holds.
    pub fn run(&self, request: &Request, observer: &mut dyn Observer, cancel: &Cancel) -> Result<Outcome, Error> {
        // The run's own switch: a stop of another run on this engine leaves this one alone.
        let rt = self.runtime.with_new_interrupt()?;
        let _armed = cancel.arm(rt.interrupt());
        // A graph stopped where the run has no image yet to give.
        self.run_armed(&rt, request, observer, cancel)
            .map_err(|e| if e.is_interruption() { Error::Cancelled } else { e })
    }

    /// [`Engine::run`] on `rt`, the runtime with the run's switch, armed on `cancel`.
    fn run_armed(
        &self,
        rt: &Runtime,
        request: &Request,
        observer: &mut dyn Observer,
        cancel: &Cancel,
    ) -> Result<Outcome, Error> {
        let t0 = Instant::now();
        let plans = request.plan(self.runtime.gpu_free_memory())?;
        let s = &request.settings;
        let spec = s.loss_spec()?;
        let stages = request.stages()?;
        let (w, h) = request.output_size();

        // Images → tensors.
        let content = images::to_tensor(&request.content, w, h);
        let styles = self.style_tensors(request, s.size, &content)?;
        let mut x = match &request.init {
            Init::Content => content.clone(),
            Init::Random => {
                let mut rng = StdRng::seed_from_u64(s.seed);
                Array4::from_shape_simple_fn(content.raw_dim(), || rng.random::<f32>())
            }
            Init::Image(img) => images::to_tensor(img, w, h),
            // Made by the first swap.
            Init::Painting => content.clone(),
        };
        let setup_s = t0.elapsed().as_secs_f64();

        let mut opt = Optimization::new(s, observer, cancel)?;
        if let Init::Image(img) = &request.init {
            let aspect = |(w, h): (u32, u32)| f64::from(w) / f64::from(h);
            let (start, photo) = (aspect(img.dimensions()), aspect(request.content.dimensions()));
            if (start / photo - 1.0).abs() > 0.01 {
                let (iw, ih) = img.dimensions();
                opt.note(&format!(
                    "warning: the starting image, {iw}×{ih}, is stretched to the photo's shape ({w}×{h}); crop it to the photo's proportions to keep its own"
                ));
            }
        }
        let mut reports = Vec::with_capacity(stages.len());
        let images = (&content, styles.as_slice());
        let mut reverse = None;
        let targets_s = match &s.method {
            Method::Gatys => {
                self.coarse_to_fine((rt, &mut opt), request, (&spec, &stages, &plans), images, &mut x, &mut reports)?
            }
            Method::Swap(sw) => {
                let painting = matches!(request.init, Init::Painting);
                self.swap_rounds(
                    (rt, &mut opt),
                    (request, &spec, sw, &plans[0]),
                    images,
                    (&mut x, painting),
                    &mut reports,
                )?
            }
            Method::Analogy(a) => {
                // The deconvolutions' slice graphs are fp32 whatever the precision but bf16.
                let on = if self.precision() == Precision::Fp16 { "CUDA".into() } else { self.place() };
                let (sw, sh) = (styles[0].shape()[3], styles[0].shape()[2]);
                opt.note(&format!(
                    "{w}×{h} output, Deep Image Analogy with a {sw}×{sh} painting: 5 levels, {} over {} feature deconvolutions on {on}",
                    count(s.evaluations, "evaluation"), ANALOGY_DECONVOLUTIONS
                ));
                let out = analogy::run(
                    (rt, &self.weights),
                    &mut opt,
                    (&spec, a, s.seed, &plans[0]),
                    s.evaluations,
                    (&content, &styles[0]),
                    &mut reports,
                )?;
                x = out.a2;
                reverse = Some(render(&out.b, None));
                out.matching_s
            }
        };
        // Targets were built after the optimizer's clock started; their time is not the optimizer's.
        let optimize_s = opt.start.elapsed().as_secs_f64() - targets_s;
        let records = opt.records.into_inner();
        if records.is_empty() {
            return Err(Error::Cancelled);
        }
        let mut image = render(&x, kept_colors(s, &content).as_ref());
        if let Some(keep) = request.masks.keep_at(w, h) {
            image = composite(&image, &render(&content, None), &keep, request.masks.feather);
        }
        let (initial_loss, final_loss) = opt.stage_losses;
        let report = Report {
            method: match s.method {
                Method::Gatys => "gatys",
                Method::Swap(_) => "swap",
                Method::Analogy(_) => "analogy",
            },
            device: if self.is_cuda() { "cuda" } else { "cpu" },
            precision: self.precision().as_str(),
            output_size: tensor_size(&content),
            style_sizes: styles.iter().map(tensor_size).collect(),
            timings: Timings {
                setup_s,
                targets_s,
                optimize_s,
                total_s: t0.elapsed().as_secs_f64(),
                ms_per_evaluation: ms_per_evaluation(&reports),
            },
            stages: reports,
            termination: if cancel.is_cancelled() { "cancelled".into() } else { opt.termination },
            interrupted: cancel.is_cancelled(),
            initial_loss,
            final_loss,
            evaluations: records,
        };
        Ok(Outcome { image, report, reverse })
    }

    /// Gatys coarse to fine: each stage's targets from the content and styles at its size,
    /// then the optimization from the last stage's result, upsampled. Returns the time spent
    /// on targets.
    fn coarse_to_fine(
        &self,
        (rt, opt): (&Runtime, &mut Optimization<'_>),
        request: &Request,
        (spec, stages, plans): (&LossSpec, &[(u32, usize)], &[Plan]),
        (content, styles): (&Array4<f32>, &[Array4<f32>]),
        x: &mut Array4<f32>,
        reports: &mut Vec<StageReport>,
    ) -> Result<f64, Error> {
        let s = &request.settings;
        let (w, h) = request.output_size();
        let on = self.place();
        let mut targets_s = 0.0;
        let schedule: Vec<String> = stages.iter().map(|(side, n)| format!("{n} at {side} px")).collect();
        let bounds = opt.bounds().clone();
        let total: usize = stages.iter().map(|s| s.1).sum();
        opt.note(&format!("{w}×{h} output, {} on {on} ({})", count(total, "evaluation"), schedule.join(", ")));
        for (i, (&(side, budget), plan)) in stages.iter().zip(plans).enumerate() {
            if opt.cancelled() {
                break;
            }
            // The last stage's network and history are gone; its holes must not stay resident.
            nst_features::release_free_memory();
            let t1 = Instant::now();
            // Coarse stages see the content and styles resized; each starts from the last result.
            let (sw, sh) = images::fit(w, h, side);
            let resized;
            let (stage_content, stage_styles) = if (sw, sh) == (w, h) {
                (content, styles)
            } else {
                let c = images::to_tensor(&request.content, sw, sh);
                let st = self.style_tensors(request, side, &c)?;
                resized = (c, st);
                (&resized.0, resized.1.as_slice())
            };
            if x.shape()[2..] != [sh as usize, sw as usize] {
                *x = images::resize_tensor(x, sw, sh);
            }
            let size = [sw as usize, sh as usize];
            let stage = Stage { index: i + 1, count: stages.len(), size, evaluations: budget, plan: plan.clone() };
            opt.observer().stage(&stage);
            let masks = request.masks.at(sw, sh);
            // A large stage's targets take minutes: a stop asked for meanwhile ends the run here.
            let Some(targets) =
                unless_stopped(self.targets(rt, request, (spec, plan), (stage_content, stage_styles), &masks))?
            else {
                break;
            };
            if opt.cancelled() {
                break;
            }
            let mut loss = Loss::open(rt, spec, &self.weights, targets, (sh as usize, sw as usize), plan.tile)?;
            opt.set_bounds(masks.hold(&bounds, stage_content, x));
            nst_features::release_free_memory();
            let stage_targets_s = t1.elapsed().as_secs_f64();
            targets_s += stage_targets_s;
            // Say what each stage does when there is more than one, or it runs in tiles.
            let staged = stages.len() > 1 || plan.tile.is_some();
            if staged {
                let budget = count(budget, "evaluation");
                opt.note(&format!("stage {}: {sw}×{sh}, {budget}{}", i + 1, describe(plan, s.history)));
            }
            let t2 = Instant::now();
            let colors = kept_colors(s, stage_content);
            let run = opt.stage(
                &mut loss,
                x,
                (budget, plan.history),
                Shown::Image { colors_of: colors.as_ref() },
                plan.pairs_on_gpu.then_some(rt),
            )?;
            let report = StageReport::new(size, &run, plan, stage_targets_s, t2);
            if staged && run.evaluations == 0 {
                opt.note(&format!("stage {}: stopped in its first evaluation (targets {stage_targets_s:.1} s)", i + 1));
            } else if staged {
                opt.note(&format!(
                    "stage {}: {} in {:.1} s ({:.2} s each; targets {:.1} s)",
                    i + 1,
                    count(run.evaluations, "evaluation"),
                    report.optimize_s,
                    report.ms_per_evaluation / 1e3,
                    stage_targets_s
                ));
            }
            reports.push(report);
        }
        if x.shape()[2..] != [h as usize, w as usize] {
            *x = images::resize_tensor(x, w, h);
        }
        Ok(targets_s)
    }

    /// A stage's targets: the content's features and the styles' Grams, blended over the
    /// whole image, or one per style region ([`crate::Masks`]), with the regions' guides.
    fn targets(
        &self,
        rt: &Runtime,
        request: &Request,
        (spec, plan): (&LossSpec, &Plan),
        (content, styles): (&Array4<f32>, &[Array4<f32>]),
        masks: &StageMasks,
    ) -> Result<Targets, Error> {
        let layers: Vec<_> = spec.style.iter().map(|(l, _)| *l).collect();
        let mode = request.masks.mode;
        let mut net = FeatureNet::open(rt, spec, &self.weights, plan.tile)?;
        let guides = match masks.guides(&layers, mode) {
            Some(guides) if !masks.styles.is_empty() => guides,
            // The blend over the whole image, or everywhere but the kept pixels.
            guides => {
                let blended: Vec<_> = styles.iter().zip(&request.styles).map(|(t, st)| (t.view(), st.weight)).collect();
                let mut t = net.targets(content.view(), &blended)?;
                t.guides = guides;
                return Ok(t);
            }
        };
        let sources: Vec<Option<Guides>> = styles
            .iter()
            .enumerate()
            .map(|(k, t)| request.masks.source(k, &layers, (t.shape()[3] as u32, t.shape()[2] as u32)))
            .collect();
        if sources.iter().any(Option::is_some) {
            net = net.with_guides(rt, &self.weights)?;
        }
        let regions: Vec<RegionStyle<'_>> =
            styles.iter().zip(&sources).map(|(t, g)| RegionStyle { image: t.view(), source: g.as_ref() }).collect();
        Ok(net.region_targets(content.view(), &regions, guides)?)
    }

    /// The style tensors for a stage whose longest side is `side`, recoloured to `content`
    /// under `color_transfer`.
    fn style_tensors(&self, request: &Request, side: u32, content: &Array4<f32>) -> Result<Vec<Array4<f32>>, Error> {
        request
            .styles
            .iter()
            .zip(request.style_sizes(side))
            .map(|(style, (sw, sh))| {
                let t = images::to_tensor(&style.image, sw, sh);
                if request.settings.color_transfer { color::match_colors(t.view(), content.view()) } else { Ok(t) }
            })
            .collect()
    }

    /// Style swap: the features of the swap layer of the style images go into a patch bank;
    /// each round swaps the features of its source (the content, then the last result) and
    /// reconstructs an image from them, from the last one or, first, from the painting's
    /// pixels along the matches when `painting`. With style masks, each style has its own
    /// bank and a cell takes its patch from the bank of the region it is most in; a cell
    /// in no region (unstyled or kept) keeps its own features. A style's source mask limits
    /// its bank to the patches centred inside it. Returns the time spent on features and swaps.
    fn swap_rounds(
        &self,
        (rt, opt): (&Runtime, &mut Optimization<'_>),
        (request, spec, sw, plan): (&Request, &LossSpec, &Swap, &Plan),
        (content, styles): (&Array4<f32>, &[Array4<f32>]),
        (x, painting): (&mut Array4<f32>, bool),
        reports: &mut Vec<StageReport>,
    ) -> Result<f64, Error> {
        let s = &request.settings;
        let (h, w) = (content.shape()[2], content.shape()[3]);
        let t1 = Instant::now();
        let mut net = FeatureNet::open(rt, spec, &self.weights, plan.tile)?;
        let mut features =
            |img: &Array4<f32>| -> Result<Array4<f32>, Error> { Ok(net.run(img.view())?.content.remove(0).1) };
        let style_features = styles.iter().map(&mut features).collect::<Result<Vec<_>, _>>()?;
        let views: Vec<_> = style_features.iter().map(|f| f.view()).collect();
        let masks = request.masks.at(w as u32, h as u32);
        // Where in each painting its patches may come from (its source mask at the swap layer).
        let sources: Vec<Option<Array2<bool>>> = styles
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let size = (t.shape()[3] as u32, t.shape()[2] as u32);
                Some(request.masks.source(k, &[sw.layer], size)?.plane(0, 0).mapv(|v| v >= 0.5))
            })
            .collect();
        let source_views: Vec<_> = sources.iter().map(|m| m.as_ref().map(|m| m.view())).collect();
        let banks = if masks.styles.is_empty() {
            vec![PatchBank::within(&views, &source_views, sw.patch, sw.stride)?]
        } else {
            (0..views.len())
                .map(|k| PatchBank::within(&views[k..=k], &source_views[k..=k], sw.patch, sw.stride))
                .collect::<Result<_, _>>()?
        };
        // The bank each cell of the swap layer, and each pixel, takes its patch from (None:
        // its own features; the photo's pixels).
        let cell_owners = masks
            .guides(&[sw.layer], request.masks.mode)
            .map(|g| owners(&(0..g.regions()).map(|r| g.plane(0, r)).collect::<Vec<_>>()));
        let pixel_owners =
            (!masks.styles.is_empty()).then(|| owners(&masks.styles.iter().map(|m| m.view()).collect::<Vec<_>>()));
        let mut targets_s = t1.elapsed().as_secs_f64();
        let on = self.place();
        opt.note(&format!(
            "{w}×{h} output, style swap at {} with {}, {}, {} on {on}{}",
            sw.layer,
            {
                let size = format!("{}×{}", sw.patch, sw.patch);
                let patches = banks.iter().map(PatchBank::len).sum::<usize>();
                crate::words::count_as(patches, &format!("{size} patch"), &format!("{size} patches"))
            },
            count(sw.swaps, "round"),
            count(s.evaluations, "evaluation"),
            describe(plan, s.history)
        ));
        let colors = kept_colors(s, content);
        let bounds = opt.bounds().clone();
        let mut source = content.clone();
        let mut loss: Option<Loss> = None;
        'rounds: for round in 0..sw.swaps {
            let budget = sw.round_evaluations(s.evaluations, round);
            let stage =
                Stage { index: round + 1, count: sw.swaps, size: [w, h], evaluations: budget, plan: plan.clone() };
            opt.observer().stage(&stage);
            let t = Instant::now();
            // A stop here ends the run with the last round's image.
            let Some(f) = unless_stopped(features(&source))? else { break };
            let cells = (f.shape()[2], f.shape()[3]);
            let mut swapped = f.clone();
            let mut painted = content.clone();
            for (k, bank) in banks.iter().enumerate() {
                let Some(best) = unless_stopped(bank.best_matches(f.view(), &rt.interrupt()).map_err(Error::from))?
                else {
                    break 'rounds;
                };
                let assembled = bank.assemble(cells, &best);
                take(&mut swapped, assembled, cell_owners.as_ref(), k);
                if round == 0 && painting {
                    // The painting's pixels along the matches: each region's from its own.
                    let field = bank
                        .field(cells, &best)
                        .ok_or_else(|| Error::setting("init", "painting is for style swap with one style image"))?;
                    let style = &styles[k];
                    let pixels = field.upsample((h, w), (style.shape()[2], style.shape()[3]));
                    take(&mut painted, pixels.vote(style.view(), PAINTING_PATCH)?, pixel_owners.as_ref(), k);
                }
            }
            if round == 0 {
                if painting {
                    *x = painted;
                }
                // Kept pixels held at the photo's from the first round on.
                opt.set_bounds(masks.hold(&bounds, content, x));
            }
            let targets = Targets { content: vec![(sw.layer, swapped)], style: vec![], guides: None };
            let loss = match &mut loss {
                Some(l) => {
                    l.set_targets(targets)?;
                    l
                }
                None => loss.insert(Loss::open(rt, spec, &self.weights, targets, (h, w), plan.tile)?),
            };
            let round_targets_s = t.elapsed().as_secs_f64();
            targets_s += round_targets_s;
            let t2 = Instant::now();
            let run = opt.stage(
                loss,
                x,
                (budget, plan.history),
                Shown::Image { colors_of: colors.as_ref() },
                plan.pairs_on_gpu.then_some(rt),
            )?;
            reports.push(StageReport::new([w, h], &run, plan, round_targets_s, t2));
            if opt.cancelled() {
                break;
            }
            source.assign(x);
        }
        Ok(targets_s)
    }
}

/// `None` where the run's switch stopped the work that gives `result` (a stop asked for):
/// the run ends there with the image it has.
pub(crate) fn unless_stopped<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Err(e) if e.is_interruption() => Ok(None),
        result => result.map(Some),
    }
}

/// Per position of the regions' shares (one (h, w) map each): the region it is most in, if
/// that is at least half of it.
fn owners(shares: &[ArrayView2<f32>]) -> Array2<Option<usize>> {
    let (h, w) = shares.first().map_or((0, 0), |s| s.dim());
    Array2::from_shape_fn((h, w), |(y, x)| {
        let (best, share) = shares
            .iter()
            .enumerate()
            .map(|(r, s)| (r, s[[y, x]]))
            .fold((0, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
        (share >= 0.5).then_some(best)
    })
}

/// `from` into `into` (both (1, C, h, w)) at the positions `owners` gives region `k`;
/// everywhere without owners.
fn take(into: &mut Array4<f32>, from: Array4<f32>, owners: Option<&Array2<Option<usize>>>, k: usize) {
    match owners {
        None => *into = from,
        Some(owners) => ndarray::Zip::indexed(owners).for_each(|(y, x), o| {
            if *o == Some(k) {
                into.slice_mut(s![0, .., y, x]).assign(&from.slice(s![0, .., y, x]));
            }
        }),
    }
}

/// Milliseconds per evaluation over `stages`: each stage's by its evaluations (an evaluation
/// a stop cut short is not counted, nor is its time).
fn ms_per_evaluation(stages: &[StageReport]) -> f64 {
    let evaluations: usize = stages.iter().map(|s| s.evaluations).sum();
    let ms: f64 = stages.iter().map(|s| s.ms_per_evaluation * s.evaluations as f64).sum();
    ms / evaluations.max(1) as f64
}

impl StageReport {
    fn new(size: [usize; 2], run: &StageRun, plan: &Plan, targets_s: f64, optimize_start: Instant) -> Self {
        let optimize_s = optimize_start.elapsed().as_secs_f64();
        let ms_per_evaluation = run.evaluating_s * 1e3 / run.evaluations.max(1) as f64;
        Self {
            size,
            evaluations: run.evaluations,
            iterations: run.iterations,
            plan: plan.clone(),
            targets_s,
            optimize_s,
            ms_per_evaluation,
        }
    }
}

/// The content whose colours the saved images keep, under `original_colors`.
fn kept_colors(s: &Settings, content: &Array4<f32>) -> Option<Array4<f32>> {
    s.original_colors.then(|| content.clone())
}

fn tensor_size(t: &Array4<f32>) -> [usize; 2] {
    [t.shape()[3], t.shape()[2]]
}

/// `, 64 tiles of 512 px, history 10 (memory estimate 9.8 GB)` — what differs from a plain run.
fn describe(plan: &Plan, history: usize) -> String {
    let mut out = String::new();
    match plan.tile {
        Some(_) if plan.tiles == 1 => out += ", one tile (the whole image)",
        Some(core) => out += &format!(", {} tiles of {core} px", plan.tiles),
        None => {}
    }
    if plan.history != history {
        out += &format!(", history {} (shortened to fit)", plan.history);
    }
    if !out.is_empty() {
        out += &format!(" (memory estimate {}", crate::error::gb(plan.bytes));
        if let Some(gpu) = plan.gpu_bytes {
            out += &format!(", on the GPU {}", crate::error::gb(gpu));
        }
        out += ")";
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_engine_is_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<super::Engine>();
    }
}
