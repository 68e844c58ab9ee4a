//! The correction pairs on the device ([`DevicePairs`], here on ONNX Runtime's CPU provider,
//! the code path CUDA takes): its products against plain loops, and L-BFGS-B runs with it
//! against runs without.

mod common;

use common::runtime;
use ndarray::{Array1, ArrayView1, ArrayViewMut1};
use nst_features::DevicePairs;
use nst_optim::{Bounds, Lbfgs, NoObserver, Objective, PairMirror, State};
use std::convert::Infallible;

fn wave(n: usize, f: f32) -> Array1<f32> {
    Array1::from_shape_fn(n, |i| (i as f32 * f).sin())
}

fn dot(a: ArrayView1<f32>, b: ArrayView1<f32>, keep: Option<&[bool]>) -> f64 {
    (0..a.len()).filter(|&i| keep.is_none_or(|k| k[i])).map(|i| f64::from(a[i]) * f64::from(b[i])).sum()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(g) - w).abs() <= 1e-4 * w.abs().max(1.0), "{what}[{j}]: {g} vs {w}");
    }
}

#[test]
fn stores_pairs_and_gives_their_products_and_combinations() {
    let (n, c) = (10_007, 3);
    let mut pairs = DevicePairs::new(runtime(), n, c).expect("pairs on the CPU provider");
    assert_eq!(pairs.capacity(), c);
    let s: Vec<Array1<f32>> = (0..c).map(|j| wave(n, 0.11 + 0.07 * j as f32)).collect();
    let y: Vec<Array1<f32>> = (0..c).map(|j| wave(n, 0.05 + 0.13 * j as f32)).collect();
    let zeros = Array1::zeros(n);
    // Slots 2 then 0: each store's products are with what the slots hold by then (zeros before).
    for (done, slot) in [2, 0].into_iter().enumerate() {
        let rows = pairs.store(slot, s[slot].view(), y[slot].view()).unwrap();
        let held =
            |j: usize, of: &[Array1<f32>]| if [2, 0][..=done].contains(&j) { of[j].clone() } else { zeros.clone() };
        let want: Vec<f64> = [s[slot].view(), y[slot].view()]
            .iter()
            .flat_map(|v| {
                (0..c)
                    .map(|j| dot(*v, held(j, &y).view(), None))
                    .chain((0..c).map(|j| dot(*v, held(j, &s).view(), None)))
            })
            .collect::<Vec<_>>();
        // The slot's own products are not read: compare the others.
        let others =
            |r: &[f32]| -> Vec<f32> { r.iter().enumerate().filter(|(i, _)| i % c != slot).map(|(_, &v)| v).collect() };
        let want_others: Vec<f64> = want.iter().enumerate().filter(|(i, _)| i % c != slot).map(|(_, &v)| v).collect();
        assert_close(&others(&rows), &want_others, "store");
    }
    let stored = |j: usize, of: &[Array1<f32>]| if j == 1 { zeros.clone() } else { of[j].clone() };
    let (vs, keep) = ([wave(n, 0.3), wave(n, 0.7)], (0..n).map(|i| i % 3 != 0).collect::<Vec<_>>());
    for mask in [None, Some(keep.as_slice())] {
        let views: Vec<ArrayView1<f32>> = vs.iter().map(|v| v.view()).collect();
        let got = pairs.dots(&views, mask).unwrap();
        let want: Vec<f64> = views
            .iter()
            .flat_map(|v| {
                let of =
                    |list: &[Array1<f32>]| (0..c).map(|j| dot(*v, stored(j, list).view(), mask)).collect::<Vec<_>>();
                [of(&y), of(&s)].concat()
            })
            .collect();
        assert_close(&got, &want, if mask.is_some() { "masked dots" } else { "dots" });
    }
    let coefficients = [0.5, -1.0, 2.0, 1.5, 3.0, -0.25];
    let mut out = wave(n, 0.9);
    let mut want = out.mapv(f64::from);
    for j in 0..c {
        want.scaled_add(f64::from(coefficients[j]), &stored(j, &y).mapv(f64::from));
        want.scaled_add(f64::from(coefficients[c + j]), &stored(j, &s).mapv(f64::from));
    }
    pairs.add_combination(&coefficients, out.view_mut()).unwrap();
    assert_close(out.as_slice().unwrap(), want.as_slice().unwrap(), "combination");
}

/// f = ½ Σ hᵢ (xᵢ − cᵢ)², a third of the centres outside [0, 1].
struct Quadratic {
    h: Array1<f32>,
    c: Array1<f32>,
}

impl Objective<f32> for &Quadratic {
    type Error = Infallible;
    fn value_and_gradient(&mut self, x: ArrayView1<f32>, mut g: ArrayViewMut1<f32>) -> Result<f32, Infallible> {
        let r = &x - &self.c;
        g.assign(&(&r * &self.h));
        Ok(0.5 * (&r * &r * &self.h).sum())
    }
}

#[test]
fn lbfgs_runs_the_same_with_the_pairs_on_the_device() {
    let n = 30_000;
    let q = Quadratic { h: wave(n, 0.37).mapv(|v| 1.0 + 9.5 * (v + 1.0)), c: wave(n, 1.91).mapv(|v| 0.75 * v + 0.5) };
    let c = 8;
    for bounded in [false, true] {
        let mut solver = Lbfgs::new().with_history(c).unwrap().with_max_evaluations(60).unwrap();
        if bounded {
            solver = solver.with_bounds(Bounds::Uniform { lower: 0.0, upper: 1.0 });
        }
        let run = |mirror: bool| {
            let mut state = State::new();
            if mirror {
                let pairs = DevicePairs::new(runtime(), n, c).unwrap();
                state.history.set_mirror(Box::new(pairs), c).unwrap();
            }
            let mut x = Array1::from_elem(n, 0.5f32);
            let report = solver.run(&q, x.view_mut(), &mut state, &mut NoObserver).unwrap();
            assert_eq!(state.history.mirror_failure(), None);
            (report, x)
        };
        let ((on_device, x_device), (on_host, x_host)) = (run(true), run(false));
        assert!(on_device.iterations >= 20, "{on_device:?}");
        // Against f at the start: unbounded, f goes to 0.
        let start = (&q).value_and_gradient(Array1::from_elem(n, 0.5f32).view(), Array1::zeros(n).view_mut()).unwrap();
        let f_gap = (on_device.f - on_host.f).abs() / start;
        let x_gap = (&x_device - &x_host).iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            f_gap <= 1e-6 && x_gap <= 1e-3,
            "bounded {bounded}: f {} vs {}, x within {x_gap}",
            on_device.f,
            on_host.f
        );
    }
}
