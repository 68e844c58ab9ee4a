//! What the objective is made of: layers and weights, pooling, TV.

use crate::Error;
use crate::layers::Layer;
use ndarray::ArrayView4;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Pooling between the blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// 2×2 max pooling, as VGG16 was trained.
    #[default]
    Max,
    /// 2×2 average pooling (smoother gradients, as Gatys et al. suggest).
    Avg,
}

/// The style-transfer objective (see `shared/fixtures/README.md` for the exact terms):
/// `Σ w·mean((F−F_c)²)` over content layers, `Σ w·mean((G−A)²)` over style layers,
/// and `tv · ½ Σ (neighbour differences)²` on the preprocessed image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// Pooling between blocks.
    #[serde(default)]
    pub pool: Pool,
    /// Content layers and their weights.
    pub content: BTreeMap<String, f64>,
    /// Style layers and their weights.
    pub style: BTreeMap<String, f64>,
    /// Total-variation weight.
    #[serde(default)]
    pub tv: f64,
}

/// A checked configuration: parsed layers, finite non-negative weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LossSpec {
    /// Pooling between blocks.
    pub pool: Pool,
    /// Content layers with weights, in network order.
    pub content: Vec<(Layer, f32)>,
    /// Style layers with weights, in network order.
    pub style: Vec<(Layer, f32)>,
    /// Total-variation weight.
    pub tv: f32,
}

impl LossConfig {
    /// The named presets: `gatys` (content relu4_2 ×5, style relu1_1…relu5_1 ×100,
    /// TV 1e-3) and `seed` (the original blog's pre-ReLU layers).
    pub fn preset(name: &str) -> Result<Self, Error> {
        let map = |pairs: &[(&str, f64)]| pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        match name {
            "gatys" => Ok(LossConfig {
                pool: Pool::Max,
                content: map(&[("relu4_2", 5.0)]),
                style: map(&[
                    ("relu1_1", 100.0),
                    ("relu2_1", 100.0),
                    ("relu3_1", 100.0),
                    ("relu4_1", 100.0),
                    ("relu5_1", 100.0),
                ]),
                tv: 1e-3,
            }),
            "seed" => Ok(LossConfig {
                pool: Pool::Max,
                content: map(&[("conv3_1", 1.0), ("conv3_2", 1.0)]),
                style: map(&[
                    ("conv1_1", 1000.0),
                    ("conv1_2", 1000.0),
                    ("conv2_1", 1000.0),
                    ("conv2_2", 1000.0),
                    ("conv3_1", 1000.0),
                ]),
                tv: 0.0,
            }),
            other => Err(Error::UnknownPreset(other.to_string())),
        }
    }

