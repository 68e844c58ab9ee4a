//! The n-length vector kernels of the solver, parallel above a size threshold.
//!
//! Each kernel is one pass over memory, and the fused ones save passes where the
//! solver is memory-bound for image-sized n: `axpy_dot` in the two-loop recursion;
//! `dots_with` and `add_combination` in L-BFGS-B's products with all the pairs at once,
//! which read each pair once instead of once per product. The innermost loops are compiled
//! for AVX2 and AVX-512 as well and picked at run time ([`multiversion`]); parallel sums add
//! their chunks' parts in a fixed order, so results do not depend on rayon's split.
//! Reductions keep [`LANES`] partial sums so the compiler can vectorize them,
//! and use plain multiply-adds, not `mul_add`: without an FMA target feature
//! that is a libm call, several times slower.

use crate::Real;
use multiversion::multiversion;
use ndarray::{ArrayView1, ArrayViewMut1, Zip};
use rayon::prelude::*;

/// Below this length the kernels run on one thread: rayon's fork costs more.
pub const PARALLEL_THRESHOLD: usize = 1 << 16;

/// Elements per rayon task.
const CHUNK: usize = 1 << 15;

/// Independent partial sums in a reduction.
const LANES: usize = 8;

/// `Σ f(i)` over `0..len` in `LANES` interleaved partial sums.
#[inline(always)]
fn lane_sum<F: Real>(len: usize, mut f: impl FnMut(usize) -> F) -> F {
    let mut acc = [F::zero(); LANES];
    let main = len - len % LANES;
    for base in (0..main).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a = *a + f(base + l);
        }
    }
    let tail: F = (main..len).map(&mut f).sum();
    acc.iter().copied().sum::<F>() + tail
}

/// `a · b` over two slices of the same length, in `LANES` interleaved partial sums over
/// `chunks_exact`: not through [`lane_sum`], whose indexed closure the compiler vectorizes
/// worse here (L-BFGS-B's step 1.65× slower in `solver_bench`, even with `b` resliced).
#[multiversion(targets = "simd")]
fn dot_slice<F: Real>(a: &[F], b: &[F]) -> F {
    debug_assert_eq!(a.len(), b.len());
    let (a_lanes, b_lanes) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: F = a_lanes.remainder().iter().zip(b_lanes.remainder()).map(|(&a, &b)| a * b).sum();
    let mut acc = [F::zero(); LANES];
    for (a, b) in a_lanes.zip(b_lanes) {
        for l in 0..LANES {
            acc[l] = acc[l] + a[l] * b[l];
        }
    }
    acc.iter().copied().sum::<F>() + tail
}

fn axpy_dot_slice<F: Real>(alpha: F, x: &[F], y: &mut [F], w: &[F]) -> F {
    lane_sum(y.len(), |i| {
        y[i] = y[i] + alpha * x[i];
        y[i] * w[i]
    })
}

/// `a · b`.
pub fn dot<F: Real>(a: ArrayView1<F>, b: ArrayView1<F>) -> F {
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) if a.len() < PARALLEL_THRESHOLD => dot_slice(a, b),
        (Some(a), Some(b)) => sum_of_parts(a.len(), 1, |lo, hi| vec![dot_slice(&a[lo..hi], &b[lo..hi])])[0],
        _ => Zip::from(&a).and(&b).fold(F::zero(), |acc, &a, &b| acc + a * b),
    }
}

/// `y ← y + alpha · x`, then returns `y · w`, in one pass.
pub fn axpy_dot<F: Real>(alpha: F, x: ArrayView1<F>, mut y: ArrayViewMut1<F>, w: ArrayView1<F>) -> F {
    let n = y.len();
    match (x.as_slice(), y.as_slice_mut(), w.as_slice()) {
        (Some(x), Some(y), Some(w)) if n < PARALLEL_THRESHOLD => axpy_dot_slice(alpha, x, y, w),
        (Some(x), Some(y), Some(w)) => y
            .par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .zip(w.par_chunks(CHUNK))
            .map(|((y, x), w)| axpy_dot_slice(alpha, x, y, w))
            .collect::<Vec<F>>()
            .into_iter()
            .fold(F::zero(), |sum, part| sum + part),
        _ => Zip::from(&mut y).and(&x).and(&w).fold(F::zero(), |acc, y, &x, &w| {
            *y = *y + alpha * x;
            acc + *y * w
        }),
    }
}

/// `a ← a + b`.
fn add_into<F: Real>(a: &mut [F], b: &[F]) {
    a.iter_mut().zip(b).for_each(|(a, &b)| *a = *a + b);
}

/// `Σ part(lo, hi)` over consecutive ranges of `0..n` of [`CHUNK`] elements, each part `len`
/// sums long: the ranges in parallel when n is large, their parts added in order, so the
/// result is the same whichever way rayon splits the work (same seed, same image).
fn sum_of_parts<F: Real>(n: usize, len: usize, part: impl Fn(usize, usize) -> Vec<F> + Sync) -> Vec<F> {
    if n < PARALLEL_THRESHOLD {
        return part(0, n);
    }
    let parts: Vec<Vec<F>> =
        (0..n.div_ceil(CHUNK)).into_par_iter().map(|c| part(c * CHUNK, ((c + 1) * CHUNK).min(n))).collect();
    parts.iter().fold(vec![F::zero(); len], |mut sum, part| {
        add_into(&mut sum, part);
        sum
    })
}

