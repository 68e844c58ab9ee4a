//! Subspace minimization of L-BFGS-B (direct primal method, Byrd et al. 1995 §5.1),
//! with the projection of Morales & Nocedal (2011).
//!
//! With the variables at their bounds in the Cauchy point held fixed, the
//! quadratic model is minimized over the free ones; the result is projected
//! back into the box and kept only if it still points downhill.

use crate::Real;
use crate::bounds::Bounds;
use crate::cauchy::{cauchy_point, steepest_descent};
use crate::history::{Compact, History};
use crate::vector::{PARALLEL_THRESHOLD, dot, sub_into};
use ndarray::linalg::{general_mat_mul, general_mat_vec_mul};
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
///
/// Two passes over the history: one for `Wᵀg` and `Wᵀd` of the Cauchy point's direction
/// (completing the newest pair's inner products), one for the subspace step's `W_Z v`. The
/// subspace step's `W_Zᵀr` comes from `Wᵀg` and the Cauchy point's `c = Wᵀ(x^c − x)`, with
/// the rows of the smaller of the free and fixed sets.
pub(crate) fn bounded_direction<F: Real>(
    x: ArrayView1<F>,
    g: ArrayView1<F>,
    bounds: &Bounds<F>,
    history: &mut History<F>,
    work: &mut BoundedWork<F>,
    mut d: ArrayViewMut1<F>,
) {
    steepest_descent(x, g, bounds, d.view_mut());
    let mut products = history.products(&[g, d.view()]);
    let (p, wt_g) = (products.pop().expect("Wᵀd"), products.pop().expect("Wᵀg"));
    let compact = history.compact();
    let p = if compact.is_some() { p } else { Array1::zeros(0) };
    let BoundedWork { xcp, r: du, free } = work;
    let c = cauchy_point(x, g, bounds, compact.as_ref(), p, d.view_mut(), xcp.view_mut());
    let Some(cm) = compact else {
        sub_into(xcp.view(), x, d);
        return;
    };
    let theta = cm.theta;
    // Free variables at the Cauchy point.
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
    // The model's gradient at the Cauchy point is r − W M c with r = g + θ(xcp − x), and
    // Wᵀr = Wᵀg + θc.  v = M W_Zᵀ(r − W M c);  N = I − (1/θ) M W_ZᵀW_Z;  v ← N⁻¹ v.
    let r = |i: usize| g[i] + theta * (xcp[i] - x[i]);
    let (wzw, wz_r) = free_products(&cm, free, n_free, &(&wt_g + &(&c * theta)), r);
    let mc = cm.m.dot(&c);
    let v = cm.m.dot(&(wz_r - wzw.dot(&mc)));
    let k2 = cm.width();
    let nmat = Array2::<F>::eye(k2) - cm.m.dot(&wzw) * (F::one() / theta);
    let Some(v) = F::solve(&nmat, &v) else {
        sub_into(xcp.view(), x, d);
        return;
    };
    // du = −(r − W M c)/θ − W v/θ² = −r/θ + W(M c/θ − v/θ²) on the free variables, 0 on the fixed.
    Zip::indexed(&mut *du).par_for_each(|i, du| *du = if free[i] { -r(i) / theta } else { F::zero() });
    cm.add_w_times(F::one(), (mc / theta - v / (theta * theta)).view(), du.view_mut());
    zero_fixed(du.view_mut(), free);
    // x̄ = P(xcp + du); d = x̄ − x. Keep it if it is a descent direction, else truncate du.
    Zip::indexed(&mut d).and(&*xcp).and(&*du).and(x).par_for_each(|i, d, &xc, &du, &x| {
        let (l, u) = bounds.get(i);
        *d = (xc + du).max(l).min(u) - x;
    });
    if dot(d.view(), g) < F::zero() {
        return;
    }
    let alpha = bounds.max_step(xcp.view(), du.view()).min(F::one());
    Zip::from(&mut d).and(&*xcp).and(&*du).and(x).par_for_each(|d, &xc, &du, &x| *d = xc + alpha * du - x);
}

fn zero_fixed<F: Real>(mut v: ArrayViewMut1<F>, free: &[bool]) {
    Zip::from(&mut v).and(ndarray::aview1(free)).par_for_each(|v, &f| {
        if !f {
            *v = F::zero();
        }
    });
}

/// Rows of W gathered at a time by [`free_products`]: a block (800 KB at 2m = 200) stays in cache.
const GATHER_BLOCK: usize = 1 << 10;

/// Gathered rows per parallel task: each task adds its blocks into one partial sum, and the
/// partials are added in order (the same result whatever rayon's split).
const GATHER_TASK: usize = 1 << 15;

/// `W_ZᵀW_Z` and `W_Zᵀr` over the free variables Z, from the rows of W of whichever of the
/// free or fixed sets is smaller, a block of rows at a time: a few MB at most, where the whole
/// set at once could be half the history's size. From the fixed set they are `WᵀW` and `Wᵀr`
/// (`wt_r`) less the fixed rows' part.
fn free_products<F: Real>(
    cm: &Compact<'_, F>,
    free: &[bool],
    n_free: usize,
    wt_r: &Array1<F>,
    r: impl Fn(usize) -> F + Sync,
) -> (Array2<F>, Array1<F>) {
    let k2 = cm.width();
    let n = free.len();
    let from_free = n_free <= n - n_free;
    let picked: Vec<usize> = free.iter().enumerate().filter(|&(_, &f)| f == from_free).map(|(i, _)| i).collect();
    let task = |rows: &[usize]| {
        let (mut gram, mut gr) = (Array2::<F>::zeros((k2, k2)), Array1::<F>::zeros(k2));
        let mut w = Array2::<F>::zeros((GATHER_BLOCK.min(rows.len()), k2));
        for block in rows.chunks(GATHER_BLOCK) {
            let mut w = w.slice_mut(ndarray::s![..block.len(), ..]);
            for (mut row, &i) in w.rows_mut().into_iter().zip(block) {
                cm.row(i, row.as_slice_mut().expect("rows of a standard-layout matrix are contiguous"));
            }
            let r_block: Array1<F> = block.iter().map(|&i| r(i)).collect();
            general_mat_mul(F::one(), &w.t(), &w, F::one(), &mut gram);
            general_mat_vec_mul(F::one(), &w.t(), &r_block, F::one(), &mut gr);
        }
        (gram, gr)
    };
    let parts: Vec<(Array2<F>, Array1<F>)> = picked.par_chunks(GATHER_TASK).map(task).collect();
    let (mut part, mut part_r) = (Array2::<F>::zeros((k2, k2)), Array1::<F>::zeros(k2));
    for (gram, gr) in &parts {
        part.scaled_add(F::one(), gram);
        part_r.scaled_add(F::one(), gr);
    }
    if from_free { (part, part_r) } else { (cm.wt_w() - part, wt_r - &part_r) }
}
