//! The ONNX graphs: a *features* graph (image → content features and Gram
//! matrices, the targets) and a *loss-and-gradient* graph (image + targets →
//! loss, each term, ∂loss/∂image), the backward pass written op by op.

mod builder;
mod vgg;

pub use builder::{Dim, GraphBuilder, OPSET};
pub use vgg::{features_graph, loss_graph, term_names};
