//! Milliseconds per loss-and-gradient evaluation of the `gatys` objective, by size.
//!
//! ```text
//! cargo run --release -p nst-features --example loss_bench -- [--device cpu|cuda|auto] [--precision fp32|bf16|fp16] [--openvino]
//!     [--no-tf32] [--nhwc] [--weights-times F] [--tile CORE] [--regions R] [--save DIR | --compare DIR] [--lbfgs N [--no-bounds | --active-set | --sigmoid] [--host-pairs]] [--profile PREFIX]
//!     [--interrupt-after MS] [SIZE...]
//! ```
//! `--precision bf16` runs where nst would (OpenVINO on a CPU with bf16 units); `--openvino`
//! runs OpenVINO on the CPU in either precision, fp32 included. `--precision fp16` runs the
//! fp16 trunk of `--precision fp16` on CUDA, and on the CPU too (slower than fp32 there).
//! `--weights-times F` multiplies every weight of the objective by F (fp16's range). On CUDA, `--no-tf32` runs
//! the products in plain fp32 and `--nhwc` the convolutions in NHWC ([`CudaOptions`]).
//! Random weights of the real shapes (the arithmetic is the same as with the real
//! ones, and nothing has to be fetched), a content and a style pattern; default sizes 256
//! and 512. With `--tile`, targets and loss run over tiles whose cores are CORE pixels a side (peak
//! memory: run one size under `/usr/bin/time -v`). With `--regions`, the same loss with R
//! soft style regions (masks) is timed beside it, turn about, and the ratio printed.
//! `--save DIR` writes the first size's loss and gradient at the content image to
//! `DIR/loss.npy` and `DIR/grad.npy`; `--compare DIR` compares this run's with them (the
//! same graph on another device). `--lbfgs N` then runs N evaluations of nst's L-BFGS-B
//! (100 pairs, strong Wolfe, pixels in [0, 1]; plain L-BFGS with `--no-bounds`, the projected
//! step of the pixels not held at a bound with `--active-set`, and over pixels σ(z) with
//! `--sigmoid`: `--bounds active-set` and `--bounds sigmoid`) from the
//! content image and prints the milliseconds per evaluation, the optimizer's included, and
//! the loss reached. On CUDA the correction pairs go to the GPU once there are
//! [`DevicePairs::PAYS_FROM`], as in nst; `--host-pairs` keeps them in host memory only.
//! `--profile PREFIX` turns ONNX Runtime's profiler on (a JSON file per session).
//! `--interrupt-after MS` then trips the runtime's [`Interrupt`](nst_features::Interrupt) MS
//! milliseconds into an evaluation and prints how long after the trip it ended (what a
//! Ctrl-C or a web cancel waits for), and that the next evaluation, the switch reset, runs.

