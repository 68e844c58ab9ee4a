//! Times one L-BFGS direction (`History::direction`) for an image-sized problem and prints
//! the memory bandwidth it implies, beside a STREAM-style triad on the same buffers (the
//! machine's practical bound).
//!
//! ```text
//! cargo run --release -p nst-optim --example direction_bench -- [N] [M...]
//! ```
//! Defaults: n = 12 582 912 (a 2048² RGB image), m = 10 and 100, f32.

use ndarray::Array1;
use nst_optim::{History, PARALLEL_THRESHOLD};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(3 * 2048 * 2048);
    let ms: Vec<usize> = if args.len() > 1 { args[1..].to_vec() } else { vec![10, 100] };
    println!("n = {n}, f32, {} rayon threads, parallel above {PARALLEL_THRESHOLD}", rayon::current_num_threads());

    let g = Array1::from_shape_fn(n, |i| ((i % 1013) as f32 - 506.0) * 1e-3);
    let mut d = Array1::<f32>::zeros(n);
    let bytes = |vectors: usize| (vectors * n * std::mem::size_of::<f32>()) as f64;

    // Triad d = g + s·x over the same length: 2 reads + 1 write.
    let x = g.mapv(|v| v * 0.5);
    let triad = best_of(5, || ndarray::Zip::from(&mut d).and(&g).and(&x).par_for_each(|d, &g, &x| *d = g + 0.3 * x));
    println!("triad: {:.2} ms, {:.1} GB/s", triad * 1e3, bytes(3) / triad / 1e9);

    for &m in &ms {
        let mut h = History::<f32>::new(m);
        // Pairs of a quadratic with curvatures in [0.5, 20] along varied steps.
        let curvature = Array1::from_shape_fn(n, |i| 0.5 + ((i * 7 + 3) % 40) as f32 / 2.0);
        let mut g_old = Array1::<f32>::zeros(n);
        for k in 0..m {
            let d = Array1::from_shape_fn(n, |i| ((i * 7919 + k * 104_729) % 1000) as f32 / 500.0 - 1.0);
            let g_new = &g_old + &(&curvature * &d);
            h.update(1.0, d.view(), g_new.view(), g_old.view());
            g_old = g_new;
        }
        let t = best_of(3, || h.direction(g.view(), d.view_mut()));
        // The products pass reads 2m pairs' vectors and g; the combination reads them again
        // and d, and writes d; −γg reads g and writes d.
        let moved = bytes(4 * m + 5);
        println!(
            "m = {m:>3}: {:.1} ms per direction, {:.1} GB/s ({:.0}% of triad)",
            t * 1e3,
            moved / t / 1e9,
            100.0 * (moved / t) / (bytes(3) / triad)
        );
    }
}

fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
