//! Tiled evaluation against the whole-image graphs: the same targets, loss and
//! gradient (1e-4 relative), also right at the tiles' edges.

mod common;

use common::{real_weights, runtime};

use ndarray::{Array4, Zip};
use nst_features::{FeatureNet, Loss, LossConfig, LossSpec, Pool, Tiling, VggWeights};

/// A textured pseudo-random image in (0, 1).
fn image(h: usize, w: usize, phase: f32) -> Array4<f32> {
    Array4::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
        let (x, y) = (x as f32, y as f32);
        0.5 + 0.3 * ((x * 0.37 + phase).sin() * (y * 0.23 + c as f32).cos()) + 0.15 * ((x * y * 0.011 + phase).sin())
    })
}

fn rel_l2(a: impl Iterator<Item = (f32, f32)>) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in a {
        num += f64::from(a - b).powi(2);
        den += f64::from(b).powi(2);
    }
    (num / den).sqrt()
}

/// Tiled and untiled targets, loss, terms and gradient of `objective` at `h × w`
/// with cores of `core` pixels; returns the tiling for further checks.
fn check(objective: &LossSpec, weights: &VggWeights, (h, w): (usize, usize), core: usize) -> Tiling {
    let tiling = Tiling::new(objective, h, w, core);
    assert!(tiling.len() >= 9, "{} tiles: too few to test edges", tiling.len());
    let (content, style) = (image(h, w, 1.0), image(96, 80, 2.0));
    let whole = FeatureNet::new(runtime(), objective, weights).unwrap().targets(content.view(), &[(style.view(), 1.0)]);
    let tiled =
        FeatureNet::tiled(runtime(), objective, weights, core).unwrap().targets(content.view(), &[(style.view(), 1.0)]);
    let (whole, tiled) = (whole.unwrap(), tiled.unwrap());
    for ((l, a), (_, b)) in whole.content.iter().zip(&tiled.content) {
        let e = rel_l2(b.iter().copied().zip(a.iter().copied()));
        assert!(e < 1e-5, "content target {l}: {e}");
    }
    for ((l, a), (_, b)) in whole.style.iter().zip(&tiled.style) {
        let e = rel_l2(b.iter().copied().zip(a.iter().copied()));
        assert!(e < 1e-5, "style target {l}: {e}");
    }

    let x = image(h, w, 0.4);
    let mut untiled = Loss::new(runtime(), objective, weights, whole, h, w).unwrap();
    let mut tiles = Loss::tiled(runtime(), objective, weights, tiled, (h, w), core).unwrap();
    let (mut ga, mut gb) = (Array4::zeros(x.raw_dim()), Array4::zeros(x.raw_dim()));
    let fa = untiled.evaluate(x.view(), ga.view_mut()).unwrap();
    let fb = tiles.evaluate(x.view(), gb.view_mut()).unwrap();
    assert!(((fb - fa) / fa).abs() < 1e-4, "loss {fb} tiled vs {fa}");
    for ((name, a), (_, b)) in untiled.terms().zip(tiles.terms()) {
        assert!(((b - a) / a).abs() < 1e-4, "{name}: {b} tiled vs {a}");
    }
    let e = rel_l2(gb.iter().copied().zip(ga.iter().copied()));
    eprintln!("{} tiles: loss {fb} tiled vs {fa}, gradient relative L2 error {e:.2e}", tiling.len());
    assert!(e < 1e-4, "gradient: relative L2 error {e}");

    // Where tiles meet: the pixels within 4 of a core boundary, and each pixel alone
    // against the gradient's scale.
    let near_edge = |i: usize, n: usize| {
        let k = i % tiling.core;
        (k < 4 || k >= tiling.core - 4) && i >= 4 && i + 4 < n
    };
    let mut edge = Vec::new();
    let scale = ga.iter().fold(0f32, |m, v| m.max(v.abs()));
    Zip::indexed(&ga).and(&gb).for_each(|(_, _, y, xx), &a, &b| {
        if near_edge(y, h) || near_edge(xx, w) {
            edge.push((b, a));
        }
        assert!((a - b).abs() <= 1e-4 * scale, "pixel ({y}, {xx}): {b} tiled vs {a}");
    });
    let e = rel_l2(edge.into_iter());
    assert!(e < 1e-4, "gradient near tile edges: relative L2 error {e}");
    tiling
}

#[test]
fn tiled_gatys_matches_the_whole_image() {
    let objective = LossConfig::preset("gatys").unwrap().resolve().unwrap();
    // relu5_1: stride 16, radius 58 → halo 64; cores of 48 leave 6- and 8-pixel cores at the far edges.
    let tiling = check(&objective, real_weights(), (150, 200), 48);
    assert_eq!((tiling.core, tiling.halo, tiling.len()), (48, 64, 20));
    assert_eq!(tiling.largest_window(), (150, 168));
}

#[test]
fn tiled_matches_with_average_pooling_and_pre_relu_layers() {
    let mut config = LossConfig::preset("seed").unwrap();
    config.pool = Pool::Avg;
    config.tv = 1e-3;
    let objective = config.resolve().unwrap();
    // conv3_2 is the deepest: stride 4, radius 14 → halo 16.
    let tiling = check(&objective, real_weights(), (71, 90), 20);
    assert_eq!((tiling.core, tiling.halo), (20, 16));
}

#[test]
fn one_tile_is_the_whole_image() {
    let objective = LossConfig::preset("gatys").unwrap().resolve().unwrap();
    let tiling = Tiling::new(&objective, 100, 120, 512);
    assert_eq!((tiling.len(), tiling.largest_window()), (1, (100, 120)));
}
