//! VGG16 forward, the loss terms, and the hand-written backward pass.
//!
//! Tensor names: `image` (1,3,H,W RGB in [0,1]) → `pre` (BGR·255 − mean) →
//! `conv1_1` → `relu1_1` → … with `pool1`…`pool4`; targets `content/<layer>`
//! and `style/<layer>` (Gram matrices); terms `term/content_<layer>`,
//! `term/style_<layer>`, `term/tv`; `loss`; and `grad` (∂loss/∂image).
//! Gradients of a tensor `t` are `grad/t`.

use super::builder::{Dim, GraphBuilder, int, ints, string};
use crate::Error;
use crate::config::{LossSpec, Pool};
use crate::layers::{BGR_MEAN, Layer, VGG16_CONVS};
use crate::weights::VggWeights;
use onnx_protobuf::ModelProto;
use onnx_protobuf::tensor_proto::DataType;
use std::collections::BTreeMap;

const IMAGE_DIMS: [Dim<'static>; 4] = [Dim::Fixed(1), Dim::Fixed(3), Dim::Named("height"), Dim::Named("width")];

/// (1, channels, h_B, w_B): the maps of block B are the image pooled B − 1 times.
fn block_dims(block: u8, channels: usize) -> [Dim<'static>; 4] {
    const H: [&str; 5] = ["h1", "h2", "h3", "h4", "h5"];
    const W: [&str; 5] = ["w1", "w2", "w3", "w4", "w5"];
    let b = usize::from(block) - 1;
    [Dim::Fixed(1), Dim::Fixed(channels as i64), Dim::Named(H[b]), Dim::Named(W[b])]
}

fn feature_dims(layer: Layer) -> [Dim<'static>; 4] {
    block_dims(layer.block(), layer.channels())
}

fn gram_dims(layer: Layer) -> [Dim<'static>; 2] {
    let c = layer.channels() as i64;
    [Dim::Fixed(c), Dim::Fixed(c)]
}

/// (R, C, C): one Gram matrix per region.
fn region_gram_dims(layer: Layer) -> [Dim<'static>; 3] {
    let c = layer.channels() as i64;
    [Dim::Named("regions"), Dim::Fixed(c), Dim::Fixed(c)]
}

/// (R, 1, h_B, w_B): the regions' guides at a layer's maps.
fn guide_dims(layer: Layer) -> [Dim<'static>; 4] {
    let mut dims = block_dims(layer.block(), 1);
    dims[0] = Dim::Named("regions");
    dims
}

/// Whether the style terms compare one Gram matrix of the whole image, or one per
/// region, each of the features weighted by its guide (see [`crate::Guides`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regions {
    /// `style/<layer>` (1, C, C) against the whole image's Gram.
    Whole,
    /// `style/<layer>` (R, C, C), `guide/<layer>` (R, 1, h, w), and per region
    /// `lambda/<layer>` (its weight) and `norm/<layer>` (1/(C·Σg²)), each (R).
    Guided,
}

/// The floats the trunk (the convolutions, ReLUs and pooling, forward and backward) holds.
/// The image's preprocessing, the Gram products, the losses and the image's gradient are
/// fp32 either way, as are the graphs' inputs and outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// fp32.
    #[default]
    F32,
    /// fp16 (`--precision fp16` on CUDA), whose range is 6.1e-5 (the smallest normal
    /// number) to 65504. Its tensors are those of fp32 named `<name>/half`.
    /// - Forward, the trunk computes [`F16_FORWARD_SCALE`] times the features (its input
    ///   and biases scaled; ReLU and pooling commute with the factor), and the layers the
    ///   terms read are cast to fp32 and divided by it, under their own names.
    /// - Backward, the gradients the terms send into the trunk are multiplied by
    ///   `loss_scale`, a power of two that brings the largest of them to about
    ///   [`LOSS_SCALE_TARGET`], before they are rounded to fp16 (a term's gradient is its
    ///   weight over the size of a feature map: 1e-9 at 2048²). The forward factor needs no
    ///   undoing there: the gradient of the scaled trunk is the trunk's. The first
    ///   convolution's input gradient is computed in fp32, and divided by `loss_scale`.
    F16,
}

/// The factor an fp16 trunk's features carry ([`Storage::F16`]). Measured with the real
/// weights on a photograph at 512² (with noise): the largest, at relu3_3, 1.0e4 unscaled,
/// which leaves 6.5× of fp16's range, 26× scaled; features below 2.4e-4 (unscaled) become
/// subnormal.
pub const F16_FORWARD_SCALE: f32 = 0.25;

/// The largest gradient entering an fp16 trunk, after scaling ([`Storage::F16`]). Measured
/// as for [`F16_FORWARD_SCALE`]: on their way back the gradients grow by up to 13× (at
/// relu1_1; then 170× more through the first convolution, done in fp32), and the smallest
/// term's (relu5_1's) is 1e-3 of the largest. One scale serves every term: a term whose
/// gradients are below 1e-6 of the largest term's (weights that far apart) loses precision.
pub const LOSS_SCALE_TARGET: f32 = 256.0;

/// The suffix of an fp16 trunk's tensors ([`Storage::F16`]).
const HALF: &str = "/half";

/// The names of the loss terms, in output order.
pub fn term_names(obj: &LossSpec) -> Vec<String> {
    let mut names: Vec<String> = obj.content.iter().map(|(l, _)| format!("content_{l}")).collect();
    names.extend(obj.style.iter().map(|(l, _)| format!("style_{l}")));
    if obj.tv > 0.0 {
        names.push("tv".into());
    }
    names
}

/// The features graph: `image` → `content/<layer>` for each content layer and
/// `style/<layer>` (Gram matrix) for each style layer.
pub fn features_graph(obj: &LossSpec, weights: &VggWeights, storage: Storage) -> Result<ModelProto, Error> {
    let mut b = GraphBuilder::new("nst_features");
    b.input("image", &IMAGE_DIMS)?;
    forward(&mut b, obj, weights, storage)?;
    for (layer, _) in &obj.content {
        let name = format!("content/{layer}");
        b.wire(&name, "Identity", &[&layer.to_string()], vec![])?;
        b.output(&name, &feature_dims(*layer))?;
    }
    for (layer, _) in &obj.style {
        let (_, gram) = gram(&mut b, *layer)?;
        let name = format!("style/{layer}");
        b.wire(&name, "Identity", &[&gram], vec![])?;
        b.output(&name, &gram_dims(*layer))?;
    }
    Ok(b.finish())
}

