//! The generalized Cauchy point of L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995, Algorithm CP).
//!
//! Along the projected steepest-descent path `x(t) = P(x − t·g)` the quadratic
//! model `m(x) = gᵀ(x−x_k) + ½(x−x_k)ᵀB(x−x_k)` is piecewise quadratic; the
//! Cauchy point is its first local minimizer. Breakpoints are visited in
//! increasing order, a sorted batch at a time ([`Breakpoints`]), so only those
//! near the minimizer are sorted.

use crate::Real;
use crate::bounds::{Bounds, per_kind};
use crate::history::Compact;
use crate::vector::{fold_parts_mut2, slice};
use ndarray::{Array1, ArrayView1, ArrayViewMut1, Zip};
use rayon::prelude::*;
use std::cmp::Ordering;

/// Breakpoints sorted in the first batch: at least this many, and one variable in
/// [`BATCH_SHARE`]. Each batch costs a pass over the variables, its sort little: on real
/// images a Cauchy point crosses up to about 0.4 % of them (Chelsea × The Starry Night: up to
/// 2,400 of 524,000 variables at 512², 8,000 of 2.1 million at 1024²). Each further batch is
/// 4 times larger, so a point that crosses many takes few passes.
const BATCH: usize = 1024;
const BATCH_SHARE: usize = 256;

/// Rows of W (and M times them) gathered in the first block; each further block doubles, up to
/// [`MAX_ROWS`]: a few for the usual point, one matrix product per many for a long path.
const ROWS: usize = 32;
const MAX_ROWS: usize = 1024;

/// One variable in this many estimates where a batch ends.
const SAMPLE: usize = 64;

/// Variables per parallel task when collecting a batch.
const CHUNK: usize = 1 << 15;

/// Variables a batch's scan tests at once before testing each.
const BLOCK: usize = 16;

/// Where variable `i` reaches its bound along `−g`: `t_i ≥ 0`; infinite or NaN when `g_i = 0`
/// (never positive and finite). Without branches on g's sign, which real gradients make
/// unpredictable.
fn breakpoint<F: Real>(x: F, g: F, (l, u): (F, F)) -> F {
    let bound = if g < F::zero() { u } else { l };
    (x - bound) / g
}

/// Increasing `t`, then increasing index: the order breakpoints are visited in.
fn order<F: Real>(a: &(F, usize), b: &(F, usize)) -> Ordering {
    a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal).then(a.1.cmp(&b.1))
}

/// The positive, finite breakpoints `(t_i, i)` in [`order`], a batch at a time ([`BATCH`],
/// then 4 times more each time): each batch is one parallel pass over the breakpoints keeping,
/// per task, the smallest after the previous batch's last and below a bound that a sample
/// sets, then one sort. No heap of all n.
struct Breakpoints<'a, F> {
    t: ArrayView1<'a, F>,
    batch: Vec<(F, usize)>,
    next: usize,
    /// How many the next batch takes.
    size: usize,
    /// The batch is the last: fewer than asked for were left.
    last: bool,
}

impl<'a, F: Real> Breakpoints<'a, F> {
    /// The breakpoints `t` ([`steepest_descent`]'s), which are wanted when positive and finite.
    fn new(t: ArrayView1<'a, F>) -> Self {
        let mut bps =
            Breakpoints { t, batch: Vec::new(), next: 0, size: BATCH.max(t.len() / BATCH_SHARE), last: false };
        bps.refill();
        bps
    }

    /// The next breakpoint, without moving past it.
    fn peek(&mut self) -> Option<(F, usize)> {
        if self.next == self.batch.len() && !self.last {
            self.refill();
        }
        self.batch.get(self.next).copied()
    }

    fn advance(&mut self) {
        self.next += 1;
    }

    /// The next breakpoints of the current batch, from the one [`Self::peek`] gave, at most `count`.
    fn upcoming(&self, count: usize) -> &[(F, usize)] {
        &self.batch[self.next..(self.next + count).min(self.batch.len())]
    }

