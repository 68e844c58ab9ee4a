//! Deep Image Analogy (Liao et al., *Visual Attribute Transfer through Deep Image
//! Analogy*, SIGGRAPH 2017), after the reference code (msracver/Deep-Image-Analogy):
//! the photo A and the painting B′ are matched both ways by PatchMatch on their VGG
//! features from relu5_1 down to relu1_1; at each level the unknown A′ (the photo
//! painted) and B (the painting as a photo) get features blended from their known
//! twin's and the other side's reconstructed by *feature deconvolution*; the result is
//! B′'s own pixels voted along the finest field (and B is A's pixels along the other),
//! with the photo's detail put back in photo mode ([`crate::photo`]).

use crate::Error;
use crate::engine::unless_stopped;
use crate::observe::{Snapshot, Stage};
use crate::optimize::{Optimization, Shown, StageRun};
use crate::plan::Plan;
use crate::report::StageReport;
use crate::settings::{ANALOGY_DECONVOLUTIONS, Analogy};
use ndarray::{Array2, Array4, Axis, Zip};
use nst_features::{Deconvolution, FeatureNet, Layer, LossSpec, Nnf, NormalizedMap, PatchMatch, Runtime, VggWeights};
use std::collections::BTreeMap;
use std::time::Instant;

/// The levels, coarsest first.
pub(crate) const LAYERS: [&str; 5] = ["relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1"];

/// Patch side per level.
const PATCH: [usize; 5] = [3, 3, 3, 5, 5];

/// Random-search radius per level after the first, which searches the whole map.
const RADIUS: [usize; 4] = [6, 6, 4, 4];

/// PatchMatch iterations per level.
const ITERATIONS: usize = 10;

/// The patch of the final vote of pixels.
const PIXEL_PATCH: usize = 3;

/// The share of A's features kept at each level (α, relu5_1 first), by blend-weight level 1–3.
const ALPHA: [[f32; 5]; 3] = [[1.0, 0.7, 0.6, 0.5, 0.0], [1.0, 0.8, 0.7, 0.6, 0.1], [1.0, 0.9, 0.8, 0.7, 0.2]];

/// The blend mask's sigmoid: W = α·σ(κ(M − τ)) with M the min-max normalized squared
/// feature norm (the paper's; the reference code thresholds M at τ).
const KAPPA: f32 = 300.0;
const TAU: f32 = 0.05;

/// The two images made: A′ (the photo in the painting's pixels) and B (the painting in
/// the photo's), as (1, 3, H, W) tensors of A's and B′'s sizes.
pub(crate) struct Analogies {
    pub a2: Array4<f32>,
    pub b: Array4<f32>,
    /// Seconds spent on the features, matching, voting and the photo refinement.
    pub matching_s: f64,
}

