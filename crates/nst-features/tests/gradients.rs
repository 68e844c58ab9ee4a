//! The loss-and-gradient graphs against PyTorch float64 autograd (`tests/data`,
//! copied from the project's shared fixtures), and against finite differences.

mod common;

use common::{openvino_bf16, openvino_fp32, real_weights, runtime};

use ndarray::{Array2, Array4, ArrayView2, Axis, s};
use ndarray_npy::NpzReader;
use nst_features::fixture::{Fixture, FixtureConfig};
use nst_features::graph::Storage;
use nst_features::{
    FeatureNet, Guides, Layer, Loss, LossConfig, LossSpec, MaskMode, Pool, RegionStyle, Runtime, VggWeights,
};
use serde_json::Value;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// How close a runtime must come to PyTorch's float64: the loss, each term, the gradient
/// (relative errors).
struct Tolerance {
    loss: f64,
    term: f64,
    gradient: f64,
}

/// fp32 on either runtime.
const FP32: Tolerance = Tolerance { loss: 1e-5, term: 1e-4, gradient: 1e-4 };

/// bf16 (products of inputs rounded to 8 significant bits, 2⁻⁹ relative): measured on the
/// three fixtures, loss within 3e-4, terms within 3e-3, gradient within 4e-2.
const BF16: Tolerance = Tolerance { loss: 1e-3, term: 1e-2, gradient: 0.1 };

fn check_fixture(name: &str, rt: &Runtime, tol: Tolerance) {
    let all: Value = serde_json::from_str(&std::fs::read_to_string(data("gradient_fixtures.json")).unwrap()).unwrap();
    let case = &all[name];
    let config: FixtureConfig = serde_json::from_value(case["config"].clone()).unwrap();
    let fixture = Fixture::load(&data(&format!("gradient_{name}.npz")), config).unwrap();
    let c = fixture.compare(rt, real_weights()).unwrap();
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    eprintln!("{name} on {}: {}", rt.describe(), serde_json::to_string(&c).unwrap());
    assert!(rel(c.loss, c.loss_ref) <= tol.loss, "{name}: loss {} vs {}", c.loss, c.loss_ref);
    for (term, reference) in case["terms"].as_object().unwrap() {
        let ours = c.terms[term];
        let reference = reference.as_f64().unwrap();
        assert!(rel(ours, reference) <= tol.term, "{name}: {term} {ours} vs {reference}");
    }
    assert_eq!(c.terms.len(), case["terms"].as_object().unwrap().len());
    assert!(c.grad_rel_err <= tol.gradient, "{name}: gradient relative error {}", c.grad_rel_err);
}

#[test]
fn gatys_max_matches_pytorch() {
    check_fixture("gatys_max", runtime(), FP32);
}

#[test]
fn gatys_avg_matches_pytorch() {
    check_fixture("gatys_avg", runtime(), FP32);
}

#[test]
fn seed_matches_pytorch() {
    check_fixture("seed", runtime(), FP32);
}

#[test]
fn openvino_fp32_matches_pytorch() {
    for name in ["gatys_max", "gatys_avg", "seed"] {
        check_fixture(name, openvino_fp32(), FP32);
    }
}

#[test]
fn openvino_bf16_is_near_pytorch() {
    let Some(rt) = openvino_bf16() else { return };
    for name in ["gatys_max", "gatys_avg", "seed"] {
        check_fixture(name, rt, BF16);
    }
}

/// An fp16 trunk (`--precision fp16`) on the CPU provider. Its kernels are fp32, and ONNX
/// Runtime drops the Casts between two of them, so most of the trunk's tensors stay fp32
/// here: these tests check the graph (its scales cancel; its weights are fp16), and
/// `scripts/gpu-check.sh` checks fp16's range on CUDA. Measured on the three fixtures: loss
/// within 9e-5, terms within 1.9e-4, gradient within 5.2e-3. With every fp16 tensor kept
/// (each made a graph output), on a photograph at 512², the gradient within 1.1e-2 of fp32's.
const FP16: Tolerance = Tolerance { loss: 1e-3, term: 1e-2, gradient: 3e-2 };

