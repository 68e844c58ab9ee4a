//! How a transfer is done: the method, sizes and schedule, the loss, colours, the solver
//! and the memory budget. Everything but the images; checked by [`Settings::check`].

use crate::Error;
use nst_features::{Layer, LossConfig, LossSpec, Pool, check_weight, number};
use nst_optim::{Bounds, BoxMethod, Lbfgs, LineSearch};
use serde::{Deserialize, Serialize};

/// The method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Gatys et al.: optimize the image to match the styles' Gram matrices.
    Gatys,
    /// Chen & Schmidt: swap the content's feature patches for the style's, then reconstruct.
    Swap(Swap),
    /// Liao et al.: dense correspondences by PatchMatch on the features, coarse to fine,
    /// and the painting's own pixels along them.
    Analogy(Analogy),
}

/// The Deep Image Analogy parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analogy {
    /// How much of the photo's structure the levels keep, 1 (least) to 3 (most): the
    /// reference's blend-weight levels (3 for photo → painting, 2 for painting → photo).
    pub weights: u8,
    /// Photo-realistic refinement: the photo's detail put back into the result
    /// (the reference's weighted-least-squares step), for photo → photo.
    pub photo: bool,
}

impl Default for Analogy {
    fn default() -> Self {
        Self { weights: 3, photo: false }
    }
}

/// The style-swap parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Swap {
    /// The layer whose patches are swapped.
    pub layer: Layer,
    /// Patch side, in feature pixels.
    pub patch: usize,
    /// Distance between patch corners (1 ≤ stride ≤ patch).
    pub stride: usize,
    /// Swap-and-reconstruct rounds, each on the previous output.
    pub swaps: usize,
}

impl Default for Swap {
    fn default() -> Self {
        Self { layer: "relu3_1".parse().expect("a VGG16 layer"), patch: 3, stride: 1, swaps: 1 }
    }
}

impl Swap {
    /// Round `round`'s share of `evaluations`: equal shares, the first rounds taking one more
    /// each while the remainder lasts (so round 0's is the largest).
    pub fn round_evaluations(&self, evaluations: usize, round: usize) -> usize {
        evaluations / self.swaps + usize::from(round < evaluations % self.swaps)
    }
}

/// The L-BFGS line search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineSearchKind {
    /// Strong Wolfe (Moré–Thuente).
    Wolfe,
    /// Armijo backtracking.
    Armijo,
    /// The fixed step `lr` of `torch.optim.LBFGS`.
    Fixed,
}

/// How the pixels are kept in [0, 1] during the optimization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundsMethod {
    /// L-BFGS-B (generalized Cauchy point and subspace minimization).
    #[default]
    Lbfgsb,
    /// Plain L-BFGS over `z`, each pixel `σ(z)` ([`nst_optim::BoxMethod::Sigmoid`]): fewer
    /// passes over the pixels per iteration (what an iteration costs beside a network on a
    /// GPU), but pixels near 0 or 1 move slowly: a style of saturated colours converges far
    /// later.
    Sigmoid,
    /// The plain L-BFGS direction on the pixels not held at 0 or 1, projected into [0, 1]
    /// ([`nst_optim::BoxMethod::ActiveSet`]): about as few passes per iteration as
    /// [`BoundsMethod::Sigmoid`], and a pixel that reaches 0 or 1 is exactly there.
    #[serde(rename = "active-set")]
    ActiveSet,
}

/// The reconstruction TV weight of style swap. With less (the earlier 1e-5) the
/// reconstruction fills the directions relu3_1 does not see with pixel-level colour
/// noise; with more (1e-3) strokes blur.
pub const SWAP_TV: f64 = 5e-4;

/// The pooling of style swap's features and reconstruction: average pooling spreads the
/// gradient over each window, where max pooling's lands on one pixel in four and the
/// reconstruction comes out speckled (and converges less far).
pub const SWAP_POOL: Pool = Pool::Avg;

/// The evaluation budget of style swap: the reconstruction converges in far fewer
/// evaluations than Gatys' optimization.
pub const SWAP_EVALUATIONS: usize = 100;

/// The evaluation budget of Deep Image Analogy, over its eight feature deconvolutions
/// (the reference's 100 iterations each, 4 levels × 2 directions).
pub const ANALOGY_EVALUATIONS: usize = 800;

/// The feature deconvolutions of Deep Image Analogy, among which its budget is shared.
pub const ANALOGY_DECONVOLUTIONS: usize = 8;

