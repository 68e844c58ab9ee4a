//! Subspace minimization of L-BFGS-B (direct primal method, Byrd et al. 1995 §5.1),
//! with the projection of Morales & Nocedal (2011).
//!
//! With the variables at their bounds in the Cauchy point held fixed, the
//! quadratic model is minimized over the free ones; the result is projected
//! back into the box and kept only if it still points downhill.

use crate::Real;
use crate::bounds::{Bounds, per_kind};
use crate::cauchy::{cauchy_point, steepest_descent};
use crate::history::{Compact, History};
use crate::vector::{dot, fold_parts_mut2, for_parts, slice, sub_into};
use ndarray::linalg::{general_mat_mul, general_mat_vec_mul};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1, Zip};
use rayon::prelude::*;

/// Scratch vectors of the bounded direction, allocated once per run, and what one
/// direction leaves the next: the free set and `W_ZᵀW_Z` over it.
#[derive(Clone, Debug)]
pub(crate) struct BoundedWork<F> {
    xcp: Array1<F>,
    r: Array1<F>,
    /// The free variables of this direction and of the last.
    free: Vec<bool>,
    was_free: Vec<bool>,
    /// `W_ZᵀW_Z` over `free`, when it was last computed for it.
    gram: Option<FreeGram>,
}

impl<F: Real> BoundedWork<F> {
    pub fn new(n: usize) -> Self {
        let (xcp, r) = (Array1::zeros(n), Array1::zeros(n));
        Self { xcp, r, free: vec![false; n], was_free: vec![false; n], gram: None }
    }
}

/// `Σ uᵢuᵢᵀ` over the free variables, `uᵢ` row i of W without θ (`[y₁[i] … y_k[i], s₁[i] …
/// s_k[i]]`), for the pairs numbered `ids`: from one iteration to the next only the rows of
/// the variables that entered or left the free set, and the new pair's row and column, change.
#[derive(Clone, Debug)]
struct FreeGram {
    ids: std::ops::Range<u64>,
    u: Array2<f64>,
    /// How many variables were free.
    n_free: usize,
}

impl FreeGram {
    /// Whether it still covers some of the pairs numbered `ids` (those of the history now):
    /// pairs go oldest first, so the overlap is a prefix of `ids`.
    fn covers_some(&self, ids: &std::ops::Range<u64>) -> bool {
        self.ids.start <= ids.start && ids.start < self.ids.end
    }

    /// Whether the next direction will likely keep it: it covers some of the pairs `ids`, and
    /// [`keeping_pays`] with its own free set, before knowing which variables change sides.
    fn likely_kept(&self, ids: &std::ops::Range<u64>, n: usize) -> bool {
        self.covers_some(ids) && keeping_pays(n, self.n_free, 0, n / PASS_ROWS)
    }

    /// The pairs numbered `ids` that came after it.
    fn newer(&self, ids: &std::ops::Range<u64>) -> usize {
        (ids.end - self.ids.end) as usize
    }
}

/// What keeping `W_ZᵀW_Z` needs over the last direction's free set Z′: `W_Z′ᵀg`, then the
/// products of the newer pairs' `s`, then their `y` ([`History::products_and_masked`]'s rows).
type OverLastFree<F> = Vec<Vec<F>>;

