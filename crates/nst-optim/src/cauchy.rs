//! The generalized Cauchy point of L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995, Algorithm CP).
//!
//! Along the projected steepest-descent path `x(t) = P(x − t·g)` the quadratic
//! model `m(x) = gᵀ(x−x_k) + ½(x−x_k)ᵀB(x−x_k)` is piecewise quadratic; the
//! Cauchy point is its first local minimizer. Breakpoints are visited in
//! increasing order, a sorted batch at a time ([`Breakpoints`]), so only those
//! near the minimizer are sorted.

use crate::Real;
use crate::bounds::Bounds;
use crate::history::Compact;
use ndarray::{Array1, ArrayView1, ArrayViewMut1, Zip};
use rayon::prelude::*;
use std::cmp::Ordering;

/// Breakpoints sorted per batch: a Cauchy point usually stops within the first few.
const BATCH: usize = 1024;

/// Variables per parallel task when collecting a batch.
const CHUNK: usize = 1 << 15;

/// Where variable `i` reaches its bound along `−g`: `t_i ≥ 0`, infinite when `g_i = 0`.
fn breakpoint<F: Real>(x: F, g: F, (l, u): (F, F)) -> F {
    if g < F::zero() {
        (x - u) / g
    } else if g > F::zero() {
        (x - l) / g
    } else {
        F::infinity()
    }
}

/// Increasing `t`, then increasing index: the order breakpoints are visited in.
fn order<F: Real>(a: &(F, usize), b: &(F, usize)) -> Ordering {
    a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal).then(a.1.cmp(&b.1))
}

/// The positive, finite breakpoints `(t_i, i)` in [`order`], found [`BATCH`] at a time: each
/// batch is one parallel pass over the variables keeping, per task, the smallest after the
/// previous batch's last, then one sort of at most `BATCH` per task. No heap of all n.
struct Breakpoints<'a, F> {
    x: ArrayView1<'a, F>,
    g: ArrayView1<'a, F>,
    bounds: &'a Bounds<F>,
    batch: Vec<(F, usize)>,
    next: usize,
    /// The batch is the last: fewer than `BATCH` breakpoints were left.
    last: bool,
}

