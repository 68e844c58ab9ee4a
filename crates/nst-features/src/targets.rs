//! The targets of the objective: content features and (blended) style Gram matrices.

use crate::layers::Layer;
use ndarray::{Array2, Array4};

/// What the loss graph compares against.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    /// Content features `F_l(c)`, one per content layer, (1, C, h, w).
    pub content: Vec<(Layer, Array4<f32>)>,
    /// Style Gram matrices `A_l = Σ_k b_k G_l(s_k)`, one per style layer, (C, C).
    pub style: Vec<(Layer, Array2<f32>)>,
}
