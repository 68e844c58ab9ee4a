//! Milliseconds per loss-and-gradient evaluation of the `gatys` objective, by size.
//!
//! ```text
//! cargo run --release -p nst-features --example loss_bench -- [--device cpu|cuda|auto] [--precision fp32|bf16] [--openvino] [--tile CORE] [--regions R] [SIZE...]
//! ```
//! `--precision bf16` runs where nst would (OpenVINO on a CPU with bf16 units); `--openvino`
//! runs OpenVINO on the CPU in either precision, fp32 included.
//! Random weights of the real shapes (the arithmetic is the same as with the real
//! ones, and nothing has to be fetched); default sizes 256 and 512. With `--tile`,
//! targets and loss run over tiles of about CORE pixels (peak memory: run one
//! size under `/usr/bin/time -v`). With `--regions`, the same loss with R soft style
//! regions (masks) is timed beside it, turn about, and the ratio printed.

use ndarray::{Array2, Array4};
use nst_features::VggWeights;
use nst_features::{
    Cache, Device, FeatureNet, Guides, Loss, LossConfig, LossSpec, MaskMode, Precision, RegionStyle, Runtime,
};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    nst_features::prepare_process();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = value(&args, "--device")?.unwrap_or(Device::Cpu);
    let precision = value(&args, "--precision")?.unwrap_or(Precision::Fp32);
    let (tile, regions) = (value(&args, "--tile")?, value(&args, "--regions")?.unwrap_or(0));
    let sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !["--device", "--precision", "--tile", "--regions"].contains(&args[i - 1].as_str()))
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![256, 512] } else { sizes };
    let (cache, log) = (Cache::locate()?, |m: &str| eprintln!("{m}"));
    let rt = if args.iter().any(|a| a == "--openvino") {
        Runtime::openvino(&cache.openvino_library(&log)?, precision)?
    } else {
        cache.open_runtime(device, precision, &log)?
    };
    let weights = VggWeights::random(0);
    let objective = LossConfig::preset("gatys")?.resolve()?;
    println!("{}, {} threads", rt.describe(), std::thread::available_parallelism()?);
    for s in sizes {
        let img = Array4::from_shape_fn((1, 3, s, s), |(_, c, y, x)| ((x * 7 + y * 13 + c * 29) % 97) as f32 / 97.0);
        let mut losses = vec![Loss::from_images(&rt, &objective, &weights, img.view(), &[(img.view(), 1.0)], tile)?];
        if regions > 0 {
            losses.push(guided(&rt, &objective, &weights, &img, regions, tile)?);
        }
        let mut g = Array4::zeros(img.raw_dim());
        for loss in &mut losses {
            loss.evaluate(img.view(), g.view_mut())?; // warm-up: memory planning, algorithm search
        }
        let reps = if s <= 256 {
            10
        } else if s <= 512 {
            4
        } else {
            1
        };
        let mut ms = vec![0.0; losses.len()];
        for _ in 0..reps {
            for (loss, ms) in losses.iter_mut().zip(&mut ms) {
                let t = Instant::now();
                loss.evaluate(img.view(), g.view_mut())?;
                *ms += t.elapsed().as_secs_f64() * 1e3 / reps as f64;
            }
        }
        println!("{s}×{s}: {:.1} ms per loss+gradient", ms[0]);
        if regions > 0 {
            println!("{s}×{s}: {:.1} ms with {regions} style regions ({:.2}× the unmasked)", ms[1], ms[1] / ms[0]);
        }
    }
    Ok(())
}

/// The value after `flag` in `args`, parsed; `None` without the flag.
fn value<T: std::str::FromStr>(args: &[String], flag: &str) -> Result<Option<T>, Box<dyn std::error::Error>>
where
    T::Err: std::fmt::Display,
{
    match args.iter().position(|a| a == flag) {
        Some(i) => {
            let v = args.get(i + 1).ok_or(format!("{flag} needs a value"))?;
            Ok(Some(v.parse().map_err(|e| format!("{flag} {v}: {e}"))?))
        }
        None => Ok(None),
    }
}

/// The loss of `img` against itself with `regions` soft vertical bands as style regions.
fn guided(
    rt: &Runtime,
    objective: &LossSpec,
    weights: &VggWeights,
    img: &Array4<f32>,
    regions: usize,
    tile: Option<usize>,
) -> Result<Loss, nst_features::Error> {
    let (h, w) = (img.shape()[2], img.shape()[3]);
    let masks: Vec<Array2<f32>> = (0..regions)
        .map(|r| {
            Array2::from_shape_fn((h, w), |(_, x)| {
                let centre = (r as f32 + 0.5) * w as f32 / regions as f32;
                (1.0 - ((x as f32 - centre).abs() / (w as f32 / regions as f32))).clamp(0.0, 1.0)
            })
        })
        .collect();
    let views: Vec<_> = masks.iter().map(|m| m.view()).collect();
    let layers: Vec<_> = objective.style.iter().map(|(l, _)| *l).collect();
    let guides = Guides::new(&views, &layers, MaskMode::Soft);
    let styles: Vec<RegionStyle<'_>> = (0..regions).map(|_| RegionStyle { image: img.view(), source: None }).collect();
    let targets = FeatureNet::open(rt, objective, weights, tile)?.region_targets(img.view(), &styles, guides)?;
    Loss::open(rt, objective, weights, targets, (h, w), tile)
}
