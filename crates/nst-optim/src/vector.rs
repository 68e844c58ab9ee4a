//! The n-length vector kernels of the solver, parallel above a size threshold.
//!
//! Each kernel is one pass over memory, and the fused ones save passes where the
//! solver is memory-bound for image-sized n: `dots_with` and `add_combination` take all the
//! pairs at once, four streams at a time, reading each pair once instead of once per
//! product. The innermost loops are compiled
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
pub(crate) const LANES: usize = 8;

/// `a · b` over two slices of the same length, in `LANES` interleaved partial sums over
/// `chunks_exact` (an indexed loop vectorizes worse: L-BFGS-B's step was 1.65× slower in
/// `solver_bench`).
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

/// `a · b`.
pub fn dot<F: Real>(a: ArrayView1<F>, b: ArrayView1<F>) -> F {
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) if a.len() < PARALLEL_THRESHOLD => dot_slice(a, b),
        (Some(a), Some(b)) => sum_of_parts(a.len(), 1, |lo, hi| vec![dot_slice(&a[lo..hi], &b[lo..hi])])[0],
        _ => Zip::from(&a).and(&b).fold(F::zero(), |acc, &a, &b| acc + a * b),
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

/// `f(acc, i, a[j], b[j])` over `a` and `b` (of one length; `i = lo + j`) into [`LANES`]
/// interleaved accumulators, each from `init`, the tail into the first: a reduction the
/// compiler vectorizes, as [`dot_slice`]'s.
pub(crate) fn fold_lanes<F: Copy, A: Copy>(
    (a, b): (&[F], &[F]),
    lo: usize,
    init: A,
    f: impl Fn(A, usize, F, F) -> A,
) -> [A; LANES] {
    let mut acc = [init; LANES];
    let (a_lanes, b_lanes) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_lanes.remainder(), b_lanes.remainder());
    let rest = lo + a.len() - a_rest.len();
    for (k, (a, b)) in a_lanes.zip(b_lanes).enumerate() {
        for l in 0..LANES {
            acc[l] = f(acc[l], lo + k * LANES + l, a[l], b[l]);
        }
    }
    for (j, (&a, &b)) in a_rest.iter().zip(b_rest).enumerate() {
        acc[0] = f(acc[0], rest + j, a, b);
    }
    acc
}

/// The largest of `value(i, a_i, b_i)` (values ≥ 0) over `a` and `b` (of one length), NaN
/// when any value is NaN: in lanes the compiler vectorizes, NaNs counted in a float lane (a
/// bool lane kept the loop scalar), in parallel when long.
pub(crate) fn largest<F: Real>((a, b): (&[F], &[F]), value: impl Fn(usize, F, F) -> F + Sync) -> F {
    let larger = |p: (F, F), q: (F, F)| (p.0.max(q.0), p.1 + q.1);
    let (m, nans) = fold_parts(
        a.len(),
        |lo, hi| {
            let lanes = fold_lanes((&a[lo..hi], &b[lo..hi]), lo, (F::zero(), F::zero()), |(m, nans), i, x, y| {
                let v = value(i, x, y);
                (m.max(v), nans + if v.is_nan() { F::one() } else { F::zero() })
            });
            lanes.into_iter().fold((F::zero(), F::zero()), larger)
        },
        larger,
    );
    if nans > F::zero() { F::nan() } else { m }
}

/// A standard-layout vector's elements.
pub(crate) fn slice<'a, F>(v: &'a ndarray::CowArray<'_, F, ndarray::Ix1>) -> &'a [F] {
    v.as_slice().expect("standard layout")
}

/// `part(lo, out)` on consecutive parts of `out` of [`CHUNK`] elements (in parallel when
/// long), `lo` each part's first index.
pub(crate) fn for_parts<T: Send>(out: &mut [T], part: impl Fn(usize, &mut [T]) + Sync) {
    fold_parts_mut(out, part, |(), ()| ());
}