/// The loss-and-gradient graph: `image`, `content/<layer>`, `style/<layer>` (and the
/// guides' inputs under [`Regions::Guided`]) → `loss`, `term/<name>` for each of
/// [`term_names`], and `grad` = ∂loss/∂image.
pub fn loss_graph(
    obj: &LossSpec,
    weights: &VggWeights,
    regions: Regions,
    storage: Storage,
) -> Result<ModelProto, Error> {
    let mut b = GraphBuilder::new("nst_loss_and_gradient");
    b.input("image", &IMAGE_DIMS)?;
    for (layer, _) in &obj.content {
        b.input(&format!("content/{layer}"), &feature_dims(*layer))?;
    }
    for (layer, _) in &obj.style {
        match regions {
            Regions::Whole => {
                let c = layer.channels() as i64;
                b.input(&format!("style/{layer}"), &[Dim::Fixed(1), Dim::Fixed(c), Dim::Fixed(c)])?;
            }
            Regions::Guided => {
                b.input(&format!("style/{layer}"), &region_gram_dims(*layer))?;
                b.input(&format!("guide/{layer}"), &guide_dims(*layer))?;
                b.input(&format!("lambda/{layer}"), &[Dim::Named("regions")])?;
                b.input(&format!("norm/{layer}"), &[Dim::Named("regions")])?;
            }
        }
    }
    forward(&mut b, obj, weights, storage)?;
    b.scalar("zero", 0.0)?;

    // Gradient contributions, by the tensor they are the gradient of.
    let mut grads: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut terms = Vec::new();
    for &(layer, w) in &obj.content {
        let (term, g) = content_term(&mut b, layer, w)?;
        terms.push(term);
        grads.entry(layer.to_string()).or_default().push(g);
    }
    for &(layer, w) in &obj.style {
        let (term, g) = match regions {
            Regions::Whole => style_term(&mut b, layer, w)?,
            Regions::Guided => guided_style_term(&mut b, layer, w)?,
        };
        terms.push(term);
        grads.entry(layer.to_string()).or_default().push(g);
    }
    if obj.tv > 0.0 {
        let (term, g) = tv_term(&mut b, obj.tv)?;
        terms.push(term);
        grads.entry("pre".into()).or_default().push(g);
    }
    let term_refs: Vec<&str> = terms.iter().map(String::as_str).collect();
    b.wire("loss", "Sum", &term_refs, vec![])?;

    backward(&mut b, obj, weights, storage, &mut grads)?;

    b.output("loss", &[])?;
    for t in &terms {
        b.output(t, &[])?;
    }
    b.output("grad", &IMAGE_DIMS)?;
    Ok(b.finish())
}

/// The slice graph of feature deconvolution (Deep Image Analogy): the trunk from the
/// ReLU `from` to the ReLU `to`. `features` (`from`'s maps) and `target` (`to`'s) →
/// `loss` = mean((F_to − target)²) and `grad` = ∂loss/∂features.
pub fn slice_graph(from: Layer, to: Layer, pool: Pool, weights: &VggWeights) -> Result<ModelProto, Error> {
    if !(from.relu && to.relu && from.conv < to.conv) {
        return Err(Error::InvalidSetting(format!("a slice runs from a ReLU to a deeper one, not {from} to {to}")));
    }
    let mut b = GraphBuilder::new("nst_slice_loss_and_gradient");
    b.input("features", &feature_dims(from))?;
    b.input(&format!("content/{to}"), &feature_dims(to))?;
    let trunk = Trunk { input: "features", first: from.conv + 1, last: to.conv, pool, storage: Storage::F32 };
    trunk_forward(&mut b, &trunk, weights)?;
    b.scalar("zero", 0.0)?;
    let (term, g) = content_term(&mut b, to, 1.0)?;
    b.wire("loss", "Identity", &[&term], vec![])?;
    let mut grads = BTreeMap::from([(to.to_string(), vec![g])]);
    trunk_backward(&mut b, &trunk, weights, &mut grads)?;
    let g_in = sum(&mut b, "grad/features", grads.remove("features").unwrap_or_default())?;
    b.wire("grad", "Identity", &[&g_in], vec![])?;
    b.output("loss", &[])?;
    b.output("grad", &feature_dims(from))?;
    Ok(b.finish())
}

/// The blocks whose feature maps the objective's content layers live in (ascending).
pub fn content_blocks(obj: &LossSpec) -> Vec<u8> {
    let mut blocks: Vec<u8> = obj.content.iter().map(|(l, _)| l.block()).collect();
    blocks.sort_unstable();
    blocks.dedup();
    blocks
}

/// The tiles' inputs beside the image: `mask/<block>` (1 on the core's positions of
/// that block's maps, 0 elsewhere) for each content block, and `guide/<layer>`
/// (R, 1, h, w) for each style layer: the core's mask times each region's guide.
fn tile_masks(b: &mut GraphBuilder, obj: &LossSpec) -> Result<(), Error> {
    for block in content_blocks(obj) {
        b.input(&format!("mask/{block}"), &block_dims(block, 1))?;
    }
    for (layer, _) in &obj.style {
        b.input(&format!("guide/{layer}"), &guide_dims(*layer))?;
    }
    Ok(())
}

/// The tiles' forward graph. A tile is a window of the image whose *core*, a part
/// of a partition of the image, is surrounded by a halo wide enough that the
/// core's features are those of the whole image. `image` (the window) and the masks
/// (`tile_masks`) → `gram/<layer>` = (F⊙g_r)(F⊙g_r)ᵀ per region, unnormalized, for each
/// style layer (summed over the tiles it is the whole image's), and `features/<layer>`
/// (the window's) for each content layer. Without regions, g is the core's mask (R = 1).
pub fn tile_features_graph(obj: &LossSpec, weights: &VggWeights, storage: Storage) -> Result<ModelProto, Error> {
    let mut b = GraphBuilder::new("nst_tile_features");
    b.input("image", &IMAGE_DIMS)?;
    tile_masks(&mut b, obj)?;
    forward(&mut b, obj, weights, storage)?;
    for (layer, _) in &obj.content {
        let name = format!("features/{layer}");
        b.wire(&name, "Identity", &[&layer.to_string()], vec![])?;
        b.output(&name, &feature_dims(*layer))?;
    }
    for (layer, _) in &obj.style {
        let raw = guided_gram(&mut b, *layer)?;
        let name = format!("gram/{layer}");
        b.wire(&name, "Identity", &[&raw], vec![])?;
        b.output(&name, &region_gram_dims(*layer))?;
    }
    Ok(b.finish())
}