/// L-BFGS-B search direction `d = x̄ − x`, with `x̄` feasible; returns `gᵀd`.
///
/// Two passes over the history: one for `Wᵀg` and `Wᵀd` of the Cauchy point's direction
/// (completing the newest pair's inner products), and, when the last direction's `W_ZᵀW_Z`
/// will likely be kept (see `free_products`), `W_Zᵀg` and the new pair's part of `W_ZᵀW_Z`
/// over the last direction's free set; one for the subspace step's `W_Z v`. A third, over
/// that free set, when `W_ZᵀW_Z` is kept against the odds.
pub(crate) fn bounded_direction<F: Real>(
    x: ArrayView1<F>,
    g: ArrayView1<F>,
    bounds: &Bounds<F>,
    history: &mut History<F>,
    work: &mut BoundedWork<F>,
    mut d: ArrayViewMut1<F>,
) -> F {
    let BoundedWork { xcp, r: du, free, was_free, gram } = work;
    // `du` holds the breakpoints until the Cauchy point is found.
    steepest_descent(x, g, bounds, d.view_mut(), du.view_mut());
    // `free` is still the last direction's free set.
    let (ids, n) = (history.ids(), x.len());
    let newer = gram.as_ref().filter(|gram| gram.likely_kept(&ids, n)).map(|gram| gram.newer(&ids));
    let (mut products, over_last) = match newer {
        Some(newer) => {
            let (products, over_last) = history.products_and_masked(&[g, d.view()], (&[g], newer, free));
            (products, Some(over_last))
        }
        None => (history.products(&[g, d.view()]), None),
    };
    let (p, wt_g) = (products.pop().expect("Wᵀd"), products.pop().expect("Wᵀg"));
    let compact = history.compact();
    let p = if compact.is_some() { p } else { Array1::zeros(0) };
    let (c, t_cp) = cauchy_point(x, g, bounds, compact.as_ref(), p, (d.view_mut(), du.view()), xcp.view_mut());
    let Some(cm) = compact else {
        return towards(xcp.view(), x, g, d);
    };
    let theta = cm.theta;
    // The model's gradient at the Cauchy point is r − W M c with r = g + θ(xcp − x), and
    // Wᵀr = Wᵀg + θc.  v = M W_Zᵀ(r − W M c);  N = I − (1/θ) M W_ZᵀW_Z;  v ← N⁻¹ v.
    // One pass finds the free variables at the Cauchy point, counts those that entered or
    // left the free set, and starts du = −(r − W M c)/θ − W v/θ² with −r/θ.
    std::mem::swap(free, was_free);
    let (x_std, g_std) = (x.as_standard_layout(), g.as_standard_layout());
    let (xs, gs, xcps) = (slice(&x_std), slice(&g_std), xcp.as_slice().expect("scratch vectors are contiguous"));
    let du_slice = du.as_slice_mut().expect("scratch vectors are contiguous");
    let (n_free, n_changed) = per_kind!(bounds, bound => fold_parts_mut2(
        (&mut free[..], du_slice),
        |lo, now, du| {
            let (mut count, mut changed) = (0, 0);
            let vectors = xcps[lo..].iter().zip(&gs[lo..]).zip(&xs[lo..]);
            for (j, (((f, &was), du), ((&xc, &g), &x))) in now.iter_mut().zip(&was_free[lo..]).zip(du).zip(vectors).enumerate() {
                let (l, u) = bound(lo + j);
                *f = (xc > l) & (xc < u);
                *du = -(g + theta * (xc - x)) / theta;
                count += usize::from(*f);
                changed += usize::from(*f != was);
            }
            (count, changed)
        },
        |a, b| (a.0 + b.0, a.1 + b.1),
    ));
    if n_free == 0 {
        *gram = None;
        return towards(xcp.view(), x, g, d);
    }
    let (wzw, wz_r) = free_products(
        &cm,
        (free, was_free, n_free, n_changed),
        gram,
        (&(&wt_g + &(&c * theta)), du.view()),
        (g, over_last, t_cp),
    );
    let mc = cm.m.dot(&c);
    let v = cm.m.dot(&(wz_r - wzw.dot(&mc)));
    let k2 = cm.width();
    let nmat = Array2::<F>::eye(k2) - cm.m.dot(&wzw) * (F::one() / theta);
    let Some(v) = F::solve(&nmat, &v) else {
        return towards(xcp.view(), x, g, d);
    };
    // du = −r/θ + W(M c/θ − v/θ²) on the free variables; on the fixed, 0 where it is used.
    cm.add_w_times(F::one(), (mc / theta - v / (theta * theta)).view(), du.view_mut());
    // x̄ = P(xcp + du); d = x̄ − x (the fixed variables' du taken as 0). Keep it if it is a
    // descent direction, else truncate du.
    let dus = du.as_slice().expect("scratch vectors are contiguous");
    per_kind!(bounds, bound => for_parts(d.as_slice_mut().expect("the solver's d is contiguous"), |lo, d| {
        let vectors = xcps[lo..].iter().zip(&dus[lo..]).zip(&xs[lo..]).zip(&free[lo..]);
        for (j, (d, (((&xc, &du), &x), &f))) in d.iter_mut().zip(vectors).enumerate() {
            let (l, u) = bound(lo + j);
            let du = if f { du } else { F::zero() };
            *d = (xc + du).max(l).min(u) - x;
        }
    }));
    let gd = dot(g, d.view());
    if gd < F::zero() {
        return gd;
    }
    zero_fixed(du.view_mut(), free);
    let alpha = bounds.max_step(xcp.view(), du.view(), None).min(F::one());
    Zip::from(&mut d).and(&*xcp).and(&*du).and(x).par_for_each(|d, &xc, &du, &x| *d = xc + alpha * du - x);
    dot(g, d.view())
}

