//! The targets of the objective: content features and (blended) style Gram matrices.

use crate::Error;
use crate::config::Objective;
use crate::graph::features_graph;
use crate::layers::Layer;
use crate::runtime::Runtime;
use crate::tiles::TileFeatures;
use crate::weights::VggWeights;
use ndarray::{Array2, Array4, ArrayView4};
use ort::session::Session;
use ort::value::TensorRef;

/// What the loss graph compares against.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    /// Content features `F_l(c)`, one per content layer, (1, C, h, w).
    pub content: Vec<(Layer, Array4<f32>)>,
    /// Style Gram matrices `A_l = Σ_k b_k G_l(s_k)`, one per style layer, (C, C).
    pub style: Vec<(Layer, Array2<f32>)>,
}

/// The features graph in a session: image → content features and Gram matrices.
pub struct FeatureNet {
    net: Net,
    objective: Objective,
}

enum Net {
    Whole(Session),
    Tiled(TileFeatures),
}

impl FeatureNet {
    /// Builds the features graph of `objective` and opens its session.
    pub fn new(rt: &Runtime, objective: &Objective, weights: &VggWeights) -> Result<Self, Error> {
        let net = Net::Whole(rt.session(&features_graph(objective, weights)?)?);
        Ok(Self { net, objective: objective.clone() })
    }

    /// The same targets computed over tiles of about `core` pixels (see [`crate::Tiling`]),
    /// for images too large for one pass.
    pub fn tiled(rt: &Runtime, objective: &Objective, weights: &VggWeights, core: usize) -> Result<Self, Error> {
        let net = Net::Tiled(TileFeatures::new(rt, objective, weights, core)?);
        Ok(Self { net, objective: objective.clone() })
    }

    /// Runs one image (1, 3, H, W, RGB in [0, 1]).
    pub fn run(&mut self, image: ArrayView4<f32>) -> Result<Targets, Error> {
        check_image(&self.objective, image)?;
        let session = match &mut self.net {
            Net::Whole(session) => session,
            Net::Tiled(tiles) => return tiles.targets(image),
        };
        let image = image.as_standard_layout();
        let out = session.run(ort::inputs!["image" => TensorRef::from_array_view(&image)?])?;
        let content = self
            .objective
            .content
            .iter()
            .map(|(l, _)| Ok((*l, output(&out, &format!("content/{l}"))?)))
            .collect::<Result<_, Error>>()?;
        let style = self
            .objective
            .style
            .iter()
            .map(|(l, _)| Ok((*l, output(&out, &format!("style/{l}"))?)))
            .collect::<Result<_, Error>>()?;
        Ok(Targets { content, style })
    }

    /// Content features of `content`, and style Grams blended over `styles` with
    /// weights `b_k` (normalized to sum 1). Style images may have any size.
    pub fn targets(&mut self, content: ArrayView4<f32>, styles: &[(ArrayView4<f32>, f32)]) -> Result<Targets, Error> {
        let mut t = self.run(content)?;
        let total: f32 = styles.iter().map(|(_, b)| b).sum();
        if styles.is_empty()
            || !(total > 0.0 && total.is_finite())
            || styles.iter().any(|(_, b)| b.is_nan() || *b < 0.0)
        {
            return Err(Error::BadWeight { what: "style blend".into(), value: f64::from(total) });
        }
        for (_, g) in &mut t.style {
            g.fill(0.0);
        }
        for (image, b) in styles {
            let s = self.run(*image)?;
            for ((_, acc), (_, g)) in t.style.iter_mut().zip(s.style) {
                acc.scaled_add(b / total, &g);
            }
        }
        Ok(t)
    }
}

/// The session output `name` as an owned array of dimensionality `D`.
pub(crate) fn output<D: ndarray::Dimension>(
    out: &ort::session::SessionOutputs<'_>,
    name: &str,
) -> Result<ndarray::Array<f32, D>, Error> {
    Ok(output_view(out, name)?.to_owned())
}

/// The session output `name` viewed with dimensionality `D`.
pub(crate) fn output_view<'a, D: ndarray::Dimension>(
    out: &'a ort::session::SessionOutputs<'_>,
    name: &str,
) -> Result<ndarray::ArrayView<'a, f32, D>, Error> {
    let a = out[name].try_extract_array::<f32>()?;
    a.into_dimensionality::<D>().map_err(|e| Error::Graph {
        node: name.into(),
        op: "output".into(),
        reason: e.to_string(),
    })
}

/// Checks an image tensor's shape and size against the objective.
pub(crate) fn check_image(obj: &Objective, image: ArrayView4<f32>) -> Result<(), Error> {
    let s = image.shape();
    if s[0] != 1 || s[1] != 3 {
        return Err(Error::Shape { what: "image".into(), expected: vec![1, 3, s[2], s[3]], actual: s.to_vec() });
    }
    obj.check_size(s[2], s[3])
}