    fn refill(&mut self) {
        let after = self.batch.last().copied();
        let (t, size) = (self.t, self.size);
        let smallest = |mut v: Vec<(F, usize)>| {
            if v.len() > size {
                v.select_nth_unstable_by(size, order);
                v.truncate(size);
            }
            v
        };
        let n = t.len();
        let t = t.as_slice().expect("breakpoints in a contiguous vector");
        // Wanted: after `after` (else above 0), and below `bound`.
        let (after_t, after_i) = after.unwrap_or((F::zero(), usize::MAX));
        let wanted = |(t, i): (F, usize), bound: (F, usize)| {
            // Comparisons without branches: most variables are passed over, unpredictably.
            let after = (t > after_t) | ((t == after_t) & (i > after_i));
            after & ((t < bound.0) | ((t == bound.0) & (i < bound.1)))
        };
        // Every SAMPLE-th variable's breakpoint estimates the 2·size-th smallest wanted: the
        // scan keeps nothing beyond it (a batch of real images' breakpoints, kept as they
        // come, holds many that later ones displace: pixels in order have similar ones).
        // The batch holds every breakpoint before it, so a shorter batch is complete too.
        let mut sample: Vec<(F, usize)> = (0..n)
            .into_par_iter()
            .step_by(SAMPLE)
            .map(|i| (t[i], i))
            .filter(|&bp| wanted(bp, (F::infinity(), 0)))
            .collect();
        let j = 2 * size / SAMPLE;
        let bound = if j < sample.len() { *sample.select_nth_unstable_by(j, order).1 } else { (F::infinity(), 0) };
        let found: Vec<(F, usize)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .flat_map_iter(|c| {
                // The smallest `size` of the chunk's: once 2·size are held, the larger half
                // goes, and a candidate not below the largest kept is passed over.
                let (mut kept, mut largest) = (Vec::new(), bound);
                let lo = c * CHUNK;
                // Most blocks hold no breakpoint between `after` and the largest kept: their
                // test is a few vectorized comparisons.
                for (b, block) in t[lo..(lo + CHUNK).min(n)].chunks(BLOCK).enumerate() {
                    let some = block.iter().fold(false, |some, &t| some | ((t >= after_t) & (t <= largest.0)));
                    if !some {
                        continue;
                    }
                    for (j, &t) in block.iter().enumerate() {
                        let bp = (t, lo + b * BLOCK + j);
                        if wanted(bp, largest) {
                            kept.push(bp);
                            if kept.len() == 2 * size {
                                kept.select_nth_unstable_by(size - 1, order);
                                kept.truncate(size);
                                largest = kept[size - 1];
                            }
                        }
                    }
                }
                smallest(kept)
            })
            .collect();
        let mut batch = smallest(found);
        batch.par_sort_unstable_by(order);
        self.last = batch.len() < size && bound.0 == F::infinity();
        self.batch = batch;
        self.next = 0;
        self.size = size.saturating_mul(4);
    }
}

/// Rows `w_b` of W for upcoming breakpoints, and `M w_b` (as columns): gathered in parallel
/// and multiplied as one matrix product per block, so that what stays sequential per crossing
/// is O(m) (the m² work per breakpoint is done in the block's product).
struct Rows<F> {
    w: ndarray::Array2<F>,
    mw: ndarray::Array2<F>,
    /// The row of the next breakpoint.
    next: usize,
}

impl<F: Real> Default for Rows<F> {
    fn default() -> Self {
        Rows { w: ndarray::Array2::zeros((0, 0)), mw: ndarray::Array2::zeros((0, 0)), next: 0 }
    }
}

impl<F: Real> Rows<F> {
    fn gather(cm: &Compact<'_, F>, breakpoints: &[(F, usize)]) -> Self {
        let mut w = ndarray::Array2::zeros((breakpoints.len(), cm.width()));
        w.axis_iter_mut(ndarray::Axis(0)).into_par_iter().zip(breakpoints).for_each(|(mut row, &(_, i))| {
            cm.row(i, row.as_slice_mut().expect("rows of a standard-layout matrix are contiguous"));
        });
        let mw = cm.m.dot(&w.t());
        Rows { w, mw, next: 0 }
    }
}

/// The steepest-descent direction the Cauchy point starts along, `d = −g`, zero where
/// `t_i = 0` (a variable at a bound that `−g` pushes outward), and each variable's
/// breakpoint `t_i` ([`breakpoint`]), which the Cauchy point's batches scan.
pub(crate) fn steepest_descent<F: Real>(
    x: ArrayView1<F>,
    g: ArrayView1<F>,
    bounds: &Bounds<F>,
    mut d: ArrayViewMut1<F>,
    mut t: ArrayViewMut1<F>,
) {
    let (x, g) = (x.as_standard_layout(), g.as_standard_layout());
    let (x, g) = (slice(&x), slice(&g));
    let t = t.as_slice_mut().expect("scratch vectors are contiguous");
    let d = d.as_slice_mut().expect("the solver's d is contiguous");
    per_kind!(bounds, bound => {
        let part = |lo: usize, t: &mut [F], d: &mut [F]| {
            for (j, ((t, d), (&x, &g))) in t.iter_mut().zip(d).zip(x[lo..].iter().zip(&g[lo..])).enumerate() {
                *t = breakpoint(x, g, bound(lo + j));
                *d = if *t == F::zero() { F::zero() } else { -g };
            }
        };
        fold_parts_mut2((t, d), part, |(), ()| ());
    });
}

