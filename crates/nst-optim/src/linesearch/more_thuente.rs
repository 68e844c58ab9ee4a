//! The Moré–Thuente line search (ACM TOMS 20(3), 1994), a port of MINPACK-2's
//! `dcsrch` and `dcstep`: safeguarded cubic and quadratic interpolation inside
//! an interval of uncertainty that is guaranteed to contain a strong Wolfe point.

use super::Next;
use crate::Real;

/// Relative interval width below which the search gives up (MINPACK-2's `xtol`, as L-BFGS-B sets it).
const XTOL: f64 = 0.1;
const XTRAPL: f64 = 1.1;
const XTRAPU: f64 = 4.0;

pub(crate) struct MoreThuente<F> {
    gtol: F,
    stpmax: F,
    brackt: bool,
    stage1: bool,
    finit: F,
    ginit: F,
    gtest: F,
    width: F,
    width1: F,
    stx: F,
    fx: F,
    gx: F,
    sty: F,
    fy: F,
    gy: F,
    stmin: F,
    stmax: F,
}

impl<F: Real> MoreThuente<F> {
    pub fn new(f0: F, dg0: F, stp: F, ftol: F, gtol: F, stpmax: F) -> Self {
        let stpmin = F::zero();
        let width = stpmax - stpmin;
        Self {
            gtol,
            stpmax,
            brackt: false,
            stage1: true,
            finit: f0,
            ginit: dg0,
            gtest: ftol * dg0,
            width,
            width1: width / F::lit(0.5),
            stx: F::zero(),
            fx: f0,
            gx: dg0,
            sty: F::zero(),
            fy: f0,
            gy: dg0,
            stmin: F::zero(),
            stmax: stp + F::lit(XTRAPU) * stp,
        }
    }

    pub fn next(&mut self, stp: F, f: F, g: F) -> Next<F> {
        let (p5, p66) = (F::lit(0.5), F::lit(0.66));
        if !(f.is_finite() && g.is_finite()) {
            // Back off toward the best point so far; the failed step bounds the search from above.
            self.stpmax = stp;
            let next = self.stx + p5 * (stp - self.stx);
            return if next > self.stx { Next::Try(next) } else { Next::Fail };
        }
        let ftest = self.finit + stp * self.gtest;
        if self.stage1 && f <= ftest && g >= F::zero() {
            self.stage1 = false;
        }
        // Convergence: sufficient decrease and the strong curvature condition.
        if f <= ftest && g.abs() <= self.gtol * (-self.ginit) {
            return Next::Accept;
        }
        // Warnings: the search cannot make progress; the step is accepted if it decreases f.
        let stuck = (self.brackt
            && (stp <= self.stmin || stp >= self.stmax || self.stmax - self.stmin <= F::lit(XTOL) * self.stmax))
            || (stp == self.stpmax && f <= ftest && g <= self.gtest)
            || (stp == F::zero() && (f > ftest || g >= self.gtest));
        if stuck {
            return if f < self.finit { Next::Accept } else { Next::Fail };
        }
        // In stage 1 with a lower function value but no sufficient decrease, use the modified function.
        if self.stage1 && f <= self.fx && f > ftest {
            let gt = self.gtest;
            let mut st = Step {
                stx: self.stx,
                fx: self.fx - self.stx * gt,
                dx: self.gx - gt,
                sty: self.sty,
                fy: self.fy - self.sty * gt,
                dy: self.gy - gt,
                brackt: self.brackt,
            };
            let stp = st.step(stp, f - stp * gt, g - gt, self.stmin, self.stmax);
            self.store(&st, gt);
            self.finish(stp, p5, p66)
        } else {
            let mut st = Step {
                stx: self.stx,
                fx: self.fx,
                dx: self.gx,
                sty: self.sty,
                fy: self.fy,
                dy: self.gy,
                brackt: self.brackt,
            };
            let stp = st.step(stp, f, g, self.stmin, self.stmax);
            self.store(&st, F::zero());
            self.finish(stp, p5, p66)
        }
    }