/// `d ← x̄ − x`; returns `gᵀd`.
fn towards<F: Real>(x_bar: ArrayView1<F>, x: ArrayView1<F>, g: ArrayView1<F>, mut d: ArrayViewMut1<F>) -> F {
    sub_into(x_bar, x, d.view_mut());
    dot(g, d.view())
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

/// A pass over all the pairs costs about what gathering the rows of one variable in this many
/// does (512², m = 100, 2 cores: a pass skipping the fixed variables, 25 ms; the rows of
/// 219,416 variables with their products, 167 ms).
const PASS_ROWS: usize = 32;

/// Gathered rows per parallel task: each task adds its blocks into one partial sum, and the
/// partials are added in order (the same result whatever rayon's split).
const GATHER_TASK: usize = 1 << 15;

/// `W_ZᵀW_Z` and `W_Zᵀr` over the free variables Z, with `free` (Z, the last direction's Z,
/// the size of Z and how many variables entered or left it), `gram` (`W_ZᵀW_Z` over the last
/// direction's Z, left over this one's), `Wᵀr` and du = `−r/θ`, and g, what the first pass gave over
/// the last direction's Z if anything, and the Cauchy point's t.
///
/// `W_ZᵀW_Z` is kept from one direction to the next as L-BFGS-B's `formk` keeps it: the rows
/// of the variables that entered Z are added, those of the variables that left subtracted,
/// and the new pair's row and column come over the last direction's Z from a pass over the
/// pairs that skips its fixed variables (the first pass, when that was foreseen), with
/// `W_Zᵀg`, which the changed rows bring over Z too; on Z, `r = g + θ(xcp − x) = (1 − θt)g`.
/// When nothing is kept, or more variables changed sides than half the smaller of the free
/// and fixed sets, both come from the rows of that smaller set, a block of rows at a time
/// (O(n·m²); from the fixed set they are `WᵀW` and `Wᵀr` less the fixed rows' part).
fn free_products<F: Real>(
    cm: &Compact<'_, F>,
    (free, was_free, n_free, changed): (&[bool], &[bool], usize, usize),
    gram: &mut Option<FreeGram>,
    (wt_r, du): (&Array1<F>, ArrayView1<F>),
    (g, over_last, t): (ArrayView1<F>, Option<OverLastFree<F>>, F),
) -> (Array2<F>, Array1<F>) {
    let (k2, ids) = (cm.width(), cm.ids());
    let (k, n) = (k2 / 2, free.len());
    let pass = if over_last.is_some() { 0 } else { n / PASS_ROWS };
    let cheaper = keeping_pays(n, n_free, changed, pass);
    let kept = gram.take().filter(|g| cheaper && g.covers_some(&ids));
    let theta = cm.theta.wide();
    let (u, ur) = match kept {
        Some(kept) => {
            // Not foreseen: a pass of its own.
            let over_last = over_last.unwrap_or_else(|| cm.masked_products((&[g], kept.newer(&ids), was_free)));
            let (u, ug) = kept_products(cm, kept, (free, was_free), g, over_last);
            (u, ug * (1.0 - theta * t.wide()))
        }
        None => whole_products(cm, (free, n_free), wt_r, du),
    };
    let scale = |j: usize| if j < k { 1.0 } else { theta };
    let wzw = Array2::from_shape_fn((k2, k2), |(a, b)| F::lit(scale(a) * u[[a, b]] * scale(b)));
    let wz_r = Array1::from_shape_fn(k2, |j| F::lit(scale(j) * ur[j]));
    *gram = Some(FreeGram { ids, u, n_free });
    (wzw, wz_r)
}

/// Whether keeping `W_ZᵀW_Z` costs less than computing it whole, `n_free` of `n` variables
/// free: keeping costs the products of the `changed` rows (in f64, at half the speed) and
/// `pass`, the rows a pass over the pairs is worth when one is still to make; computing whole,
/// the products of the smaller set's rows.
fn keeping_pays(n: usize, n_free: usize, changed: usize, pass: usize) -> bool {
    2 * changed + pass < n_free.min(n - n_free)
}

/// `Σ_Z uᵢuᵢᵀ` and `Σ_Z uᵢgᵢ` (u without θ, in f64) from `kept`, the first over the last
/// direction's Z, and `over_last`, the newer pairs' products and `W_Zᵀg` over that Z: see
/// [`free_products`].
fn kept_products<F: Real>(
    cm: &Compact<'_, F>,
    kept: FreeGram,
    (free, was_free): (&[bool], &[bool]),
    g: ArrayView1<F>,
    over_last: OverLastFree<F>,
) -> (Array2<f64>, Array1<f64>) {
    let (k2, ids) = (cm.width(), cm.ids());
    let k = k2 / 2;
    // The pairs kept move to their places now (pair `id` at `id − ids.start`); the rest are new.
    let (shift, old) = ((ids.start - kept.ids.start) as usize, (kept.ids.end - ids.start) as usize);
    let k_old = kept.u.nrows() / 2;
    let place = |j: usize| if j < k { j + shift } else { k_old + j - k + shift };
    let olds: Vec<usize> = (0..old).chain(k..k + old).collect();
    let mut u = Array2::<f64>::zeros((k2, k2));
    for &a in &olds {
        for &b in &olds {
            u[[a, b]] = kept.u[[place(a), place(b)]];
        }
    }
    // The new pairs' rows and columns over the last direction's Z.
    for (t, j) in (old..k).enumerate() {
        let (s_row, y_row) = (&over_last[1 + t], &over_last[1 + (k - old) + t]);
        for b in 0..k2 {
            (u[[j, b]], u[[b, j]]) = (y_row[b].wide(), y_row[b].wide());
            (u[[k + j, b]], u[[b, k + j]]) = (s_row[b].wide(), s_row[b].wide());
        }
    }
    let mut ug: Array1<f64> = over_last[0].iter().map(|&v| v.wide()).collect();
    // From the last direction's Z to this one's: the rows of the variables that entered Z
    // added, of those that left subtracted, a block of rows at a time.
    let task = |(c, (now, was)): (usize, (&[bool], &[bool]))| {
        let lo = c * GATHER_TASK;
        let changed: Vec<usize> = (0..now.len()).filter(|&j| now[j] != was[j]).map(|j| lo + j).collect();
        let (mut part, mut part_g) = (Array2::<f64>::zeros((k2, k2)), Array1::<f64>::zeros(k2));
        let (mut rows, mut signed) =
            (Array2::<f64>::zeros((GATHER_BLOCK, k2)), Array2::<f64>::zeros((GATHER_BLOCK, k2)));
        let mut row = vec![F::zero(); k2];
        for block in changed.chunks(GATHER_BLOCK) {
            for (b, &i) in block.iter().enumerate() {
                cm.unscaled_row(i, &mut row);
                let sign = if free[i] { 1.0 } else { -1.0 };
                for (j, &v) in row.iter().enumerate() {
                    (rows[[b, j]], signed[[b, j]]) = (v.wide(), sign * v.wide());
                }
            }
            let m = block.len();
            let (rows, signed) = (rows.slice(ndarray::s![..m, ..]), signed.slice(ndarray::s![..m, ..]));
            let g_block: Array1<f64> = block.iter().map(|&i| g[i].wide()).collect();
            general_mat_mul(1.0, &rows.t(), &signed, 1.0, &mut part);
            general_mat_vec_mul(1.0, &signed.t(), &g_block, 1.0, &mut part_g);
        }
        (part, part_g)
    };
    let parts: Vec<(Array2<f64>, Array1<f64>)> =
        free.par_chunks(GATHER_TASK).zip(was_free.par_chunks(GATHER_TASK)).enumerate().map(task).collect();
    for (part, part_g) in &parts {
        u += part;
        ug += part_g;
    }
    (u, ug)
}

/// `Σ_Z uᵢuᵢᵀ` and `Σ_Z uᵢrᵢ` (u without θ, in f64) from the rows of the smaller of the free
/// and fixed sets, given `Wᵀr` and du = `−r/θ`: see [`free_products`].
fn whole_products<F: Real>(
    cm: &Compact<'_, F>,
    (free, n_free): (&[bool], usize),
    wt_r: &Array1<F>,
    du: ArrayView1<F>,
) -> (Array2<f64>, Array1<f64>) {
    let k2 = cm.width();
    let n = free.len();
    let from_free = n_free <= n - n_free;
    let picked: Vec<usize> = free.iter().enumerate().filter(|&(_, &f)| f == from_free).map(|(i, _)| i).collect();
    let task = |rows: &[usize]| {
        let (mut gram, mut ur) = (Array2::<F>::zeros((k2, k2)), Array1::<F>::zeros(k2));
        let mut w = Array2::<F>::zeros((GATHER_BLOCK.min(rows.len()), k2));
        for block in rows.chunks(GATHER_BLOCK) {
            let mut w = w.slice_mut(ndarray::s![..block.len(), ..]);
            for (mut row, &i) in w.rows_mut().into_iter().zip(block) {
                cm.unscaled_row(i, row.as_slice_mut().expect("rows of a standard-layout matrix are contiguous"));
            }
            let r_block: Array1<F> = block.iter().map(|&i| -cm.theta * du[i]).collect();
            general_mat_mul(F::one(), &w.t(), &w, F::one(), &mut gram);
            general_mat_vec_mul(F::one(), &w.t(), &r_block, F::one(), &mut ur);
        }
        (gram, ur)
    };
    let parts: Vec<(Array2<F>, Array1<F>)> = picked.par_chunks(GATHER_TASK).map(task).collect();
    let (mut u, mut ur) = (Array2::<f64>::zeros((k2, k2)), Array1::<f64>::zeros(k2));
    for (gram, part_r) in &parts {
        u.zip_mut_with(gram, |a, &b| *a += b.wide());
        ur.zip_mut_with(part_r, |a, &b| *a += b.wide());
    }
    if from_free {
        return (u, ur);
    }
    // Over the free rows: all rows less the fixed ones (Wᵀr has θ in its s half).
    let theta = cm.theta.wide();
    let all_r = Array1::from_shape_fn(k2, |j| wt_r[j].wide() / if j < k2 / 2 { 1.0 } else { theta });
    (cm.unscaled_gram() - &u, all_r - &ur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PARALLEL_THRESHOLD;
    use crate::history::Update;

    /// `W_ZᵀW_Z` kept from direction to direction gives the directions computed whole gives,
    /// while pairs come, go or are skipped, and variables enter and leave the free set: with
    /// what keeping it needs foreseen in the first pass, and in a pass of its own.
    #[test]
    fn kept_free_gram_gives_the_direction_computed_whole() {
        let n = 3 * PARALLEL_THRESHOLD + 17;
        let wave = |i: usize, f: f64| ((i as f64 * f).sin() + 1.0) / 2.0;
        // f = ½ Σ hᵢ (xᵢ − cᵢ)², a third of the centres outside [0, 1].
        let h = Array1::from_shape_fn(n, |i| 1.0 + 19.0 * wave(i, 0.37));
        let c = Array1::from_shape_fn(n, |i| 1.5 * wave(i, 1.91) - 0.25);
        let bounds = Bounds::Uniform { lower: 0.0, upper: 1.0 };
        let mut x = Array1::from_shape_fn(n, |i| wave(i, 0.53));
        let mut g = &h * &(&x - &c);
        let mut history = History::<f64>::new(4);
        let mut work = BoundedWork::new(n);
        let (mut d, mut whole, mut late) = (Array1::zeros(n), Array1::zeros(n), Array1::zeros(n));
        let (mut foreseen, mut at_bounds) = (0, 0);
        for step in 0..14 {
            let mut fresh = work.clone();
            fresh.gram = None;
            // As if the last direction had a small fixed set: not foreseen, kept all the same.
            let mut unforeseen = work.clone();
            if let Some(gram) = &mut unforeseen.gram {
                gram.n_free = n;
            }
            let ids = history.ids();
            foreseen += usize::from(work.gram.as_ref().is_some_and(|g| g.likely_kept(&ids, n)));
            at_bounds = at_bounds.max(x.iter().filter(|&&x| x == 0.0 || x == 1.0).count());
            bounded_direction(x.view(), g.view(), &bounds, &mut history, &mut work, d.view_mut());
            bounded_direction(x.view(), g.view(), &bounds, &mut history, &mut fresh, whole.view_mut());
            bounded_direction(x.view(), g.view(), &bounds, &mut history, &mut unforeseen, late.view_mut());
            let scale = whole.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (how, kept) in [("foreseen", &d), ("unforeseen", &late)] {
                let worst = (kept - &whole).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(
                    worst <= 1e-9 * scale,
                    "{} pairs, {how}: |kept − whole| = {worst:e} of {scale:e}",
                    history.len()
                );
            }
            // Every third step a whole one, which leaves variables at their bounds.
            let length = if step % 3 == 2 { 1.0 } else { 0.5 };
            x.scaled_add(length, &d);
            let g_new = &h * &(&x - &c);
            // One step without a new pair, as when a pair is skipped.
            if step != 6 {
                assert_eq!(history.update(length, d.view(), g_new.view(), g.view()), Update::Stored);
            }
            g = g_new;
        }
        assert!(foreseen >= 10, "keeping W_ZᵀW_Z was foreseen in {foreseen} of 14 directions");
        assert!(at_bounds > n / 10, "at most {at_bounds} of {n} variables started a direction at a bound");
    }
}
