//! How much memory a stage needs, and the tiling and history that make it fit.
//!
//! The estimate adds what a stage holds at once, each part as its owner reports it:
//! ONNX Runtime and the network's working set for the largest window it runs
//! ([`nst_features::RUNTIME_BYTES`], [`LossSpec::working_set`]), the content targets
//! ([`LossSpec::content_target_bytes`]), the solver's history and vectors
//! ([`Lbfgs::memory`]), and this crate's own: the images it keeps. On CUDA the network's
//! working set is in GPU memory instead, with the CUDA provider's own
//! ([`nst_features::CUDA_RUNTIME_BYTES`]), and must fit what the GPU has free.

use crate::request::Request;
use crate::{Error, Method, images};
use nst_features::{DevicePairs, LossSpec};
use nst_optim::Lbfgs;
use serde::Serialize;

/// Whole-image vectors the run keeps besides the solver's: the content, the image, the
/// best image so far, and the gradient as the network returns it.
const VECTORS: u64 = 4;

/// Tile cores tried, largest first; smaller ones spend most of their time on halos.
const TILE_CORES: [usize; 6] = [2048, 1536, 1024, 768, 512, 256];

/// The history nst keeps while it tries smaller tiles.
const COMFORTABLE_HISTORY: usize = 10;

/// The shortest history nst shrinks to before refusing.
const MIN_HISTORY: usize = 5;

/// How a stage runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// Tile core side, or `None` for one pass over the whole image.
    pub tile: Option<usize>,
    /// How many tiles (1 when untiled).
    pub tiles: usize,
    /// L-BFGS history pairs.
    pub history: usize,
    /// The estimate, in bytes.
    pub bytes: u64,
    /// On CUDA, the estimate of GPU memory, in bytes.
    pub gpu_bytes: Option<u64>,
    /// On CUDA, the optimizer's correction pairs are copied to GPU memory, and its passes over
    /// them run there: when a run holds enough of them for that to pay, and they fit beside
    /// the network (counted in `gpu_bytes`, their host-side copies in `bytes`).
    pub pairs_on_gpu: bool,
}

impl Request {
    /// The plan of every stage, coarsest first, made before anything large is allocated:
    /// whole or tiled, and the history, within [`crate::Settings::max_memory`] and, when
    /// the network runs on CUDA, the `gpu` bytes free there. A run that cannot fit is
    /// [`Error::TooLarge`], said of its largest stage.
    pub fn plan(&self, gpu: Option<u64>) -> Result<Vec<Plan>, Error> {
        self.check()?;
        let s = &self.settings;
        if s.analogy().is_some() {
            return Ok(vec![self.analogy_plan()?]);
        }
        let spec = s.loss_spec()?;
        let (w, h) = self.output_size();
        let solver = s.solver()?;
        // The full-size content and style tensors live through the coarse stages too.
        let full_styles: u64 = self.style_sizes(s.size).iter().map(|&(sw, sh)| u64::from(sw) * u64::from(sh)).sum();
        let held = 3 * 4 * (u64::from(w) * u64::from(h) + full_styles);
        let mut plans = self
            .stages()?
            .iter()
            .rev()
            .map(|&(side, evaluations)| {
                // Swap's rounds are runs of their own, each with its share of the evaluations.
                let budget = match &s.method {
                    Method::Swap(sw) => sw.round_evaluations(evaluations, 0),
                    _ => evaluations,
                };
                let (sw, sh) = images::fit(w, h, side);
                let styles: Vec<_> =
                    self.style_sizes(side).into_iter().map(|(w, h)| (h as usize, w as usize)).collect();
                // The last stage's own tensors are the full-size ones.
                let held = if (sw, sh) == (w, h) { 0 } else { held };
                let stage = (sh as usize, sw as usize);
                let net = (Budget { host: s.max_memory, gpu }, s.tile, self.masks.regions());
                plan(&spec, &solver, stage, &styles, (s.history, budget), held, net)
            })
            .collect::<Result<Vec<_>, _>>()?;
        plans.reverse();
        Ok(plans)
    }
}

