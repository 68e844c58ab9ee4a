//! The limited memory: the last m correction pairs (s, y) with their inner products, the
//! L-BFGS direction from them, and the compact representation L-BFGS-B needs.

use crate::Real;
use crate::mirror::{Mirror, PairMirror};
use crate::vector::{add_combination, dots_with, dots_with_masked, form_pair, scale_into};
use ndarray::{Array1, Array2, ArrayView1, ArrayViewMut1, s};
use std::collections::VecDeque;

/// One correction pair: `s = x_{k+1} − x_k`, `y = g_{k+1} − g_k`.
#[derive(Clone, Debug)]
struct Pair<F> {
    s: Array1<F>,
    y: Array1<F>,
    /// Where a mirror holds it: pairs take the free slot of least number.
    slot: usize,
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
    /// `sᵢᵀsⱼ`, `sᵢᵀyⱼ`, `yᵢᵀyⱼ` in pair order (m × m each, the first k rows and columns in use).
    inner: InnerProducts<F>,
    /// The newest pair's products with the others are not yet in `inner`: the next pass over
    /// the history ([`History::products`]) computes them on the way.
    pending: bool,
    /// The oldest pair's number: pairs are numbered in the order they were stored, so what
    /// is built from some of them can tell which ([`History::ids`]).
    first: u64,
    /// A copy of the pairs that makes the passes over them ([`History::set_mirror`]).
    mirror: Mirror<F>,
    /// Where the next pair is formed: the oldest pair's buffers once it went, or a pair that
    /// was skipped, so that no allocation happens in steady state.
    spare: Option<Pair<F>>,
}

#[derive(Clone, Debug)]
struct InnerProducts<F> {
    ss: Array2<F>,
    sy: Array2<F>,
    yy: Array2<F>,
}