/// The L-BFGS history of Deep Image Analogy's deconvolutions (the reference's).
pub const ANALOGY_HISTORY: usize = 4;

/// The longest side of swap style images (the reference implementation's cap).
pub const SWAP_STYLE_MAX: u32 = 512;

/// The largest output side.
pub const MAX_SIZE: u32 = 16384;

/// Everything about a transfer but its images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The method.
    pub method: Method,
    /// Longest side of the output, in pixels.
    pub size: u32,
    /// The evaluation budget (network passes), over all stages.
    pub evaluations: usize,
    /// Coarse to fine from this longest side, doubling up to `size`; `None`: one scale.
    /// Gatys only (swap runs one stage).
    pub multiscale: Option<u32>,
    /// Evaluations per stage, coarsest first, instead of the split of `evaluations`.
    pub stage_evaluations: Option<Vec<usize>>,
    /// Layers, weights, pooling and TV.
    pub loss: LossConfig,
    /// The style images' longest side relative to the output's.
    pub style_scale: f64,
    /// Keep the content's colours: the stylized luminance with the content's chroma.
    pub original_colors: bool,
    /// Recolour the style images to the content's colour mean and covariance first.
    pub color_transfer: bool,
    /// Seed of a random initial image.
    pub seed: u64,
    /// L-BFGS correction pairs.
    pub history: usize,
    /// The line search.
    pub line_search: LineSearchKind,
    /// The step of the fixed line search.
    pub lr: f64,
    /// Keep pixels in [0, 1] during the optimization.
    pub bounds: bool,
    /// How, when they are kept.
    #[serde(default)]
    pub bounds_method: BoundsMethod,
    /// The memory the run may use, in bytes.
    pub max_memory: u64,
    /// Run the network in tiles of about this many pixels at every stage (by default only
    /// where memory requires it).
    pub tile: Option<usize>,
}

impl Default for Settings {
    /// Gatys with the `gatys` preset, 512 px, 500 evaluations coarse to fine from 256 px,
    /// strong Wolfe with 100 pairs in [0, 1], half the machine's memory.
    fn default() -> Self {
        Self {
            method: Method::Gatys,
            size: 512,
            evaluations: 500,
            multiscale: Some(256),
            stage_evaluations: None,
            loss: LossConfig::preset("gatys").expect("a preset"),
            style_scale: 1.0,
            original_colors: false,
            color_transfer: false,
            seed: 0,
            history: 100,
            line_search: LineSearchKind::Wolfe,
            lr: 1.0,
            bounds: true,
            bounds_method: BoundsMethod::Lbfgsb,
            max_memory: physical_memory().map_or(8_000_000_000, |b| b / 2),
            tile: None,
        }
    }
}

impl Settings {
    /// The defaults for `method`: style swap gets [`SWAP_EVALUATIONS`], the TV weight
    /// [`SWAP_TV`] and [`SWAP_POOL`]; analogy [`ANALOGY_EVALUATIONS`] and [`ANALOGY_HISTORY`].
    pub fn for_method(method: Method) -> Self {
        let mut s = Self::default();
        match method {
            Method::Gatys => {}
            Method::Swap(_) => {
                s.evaluations = SWAP_EVALUATIONS;
                s.loss.tv = SWAP_TV;
                s.loss.pool = SWAP_POOL;
            }
            Method::Analogy(_) => {
                s.evaluations = ANALOGY_EVALUATIONS;
                s.history = ANALOGY_HISTORY;
            }
        }
        Self { method, ..s }
    }

    /// The swap parameters, when the method is style swap.
    pub fn swap(&self) -> Option<&Swap> {
        match &self.method {
            Method::Swap(sw) => Some(sw),
            Method::Gatys | Method::Analogy(_) => None,
        }
    }

    /// The analogy parameters, when the method is Deep Image Analogy.
    pub fn analogy(&self) -> Option<&Analogy> {
        match &self.method {
            Method::Analogy(a) => Some(a),
            Method::Gatys | Method::Swap(_) => None,
        }
    }

    /// Whether the method runs one stage at the output size (swap and analogy).
    fn single_stage(&self) -> bool {
        !matches!(self.method, Method::Gatys)
    }