/// The tiles' gradient graph: the whole image's loss, linearized at the current
/// image, restricted to one tile's core. Inputs: `image` and the masks as in
/// [`tile_features_graph`]; per content layer the target's window
/// `content/<layer>` and `coef/content_<layer>` = 2w/N (N = C·H·W of the whole
/// image's map); per style layer `coef/style_<layer>` = 2·∂loss/∂R_r per region (R, C, C,
/// each symmetric) with R_r = Σ_tiles gram_r. Outputs `sumsq/content_<layer>` = Σ m·(F − T)²
/// and `grad`, this tile's share of ∂loss/∂image (the shares sum to the whole).
pub fn tile_gradient_graph(obj: &LossSpec, weights: &VggWeights, storage: Storage) -> Result<ModelProto, Error> {
    let mut b = GraphBuilder::new("nst_tile_gradient");
    b.input("image", &IMAGE_DIMS)?;
    tile_masks(&mut b, obj)?;
    for (layer, _) in &obj.content {
        b.input(&format!("content/{layer}"), &feature_dims(*layer))?;
        b.input(&format!("coef/content_{layer}"), &[Dim::Fixed(1)])?;
    }
    for (layer, _) in &obj.style {
        b.input(&format!("coef/style_{layer}"), &region_gram_dims(*layer))?;
    }
    forward(&mut b, obj, weights, storage)?;
    b.scalar("zero", 0.0)?;

    let mut grads: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut sums = Vec::new();
    for (layer, _) in &obj.content {
        // Σ m(F − T)²;  ∂/∂F of (2w/N)·½Σ m(F − T)² = coef · m(F − T).
        let f = layer.to_string();
        let p = format!("content_{f}");
        let diff = b.wire(&format!("{p}/diff"), "Sub", &[&f, &format!("content/{f}")], vec![])?;
        let core = b.wire(&format!("{p}/core"), "Mul", &[&diff, &format!("mask/{}", layer.block())], vec![])?;
        let sq = b.wire(&format!("{p}/sq"), "Mul", &[&core, &core], vec![])?;
        sums.push(b.wire(&format!("sumsq/{p}"), "ReduceSum", &[&sq], vec![int("keepdims", 0)])?);
        let g = b.wire(&format!("grad/{p}"), "Mul", &[&core, &format!("coef/{p}")], vec![])?;
        grads.entry(f).or_default().push(g);
    }
    for (layer, _) in &obj.style {
        // R_r = Σ (F⊙g_r)(F⊙g_r)ᵀ, ∂loss/∂R_r symmetric:  ∂/∂F = Σ_r g_r ⊙ 2·∂loss/∂R_r·(F⊙g_r).
        let f = layer.to_string();
        let p = format!("style_{f}");
        let fgm = guided_matrix(&mut b, *layer)?;
        let km = b.wire(&format!("{p}/grad_matrix"), "MatMul", &[&format!("coef/{p}"), &fgm], vec![])?;
        let g = guided_gradient(&mut b, *layer, &km)?;
        grads.entry(f).or_default().push(g);
    }
    backward(&mut b, obj, weights, storage, &mut grads)?;
    for s in &sums {
        b.output(s, &[])?;
    }
    b.output("grad", &IMAGE_DIMS)?;
    Ok(b.finish())
}

/// `F⊙g_r` of a style layer for each region's guide `guide/<layer>`, as (R, C, h·w).
fn guided_matrix(b: &mut GraphBuilder, layer: Layer) -> Result<String, Error> {
    let f = layer.to_string();
    let name = format!("{f}/guided_matrix");
    if b.has(&name) {
        return Ok(name);
    }
    let guided = b.wire(&format!("{f}/guided"), "Mul", &[&f, &format!("guide/{f}")], vec![])?;
    let shape = b.constant_i64(&format!("{f}/guided_shape"), &[3], &[0, layer.channels() as i64, -1])?;
    b.wire(&name, "Reshape", &[&guided, &shape], vec![])
}

/// `(F⊙g_r)(F⊙g_r)ᵀ` per region, unnormalized (R, C, C).
fn guided_gram(b: &mut GraphBuilder, layer: Layer) -> Result<String, Error> {
    let fgm = guided_matrix(b, layer)?;
    gram_product(b, &format!("{layer}/guided_gram_raw"), &fgm, layer, true)
}

/// Whether a graph output is only there to keep a Gram's parts in fp32 (`gram_product`),
/// not read: a runtime that computes in fp32 need not fetch it.
pub fn is_precision_aid(output: &str) -> bool {
    output.ends_with(PARTS)
}

/// The suffix of a Gram product's parts, `<name>/parts`.
const PARTS: &str = "/parts";

/// How many parts a Gram product's sum over pixels is cut into ([`gram_product`]).
const GRAM_PARTS: i64 = 8;

/// `M Mᵀ` of a layer's matrix `m`, (C, K) or per region (R, C, K) with `regions`: the K
/// columns (pixels) zero-padded to a multiple of [`GRAM_PARTS`] and cut into that many
/// parts, whose products `<name>/parts` (…, parts, C, C) are **graph outputs**, then summed.
///
/// Both for runtimes that compute in lower precision (OpenVINO in bf16), measured:
/// - a tensor that leaves the graph is stored in fp32, so each product is summed and
///   kept in fp32 from bf16 inputs; inside the graph it would be rounded to bf16
///   (2⁻⁹ of G, which near the optimum is most of G − A): the optimization ended 0.9 %
///   higher;
/// - OpenVINO 2026.4's bf16 matrix product takes 75× longer once K reaches 2²⁰ (a 1024²
///   image at relu1_1: 4.9 s instead of 65 ms); parts keep K below that up to 2896².
///
/// In fp32 the parts only change the order of the sum.
fn gram_product(b: &mut GraphBuilder, name: &str, m: &str, layer: Layer, regions: bool) -> Result<String, Error> {
    let c = layer.channels() as i64;
    let n = GRAM_PARTS;
    // Leading axes: the regions' (copied by Reshape's 0), or none.
    let r = i64::from(regions);
    let shape = b.wire(&format!("{name}/matrix_shape"), "Shape", &[m], vec![])?;
    let (last, end) = (
        b.constant_i64(&format!("{name}/-1"), &[1], &[-1])?,
        b.constant_i64(&format!("{name}/end"), &[1], &[i64::MAX])?,
    );
    let k = b.wire(&format!("{name}/k"), "Slice", &[&shape, &last, &end], vec![])?;
    let (n_minus_1, parts) =
        (b.constant_i64(&format!("{name}/n-1"), &[1], &[n - 1])?, b.constant_i64(&format!("{name}/n"), &[1], &[n])?);
    // Each part's width ⌈K/n⌉, and the zeros that make n of them.
    let k_up = b.wire(&format!("{name}/k_up"), "Add", &[&k, &n_minus_1], vec![])?;
    let width = b.wire(&format!("{name}/width"), "Div", &[&k_up, &parts], vec![])?;
    let padded_k = b.wire(&format!("{name}/padded_k"), "Mul", &[&width, &parts], vec![])?;
    let extra = b.wire(&format!("{name}/extra"), "Sub", &[&padded_k, &k], vec![])?;
    let zeros = b.constant_i64(&format!("{name}/pad_zeros"), &[2 * r + 3], &vec![0; 2 * r as usize + 3])?;
    let pads = b.wire(&format!("{name}/pads"), "Concat", &[&zeros, &extra], vec![int("axis", 0)])?;
    let padded = b.wire(&format!("{name}/padded"), "Pad", &[m, &pads], vec![])?;
    // (…, C, n, width) → (…, n, C, width) → products with the transposes (…, n, C, C).
    let dims: Vec<i64> = (0..r).map(|_| 0).chain([c, n]).collect();
    let fixed = b.constant_i64(&format!("{name}/part_dims"), &[dims.len() as i64], &dims)?;
    let cut = b.wire(&format!("{name}/cut_shape"), "Concat", &[&fixed, &width], vec![int("axis", 0)])?;
    let cut = b.wire(&format!("{name}/cut"), "Reshape", &[&padded, &cut], vec![])?;
    let perm: Vec<i64> = (0..r).chain([r + 1, r, r + 2]).collect();
    let a = b.wire(&format!("{name}/part_rows"), "Transpose", &[&cut], vec![ints("perm", &perm)])?;
    let perm_t: Vec<i64> = (0..r + 1).chain([r + 2, r + 1]).collect();
    let at = b.wire(&format!("{name}/part_columns"), "Transpose", &[&a], vec![ints("perm", &perm_t)])?;
    let products = b.wire(&format!("{name}{PARTS}"), "MatMul", &[&a, &at], vec![])?;
    let mut dims: Vec<Dim<'static>> = if regions { vec![Dim::Named("regions")] } else { vec![] };
    dims.extend([Dim::Fixed(n), Dim::Fixed(c), Dim::Fixed(c)]);
    b.output(&products, &dims)?;
    let axis = b.constant_i64(&format!("{name}/part_axis"), &[1], &[r])?;
    b.wire(name, "ReduceSum", &[&products, &axis], vec![int("keepdims", 0)])
}

