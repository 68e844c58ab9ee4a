//! Where each style goes: masks carried from the image to the maps of the style layers
//! (Gatys et al., *Controlling Perceptual Factors in Neural Style Transfer*, 2017).
//!
//! A region's mask is a greyscale image in [0, 1] at the image's size. Its *guide* at a
//! layer is the mask carried through the trunk by receptive field: through each 3×3
//! convolution a 3×3 mean ([`MaskMode::Soft`]: the share of the field inside) or minimum
//! ([`MaskMode::Inside`]: 1 only where the whole field is inside, i.e. erosion), over the
//! neighbours inside the image (zero padding carries no image, so it counts as inside);
//! through each 2×2 pooling a 2×2 mean or minimum (odd sizes floored, as pooling does).
//! The loss then compares each region's guided Gram `(F⊙g)(F⊙g)ᵀ / (C·Σg²)` with its
//! style's (see [`crate::graph::loss_graph`]).

use crate::layers::{Layer, VGG16_CONVS};
use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayView4, Axis, Zip, s};
use serde::{Deserialize, Serialize};

/// How a mask is carried to the deeper layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMode {
    /// The share of each feature's receptive field inside the region (soft edges).
    #[default]
    Soft,
    /// Only features whose whole receptive field is inside (eroded, cleaner separation).
    Inside,
}

impl MaskMode {
    /// A 3×3 (convolution) or 2×2 (pooling) window's value from its cells.
    fn reduce(self, cells: impl Iterator<Item = f32>) -> f32 {
        match self {
            MaskMode::Soft => {
                let (sum, n) = cells.fold((0.0, 0.0), |(s, n), v| (s + v, n + 1.0));
                sum / n
            }
            MaskMode::Inside => cells.fold(f32::INFINITY, f32::min),
        }
    }
}

/// The guides of one or more regions at each style layer: (R, 1, h, w) per layer, the
/// layer's map size for the image the masks were made for.
#[derive(Clone, Debug, PartialEq)]
pub struct Guides {
    /// Per layer, in the order asked for.
    pub layers: Vec<(Layer, Array4<f32>)>,
}

impl Guides {
    /// Carries each of `masks` (all of one size, values in [0, 1]) to `layers` by `mode`.
    pub fn new(masks: &[ArrayView2<f32>], layers: &[Layer], mode: MaskMode) -> Self {
        let per_mask: Vec<Vec<Array2<f32>>> = masks.iter().map(|m| carry(*m, layers, mode)).collect();
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, &layer)| {
                let (h, w) = per_mask.first().map_or((0, 0), |m| m[i].dim());
                let mut guide = Array4::zeros((masks.len(), 1, h, w));
                for (mut g, m) in guide.outer_iter_mut().zip(&per_mask) {
                    g.index_axis_mut(Axis(0), 0).assign(&m[i]);
                }
                (layer, guide)
            })
            .collect();
        Self { layers }
    }

    /// How many regions.
    pub fn regions(&self) -> usize {
        self.layers.first().map_or(0, |(_, g)| g.shape()[0])
    }

    /// The guide of `layer`.
    pub fn get(&self, layer: Layer) -> Option<&Array4<f32>> {
        self.layers.iter().find(|(l, _)| *l == layer).map(|(_, g)| g)
    }

    /// Region `r`'s guide at the `i`-th layer, (h, w).
    pub fn plane(&self, i: usize, r: usize) -> ArrayView2<'_, f32> {
        self.layers[i].1.slice(s![r, 0, .., ..])
    }

    /// Whether region `r`'s guide at the `i`-th layer is (nearly) empty.
    pub(crate) fn empty_at(&self, i: usize, r: usize) -> bool {
        is_empty(self.plane(i, r).iter().map(|&v| f64::from(v) * f64::from(v)).sum())
    }
}

/// A mask at each of `layers`' maps: the trunk's convolutions and poolings up to the
/// deepest of them, each recorded where its layer's convolution has run.
pub fn carry(mask: ArrayView2<f32>, layers: &[Layer], mode: MaskMode) -> Vec<Array2<f32>> {
    let deepest = layers.iter().map(|l| l.conv).max().unwrap_or(0);
    let mut at = vec![Array2::zeros((0, 0)); layers.len()];
    let mut m = mask.to_owned();
    for conv in 0..=deepest {
        if conv > 0 && VGG16_CONVS[conv - 1].0 != VGG16_CONVS[conv].0 {
            m = pool(m.view(), mode);
        }
        m = window3(m.view(), mode);
        for (slot, l) in at.iter_mut().zip(layers) {
            if l.conv == conv {
                *slot = m.clone();
            }
        }
    }
    at
}