    /// The stages, (longest side, evaluations), coarsest first, the last at `size`, with
    /// coarse-to-fine runs starting at `multiscale` (a request's own start:
    /// [`Request::stages`](crate::Request::stages)).
    pub(crate) fn stages_from(&self, multiscale: Option<u32>) -> Result<Vec<(u32, usize)>, Error> {
        let single = self.single_stage() || multiscale.is_none();
        let Some(budgets) = &self.stage_evaluations else {
            return Ok(match multiscale {
                Some(start) if !single => schedule(start, self.size, self.evaluations),
                _ => vec![(self.size, self.evaluations)],
            });
        };
        self.check_stage_evaluations()?;
        let sides: Vec<u32> = match multiscale {
            Some(start) if !single => schedule(start, self.size, usize::MAX).into_iter().map(|(s, _)| s).collect(),
            _ => vec![self.size],
        };
        if budgets.len() != sides.len() {
            let list: Vec<String> = sides.iter().map(u32::to_string).collect();
            return Err(Error::setting(
                "stage_evaluations",
                format!(
                    "has {} for {} ({} px)",
                    crate::words::count(budgets.len(), "number"),
                    crate::words::count(sides.len(), "stage"),
                    list.join(", ")
                ),
            ));
        }
        Ok(sides.into_iter().zip(budgets.iter().copied()).collect())
    }

    /// What can be told of the stages' own budgets without the images (how many stages there
    /// are depends on them: [`Request::stages`](crate::Request::stages)).
    fn check_stage_evaluations(&self) -> Result<(), Error> {
        let Some(budgets) = &self.stage_evaluations else { return Ok(()) };
        if budgets.iter().try_fold(0usize, |sum, &n| sum.checked_add(n)).is_none() {
            return Err(Error::setting("stage_evaluations", "add up to more evaluations than can be counted"));
        }
        if self.single_stage() {
            return Err(Error::setting("stage_evaluations", "is for Gatys; swap and analogy run one stage"));
        }
        if budgets.contains(&0) {
            return Err(Error::setting("stage_evaluations", "must be at least 1 for every stage"));
        }
        Ok(())
    }

    /// The evaluations the stages add up to.
    pub fn total_evaluations(&self) -> Result<usize, Error> {
        self.check_stage_evaluations()?;
        Ok(self.stage_evaluations.as_ref().map_or(self.evaluations, |budgets| budgets.iter().sum()))
    }

    /// The loss the optimization minimizes: the configured one, or for swap a content term
    /// at the swap layer with the configured TV and pooling; for analogy the layers whose
    /// features it matches (relu5_1 … relu1_1, as content layers of weight 1).
    pub fn loss_spec(&self) -> Result<LossSpec, Error> {
        if self.analogy().is_some() {
            let content =
                crate::analogy::LAYERS.iter().rev().map(|l| (l.parse().expect("a VGG16 layer"), 1.0)).collect();
            return Ok(LossSpec { pool: self.loss.pool, content, style: vec![], tv: 0.0 });
        }
        match self.swap() {
            None => Ok(self.loss.resolve()?),
            Some(sw) => Ok(LossSpec {
                pool: self.loss.pool,
                content: vec![(sw.layer, 1.0)],
                style: vec![],
                tv: check_weight("weight of tv", self.loss.tv)?,
            }),
        }
    }

    /// The L-BFGS(-B) solver these settings ask for: history, line search and bounds (pixels
    /// in [0, 1], kept as `bounds_method` says; none for analogy's features), no gradient
    /// test (the budget ends the run).
    pub fn solver(&self) -> Result<Lbfgs<f32>, Error> {
        let line_search = match self.line_search {
            LineSearchKind::Wolfe => LineSearch::strong_wolfe(),
            LineSearchKind::Armijo => LineSearch::armijo(),
            LineSearchKind::Fixed => LineSearch::fixed(self.lr as f32),
        };
        let solver = Lbfgs::<f32>::new()
            .with_history(self.history)?
            .with_line_search(line_search)?
            .with_gradient_tolerance(0.0)?;
        // Analogy's deconvolutions run unconstrained, as the reference's (their features are
        // clamped at 0 after): L-BFGS-B over millions of features at their bound costs more
        // per iteration than the slice's network pass. Their loss, a sum of squares, is at
        // least 0: their first step is scaled from it (`1/‖g‖` fell short by about 10⁶).
        Ok(match self.analogy() {
            Some(_) => solver.with_lower_bound(0.0)?,
            None if self.bounds => solver.with_bounds(Bounds::Uniform { lower: 0.0, upper: 1.0 }).with_box_method(
                match self.bounds_method {
                    BoundsMethod::Lbfgsb => BoxMethod::Projected,
                    BoundsMethod::Sigmoid => BoxMethod::Sigmoid,
                    BoundsMethod::ActiveSet => BoxMethod::ActiveSet,
                },
            ),
            None => solver,
        })
    }