    fn store(&mut self, st: &Step<F>, gt: F) {
        self.stx = st.stx;
        self.fx = st.fx + st.stx * gt;
        self.gx = st.dx + gt;
        self.sty = st.sty;
        self.fy = st.fy + st.sty * gt;
        self.gy = st.dy + gt;
        self.brackt = st.brackt;
    }

    fn finish(&mut self, mut stp: F, p5: F, p66: F) -> Next<F> {
        // Force a sufficient decrease in the size of the interval of uncertainty.
        if self.brackt {
            if (self.sty - self.stx).abs() >= p66 * self.width1 {
                stp = self.stx + p5 * (self.sty - self.stx);
            }
            self.width1 = self.width;
            self.width = (self.sty - self.stx).abs();
        }
        if self.brackt {
            self.stmin = self.stx.min(self.sty);
            self.stmax = self.stx.max(self.sty);
        } else {
            self.stmin = stp + F::lit(XTRAPL) * (stp - self.stx);
            self.stmax = stp + F::lit(XTRAPU) * (stp - self.stx);
        }
        stp = stp.max(F::zero()).min(self.stpmax);
        // With rounding errors or an interval below tolerance, fall back to the best step.
        if self.brackt
            && (stp <= self.stmin || stp >= self.stmax || self.stmax - self.stmin <= F::lit(XTOL) * self.stmax)
        {
            stp = self.stx;
        }
        if stp <= F::zero() { Next::Fail } else { Next::Try(stp) }
    }
}

/// The interval `[stx, sty]` and its end values, updated by `dcstep`.
struct Step<F> {
    stx: F,
    fx: F,
    dx: F,
    sty: F,
    fy: F,
    dy: F,
    brackt: bool,
}

/// The cubic interpolating (a, f_a, d_a) and (b, f_b, d_b): returns θ and |γ|, the
/// quantities of `dcstep`'s minimizer formulas (γ's sign is chosen by the caller).
fn cubic<F: Real>(a: F, fa: F, da: F, b: F, fb: F, db: F) -> (F, F) {
    let theta = F::lit(3.0) * (fa - fb) / (b - a) + da + db;
    let s = theta.abs().max(da.abs()).max(db.abs());
    let gamma = s * ((theta / s).powi(2) - (da / s) * (db / s)).max(F::zero()).sqrt();
    (theta, gamma)
}

