//! The command line turned into the engine's [`Settings`], and then, with the images read,
//! into a [`Request`]. The rules are the engine's; this module only parses flags and says
//! which flag an error is about.

use crate::args::{Args, BoundsArg, LineSearchArg, MethodArg, PoolArg};
use crate::masks::MaskArgs;
use anyhow::{Context, Result, bail};
use nst_transfer::images::{self, Pixels};
use nst_transfer::words::count;
use nst_transfer::{
    Analogy, BoundsMethod, Error, Init, LineSearchKind, LossConfig, Method, Pool, Request, Settings, Style, Swap,
};
use std::path::{Path, PathBuf};

/// `--init`.
#[derive(Clone, Debug, PartialEq)]
pub enum InitArg {
    /// The content image.
    Content,
    /// Noise from `--seed`.
    Random,
    /// Swap's painting pixels along its matches.
    Painting,
    /// An image file.
    Image(PathBuf),
}

/// What the command line asks for: the settings, the blend weights and the start.
pub struct Job {
    pub settings: Settings,
    pub blend: Vec<f32>,
    pub init: InitArg,
    pub masks: MaskArgs,
}

/// The flag that sets the engine's setting `name`, for messages.
pub fn flag(name: &str) -> &str {
    match name {
        "size" => "--size",
        "evaluations" => "--iterations",
        "multiscale" => "--multiscale-start",
        "stage_evaluations" => "--stage-iterations",
        "patch" => "--patch-size",
        "stride" => "--patch-stride",
        "swaps" => "--swaps",
        "method" => "--method",
        "style_scale" => "--style-scale",
        "lr" => "--lr",
        "history" => "--history",
        "max_memory" => "--max-memory",
        "tile" => "--tile",
        "blend" => "--style-blend",
        "color_transfer" => "--color-transfer",
        "init" => "--init",
        "style masks" => "--style-masks",
        "style source masks" => "--style-source-masks",
        "keep" => "--keep-photo",
        "feather" => "--feather",
        "labels" => "--labels",
        "loss" => "the loss",
        other => other,
    }
}

/// An engine error in the command line's words: settings by their flags, and what to do
/// about an image too small or a loss that overflows (a run too large: [`Job::explain`]).
pub fn explain(e: Error) -> anyhow::Error {
    match e {
        Error::Setting { name, reason } => anyhow::anyhow!("{} {reason}", flag(name)),
        e @ Error::TooSmall { .. } if e.to_string().starts_with("the output") => {
            anyhow::anyhow!("{e} (raise --size)")
        }
        e @ Error::TooSmall { .. } => anyhow::anyhow!("{e} (raise --style-scale or --size)"),
        e @ Error::NonFiniteStart { .. } => {
            anyhow::anyhow!("{e}; lower --style-weight, --content-weight or --tv-weight")
        }
        e => e.into(),
    }
}

/// A weight flag's value, by the engine's rule for weights.
fn weight(flag: &str, v: f64) -> Result<f64> {
    nst_transfer::check_weight(flag, v)?;
    Ok(v)
}