/// A 3×3 window, stride 1, over the cells inside the map.
fn window3(m: ArrayView2<f32>, mode: MaskMode) -> Array2<f32> {
    let (h, w) = m.dim();
    Array2::from_shape_fn((h, w), |(i, j)| {
        let window = m.slice(s![i.saturating_sub(1)..(i + 2).min(h), j.saturating_sub(1)..(j + 2).min(w)]);
        mode.reduce(window.iter().copied())
    })
}

/// A 2×2 window, stride 2 (a last odd row or column dropped).
fn pool(m: ArrayView2<f32>, mode: MaskMode) -> Array2<f32> {
    let (h, w) = m.dim();
    Array2::from_shape_fn((h / 2, w / 2), |(i, j)| {
        mode.reduce(m.slice(s![2 * i..2 * i + 2, 2 * j..2 * j + 2]).iter().copied())
    })
}

/// What the loss needs of a layer's guides `g` (R, 1, h, w), per region: its weight
/// λ_r = mean(g_r) (its share of the map: an all-ones guide weighs 1, as the unguided
/// term) and the Gram's normalization 1/(C·Σg_r²). A region (nearly) empty at this layer
/// gets 0 for both, so its term and gradient vanish instead of dividing by zero.
pub fn region_weights(guide: ArrayView4<f32>, channels: usize) -> (Array1<f32>, Array1<f32>) {
    let cells = (guide.shape()[2] * guide.shape()[3]).max(1) as f64;
    let mut lambda = Array1::zeros(guide.shape()[0]);
    let mut norm = Array1::zeros(guide.shape()[0]);
    Zip::from(&mut lambda).and(&mut norm).and(guide.outer_iter()).for_each(|l, n, g| {
        let (sum, sq) = g.iter().fold((0f64, 0f64), |(s, q), &v| (s + f64::from(v), q + f64::from(v) * f64::from(v)));
        if !is_empty(sq) {
            *l = (sum / cells) as f32;
            *n = (1.0 / (channels as f64 * sq)) as f32;
        }
    });
    (lambda, norm)
}

/// Σg² at or below which a region counts as empty at a layer.
const EMPTY: f64 = 1e-6;

fn is_empty(sum_of_squares: f64) -> bool {
    sum_of_squares <= EMPTY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str) -> Layer {
        name.parse().unwrap()
    }

    #[test]
    fn soft_keeps_ones_and_sizes_follow_the_pooling() {
        let layers: Vec<Layer> = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"].map(layer).to_vec();
        let ones = Array2::ones((37, 50));
        let g = carry(ones.view(), &layers, MaskMode::Soft);
        let sizes: Vec<_> = g.iter().map(|m| m.dim()).collect();
        assert_eq!(sizes, [(37, 50), (18, 25), (9, 12), (4, 6), (2, 3)]);
        assert!(g.iter().all(|m| m.iter().all(|&v| (v - 1.0).abs() < 1e-6)));
        let inside = carry(ones.view(), &layers, MaskMode::Inside);
        assert!(inside.iter().all(|m| m.iter().all(|&v| v == 1.0)));
    }

    #[test]
    fn inside_erodes_by_the_receptive_field_and_soft_blurs() {
        // Left half in: relu1_1 sees one pixel either side, so one column is lost; relu1_2 two.
        let mask = Array2::from_shape_fn((8, 16), |(_, j)| if j < 8 { 1.0 } else { 0.0 });
        let layers = [layer("relu1_1"), layer("relu1_2")];
        let inside = carry(mask.view(), &layers, MaskMode::Inside);
        assert_eq!(inside[0].row(3).to_vec(), [[1.0; 7].as_slice(), &[0.0; 9]].concat());
        assert_eq!(inside[1].row(3).to_vec(), [[1.0; 6].as_slice(), &[0.0; 10]].concat());
        let soft = carry(mask.view(), &layers, MaskMode::Soft);
        assert_eq!(soft[0][[3, 7]], 2.0 / 3.0);
        assert_eq!(soft[0][[3, 8]], 1.0 / 3.0);
    }

    #[test]
    fn region_weights_are_the_share_and_the_normalization_and_zero_when_empty() {
        let mut g = Array4::zeros((2, 1, 4, 5));
        g.slice_mut(s![0, .., .., ..2]).fill(1.0);
        let (lambda, norm) = region_weights(g.view(), 64);
        assert_eq!(lambda.to_vec(), [0.4, 0.0]);
        assert_eq!(norm.to_vec(), [1.0 / (64.0 * 8.0), 0.0]);
    }
}