/// [`for_parts`] with a result per part, combined (in no set order: for `min`, `max`…).
pub(crate) fn fold_parts_mut<T: Send, R: Send>(
    out: &mut [T],
    part: impl Fn(usize, &mut [T]) -> R + Sync,
    combine: impl Fn(R, R) -> R + Sync + Send,
) -> R {
    if out.len() < PARALLEL_THRESHOLD {
        return part(0, out);
    }
    out.par_chunks_mut(CHUNK).enumerate().map(|(c, out)| part(c * CHUNK, out)).reduce_with(combine).expect("a part")
}

/// `part(lo, a, b)` on consecutive parts of two outputs of one length, cut at the same
/// [`CHUNK`] elements (in parallel when long), `lo` each part's first index; the results
/// combined in order.
pub(crate) fn fold_parts_mut2<A: Send, B: Send, R: Send>(
    (a, b): (&mut [A], &mut [B]),
    part: impl Fn(usize, &mut [A], &mut [B]) -> R + Sync,
    combine: impl Fn(R, R) -> R,
) -> R {
    assert_eq!(a.len(), b.len(), "two outputs of one length");
    if a.len() < PARALLEL_THRESHOLD {
        return part(0, a, b);
    }
    let parts: Vec<R> = a
        .par_chunks_mut(CHUNK)
        .zip(b.par_chunks_mut(CHUNK))
        .enumerate()
        .map(|(c, (a, b))| part(c * CHUNK, a, b))
        .collect();
    parts.into_iter().reduce(combine).expect("a part")
}

/// `part(lo, hi)` over consecutive ranges of `0..n` of [`CHUNK`] elements (in parallel when
/// long), combined in order.
pub(crate) fn fold_parts<T: Send>(
    n: usize,
    part: impl Fn(usize, usize) -> T + Sync,
    combine: impl Fn(T, T) -> T + Sync,
) -> T {
    if n < PARALLEL_THRESHOLD {
        return part(0, n);
    }
    let parts: Vec<T> =
        (0..n.div_ceil(CHUNK)).into_par_iter().map(|c| part(c * CHUNK, ((c + 1) * CHUNK).min(n))).collect();
    parts.into_iter().reduce(combine).expect("n > 0")
}

/// `s ← step·d`, `y ← g_new − g_old`, and `[d·d, d·y, y·y]`, in one pass: a new L-BFGS pair,
/// formed as it is judged (before, the products took a pass and forming the pair another,
/// which read d and both gradients again).
pub fn form_pair<F: Real>(
    step: F,
    (d, g_new, g_old): (ArrayView1<F>, ArrayView1<F>, ArrayView1<F>),
    mut s: ArrayViewMut1<F>,
    mut y: ArrayViewMut1<F>,
) -> [F; 3] {
    let (d, g_new, g_old) = (d.as_standard_layout(), g_new.as_standard_layout(), g_old.as_standard_layout());
    let [d, g_new, g_old] = [&d, &g_new, &g_old].map(|v| v.as_slice().expect("standard layout"));
    let (s, y) =
        (s.as_slice_mut().expect("a pair's s is contiguous"), y.as_slice_mut().expect("a pair's y is contiguous"));
    let part = |lo: usize, s: &mut [F], y: &mut [F]| {
        let hi = lo + s.len();
        pair_slice(step, (&d[lo..hi], &g_new[lo..hi], &g_old[lo..hi]), s, y)
    };
    // In order, as `sum_of_parts` adds them.
    fold_parts_mut2((s, y), part, |[a, b, c], p| [a + p[0], b + p[1], c + p[2]])
}

/// [`form_pair`] over slices, each product in [`LANES`] partial sums as [`dot_slice`]'s.
#[multiversion(targets = "simd")]
fn pair_slice<F: Real>(step: F, (d, g_new, g_old): (&[F], &[F], &[F]), s: &mut [F], y: &mut [F]) -> [F; 3] {
    let mut acc = [[F::zero(); LANES]; 3];
    let whole = d.len() / LANES * LANES;
    for i in (0..whole).step_by(LANES) {
        let (d, g_new, g_old) = (&d[i..i + LANES], &g_new[i..i + LANES], &g_old[i..i + LANES]);
        let (s, y) = (&mut s[i..i + LANES], &mut y[i..i + LANES]);
        for l in 0..LANES {
            let v = g_new[l] - g_old[l];
            (s[l], y[l]) = (step * d[l], v);
            acc[0][l] = acc[0][l] + d[l] * d[l];
            acc[1][l] = acc[1][l] + d[l] * v;
            acc[2][l] = acc[2][l] + v * v;
        }
    }
    let mut tail = [F::zero(); 3];
    for i in whole..d.len() {
        let v = g_new[i] - g_old[i];
        (s[i], y[i]) = (step * d[i], v);
        tail = [tail[0] + d[i] * d[i], tail[1] + d[i] * v, tail[2] + v * v];
    }
    let sum = |a: &[F; LANES]| a.iter().copied().sum::<F>();
    [sum(&acc[0]) + tail[0], sum(&acc[1]) + tail[1], sum(&acc[2]) + tail[2]]
}