use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayViewMut1};
use ndarray_npy::{read_npy, write_npy};
use nst_features::VggWeights;
use nst_features::graph::Storage;
use nst_features::{
    Cache, CudaOptions, Device, DevicePairs, FeatureNet, Guides, Loss, LossConfig, LossSpec, MaskMode, Precision,
    RegionStyle, Runtime,
};
use nst_optim::{Bounds, BoxMethod, Lbfgs, LineSearch, NoObserver, Objective, State};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags that take a value.
const VALUED: [&str; 10] = [
    "--interrupt-after",
    "--device",
    "--precision",
    "--tile",
    "--regions",
    "--save",
    "--compare",
    "--lbfgs",
    "--profile",
    "--weights-times",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    nst_features::prepare_process();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = value(&args, "--device")?.unwrap_or(Device::Cpu);
    let precision = value(&args, "--precision")?.unwrap_or(Precision::Fp32);
    let (tile, regions) = (value(&args, "--tile")?, value(&args, "--regions")?.unwrap_or(0));
    let sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !VALUED.contains(&args[i - 1].as_str()))
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![256, 512] } else { sizes };
    let (cache, log) = (Cache::locate()?, |m: &str| eprintln!("{m}"));
    let flag = |f: &str| args.iter().any(|a| a == f);
    let (save, compare) = (value::<PathBuf>(&args, "--save")?, value::<PathBuf>(&args, "--compare")?);
    let lbfgs = value::<usize>(&args, "--lbfgs")?;
    let rt = if flag("--openvino") {
        Runtime::openvino(&cache.openvino_library(&log)?, precision)?
    } else {
        let cuda = CudaOptions { tf32: !flag("--no-tf32"), nhwc: flag("--nhwc") };
        let fp16 = precision == Precision::Fp16;
        let rt = cache.open_runtime(device, if fp16 { Precision::Fp32 } else { precision }, &log)?.with_cuda(cuda);
        if fp16 { rt.with_storage(Storage::F16)? } else { rt }
    };
    let rt = match value::<PathBuf>(&args, "--profile")? {
        Some(prefix) => rt.with_profiling(&prefix),
        None => rt,
    };
    let weights = VggWeights::random(0);
    let mut config = LossConfig::preset("gatys")?;
    let times = value::<f64>(&args, "--weights-times")?.unwrap_or(1.0);
    config.content.values_mut().chain(config.style.values_mut()).for_each(|w| *w *= times);
    config.tv *= times;
    let objective = config.resolve()?;
    println!("{}, {} threads", rt.describe(), std::thread::available_parallelism()?);
    for (i, &s) in sizes.iter().enumerate() {
        let img = Array4::from_shape_fn((1, 3, s, s), |(_, c, y, x)| ((x * 7 + y * 13 + c * 29) % 97) as f32 / 97.0);
        let style = Array4::from_shape_fn((1, 3, s, s), |(_, c, y, x)| {
            (0.5 + 0.45 * ((x as f32 * 0.21 + c as f32).sin() * (y as f32 * 0.13).cos())).clamp(0.0, 1.0)
        });
        let mut losses = vec![Loss::from_images(&rt, &objective, &weights, img.view(), &[(style.view(), 1.0)], tile)?];
        if regions > 0 {
            losses.push(guided(&rt, &objective, &weights, &img, regions, tile)?);
        }
        let mut g = Array4::zeros(img.raw_dim());
        // Warm-up, twice: ONNX Runtime plans memory in the first run (cuDNN tries its
        // algorithms then too) and allocates the planned block in the second.
        for _ in 0..2 {
            for loss in &mut losses {
                loss.evaluate(img.view(), g.view_mut())?;
            }
        }
        if i == 0 && (save.is_some() || compare.is_some()) {
            let f = losses[0].evaluate(img.view(), g.view_mut())?;
            if let Some(dir) = &save {
                std::fs::create_dir_all(dir)?;
                write_npy(dir.join("loss.npy"), &Array1::from_elem(1, f))?;
                write_npy(dir.join("grad.npy"), &g)?;
            }
            if let Some(dir) = &compare {
                let (f0, g0): (Array1<f32>, Array4<f32>) =
                    (read_npy(dir.join("loss.npy"))?, read_npy(dir.join("grad.npy"))?);
                let scale = g0.iter().fold(0f32, |m, v| m.max(v.abs()));
                let dg = g.iter().zip(&g0).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                println!(
                    "{s}×{s}: against {}: loss {f} vs {}, relative difference {:.2e}; gradient max |Δ| / max |g| {:.2e}",
                    dir.display(),
                    f0[0],
                    ((f - f0[0]) / f0[0]).abs(),
                    dg / scale
                );
            }
        }
        let reps = match s {
            0..=256 => 10,
            257..=512 => 4,
            513..=2048 => 3,
            _ => 1,
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
        if let Some(after) = value::<u64>(&args, "--interrupt-after")? {
            interrupt(&rt, &mut losses[0], (&img, &mut g), Duration::from_millis(after), ms[0])?;
        }
        if let Some(n) = lbfgs {
            let mut timed = Timed { loss: &mut losses[0], spent: Duration::ZERO };
            let solver = Lbfgs::<f32>::new()
                .with_history(100.min(n))?
                .with_line_search(LineSearch::strong_wolfe())?
                .with_gradient_tolerance(0.0)?
                .with_max_evaluations(n)?;
            let method = match (flag("--sigmoid"), flag("--active-set"), flag("--no-bounds")) {
                (false, false, _) => BoxMethod::Projected,
                (true, false, false) => BoxMethod::Sigmoid,
                (false, true, false) => BoxMethod::ActiveSet,
                _ => return Err("--no-bounds, --active-set and --sigmoid go one at a time".into()),
            };
            let solver = if flag("--no-bounds") {
                solver
            } else {
                solver.with_bounds(Bounds::Uniform { lower: 0.0, upper: 1.0 }).with_box_method(method)
            };
            let mut x = img.clone().into_shape_with_order(3 * s * s)?;
            let (mut state, pairs) = (State::new(), 100.min(n));
            // As in nst: on the GPU when the run holds the pairs from which that pays.
            let on_gpu = rt.is_cuda() && !flag("--host-pairs") && DevicePairs::pay_for(pairs, n);
            if on_gpu {
                state
                    .history
                    .set_mirror(Box::new(DevicePairs::new(&rt, x.len(), pairs)?), pairs)
                    .map_err(|e| e.to_string())?;
            }
            let t = Instant::now();
            let report = solver.run(&mut timed, x.view_mut(), &mut state, &mut NoObserver)?;
            if let Some(e) = state.history.mirror_failure() {
                println!("{s}×{s}: L-BFGS: the pairs on the GPU failed, the run went on with the host's: {e}");
            }
            let (all, evals) = (t.elapsed().as_secs_f64() * 1e3, report.evaluations as f64);
            let net = timed.spent.as_secs_f64() * 1e3;
            println!(
                "{s}×{s}: L-BFGS {} evaluations: {:.1} ms per evaluation ({:.1} loss+gradient, {:.1} optimizer{}), loss {:.6e}",
                report.evaluations,
                all / evals,
                net / evals,
                (all - net) / evals,
                if on_gpu { format!(", pairs on the GPU from {}", DevicePairs::PAYS_FROM) } else { String::new() },
                report.f
            );
        }
    }
    Ok(())
}

