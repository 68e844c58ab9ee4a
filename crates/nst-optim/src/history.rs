//! The limited memory: the last m correction pairs (s, y), the two-loop
//! recursion over them, and the compact representation L-BFGS-B needs.

use crate::Real;
use crate::vector::{add_combination, axpy, axpy_dot, dot, dots_with, scale_into, step_products};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1, s};
use std::collections::VecDeque;

/// One correction pair: `s = x_{k+1} − x_k`, `y = g_{k+1} − g_k`, `rho = 1/(sᵀy)`.
#[derive(Clone, Debug)]
struct Pair<F> {
    s: Array1<F>,
    y: Array1<F>,
    rho: F,
}

/// The last m correction pairs, oldest first, and the scaling `gamma = sᵀy/yᵀy`
/// of the newest pair (the initial inverse Hessian is `gamma · I`).
///
/// Part of [`crate::State`]: keep it to continue a run with the curvature
/// information learned so far.
#[derive(Clone, Debug)]
pub struct History<F> {
    capacity: usize,
    pairs: VecDeque<Pair<F>>,
    gamma: F,
    /// `sᵢᵀsⱼ`, `sᵢᵀyⱼ`, `yᵢᵀyⱼ` in pair order; kept only for bound-constrained runs.
    inner: Option<InnerProducts<F>>,
    /// The newest pair's products with the others are not yet in `inner`: the next pass over
    /// the history ([`History::products`]) computes them on the way.
    pending: bool,
}

#[derive(Clone, Debug)]
struct InnerProducts<F> {
    ss: Array2<F>,
    sy: Array2<F>,
    yy: Array2<F>,
}

/// Outcome of offering a pair to the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// The pair was stored (the oldest dropped when full).
    Stored,
    /// `sᵀy` was not safely positive: the pair would break positive definiteness.
    Skipped,
}