/// ∂/∂F = Σ_r g_r ⊙ M_r, given M_r (R, C, h·w) = ∂/∂(F⊙g_r) as matrices: the guide enters
/// twice (once in each factor of the Gram, once here), exact for soft guides.
fn guided_gradient(b: &mut GraphBuilder, layer: Layer, m: &str) -> Result<String, Error> {
    let f = layer.to_string();
    let p = format!("style_{f}");
    let shape = b.wire(&format!("{p}/guided_shape"), "Shape", &[&format!("{f}/guided")], vec![])?;
    let maps = b.wire(&format!("{p}/grad_maps"), "Reshape", &[m, &shape], vec![])?;
    let weighted = b.wire(&format!("{p}/grad_guided"), "Mul", &[&maps, &format!("guide/{f}")], vec![])?;
    let axis = b.constant_i64(&format!("{p}/region_axis"), &[1], &[0])?;
    b.wire(&format!("grad/{p}"), "ReduceSum", &[&weighted, &axis], vec![int("keepdims", 1)])
}

/// A run of the trunk: from `input` (the image after preprocessing, or a ReLU's output)
/// through the convolutions `first..=last`, with the pooling between blocks.
struct Trunk<'a> {
    input: &'a str,
    first: usize,
    last: usize,
    pool: Pool,
    storage: Storage,
}

impl Trunk<'_> {
    /// From the image to the deepest convolution the objective uses.
    fn image(obj: &LossSpec, storage: Storage) -> Trunk<'static> {
        Trunk { input: "pre", first: 0, last: obj.deepest_conv(), pool: obj.pool, storage }
    }

    /// The trunk's tensor of the name `name` has in fp32 ([`Storage::F16`]'s suffix).
    fn tensor(&self, name: &str) -> String {
        match self.storage {
            Storage::F32 => name.into(),
            Storage::F16 => format!("{name}{HALF}"),
        }
    }

    /// The factor its features carry: 1, or [`F16_FORWARD_SCALE`].
    fn scale(&self) -> f32 {
        match self.storage {
            Storage::F32 => 1.0,
            Storage::F16 => F16_FORWARD_SCALE,
        }
    }

    /// Its zero, a scalar of its float type.
    fn zero(&self) -> String {
        self.tensor("zero")
    }

    /// A constant of its float type.
    fn constant(&self, b: &mut GraphBuilder, name: &str, dims: &[i64], data: &[f32]) -> Result<String, Error> {
        match self.storage {
            Storage::F32 => b.constant(name, dims, data),
            Storage::F16 => b.constant_f16(name, dims, data),
        }
    }
}

/// `x` cast to the float type `to`, as the tensor `name`.
fn cast(b: &mut GraphBuilder, name: &str, x: &str, to: DataType) -> Result<String, Error> {
    b.wire(name, "Cast", &[x], vec![int("to", to as i64)])
}

/// Preprocessing and the convolutions up to the deepest one the objective uses; the
/// layers the terms read are fp32 tensors of their own names whatever the trunk holds.
fn forward(b: &mut GraphBuilder, obj: &LossSpec, weights: &VggWeights, storage: Storage) -> Result<(), Error> {
    b.constant_i64("bgr_index", &[3], &[2, 1, 0])?;
    b.scalar("c255", 255.0)?;
    b.constant("bgr_mean", &[1, 3, 1, 1], &BGR_MEAN)?;
    b.wire("bgr", "Gather", &["image", "bgr_index"], vec![int("axis", 1)])?;
    b.wire("bgr255", "Mul", &["bgr", "c255"], vec![])?;
    b.wire("pre", "Sub", &["bgr255", "bgr_mean"], vec![])?;
    let trunk = Trunk::image(obj, storage);
    if storage == Storage::F16 {
        b.scalar("pre/scale", trunk.scale())?;
        b.wire("pre/scaled", "Mul", &["pre", "pre/scale"], vec![])?;
        cast(b, &trunk.tensor("pre"), "pre/scaled", DataType::FLOAT16)?;
    }
    trunk_forward(b, &trunk, weights)?;
    if storage == Storage::F16 {
        b.scalar("features/unscale", 1.0 / trunk.scale())?;
        for (layer, _) in obj.content.iter().chain(&obj.style) {
            let f = layer.to_string();
            if !b.has(&f) {
                let scaled = cast(b, &format!("{f}/scaled"), &trunk.tensor(&f), DataType::FLOAT)?;
                b.wire(&f, "Mul", &[&scaled, "features/unscale"], vec![])?;
            }
        }
    }
    Ok(())
}

/// The convolutions of `trunk`, each followed by its ReLU, with the pooling between blocks.
fn trunk_forward(b: &mut GraphBuilder, trunk: &Trunk<'_>, weights: &VggWeights) -> Result<(), Error> {
    let mut prev = trunk.tensor(trunk.input);
    for conv in trunk.first..=trunk.last {
        let (blk, _, cin, cout) = VGG16_CONVS[conv];
        if conv > 0 && VGG16_CONVS[conv - 1].0 != blk {
            let pool = trunk.tensor(&format!("pool{}", blk - 1));
            let op = match trunk.pool {
                Pool::Max => "MaxPool",
                Pool::Avg => "AveragePool",
            };
            b.wire(&pool, op, &[&prev], vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])])?;
            prev = pool;
        }
        let name = Layer::conv_name(conv);
        let (w, bias) = weights.conv(conv);
        let wn = trunk.constant(b, &format!("{name}.weight"), &[cout as i64, cin as i64, 3, 3], w)?;
        let bias: Vec<f32> = bias.iter().map(|v| v * trunk.scale()).collect();
        let bn = trunk.constant(b, &format!("{name}.bias"), &[cout as i64], &bias)?;
        let out = b.wire(&trunk.tensor(&name), "Conv", &[&prev, &wn, &bn], conv_attributes())?;
        prev = b.wire(&trunk.tensor(&Layer { conv, relu: true }.to_string()), "Relu", &[&out], vec![])?;
    }
    Ok(())
}

fn conv_attributes() -> Vec<onnx_protobuf::AttributeProto> {
    vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1]), ints("strides", &[1, 1])]
}

/// `count = C·H·W` of a feature map, as a float scalar.
fn count(b: &mut GraphBuilder, feature: &str) -> Result<String, Error> {
    let name = format!("{feature}/count");
    if b.has(&name) {
        return Ok(name);
    }
    let size = b.wire(&format!("{feature}/size"), "Size", &[feature], vec![])?;
    b.wire(&name, "Cast", &[&size], vec![int("to", DataType::FLOAT as i64)])
}