    /// Checks every setting and that they fit together.
    pub fn check(&self) -> Result<(), Error> {
        if !(16..=MAX_SIZE).contains(&self.size) {
            return Err(Error::setting("size", format!("must be from 16 to {MAX_SIZE} px, got {}", self.size)));
        }
        if let Some(start) = self.multiscale
            && start < 16
        {
            return Err(Error::setting("multiscale", format!("must be at least 16 px, got {start}")));
        }
        self.check_stage_evaluations()?;
        if self.evaluations == 0 {
            return Err(Error::setting("evaluations", "must be at least 1"));
        }
        let spec = self.loss_spec()?;
        if spec.content.iter().chain(&spec.style).all(|(_, w)| *w == 0.0) && spec.tv == 0.0 {
            return Err(Error::setting("loss", "has every weight at 0: nothing to optimize"));
        }
        if let Some(sw) = self.swap() {
            if sw.patch == 0 {
                return Err(Error::setting("patch", "must be at least 1"));
            }
            if sw.stride == 0 || sw.stride > sw.patch {
                return Err(Error::setting(
                    "stride",
                    format!("must be from 1 to the patch size ({}), got {}", sw.patch, sw.stride),
                ));
            }
            if sw.swaps == 0 {
                return Err(Error::setting("swaps", "must be at least 1"));
            }
            if self.evaluations < sw.swaps {
                return Err(Error::setting(
                    "evaluations",
                    format!("must be at least one per swap ({}), got {}", sw.swaps, self.evaluations),
                ));
            }
        }
        if let Some(a) = self.analogy() {
            if !(1..=3).contains(&a.weights) {
                return Err(Error::setting("analogy_weights", format!("must be 1, 2 or 3, got {}", a.weights)));
            }
            if self.tile.is_some() {
                return Err(Error::setting("tile", "is not for analogy, which runs whole"));
            }
            if self.evaluations < ANALOGY_DECONVOLUTIONS {
                return Err(Error::setting(
                    "evaluations",
                    format!(
                        "must be at least one per feature deconvolution ({ANALOGY_DECONVOLUTIONS}), got {}",
                        self.evaluations
                    ),
                ));
            }
        }
        if !(self.style_scale.is_finite() && self.style_scale > 0.0 && self.style_scale <= 8.0) {
            return Err(Error::setting("style_scale", format!("must be in (0, 8], got {}", number(self.style_scale))));
        }
        // The solver works in float32.
        if !((self.lr as f32).is_finite() && self.lr as f32 > 0.0) {
            return Err(Error::setting(
                "lr",
                format!("must be a number > 0 and finite in float32, got {}", number(self.lr)),
            ));
        }
        if self.history == 0 {
            return Err(Error::setting("history", "must keep at least 1 pair"));
        }
        if self.max_memory == 0 {
            // A budget below one byte rounds to 0.
            return Err(Error::setting("max_memory", "must be at least 1 byte"));
        }
        // The plan trusts the budget: one beyond the machine would end in the kernel's
        // out-of-memory killer, not in tiles.
        if let Some(total) = physical_memory().filter(|&total| self.max_memory > total) {
            let gb = |b: u64| b as f64 / 1e9;
            return Err(Error::setting(
                "max_memory",
                format!("is {:.1} GB, more than this machine's {:.1} GB", gb(self.max_memory), gb(total)),
            ));
        }
        if self.tile == Some(0) {
            return Err(Error::setting("tile", "must be at least 1 px"));
        }
        Ok(())
    }
}

/// Sides `start, 2·start, …` below `size`, then `size`; the last stage gets half the
/// evaluations and the others share the rest (each at least one, when the budget allows).
pub fn schedule(start: u32, size: u32, evaluations: usize) -> Vec<(u32, usize)> {
    let mut sides = Vec::new();
    // A side of 0 would never double: start at 1 px at least.
    let mut side = start.max(1);
    while side < size && sides.len() + 1 < evaluations {
        sides.push(side);
        side = side.saturating_mul(2);
    }
    if sides.is_empty() {
        return vec![(size, evaluations)];
    }
    let last = evaluations - evaluations / 2;
    let coarse = evaluations - last;
    let k = sides.len();
    let mut stages: Vec<(u32, usize)> =
        sides.iter().enumerate().map(|(i, &s)| (s, coarse / k + usize::from(i < coarse % k))).collect();
    stages.push((size, last));
    stages.retain(|&(_, n)| n > 0);
    stages
}