impl Job {
    /// Parses the flags into settings; every bad value is a one-line error.
    pub fn from_args(args: &Args) -> Result<Self> {
        if args.method != MethodArg::Swap {
            let given = [
                (args.swap_layer.is_some(), "--swap-layer"),
                (args.patch_size.is_some(), "--patch-size"),
                (args.patch_stride.is_some(), "--patch-stride"),
                (args.swaps.is_some(), "--swaps"),
            ];
            if let Some((_, flag)) = given.iter().find(|(on, _)| *on) {
                bail!("{flag} is for --method swap");
            }
        }
        if args.method != MethodArg::Gatys {
            // What swap and analogy have no use for: stages (--no-multiscale asks for the one
            // stage they run, and is let be), and the Gatys loss's knobs.
            if args.multiscale_start.is_some() {
                bail!("--multiscale-start is for --method gatys (swap and analogy run one stage, at --size)");
            }
            let loss = [
                (args.content_weight.is_some(), "--content-weight"),
                (args.style_weight.is_some(), "--style-weight"),
                (args.content_layers.is_some(), "--content-layers"),
                (args.style_layers.is_some(), "--style-layers"),
                (args.preset.is_some(), "--preset"),
                (args.method == MethodArg::Analogy && args.tv_weight.is_some(), "--tv-weight"),
            ];
            if let Some((_, flag)) = loss.iter().find(|(on, _)| *on) {
                let why = match args.method {
                    MethodArg::Swap => "swap's loss is the swapped features at --swap-layer, smoothed by --tv-weight",
                    _ => "analogy matches the painting's features along its correspondences: no loss to weigh",
                };
                bail!("{flag} is for --method gatys ({why})");
            }
        }
        if args.method == MethodArg::Analogy && (args.no_bounds || args.bounds.is_some()) {
            let flag = if args.no_bounds { "--no-bounds" } else { "--bounds" };
            bail!("{flag} is for gatys and swap (analogy deconvolves features, which have no range to keep)");
        }
        if args.lr.is_some() && args.line_search != LineSearchArg::Fixed {
            bail!("--lr is the step of --line-search fixed (the other line searches find their own)");
        }
        let method = match args.method {
            MethodArg::Gatys => Method::Gatys,
            MethodArg::Swap => {
                let default = Swap::default();
                Method::Swap(Swap {
                    layer: args.swap_layer.as_deref().map_or(Ok(default.layer), str::parse)?,
                    patch: args.patch_size.map_or(default.patch, |p| p as usize),
                    stride: args.patch_stride.map_or(default.stride, |s| s as usize),
                    swaps: args.swaps.map_or(default.swaps, |n| n as usize),
                })
            }
            MethodArg::Analogy => Method::Analogy(Analogy {
                weights: args.analogy_weights.unwrap_or(Analogy::default().weights),
                photo: args.photo,
            }),
        };
        if args.method != MethodArg::Analogy {
            let given = [
                (args.analogy_reverse.is_some(), "--analogy-reverse"),
                (args.analogy_weights.is_some(), "--analogy-weights"),
                (args.photo, "--photo"),
            ];
            if let Some((_, flag)) = given.iter().find(|(on, _)| *on) {
                bail!("{flag} is for --method analogy");
            }
        }
        let mut s = Settings::for_method(method);
        let preset = LossConfig::preset(args.preset.as_deref().unwrap_or("gatys"))?;
        let first = |m: &std::collections::BTreeMap<String, f64>| m.values().next().copied().unwrap_or(1.0);
        let cw = weight("--content-weight", args.content_weight.unwrap_or(first(&preset.content)))?;
        let sw = weight("--style-weight", args.style_weight.unwrap_or(first(&preset.style)))?;
        let reweight = |m: &std::collections::BTreeMap<String, f64>, w: f64| m.keys().map(|k| (k.clone(), w)).collect();
        s.loss.content = match &args.content_layers {
            Some(spec) => LossConfig::parse_layers(spec, cw).context("--content-layers")?,
            None => reweight(&preset.content, cw),
        };
        s.loss.style = match &args.style_layers {
            Some(spec) => LossConfig::parse_layers(spec, sw).context("--style-layers")?,
            None => reweight(&preset.style, sw),
        };
        s.loss.pool = match args.pool {
            Some(PoolArg::Max) => Pool::Max,
            Some(PoolArg::Avg) => Pool::Avg,
            // Swap has its own pooling (see nst_transfer::SWAP_POOL).
            None if s.swap().is_some() => s.loss.pool,
            None => preset.pool,
        };
        if s.swap().is_none() {
            s.loss.tv = preset.tv;
        }
        if let Some(tv) = args.tv_weight {
            s.loss.tv = weight("--tv-weight", tv)?;
        }
        s.size = args.size;
        if let Some(n) = args.iterations {
            s.evaluations = n as usize;
        }
        if args.no_multiscale {
            s.multiscale = None;
        } else if let Some(start) = args.multiscale_start {
            s.multiscale = Some(start);
        }
        if let Some(spec) = &args.stage_iterations {
            let counts = spec
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .with_context(|| format!("--stage-iterations: {v:?} is not a whole number"))
                })
                .collect::<Result<Vec<_>>>()?;
            // Settings::check refuses numbers that add up past usize (its stages() check).
            s.evaluations = counts.iter().fold(0, |sum, &n| sum.saturating_add(n));
            s.stage_evaluations = Some(counts);
        }
        s.max_memory = match args.max_memory {
            Some(gb) if gb.is_finite() && gb > 0.0 => (gb * 1e9) as u64,
            Some(gb) => bail!("--max-memory must be a number of GB > 0, got {gb}"),
            None => s.max_memory,
        };
        s.tile = args.tile.map(|t| t as usize);
        s.style_scale = args.style_scale;
        s.original_colors = args.original_colors;
        s.color_transfer = args.color_transfer;
        s.seed = args.seed;
        if let Some(h) = args.history {
            s.history = h as usize;
        }
        s.line_search = match args.line_search {
            LineSearchArg::Wolfe => LineSearchKind::Wolfe,
            LineSearchArg::Armijo => LineSearchKind::Armijo,
            LineSearchArg::Fixed => LineSearchKind::Fixed,
        };
        if let Some(lr) = args.lr {
            s.lr = lr;
        }
        s.bounds = !args.no_bounds;
        s.bounds_method = match args.bounds {
            None | Some(BoundsArg::Lbfgsb) => BoundsMethod::Lbfgsb,
            Some(BoundsArg::Sigmoid) => BoundsMethod::Sigmoid,
            Some(BoundsArg::ActiveSet) => BoundsMethod::ActiveSet,
        };
        s.check().map_err(explain)?;
        let blend = match &args.style_blend {
            None => vec![1.0; args.styles.len()],
            Some(spec) => {
                let b = spec
                    .split(',')
                    .map(|s| {
                        let v =
                            s.trim().parse::<f64>().with_context(|| format!("--style-blend: {s:?} is not a number"))?;
                        Ok(nst_transfer::check_weight("--style-blend", v)?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                if b.len() != args.styles.len() {
                    let (weights, styles) = (count(b.len(), "weight"), count(args.styles.len(), "style image"));
                    bail!("--style-blend has {weights} for {styles}");
                }
                if b.len() == 1 {
                    bail!("--style-blend weighs two or more style images against each other; there is one");
                }
                b
            }
        };
        let masks = MaskArgs::from_args(args)?;
        let init = match args.init.as_deref() {
            None => match Init::default_for(&s, args.styles.len(), masks.has_regions()) {
                Init::Painting => InitArg::Painting,
                _ => InitArg::Content,
            },
            Some("content") => InitArg::Content,
            Some("random") => InitArg::Random,
            Some("painting") => InitArg::Painting,
            Some("") => bail!("--init needs content, random, painting or the path of an image"),
            Some(path) => InitArg::Image(PathBuf::from(path)),
        };
        Ok(Self { settings: s, blend, init, masks })
    }

    /// The images the run reads: content, styles, and an `--init` image.
    pub fn inputs<'a>(&'a self, args: &'a Args) -> Vec<(&'static str, &'a Path)> {
        // The photo and the paintings are named by their paths alone.
        let mut inputs: Vec<(&str, &Path)> = vec![("", &args.content)];
        inputs.extend(args.styles.iter().map(|p| ("", p.as_path())));
        if let InitArg::Image(p) = &self.init {
            inputs.push(("--init", p));
        }
        inputs.extend(self.masks.inputs());
        inputs
    }

    /// Reads the images into the engine's request, and plans it: a run that cannot work
    /// (an image too small, too large for memory) stops here, before the network is loaded.
    /// `note` hears of each picture whose colour profile was converted or not applied.
    pub fn request(&self, args: &Args, note: &dyn Fn(&str)) -> Result<Request> {
        let picture = |path: &Path| -> Result<_, Error> {
            let (image, colours) = images::load_with_colours(path, Pixels::Picture)?;
            if let Some(line) = colours.note(&path.display().to_string()) {
                note(&line);
            }
            Ok(image)
        };
        let content = picture(&args.content)?;
        let styles = args
            .styles
            .iter()
            .zip(&self.blend)
            .map(|(p, &weight)| Ok(Style { image: picture(p)?, weight }))
            .collect::<Result<Vec<_>>>()?;
        let init = match &self.init {
            InitArg::Content => Init::Content,
            InitArg::Random => Init::Random,
            InitArg::Painting => Init::Painting,
            InitArg::Image(p) => Init::Image(picture(p).map_err(|e| anyhow::anyhow!("--init {e}"))?),
        };
        let masks = self.masks.read(content.dimensions())?;
        let request = Request { content, styles, init, settings: self.settings.clone(), masks };
        // Fails early what cannot fit anywhere; the engine plans again for its device.
        request.plan(None).map_err(|e| self.explain(e))?;
        Ok(request)
    }

    /// [`explain`], knowing this run's flags: a kept region is blamed on where it came from,
    /// and a run too large says what to lower (the style images too, when they are larger
    /// than the output).
    pub fn explain(&self, e: Error) -> anyhow::Error {
        let scale = self.settings.style_scale;
        match (e, self.masks.keep_flags()) {
            // The kept region may come from a label map as well as from --keep-photo.
            (Error::Setting { name: "keep", reason }, Some(flags)) => anyhow::anyhow!("{flags}: {reason}"),
            (e @ Error::TooLarge { .. }, _) => {
                let lower = if scale > 1.0 {
                    format!("--style-scale: the style images are {scale}× the output's size, or --size")
                } else {
                    "--size".into()
                };
                anyhow::anyhow!("{e} (raise --max-memory if the machine has it, or lower {lower})")
            }
            (e, _) => explain(e),
        }
    }
}