/// Trips `rt`'s switch `after` into an evaluation of `loss` (one takes `ms`), prints how long
/// after the trip it ended and how, then resets the switch and evaluates again.
fn interrupt(
    rt: &Runtime,
    loss: &mut Loss,
    (img, g): (&Array4<f32>, &mut Array4<f32>),
    after: Duration,
    ms: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let (s, switch) = (img.shape()[3], rt.interrupt());
    let (result, ended, tripped) = std::thread::scope(|scope| {
        let trip = scope.spawn(|| {
            std::thread::sleep(after);
            switch.interrupt();
            Instant::now()
        });
        let result = loss.evaluate(img.view(), g.view_mut());
        let ended = Instant::now();
        (result, ended, trip.join().expect("the tripping thread"))
    });
    let how = match &result {
        Err(nst_features::Error::Interrupted) => "interrupted".to_string(),
        Ok(_) => "it ended before the trip".to_string(),
        Err(e) => format!("failed otherwise: {e}"),
    };
    let late = ended.saturating_duration_since(tripped).as_secs_f64() * 1e3;
    println!(
        "{s}×{s}: tripped {} ms into a {ms:.1} ms evaluation: ended {late:.1} ms after the trip, {how}",
        after.as_millis()
    );
    switch.reset();
    loss.evaluate(img.view(), g.view_mut())?;
    println!("{s}×{s}: the switch reset, the next evaluation ran");
    Ok(())
}

/// The loss, timed: what the optimizer's evaluations spend in it.
struct Timed<'a> {
    loss: &'a mut Loss,
    spent: Duration,
}

impl Objective<f32> for &mut Timed<'_> {
    type Error = nst_features::Error;
    fn value_and_gradient(&mut self, x: ArrayView1<f32>, g: ArrayViewMut1<f32>) -> Result<f32, Self::Error> {
        let t = Instant::now();
        let f = self.loss.value_and_gradient(x, g);
        self.spent += t.elapsed();
        f
    }
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
