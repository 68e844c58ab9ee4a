//! The parsed arguments checked and resolved into what the run needs.

use crate::args::{Args, LineSearchArg, MethodArg, PoolArg};
use anyhow::{Context, Result, bail};
use nst_features::{LossConfig, Pool};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the optimization starts.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// The content image.
    Content,
    /// Uniform noise in [0, 1] from `--seed`.
    Random,
    /// An image file, resized to the output size.
    Image(#[serde(serialize_with = "lossy_path")] PathBuf),
}

/// A path in the report as text, any bytes that are not UTF-8 replaced.
fn lossy_path<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

fn lossy_paths<S: serde::Serializer>(ps: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ps.iter().map(|p| p.to_string_lossy()))
}

/// The style-swap parameters.
#[derive(Clone, Debug, Serialize)]
pub struct Swap {
    pub layer: nst_features::Layer,
    pub patch: usize,
    pub stride: usize,
    pub swaps: usize,
}

/// The reconstruction TV weight of `--method swap` when none is given.
pub const SWAP_TV: f64 = 1e-5;

/// The evaluation budget of `--method swap` when none is given: the reconstruction
/// converges in far fewer evaluations than Gatys' optimization.
pub const SWAP_EVALUATIONS: u32 = 100;

/// The longest side of swap style images (the reference implementation's cap).
pub const SWAP_STYLE_MAX: u32 = 512;

/// Everything a run needs, checked.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    #[serde(serialize_with = "lossy_path")]
    pub content: PathBuf,
    #[serde(serialize_with = "lossy_paths")]
    pub styles: Vec<PathBuf>,
    pub blend: Vec<f32>,
    #[serde(serialize_with = "lossy_path")]
    pub output: PathBuf,
    pub size: u32,
    pub style_scale: f64,
    pub evaluations: usize,
    pub seed: u64,
    pub loss: LossConfig,
    pub swap: Option<Swap>,
    pub original_colors: bool,
    pub color_transfer: bool,
    /// Coarse-to-fine stages: (longest side, evaluations), the last at `size`.
    pub stages: Vec<(u32, usize)>,
    /// The memory budget in bytes.
    pub max_memory: u64,
    /// Tiles of this core side at every stage, when forced.
    pub tile: Option<usize>,
    pub init: Init,
    pub history: usize,
    pub line_search: LineSearchArg,
    pub lr: f64,
    pub bounds: bool,
    pub save_every: Option<usize>,
    pub device: String,
}

/// A weight or factor: the network computes in float32, so it must be finite there.
fn finite_non_negative(what: &str, v: f64) -> Result<f64> {
    if !(v >= 0.0 && (v as f32).is_finite()) {
        let v = if v.abs() >= 1e9 { format!("{v:e}") } else { v.to_string() };
        bail!("{what} must be a finite number ≥ 0 (at most 3.4e38, float32's largest), got {v}");
    }
    Ok(v)
}

/// `relu3_1:0.5,relu4_2` → {relu3_1: 0.5·base, relu4_2: base}.
fn layer_list(what: &str, spec: &str, base: f64) -> Result<BTreeMap<String, f64>> {
    if spec.split(',').all(|s| s.trim().is_empty()) {
        bail!("{what} names no layer (to leave a term out, set its weight to 0)");
    }
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, factor) = match item.split_once(':') {
                Some((n, f)) => {
                    let f: f64 =
                        f.trim().parse().with_context(|| format!("{what}: {f:?} in {item:?} is not a number"))?;
                    (n.trim(), finite_non_negative(&format!("{what} factor of {n}"), f)?)
                }
                None => (item, 1.0),
            };
            name.parse::<nst_features::Layer>()?;
            Ok((name.to_string(), base * factor))
        })
        .collect()
}

