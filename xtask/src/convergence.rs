//! `cargo xtask convergence convergence_256.npz --evaluations 500 [--precision bf16|fp16]`: the
//! `gatys_max` objective from the content image, unconstrained, as in the PyTorch reference
//! table, run by the engine; prints one JSON line with the loss after every evaluation, and
//! the images after 100, 300 and 500 evaluations evaluated again in fp32 on ONNX Runtime (for a
//! bf16 or fp16 run, the losses to compare with fp32's; fp16 needs a GPU).

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use image::Rgb32FImage;
use ndarray::Array4;
use ndarray_npy::NpzReader;
use nst_features::Loss;
use nst_features::graph::Storage;
use nst_transfer::{Cache, Cancel, Device, Engine, LineSearchKind, Observer, Precision, Request, Snapshot, images};
use std::path::Path;

/// The line search of the run.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Search {
    /// torch.optim.LBFGS's fixed step, lr 1 (the neural-style setting of the reference's target row).
    Fixed,
    /// Strong Wolfe (Moré–Thuente).
    Wolfe,
    /// Armijo backtracking.
    Armijo,
}

/// A (1, 3, H, W) tensor in [0, 1] as an image.
fn image(t: &Array4<f32>, name: &str) -> Result<Rgb32FImage> {
    if t.iter().any(|v| !(0.0..=1.0).contains(v)) {
        bail!("{name}: values outside [0, 1]");
    }
    Ok(images::tensor_image(t.view()))
}

/// The budgets the reference table reports.
const BUDGETS: [usize; 3] = [100, 300, 500];

/// Keeps the image of the last iteration within each of [`BUDGETS`].
#[derive(Default)]
struct Keep([Option<Array4<f32>>; 3]);

impl Observer for Keep {
    fn image(&mut self, snapshot: &Snapshot<'_>) {
        for (k, kept) in BUDGETS.iter().zip(&mut self.0) {
            if snapshot.evaluations() <= *k {
                *kept = Some(snapshot.tensor().clone());
            }
        }
    }
}

pub fn run(
    npz: &Path,
    evaluations: usize,
    (history, search): (usize, Search),
    precision: Precision,
    output: Option<&Path>,
) -> Result<()> {
    let file = std::fs::File::open(npz).with_context(|| format!("opening {}", npz.display()))?;
    let mut z = NpzReader::new(file)?;
    let content: Array4<f32> = z.by_name("content")?;
    let style: Array4<f32> = z.by_name("style")?;
    let (cache, log) = (Cache::locate()?, |m: &str| eprintln!("{m}"));
    let engine = Engine::open(&cache, Device::Auto, precision, &log)?;
    let mut request = Request::new(image(&content, "content")?, vec![image(&style, "style")?]);
    let s = &mut request.settings;
    s.size = content.shape()[2].max(content.shape()[3]) as u32;
    (s.evaluations, s.history, s.multiscale, s.bounds) = (evaluations, history, None, false);
    s.line_search = match search {
        Search::Fixed => LineSearchKind::Fixed,
        Search::Wolfe => LineSearchKind::Wolfe,
        Search::Armijo => LineSearchKind::Armijo,
    };
    let mut kept = Keep::default();
    let outcome = engine.run(&request, &mut kept, &Cancel::new())?;
    if let Some(path) = output {
        outcome.image.save(path).with_context(|| format!("writing {}", path.display()))?;
    }
    // ONNX Runtime loads once per process: a bf16 run's engine is OpenVINO, an fp32 or fp16
    // run's is it.
    let opened;
    let fp32 = match engine.precision() {
        Precision::Fp32 => engine.runtime(),
        Precision::Bf16 => {
            opened = cache.open_runtime(Device::Auto, Precision::Fp32, &log)?;
            &opened
        }
        Precision::Fp16 => {
            opened = engine.runtime().with_storage(Storage::F32)?;
            &opened
        }
    };
    let spec = request.settings.loss_spec()?;
    let mut loss = Loss::from_images(fp32, &spec, engine.weights(), content.view(), &[(style.view(), 1.0)], None)?;
    let mut grad = Array4::zeros(content.raw_dim());
    let mut fp32_at = serde_json::Map::new();
    for (k, image) in BUDGETS.iter().zip(&kept.0) {
        if let Some(x) = image.as_ref().filter(|_| *k <= evaluations) {
            fp32_at.insert(k.to_string(), loss.evaluate(x.view(), grad.view_mut())?.into());
        }
    }
    let report = outcome.report;
    // The loss after k evaluations: the best value evaluated so far (what the optimizer holds).
    let best: Vec<f32> = report
        .evaluations
        .iter()
        .scan(f32::INFINITY, |b, e| {
            *b = b.min(e.loss);
            Some(*b)
        })
        .collect();
    let at = |k: usize| best.get(k - 1).copied();
    let stage = &report.stages[0];
    let line = serde_json::json!({
        "objective": "gatys_max", "history": history, "line_search": format!("{search:?}").to_lowercase(), "device": report.device,
        "precision": report.precision, "fp32_loss_at": fp32_at,
        "evaluations": stage.evaluations, "iterations": stage.iterations, "termination": report.termination, "seconds": stage.optimize_s,
        "loss_at": { "100": at(100), "300": at(300), "500": at(500) },
        "losses": best,
    });
    println!("{line}");
    Ok(())
}