/// `G = F Fᵀ / (C·H·W)` with F the layer reshaped to (C, H·W); returns (F as matrix, G).
fn gram(b: &mut GraphBuilder, layer: Layer) -> Result<(String, String), Error> {
    let f = layer.to_string();
    let shape = b.constant_i64(&format!("{f}/matrix_shape"), &[2], &[layer.channels() as i64, -1])?;
    let fm = b.wire(&format!("{f}/matrix"), "Reshape", &[&f, &shape], vec![])?;
    let raw = gram_product(b, &format!("{f}/gram_raw"), &fm, layer, false)?;
    let n = count(b, &f)?;
    let g = b.wire(&format!("gram/{f}"), "Div", &[&raw, &n], vec![])?;
    Ok((fm, g))
}

/// `w · mean((F − T)²)`; ∂/∂F = (2w/N)(F − T).
fn content_term(b: &mut GraphBuilder, layer: Layer, w: f32) -> Result<(String, String), Error> {
    let f = layer.to_string();
    let p = format!("content_{f}");
    let diff = b.wire(&format!("{p}/diff"), "Sub", &[&f, &format!("content/{f}")], vec![])?;
    let sq = b.wire(&format!("{p}/sq"), "Mul", &[&diff, &diff], vec![])?;
    let mean = b.wire(&format!("{p}/mean"), "ReduceMean", &[&sq], vec![int("keepdims", 0)])?;
    let wn = b.scalar(&format!("{p}/w"), w)?;
    let term = b.wire(&format!("term/{p}"), "Mul", &[&mean, &wn], vec![])?;
    let two_w = b.scalar(&format!("{p}/2w"), 2.0 * w)?;
    let n = count(b, &f)?;
    let coef = b.wire(&format!("{p}/coef"), "Div", &[&two_w, &n], vec![])?;
    let g = b.wire(&format!("grad/{p}"), "Mul", &[&diff, &coef], vec![])?;
    Ok((term, g))
}

/// `w · mean((G − A)²)` over the C×C entries; with E = G − A (symmetric),
/// ∂/∂F = (4w / (C²·N)) · E F, N = C·H·W, reshaped back to F's shape.
fn style_term(b: &mut GraphBuilder, layer: Layer, w: f32) -> Result<(String, String), Error> {
    let f = layer.to_string();
    let p = format!("style_{f}");
    let c = layer.channels() as f32;
    let (fm, g) = gram(b, layer)?;
    let e = b.wire(&format!("{p}/diff"), "Sub", &[&g, &format!("style/{f}")], vec![])?;
    let sq = b.wire(&format!("{p}/sq"), "Mul", &[&e, &e], vec![])?;
    let mean = b.wire(&format!("{p}/mean"), "ReduceMean", &[&sq], vec![int("keepdims", 0)])?;
    let wn = b.scalar(&format!("{p}/w"), w)?;
    let term = b.wire(&format!("term/{p}"), "Mul", &[&mean, &wn], vec![])?;
    let k = b.scalar(&format!("{p}/4w_c2"), 4.0 * w / (c * c))?;
    let coef = b.wire(&format!("{p}/coef"), "Div", &[&k, &format!("{f}/count")], vec![])?;
    let ef = b.wire(&format!("{p}/ef"), "MatMul", &[&e, &fm], vec![])?;
    let gm = b.wire(&format!("{p}/grad_matrix"), "Mul", &[&ef, &coef], vec![])?;
    let shape = b.wire(&format!("{p}/shape"), "Shape", &[&f], vec![])?;
    let g = b.wire(&format!("grad/{p}"), "Reshape", &[&gm, &shape], vec![])?;
    Ok((term, g))
}

/// `w · Σ_r λ_r · mean((G_r − A_r)²)` with `G_r = (F⊙g_r)(F⊙g_r)ᵀ·norm_r`, norm_r =
/// 1/(C·Σg_r²) (0 for a region empty here); with E_r = G_r − A_r,
/// ∂/∂(F⊙g_r) = (4wλ_r·norm_r / C²) · E_r (F⊙g_r), then [`guided_gradient`]. One all-ones
/// guide with λ = 1 is [`style_term`].
fn guided_style_term(b: &mut GraphBuilder, layer: Layer, w: f32) -> Result<(String, String), Error> {
    let f = layer.to_string();
    let p = format!("style_{f}");
    let c = layer.channels() as f32;
    let raw = guided_gram(b, layer)?;
    let fgm = guided_matrix(b, layer)?;
    let per_region = b.constant_i64(&format!("{p}/per_region"), &[3], &[-1, 1, 1])?;
    let norm = b.wire(&format!("{p}/norm"), "Reshape", &[&format!("norm/{f}"), &per_region], vec![])?;
    let g = b.wire(&format!("gram/{f}"), "Mul", &[&raw, &norm], vec![])?;
    let e = b.wire(&format!("{p}/diff"), "Sub", &[&g, &format!("style/{f}")], vec![])?;
    let sq = b.wire(&format!("{p}/sq"), "Mul", &[&e, &e], vec![])?;
    let mean = b.wire(&format!("{p}/mean"), "ReduceMean", &[&sq], vec![ints("axes", &[1, 2]), int("keepdims", 0)])?;
    let weighted = b.wire(&format!("{p}/weighted"), "Mul", &[&mean, &format!("lambda/{f}")], vec![])?;
    let total = b.wire(&format!("{p}/total"), "ReduceSum", &[&weighted], vec![int("keepdims", 0)])?;
    let wn = b.scalar(&format!("{p}/w"), w)?;
    let term = b.wire(&format!("term/{p}"), "Mul", &[&total, &wn], vec![])?;
    let k = b.scalar(&format!("{p}/4w_c2"), 4.0 * w / (c * c))?;
    let ln = b.wire(&format!("{p}/lambda_norm"), "Mul", &[&format!("lambda/{f}"), &format!("norm/{f}")], vec![])?;
    let kln = b.wire(&format!("{p}/coef_flat"), "Mul", &[&ln, &k], vec![])?;
    let coef = b.wire(&format!("{p}/coef"), "Reshape", &[&kln, &per_region], vec![])?;
    let ef = b.wire(&format!("{p}/ef"), "MatMul", &[&e, &fgm], vec![])?;
    let km = b.wire(&format!("{p}/grad_matrix"), "Mul", &[&ef, &coef], vec![])?;
    let g = guided_gradient(b, layer, &km)?;
    Ok((term, g))
}