impl Settings {
    /// Resolves `args`; every bad value is a one-line error.
    pub fn from_args(args: &Args) -> Result<Self> {
        let mut loss = LossConfig::preset(&args.preset)?;
        let first = |m: &BTreeMap<String, f64>| m.values().next().copied().unwrap_or(1.0);
        let cw = finite_non_negative("--content-weight", args.content_weight.unwrap_or(first(&loss.content)))?;
        let sw = finite_non_negative("--style-weight", args.style_weight.unwrap_or(first(&loss.style)))?;
        let default_tv = if args.method == MethodArg::Swap { SWAP_TV } else { loss.tv };
        loss.tv = finite_non_negative("--tv-weight", args.tv_weight.unwrap_or(default_tv))?;
        let reweight = |m: &BTreeMap<String, f64>, w: f64| m.keys().map(|k| (k.clone(), w)).collect();
        loss.content = match &args.content_layers {
            Some(spec) => layer_list("--content-layers", spec, cw)?,
            None => reweight(&loss.content, cw),
        };
        loss.style = match &args.style_layers {
            Some(spec) => layer_list("--style-layers", spec, sw)?,
            None => reweight(&loss.style, sw),
        };
        if let Some(p) = args.pool {
            loss.pool = match p {
                PoolArg::Max => Pool::Max,
                PoolArg::Avg => Pool::Avg,
            };
        }
        loss.resolve()?;

        let swap = match args.method {
            MethodArg::Gatys => None,
            MethodArg::Swap => {
                if args.patch_stride > args.patch_size {
                    bail!("--patch-stride {} is larger than --patch-size {}", args.patch_stride, args.patch_size);
                }
                Some(Swap {
                    layer: args.swap_layer.parse()?,
                    patch: args.patch_size as usize,
                    stride: args.patch_stride as usize,
                    swaps: args.swaps as usize,
                })
            }
        };
        let evaluations = args.iterations.unwrap_or(if swap.is_some() { SWAP_EVALUATIONS } else { 500 }) as usize;
        if let Some(sw) = &swap
            && evaluations < sw.swaps
        {
            bail!("--iterations {evaluations} is less than one evaluation per swap ({})", sw.swaps);
        }
        let mut stages = if args.no_multiscale || swap.is_some() {
            vec![(args.size, evaluations)]
        } else {
            schedule(args.multiscale_start, args.size, evaluations)
        };
        let mut evaluations = evaluations;
        if let Some(spec) = &args.stage_iterations {
            if swap.is_some() {
                bail!("--stage-iterations is for --method gatys; swap runs one stage");
            }
            let sides = if args.no_multiscale {
                vec![args.size]
            } else {
                schedule(args.multiscale_start, args.size, usize::MAX).into_iter().map(|(s, _)| s).collect()
            };
            let counts = spec
                .split(',')
                .map(|v| match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => bail!("--stage-iterations: {v:?} is not a whole number > 0"),
                })
                .collect::<Result<Vec<_>>>()?;
            if counts.len() != sides.len() {
                let list: Vec<String> = sides.iter().map(u32::to_string).collect();
                bail!(
                    "--stage-iterations has {} numbers for {} stages ({} px)",
                    counts.len(),
                    sides.len(),
                    list.join(", ")
                );
            }
            stages = sides.into_iter().zip(counts).collect();
            evaluations = stages.iter().map(|s| s.1).sum();
        }
        let max_memory = match args.max_memory {
            Some(gb) if gb.is_finite() && gb > 0.0 => (gb * 1e9) as u64,
            Some(gb) => bail!("--max-memory must be a number of GB > 0, got {gb}"),
            None => crate::memory::physical_memory().map_or(8_000_000_000, |b| b / 2),
        };
        let blend = match &args.style_blend {
            None => vec![1.0; args.styles.len()],
            Some(spec) => {
                let b = spec
                    .split(',')
                    .map(|s| s.trim().parse::<f32>().with_context(|| format!("--style-blend: {s:?} is not a number")))
                    .collect::<Result<Vec<_>>>()?;
                if b.len() != args.styles.len() {
                    bail!("--style-blend has {} weights for {} style images", b.len(), args.styles.len());
                }
                if b.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || b.iter().sum::<f32>() <= 0.0 {
                    bail!("--style-blend weights must be finite, ≥ 0 and not all 0");
                }
                b
            }
        };
        if !(args.style_scale.is_finite() && args.style_scale > 0.0 && args.style_scale <= 8.0) {
            bail!("--style-scale must be in (0, 8], got {}", args.style_scale);
        }
        if !(args.lr.is_finite() && args.lr > 0.0) {
            bail!("--lr must be a finite number > 0, got {}", args.lr);
        }
        let init = match args.init.as_str() {
            "content" => Init::Content,
            "random" => Init::Random,
            path => Init::Image(PathBuf::from(path)),
        };
        Ok(Settings {
            content: args.content.clone(),
            styles: args.styles.clone(),
            blend,
            output: args.output.clone(),
            size: args.size,
            style_scale: args.style_scale,
            evaluations,
            seed: args.seed,
            loss,
            swap,
            original_colors: args.original_colors,
            stages,
            max_memory,
            tile: args.tile.map(|t| t as usize),
            color_transfer: args.color_transfer,
            init,
            history: args.history as usize,
            line_search: args.line_search,
            lr: args.lr,
            bounds: !args.no_bounds,
            save_every: args.save_every.map(|n| n as usize),
            device: format!("{:?}", args.device).to_lowercase(),
        })
    }
}

impl Settings {
    /// The images the run reads: content, styles, and an `--init` image.
    pub fn inputs(&self) -> Vec<&Path> {
        let mut inputs: Vec<&Path> = vec![&self.content];
        inputs.extend(self.styles.iter().map(PathBuf::as_path));
        if let Init::Image(p) = &self.init {
            inputs.push(p);
        }
        inputs
    }
}

/// Sides `start, 2·start, …` below `size`, then `size`; the last stage gets half the
/// evaluations and the others share the rest (each at least one, when the budget allows).
pub fn schedule(start: u32, size: u32, evaluations: usize) -> Vec<(u32, usize)> {
    let mut sides = Vec::new();
    let mut side = start;
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
    }

    #[test]
    fn layer_lists_take_factors_and_refuse_garbage() {
        let m = layer_list("--style-layers", "relu1_1, relu2_1:0.5", 100.0).unwrap();
        assert_eq!(m["relu1_1"], 100.0);
        assert_eq!(m["relu2_1"], 50.0);
        assert!(layer_list("--style-layers", "relu9_1", 1.0).is_err());
        assert!(layer_list("--style-layers", "relu1_1:x", 1.0).is_err());
        assert!(layer_list("--style-layers", "relu1_1:-1", 1.0).is_err());
        assert!(layer_list("--style-layers", "relu1_1:inf", 1.0).is_err());
        assert!(layer_list("--content-layers", ",", 1.0).is_err());
        assert!(layer_list("--content-layers", "", 1.0).is_err());
    }
}