/// Vectors the combination and products kernels stream from memory at once (the products,
/// two at a time against four `v`: see [`chunk_dots`]). Against one vector at a time, 40
/// vectors of 12.6 M (2 cores) took `dots_with` 79 ms against one `v` and 131 ms against
/// three; four at a time, with each element loaded once for all the `v`, 62 and 81 ms.
const STREAMS: usize = 4;

/// `out ← out + Σⱼ cⱼ·aⱼ[lo..]` over `out`'s length, the terms in order: [`STREAMS`] of
/// them per sweep over `out`, each element still summed term by term.
#[multiversion(targets = "simd")]
fn add_terms<F: Real>(out: &mut [F], lo: usize, coefficients: &[F], vectors: &[&[F]]) {
    let hi = lo + out.len();
    let mut terms = coefficients.chunks_exact(STREAMS).zip(vectors.chunks_exact(STREAMS));
    for (c, a) in &mut terms {
        let (a0, a1, a2, a3) = (&a[0][lo..hi], &a[1][lo..hi], &a[2][lo..hi], &a[3][lo..hi]);
        for i in 0..out.len() {
            out[i] = out[i] + c[0] * a0[i] + c[1] * a1[i] + c[2] * a2[i] + c[3] * a3[i];
        }
    }
    let done = coefficients.len() - coefficients.len() % STREAMS;
    for (&c, a) in coefficients[done..].iter().zip(&vectors[done..]) {
        for (o, &a) in out.iter_mut().zip(&a[lo..hi]) {
            *o = *o + c * a;
        }
    }
}

/// `acc[t][s] += aₛ·v_t` lane by lane, for `S` slices `aₛ` and `V` slices `v_t` of a whole
/// number of [`LANES`]: the partial sums of [`dot_slice`], carried from one part of the
/// vectors to the next in the same order (the same bits). `S` streams from memory at once,
/// each element loaded once for all the `v_t`; the `S·V` sums stay in registers when few
/// enough (see [`chunk_dots`]).
#[multiversion(targets = "simd")]
fn accumulate<F: Real, const S: usize, const V: usize>(a: [&[F]; S], v: [&[F]; V], acc: [&mut [[F; LANES]; S]; V]) {
    let blocks = v[0].len() / LANES;
    let a_lanes: [&[[F; LANES]]; S] = a.map(|a| a.as_chunks::<LANES>().0);
    let v_lanes: [&[[F; LANES]]; V] = v.map(|v| v.as_chunks::<LANES>().0);
    assert!(a_lanes.iter().all(|a| a.len() == blocks) && v_lanes.iter().all(|v| v.len() == blocks));
    let mut sums: [[[F; LANES]; S]; V] = std::array::from_fn(|t| *acc[t]);
    for i in 0..blocks {
        let a = a_lanes.map(|a| a[i]);
        for (sums, v) in sums.iter_mut().zip(&v_lanes) {
            let v = v[i];
            for (sum, a) in sums.iter_mut().zip(&a) {
                for l in 0..LANES {
                    sum[l] = sum[l] + a[l] * v[l];
                }
            }
        }
    }
    for (acc, sums) in acc.into_iter().zip(sums) {
        *acc = sums;
    }
}

/// The vectors' elements as slices, when all are contiguous.
fn slices<'a, F>(vectors: &[ArrayView1<'a, F>]) -> Option<Vec<&'a [F]>> {
    vectors.iter().map(|a| a.to_slice()).collect()
}

