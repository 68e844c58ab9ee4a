//! What the objective is made of: layers and weights, pooling, TV.

use crate::Error;
use crate::layers::Layer;
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
pub struct Objective {
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

    /// Names of the presets [`LossConfig::preset`] knows.
    pub const PRESETS: [&'static str; 2] = ["gatys", "seed"];

    /// Parses the layer names and checks the weights.
    pub fn resolve(&self) -> Result<Objective, Error> {
        let layers = |m: &BTreeMap<String, f64>, what: &'static str| -> Result<Vec<(Layer, f32)>, Error> {
            let mut v = m
                .iter()
                .map(|(name, &w)| Ok((name.parse::<Layer>()?, weight(&format!("{what} layer {name}"), w)?)))
                .collect::<Result<Vec<_>, Error>>()?;
            v.sort_by_key(|(l, _)| *l);
            Ok(v)
        };
        let tv = weight("tv", self.tv)?;
        let style = layers(&self.style, "style")?;
        if style.is_empty() {
            return Err(Error::NoStyleLayers);
        }
        Ok(Objective { pool: self.pool, content: layers(&self.content, "content")?, style, tv })
    }
}

/// A weight as the graphs use it: non-negative and finite in float32.
fn weight(what: &str, w: f64) -> Result<f32, Error> {
    if !(w >= 0.0 && (w as f32).is_finite()) {
        return Err(Error::BadWeight { what: what.into(), value: w });
    }
    Ok(w as f32)
}

impl Objective {
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
}
