//! The targets of the objective: content features and (blended, or per region) style Gram
//! matrices, with the regions' guides.

use crate::guide::{Guides, region_weights};
use crate::layers::Layer;
use crate::tiles::map_size;
use ndarray::{Array1, Array3, Array4, arr1};

/// What the loss graph compares against.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    /// Content features `F_l(c)`, one per content layer, (1, C, h, w).
    pub content: Vec<(Layer, Array4<f32>)>,
    /// Style Gram matrices per style layer, one per region, (R, C, C). Without guides one,
    /// `A_l = Σ_k b_k G_l(s_k)`.
    pub style: Vec<(Layer, Array3<f32>)>,
    /// Where each region's Gram applies, at the maps of the image being optimized;
    /// `None`: one region, the whole image.
    pub guides: Option<Guides>,
}

impl Targets {
    /// The shapes of every target and guide, to check that new targets fit a loss.
    pub(crate) fn shapes(&self) -> Vec<Vec<usize>> {
        let guides = self.guides.iter().flat_map(|g| g.layers.iter().map(|(_, a)| a.shape().to_vec()));
        self.content
            .iter()
            .map(|(_, a)| a.shape().to_vec())
            .chain(self.style.iter().map(|(_, a)| a.shape().to_vec()))
            .chain(guides)
            .collect()
    }

    /// Per style layer, each region's weight λ_r and Gram normalization 1/(C·Σg_r²)
    /// ([`region_weights`]); without guides, λ = 1 and 1/(C·h·w) for the layer's map of
    /// `h × w` cells for an image of `height × width`.
    pub(crate) fn region_weights(&self, height: usize, width: usize) -> Vec<(Array1<f32>, Array1<f32>)> {
        self.style
            .iter()
            .map(|(l, _)| match self.guides.as_ref().and_then(|g| g.get(*l)) {
                Some(g) => region_weights(g.view(), l.channels()),
                None => {
                    let (h, w) = map_size(l.block(), height, width);
                    (arr1(&[1.0]), arr1(&[1.0 / (l.channels() * h * w) as f32]))
                }
            })
            .collect()
    }
}