/// Runs Deep Image Analogy on the photo `a` and the painting `b2` (RGB tensors in [0, 1]).
pub(crate) fn run(
    (runtime, weights): (&Runtime, &VggWeights),
    opt: &mut Optimization<'_>,
    (spec, analogy, seed, plan): (&LossSpec, &Analogy, u64, &Plan),
    budget: usize,
    (a, b2): (&Array4<f32>, &Array4<f32>),
    reports: &mut Vec<StageReport>,
) -> Result<Analogies, Error> {
    let t0 = Instant::now();
    let mut net = FeatureNet::new(runtime, spec, weights)?;
    let features = |net: &mut FeatureNet, image: &Array4<f32>| -> Result<BTreeMap<Layer, Array4<f32>>, Error> {
        Ok(net.run(image.view())?.content.into_iter().collect())
    };
    let (fa, fb2) = (features(&mut net, a)?, features(&mut net, b2)?);
    drop(net);
    let mut matching_s = t0.elapsed().as_secs_f64();
    // 1 to 3, as `Settings::check` made sure.
    let alpha = ALPHA[usize::from(analogy.weights) - 1];
    // Deconvolution j's share of the budget: the remainder goes to the first (the deepest,
    // smallest and cheapest), so that every evaluation asked for is spent.
    let share = |j: usize| budget / ANALOGY_DECONVOLUTIONS + usize::from(j < budget % ANALOGY_DECONVOLUTIONS);
    let layers: Vec<Layer> = LAYERS.iter().map(|l| l.parse().expect("a VGG16 layer")).collect();
    let size = |f: &Array4<f32>| (f.shape()[2], f.shape()[3]);

    // The reconstructions of B′ in A's layout and of A in B's, at the current level.
    let mut reconstructed: Option<(Array4<f32>, Array4<f32>)> = None;
    let mut fields: Option<(Nnf, Nnf)> = None;
    for (i, &layer) in layers.iter().enumerate() {
        let (f_a, f_b2) = (&fa[&layer], &fb2[&layer]);
        let last = i + 1 == layers.len();
        let stage = Stage {
            index: i + 1,
            count: layers.len(),
            size: [f_a.shape()[3], f_a.shape()[2]],
            evaluations: if last { 0 } else { share(2 * i) + share(2 * i + 1) },
            plan: plan.clone(),
        };
        opt.observer().stage(&stage);
        // The last level's maps and sessions are gone; their holes must not stay resident.
        nst_features::release_free_memory();
        let t1 = Instant::now();

        // Blend: the unknown side's features are its twin's where they are strong, the
        // other side's reconstruction elsewhere.
        let (f_a2, f_b) = match reconstructed.take() {
            None => (f_a.clone(), f_b2.clone()),
            Some((r_b2, r_a)) => (blend(f_a, &r_b2, alpha[i]), blend(f_b2, &r_a, alpha[i])),
        };
        let (na, na2) = (NormalizedMap::new(f_a.view()), NormalizedMap::new(f_a2.view()));
        let (nb, nb2) = (NormalizedMap::new(f_b.view()), NormalizedMap::new(f_b2.view()));
        let (start_ab, start_ba) = match &fields {
            None => (Nnf::identity(size(f_a), size(f_b2)), Nnf::identity(size(f_b2), size(f_a))),
            Some((ab, ba)) => (ab.upsample(size(f_a), size(f_b2)), ba.upsample(size(f_b2), size(f_a))),
        };
        let radius =
            if i == 0 { size(f_a).0.max(size(f_a).1).max(size(f_b2).0).max(size(f_b2).1) } else { RADIUS[i - 1] };
        let matcher = |seed| PatchMatch { patch: PATCH[i], radius, iterations: ITERATIONS, seed };
        let interrupt = runtime.interrupt();
        let matched = (|| -> Result<_, Error> {
            let ab = matcher(seed.wrapping_add(2 * i as u64)).run((&na, &na2), (&nb, &nb2), start_ab, &interrupt)?;
            let ba =
                matcher(seed.wrapping_add(2 * i as u64 + 1)).run((&nb, &nb2), (&na, &na2), start_ba, &interrupt)?;
            Ok((ab, ba))
        })();
        let (ab, ba) = match unless_stopped(matched)? {
            Some(fields) => fields,
            // Stopped: the run ends with the last level's fields (at the first, with none).
            None if fields.is_some() => break,
            None => return Err(Error::Cancelled),
        };
        let level_matching_s = t1.elapsed().as_secs_f64();
        matching_s += level_matching_s;
        show(opt, &ab, b2, size(a))?;

        // Deconvolution: the next level's features whose forward pass gives the warped ones.
        let t2 = Instant::now();
        let (mut evaluations, mut iterations, mut evaluating_s) = (0, 0, 0.0);
        if !last && !opt.cancelled() {
            let next = layers[i + 1];
            let mut slice = Deconvolution::new(runtime, (next, layer), spec.pool, weights)?;
            let budget = (share(2 * i), plan.history);
            let (patches, next_a, next_b2) = ((PATCH[i], PATCH[i + 1]), &fa[&next], &fb2[&next]);
            let r_b2 = deconvolve(opt, &mut slice, (&ab, patches, budget), (f_b2, next_b2, next_a))?;
            evaluations += r_b2.1.evaluations;
            iterations += r_b2.1.iterations;
            evaluating_s += r_b2.1.evaluating_s;
            // After a cancel during the first direction the run ends with this level's fields.
            if !opt.cancelled() {
                let budget = (share(2 * i + 1), plan.history);
                let r_a = deconvolve(opt, &mut slice, (&ba, patches, budget), (f_a, next_a, next_b2))?;
                evaluations += r_a.1.evaluations;
                iterations += r_a.1.iterations;
                evaluating_s += r_a.1.evaluating_s;
                reconstructed = Some((r_b2.0, r_a.0));
            }
        }
        let optimize_s = t2.elapsed().as_secs_f64();
        let [w, h] = stage.size;
        let deconvolved = if last {
            String::new()
        } else {
            format!(", deconvolution {optimize_s:.1} s ({})", crate::words::count(evaluations, "evaluation"))
        };
        opt.note(&format!(
            "level {}/{} {layer} {w}×{h}: PatchMatch {level_matching_s:.1} s{deconvolved}",
            i + 1,
            layers.len()
        ));
        reports.push(StageReport {
            size: stage.size,
            evaluations,
            iterations,
            plan: plan.clone(),
            targets_s: level_matching_s,
            optimize_s,
            ms_per_evaluation: evaluating_s * 1e3 / evaluations.max(1) as f64,
        });
        fields = Some((ab, ba));
        if opt.cancelled() {
            break;
        }
    }
    let (ab, ba) = fields.expect("the first level always runs");
    let t3 = Instant::now();
    let mut a2 = pixels(&ab, b2, size(a))?;
    if analogy.photo {
        a2 = crate::photo::refine(a, &a2);
    }
    let b = pixels(&ba, a, size(b2))?;
    Ok(Analogies { a2, b, matching_s: matching_s + t3.elapsed().as_secs_f64() })
}

