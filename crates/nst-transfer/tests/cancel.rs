//! Cancelling a run: it gives the image of the lowest loss evaluated, and on an engine that
//! two runs share, it stops that run alone (each stops its graphs on a switch of its own).

use image::{Rgb, Rgb32FImage};
use nst_transfer::{Cache, Cancel, Device, Engine, Evaluation, Observer, Outcome, Precision, Request};
use std::sync::mpsc::{Sender, channel};

/// A textured image of `side` pixels.
fn image(side: u32, phase: f32) -> Rgb32FImage {
    Rgb32FImage::from_fn(side, side, |x, y| {
        let (x, y) = (x as f32, y as f32);
        let v = |c: f32| 0.5 + 0.4 * ((x * 0.31 + phase + c).sin() * (y * 0.17 + c).cos());
        Rgb([v(0.0), v(1.0), v(2.0)])
    })
}

fn request(side: u32, evaluations: usize) -> Request {
    let mut r = Request::new(image(side, 0.0), vec![image(96, 1.5)]);
    r.settings.size = side;
    r.settings.evaluations = evaluations;
    r.settings.multiscale = None;
    r
}

/// Tells `evaluated` of each evaluation, and trips `cancel`, if given, at its evaluation.
struct Watch<'c> {
    evaluated: Sender<usize>,
    cancel: Option<(&'c Cancel, usize)>,
}

impl Observer for Watch<'_> {
    fn evaluation(&mut self, e: &Evaluation) {
        let _ = self.evaluated.send(e.evaluation);
        if let Some((cancel, at)) = self.cancel
            && e.evaluation == at
        {
            cancel.cancel();
        }
    }
}

/// Runs `request` on a thread with a main thread's stack (as [`Engine::run`] asks).
fn run_on<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    engine: &'s Engine,
    request: Request,
    mut watch: Watch<'s>,
    cancel: &'s Cancel,
) -> std::thread::ScopedJoinHandle<'s, Outcome> {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn_scoped(scope, move || engine.run(&request, &mut watch, cancel).unwrap())
        .unwrap()
}

#[test]
fn cancelling_one_run_leaves_another_on_the_same_engine_alone() {
    let engine = Engine::open(&Cache::locate().unwrap(), Device::Cpu, Precision::Fp32, &|m| eprintln!("{m}")).unwrap();
    let (long, short) = (Cancel::new(), Cancel::new());
    let (long_out, short_out) = std::thread::scope(|scope| {
        let (tx, evaluated) = channel();
        let long_run = run_on(scope, &engine, request(160, 30), Watch { evaluated: tx, cancel: None }, &long);
        // The short run starts, and cancels itself, while the long one evaluates.
        evaluated.recv().unwrap();
        let (tx, _short_evaluated) = channel();
        let short_run =
            run_on(scope, &engine, request(128, 30), Watch { evaluated: tx, cancel: Some((&short, 1)) }, &short);
        (long_run.join().unwrap(), short_run.join().unwrap())
    });
    assert!(short_out.report.interrupted);
    assert_eq!(short_out.report.evaluations.len(), 1);
    assert!(!long_out.report.interrupted && long_out.report.termination != "cancelled");
    assert!(long_out.report.evaluations.len() > 1);
}

#[test]
fn a_cancelled_run_gives_the_image_of_the_lowest_loss_evaluated() {
    let engine = Engine::open(&Cache::locate().unwrap(), Device::Cpu, Precision::Fp32, &|m| eprintln!("{m}")).unwrap();
    for at in [2, 3, 5] {
        let cancel = Cancel::new();
        let (tx, _evaluated) = channel();
        let out = std::thread::scope(|scope| {
            run_on(scope, &engine, request(96, 30), Watch { evaluated: tx, cancel: Some((&cancel, at)) }, &cancel)
                .join()
                .unwrap()
        });
        let losses: Vec<f32> = out.report.evaluations.iter().map(|e| e.loss).collect();
        assert_eq!(losses.len(), at);
        // A line search's trial counts, accepted or not.
        let lowest = losses.iter().copied().fold(f32::INFINITY, f32::min);
        assert_eq!(out.report.final_loss, lowest, "cancelled at {at}: {losses:?}");
    }
}