/// `[d·d, d·y, y·y]` with `y = g_new − g_old`, in one pass: what a new L-BFGS pair is judged by.
pub fn step_products<F: Real>(d: ArrayView1<F>, g_new: ArrayView1<F>, g_old: ArrayView1<F>) -> [F; 3] {
    let (d, g_new, g_old) = (d.as_standard_layout(), g_new.as_standard_layout(), g_old.as_standard_layout());
    let [d, g_new, g_old] = [&d, &g_new, &g_old].map(|v| v.as_slice().expect("standard layout"));
    let sums = sum_of_parts(d.len(), 3, |lo, hi| {
        let (mut dd, mut dy, mut yy) = (F::zero(), F::zero(), F::zero());
        for ((&d, &gn), &go) in d[lo..hi].iter().zip(&g_new[lo..hi]).zip(&g_old[lo..hi]) {
            let y = gn - go;
            (dd, dy, yy) = (dd + d * d, dy + d * y, yy + y * y);
        }
        vec![dd, dy, yy]
    });
    [sums[0], sums[1], sums[2]]
}

/// `out ← out + Σⱼ cⱼ·aⱼ[lo..]` over `out`'s length, the terms in order.
#[multiversion(targets = "simd")]
fn add_terms<F: Real>(out: &mut [F], lo: usize, coefficients: &[F], vectors: &[&[F]]) {
    let hi = lo + out.len();
    for (&c, a) in coefficients.iter().zip(vectors) {
        for (o, &a) in out.iter_mut().zip(&a[lo..hi]) {
            *o = *o + c * a;
        }
    }
}

/// The vectors' elements as slices, when all are contiguous.
fn slices<'a, F>(vectors: &[ArrayView1<'a, F>]) -> Option<Vec<&'a [F]>> {
    vectors.iter().map(|a| a.to_slice()).collect()
}

/// `vᵢ·aⱼ` for every `vᵢ` in `vs` and `aⱼ` in `vectors`, row by row (`vs.len() × vectors.len()`),
/// in one pass: chunk by chunk, every `aⱼ` against the same chunks of the `vᵢ`, which stay in
/// cache. L-BFGS-B's `Wᵀv` (2m vectors) reads `v` once instead of 2m times, and a new pair's
/// inner products with the history read the history once.
pub fn dots_with<F: Real>(vs: &[ArrayView1<F>], vectors: &[ArrayView1<F>]) -> Vec<F> {
    let (Some(vs), Some(vectors)) = (slices(vs), slices(vectors)) else {
        return vs.iter().flat_map(|v| vectors.iter().map(|a| dot(*v, *a))).collect();
    };
    // Each aⱼ's chunk is read once, against every vᵢ's (those stay in cache).
    let chunk = |lo: usize, hi: usize| {
        let mut out = vec![F::zero(); vs.len() * vectors.len()];
        for (j, a) in vectors.iter().enumerate() {
            for (i, v) in vs.iter().enumerate() {
                out[i * vectors.len() + j] = dot_slice(&a[lo..hi], &v[lo..hi]);
            }
        }
        out
    };
    let n = vs.first().map_or(0, |v| v.len());
    debug_assert!(vs.iter().chain(&vectors).all(|a| a.len() == n), "vectors of different lengths");
    sum_of_parts(n, vs.len() * vectors.len(), chunk)
}

/// `out ← out + Σⱼ cⱼ·aⱼ` in one pass over `out` (each chunk of it updated by every term
/// while in cache), the terms added in order: the same result as one [`axpy`] per term.
pub fn add_combination<F: Real>(mut out: ArrayViewMut1<F>, coefficients: &[F], vectors: &[ArrayView1<F>]) {
    let (Some(slices), true) = (slices(vectors), out.is_standard_layout()) else {
        coefficients.iter().zip(vectors).for_each(|(&c, a)| axpy(c, *a, out.view_mut()));
        return;
    };
    let out = out.as_slice_mut().expect("standard layout");
    debug_assert!(slices.iter().all(|a| a.len() == out.len()), "vectors of different lengths");
    if out.len() < PARALLEL_THRESHOLD {
        add_terms(out, 0, coefficients, &slices);
    } else {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| add_terms(out, c * CHUNK, coefficients, &slices));
    }
}

/// Applies `f` element-wise over equally long vectors, in parallel when long.
macro_rules! elementwise {
    ($n:expr, $zip:expr, $f:expr) => {
        if $n < PARALLEL_THRESHOLD { $zip.for_each($f) } else { $zip.par_for_each($f) }
    };
}

/// `y ← y + alpha · x`.
pub fn axpy<F: Real>(alpha: F, x: ArrayView1<F>, mut y: ArrayViewMut1<F>) {
    elementwise!(x.len(), Zip::from(&mut y).and(&x), |y: &mut F, &x: &F| *y = *y + alpha * x);
}

