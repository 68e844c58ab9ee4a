//! Milliseconds per loss-and-gradient evaluation of the `gatys` objective, by size.
//!
//! ```text
//! cargo run --release -p nst-features --example loss_bench -- [--device cpu|cuda|auto] [--tile CORE] [SIZE...]
//! ```
//! Random weights of the real shapes (the arithmetic is the same as with the real
//! ones, and nothing has to be fetched); default sizes 256 and 512. With `--tile`,
//! targets and loss run over tiles of about CORE pixels (peak memory: run one
//! size under `/usr/bin/time -v`).

use ndarray::Array4;
use nst_features::{Cache, Device, Loss, LossConfig, VggWeights};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    nst_features::prepare_process();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = match args.iter().position(|a| a == "--device") {
        Some(i) => args.get(i + 1).ok_or("--device needs a value")?.parse()?,
        None => Device::Cpu,
    };
    let tile: Option<usize> = match args.iter().position(|a| a == "--tile") {
        Some(i) => Some(args.get(i + 1).ok_or("--tile needs a value")?.parse()?),
        None => None,
    };
    let sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--tile")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![256, 512] } else { sizes };
    let rt = Cache::locate()?.open_runtime(device, &|m| eprintln!("{m}"))?;
    let weights = VggWeights::random(0);
    let objective = LossConfig::preset("gatys")?.resolve()?;
    println!("device {}, {} threads", if rt.is_cuda() { "cuda" } else { "cpu" }, std::thread::available_parallelism()?);
    for s in sizes {
        let img = Array4::from_shape_fn((1, 3, s, s), |(_, c, y, x)| ((x * 7 + y * 13 + c * 29) % 97) as f32 / 97.0);
        let mut loss = Loss::from_images(&rt, &objective, &weights, img.view(), &[(img.view(), 1.0)], tile)?;
        let mut g = Array4::zeros(img.raw_dim());
        loss.evaluate(img.view(), g.view_mut())?; // warm-up: memory planning, algorithm search
        let reps = if s <= 256 {
            10
        } else if s <= 512 {
            4
        } else {
            1
        };
        let t = Instant::now();
        for _ in 0..reps {
            loss.evaluate(img.view(), g.view_mut())?;
        }
        println!("{s}×{s}: {:.1} ms per loss+gradient", t.elapsed().as_secs_f64() * 1e3 / reps as f64);
    }
    Ok(())
}