impl<F: Real> InnerProducts<F> {
    fn zeros(m: usize) -> Self {
        Self { ss: Array2::zeros((m, m)), sy: Array2::zeros((m, m)), yy: Array2::zeros((m, m)) }
    }
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
        let inner = InnerProducts::zeros(capacity);
        let pairs = VecDeque::with_capacity(capacity);
        Self { capacity, pairs, gamma: F::one(), inner, pending: false, first: 0, mirror: Mirror::none(), spare: None }
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
        self.first += self.pairs.len() as u64;
        self.pairs.clear();
        self.gamma = F::one();
        self.pending = false;
    }

    /// Hands the passes over the pairs to `mirror` (a GPU's memory, say) once the history
    /// holds as many pairs as the mirror pays from ([`PairMirror::pays_from`]): then the pairs
    /// are copied there, and each new one as it comes. The history keeps its own copy: if the
    /// mirror fails, it is detached ([`History::mirror_failure`] says why) and the run goes
    /// on, on the host.
    ///
    /// Fails, attaching nothing, if the mirror has fewer slots than the pairs a run will keep
    /// (`capacity`, at least the history's now), or would wait for more.
    pub fn set_mirror(&mut self, mirror: Box<dyn PairMirror<F>>, capacity: usize) -> Result<(), crate::MirrorError> {
        let (slots, keeps) = (mirror.capacity(), capacity.max(self.capacity));
        if slots < keeps {
            return Err(format!("a mirror of {slots} pairs for a history of {keeps}").into());
        }
        if mirror.pays_from() > keeps {
            return Err(format!("a mirror that pays from {} pairs for a history of {keeps}", mirror.pays_from()).into());
        }
        // The pairs kept from a longer history may hold slots beyond this mirror's: the
        // mirror holds none of them yet, so they are numbered afresh.
        for (j, p) in self.pairs.iter_mut().enumerate() {
            p.slot = j;
        }
        self.mirror = Mirror::waiting(mirror);
        self.wake_mirror();
        Ok(())
    }

    /// Attaches a waiting mirror once the history holds as many pairs as it pays from,
    /// copying them there.
    fn wake_mirror(&mut self) {
        let pairs = &self.pairs;
        self.mirror
            .wake(pairs.len(), |m| pairs.iter().try_for_each(|p| m.store(p.slot, p.s.view(), p.y.view()).map(drop)));
    }

    /// Why the mirror was detached, if it failed: since then the passes run on the host.
    pub fn mirror_failure(&self) -> Option<String> {
        self.mirror.failure()
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        if self.mirror.capacity().is_some_and(|c| c < capacity) {
            self.mirror.fail(format!("the history grew to {capacity} pairs, beyond its mirror's slots"));
        }
        while self.pairs.len() > capacity {
            self.pop_oldest();
        }
        if self.inner.ss.nrows() < capacity {
            // The products of the pairs kept move over.
            let (k, mut grown) = (self.pairs.len(), InnerProducts::zeros(capacity));
            for (to, from) in
                [(&mut grown.ss, &self.inner.ss), (&mut grown.sy, &self.inner.sy), (&mut grown.yy, &self.inner.yy)]
            {
                to.slice_mut(s![..k, ..k]).assign(&from.slice(s![..k, ..k]));
            }
            self.inner = grown;
        }
        self.capacity = capacity;
    }

    fn pop_oldest(&mut self) -> Option<Pair<F>> {
        let pair = self.pairs.pop_front()?;
        self.first += 1;
        let k = self.pairs.len();
        for m in [&mut self.inner.ss, &mut self.inner.sy, &mut self.inner.yy] {
            let moved = m.slice(s![1..=k, 1..=k]).to_owned();
            m.slice_mut(s![..k, ..k]).assign(&moved);
        }
        Some(pair)
    }

    /// Offers the pair `s = step·d` (the step just taken along `d`), `y = g_new − g_old`.
    /// Skips it when `sᵀy ≤ ε·‖s‖·‖y‖` (ε the machine epsilon), i.e. when s and y are not
    /// safely less than 90° apart: the curvature safeguard, independent of the scale of f and x.
    /// A skipped pair leaves the history as it was.
    /// `s` is formed from the step, not as `x_new − x_old`, which in f32 loses most
    /// digits to cancellation when steps are small. The new pair's inner products with the
    /// others come from the mirror as it stores the pair, if one is attached; otherwise they
    /// are left to the next direction, whose pass over the history computes them.
    pub fn update(&mut self, step: F, d: ArrayView1<F>, g_new: ArrayView1<F>, g_old: ArrayView1<F>) -> Update {
        let n = d.len();
        let mut pair = match self.spare.take() {
            Some(spare) if spare.s.len() == n => spare,
            _ => Pair { s: Array1::zeros(n), y: Array1::zeros(n), slot: 0 },
        };
        let [dd, dy, yy] = form_pair(step, (d, g_new, g_old), pair.s.view_mut(), pair.y.view_mut());
        let (ss, sy) = (step * step * dd, step * dy);
        if !(sy > F::epsilon() * (ss * yy).sqrt()) || !sy.is_finite() || !yy.is_finite() {
            self.spare = Some(pair);
            return Update::Skipped;
        }
        if self.pending {
            // The previous pair's products, before the oldest pair can go.
            self.products(&[]);
        }
        pair.slot = if self.pairs.len() == self.capacity {
            // The oldest pair's slot, and its buffers for the next pair.
            let oldest = self.pop_oldest().expect("capacity is at least 1");
            let slot = oldest.slot;
            self.spare = Some(oldest);
            slot
        } else {
            (0..).find(|&j| self.pairs.iter().all(|p| p.slot != j)).expect("a free slot")
        };
        self.gamma = sy / yy;
        let (k, ip) = (self.pairs.len(), &mut self.inner);
        ip.ss[[k, k]] = ss;
        ip.sy[[k, k]] = sy;
        ip.yy[[k, k]] = yy;
        // A mirror gives the new pair's products as it stores it; otherwise the next pass does.
        let stored = self.mirror.with(|m| checked(m.store(pair.slot, pair.s.view(), pair.y.view())?, 2, m.capacity()));
        self.pairs.push_back(pair);
        self.pending = true;
        if let Some((rows, c)) = stored {
            let rows = self.by_column(&rows, c);
            self.complete_newest(&rows);
        }
        self.wake_mirror();
        Update::Stored
    }

    /// Fills the newest pair's inner products with the others from its rows of products with
    /// the columns, `s`'s then `y`'s.
    fn complete_newest(&mut self, rows: &[F]) {
        let k = self.pairs.len();
        let (new_s, new_y) = rows.split_at(2 * k);
        let ip = &mut self.inner;
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

    /// Rows of products with the `c` slots of a mirror (see [`PairMirror`]) as rows of
    /// products with the columns `[y_1 … y_k, s_1 … s_k]`.
    fn by_column(&self, rows: &[F], c: usize) -> Vec<F> {
        let pairs = &self.pairs;
        rows.chunks_exact(2 * c)
            .flat_map(|row| pairs.iter().map(|p| row[p.slot]).chain(pairs.iter().map(|p| row[c + p.slot])))
            .collect()
    }

    /// The products of each of `vs` with the columns `[y_1 … y_k, s_1 … s_k]`, one row per
    /// `v`, then those of each of `masked`'s vectors over the elements its `keep` marks: one
    /// pass, by the mirror if there is one.
    fn column_dots(&self, vs: &[ArrayView1<F>], masked: Option<(&[ArrayView1<F>], &[bool])>) -> Vec<F> {
        let count = vs.len() + masked.map_or(0, |(m, _)| m.len());
        if count == 0 {
            return Vec::new();
        }
        let mirrored = self.mirror.with(|m| {
            let c = m.capacity();
            let mut rows = if vs.is_empty() { Vec::new() } else { checked(m.dots(vs, None)?, vs.len(), c)?.0 };
            if let Some((masked, keep)) = masked.filter(|(m, _)| !m.is_empty()) {
                rows.extend(checked(m.dots(masked, Some(keep))?, masked.len(), c)?.0);
            }
            Ok((rows, c))
        });
        if let Some((rows, c)) = mirrored {
            return self.by_column(&rows, c);
        }
        match masked {
            None => dots_with(vs, &self.columns()),
            Some(masked) => dots_with_masked(vs, masked, &self.columns()),
        }
    }

    /// `out ← out + Σ cⱼ·columnⱼ`, the columns `[y_1 … y_k, s_1 … s_k]`: one pass, by the
    /// mirror if there is one.
    fn add_columns(&self, coefficients: &[F], mut out: ArrayViewMut1<F>) {
        let done = self.mirror.with(|m| {
            let c = m.capacity();
            let mut by_slot = vec![F::zero(); 2 * c];
            for (p, (&a, &b)) in self.pairs.iter().zip(coefficients.iter().zip(&coefficients[self.pairs.len()..])) {
                (by_slot[p.slot], by_slot[c + p.slot]) = (a, b);
            }
            m.add_combination(&by_slot, out.view_mut())
        });
        if done.is_none() {
            add_combination(out, coefficients, &self.columns());
        }
    }

    /// `Wᵀv` for each of `vs` (`W = [Y, θS]`, see [`Compact`]), in one pass over the history
    /// that also completes the newest pair's inner products with the others.
    pub(crate) fn products(&mut self, vs: &[ArrayView1<F>]) -> Vec<Array1<F>> {
        self.products_and_masked(vs, (&[], 0, &[])).0
    }

    /// [`Self::products`] of `vs`, and in the same pass [`Compact::masked_products`] of
    /// `masked`.
    pub(crate) fn products_and_masked(
        &mut self,
        vs: &[ArrayView1<F>],
        masked: (&[ArrayView1<F>], usize, &[bool]),
    ) -> (Vec<Array1<F>>, Vec<Vec<F>>) {
        let theta = F::one() / self.gamma;
        let (rows, masked) = self.pass(vs, masked);
        (rows.iter().map(|row| with_theta(row, theta)).collect(), masked)
    }

    /// `[Yᵀv, Sᵀv]` for each of `vs`, and over Z for `masked` as
    /// [`Self::products_and_masked`] says, in one pass over the history that also completes
    /// the newest pair's inner products with the others (empty rows when there is no pair).
    fn pass(
        &mut self,
        vs: &[ArrayView1<F>],
        (masked, newest, keep): (&[ArrayView1<F>], usize, &[bool]),
    ) -> (Vec<Vec<F>>, Vec<Vec<F>>) {
        let k = self.pairs.len();
        if k == 0 {
            return (vec![Vec::new(); vs.len()], vec![Vec::new(); masked.len() + 2 * newest]);
        }
        let pending = self.pairs.back().filter(|_| self.pending).map(|p| [p.s.view(), p.y.view()]);
        let all: Vec<ArrayView1<F>> = pending.iter().flatten().chain(vs).copied().collect();
        let masked = self.with_newest(masked, newest);
        let dots = self.column_dots(&all, (!masked.is_empty()).then_some((&masked[..], keep)));
        let (dots, over_z) = dots.split_at(2 * k * all.len());
        if pending.is_some() {
            // The new s and y against every yᵢ and sᵢ (columns [y₁ … y_k, s₁ … s_k]).
            self.complete_newest(&dots[..4 * k]);
        }
        let rows = |dots: &[F]| dots.chunks_exact(2 * k).map(<[F]>::to_vec).collect();
        (rows(&dots[dots.len() - 2 * k * vs.len()..]), rows(over_z))
    }

    /// `vs`, then the `s` and then the `y` of the `newest` pairs.
    fn with_newest<'a>(&'a self, vs: &[ArrayView1<'a, F>], newest: usize) -> Vec<ArrayView1<'a, F>> {
        let latest = self.pairs.range(self.pairs.len() - newest..);
        vs.iter().copied().chain(latest.clone().map(|p| p.s.view())).chain(latest.map(|p| p.y.view())).collect()
    }

    /// `d ← −H·g`, `H` the L-BFGS inverse-Hessian approximation, from its compact form
    /// (Byrd, Nocedal & Schnabel 1994, Thm 2.2): `H = γI + [S γY] N [S γY]ᵀ` with
    /// `N = [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]]`, `R` the upper triangle of `SᵀY` and
    /// `D` its diagonal.
    ///
    /// Two passes over the pairs: `Sᵀg` and `Yᵀg` (with the newest pair's inner products),
    /// then `d` as one combination of g and the pairs. The two-loop recursion it replaces
    /// also reads each pair twice, but also reads and writes d once per pair in each loop
    /// (2k times), and at 2048² d lives in memory, not cache. The k × k algebra runs in f64.
    pub fn direction(&mut self, g: ArrayView1<F>, mut d: ArrayViewMut1<F>) {
        scale_into(-self.gamma, g, d.view_mut());
        let k = self.pairs.len();
        if k == 0 {
            return;
        }
        let row = self.pass(&[g], (&[], 0, &[])).0.remove(0);
        let ip = &self.inner;
        let (q, p) = (&row[..k], &row[k..]);
        let r = |i: usize, j: usize| ip.sy[[i, j]].wide();
        let gamma = self.gamma.wide();
        // u = R⁻¹ p (back substitution).
        let mut u = vec![0.0; k];
        for i in (0..k).rev() {
            let sum: f64 = (i + 1..k).map(|j| r(i, j) * u[j]).sum();
            u[i] = (p[i].wide() - sum) / r(i, i);
        }
        // a = R⁻ᵀ((D + γYᵀY) u − γ q) (forward substitution).
        let mut a = vec![0.0; k];
        for i in 0..k {
            let t =
                r(i, i) * u[i] + gamma * (0..k).map(|j| ip.yy[[i, j]].wide() * u[j]).sum::<f64>() - gamma * q[i].wide();
            let sum: f64 = (0..i).map(|j| r(j, i) * a[j]).sum();
            a[i] = (t - sum) / r(i, i);
        }
        // d = −γg + γ Y u − S a.
        let coefficients: Vec<F> = u.iter().map(|u| F::lit(gamma * u)).chain(a.iter().map(|a| F::lit(-a))).collect();
        self.add_columns(&coefficients, d);
    }

    /// The numbers of the stored pairs, oldest first: a pair keeps its number until it goes.
    pub(crate) fn ids(&self) -> std::ops::Range<u64> {
        self.first..self.first + self.pairs.len() as u64
    }

    /// W's columns without θ: `[y_1 … y_k, s_1 … s_k]`.
    fn columns(&self) -> Vec<ArrayView1<'_, F>> {
        let pairs = &self.pairs;
        pairs.iter().map(|p| p.y.view()).chain(pairs.iter().map(|p| p.s.view())).collect()
    }

    /// The compact representation `B = θI − W M Wᵀ` (Byrd, Nocedal & Schnabel 1994),
    /// `W = [Y, θS]`; `None` when empty or when the middle matrix is singular.
    pub(crate) fn compact(&self) -> Option<Compact<'_, F>> {
        let k = self.pairs.len();
        let ip = &self.inner;
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

/// `rows` rows of products from a mirror of `c` slots, with `c`; an error if it gave another
/// number of them (then the mirror is detached, and the history computes them itself).
fn checked<F>(products: Vec<F>, rows: usize, c: usize) -> Result<(Vec<F>, usize), crate::MirrorError> {
    if products.len() != rows * 2 * c {
        return Err(format!("{} products from a mirror of {c} slots, for {rows} rows", products.len()).into());
    }
    Ok((products, c))
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
        self.unscaled_row(i, out);
        let k = self.history.len();
        out[k..2 * k].iter_mut().for_each(|v| *v = self.theta * *v);
    }

    /// Row `i` of W without θ: `[y_1[i] … y_k[i], s_1[i] … s_k[i]]`.
    pub fn unscaled_row(&self, i: usize, out: &mut [F]) {
        let k = self.history.len();
        for (j, p) in self.history.pairs.iter().enumerate() {
            out[j] = p.y[i];
            out[k + j] = p.s[i];
        }
    }

    /// The numbers of the pairs W is made of ([`History::ids`]).
    pub fn ids(&self) -> std::ops::Range<u64> {
        self.history.ids()
    }

    /// `[Y_Zᵀv, S_Zᵀv]` (without θ), Z the variables `keep` marks, for each `v` of `vs`, then
    /// for the `s` and then the `y` of the `newest` pairs, in one pass over the pairs.
    pub fn masked_products(&self, (vs, newest, keep): (&[ArrayView1<F>], usize, &[bool])) -> Vec<Vec<F>> {
        let vs = self.history.with_newest(vs, newest);
        let dots = self.history.column_dots(&[], Some((&vs, keep)));
        dots.chunks_exact(self.width()).map(<[F]>::to_vec).collect()
    }

    /// `Wᵀv`, in one pass over `v` and the pairs.
    #[cfg(test)]
    pub fn wt_times(&self, v: ArrayView1<F>) -> Array1<F> {
        with_theta(&self.history.column_dots(&[v], None), self.theta)
    }

    /// `out ← out + alpha · W c`, in one pass over `out` and the pairs.
    pub fn add_w_times(&self, alpha: F, c: ArrayView1<F>, out: ArrayViewMut1<F>) {
        self.history.add_columns(&self.coefficients(alpha, c), out);
    }

    /// The coefficients of the columns `[y_1 … y_k, s_1 … s_k]` that make their sum `alpha · W c`.
    fn coefficients(&self, alpha: F, c: ArrayView1<F>) -> Vec<F> {
        let k = self.history.len();
        (0..k).map(|j| alpha * c[j]).chain((0..k).map(|j| alpha * self.theta * c[k + j])).collect()
    }

    /// `WᵀW` without θ (2k × 2k, `[[YᵀY, YᵀS], [SᵀY, SᵀS]]`) from the kept inner products.
    pub fn unscaled_gram(&self) -> Array2<f64> {
        let k = self.history.len();
        let ip = &self.history.inner;
        let mut out = Array2::zeros((2 * k, 2 * k));
        for i in 0..k {
            for j in 0..k {
                out[[i, j]] = ip.yy[[i, j]].wide();
                out[[i, k + j]] = ip.sy[[j, i]].wide();
                out[[k + i, j]] = ip.sy[[i, j]].wide();
                out[[k + i, k + j]] = ip.ss[[i, j]].wide();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The two-loop recursion (Nocedal & Wright, Alg. 7.4), written plainly: the oracle for
    /// [`History::direction`].
    fn two_loop(h: &History<f64>, g: &Array1<f64>) -> Array1<f64> {
        let rho: Vec<f64> = h.pairs.iter().map(|p| 1.0 / p.s.dot(&p.y)).collect();
        let mut q = g.clone();
        let mut alpha = vec![0.0; h.len()];
        for (i, p) in h.pairs.iter().enumerate().rev() {
            alpha[i] = rho[i] * p.s.dot(&q);
            q.scaled_add(-alpha[i], &p.y);
        }
        q *= h.gamma;
        for (i, p) in h.pairs.iter().enumerate() {
            let beta = rho[i] * p.y.dot(&q);
            q.scaled_add(alpha[i] - beta, &p.s);
        }
        -q
    }

    /// A convex quadratic's pairs along pseudo-random steps: `y = A s`, A diagonal in [0.5, 20].
    fn offer_pairs(h: &mut History<f64>, n: usize, count: usize, seed: usize) {
        let a = Array1::from_shape_fn(n, |i| 0.5 + ((i * 7 + 3) % 40) as f64 / 2.0);
        for k in 0..count {
            let d = Array1::from_shape_fn(n, |i| ((i * 7919 + k * 104_729 + seed) % 1000) as f64 / 500.0 - 1.0);
            let g_old = Array1::from_shape_fn(n, |i| ((i + k) % 13) as f64 - 6.0);
            let g_new = &g_old + &(&a * &d * 0.3);
            assert_eq!(h.update(0.3, d.view(), g_new.view(), g_old.view()), Update::Stored);
        }
    }

    /// The compact form's direction is the two-loop recursion's, with the history filling,
    /// full and wrapping, and after its capacity grows.
    #[test]
    fn direction_matches_the_two_loop_recursion() {
        for n in [5, 3 * crate::PARALLEL_THRESHOLD + 11] {
            let g = Array1::from_shape_fn(n, |i| ((i * 31) % 17) as f64 - 8.0);
            let mut h = History::<f64>::new(4);
            let mut d = Array1::zeros(n);
            h.direction(g.view(), d.view_mut());
            assert_eq!(d, -&g, "no pair: steepest descent");
            for (count, capacity) in [(1, 4), (2, 4), (3, 4), (2, 6), (3, 6)] {
                h.set_capacity(capacity);
                offer_pairs(&mut h, n, count, count * capacity);
                h.direction(g.view(), d.view_mut());
                let reference = two_loop(&h, &g);
                let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let worst = (&d - &reference).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(worst <= 1e-12 * scale, "{} pairs, n = {n}: |d − two-loop| = {worst:e} of {scale:e}", h.len());
            }
        }
    }

    /// With exact pairs of a quadratic f = ½xᵀAx, the compact B reproduces A on the span of S.
    #[test]
    fn compact_form_matches_two_loop_inverse() {
        let a = array![[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]];
        let mut h = History::<f64>::new(5);
        let xs = [array![1.0, 0.0, 0.0], array![1.0, 1.0, 0.0], array![0.5, 1.0, 1.0], array![0.2, -0.3, 0.4]];
        for w in xs.windows(2) {
            let (g0, g1) = (a.dot(&w[0]), a.dot(&w[1]));
            let d = &w[1] - &w[0];
            assert_eq!(h.update(1.0, d.view(), g1.view(), g0.view()), Update::Stored);
        }
        // After 3 independent exact pairs in 3-D, BFGS recovers A: −H·g = −A⁻¹g.
        let g = array![0.3, -1.0, 2.0];
        let mut d = Array1::zeros(3);
        h.direction(g.view(), d.view_mut());
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
        let r = h.update(1.0, array![1.0].view(), array![-1.0].view(), array![0.0].view());
        assert_eq!(r, Update::Skipped);
        assert!(h.is_empty());
        // A skipped pair leaves a full history as it was.
        assert_eq!(h.update(1.0, array![1.0].view(), array![2.0].view(), array![0.0].view()), Update::Stored);
        assert_eq!(h.update(1.0, array![1.0].view(), array![-1.0].view(), array![0.0].view()), Update::Skipped);
        assert_eq!((h.len(), h.gamma()), (1, 0.5));
    }
}
