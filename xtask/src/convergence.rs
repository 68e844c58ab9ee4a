//! `cargo xtask convergence convergence_256.npz --evaluations 500`: the `gatys_max`
//! objective from the content image, unconstrained, float32, as in the PyTorch
//! reference table; prints one JSON line with the loss after every evaluation.

use anyhow::{Context, Result};
use ndarray::{Array4, ArrayView1, ArrayViewMut1};
use ndarray_npy::NpzReader;
use nst_features::{Cache, Device, FeatureNet, LossConfig, StyleLoss};
use nst_optim::{Lbfgs, LineSearch, NoObserver, Objective, State};
use std::path::Path;
use std::time::Instant;

/// Keeps the loss of every evaluation.
struct Logged {
    loss: StyleLoss,
    losses: Vec<f32>,
}

impl Objective<f32> for Logged {
    type Error = nst_features::Error;
    fn value_and_gradient(&mut self, x: ArrayView1<f32>, g: ArrayViewMut1<f32>) -> Result<f32, Self::Error> {
        let f = self.loss.value_and_gradient(x, g)?;
        self.losses.push(f);
        Ok(f)
    }
}

pub fn run(npz: &Path, evaluations: usize, history: usize, line_search: &str) -> Result<()> {
    let file = std::fs::File::open(npz).with_context(|| format!("opening {}", npz.display()))?;
    let mut z = NpzReader::new(file)?;
    let content: Array4<f32> = z.by_name("content")?;
    let style: Array4<f32> = z.by_name("style")?;
    let log = |m: &str| eprintln!("{m}");
    let cache = Cache::locate()?;
    let weights = cache.weights(&log)?;
    let rt = cache.open_runtime(Device::Auto, &log)?;
    let objective = LossConfig::preset("gatys")?.resolve()?;
    let targets = FeatureNet::new(&rt, &objective, &weights)?.targets(content.view(), &[(style.view(), 1.0)])?;
    let (h, w) = (content.shape()[2], content.shape()[3]);
    let loss = StyleLoss::new(&rt, &objective, &weights, targets, h, w)?;
    let ls = match line_search {
        "fixed" => LineSearch::fixed(1.0),
        "armijo" => LineSearch::armijo(),
        _ => LineSearch::strong_wolfe(),
    };
    let solver = Lbfgs::new()
        .with_history(history)?
        .with_line_search(ls)?
        .with_max_evaluations(evaluations)?
        .with_gradient_tolerance(0.0)?;
    let mut x = content.clone();
    let mut logged = Logged { loss, losses: Vec::with_capacity(evaluations) };
    let t = Instant::now();
    let flat = ArrayViewMut1::from(x.as_slice_mut().expect("standard layout"));
    let report = solver.run(&mut logged, flat, &mut State::new(), &mut NoObserver)?;
    let seconds = t.elapsed().as_secs_f64();
    // The loss after k evaluations: the best value evaluated so far (what the optimizer holds).
    let best: Vec<f32> = logged
        .losses
        .iter()
        .scan(f32::INFINITY, |b, &f| {
            *b = b.min(f);
            Some(*b)
        })
        .collect();
    let at = |k: usize| best.get(k - 1).copied();
    let line = serde_json::json!({
        "objective": "gatys_max", "history": history, "line_search": line_search, "device": if rt.is_cuda() { "cuda" } else { "cpu" },
        "evaluations": report.evaluations, "iterations": report.iterations, "termination": report.termination.to_string(), "seconds": seconds,
        "loss_at": { "100": at(100), "300": at(300), "500": at(500) },
        "losses": best,
    });
    println!("{line}");
    Ok(())
}
