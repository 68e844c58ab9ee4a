//! A runtime's [`nst_features::Interrupt`]: it stops an evaluation under way, whole or tiled,
//! and the next runs, until it is reset. In a test binary of its own: the switch is the
//! runtime's, and the other tests share theirs. And a second runtime loaded in the same
//! process, which shares its ONNX Runtime but not its switch.

mod common;

use common::runtime;

use ndarray::Array4;
use nst_features::{Cache, Device, Error, Loss, LossConfig, Precision, VggWeights};
use std::time::Duration;

/// An image whose evaluation takes far longer (a second or more on two cores) than the
/// moment after which the switch is tripped.
const SIDE: usize = 384;

fn stops_an_evaluation_under_way(tile: Option<usize>) {
    let rt = runtime();
    let spec = LossConfig::preset("gatys").unwrap().resolve().unwrap();
    let weights = VggWeights::random(7);
    let x = Array4::from_shape_fn((1, 3, SIDE, SIDE), |(_, c, y, x)| ((x * 7 + y * 3 + c * 11) % 17) as f32 / 17.0);
    let mut loss = Loss::from_images(rt, &spec, &weights, x.view(), &[(x.view(), 1.0)], tile).unwrap();
    let mut g = Array4::zeros(x.raw_dim());
    let interrupt = rt.interrupt();
    let stopped = std::thread::scope(|scope| {
        let trip = scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            interrupt.interrupt();
        });
        let result = loss.evaluate(x.view(), g.view_mut());
        trip.join().unwrap();
        result
    });
    assert!(matches!(stopped, Err(Error::Interrupted)), "{stopped:?}");
    // Tripped, it stops the next run before it starts; reset, runs go on.
    assert!(matches!(loss.evaluate(x.view(), g.view_mut()), Err(Error::Interrupted)));
    interrupt.reset();
    assert!(loss.evaluate(x.view(), g.view_mut()).unwrap().is_finite());
}

#[test]
fn an_interrupt_stops_an_evaluation_under_way_whole_or_tiled() {
    stops_an_evaluation_under_way(None);
    stops_an_evaluation_under_way(Some(128));
}

#[test]
fn a_runtime_loaded_after_another_shares_its_onnx_runtime() {
    // ONNX Runtime allows one environment per process, and `ort` refuses a second build:
    // this load failed whenever the first had finished building (two engines of one process
    // loaded only when their loads raced).
    let first = runtime();
    let second = Cache::locate().unwrap().open_runtime(Device::Cpu, Precision::Fp32, &|_| {}).expect("a second loads");
    assert!(first.interrupt() != second.interrupt(), "each has a switch of its own");
    let spec = LossConfig::preset("gatys").unwrap().resolve().unwrap();
    let x = Array4::from_shape_fn((1, 3, 64, 64), |(_, c, y, x)| ((x * 5 + y + c * 3) % 11) as f32 / 11.0);
    let weights = VggWeights::random(3);
    let mut loss = Loss::from_images(&second, &spec, &weights, x.view(), &[(x.view(), 1.0)], None).unwrap();
    assert!(loss.evaluate(x.view(), Array4::zeros(x.raw_dim()).view_mut()).unwrap().is_finite());
}