#[test]
fn fp16_trunk_is_near_pytorch() {
    let rt = runtime().with_storage(Storage::F16).unwrap();
    for name in ["gatys_max", "gatys_avg", "seed"] {
        check_fixture(name, &rt, FP16);
    }
}

/// An fp16 trunk's scalings cancel: with every weight of the objective times 1e-8 (its
/// gradients far below fp16's smallest normal number, 6.1e-5, before the loss scaling) or
/// 1e4, its loss and gradient follow fp32's. (On CUDA, where the trunk is all fp16,
/// `scripts/gpu-check.sh` runs the 1e-8 case.)
#[test]
fn fp16_trunk_follows_fp32_across_loss_scales() {
    let half = runtime().with_storage(Storage::F16).unwrap();
    let (h, w) = (48, 40);
    let (content, style, x) = (image(h, w, 1.0), image(40, 56, 2.0), image(h, w, 0.3));
    for factor in [1e-8, 1.0, 1e4] {
        let mut config = LossConfig::preset("gatys").unwrap();
        config.content.values_mut().chain(config.style.values_mut()).for_each(|v| *v *= factor);
        config.tv *= factor;
        let spec = config.resolve().unwrap();
        let evaluate = |rt: &Runtime| {
            let styles = [(style.view(), 1.0)];
            let mut loss = Loss::from_images(rt, &spec, real_weights(), content.view(), &styles, None).unwrap();
            let mut g = Array4::zeros(x.raw_dim());
            (f64::from(loss.evaluate(x.view(), g.view_mut()).unwrap()), g)
        };
        let ((f, g), (f_half, g_half)) = (evaluate(runtime()), evaluate(&half));
        let g_err =
            (&g_half - &g).mapv(|v| f64::from(v).powi(2)).sum().sqrt() / g.mapv(|v| f64::from(v).powi(2)).sum().sqrt();
        eprintln!("weights ×{factor:e}: loss {f_half:e} vs {f:e}, gradient within {g_err:.2e}");
        assert!(f > 0.0 && ((f_half - f) / f).abs() < 1e-3, "×{factor:e}: loss {f_half} vs {f}");
        assert!(g_err < 3e-2, "×{factor:e}: gradient relative error {g_err}");
    }
}

/// A smooth pseudo-random image in (0, 1).
fn image(h: usize, w: usize, phase: f32) -> Array4<f32> {
    Array4::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
        0.5 + 0.4 * ((x as f32 * 0.37 + phase).sin() * (y as f32 * 0.23 + c as f32).cos())
    })
}

/// Central differences of the loss along random directions against the graph's gradient,
/// on random weights, for every layer kind, both poolings, odd sizes and a style of another size.
#[test]
fn gradient_matches_finite_differences_on_random_weights() {
    let weights = VggWeights::random(7);
    for (pool, content, style) in
        [(Pool::Max, "relu3_2", "conv1_2"), (Pool::Avg, "conv2_2", "relu2_1"), (Pool::Max, "relu1_1", "relu3_1")]
    {
        let config = LossConfig {
            pool,
            content: [(content.to_string(), 2.0)].into(),
            style: [(style.to_string(), 50.0), ("relu1_2".to_string(), 10.0)].into(),
            tv: 0.01,
        };
        let objective = config.resolve().unwrap();
        let (h, w) = (19, 23);
        let (content, style) = (image(h, w, 1.0), image(30, 17, 2.0));
        let mut loss =
            Loss::from_images(runtime(), &objective, &weights, content.view(), &[(style.view(), 1.0)], None).unwrap();
        let x = image(h, w, 0.3);
        let directions = (0..3).map(|k| image(h, w, 5.0 + k as f32).mapv(|v| v - 0.5));
        let what = format!("{pool:?} {content} {style}");
        check_against_differences(&what, &x, directions, |x, g| loss.evaluate(x, g).unwrap());
    }
}