/// `vᵢ·aⱼ` for every `vᵢ` in `vs` and `aⱼ` in `vectors`, row by row (`vs.len() × vectors.len()`),
/// in one pass: chunk by chunk, [`STREAMS`] of the `aⱼ` at a time against the same chunks of
/// all the `vᵢ`, which stay in cache. `Wᵀv` (2m vectors) reads `v` once instead of 2m times,
/// and a new pair's inner products with the history read the history once. Each product has
/// the bits [`dot`] gives it.
pub fn dots_with<F: Real>(vs: &[ArrayView1<F>], vectors: &[ArrayView1<F>]) -> Vec<F> {
    let (Some(vs), Some(vectors)) = (slices(vs), slices(vectors)) else {
        return vs.iter().flat_map(|v| vectors.iter().map(|a| dot(*v, *a))).collect();
    };
    let n = vs.first().map_or(0, |v| v.len());
    debug_assert!(vs.iter().chain(&vectors).all(|a| a.len() == n), "vectors of different lengths");
    sum_of_parts(n, vs.len() * vectors.len(), |lo, hi| {
        let vs: Vec<&[F]> = vs.iter().map(|v| &v[lo..hi]).collect();
        chunk_dots(&vs, &vectors, lo)
    })
}

/// [`dots_with`] for `vs`, and in the same pass for `masked` over the elements `keep` marks,
/// `Σ_{keep[e]} vᵢ[e]·aⱼ[e]`: the rows of `vs` (with the bits `dots_with` gives them), then
/// those of `masked`; every vector contiguous.
pub fn dots_with_masked<F: Real>(
    vs: &[ArrayView1<F>],
    (masked, keep): (&[ArrayView1<F>], &[bool]),
    vectors: &[ArrayView1<F>],
) -> Vec<F> {
    let contiguous = |v| slices(v).expect("contiguous");
    let (vs, masked, vectors) = (contiguous(vs), contiguous(masked), contiguous(vectors));
    debug_assert!(
        vs.iter().chain(&masked).chain(&vectors).all(|a| a.len() == keep.len()),
        "vectors of different lengths"
    );
    sum_of_parts(keep.len(), (vs.len() + masked.len()) * vectors.len(), |lo, hi| {
        let copies: Vec<Vec<F>> = masked
            .iter()
            .map(|v| v[lo..hi].iter().zip(&keep[lo..hi]).map(|(&v, &k)| if k { v } else { F::zero() }).collect())
            .collect();
        let all: Vec<&[F]> = vs.iter().map(|v| &v[lo..hi]).chain(copies.iter().map(Vec::as_slice)).collect();
        chunk_dots(&all, &vectors, lo)
    })
}

/// Elements [`chunk_dots`] sweeps at a time: the `vᵢ`'s parts (32 KB each in f32) stay in L2
/// while every `aⱼ`'s stream past.
const SWEEP: usize = 1 << 13;

