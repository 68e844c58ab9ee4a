//! Reference cases: an `.npz` with `content`, `style` (`style2`, … when blended),
//! `x`, `loss` and `grad`, and a config (`pool`, `content`, `style`, `tv`,
//! optional `blend`), compared against the loss-and-gradient graph.

use crate::Error;
use crate::config::LossConfig;
use crate::loss::Loss;
use crate::runtime::Runtime;
use crate::weights::VggWeights;
use ndarray::{Array0, Array4};
use ndarray_npy::NpzReader;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A reference case's configuration: the objective and, for several styles, their blend weights.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct FixtureConfig {
    /// The objective.
    #[serde(flatten)]
    pub loss: LossConfig,
    /// Blend weights of `style`, `style2`, …; one style when absent.
    #[serde(default)]
    pub blend: Option<Vec<f32>>,
}

/// A loaded reference case.
pub struct Fixture {
    /// Its configuration.
    pub config: FixtureConfig,
    content: Array4<f32>,
    styles: Vec<(Array4<f32>, f32)>,
    x: Array4<f32>,
    loss: f64,
    grad: Array4<f64>,
}

/// How the graph's loss and gradient compare with the reference.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The graph's loss.
    pub loss: f64,
    /// The reference loss.
    pub loss_ref: f64,
    /// ‖g − g_ref‖₂ / ‖g_ref‖₂.
    pub grad_rel_err: f64,
    /// The graph's terms.
    pub terms: BTreeMap<String, f64>,
}

impl Fixture {
    /// Reads the `.npz` and the config.
    pub fn load(npz: &Path, config: FixtureConfig) -> Result<Self, Error> {
        let bad = |reason: String| Error::Weights { path: npz.into(), reason };
        let file = std::fs::File::open(npz).map_err(Error::io(npz))?;
        let mut z = NpzReader::new(file).map_err(|e| bad(e.to_string()))?;
        let mut get4 = |name: &str| -> Result<Array4<f64>, Error> {
            z.by_name::<ndarray::OwnedRepr<f64>, ndarray::Ix4>(name).map_err(|e| bad(format!("{name}: {e}")))
        };
        let content = get4("content")?.mapv(|v| v as f32);
        let x = get4("x")?.mapv(|v| v as f32);
        let grad = get4("grad")?;
        let blend = config.blend.clone().unwrap_or_else(|| vec![1.0]);
        let styles = blend
            .iter()
            .enumerate()
            .map(|(k, &b)| {
                let name = if k == 0 { "style".to_string() } else { format!("style{}", k + 1) };
                Ok((get4(&name)?.mapv(|v| v as f32), b))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let loss: Array0<f64> = z.by_name("loss").map_err(|e| bad(format!("loss: {e}")))?;
        Ok(Self { config, content, styles, x, loss: loss.into_scalar(), grad })
    }

    /// Evaluates the graph at the fixture's `x` and compares.
    pub fn compare(&self, rt: &Runtime, weights: &VggWeights) -> Result<Comparison, Error> {
        let spec = self.config.loss.resolve()?;
        let styles: Vec<_> = self.styles.iter().map(|(s, b)| (s.view(), *b)).collect();
        let mut loss = Loss::from_images(rt, &spec, weights, self.content.view(), &styles, None)?;
        let mut g = Array4::<f32>::zeros(self.x.raw_dim());
        let value = loss.evaluate(self.x.view(), g.view_mut())?;
        let diff: f64 = g.iter().zip(&self.grad).map(|(&a, &b)| (f64::from(a) - b).powi(2)).sum();
        let norm: f64 = self.grad.iter().map(|b| b * b).sum();
        Ok(Comparison {
            loss: f64::from(value),
            loss_ref: self.loss,
            grad_rel_err: (diff / norm).sqrt(),
            terms: loss.terms().map(|(n, v)| (n.to_string(), f64::from(v))).collect(),
        })
    }
}