/// Central differences of `f` (a value, its gradient written into the second argument)
/// along each direction against the gradient at `x`.
fn check_against_differences(
    what: &str,
    x: &Array4<f32>,
    directions: impl Iterator<Item = Array4<f32>>,
    mut f: impl FnMut(ndarray::ArrayView4<f32>, ndarray::ArrayViewMut4<f32>) -> f32,
) {
    let mut g = Array4::zeros(x.raw_dim());
    let f0 = f(x.view(), g.view_mut());
    assert!(f0.is_finite() && f0 > 0.0, "{what}: {f0}");
    let mut scratch = Array4::zeros(x.raw_dim());
    for dir in directions {
        let eps = 1e-3f32;
        let fp = f((x + &(&dir * eps)).view(), scratch.view_mut());
        let fm = f((x - &(&dir * eps)).view(), scratch.view_mut());
        let fd = f64::from(fp - fm) / (2.0 * f64::from(eps));
        let analytic: f64 = g.iter().zip(&dir).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        let err = (fd - analytic).abs() / analytic.abs().max(1e-3 * f64::from(f0));
        assert!(err < 2e-2, "{what}: fd {fd} vs analytic {analytic}");
    }
}

#[test]
fn style_image_of_another_size_gives_the_same_gram_scale() {
    let weights = real_weights();
    let objective = LossConfig::preset("gatys").unwrap().resolve().unwrap();
    let mut net = FeatureNet::new(runtime(), &objective, weights).unwrap();
    let a = net.targets(image(64, 64, 0.0).view(), &[(image(48, 112, 1.0).view(), 1.0)]).unwrap();
    assert_eq!(a.style.len(), 5);
    for (l, g) in &a.style {
        assert_eq!(g.shape(), [1, l.channels(), l.channels()]);
        assert!(g.iter().all(|v| v.is_finite()));
    }
    assert_eq!(a.content[0].1.shape(), [1, 512, 8, 8]);
}

#[test]
fn bad_inputs_are_errors() {
    let weights = VggWeights::random(1);
    let objective = LossConfig::preset("gatys").unwrap().resolve().unwrap();
    let mut net = FeatureNet::new(runtime(), &objective, &weights).unwrap();
    let e = net.run(image(12, 40, 0.0).view()).unwrap_err();
    assert_eq!(e.to_string(), "image of 40×12 is too small: the chosen layers need at least 16×16 pixels");
    let targets = net.targets(image(32, 32, 0.0).view(), &[(image(32, 32, 1.0).view(), 1.0)]).unwrap();
    assert!(net.targets(image(32, 32, 0.0).view(), &[]).is_err());
    let mut loss = Loss::new(runtime(), &objective, &weights, targets, 32, 32).unwrap();
    let mut g = Array4::zeros((1, 3, 32, 32));
    let e = loss.evaluate(image(32, 48, 0.0).view(), g.view_mut()).unwrap_err();
    assert!(e.to_string().starts_with("image: expected shape [1, 3, 32, 32]"), "{e}");
}