/// `vᵢ·aⱼ[lo..]` over `vs`' length, row by row, each product with the bits [`dot_slice`] gives
/// it: a part of [`SWEEP`] elements at a time, [`STREAMS`] of the `aⱼ` at a time against all
/// the `vᵢ`, up to four `vᵢ` per sweep. Four `vᵢ` sweep two `aⱼ` at a time, twice: four
/// against four spill the sums out of AVX2's 16 registers. 2 cores, 60 vectors of 12.6 M
/// against one to four `vᵢ`, and seven: 65, 72, 77, 94 and 145 ms; with whole chunks (128 KB
/// a vector) the `vᵢ` came from L3 once per group, and four against four spilled: 67, 78, 107,
/// 165 and 224.
fn chunk_dots<F: Real>(vs: &[&[F]], vectors: &[&[F]], lo: usize) -> Vec<F> {
    let (nv, na) = (vs.len(), vectors.len());
    let len = vs.first().map_or(0, |v| v.len());
    let (main, hi) = (len - len % LANES, lo + len);
    let groups = na / STREAMS;
    // The lane sums of each vᵢ against each group of aⱼ, row by row.
    let mut acc = vec![[[F::zero(); LANES]; STREAMS]; nv * groups];
    for start in (0..main).step_by(SWEEP) {
        let end = (start + SWEEP).min(main);
        for (group, a) in vectors.chunks_exact(STREAMS).enumerate() {
            let a: [&[F]; STREAMS] = std::array::from_fn(|s| &a[s][lo + start..lo + end]);
            for (four, rows) in vs.chunks(4).zip(acc.chunks_mut(4 * groups)) {
                let mut sums = rows.chunks_exact_mut(groups).map(|row| &mut row[group]);
                let mut next = || sums.next().expect("a row of sums per v");
                let part = |t: usize| &four[t][start..end];
                match four.len() {
                    1 => accumulate(a, [part(0)], [next()]),
                    2 => accumulate(a, [part(0), part(1)], [next(), next()]),
                    3 => accumulate(a, [part(0), part(1), part(2)], [next(), next(), next()]),
                    _ => {
                        let v = [part(0), part(1), part(2), part(3)];
                        let [(s0, t0), (s1, t1), (s2, t2), (s3, t3)] = std::array::from_fn(|_| halves(next()));
                        accumulate([a[0], a[1]], v, [s0, s1, s2, s3]);
                        accumulate([a[2], a[3]], v, [t0, t1, t2, t3]);
                    }
                }
            }
        }
    }
    let mut out = vec![F::zero(); nv * na];
    for (i, v) in vs.iter().enumerate() {
        for (j, a) in vectors.iter().enumerate() {
            out[i * na + j] = if j < groups * STREAMS {
                let tail: F = a[lo + main..hi].iter().zip(&v[main..]).map(|(&a, &b)| a * b).sum();
                acc[i * groups + j / STREAMS][j % STREAMS].iter().copied().sum::<F>() + tail
            } else {
                dot_slice(&a[lo..hi], v)
            };
        }
    }
    out
}