/// The machine's physical memory in bytes, when the system says.
pub fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system parameters.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages > 0 && page > 0).then(|| pages as u64 * page as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_to_the_size_and_splits_the_budget() {
        assert_eq!(schedule(256, 512, 500), vec![(256, 250), (512, 250)]);
        assert_eq!(schedule(256, 1000, 500), vec![(256, 125), (512, 125), (1000, 250)]);
        assert_eq!(schedule(256, 256, 500), vec![(256, 500)]);
        assert_eq!(schedule(256, 128, 50), vec![(128, 50)]);
        assert_eq!(schedule(256, 2048, 2), vec![(256, 1), (2048, 1)]);
        assert_eq!(schedule(256, 4096, 7).iter().map(|s| s.1).sum::<usize>(), 7);
        // A start of 0 ends (and Settings refuse it).
        assert_eq!(schedule(0, 4, usize::MAX).len(), 3);
        let s = Settings { multiscale: Some(0), stage_evaluations: Some(vec![1]), ..Settings::default() };
        assert!(s.check().is_err());
    }

    #[test]
    fn the_bounds_method_picks_the_solvers_way_of_keeping_pixels_in_range() {
        let s = Settings::default();
        assert_eq!(s.solver().unwrap().box_method(), BoxMethod::Projected);
        let active = Settings { bounds_method: BoundsMethod::ActiveSet, ..s.clone() };
        assert_eq!(active.solver().unwrap().box_method(), BoxMethod::ActiveSet);
        let s = Settings { bounds_method: BoundsMethod::Sigmoid, ..s };
        assert_eq!(s.solver().unwrap().box_method(), BoxMethod::Sigmoid);
        assert!(s.solver().unwrap().bounds().is_constrained());
        assert!(!Settings { bounds: false, ..s }.solver().unwrap().bounds().is_constrained());
    }

    #[test]
    fn stages_follow_the_method_and_the_budgets() {
        let s = Settings { size: 96, multiscale: Some(48), evaluations: 20, ..Settings::default() };
        assert_eq!(s.stages_from(s.multiscale).unwrap(), vec![(48, 10), (96, 10)]);
        let s = Settings { stage_evaluations: Some(vec![3, 2]), ..s };
        assert_eq!(s.stages_from(s.multiscale).unwrap(), vec![(48, 3), (96, 2)]);
        assert_eq!(s.total_evaluations().unwrap(), 5);
        let e = Settings { stage_evaluations: Some(vec![1, 2, 3]), ..s.clone() }.stages_from(Some(48)).unwrap_err();
        assert_eq!(e.to_string(), "stage_evaluations: has 3 numbers for 2 stages (48, 96 px)");
        assert!(Settings { stage_evaluations: Some(vec![0, 5]), ..s.clone() }.stages_from(Some(48)).is_err());
        let e =
            Settings { stage_evaluations: Some(vec![usize::MAX, 2]), ..s.clone() }.stages_from(Some(48)).unwrap_err();
        assert_eq!(e.to_string(), "stage_evaluations: add up to more evaluations than can be counted");
        let swap = Settings { size: 96, ..Settings::for_method(Method::Swap(Swap::default())) };
        assert_eq!(swap.stages_from(swap.multiscale).unwrap(), vec![(96, SWAP_EVALUATIONS)]);
        assert_eq!(swap.loss.tv, SWAP_TV);
        assert!(Settings { stage_evaluations: Some(vec![5]), ..swap }.stages_from(Some(256)).is_err());
    }

    #[test]
    fn bad_settings_are_refused() {
        let ok = Settings::default();
        assert!(ok.check().is_ok());
        for bad in [
            Settings { size: 8, ..ok.clone() },
            Settings { evaluations: 0, ..ok.clone() },
            Settings { style_scale: 0.0, ..ok.clone() },
            Settings { style_scale: f64::NAN, ..ok.clone() },
            Settings { lr: -1.0, ..ok.clone() },
            Settings { history: 0, ..ok.clone() },
            Settings { max_memory: 0, ..ok.clone() },
            Settings { method: Method::Swap(Swap { stride: 4, ..Swap::default() }), ..ok.clone() },
            Settings { method: Method::Swap(Swap { swaps: 600, ..Swap::default() }), ..ok.clone() },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let mut no_style = ok.clone();
        no_style.loss.style.clear();
        assert!(no_style.check().is_err());
        // Swap needs no style layers.
        assert!(
            Settings { loss: no_style.loss, ..Settings::for_method(Method::Swap(Swap::default())) }.check().is_ok()
        );
    }
}