#[test]
fn tampered_or_foreign_weights_are_refused() {
    let dir = std::env::temp_dir().join(format!("nst-weights-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    VggWeights::random(3).save(&path, Default::default()).unwrap();
    let e = VggWeights::load(&path, Some(nst_features::WEIGHTS_SHA256)).unwrap_err();
    assert!(e.to_string().contains("fails its check") && e.to_string().contains("delete it"), "{e}");
    assert_eq!(VggWeights::load(&path, None).unwrap(), VggWeights::random(3));
    std::fs::write(&path, b"not a model").unwrap();
    assert!(VggWeights::from_onnx(&path).unwrap_err().to_string().contains("not an ONNX model"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn foreign_models_are_read_by_conv_nodes_or_refused() {
    use onnx_protobuf::Message;
    let dir = std::env::temp_dir().join(format!("nst-foreign-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights = VggWeights::random(11);
    let full = LossConfig { style: [("relu5_3".to_string(), 1.0)].into(), ..LossConfig::preset("gatys").unwrap() };
    let path = dir.join("vgg.onnx");
    let model = nst_features::graph::features_graph(&full.resolve().unwrap(), &weights, Storage::F32).unwrap();
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    let (read, found) = VggWeights::from_onnx(&path).unwrap();
    assert_eq!(found, nst_features::Found::ConvNodes { total: 13 });
    assert_eq!(read, weights);
    let shallow = nst_features::graph::features_graph(
        &LossConfig::preset("seed").unwrap().resolve().unwrap(),
        &weights,
        Storage::F32,
    )
    .unwrap();
    std::fs::write(&path, shallow.write_to_bytes().unwrap()).unwrap();
    let e = VggWeights::from_onnx(&path).unwrap_err().to_string();
    assert!(e.contains("found 6 Conv nodes and no Keras VGG16 names"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `models/manifest.json` (written by `cargo xtask export-onnx`) and the checksum the
/// library verifies must agree; `cargo xtask export-onnx --check` regenerates and compares.
#[test]
fn committed_manifest_matches_the_verified_checksum() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/manifest.json");
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(manifest["sha256"].as_str(), Some(nst_features::WEIGHTS_SHA256));
    assert_eq!(manifest["weights"].as_str(), Some(nst_features::WEIGHTS_FILE));
    assert!(manifest["license"].as_str().unwrap().contains("CC BY 4.0"));
}

/// The slice graph of feature deconvolution against central differences, across one and
/// two poolings (odd sizes floor), for both poolings.
#[test]
fn slice_gradient_matches_finite_differences() {
    use nst_features::{Deconvolution, Layer};
    let weights = VggWeights::random(5);
    for (pool, from, to, (h, w)) in [
        (Pool::Max, "relu1_1", "relu3_1", (13, 18)),
        (Pool::Avg, "relu2_1", "relu3_1", (9, 7)),
        (Pool::Max, "relu4_1", "relu5_1", (6, 5)),
    ] {
        let (from, to): (Layer, Layer) = (from.parse().unwrap(), to.parse().unwrap());
        let mut slice = Deconvolution::new(runtime(), (from, to), pool, &weights).unwrap();
        let pools = to.block() - from.block();
        let wave = |c: usize, hh: usize, ww: usize, phase: f32| {
            Array4::from_shape_fn((1, c, hh, ww), |(_, c, y, x)| {
                (0.5 + 0.5 * ((x as f32 * 0.37 + phase + c as f32 * 0.11).sin() * (y as f32 * 0.23 + c as f32).cos()))
                    .max(0.0)
            })
        };
        let target = wave(to.channels(), h >> pools, w >> pools, 2.0);
        slice.set_target(target, (h, w)).unwrap();
        let x = wave(from.channels(), h, w, 0.4);
        let directions = (0..3).map(|k| wave(from.channels(), h, w, 5.0 + k as f32).mapv(|v| v - 0.5));
        let what = format!("{pool:?} {from}→{to}");
        check_against_differences(&what, &x, directions, |x, g| slice.evaluate(x, g).unwrap());
        // A target of the wrong size is refused, not run.
        assert!(slice.set_target(Array4::zeros((1, to.channels(), 1, 1)), (h + 8, w)).is_err());
    }
}

/// The guides of `masks` (R, 1, H, W) at the style layers of `spec`.
fn guides_of(masks: &Array4<f64>, spec: &LossSpec, mode: MaskMode) -> Guides {
    let planes: Vec<Array2<f32>> = masks.outer_iter().map(|m| m.index_axis(Axis(0), 0).mapv(|v| v as f32)).collect();
    let views: Vec<ArrayView2<f32>> = planes.iter().map(|p| p.view()).collect();
    let layers: Vec<Layer> = spec.style.iter().map(|(l, _)| *l).collect();
    Guides::new(&views, &layers, mode)
}

/// Three soft regions, each with its own style-side mask: the guided terms and their
/// gradient against PyTorch float64 autograd (`scripts/fixtures/masks.py`), whole and in tiles.
#[test]
fn guided_terms_match_pytorch_for_three_soft_regions() {
    let case: Value = serde_json::from_str(&std::fs::read_to_string(data("gradient_masks.json")).unwrap()).unwrap();
    let config: LossConfig = serde_json::from_value(case["config"].clone()).unwrap();
    let spec = config.resolve().unwrap();
    let mut z = NpzReader::new(std::fs::File::open(data("gradient_masks.npz")).unwrap()).unwrap();
    let mut get = |name: &str| -> Array4<f64> { z.by_name(name).unwrap() };
    let (content, style, x) = (get("content").mapv(|v| v as f32), get("style").mapv(|v| v as f32), get("x"));
    let (masks, sources, grad_ref) = (get("masks"), get("sources"), get("grad"));
    let x = x.mapv(|v| v as f32);
    let guides = guides_of(&masks, &spec, MaskMode::Soft);
    let source_guides = guides_of(&sources, &spec, MaskMode::Soft);
    let single: Vec<Guides> = (0..3)
        .map(|r| Guides {
            layers: source_guides
                .layers
                .iter()
                .map(|(l, g)| (*l, g.slice(s![r..r + 1, .., .., ..]).to_owned()))
                .collect(),
        })
        .collect();
    let styles: Vec<RegionStyle> =
        single.iter().map(|g| RegionStyle { image: style.view(), source: Some(g) }).collect();
    let (h, w) = (content.shape()[2], content.shape()[3]);
    let (rt, weights) = (runtime(), real_weights());
    for tile in [None, Some(32)] {
        let mut net = FeatureNet::open(rt, &spec, weights, tile).unwrap().with_guides(rt, weights).unwrap();
        let targets = net.region_targets(content.view(), &styles, guides.clone()).unwrap();
        let mut loss = Loss::open(rt, &spec, weights, targets, (h, w), tile).unwrap();
        let mut g = Array4::zeros(x.raw_dim());
        let value = loss.evaluate(x.view(), g.view_mut()).unwrap();
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        let loss_ref = case["loss"].as_f64().unwrap();
        assert!(rel(f64::from(value), loss_ref) <= 1e-5, "{tile:?}: loss {value} vs {loss_ref}");
        for (name, ours) in loss.terms() {
            let reference = case["terms"][name].as_f64().unwrap();
            assert!(rel(f64::from(ours), reference) <= 1e-4, "{tile:?}: {name} {ours} vs {reference}");
        }
        let diff: f64 = g.iter().zip(&grad_ref).map(|(&a, &b)| (f64::from(a) - b).powi(2)).sum::<f64>().sqrt();
        let norm: f64 = grad_ref.iter().map(|b| b * b).sum::<f64>().sqrt();
        eprintln!("{tile:?}: loss {value} vs {loss_ref}, gradient relative error {:.2e}", diff / norm);
        assert!(diff / norm <= 1e-4, "{tile:?}: gradient relative error {}", diff / norm);
    }
}

/// One all-ones guide is the unguided objective: the same loss and gradient as the
/// `gatys_max` fixture's graph.
#[test]
fn an_all_ones_guide_is_the_unguided_loss() {
    let spec = LossConfig::preset("gatys").unwrap().resolve().unwrap();
    let (rt, weights) = (runtime(), real_weights());
    let (content, style, x) = (image(40, 56, 0.0), image(48, 40, 1.0), image(40, 56, 0.7));
    let mut plain = Loss::from_images(rt, &spec, weights, content.view(), &[(style.view(), 1.0)], None).unwrap();
    let ones = Array4::<f64>::ones((1, 1, 40, 56));
    let guides = guides_of(&ones, &spec, MaskMode::Soft);
    let styles = [RegionStyle { image: style.view(), source: None }];
    let targets = FeatureNet::new(rt, &spec, weights).unwrap().region_targets(content.view(), &styles, guides).unwrap();
    let mut guided = Loss::new(rt, &spec, weights, targets, 40, 56).unwrap();
    let (mut g1, mut g2) = (Array4::zeros(x.raw_dim()), Array4::zeros(x.raw_dim()));
    let (f1, f2) =
        (plain.evaluate(x.view(), g1.view_mut()).unwrap(), guided.evaluate(x.view(), g2.view_mut()).unwrap());
    assert!(((f1 - f2) / f1).abs() < 1e-6, "{f1} vs {f2}");
    let diff = (&g1 - &g2).mapv(|v| v * v).sum().sqrt() / g1.mapv(|v| v * v).sum().sqrt();
    assert!(diff < 1e-6, "gradient relative difference {diff}");
}

/// Soft guides by central differences (random weights, average pooling, odd sizes), and a
/// region empty at the deepest layers gives finite values, its terms there skipped.
#[test]
fn guided_gradient_matches_finite_differences_and_empty_regions_are_skipped() {
    let weights = VggWeights::random(11);
    let config = LossConfig {
        pool: Pool::Avg,
        content: [("relu2_2".to_string(), 1.0)].into(),
        style: [("relu1_2".to_string(), 100.0), ("relu3_1".to_string(), 100.0)].into(),
        tv: 0.0,
    };
    let spec = config.resolve().unwrap();
    let (h, w) = (21, 27);
    let soft = Array4::from_shape_fn((2, 1, h, w), |(r, _, _, x)| {
        let t = 1.0 / (1.0 + (-(x as f64 - 13.0) / 3.0).exp());
        if r == 0 { t } else { 0.8 * (1.0 - t) }
    });
    // A second region of two pixels: gone after pooling twice (relu3_1), present at relu1_2.
    let mut tiny = Array4::<f64>::zeros((2, 1, h, w));
    tiny.slice_mut(s![0, .., .., ..]).fill(1.0);
    tiny.slice_mut(s![1, .., 0, 0..2]).fill(1.0);
    for (what, masks, mode) in [("soft", soft, MaskMode::Soft), ("tiny", tiny, MaskMode::Inside)] {
        let guides = guides_of(&masks, &spec, mode);
        let (s1, s2) = (image(30, 17, 2.0), image(25, 33, 3.0));
        let styles = [RegionStyle { image: s1.view(), source: None }, RegionStyle { image: s2.view(), source: None }];
        let targets = FeatureNet::new(runtime(), &spec, &weights)
            .unwrap()
            .region_targets(image(h, w, 1.0).view(), &styles, guides)
            .unwrap();
        let mut loss = Loss::new(runtime(), &spec, &weights, targets, h, w).unwrap();
        let x = image(h, w, 0.3);
        let directions = (0..3).map(|k| image(h, w, 5.0 + k as f32).mapv(|v| v - 0.5));
        check_against_differences(what, &x, directions, |x, mut g| {
            let f = loss.evaluate(x, g.view_mut()).unwrap();
            assert!(g.iter().all(|v| v.is_finite()), "{what}: gradient not finite");
            f
        });
    }
}

/// `inside` guides are exact receptive-field erosion: with noise added outside a region,
/// exactly the features whose guide is 1 stay unchanged (random weights, average pooling,
/// pre-ReLU maps so that no ReLU hides a change).
#[test]
fn inside_guides_are_the_features_that_see_only_the_region() {
    let weights = VggWeights::random(5);
    let layers = ["conv1_2", "conv2_1", "conv3_1"];
    let config = LossConfig {
        pool: Pool::Avg,
        content: layers.iter().map(|l| (l.to_string(), 1.0)).collect(),
        style: [("relu1_1".to_string(), 1.0)].into(),
        tv: 0.0,
    };
    let spec = config.resolve().unwrap();
    let (h, w) = (64, 64);
    let mask = Array2::from_shape_fn((h, w), |(y, x)| {
        let (dy, dx) = (y as f32 - 30.0, x as f32 - 36.0);
        if dy * dy + dx * dx < 22.0 * 22.0 || x < 6 { 1.0 } else { 0.0 }
    });
    let mut net = FeatureNet::new(runtime(), &spec, &weights).unwrap();
    let base = image(h, w, 0.4);
    let mut noisy = base.clone();
    let mut seed = 1u32;
    ndarray::Zip::indexed(&mut noisy).for_each(|(_, _, y, x), v| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        if mask[[y, x]] == 0.0 {
            *v = (seed >> 8) as f32 / (1u32 << 24) as f32;
        }
    });
    let (a, b) = (net.run(base.view()).unwrap(), net.run(noisy.view()).unwrap());
    let parsed: Vec<Layer> = layers.iter().map(|l| l.parse().unwrap()).collect();
    let guides = nst_features::carry(mask.view(), &parsed, MaskMode::Inside);
    for ((l, fa), ((_, fb), g)) in a.content.iter().zip(b.content.iter().zip(&guides)) {
        let unchanged = Array2::from_shape_fn(g.dim(), |(y, x)| {
            let (ca, cb) = (fa.slice(s![0, .., y, x]), fb.slice(s![0, .., y, x]));
            if ca.iter().zip(cb).all(|(p, q)| (p - q).abs() <= 1e-5 * (1.0 + p.abs())) { 1.0 } else { 0.0 }
        });
        let inside = g.iter().filter(|&&v| v == 1.0).count();
        assert!(inside >= 4, "{l}: {inside} cells inside");
        assert_eq!(&unchanged, g, "{l}: unchanged features vs inside guide");
    }
}

/// A style-side mask that vanishes at the deeper layers (8×8 pixels, `inside`) empties its
/// region there, so the term is skipped instead of pulling the region toward a zero Gram.
#[test]
fn a_source_mask_empty_at_a_layer_skips_the_region_there() {
    let weights = VggWeights::random(3);
    let spec = LossConfig::preset("gatys").unwrap().resolve().unwrap();
    let (h, w) = (48, 64);
    let everywhere = guides_of(&Array4::ones((1, 1, h, w)), &spec, MaskMode::Soft);
    let mut dot = Array4::<f64>::zeros((1, 1, 40, 40));
    dot.slice_mut(s![0, 0, 16..24, 16..24]).fill(1.0);
    let source = guides_of(&dot, &spec, MaskMode::Inside);
    let style = image(40, 40, 2.0);
    let styles = [RegionStyle { image: style.view(), source: Some(&source) }];
    let mut net = FeatureNet::new(runtime(), &spec, &weights).unwrap().with_guides(runtime(), &weights).unwrap();
    let t = net.region_targets(image(h, w, 1.0).view(), &styles, everywhere).unwrap();
    let guides = t.guides.as_ref().unwrap();
    let sums: Vec<f32> = guides.layers.iter().map(|(_, g)| g.sum()).collect();
    assert!(sums[0] > 0.0, "relu1_1 keeps the region: {sums:?}");
    assert!(sums[1..].iter().all(|&s| s == 0.0), "deeper layers skip it: {sums:?}");
    let mut loss = Loss::new(runtime(), &spec, &weights, t, h, w).unwrap();
    let mut g = Array4::zeros((1, 3, h, w));
    let f = loss.evaluate(image(h, w, 0.5).view(), g.view_mut()).unwrap();
    assert!(f.is_finite() && g.iter().all(|v| v.is_finite()));
    assert!(loss.terms().filter(|(n, _)| n.starts_with("style_") && *n != "style_relu1_1").all(|(_, v)| v == 0.0));
}
