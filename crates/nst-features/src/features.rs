//! The features graph in a session: an image → its content features and Gram matrices,
//! and the targets of a content image and blended style images.

use crate::Error;
use crate::config::{LossSpec, check_blend};
use crate::graph::features_graph;
use crate::runtime::{Runtime, output};
use crate::targets::Targets;
use crate::tiles::{Passes, TileFeatures};
use crate::weights::VggWeights;
use ndarray::ArrayView4;
use ort::value::TensorRef;

/// The features graph in a session: image → content features and Gram matrices.
pub struct FeatureNet {
    net: Passes<TileFeatures>,
    objective: LossSpec,
}

impl FeatureNet {
    /// Builds the features graph of `objective` and opens its session.
    pub fn new(rt: &Runtime, objective: &LossSpec, weights: &VggWeights) -> Result<Self, Error> {
        let net = Passes::Whole(rt.session(&features_graph(objective, weights)?)?);
        Ok(Self { net, objective: objective.clone() })
    }

    /// The same targets computed over tiles of about `core` pixels (see [`crate::Tiling`]),
    /// for images too large for one pass.
    pub fn tiled(rt: &Runtime, objective: &LossSpec, weights: &VggWeights, core: usize) -> Result<Self, Error> {
        let net = Passes::Tiled(TileFeatures::new(rt, objective, weights, core)?);
        Ok(Self { net, objective: objective.clone() })
    }

    /// [`FeatureNet::tiled`] with tiles of about `tile` pixels when given, else [`FeatureNet::new`].
    pub fn open(rt: &Runtime, spec: &LossSpec, weights: &VggWeights, tile: Option<usize>) -> Result<Self, Error> {
        match tile {
            Some(core) => Self::tiled(rt, spec, weights, core),
            None => Self::new(rt, spec, weights),
        }
    }

    /// Runs one image (1, 3, H, W, RGB in [0, 1]).
    pub fn run(&mut self, image: ArrayView4<f32>) -> Result<Targets, Error> {
        self.objective.check_image(image)?;
        let session = match &mut self.net {
            Passes::Whole(session) => session,
            Passes::Tiled(tiles) => return tiles.targets(image),
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
        check_blend(&styles.iter().map(|(_, b)| *b).collect::<Vec<_>>())?;
        let total: f32 = styles.iter().map(|(_, b)| b).sum();
        let mut t = self.run(content)?;
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