impl<F: Real> History<F> {
    /// An empty history of at most `capacity` pairs (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { capacity, pairs: VecDeque::with_capacity(capacity), gamma: F::one(), inner: None, pending: false }
    }

    /// Number of stored pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// `true` when no pair is stored.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The initial inverse-Hessian scaling `gamma = sᵀy / yᵀy` of the newest pair (1 when empty).
    pub fn gamma(&self) -> F {
        self.gamma
    }

    /// Forgets every pair (used when the direction is not a descent direction).
    pub(crate) fn clear(&mut self) {
        self.pairs.clear();
        self.gamma = F::one();
        self.inner = None;
        self.pending = false;
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        while self.pairs.len() > capacity {
            self.pop_oldest();
        }
        self.capacity = capacity;
    }

    fn pop_oldest(&mut self) -> Option<Pair<F>> {
        let pair = self.pairs.pop_front()?;
        if let Some(ip) = &mut self.inner {
            let k = self.pairs.len();
            for m in [&mut ip.ss, &mut ip.sy, &mut ip.yy] {
                let moved = m.slice(s![1..=k, 1..=k]).to_owned();
                m.slice_mut(s![..k, ..k]).assign(&moved);
            }
        }
        Some(pair)
    }

    /// Offers the pair `s = step·d` (the step just taken along `d`), `y = g_new − g_old`.
    /// Skips it when `sᵀy ≤ ε·‖s‖·‖y‖` (ε the machine epsilon), i.e. when s and y are not
    /// safely less than 90° apart: the curvature safeguard, independent of the scale of f and x.
    /// A skipped pair leaves the history as it was.
    /// `s` is formed from the step, not as `x_new − x_old`, which in f32 loses most
    /// digits to cancellation when steps are small. `keep_inner` also maintains the
    /// inner products the compact form needs (bound-constrained runs); the new pair's products
    /// with the others are left to the next direction, whose pass over the history computes them.
    pub fn update(
        &mut self,
        step: F,
        d: ArrayView1<F>,
        g_new: ArrayView1<F>,
        g_old: ArrayView1<F>,
        keep_inner: bool,
    ) -> Update {
        let n = d.len();
        let [dd, dy, yy] = step_products(d, g_new, g_old);
        let (ss, sy) = (step * step * dd, step * dy);
        if !(sy > F::epsilon() * (ss * yy).sqrt()) || !sy.is_finite() || !yy.is_finite() {
            return Update::Skipped;
        }
        if self.pending {
            // The previous pair's products, before the oldest pair can go.
            self.products(&[]);
        }
        // Recycle the oldest pair's buffers when full, so no allocation happens in steady state.
        let mut pair = if self.pairs.len() == self.capacity {
            self.pop_oldest().expect("capacity is at least 1")
        } else {
            Pair { s: Array1::zeros(n), y: Array1::zeros(n), rho: F::zero() }
        };
        scale_into(step, d, pair.s.view_mut());
        crate::vector::sub_into(g_new, g_old, pair.y.view_mut());
        pair.rho = F::one() / sy;
        self.gamma = sy / yy;
        if keep_inner {
            let k = self.pairs.len();
            let cap = self.capacity;
            let ip = self.inner.get_or_insert_with(|| InnerProducts {
                ss: Array2::zeros((cap, cap)),
                sy: Array2::zeros((cap, cap)),
                yy: Array2::zeros((cap, cap)),
            });
            if ip.ss.nrows() < cap {
                *ip = InnerProducts {
                    ss: Array2::zeros((cap, cap)),
                    sy: Array2::zeros((cap, cap)),
                    yy: Array2::zeros((cap, cap)),
                };
            }
            ip.ss[[k, k]] = ss;
            ip.sy[[k, k]] = sy;
            ip.yy[[k, k]] = yy;
        } else {
            self.inner = None;
        }
        self.pending = keep_inner;
        self.pairs.push_back(pair);
        Update::Stored
    }

    /// `Wᵀv` for each of `vs` (`W = [Y, θS]`, see [`Compact`]), in one pass over the history
    /// that also completes the newest pair's inner products with the others.
    pub(crate) fn products(&mut self, vs: &[ArrayView1<F>]) -> Vec<Array1<F>> {
        let k = self.pairs.len();
        if k == 0 {
            return vec![Array1::zeros(0); vs.len()];
        }
        let newest = self.pairs.back().filter(|_| self.pending).map(|p| [p.s.view(), p.y.view()]);
        let all: Vec<ArrayView1<F>> = newest.iter().flatten().chain(vs).copied().collect();
        let dots = dots_with(&all, &self.columns());
        let rows: Vec<&[F]> = dots.chunks_exact(2 * k).collect();
        if newest.is_some() {
            // The new s and y against every yᵢ and sᵢ (columns [y₁ … y_k, s₁ … s_k]).
            let (new_s, new_y) = (rows[0], rows[1]);
            let ip = self.inner.as_mut().expect("pending products imply kept inner products");
            let last = k - 1;
            for i in 0..last {
                ip.ss[[i, last]] = new_s[k + i];
                ip.ss[[last, i]] = new_s[k + i];
                ip.sy[[i, last]] = new_y[k + i];
                ip.sy[[last, i]] = new_s[i];
                ip.yy[[i, last]] = new_y[i];
                ip.yy[[last, i]] = new_y[i];
            }
            self.pending = false;
        }
        let theta = F::one() / self.gamma;
        rows[rows.len() - vs.len()..].iter().map(|row| with_theta(row, theta)).collect()
    }

    /// W's columns without θ: `[y_1 … y_k, s_1 … s_k]`.
    fn columns(&self) -> Vec<ArrayView1<'_, F>> {
        let pairs = &self.pairs;
        pairs.iter().map(|p| p.y.view()).chain(pairs.iter().map(|p| p.s.view())).collect()
    }

    /// Two-loop recursion: `d ← −H·g` with `H` the L-BFGS inverse-Hessian approximation.
    ///
    /// The dot product of each loop's next step is fused into the previous
    /// update's pass, so each pair costs two passes over memory per loop.
    pub fn two_loop(&self, g: ArrayView1<F>, mut d: ArrayViewMut1<F>) {
        let k = self.pairs.len();
        scale_into(-F::one(), g, d.view_mut());
        if k == 0 {
            return;
        }
        let mut alpha = vec![F::zero(); k];
        // First loop, newest to oldest: alpha_i = rho_i s_iᵀq; q ← q − alpha_i y_i.
        let mut sq = dot(self.pairs[k - 1].s.view(), d.view());
        for i in (0..k).rev() {
            let p = &self.pairs[i];
            alpha[i] = p.rho * sq;
            if i > 0 {
                sq = axpy_dot(-alpha[i], p.y.view(), d.view_mut(), self.pairs[i - 1].s.view());
            } else {
                axpy(-alpha[i], p.y.view(), d.view_mut());
            }
        }
        // r = gamma q
        d.mapv_inplace(|v| v * self.gamma);
        // Second loop, oldest to newest: beta = rho_i y_iᵀr; r ← r + (alpha_i − beta) s_i.
        let mut yr = dot(self.pairs[0].y.view(), d.view());
        for (i, p) in self.pairs.iter().enumerate() {
            let beta = p.rho * yr;
            if i + 1 < k {
                yr = axpy_dot(alpha[i] - beta, p.s.view(), d.view_mut(), self.pairs[i + 1].y.view());
            } else {
                axpy(alpha[i] - beta, p.s.view(), d.view_mut());
            }
        }
    }

    /// The compact representation `B = θI − W M Wᵀ` (Byrd, Nocedal & Schnabel 1994),
    /// `W = [Y, θS]`; `None` when empty or when the middle matrix is singular.
    pub(crate) fn compact(&self) -> Option<Compact<'_, F>> {
        let k = self.pairs.len();
        let ip = self.inner.as_ref()?;
        if k == 0 {
            return None;
        }
        debug_assert!(!self.pending, "the newest pair's products are computed first");
        let theta = F::one() / self.gamma;
        // K = [[−D, Lᵀ], [L, θ SᵀS]], D = diag(sᵢᵀyᵢ), L_ij = sᵢᵀyⱼ for i > j; M = K⁻¹.
        let mut kmat = Array2::zeros((2 * k, 2 * k));
        for i in 0..k {
            kmat[[i, i]] = -ip.sy[[i, i]];
            for j in 0..i {
                kmat[[k + i, j]] = ip.sy[[i, j]];
                kmat[[j, k + i]] = ip.sy[[i, j]];
            }
            for j in 0..k {
                kmat[[k + i, k + j]] = theta * ip.ss[[i, j]];
            }
        }
        let m = F::inverse(&kmat)?;
        Some(Compact { history: self, theta, m })
    }
}