/// `tv · ½ Σ (Δp)²` over horizontal and vertical neighbours of `pre`;
/// ∂/∂p = tv · (Δ shifted forward − Δ) per direction.
fn tv_term(b: &mut GraphBuilder, tv: f32) -> Result<(String, String), Error> {
    b.constant_i64("tv/0", &[1], &[0])?;
    b.constant_i64("tv/1", &[1], &[1])?;
    b.constant_i64("tv/-1", &[1], &[-1])?;
    b.constant_i64("tv/end", &[1], &[i64::MAX])?;
    let mut sums = Vec::new();
    let mut grads = Vec::new();
    for (axis, dir) in [(3i64, "x"), (2, "y")] {
        let ax = b.constant_i64(&format!("tv/axis_{dir}"), &[1], &[axis])?;
        let hi = b.wire(&format!("tv/{dir}_hi"), "Slice", &["pre", "tv/1", "tv/end", &ax], vec![])?;
        let lo = b.wire(&format!("tv/{dir}_lo"), "Slice", &["pre", "tv/0", "tv/-1", &ax], vec![])?;
        let d = b.wire(&format!("tv/d{dir}"), "Sub", &[&hi, &lo], vec![])?;
        let sq = b.wire(&format!("tv/d{dir}_sq"), "Mul", &[&d, &d], vec![])?;
        sums.push(b.wire(&format!("tv/d{dir}_sum"), "ReduceSum", &[&sq], vec![int("keepdims", 0)])?);
        // Pad Δ by one before (Δ_{k−1}) and one after (Δ_k) along the axis.
        let mut before = [0i64; 8];
        before[axis as usize] = 1;
        let mut after = [0i64; 8];
        after[4 + axis as usize] = 1;
        let pb = b.constant_i64(&format!("tv/pad_before_{dir}"), &[8], &before)?;
        let pa = b.constant_i64(&format!("tv/pad_after_{dir}"), &[8], &after)?;
        let shifted = b.wire(&format!("tv/d{dir}_prev"), "Pad", &[&d, &pb], vec![])?;
        let here = b.wire(&format!("tv/d{dir}_here"), "Pad", &[&d, &pa], vec![])?;
        grads.push(b.wire(&format!("tv/grad_{dir}"), "Sub", &[&shifted, &here], vec![])?);
    }
    let total = b.wire("tv/sum", "Add", &[&sums[0], &sums[1]], vec![])?;
    let half_w = b.scalar("tv/half_w", 0.5 * tv)?;
    let term = b.wire("term/tv", "Mul", &[&total, &half_w], vec![])?;
    let g_sum = b.wire("tv/grad_sum", "Add", &[&grads[0], &grads[1]], vec![])?;
    let wn = b.scalar("tv/w", tv)?;
    let g = b.wire("grad/tv", "Mul", &[&g_sum, &wn], vec![])?;
    Ok((term, g))
}

/// The sum of the gradient contributions (an Identity for one).
fn sum(b: &mut GraphBuilder, name: &str, parts: Vec<String>) -> Result<String, Error> {
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    match refs.len() {
        0 => {
            Err(Error::Graph { node: name.into(), op: "Sum".into(), reason: "no gradient reaches this tensor".into() })
        }
        1 => b.wire(name, "Identity", &refs, vec![]),
        _ => b.wire(name, "Sum", &refs, vec![]),
    }
}

/// Back-propagates `grads` from the deepest layer to `pre`, then to `grad` (∂/∂image).
fn backward(
    b: &mut GraphBuilder,
    obj: &LossSpec,
    weights: &VggWeights,
    storage: Storage,
    grads: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), Error> {
    let trunk = Trunk::image(obj, storage);
    if storage == Storage::F16 {
        b.constant_f16(&trunk.zero(), &[], &[0.0])?;
        scaled_into_half(b, &trunk, grads)?;
    }
    trunk_backward(b, &trunk, weights, grads)?;
    if storage == Storage::F16 {
        let scaled = sum(b, "grad/pre/scaled", grads.remove(&trunk.tensor("pre")).unwrap_or_default())?;
        let g = b.wire("grad/pre/trunk", "Div", &[&scaled, "loss_scale"], vec![])?;
        grads.entry("pre".into()).or_default().push(g);
    }
    // pre = BGR(image)·255 − mean:  ∂/∂image = 255 · RGB(∂/∂pre) (the channel swap is its own inverse).
    let g_pre = sum(b, "grad/pre", grads.remove("pre").unwrap_or_default())?;
    b.wire("grad/pre_rgb", "Gather", &[&g_pre, "bgr_index"], vec![int("axis", 1)])?;
    b.wire("grad", "Mul", &["grad/pre_rgb", "c255"], vec![])?;
    Ok(())
}

/// [`Storage::F16`]: the terms' gradients of the trunk's layers (fp32, by the layers'
/// names; the trunk's input's are left alone) become the fp16 gradients of the trunk's
/// tensors, times `loss_scale` = 2^⌊log₂(target / largest |gradient|)⌋.
fn scaled_into_half(
    b: &mut GraphBuilder,
    trunk: &Trunk<'_>,
    grads: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), Error> {
    let layers: Vec<String> = grads.keys().filter(|k| *k != trunk.input).cloned().collect();
    let mut seeds = Vec::new();
    let mut largest = vec![b.scalar("loss_scale/floor", (-100f32).exp2())?];
    for layer in layers {
        let g = sum(b, &format!("grad/{layer}/terms"), grads.remove(&layer).unwrap_or_default())?;
        largest.push(b.wire(&format!("{g}/max"), "ReduceMax", &[&g], vec![int("keepdims", 0)])?);
        let min = b.wire(&format!("{g}/min"), "ReduceMin", &[&g], vec![int("keepdims", 0)])?;
        largest.push(b.wire(&format!("{g}/-min"), "Neg", &[&min], vec![])?);
        seeds.push((layer, g));
    }
    let refs: Vec<&str> = largest.iter().map(String::as_str).collect();
    let m = b.wire("loss_scale/largest", "Max", &refs, vec![])?;
    b.scalar("loss_scale/target", LOSS_SCALE_TARGET)?;
    b.scalar("loss_scale/ln2", std::f32::consts::LN_2)?;
    b.scalar("loss_scale/two", 2.0)?;
    let ratio = b.wire("loss_scale/ratio", "Div", &["loss_scale/target", &m], vec![])?;
    let ln = b.wire("loss_scale/ln", "Log", &[&ratio], vec![])?;
    let log2 = b.wire("loss_scale/log2", "Div", &[&ln, "loss_scale/ln2"], vec![])?;
    let k = b.wire("loss_scale/exponent", "Floor", &[&log2], vec![])?;
    b.wire("loss_scale", "Pow", &["loss_scale/two", &k], vec![])?;
    for (layer, g) in seeds {
        let scaled = b.wire(&format!("{g}/scaled"), "Mul", &[&g, "loss_scale"], vec![])?;
        let half = cast(b, &trunk.tensor(&g), &scaled, DataType::FLOAT16)?;
        grads.entry(trunk.tensor(&layer)).or_default().push(half);
    }
    Ok(())
}