/// Computes the generalized Cauchy point into `xcp` and returns `c = Wᵀ(xcp − x)` and the
/// point's `t` on the path: every variable still free there moved by `t·d`, `d = −g`.
///
/// `d` and `t` are [`steepest_descent`]'s direction (overwritten) and breakpoints, and
/// `p = Wᵀd`; `compact` is `None` before the first correction pair (then `B = I`, and `p` is
/// empty).
pub(crate) fn cauchy_point<F: Real>(
    x: ArrayView1<F>,
    g: ArrayView1<F>,
    bounds: &Bounds<F>,
    compact: Option<&Compact<'_, F>>,
    mut p: Array1<F>,
    (mut d, t): (ArrayViewMut1<F>, ArrayView1<F>),
    mut xcp: ArrayViewMut1<F>,
) -> (Array1<F>, F) {
    let theta = compact.map_or(F::one(), |c| c.theta);
    let width = compact.map_or(0, |c| c.width());
    let mut breakpoints = Breakpoints::new(t);
    // The variables fixed at a bound on the way, with the bound: written after the last pass.
    let mut fixed = Vec::new();

    // c = 0, f' = gᵀd = −dᵀd, f'' = −θf' − pᵀMp.
    let mut c = Array1::<F>::zeros(width);
    let mut f1 = -crate::vector::dot(d.view(), d.view());
    let mut f2 = -theta * f1 - compact.map_or(F::zero(), |cm| p.dot(&cm.m.dot(&p)));
    let f2_floor = F::epsilon() * f2;
    let mut dt_min = -f1 / f2;
    let mut t_old = F::zero();
    let mut rows = Rows::default();

    while let Some((t, b)) = breakpoints.peek() {
        let dt = t - t_old;
        if dt_min < dt {
            break;
        }
        if let Some(cm) = compact
            && rows.next == rows.w.nrows()
        {
            rows = Rows::gather(cm, breakpoints.upcoming((rows.w.nrows() * 2).clamp(ROWS, MAX_ROWS)));
        }
        breakpoints.advance();
        // Fix variable b at its bound.
        let (l, u) = bounds.get(b);
        let xb = if d[b] > F::zero() { u } else { l };
        let zb = xb - x[b];
        fixed.push((b, xb));
        let gb = g[b];
        c.scaled_add(dt, &p);
        // f' ← f' + Δt f'' + g_b² + θ g_b z_b − g_b w_bᵀMc;
        // f'' ← f'' − θ g_b² − 2 g_b w_bᵀMp − g_b² w_bᵀMw_b;  p ← p + g_b w_b.
        let (mut wmc, mut wmp, mut wmw) = (F::zero(), F::zero(), F::zero());
        if compact.is_some() {
            let (w, mw) = (rows.w.row(rows.next), rows.mw.column(rows.next));
            rows.next += 1;
            wmc = mw.dot(&c);
            wmp = mw.dot(&p);
            wmw = mw.dot(&w);
            p.scaled_add(gb, &w);
        }
        f1 = f1 + dt * f2 + gb * gb + theta * gb * zb - gb * wmc;
        f2 = (f2 - theta * gb * gb - F::lit(2.0) * gb * wmp - gb * gb * wmw).max(f2_floor);
        d[b] = F::zero();
        dt_min = -f1 / f2;
        t_old = t;
    }
    let dt_min = dt_min.max(F::zero());
    let t_cp = t_old + dt_min;
    // One pass writes every variable: those still moving at t_cp, the rest where they are.
    Zip::from(&mut xcp).and(&d).and(&x).par_for_each(|xc, &d, &x| {
        *xc = if d != F::zero() { x + t_cp * d } else { x };
    });
    for (b, xb) in fixed {
        xcp[b] = xb;
    }
    c.scaled_add(dt_min, &p);
    (c, t_cp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    /// Brute force: the first local minimizer of m along the projected path, segment by
    /// segment between the sorted breakpoints, with B·v from the compact form directly.
    fn cauchy_reference(x: &Array1<f64>, g: &Array1<f64>, cm: &Compact<'_, f64>) -> Array1<f64> {
        let n = x.len();
        let b_times = |v: &Array1<f64>| {
            let mut out = v * cm.theta;
            cm.add_w_times(-1.0, cm.m.dot(&cm.wt_times(v.view())).view(), out.view_mut());
            out
        };
        let t_of = |i: usize| breakpoint(x[i], g[i], (0.0, 1.0));
        let mut ts: Vec<f64> = (0..n).map(t_of).filter(|t| *t > 0.0 && t.is_finite()).collect();
        ts.sort_by(f64::total_cmp);
        ts.push(f64::INFINITY);
        let at = |t: f64| Array1::from_shape_fn(n, |i| (x[i] - t * g[i]).clamp(0.0, 1.0));
        let mut start = 0.0;
        for end in ts {
            let d = Array1::from_shape_fn(n, |i| if t_of(i) > start { -g[i] } else { 0.0 });
            let z = at(start) - x;
            let f1 = g.dot(&d) + d.dot(&b_times(&z));
            let f2 = d.dot(&b_times(&d));
            if f1 >= 0.0 {
                return at(start);
            }
            if start - f1 / f2 <= end {
                return at(start - f1 / f2);
            }
            start = end;
        }
        unreachable!("the last segment is unbounded")
    }

    /// A path that crosses thousands of breakpoints (several batches, growing blocks of rows)
    /// reaches the brute-force reference's Cauchy point.
    #[test]
    fn cauchy_point_matches_brute_force_on_a_long_path() {
        let n = 3000;
        let wave = |i: usize, a: f64| 0.5 + 0.45 * (a * i as f64).sin();
        let x = Array1::from_shape_fn(n, |i| wave(i, 0.37));
        let g = Array1::from_shape_fn(n, |i| 2.0 * (wave(i, 1.3) - 0.5));
        // Pairs of a mildly curved quadratic: y = A s, A = diag(0.05 … 0.1).
        let mut history = History::<f64>::new(5);
        let a = Array1::from_shape_fn(n, |i| 0.05 + 0.05 * wave(i, 0.11));
        let mut g_old = Array1::zeros(n);
        for k in 0..5 {
            let s = Array1::from_shape_fn(n, |i| wave(i * (k + 2), 0.07) - 0.5);
            let g_new = &g_old + &(&a * &s);
            history.update(1.0, s.view(), g_new.view(), g_old.view());
            g_old = g_new;
        }
        let bounds = Bounds::Uniform { lower: 0.0, upper: 1.0 };
        let (mut d, mut t, mut xcp) = (Array1::zeros(n), Array1::zeros(n), Array1::zeros(n));
        steepest_descent(x.view(), g.view(), &bounds, d.view_mut(), t.view_mut());
        let p = history.products(&[d.view()]).remove(0);
        let cm = history.compact().expect("five pairs of a convex quadratic");
        cauchy_point(x.view(), g.view(), &bounds, Some(&cm), p, (d.view_mut(), t.view()), xcp.view_mut());
        let reference = cauchy_reference(&x, &g, &cm);
        let crossed = (0..n).filter(|&i| (xcp[i] == 0.0 || xcp[i] == 1.0) && x[i] != xcp[i]).count();
        assert!(crossed > 2 * BATCH, "only {crossed} breakpoints crossed");
        let worst = (&xcp - &reference).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(worst < 1e-9, "max |xcp − reference| = {worst:e}");
    }

    /// Batch by batch, every positive finite breakpoint comes once, in the order of a full
    /// sort: across batches and parallel tasks, with many ties, some zero and infinite t, and
    /// t falling along the variables.
    #[test]
    fn breakpoints_come_in_sorted_order_across_batches() {
        let n = 2 * CHUNK + 5;
        // Few distinct values (many ties); and distinct ones in scrambled order, the smallest
        // all in the first chunk, so that the first batches are all that chunk's.
        let few = (
            Array1::from_shape_fn(n, |i| (i % 7) as f64 / 6.0),
            Array1::from_shape_fn(n, |i| ((i * 37) % 11) as f64 - 5.0),
        );
        let scrambled = (
            Array1::from_elem(n, 0.5),
            Array1::from_shape_fn(n, |i| {
                let steep = ((i * 7919) % n + if i < CHUNK { n } else { 0 }) as f64;
                // Some with no breakpoint (g = 0).
                if i % 101 == 0 {
                    0.0
                } else if i % 3 == 0 {
                    steep
                } else {
                    -steep
                }
            }),
        );
        // Breakpoints falling along the variables, as neighbouring pixels' do: each would
        // displace the ones kept before it.
        let falling =
            (Array1::from_elem(n, 0.5), Array1::from_shape_fn(n, |i| if i % 101 == 0 { 0.0 } else { -1.0 - i as f64 }));
        for (x, g) in [few, scrambled, falling] {
            let bounds = Bounds::Uniform { lower: 0.0, upper: 1.0 };
            let mut expect: Vec<(f64, usize)> = (0..n)
                .map(|i| (breakpoint(x[i], g[i], (0.0, 1.0)), i))
                .filter(|bp| bp.0 > 0.0 && bp.0.is_finite())
                .collect();
            expect.sort_by(order);
            assert!(expect.len() > 3 * BATCH && expect.len() < n);
            let (mut d, mut t) = (Array1::zeros(n), Array1::zeros(n));
            steepest_descent(x.view(), g.view(), &bounds, d.view_mut(), t.view_mut());
            let mut breakpoints = Breakpoints::new(t.view());
            let mut got = Vec::new();
            while let Some(bp) = breakpoints.peek() {
                got.push(bp);
                breakpoints.advance();
            }
            assert_eq!(got, expect);
        }
    }
}