/// One direction's deconvolution: `field`'s vote of `source` (this level's features of the
/// side it points into) is the target; the start is the next level's features of that side,
/// `twin_next`, voted along the field upsampled to the maps of `shape_next` (the next level's
/// of the side it starts from). The result is clamped at 0, as a ReLU's output.
fn deconvolve(
    opt: &mut Optimization<'_>,
    slice: &mut Deconvolution,
    (field, (patch, patch_next), budget): (&Nnf, (usize, usize), (usize, usize)),
    (source, twin_next, shape_next): (&Array4<f32>, &Array4<f32>, &Array4<f32>),
) -> Result<(Array4<f32>, StageRun), Error> {
    let size = |f: &Array4<f32>| (f.shape()[2], f.shape()[3]);
    let target = field.vote(source.view(), patch)?;
    let fine = field.upsample(size(shape_next), size(twin_next));
    let mut x = fine.vote(twin_next.view(), patch_next)?;
    slice.set_target(target, size(shape_next))?;
    let run = opt.stage(slice, &mut x, budget, Shown::Nothing, None)?;
    x.mapv_inplace(|v| v.max(0.0));
    Ok((x, run))
}

/// `f·W + r·(1 − W)` with W = α·σ(κ(M − τ)), M the squared norm of `f` at each position,
/// min-max normalized over the map.
fn blend(f: &Array4<f32>, r: &Array4<f32>, alpha: f32) -> Array4<f32> {
    let m: Array2<f32> = f.index_axis(Axis(0), 0).map_axis(Axis(0), |v| v.iter().map(|x| x * x).sum());
    let (lo, hi) = m.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let w = m.mapv(|v| {
        let m = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
        alpha / (1.0 + (-KAPPA * (m - TAU)).exp())
    });
    let mut out = f.clone();
    Zip::from(out.index_axis_mut(Axis(0), 0).lanes_mut(Axis(0)))
        .and(r.index_axis(Axis(0), 0).lanes(Axis(0)))
        .and(&w)
        .for_each(|mut o, r, &w| Zip::from(&mut o).and(&r).for_each(|o, &r| *o = *o * w + r * (1.0 - w)));
    out
}

/// The image of `size` voted from `source`'s pixels along `field` (upsampled to the
/// image sizes when the field is coarser).
fn pixels(field: &Nnf, source: &Array4<f32>, size: (usize, usize)) -> Result<Array4<f32>, Error> {
    let to = (source.shape()[2], source.shape()[3]);
    let field =
        if field.size() == size && field.target_size() == to { field.clone() } else { field.upsample(size, to) };
    Ok(field.vote(source.view(), PIXEL_PATCH)?)
}

/// Shows the observer the painting's pixels along this level's field, at the photo's `size`.
fn show(opt: &Optimization<'_>, field: &Nnf, b2: &Array4<f32>, size: (usize, usize)) -> Result<(), Error> {
    let preview = pixels(field, b2, size)?;
    let snapshot = Snapshot { evaluations: opt.records.borrow().len(), image: &preview, colors_of: None };
    opt.observer().image(&snapshot);
    Ok(())
}