/// Back-propagates `grads` through `trunk`'s convolutions, deepest first, leaving the
/// contributions to ∂/∂input in `grads[trunk.tensor(trunk.input)]`; its tensors and
/// `grads`' keys are [`Trunk::tensor`]'s names. An fp16 trunk (which starts at the image)
/// leaves that gradient in fp32, still times `loss_scale`.
fn trunk_backward(
    b: &mut GraphBuilder,
    trunk: &Trunk<'_>,
    weights: &VggWeights,
    grads: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), Error> {
    let zero = trunk.zero();
    for conv in (trunk.first..=trunk.last).rev() {
        let relu = trunk.tensor(&Layer { conv, relu: true }.to_string());
        let conv_name = trunk.tensor(&Layer::conv_name(conv));
        let mut at_conv = grads.remove(&conv_name).unwrap_or_default();
        if let Some(parts) = grads.remove(&relu) {
            // relu = max(z, 0):  ∂/∂z = ∂/∂relu where relu > 0, else 0.
            let g = sum(b, &format!("grad/{relu}"), parts)?;
            let mask = b.wire(&format!("{relu}/positive"), "Greater", &[&relu, &zero], vec![])?;
            at_conv.push(b.wire(&format!("grad/{relu}/through"), "Where", &[&mask, &g, &zero], vec![])?);
        }
        if at_conv.is_empty() {
            continue;
        }
        let g_conv = sum(b, &format!("grad/{conv_name}"), at_conv)?;
        // A stride-1, pad-1 convolution's input gradient is the transposed convolution with
        // the same weights, i.e. a convolution with them flipped and their in and out channels
        // swapped: a constant of its own (a runtime may lay out the forward's for itself;
        // OpenVINO's ConvTranspose on the forward's constant gave wrong gradients), and on
        // ONNX Runtime's CPU a Conv is faster than a ConvTranspose.
        let (_, _, cin, cout) = VGG16_CONVS[conv];
        let (w, _) = weights.conv(conv);
        let flipped = format!("{}.weight_flipped", Layer::conv_name(conv));
        let (dims, flipped_w) = ([cin as i64, cout as i64, 3, 3], flip(w, cin, cout));
        // An fp16 trunk's gradient leaves it through the first convolution in fp32: there it
        // grows most (170× at 512²: the pixels span 0–255), and fp16 ends at 65504.
        let (g_conv, wt) = if trunk.storage == Storage::F16 && conv == trunk.first {
            let g = cast(b, &format!("grad/{conv_name}/float"), &g_conv, DataType::FLOAT)?;
            (g, b.constant(&flipped, &dims, &flipped_w)?)
        } else {
            (g_conv, trunk.constant(b, &flipped, &dims, &flipped_w)?)
        };
        let g_in = b.wire(&format!("grad/{conv_name}/input"), "Conv", &[&g_conv, &wt], conv_attributes())?;
        let below = if conv == trunk.first {
            trunk.tensor(trunk.input)
        } else {
            trunk.tensor(&Layer { conv: conv - 1, relu: true }.to_string())
        };
        let (blk, _, _, _) = VGG16_CONVS[conv];
        let g = if conv > 0 && VGG16_CONVS[conv - 1].0 != blk {
            pool_backward(b, trunk, blk - 1, &below, &g_in)?
        } else {
            g_in
        };
        grads.entry(below).or_default().push(g);
    }
    Ok(())
}

/// `w` (cout, cin, 3, 3) as (cin, cout, 3, 3), each kernel turned by 180°.
fn flip(w: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..cout {
        for i in 0..cin {
            for k in 0..9 {
                out[(i * cout + o) * 9 + (8 - k)] = w[(o * cin + i) * 9 + k];
            }
        }
    }
    out
}

/// Gradient of 2×2/2 pooling `pool{k}` of `input`, given `g` = ∂/∂pool.
///
/// Max: each window's gradient goes to its first maximum in reading order (PyTorch's
/// choice), found by comparing the window's four inputs with each other, never with the
/// pooled output: a runtime that computes the pooling its own way (fused, reordered,
/// in lower precision) still gets exactly one winner per window. The input is cropped to
/// even size (pooling floors odd sizes) and the gradient, laid back in its windows, padded
/// with zeros to the input's size. Average: a quarter to each, upsampled by nearest neighbour.
fn pool_backward(b: &mut GraphBuilder, trunk: &Trunk<'_>, k: u8, input: &str, g: &str) -> Result<String, Error> {
    let p = trunk.tensor(&format!("pool{k}"));
    // pads = [0, 0, 0, 0, 0, 0, H − 2h, W − 2w]
    let in_shape = b.wire(&format!("{p}/input_shape"), "Shape", &[input], vec![])?;
    let g_shape = b.wire(&format!("{p}/grad_shape"), "Shape", &[g], vec![])?;
    let twice = b.constant_i64(&format!("{p}/twice"), &[4], &[1, 1, 2, 2])?;
    let even = b.wire(&format!("{p}/even_shape"), "Mul", &[&g_shape, &twice], vec![])?;
    let rest = b.wire(&format!("{p}/rest"), "Sub", &[&in_shape, &even], vec![])?;
    let zeros = b.constant_i64(&format!("{p}/zeros"), &[4], &[0, 0, 0, 0])?;
    let pads = b.wire(&format!("{p}/pads"), "Concat", &[&zeros, &rest], vec![int("axis", 0)])?;
    let even_grad = match trunk.pool {
        Pool::Max => max_pool_backward(b, &p, input, g, (&even, &zeros), &trunk.zero())?,
        Pool::Avg => {
            let scales = b.constant(&format!("{p}/scales"), &[4], &[1.0, 1.0, 2.0, 2.0])?;
            let nearest = vec![
                string("mode", "nearest"),
                string("coordinate_transformation_mode", "asymmetric"),
                string("nearest_mode", "floor"),
            ];
            let up = b.wire(&format!("{p}/grad_up"), "Resize", &[g, "", &scales], nearest)?;
            let quarter = trunk.constant(b, &format!("{p}/quarter"), &[], &[0.25])?;
            b.wire(&format!("{p}/grad_even"), "Mul", &[&up, &quarter], vec![])?
        }
    };
    b.wire(&format!("grad/{p}/input"), "Pad", &[&even_grad, &pads], vec![])
}

