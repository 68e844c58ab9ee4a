//! The loss-and-gradient graphs against PyTorch float64 autograd (`tests/data`,
//! copied from the project's shared fixtures), and against finite differences.

mod common;

use common::{real_weights, runtime};

use ndarray::Array4;
use nst_features::fixture::{Fixture, FixtureConfig};
use nst_features::{FeatureNet, Loss, LossConfig, Pool, VggWeights};
use serde_json::Value;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn check_fixture(name: &str) {
    let all: Value = serde_json::from_str(&std::fs::read_to_string(data("gradient_fixtures.json")).unwrap()).unwrap();
    let case = &all[name];
    let config: FixtureConfig = serde_json::from_value(case["config"].clone()).unwrap();
    let fixture = Fixture::load(&data(&format!("gradient_{name}.npz")), config).unwrap();
    let c = fixture.compare(runtime(), real_weights()).unwrap();
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    eprintln!("{name}: {}", serde_json::to_string(&c).unwrap());
    assert!(rel(c.loss, c.loss_ref) <= 1e-5, "{name}: loss {} vs {}", c.loss, c.loss_ref);
    for (term, reference) in case["terms"].as_object().unwrap() {
        let ours = c.terms[term];
        let reference = reference.as_f64().unwrap();
        assert!(rel(ours, reference) <= 1e-4, "{name}: {term} {ours} vs {reference}");
    }
    assert_eq!(c.terms.len(), case["terms"].as_object().unwrap().len());
    assert!(c.grad_rel_err <= 1e-4, "{name}: gradient relative error {}", c.grad_rel_err);
}

#[test]
fn gatys_max_matches_pytorch() {
    check_fixture("gatys_max");
}

#[test]
fn gatys_avg_matches_pytorch() {
    check_fixture("gatys_avg");
}

#[test]
fn seed_matches_pytorch() {
    check_fixture("seed");
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
        assert_eq!(g.shape(), [l.channels(), l.channels()]);
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
    let model = nst_features::graph::features_graph(&full.resolve().unwrap(), &weights).unwrap();
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    let (read, found) = VggWeights::from_onnx(&path).unwrap();
    assert_eq!(found, nst_features::Found::ConvNodes { total: 13 });
    assert_eq!(read, weights);
    let shallow =
        nst_features::graph::features_graph(&LossConfig::preset("seed").unwrap().resolve().unwrap(), &weights).unwrap();
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