impl<'a, F: Real> Breakpoints<'a, F> {
    fn new(x: ArrayView1<'a, F>, g: ArrayView1<'a, F>, bounds: &'a Bounds<F>) -> Self {
        let mut bps = Breakpoints { x, g, bounds, batch: Vec::new(), next: 0, last: false };
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

    fn refill(&mut self) {
        let after = self.batch.last().copied();
        let (x, g, bounds) = (self.x, self.g, self.bounds);
        let smallest = |mut v: Vec<(F, usize)>| {
            if v.len() > BATCH {
                v.select_nth_unstable_by(BATCH, order);
                v.truncate(BATCH);
            }
            v
        };
        let n = x.len();
        let found: Vec<(F, usize)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .flat_map_iter(|c| {
                let candidates = (c * CHUNK..((c + 1) * CHUNK).min(n))
                    .map(|i| (breakpoint(x[i], g[i], bounds.get(i)), i))
                    .filter(|bp| bp.0 > F::zero() && bp.0.is_finite())
                    .filter(|bp| after.is_none_or(|a| order(bp, &a) == Ordering::Greater))
                    .collect();
                smallest(candidates)
            })
            .collect();
        let mut batch = smallest(found);
        batch.sort_unstable_by(order);
        self.last = batch.len() < BATCH;
        self.batch = batch;
        self.next = 0;
    }
}

/// Computes the generalized Cauchy point into `xcp` and returns `c = Wᵀ(xcp − x)`.
///
/// `d` is scratch (n); `compact` is `None` before the first correction pair
/// (then `B = I`).
pub(crate) fn cauchy_point<F: Real>(
    x: ArrayView1<F>,
    g: ArrayView1<F>,
    bounds: &Bounds<F>,
    compact: Option<&Compact<'_, F>>,
    mut d: ArrayViewMut1<F>,
    mut xcp: ArrayViewMut1<F>,
) -> Array1<F> {
    let theta = compact.map_or(F::one(), |c| c.theta);
    let width = compact.map_or(0, |c| c.width());
    // The steepest-descent direction d = −g, zero where t_i = 0.
    Zip::indexed(&mut d).and(&x).and(&g).par_for_each(|i, d, &x, &g| {
        *d = if breakpoint(x, g, bounds.get(i)) == F::zero() { F::zero() } else { -g };
    });
    let mut breakpoints = Breakpoints::new(x, g, bounds);
    xcp.assign(&x);

    let mv = |m: &ndarray::Array2<F>, v: &Array1<F>| m.dot(v);
    // p = Wᵀd, c = 0, f' = gᵀd = −dᵀd, f'' = −θf' − pᵀMp.
    let mut p = compact.map_or_else(|| Array1::zeros(0), |c| c.wt_times(d.view()));
    let mut c = Array1::<F>::zeros(width);
    let mut f1 = -crate::vector::dot(d.view(), d.view());
    let mut f2 = -theta * f1 - compact.map_or(F::zero(), |cm| p.dot(&mv(&cm.m, &p)));
    let f2_floor = F::epsilon() * f2;
    let mut dt_min = -f1 / f2;
    let mut t_old = F::zero();
    let mut wb = vec![F::zero(); width];

    while let Some((t, b)) = breakpoints.peek() {
        let dt = t - t_old;
        if dt_min < dt {
            break;
        }
        breakpoints.advance();
        // Fix variable b at its bound.
        let (l, u) = bounds.get(b);
        let xb = if d[b] > F::zero() { u } else { l };
        let zb = xb - x[b];
        xcp[b] = xb;
        let gb = g[b];
        c.scaled_add(dt, &p);
        // f' ← f' + Δt f'' + g_b² + θ g_b z_b − g_b w_bᵀMc;
        // f'' ← f'' − θ g_b² − 2 g_b w_bᵀMp − g_b² w_bᵀMw_b;  p ← p + g_b w_b.
        let (mut wmc, mut wmp, mut wmw) = (F::zero(), F::zero(), F::zero());
        if let Some(cm) = compact {
            cm.row(b, &mut wb);
            let w = ndarray::ArrayView1::from(&wb[..]);
            let mw = cm.m.dot(&w);
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
    Zip::from(&mut xcp).and(&d).and(&x).par_for_each(|xc, &d, &x| {
        if d != F::zero() {
            *xc = x + t_cp * d;
        }
    });
    c.scaled_add(dt_min, &p);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch by batch, every positive finite breakpoint comes once, in the order of a full
    /// sort: across batches and parallel tasks, with many ties and some zero and infinite t.
    #[test]
    fn breakpoints_come_in_sorted_order_across_batches() {
        let n = 2 * CHUNK + 5;
        let x = Array1::from_shape_fn(n, |i| (i % 7) as f64 / 6.0);
        let g = Array1::from_shape_fn(n, |i| ((i * 37) % 11) as f64 - 5.0);
        let bounds = Bounds::Uniform { lower: 0.0, upper: 1.0 };
        let mut expect: Vec<(f64, usize)> = (0..n)
            .map(|i| (breakpoint(x[i], g[i], (0.0, 1.0)), i))
            .filter(|bp| bp.0 > 0.0 && bp.0.is_finite())
            .collect();
        expect.sort_by(order);
        assert!(expect.len() > 3 * BATCH && expect.len() < n);
        let mut breakpoints = Breakpoints::new(x.view(), g.view(), &bounds);
        let mut got = Vec::new();
        while let Some(bp) = breakpoints.peek() {
            got.push(bp);
            breakpoints.advance();
        }
        assert_eq!(got, expect);
    }
}