/// `Wᵀv` from the products of v with `[y_1 … y_k, s_1 … s_k]`: the s half scaled by θ.
fn with_theta<F: Real>(dots: &[F], theta: F) -> Array1<F> {
    let k = dots.len() / 2;
    Array1::from_shape_fn(2 * k, |j| if j < k { dots[j] } else { theta * dots[j] })
}

/// `B = θI − W M Wᵀ` with `W = [Y, θS]` (n × 2k), borrowed from a [`History`].
pub(crate) struct Compact<'h, F> {
    history: &'h History<F>,
    pub theta: F,
    pub m: Array2<F>,
}

impl<F: Real> Compact<'_, F> {
    /// Number of columns of W (2k).
    pub fn width(&self) -> usize {
        2 * self.history.len()
    }

    /// Row `i` of W: `[y_1[i] … y_k[i], θ s_1[i] … θ s_k[i]]`.
    pub fn row(&self, i: usize, out: &mut [F]) {
        let k = self.history.len();
        for (j, p) in self.history.pairs.iter().enumerate() {
            out[j] = p.y[i];
            out[k + j] = self.theta * p.s[i];
        }
    }

    /// `Wᵀv`, in one pass over `v` and the pairs.
    #[cfg(test)]
    pub fn wt_times(&self, v: ArrayView1<F>) -> Array1<F> {
        with_theta(&dots_with(&[v], &self.columns()), self.theta)
    }

    /// `out ← out + alpha · W c`, in one pass over `out` and the pairs.
    pub fn add_w_times(&self, alpha: F, c: ArrayView1<F>, out: ArrayViewMut1<F>) {
        add_combination(out, &self.coefficients(alpha, c), &self.columns());
    }

    /// W's columns without θ: `[y_1 … y_k, s_1 … s_k]`.
    fn columns(&self) -> Vec<ArrayView1<'_, F>> {
        self.history.columns()
    }

    /// The coefficients of [`Self::columns`] that make their sum `alpha · W c`.
    fn coefficients(&self, alpha: F, c: ArrayView1<F>) -> Vec<F> {
        let k = self.history.len();
        (0..k).map(|j| alpha * c[j]).chain((0..k).map(|j| alpha * self.theta * c[k + j])).collect()
    }

    /// `WᵀW` (2k × 2k) from the kept inner products.
    pub fn wt_w(&self) -> Array2<F> {
        let k = self.history.len();
        let ip = self.history.inner.as_ref().expect("compact form implies inner products");
        let t = self.theta;
        let mut out = Array2::zeros((2 * k, 2 * k));
        for i in 0..k {
            for j in 0..k {
                out[[i, j]] = ip.yy[[i, j]];
                out[[i, k + j]] = t * ip.sy[[j, i]];
                out[[k + i, j]] = t * ip.sy[[i, j]];
                out[[k + i, k + j]] = t * t * ip.ss[[i, j]];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// With exact pairs of a quadratic f = ½xᵀAx, the compact B reproduces A on the span of S.
    #[test]
    fn compact_form_matches_two_loop_inverse() {
        let a = array![[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]];
        let mut h = History::<f64>::new(5);
        let xs = [array![1.0, 0.0, 0.0], array![1.0, 1.0, 0.0], array![0.5, 1.0, 1.0], array![0.2, -0.3, 0.4]];
        for w in xs.windows(2) {
            let (g0, g1) = (a.dot(&w[0]), a.dot(&w[1]));
            let d = &w[1] - &w[0];
            assert_eq!(h.update(1.0, d.view(), g1.view(), g0.view(), true), Update::Stored);
        }
        // After 3 independent exact pairs in 3-D, BFGS recovers A: −H·g = −A⁻¹g.
        let g = array![0.3, -1.0, 2.0];
        let mut d = Array1::zeros(3);
        h.two_loop(g.view(), d.view_mut());
        h.products(&[]);
        let c = h.compact().unwrap();
        // B·d = θd − W M Wᵀ d should equal −g.
        let wtd = c.wt_times(d.view());
        let mwtd = c.m.dot(&wtd);
        let mut bd = &d * c.theta;
        c.add_w_times(-1.0, mwtd.view(), bd.view_mut());
        for i in 0..3 {
            assert!((bd[i] + g[i]).abs() < 1e-9, "{bd} vs {g}");
        }
    }

    #[test]
    fn skips_pairs_without_positive_curvature_and_keeps_the_rest() {
        let mut h = History::<f64>::new(3);
        let r = h.update(1.0, array![1.0].view(), array![-1.0].view(), array![0.0].view(), false);
        assert_eq!(r, Update::Skipped);
        assert!(h.is_empty());
        // A skipped pair leaves a full history as it was.
        assert_eq!(h.update(1.0, array![1.0].view(), array![2.0].view(), array![0.0].view(), true), Update::Stored);
        assert_eq!(h.update(1.0, array![1.0].view(), array![-1.0].view(), array![0.0].view(), true), Update::Skipped);
        assert_eq!((h.len(), h.gamma()), (1, 0.5));
    }
}