impl Request {
    /// Deep Image Analogy runs whole, at one size: the features of both images at every
    /// level, the maps of the level being matched, the field's votes, then either the
    /// network's pass over the larger image or a deconvolution at relu1_1 (its slice's
    /// working set and the solver's vectors), whichever is larger.
    fn analogy_plan(&self) -> Result<Plan, Error> {
        let s = &self.settings;
        let (w, h) = self.output_size();
        let pa = u64::from(w) * u64::from(h);
        let pb = self.style_sizes(s.size).iter().map(|&(sw, sh)| u64::from(sw) * u64::from(sh)).max().unwrap_or(0);
        let p = pa.max(pb);
        // Floats per pixel: the relu{1..5}_1 features (64 + 128/4 + 256/16 + 512/64 + 512/256);
        // at relu1_1 the two blended maps, four normalized ones, two reconstructions.
        let features = 4 * ANALOGY_FEATURE_FLOATS * (pa + pb);
        let level = 4 * 8 * 64 * p + VOTE_BYTES_PER_PIXEL * p;
        let n = 64 * p as usize;
        // The solver's vectors; the point, the best point, the gradient as the network returns
        // it, and the other direction's result; the slice's activations.
        let deconvolution =
            s.solver()?.with_history(s.history)?.memory(n) + 4 * 4 * n as u64 + SLICE_BYTES_PER_PIXEL * p;
        let network = nst_features::SESSION_BYTES_PER_PIXEL * p;
        let bytes = nst_features::RUNTIME_BYTES + features + level + deconvolution.max(network) + ANALOGY_REST * p;
        if bytes > s.max_memory {
            return Err(Error::TooLarge {
                width: w as usize,
                height: h as usize,
                needed: bytes,
                allowed: s.max_memory,
                tile: None,
                history: s.history,
                gpu: false,
            });
        }
        Ok(Plan { tile: None, tiles: 1, history: s.history, bytes, gpu_bytes: None, pairs_on_gpu: false })
    }
}

/// Floats per image pixel in the relu1_1 … relu5_1 features Deep Image Analogy keeps.
const ANALOGY_FEATURE_FLOATS: u64 = 64 + 32 + 16 + 8 + 2;

/// What the parts above leave out, measured: Chelsea × The Starry Night at 512×341 peaked at
/// 3.08 GB (`/usr/bin/time -v`, 800 evaluations) where they add up to 2.48 GB, the rest being
/// the blends' copies, the sessions of five slices and the heap's holes between levels.
const ANALOGY_REST: u64 = 4_000;

/// A field's vote holds, per pixel, where its up to 25 values come from.
const VOTE_BYTES_PER_PIXEL: u64 = 256;

/// The relu1_1 → relu2_1 slice's forward and backward activations: about twelve maps of 64
/// channels at full size (the convolution, its ReLU and mask, the pooling's upsampled gradient,
/// maximum and mask, the transposed convolutions), 3 kB a pixel.
const SLICE_BYTES_PER_PIXEL: u64 = 3_200;

/// What a stage may use: the machine's memory, and the GPU's when the network runs on CUDA.
#[derive(Clone, Copy, Debug)]
struct Budget {
    host: u64,
    gpu: Option<u64>,
}

