//! The generalized Cauchy point of L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995, Algorithm CP).
//!
//! Along the projected steepest-descent path `x(t) = P(x − t·g)` the quadratic
//! model `m(x) = gᵀ(x−x_k) + ½(x−x_k)ᵀB(x−x_k)` is piecewise quadratic; the
//! Cauchy point is its first local minimizer. Breakpoints are visited in
//! increasing order from a heap, so only those before the minimizer are sorted.

use crate::Real;
use crate::bounds::Bounds;
use crate::history::Compact;
use ndarray::{Array1, ArrayView1, ArrayViewMut1, Zip};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A breakpoint `t_i` where variable `i` reaches its bound; ordered for a min-heap.
struct Breakpoint<F>(F, usize);

impl<F: Real> PartialEq for Breakpoint<F> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<F: Real> Eq for Breakpoint<F> {}
impl<F: Real> PartialOrd for Breakpoint<F> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<F: Real> Ord for Breakpoint<F> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the smallest t first.
        other.0.partial_cmp(&self.0).unwrap_or(Ordering::Equal).then(other.1.cmp(&self.1))
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
    // Breakpoints t_i and the steepest-descent direction d = −g, zero where t_i = 0.
    let mut heap = Vec::new();
    Zip::indexed(&mut d).and(&x).and(&g).for_each(|i, d, &x, &g| {
        let (l, u) = bounds.get(i);
        let t = if g < F::zero() {
            (x - u) / g
        } else if g > F::zero() {
            (x - l) / g
        } else {
            F::infinity()
        };
        *d = if t == F::zero() { F::zero() } else { -g };
        if t > F::zero() && t.is_finite() {
            heap.push(Breakpoint(t, i));
        }
    });
    let mut heap = BinaryHeap::from(heap);
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

    while let Some(Breakpoint(t, b)) = heap.peek().map(|bp| Breakpoint(bp.0, bp.1)) {
        let dt = t - t_old;
        if dt_min < dt {
            break;
        }
        heap.pop();
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