/// The first two and the last two of four.
fn halves<T>(four: &mut [T; 4]) -> (&mut [T; 2], &mut [T; 2]) {
    let (first, last) = four.split_at_mut(2);
    (first.try_into().expect("two"), last.try_into().expect("two"))
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

/// `max |a_i|`, NaN when any element is NaN.
pub fn norm_inf<F: Real>(a: ArrayView1<F>) -> F {
    let a = a.as_standard_layout();
    let a = slice(&a);
    largest((a, a), |_, v, _| v.abs())
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
            assert_eq!(norm_inf(a.view()), 6.0);
            assert_eq!(norm_inf(a.slice(s![..;2])), 6.0, "strided");
            let mut bad = a.clone();
            bad[n - 1] = f64::NAN;
            assert!(norm_inf(bad.view()).is_nan());
            assert!(!all_finite(bad.view()));
            bad[n - 1] = f64::NEG_INFINITY;
            assert_eq!(norm_inf(bad.view()), f64::INFINITY);
        }
        let (a, b) = (
            Array1::from_shape_fn(PARALLEL_THRESHOLD + 3, |i| (i % 5) as f64),
            Array1::from_shape_fn(PARALLEL_THRESHOLD + 3, |i| (i % 3) as f64),
        );
        let vs = [a.view(), b.view(), a.view()];
        let expect = [a.dot(&a), b.dot(&a), a.dot(&a), a.dot(&b), b.dot(&b), a.dot(&b)];
        let got = dots_with(&[a.view(), b.view()], &vs);
        assert_close(&got, &expect);
        // Six terms: four streamed together, then two one by one; each element summed in order.
        let terms = [2.0, -0.5, 0.25, 3.0, -1.5, 0.75];
        let vectors = [a.view(), b.view(), b.view(), a.view(), a.view(), b.view()];
        let mut sum = b.clone();
        add_combination(sum.view_mut(), &terms, &vectors);
        let mut axpys = b.clone();
        terms.iter().zip(&vectors).for_each(|(&c, v)| axpy(c, *v, axpys.view_mut()));
        assert_eq!(sum, axpys);
        let a = Array1::from_shape_fn(20, |i| i as f64);
        let strided = a.slice(s![..;2]);
        assert_eq!(dot(strided, strided), (0..10).map(|i| (2 * i * 2 * i) as f64).sum());
    }

    /// Every product `dots_with` gives has the bits `dot` gives it: against one to five
    /// vectors at once, with column counts that do and do not fill groups of four, and
    /// lengths that leave a tail of fewer than eight, on one thread over several parts and
    /// over several parallel chunks. `dots_with_masked` gives the same for its unmasked
    /// vectors and, for its masked ones, the products with the masked vectors.
    #[test]
    fn dots_with_gives_dots_bits() {
        for n in [13, SWEEP + 4_005, 3 * CHUNK + 5] {
            let vectors: Vec<Array1<f32>> = (0..14)
                .map(|k| Array1::from_shape_fn(n, |i| ((i * (2 * k + 3) + k) % 1013) as f32 * 1e-3 - 0.4))
                .collect();
            let keep: Vec<bool> = (0..n).map(|i| (i * 7) % 5 < 3).collect();
            for nv in 1..=5 {
                for na in [3, 4, 7, 9] {
                    let vs: Vec<_> = vectors[..nv].iter().map(|v| v.view()).collect();
                    let columns: Vec<_> = vectors[14 - na..].iter().map(|v| v.view()).collect();
                    let dots_of = |vs: &[ArrayView1<f32>]| -> Vec<f32> {
                        vs.iter().flat_map(|v| columns.iter().map(|a| dot(*v, *a))).collect()
                    };
                    assert_eq!(dots_with(&vs, &columns), dots_of(&vs), "n = {n}, {nv} × {na}");
                    let masked: Vec<Array1<f32>> =
                        vs.iter().map(|v| Array1::from_shape_fn(n, |i| if keep[i] { v[i] } else { 0.0 })).collect();
                    let both = dots_with_masked(&vs[..1], (&vs[1..], &keep), &columns);
                    let masked: Vec<_> = masked[1..].iter().map(|v| v.view()).collect();
                    assert_eq!(both, [dots_of(&vs[..1]), dots_of(&masked)].concat(), "masked: n = {n}, {nv} × {na}");
                }
            }
        }
    }

    /// A pair formed in one pass is `step·d` and `g_new − g_old`, and its products are
    /// `dot`'s, bit for bit.
    #[test]
    fn form_pair_gives_the_pair_and_dots_bits() {
        for n in [13, PARALLEL_THRESHOLD + 4_005] {
            let d = Array1::from_shape_fn(n, |i| ((i * 7919) % 1013) as f32 * 1e-3 - 0.5);
            let g_new = Array1::from_shape_fn(n, |i| ((i * 104_729) % 997) as f32 * 1e-2);
            let g_old = Array1::from_shape_fn(n, |i| ((i * 31) % 101) as f32 * 3e-2);
            let (mut s, mut y) = (Array1::zeros(n), Array1::zeros(n));
            let products = form_pair(0.25, (d.view(), g_new.view(), g_old.view()), s.view_mut(), y.view_mut());
            assert_eq!(s, &d * 0.25);
            assert_eq!(y, &g_new - &g_old);
            assert_eq!(
                products,
                [dot(d.view(), d.view()), dot(d.view(), y.view()), dot(y.view(), y.view())],
                "n = {n}"
            );
        }
    }

    /// Parallel sums come out bit for bit the same on every call, whatever rayon's split.
    #[test]
    fn parallel_sums_are_the_same_every_time() {
        let n = 5 * CHUNK + 7;
        let a = Array1::from_shape_fn(n, |i| ((i * 7919) % 1013) as f32 * 1e-3 - 0.5);
        let b = Array1::from_shape_fn(n, |i| ((i * 104_729) % 997) as f32 * 1e-2);
        let sums = || {
            let dots = dots_with(&[a.view(), b.view()], &[b.view(), a.view(), b.view(), a.view(), b.view()]);
            let (mut s, mut y) = (Array1::zeros(n), Array1::zeros(n));
            (dot(a.view(), b.view()), form_pair(0.5, (a.view(), b.view(), a.view()), s.view_mut(), y.view_mut()), dots)
        };
        let first = sums();
        for _ in 0..20 {
            assert_eq!(sums(), first);
        }
    }
}