/// `y ← alpha · x`.
pub fn scale_into<F: Real>(alpha: F, x: ArrayView1<F>, mut y: ArrayViewMut1<F>) {
    elementwise!(x.len(), Zip::from(&mut y).and(&x), |y: &mut F, &x: &F| *y = alpha * x);
}

/// `out ← a − b`.
pub fn sub_into<F: Real>(a: ArrayView1<F>, b: ArrayView1<F>, mut out: ArrayViewMut1<F>) {
    elementwise!(a.len(), Zip::from(&mut out).and(&a).and(&b), |o: &mut F, &a: &F, &b: &F| *o = a - b);
}

/// `out ← x + alpha · d`.
pub fn point_along<F: Real>(x: ArrayView1<F>, alpha: F, d: ArrayView1<F>, mut out: ArrayViewMut1<F>) {
    elementwise!(x.len(), Zip::from(&mut out).and(&x).and(&d), |o: &mut F, &x: &F, &d: &F| *o = x + alpha * d);
}

/// `max |a_i|`, NaN when any element is NaN.
pub fn norm_inf<F: Real>(a: ArrayView1<F>) -> F {
    let pick = |m: F, v: F| if v.is_nan() || m.is_nan() { F::nan() } else { m.max(v.abs()) };
    if a.len() < PARALLEL_THRESHOLD {
        a.iter().fold(F::zero(), |m, &v| pick(m, v))
    } else {
        Zip::from(&a).par_fold(F::zero, |m, &v| pick(m, v), pick)
    }
}

/// `true` when every element is finite.
pub fn all_finite<F: Real>(a: ArrayView1<F>) -> bool {
    norm_inf(a).is_finite()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, s};

    /// Equal lengths, and each value within 1e-12 of the expected (relative, or absolute near 0).
    fn assert_close(got: &[f64], expect: &[f64]) {
        assert_eq!(got.len(), expect.len(), "{got:?} vs {expect:?}");
        assert!(
            got.iter().zip(expect).all(|(g, e)| (g - e).abs() <= 1e-12 * e.abs().max(1.0)),
            "{got:?} vs {expect:?}"
        );
    }

    #[test]
    fn kernels_agree_serial_parallel_and_strided() {
        for n in [7, PARALLEL_THRESHOLD + 5] {
            let a = Array1::from_shape_fn(n, |i| (i % 13) as f64 - 6.0);
            let b = Array1::from_shape_fn(n, |i| (i % 7) as f64 * 0.5);
            let expect: f64 = a.iter().zip(&b).map(|(a, b)| a * b).sum();
            assert_eq!(dot(a.view(), b.view()), expect);
            let mut y = b.clone();
            let d = axpy_dot(2.0, a.view(), y.view_mut(), a.view());
            let y_ref = &b + &(&a * 2.0);
            assert_eq!(y, y_ref);
            assert_eq!(d, y_ref.dot(&a));
            assert_eq!(norm_inf(a.view()), 6.0);
            let mut bad = a.clone();
            bad[n - 1] = f64::NAN;
            assert!(!all_finite(bad.view()));
        }
        let (a, b) = (
            Array1::from_shape_fn(PARALLEL_THRESHOLD + 3, |i| (i % 5) as f64),
            Array1::from_shape_fn(PARALLEL_THRESHOLD + 3, |i| (i % 3) as f64),
        );
        let vs = [a.view(), b.view(), a.view()];
        let expect = [a.dot(&a), b.dot(&a), a.dot(&a), a.dot(&b), b.dot(&b), a.dot(&b)];
        let got = dots_with(&[a.view(), b.view()], &vs);
        assert_close(&got, &expect);
        let mut sum = b.clone();
        add_combination(sum.view_mut(), &[2.0, -0.5], &[a.view(), b.view()]);
        let mut axpys = b.clone();
        axpy(2.0, a.view(), axpys.view_mut());
        axpy(-0.5, b.view(), axpys.view_mut());
        assert_eq!(sum, axpys);
        let a = Array1::from_shape_fn(20, |i| i as f64);
        let strided = a.slice(s![..;2]);
        assert_eq!(dot(strided, strided), (0..10).map(|i| (2 * i * 2 * i) as f64).sum());
    }

    /// Parallel sums come out bit for bit the same on every call, whatever rayon's split.
    #[test]
    fn parallel_sums_are_the_same_every_time() {
        let n = 5 * CHUNK + 7;
        let a = Array1::from_shape_fn(n, |i| ((i * 7919) % 1013) as f32 * 1e-3 - 0.5);
        let b = Array1::from_shape_fn(n, |i| ((i * 104_729) % 997) as f32 * 1e-2);
        let sums = || {
            let mut y = b.clone();
            let fused = axpy_dot(0.5, a.view(), y.view_mut(), a.view());
            let dots = dots_with(&[a.view(), b.view()], &[b.view(), a.view(), y.view()]);
            (dot(a.view(), b.view()), step_products(a.view(), b.view(), a.view()), fused, dots)
        };
        let first = sums();
        for _ in 0..20 {
            assert_eq!(sums(), first);
        }
    }
}