    /// Parses a layer list, `relu3_1:0.5,relu4_2`: layers, each with an optional factor of
    /// `base` → {relu3_1: 0.5·base, relu4_2: base}.
    pub fn parse_layers(spec: &str, base: f64) -> Result<BTreeMap<String, f64>, Error> {
        if spec.split(',').all(|s| s.trim().is_empty()) {
            return Err(Error::InvalidSetting("no layer named (to leave a term out, set its weight to 0)".into()));
        }
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let (name, factor) = match item.split_once(':') {
                    Some((n, f)) => {
                        let f: f64 = f.trim().parse().map_err(|_| {
                            Error::InvalidSetting(format!("{:?} in {item:?} is not a number", f.trim()))
                        })?;
                        if !is_weight(f) {
                            return Err(Error::BadWeight { what: format!("factor of {}", n.trim()), value: f });
                        }
                        (n.trim(), f)
                    }
                    None => (item, 1.0),
                };
                name.parse::<Layer>()?;
                Ok((name.to_string(), base * factor))
            })
            .try_fold(BTreeMap::new(), |mut layers, item: Result<(String, f64), Error>| {
                let (name, weight) = item?;
                if layers.insert(name.clone(), weight).is_some() {
                    return Err(Error::InvalidSetting(format!("{name} is listed twice")));
                }
                Ok(layers)
            })
    }

    /// Names of the presets [`LossConfig::preset`] knows.
    pub const PRESETS: [&'static str; 2] = ["gatys", "seed"];

    /// Parses the layer names and checks the weights.
    pub fn resolve(&self) -> Result<LossSpec, Error> {
        let layers = |m: &BTreeMap<String, f64>, what: &'static str| -> Result<Vec<(Layer, f32)>, Error> {
            let mut v = m
                .iter()
                .map(|(name, &w)| {
                    Ok((name.parse::<Layer>()?, check_weight(&format!("weight of {what} layer {name}"), w)?))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            v.sort_by_key(|(l, _)| *l);
            Ok(v)
        };
        let tv = check_weight("weight of tv", self.tv)?;
        let style = layers(&self.style, "style")?;
        if style.is_empty() {
            return Err(Error::NoStyleLayers);
        }
        Ok(LossSpec { pool: self.pool, content: layers(&self.content, "content")?, style, tv })
    }
}

/// Whether `w` can weigh a term: ≥ 0 and finite in float32, where the graphs compute.
/// The one rule for every loss weight, factor and blend weight.
pub fn is_weight(w: f64) -> bool {
    w >= 0.0 && (w as f32).is_finite()
}

/// `w` as float32 when it is a weight ([`is_weight`]); else an error naming it `what`.
pub fn check_weight(what: &str, w: f64) -> Result<f32, Error> {
    if !is_weight(w) {
        return Err(Error::BadWeight { what: what.into(), value: w });
    }
    Ok(w as f32)
}

/// Checks the blend weights of style images: each a weight ([`is_weight`]), not all 0.
/// Gives their sum, in f64: each may be up to f32's largest, and their sum beyond it.
pub fn check_blend(blend: &[f32]) -> Result<f64, Error> {
    let total: f64 = blend.iter().map(|&b| f64::from(b)).sum();
    if let Some(&bad) = blend.iter().find(|&&b| !is_weight(f64::from(b))) {
        return Err(Error::BadWeight { what: "each blend weight".into(), value: f64::from(bad) });
    }
    // Each weight is finite and ≥ 0 here.
    if total == 0.0 {
        return Err(Error::InvalidSetting("blend weights must not all be 0".into()));
    }
    Ok(total)
}

impl LossSpec {
    /// The deepest convolution any term needs (the network is cut after it).
    pub fn deepest_conv(&self) -> usize {
        self.content.iter().chain(&self.style).map(|(l, _)| l.conv).max().unwrap_or(0)
    }

    /// The smallest image side the deepest layer allows.
    pub fn min_side(&self) -> usize {
        self.content.iter().chain(&self.style).map(|(l, _)| l.min_side()).max().unwrap_or(1)
    }

    /// Checks that an image of `h × w` reaches the deepest layer.
    pub fn check_size(&self, h: usize, w: usize) -> Result<(), Error> {
        let min = self.min_side();
        if h < min || w < min {
            return Err(Error::ImageTooSmall { height: h, width: w, min });
        }
        Ok(())
    }

    /// Checks an image tensor's shape, (1, 3, H, W), and its size.
    pub fn check_image(&self, image: ArrayView4<f32>) -> Result<(), Error> {
        let s = image.shape();
        if s[0] != 1 || s[1] != 3 {
            return Err(Error::Shape { what: "image".into(), expected: vec![1, 3, s[2], s[3]], actual: s.to_vec() });
        }
        self.check_size(s[2], s[3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_and_bad_configs_are_refused() {
        let gatys = LossConfig::preset("gatys").unwrap().resolve().unwrap();
        assert_eq!(gatys.style.len(), 5);
        assert_eq!(gatys.min_side(), 16);
        assert!(matches!(LossConfig::preset("nope"), Err(Error::UnknownPreset(_))));
        let mut c = LossConfig::preset("seed").unwrap();
        c.style.clear();
        assert!(matches!(c.resolve(), Err(Error::NoStyleLayers)));
        let mut c = LossConfig::preset("gatys").unwrap();
        c.style.insert("relu9_9".into(), 1.0);
        assert!(matches!(c.resolve(), Err(Error::UnknownLayer(_))));
        let mut c = LossConfig::preset("gatys").unwrap();
        c.content.insert("relu4_2".into(), -1.0);
        assert!(matches!(c.resolve(), Err(Error::BadWeight { .. })));
        let mut c = LossConfig::preset("gatys").unwrap();
        c.tv = f64::NAN;
        assert!(matches!(c.resolve(), Err(Error::BadWeight { .. })));
        // Finite in f64 but not in float32, where the graphs compute.
        let mut c = LossConfig::preset("gatys").unwrap();
        c.style.insert("relu1_1".into(), 1e39);
        assert!(matches!(c.resolve(), Err(Error::BadWeight { .. })));
        assert!(matches!(gatys.check_size(15, 100), Err(Error::ImageTooSmall { min: 16, .. })));
    }

    #[test]
    fn blend_weights_may_add_up_past_f32s_largest() {
        assert_eq!(check_blend(&[2e38, 2e38]).unwrap(), 2.0 * f64::from(2e38f32));
        assert!(matches!(check_blend(&[0.0, 0.0]), Err(Error::InvalidSetting(_))));
        assert!(matches!(check_blend(&[1.0, f32::INFINITY]), Err(Error::BadWeight { .. })));
    }
}