impl<F: Real> Step<F> {
    /// MINPACK-2 `dcstep`: a safeguarded step from the trial `(stp, fp, dp)`;
    /// updates the interval and returns the next trial step.
    fn step(&mut self, stp: F, fp: F, dp: F, stpmin: F, stpmax: F) -> F {
        let (two, p66) = (F::lit(2.0), F::lit(0.66));
        let (stx, fx, dx, sty, fy, dy) = (self.stx, self.fx, self.dx, self.sty, self.fy, self.dy);
        let sgnd = dp * (dx / dx.abs());
        let stpf;
        if fp > fx {
            // Case 1: higher function value; the minimum is bracketed.
            let (theta, mut gamma) = cubic(stx, fx, dx, stp, fp, dp);
            if stp < stx {
                gamma = -gamma;
            }
            let p = (gamma - dx) + theta;
            let q = ((gamma - dx) + gamma) + dp;
            let r = p / q;
            let stpc = stx + r * (stp - stx);
            let stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / two) * (stp - stx);
            stpf = if (stpc - stx).abs() < (stpq - stx).abs() { stpc } else { stpc + (stpq - stpc) / two };
            self.brackt = true;
        } else if sgnd < F::zero() {
            // Case 2: derivatives of opposite sign; the minimum is bracketed.
            let (theta, mut gamma) = cubic(stx, fx, dx, stp, fp, dp);
            if stp > stx {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = ((gamma - dp) + gamma) + dx;
            let r = p / q;
            let stpc = stp + r * (stx - stp);
            let stpq = stp + (dp / (dp - dx)) * (stx - stp);
            stpf = if (stpc - stp).abs() > (stpq - stp).abs() { stpc } else { stpq };
            self.brackt = true;
        } else if dp.abs() < dx.abs() {
            // Case 3: derivative decreases in magnitude.
            let (theta, mut gamma) = cubic(stx, fx, dx, stp, fp, dp);
            if stp > stx {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = (gamma + (dx - dp)) + gamma;
            let r = p / q;
            let stpc = if r < F::zero() && gamma != F::zero() {
                stp + r * (stx - stp)
            } else if stp > stx {
                stpmax
            } else {
                stpmin
            };
            let stpq = stp + (dp / (dp - dx)) * (stx - stp);
            if self.brackt {
                let f = if (stpc - stp).abs() < (stpq - stp).abs() { stpc } else { stpq };
                stpf = if stp > stx { (stp + p66 * (sty - stp)).min(f) } else { (stp + p66 * (sty - stp)).max(f) };
            } else {
                let f = if (stpc - stp).abs() > (stpq - stp).abs() { stpc } else { stpq };
                stpf = f.min(stpmax).max(stpmin);
            }
        } else {
            // Case 4: derivative does not decrease in magnitude.
            stpf = if self.brackt {
                let (theta, mut gamma) = cubic(stp, fp, dp, sty, fy, dy);
                if stp > sty {
                    gamma = -gamma;
                }
                let p = (gamma - dp) + theta;
                let q = ((gamma - dp) + gamma) + dy;
                stp + (p / q) * (sty - stp)
            } else if stp > stx {
                stpmax
            } else {
                stpmin
            };
        }
        // Update the interval that contains a minimizer.
        if fp > fx {
            self.sty = stp;
            self.fy = fp;
            self.dy = dp;
        } else {
            if sgnd < F::zero() {
                self.sty = stx;
                self.fy = fx;
                self.dy = dx;
            }
            self.stx = stp;
            self.fx = fp;
            self.dx = dp;
        }
        stpf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search on φ(t) and returns the accepted step and the trial count.
    fn search(phi: impl Fn(f64) -> (f64, f64), stp0: f64) -> (f64, usize) {
        let (f0, g0) = phi(0.0);
        let mut mt = MoreThuente::new(f0, g0, stp0, 1e-3, 0.1, 1e10);
        let mut stp = stp0;
        for trial in 1..=30 {
            let (f, g) = phi(stp);
            match mt.next(stp, f, g) {
                Next::Accept => return (stp, trial),
                Next::Try(s) => stp = s,
                Next::Fail => panic!("search failed at {stp}"),
            }
        }
        panic!("no convergence");
    }

    /// Moré & Thuente's first test function φ(t) = −t/(t² + β), β = 2, from several starts.
    #[test]
    fn satisfies_strong_wolfe_on_more_thuente_function_1() {
        let phi = |t: f64| (-t / (t * t + 2.0), (t * t - 2.0) / (t * t + 2.0).powi(2));
        for stp0 in [1e-3, 1e-1, 1e1, 1e3] {
            let (stp, trials) = search(phi, stp0);
            let (f, g) = phi(stp);
            let (f0, g0) = phi(0.0);
            assert!(f <= f0 + 1e-3 * stp * g0);
            assert!(g.abs() <= 0.1 * g0.abs(), "stp0 {stp0}: |g| = {g}");
            assert!(trials <= 12, "stp0 {stp0}: {trials} trials");
        }
    }

    #[test]
    fn backs_off_from_non_finite_values() {
        let phi = |t: f64| if t > 2.0 { (f64::INFINITY, f64::NAN) } else { ((t - 1.0).powi(2), 2.0 * (t - 1.0)) };
        let (stp, _) = search(phi, 100.0);
        assert!((stp - 1.0).abs() < 0.5);
    }
}