/// Max pooling's gradient on the even part of `input`, (1, C, 2h, 2w); see [`pool_backward`].
/// `even`: the even part's shape; `zeros`: four zeros (Slice's starts); `zero`: the
/// trunk's zero.
///
/// SpaceToDepth lays each window's four inputs out as four channel blocks (reading order),
/// the comparisons pick the winner, and its gradient goes back in place.
fn max_pool_backward(
    b: &mut GraphBuilder,
    p: &str,
    input: &str,
    g: &str,
    (even, zeros): (&str, &str),
    zero: &str,
) -> Result<String, Error> {
    let cropped = b.wire(&format!("{p}/even"), "Slice", &[input, zeros, even], vec![])?;
    let blocks = b.wire(&format!("{p}/windows"), "SpaceToDepth", &[&cropped], vec![int("blocksize", 2)])?;
    let v: Vec<String> = (0..4).map(|i| format!("{p}/window_{i}")).collect();
    b.wire_outputs(&format!("{p}/split"), "Split", &[&blocks], &v, vec![int("axis", 1)])?;
    // The first maximum in reading order (a b / c d): the better of each row, then of the rows,
    // ties to the earlier. The rows' maxima are copies of inputs (Where), never computed values.
    let ab = b.wire(&format!("{p}/a_ge_b"), "GreaterOrEqual", &[&v[0], &v[1]], vec![])?;
    let cd = b.wire(&format!("{p}/c_ge_d"), "GreaterOrEqual", &[&v[2], &v[3]], vec![])?;
    let top_max = b.wire(&format!("{p}/top_max"), "Where", &[&ab, &v[0], &v[1]], vec![])?;
    let bottom_max = b.wire(&format!("{p}/bottom_max"), "Where", &[&cd, &v[2], &v[3]], vec![])?;
    let top = b.wire(&format!("{p}/top_wins"), "GreaterOrEqual", &[&top_max, &bottom_max], vec![])?;
    let not = |b: &mut GraphBuilder, x: &str| b.wire(&format!("{x}/not"), "Not", &[x], vec![]);
    let (not_ab, not_cd, bottom) = (not(b, &ab)?, not(b, &cd)?, not(b, &top)?);
    let winners = [(&top, &ab), (&top, &not_ab), (&bottom, &cd), (&bottom, &not_cd)];
    let mut parts = Vec::new();
    for (i, (row, within)) in winners.into_iter().enumerate() {
        let wins = b.wire(&format!("{p}/win_{i}"), "And", &[row, within], vec![])?;
        parts.push(b.wire(&format!("{p}/grad_{i}"), "Where", &[&wins, g, zero], vec![])?);
    }
    // Back in place: each row's two interleaved along w, then the rows along h, each by a
    // Concat on a new last axis and a Reshape (on ONNX Runtime's CPU 2.2× faster than
    // a Concat of channel blocks and DepthToSpace).
    let (last, rows_axis) = (
        b.constant_i64(&format!("{p}/last_axis"), &[1], &[4])?,
        b.constant_i64(&format!("{p}/rows_axis"), &[1], &[3])?,
    );
    let row_shape = b.constant_i64(&format!("{p}/row_shape"), &[4], &[0, 0, 0, -1])?;
    let mut rows = Vec::new();
    for (r, pair) in parts.chunks(2).enumerate() {
        let mut cells = Vec::new();
        for cell in pair {
            cells.push(b.wire(&format!("{cell}/cell"), "Unsqueeze", &[cell, &last], vec![])?);
        }
        let cells = b.wire(&format!("{p}/row_{r}_cells"), "Concat", &[&cells[0], &cells[1]], vec![int("axis", 4)])?;
        let row = b.wire(&format!("{p}/row_{r}"), "Reshape", &[&cells, &row_shape], vec![])?;
        rows.push(b.wire(&format!("{row}/lifted"), "Unsqueeze", &[&row, &rows_axis], vec![])?);
    }
    let stacked = b.wire(&format!("{p}/grad_rows"), "Concat", &[&rows[0], &rows[1]], vec![int("axis", 3)])?;
    b.wire(&format!("{p}/grad_even"), "Reshape", &[&stacked, even], vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LossConfig;
    use std::collections::HashMap;

    /// What makes a graph mean the same on every runtime: no comparison of a value with a
    /// second computation of it (`Equal`), and no weight shared by two nodes (a runtime may
    /// lay a constant out for the node it first serves).
    #[test]
    fn gradient_graphs_need_no_bit_identical_recomputation_nor_shared_weights() {
        let weights = VggWeights::random(1);
        for preset in LossConfig::PRESETS {
            let spec = LossConfig::preset(preset).unwrap().resolve().unwrap();
            let models = [Storage::F32, Storage::F16].map(|storage| {
                [
                    loss_graph(&spec, &weights, Regions::Whole, storage).unwrap(),
                    loss_graph(&spec, &weights, Regions::Guided, storage).unwrap(),
                    tile_gradient_graph(&spec, &weights, storage).unwrap(),
                ]
            });
            for model in models.iter().flatten() {
                let graph = model.graph.as_ref().unwrap();
                assert!(graph.node.iter().all(|n| n.op_type != "Equal" && n.op_type != "ConvTranspose"));
                let big: Vec<&str> =
                    graph.initializer.iter().filter(|t| t.dims.len() == 4).map(|t| t.name.as_str()).collect();
                let mut uses: HashMap<&str, usize> = HashMap::new();
                for input in graph.node.iter().flat_map(|n| &n.input) {
                    if big.contains(&input.as_str()) {
                        *uses.entry(input.as_str()).or_default() += 1;
                    }
                }
                assert!(uses.values().all(|&n| n == 1), "{preset}: {uses:?}");
            }
        }
    }

    /// Every product of features with themselves (each Gram's parts) leaves the graph, so that
    /// a runtime computing in bf16 sums and keeps it in fp32 ([`gram_product`]).
    #[test]
    fn every_gram_product_is_a_graph_output() {
        let weights = VggWeights::random(1);
        let spec = LossConfig::preset("gatys").unwrap().resolve().unwrap();
        let graphs = [Storage::F32, Storage::F16].map(|storage| {
            [
                loss_graph(&spec, &weights, Regions::Whole, storage).unwrap(),
                loss_graph(&spec, &weights, Regions::Guided, storage).unwrap(),
                features_graph(&spec, &weights, storage).unwrap(),
                tile_features_graph(&spec, &weights, storage).unwrap(),
            ]
        });
        for model in graphs.iter().flatten() {
            let graph = model.graph.as_ref().unwrap();
            let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
            let products: Vec<&str> = graph
                .node
                .iter()
                .filter(|n| n.op_type == "MatMul" && n.input.len() == 2 && n.input[1].ends_with("/part_columns"))
                .map(|n| n.output[0].as_str())
                .collect();
            assert_eq!(products.len(), spec.style.len(), "{}", graph.name);
            assert!(products.iter().all(|p| outputs.contains(p)), "{}: {products:?} vs {outputs:?}", graph.name);
            assert!(!graph.node.iter().any(|n| n.op_type == "Gemm"), "{}", graph.name);
        }
    }

    /// An fp16 trunk holds its convolutions' weights in fp16 but the first's in its gradient,
    /// and its terms stay fp32 (each reads its layer through a Cast).
    #[test]
    fn an_fp16_trunk_has_fp16_weights_and_fp32_terms() {
        let weights = VggWeights::random(1);
        let spec = LossConfig::preset("gatys").unwrap().resolve().unwrap();
        let model = loss_graph(&spec, &weights, Regions::Whole, Storage::F16).unwrap();
        let graph = model.graph.as_ref().unwrap();
        let type_of = |name: &str| graph.initializer.iter().find(|t| t.name == name).map(|t| t.data_type);
        let convs: Vec<_> = graph.node.iter().filter(|n| n.op_type == "Conv").collect();
        assert_eq!(convs.len(), 2 * (spec.deepest_conv() + 1));
        for conv in convs {
            // All but the last, the image's gradient from conv1_1's, in fp32.
            let (input, float) = match conv.output[0].as_str() {
                "grad/conv1_1/half/input" => ("grad/conv1_1/half/float", DataType::FLOAT),
                _ => (conv.input[0].as_str(), DataType::FLOAT16),
            };
            assert!(conv.input[0] == input && (float == DataType::FLOAT || input.ends_with(HALF)), "{input}");
            assert_eq!(type_of(&conv.input[1]), Some(float as i32), "{}", conv.input[1]);
        }
        for (layer, _) in spec.content.iter().chain(&spec.style) {
            let f = layer.to_string();
            let unscale = graph.node.iter().find(|n| n.output[0] == f).unwrap();
            assert_eq!(unscale.op_type, "Mul");
            let cast = graph.node.iter().find(|n| n.output[0] == unscale.input[0]).unwrap();
            assert_eq!((cast.op_type.as_str(), cast.input[0].as_str()), ("Cast", format!("{f}{HALF}").as_str()));
        }
        let grad = graph.node.iter().find(|n| n.output[0] == "grad/pre/trunk").unwrap();
        assert_eq!(grad.input, ["grad/pre/scaled", "loss_scale"]);
    }
}
