//! The ONNX graphs: a *features* graph (image → content features and Gram
//! matrices, the targets) and a *loss-and-gradient* graph (image + targets →
//! loss, each term, ∂loss/∂image), the backward pass written op by op; and their
//! tiled twins for images too large for one pass (a tile's Gram matrices, and a
//! tile's share of the gradient given the whole image's ∂loss/∂Gram); and the *slice*
//! graph of Deep Image Analogy (one layer's features → MSE at a deeper layer, and its gradient);
//! and the optimizer's correction pairs on the device ([`pairs`]).

mod builder;
pub mod pairs;
mod vgg;

pub use builder::{Dim, GraphBuilder, OPSET};
pub use vgg::{
    F16_FORWARD_SCALE, LOSS_SCALE_TARGET, Regions, Storage, content_blocks, features_graph, is_precision_aid,
    loss_graph, slice_graph, term_names, tile_features_graph, tile_gradient_graph,
};