/// The first plan that fits in `budget`, besides `held` bytes the run keeps throughout
/// (the full-size content and style tensors). The history holds at most one pair per
/// evaluation, so a stage of `evaluations` needs `min(history, evaluations)` pairs.
/// Tried in order: the whole image; tiles from the largest core down, each with
/// the longest history (halved, not below [`COMFORTABLE_HISTORY`]) that fits;
/// then the smallest tiles with a history down to [`MIN_HISTORY`]. `tile` forces
/// tiles of that core; `regions` guided style regions add to the network's working set.
/// Refuses, saying what it would take, when nothing fits.
fn plan(
    spec: &LossSpec,
    solver: &Lbfgs<f32>,
    (height, width): (usize, usize),
    styles: &[(usize, usize)],
    (history, evaluations): (usize, usize),
    held: u64,
    (budget, tile, regions): (Budget, Option<usize>, usize),
) -> Result<Plan, Error> {
    let n = 3 * height * width;
    let vector = 4 * n as u64;
    let style_images: u64 = styles.iter().map(|&(h, w)| 3 * 4 * (h * w) as u64).sum();
    let fixed =
        nst_features::RUNTIME_BYTES + held + VECTORS * vector + spec.content_target_bytes(height, width) + style_images;
    // Styles are run through the same network: their windows count too.
    let images: Vec<(usize, usize)> = std::iter::once((height, width)).chain(styles.iter().copied()).collect();
    let cores: Vec<Option<usize>> = match tile {
        Some(core) => vec![Some(core)],
        // A core at least as large as the image is the whole image.
        None => std::iter::once(None)
            .chain(TILE_CORES.iter().filter(|&&c| c < height.max(width)).map(|&c| Some(c)))
            .collect(),
    };
    let pairs = history.min(evaluations).max(1);
    let histories = |floor: usize| {
        let mut h = vec![pairs];
        while h[h.len() - 1] > floor {
            h.push((h[h.len() - 1] / 2).max(floor));
        }
        h
    };
    // A plan, or what it needs beyond the budget: (bytes, on the GPU).
    let attempt = |core: Option<usize>, m: usize| -> Result<Result<Plan, (u64, bool)>, Error> {
        let net = spec.working_set(&images, core, regions);
        let host = fixed + solver.clone().with_history(m)?.memory(n);
        // The solver keeps the requested history unless it had to be shortened.
        let history = if m < pairs { m } else { history };
        let plan = |bytes, gpu_bytes, pairs_on_gpu| Plan {
            tile: net.core,
            tiles: net.tiles,
            history,
            bytes,
            gpu_bytes,
            pairs_on_gpu,
        };
        Ok(match budget.gpu {
            None if host + net.bytes <= budget.host => Ok(plan(host + net.bytes, None, false)),
            None => Err((host + net.bytes, false)),
            Some(free) => {
                let gpu = nst_features::CUDA_RUNTIME_BYTES + net.gpu_bytes;
                // The pairs go to the GPU when there are enough of them to pay and they fit
                // there too; else they stay on the host.
                let with_pairs = gpu + DevicePairs::bytes(n, m);
                let host_with_pairs = host + DevicePairs::host_bytes(n);
                let pairs_pay = DevicePairs::pay_for(m, evaluations)
                    && DevicePairs::fits(n, m)
                    && with_pairs <= free
                    && host_with_pairs <= budget.host;
                match (host <= budget.host, gpu <= free) {
                    (true, true) if pairs_pay => Ok(plan(host_with_pairs, Some(with_pairs), true)),
                    (true, true) => Ok(plan(host, Some(gpu), false)),
                    (_, false) => Err((gpu, true)),
                    (false, true) => Err((host, false)),
                }
            }
        })
    };
    let comfortable =
        cores.iter().flat_map(|&c| histories(COMFORTABLE_HISTORY.min(pairs)).into_iter().map(move |m| (c, m)));
    let last = cores[cores.len() - 1];
    let tight = histories(MIN_HISTORY.min(pairs)).into_iter().map(|m| (last, m));
    // The last attempt is the smallest: what it lacks is what the error says.
    let mut lacking = (u64::MAX, false);
    for (core, m) in comfortable.chain(tight) {
        match attempt(core, m)? {
            Ok(plan) => return Ok(plan),
            Err(over) => lacking = over,
        }
    }
    let (needed, gpu) = lacking;
    Err(Error::TooLarge {
        width,
        height,
        needed,
        allowed: if gpu { budget.gpu.unwrap_or_default() } else { budget.host },
        tile: last,
        history: MIN_HISTORY.min(pairs),
        gpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nst_features::LossConfig;
    use nst_optim::Bounds;

    fn gatys() -> LossSpec {
        LossConfig::preset("gatys").unwrap().resolve().unwrap()
    }

    /// The machine's memory alone (the network on the CPU).
    fn cpu(host: u64) -> Budget {
        Budget { host, gpu: None }
    }

    /// The default solver: L-BFGS-B in [0, 1].
    fn lbfgsb() -> Lbfgs<f32> {
        Lbfgs::new().with_bounds(Bounds::Uniform { lower: 0.0, upper: 1.0 })
    }

    #[test]
    fn small_images_run_whole_and_large_ones_in_tiles() {
        let obj = gatys();
        let p =
            plan(&obj, &lbfgsb(), (512, 512), &[(512, 400)], (100, 500), 0, (cpu(12_000_000_000), None, 0)).unwrap();
        assert_eq!((p.tile, p.tiles, p.history), (None, 1, 100));
        // A few evaluations hold a few pairs: large tiles, the history untouched.
        let p =
            plan(&obj, &lbfgsb(), (4096, 4096), &[(4096, 2560)], (100, 4), 0, (cpu(12_000_000_000), None, 0)).unwrap();
        assert_eq!((p.tile, p.tiles, p.history), (Some(768), 36, 100), "{p:?}");
        // Many evaluations: the history shrinks to 10 before the tiles go below 512.
        let p = plan(&obj, &lbfgsb(), (4096, 4096), &[(4096, 2560)], (100, 500), 0, (cpu(12_000_000_000), None, 0))
            .unwrap();
        assert_eq!((p.tile, p.history), (Some(512), 12), "{p:?}");
        assert!(p.bytes <= 12_000_000_000);
    }

    #[test]
    fn history_shrinks_before_refusing_and_forced_tiles_are_kept() {
        let obj = gatys();
        let p = plan(&obj, &lbfgsb(), (2048, 2048), &[], (1000, 1000), 0, (cpu(8_000_000_000), None, 0)).unwrap();
        assert!(p.history < 1000 && p.tile.is_some(), "{p:?}");
        let p = plan(&obj, &lbfgsb(), (300, 300), &[], (10, 10), 0, (cpu(12_000_000_000), Some(128), 0)).unwrap();
        assert_eq!((p.tile, p.tiles), (Some(128), 9));
        let e = plan(&obj, &lbfgsb(), (16384, 16384), &[], (100, 100), 0, (cpu(12_000_000_000), None, 0)).unwrap_err();
        assert!(matches!(e, Error::TooLarge { width: 16384, allowed: 12_000_000_000, .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.starts_with("a 16384×16384 output needs about ") && e.contains("more than the 12.0 GB allowed"),
            "{e}"
        );
    }

    #[test]
    fn on_cuda_the_network_fits_the_gpu_and_the_solver_the_machine() {
        let obj = gatys();
        let card = |free: u64| Budget { host: 64_000_000_000, gpu: Some(free) };
        // 2048² whole on an 80 GB card, though the CPU's estimate would tile it in 12 GB.
        let p = plan(&obj, &lbfgsb(), (2048, 2048), &[(2048, 2048)], (100, 500), 0, (card(80_000_000_000), None, 0))
            .unwrap();
        assert_eq!((p.tile, p.history, p.pairs_on_gpu), (None, 100, true), "{p:?}");
        // The network's share, and the 100 pairs' (10 GB).
        let pairs = DevicePairs::bytes(3 * 2048 * 2048, 100);
        assert!(p.gpu_bytes.unwrap() - pairs < 20_000_000_000, "{p:?}");
        // Where the pairs do not fit beside the network, they stay in host memory.
        let free = p.gpu_bytes.unwrap() - pairs / 2;
        let q = plan(&obj, &lbfgsb(), (2048, 2048), &[(2048, 2048)], (100, 500), 0, (card(free), None, 0)).unwrap();
        assert_eq!(
            (q.tile, q.history, q.pairs_on_gpu, q.gpu_bytes),
            (None, 100, false, Some(p.gpu_bytes.unwrap() - pairs))
        );
        // On the host, the vectors copied to and from the GPU's pairs.
        assert_eq!(p.bytes, q.bytes + DevicePairs::host_bytes(3 * 2048 * 2048));
        // A run too short to hold the pairs from which the GPU's copy pays keeps them on the host.
        for (evaluations, on_gpu) in [(DevicePairs::PAYS_FROM, false), (DevicePairs::PAYS_FROM + 1, true)] {
            let budget = (card(80_000_000_000), None, 0);
            let q = plan(&obj, &lbfgsb(), (512, 512), &[], (100, evaluations), 0, budget).unwrap();
            assert_eq!(q.pairs_on_gpu, on_gpu, "{evaluations} evaluations: {q:?}");
        }
        let p = plan(&obj, &lbfgsb(), (2048, 2048), &[], (100, 500), 0, (cpu(12_000_000_000), None, 0)).unwrap();
        assert!(p.tile.is_some());
        // 8192² in tiles on an 80 GB card (measured on an H200 in 2048² cores: 40.5 GB), the
        // history short enough for the machine.
        let p = plan(&obj, &lbfgsb(), (8192, 8192), &[(8192, 8192)], (100, 500), 0, (card(80_000_000_000), None, 0))
            .unwrap();
        assert!(p.tile.is_some() && p.gpu_bytes.unwrap() <= 80_000_000_000, "{p:?}");
        assert!(p.bytes <= 64_000_000_000 && p.history < 100, "{p:?}");
        // A card without room for the provider itself is refused, saying so.
        let e = plan(&obj, &lbfgsb(), (512, 512), &[], (100, 500), 0, (card(1_000_000_000), None, 0)).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("of GPU memory") && e.ends_with("more than the 1.0 GB free on the GPU"), "{e}");
    }
}
