//! Subspace minimization of L-BFGS-B (direct primal method, Byrd et al. 1995 §5.1),
//! with the projection of Morales & Nocedal (2011).
//!
//! With the variables at their bounds in the Cauchy point held fixed, the
//! quadratic model is minimized over the free ones; the result is projected
//! back into the box and kept only if it still points downhill.

use crate::Real;
use crate::bounds::Bounds;
use crate::cauchy::cauchy_point;
use crate::history::History;
use crate::vector::{PARALLEL_THRESHOLD, dot, sub_into};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1, Zip};
use rayon::prelude::*;

/// Scratch vectors of the bounded direction, allocated once per run.
#[derive(Debug)]
pub(crate) struct BoundedWork<F> {
    xcp: Array1<F>,
    r: Array1<F>,
    free: Vec<bool>,
}

impl<F: Real> BoundedWork<F> {
    pub fn new(n: usize) -> Self {
        Self { xcp: Array1::zeros(n), r: Array1::zeros(n), free: vec![false; n] }
    }
}

/// L-BFGS-B search direction `d = x̄ − x`, with `x̄` feasible.
pub(crate) fn bounded_direction<F: Real>(
    x: ArrayView1<F>,
    g: ArrayView1<F>,
    bounds: &Bounds<F>,
    history: &History<F>,
    work: &mut BoundedWork<F>,
    mut d: ArrayViewMut1<F>,
) {
    let compact = history.compact();
    let c = cauchy_point(x, g, bounds, compact.as_ref(), d.view_mut(), work.xcp.view_mut());
    let Some(cm) = compact else {
        sub_into(work.xcp.view(), x, d);
        return;
    };
    let theta = cm.theta;
    // Free variables at the Cauchy point.
    let xcp = &work.xcp;
    let free = &mut work.free;
    let n_free: usize = free
        .par_iter_mut()
        .with_min_len(PARALLEL_THRESHOLD)
        .enumerate()
        .map(|(i, f)| {
            let (l, u) = bounds.get(i);
            *f = xcp[i] > l && xcp[i] < u;
            usize::from(*f)
        })
        .sum();
    if n_free == 0 {
        sub_into(xcp.view(), x, d);
        return;
    }
    // r = Zᵀ(g + θ(xcp − x) − W M c), zero on the fixed variables.
    let r = &mut work.r;
    Zip::from(&mut *r).and(g).and(xcp).and(x).par_for_each(|r, &g, &xc, &x| *r = g + theta * (xc - x));
    // v = M Wᵀ Z r (the sum and the product in one pass);  N = I − (1/θ) M W_Zᵀ W_Z;  v ← N⁻¹ v.
    let mc = cm.m.dot(&c);
    let v = cm.m.dot(&cm.add_w_times_then_wt(-F::one(), mc.view(), r.view_mut(), free));
    let wzw = free_gram(&cm, free, n_free);
    let k2 = cm.width();
    let nmat = Array2::<F>::eye(k2) - cm.m.dot(&wzw) * (F::one() / theta);
    let Some(v) = F::solve(&nmat, &v) else {
        sub_into(xcp.view(), x, d);
        return;
    };
    // du = −(1/θ) r − (1/θ²) W_Z v, written into r.
    r.mapv_inplace(|r| -r / theta);
    cm.add_w_times(-F::one() / (theta * theta), v.view(), r.view_mut());
    zero_fixed(r.view_mut(), free);
    // x̄ = P(xcp + du); d = x̄ − x. Keep it if it is a descent direction, else truncate du.
    Zip::indexed(&mut d).and(xcp).and(&*r).and(x).par_for_each(|i, d, &xc, &du, &x| {
        let (l, u) = bounds.get(i);
        *d = (xc + du).max(l).min(u) - x;
    });
    if dot(d.view(), g) < F::zero() {
        return;
    }
    let alpha = bounds.max_step(xcp.view(), r.view()).min(F::one());
    Zip::from(&mut d).and(xcp).and(&*r).and(x).par_for_each(|d, &xc, &du, &x| *d = xc + alpha * du - x);
}

fn zero_fixed<F: Real>(mut v: ArrayViewMut1<F>, free: &[bool]) {
    Zip::from(&mut v).and(ndarray::aview1(free)).par_for_each(|v, &f| {
        if !f {
            *v = F::zero();
        }
    });
}

/// `W_ZᵀW_Z`, from whichever of the free or fixed sets is smaller: their rows of W
/// are gathered into a dense matrix and multiplied as one matrix product.
fn free_gram<F: Real>(cm: &crate::history::Compact<'_, F>, free: &[bool], n_free: usize) -> Array2<F> {
    let k2 = cm.width();
    let n = free.len();
    let from_free = n_free <= n - n_free;
    let rows = if from_free { n_free } else { n - n_free };
    let mut w = Array2::<F>::zeros((rows, k2));
    let picked: Vec<usize> = free.iter().enumerate().filter(|&(_, &f)| f == from_free).map(|(i, _)| i).collect();
    w.axis_iter_mut(ndarray::Axis(0)).into_par_iter().zip(picked).for_each(|(mut row, i)| {
        cm.row(i, row.as_slice_mut().expect("rows of a standard-layout matrix are contiguous"));
    });
    let part = w.t().dot(&w);
    if from_free { part } else { cm.wt_w() - part }
}
