//! The n-length vector kernels of the solver, parallel above a size threshold.
//!
//! Each kernel is one pass over memory; the fused one (`axpy_dot`) saves a
//! pass in the two-loop recursion, which is memory-bound for image-sized n.
//! Reductions keep [`LANES`] partial sums so the compiler can vectorize them,
//! and use plain multiply-adds, not `mul_add`: without an FMA target feature
//! that is a libm call, several times slower.

use crate::Real;
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

fn dot_slice<F: Real>(a: &[F], b: &[F]) -> F {
    lane_sum(a.len(), |i| a[i] * b[i])
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
        (Some(a), Some(b)) => a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)).map(|(a, b)| dot_slice(a, b)).sum(),
        _ => Zip::from(&a).and(&b).fold(F::zero(), |acc, &a, &b| acc + a * b),
    }
}

/// `[a·c, a·d, b·c, b·d]` in one pass over the four vectors.
pub fn cross_dots<F: Real>(a: ArrayView1<F>, b: ArrayView1<F>, c: ArrayView1<F>, d: ArrayView1<F>) -> [F; 4] {
    let add = |p: [F; 4], q: [F; 4]| [p[0] + q[0], p[1] + q[1], p[2] + q[2], p[3] + q[3]];
    let slice =
        |a: &[F], b: &[F], c: &[F], d: &[F]| [dot_slice(a, c), dot_slice(a, d), dot_slice(b, c), dot_slice(b, d)];
    match (a.as_slice(), b.as_slice(), c.as_slice(), d.as_slice()) {
        (Some(a), Some(b), Some(c), Some(d)) if a.len() < PARALLEL_THRESHOLD => slice(a, b, c, d),
        (Some(a), Some(b), Some(c), Some(d)) => a
            .par_chunks(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .zip(c.par_chunks(CHUNK).zip(d.par_chunks(CHUNK)))
            .map(|((a, b), (c, d))| slice(a, b, c, d))
            .reduce(|| [F::zero(); 4], add),
        _ => [dot(a, c), dot(a, d), dot(b, c), dot(b, d)],
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
            .sum(),
        _ => Zip::from(&mut y).and(&x).and(&w).fold(F::zero(), |acc, y, &x, &w| {
            *y = *y + alpha * x;
            acc + *y * w
        }),
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
        let expect =
            [dot(a.view(), a.view()), dot(a.view(), b.view()), dot(b.view(), a.view()), dot(b.view(), b.view())];
        assert_eq!(cross_dots(a.view(), b.view(), a.view(), b.view()), expect);
        let a = Array1::from_shape_fn(20, |i| i as f64);
        let strided = a.slice(s![..;2]);
        assert_eq!(dot(strided, strided), (0..10).map(|i| (2 * i * 2 * i) as f64).sum());
    }
}
