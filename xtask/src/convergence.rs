//! `cargo xtask convergence convergence_256.npz --evaluations 500`: the `gatys_max`
//! objective from the content image, unconstrained, float32, as in the PyTorch
//! reference table, run by the engine; prints one JSON line with the loss after every evaluation.

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use image::Rgb32FImage;
use ndarray::Array4;
use ndarray_npy::NpzReader;
use nst_transfer::{Cache, Cancel, Device, Engine, LineSearchKind, NoObserver, Request, images};
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

pub fn run(npz: &Path, evaluations: usize, history: usize, search: Search) -> Result<()> {
    let file = std::fs::File::open(npz).with_context(|| format!("opening {}", npz.display()))?;
    let mut z = NpzReader::new(file)?;
    let content: Array4<f32> = z.by_name("content")?;
    let style: Array4<f32> = z.by_name("style")?;
    let engine = Engine::open(&Cache::locate()?, Device::Auto, &|m| eprintln!("{m}"))?;
    let mut request = Request::new(image(&content, "content")?, vec![image(&style, "style")?]);
    let s = &mut request.settings;
    s.size = content.shape()[2].max(content.shape()[3]) as u32;
    (s.evaluations, s.history, s.multiscale, s.bounds) = (evaluations, history, None, false);
    s.line_search = match search {
        Search::Fixed => LineSearchKind::Fixed,
        Search::Wolfe => LineSearchKind::Wolfe,
        Search::Armijo => LineSearchKind::Armijo,
    };
    let outcome = engine.run(&request, &mut NoObserver, &Cancel::new())?;
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
        "evaluations": stage.evaluations, "iterations": stage.iterations, "termination": report.termination, "seconds": stage.optimize_s,
        "loss_at": { "100": at(100), "300": at(300), "500": at(500) },
        "losses": best,
    });
    println!("{line}");
    Ok(())
}
