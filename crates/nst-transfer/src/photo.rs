//! Photo-realistic refinement, Deep Image Analogy's photo mode: A′ ← A + S(A′) − S(A), with
//! S the weighted-least-squares smoothing guided by A (Farbman et al., *Edge-Preserving
//! Decompositions for Multi-Scale Tone and Detail Manipulation*, 2008): the result takes
//! its colours from A′ and its edges and fine detail from the photo A.
//!
//! S(f) = u solves (I + Lₐ) u = f, Lₐ the grid Laplacian whose link between neighbours p, q
//! weighs λ / (|ℓ(p) − ℓ(q)|^α + ε), ℓ the log-luminance of A: smoothing stops at A's
//! edges. The system is symmetric positive definite; conjugate gradients with the diagonal
//! as preconditioner solve it one channel at a time.

use ndarray::{Array2, Array4, ArrayView2, Axis, Zip};
use rayon::prelude::*;

/// The reference's smoothing strength λ and edge exponent α.
const LAMBDA: f32 = 0.8;
const ALPHA: f32 = 1.0;

/// Keeps the weights finite where A is flat.
const EPSILON: f32 = 1e-4;

/// Conjugate gradients stop at this relative residual, or after so many iterations.
const TOLERANCE: f32 = 1e-4;
const MAX_ITERATIONS: usize = 2000;

/// A′ refined with the photo `a`'s detail; both (1, 3, H, W) RGB in [0, 1].
pub(crate) fn refine(a: &Array4<f32>, a2: &Array4<f32>) -> Array4<f32> {
    let weights = Links::of(a);
    let mut out = a.clone();
    let channels: Vec<(Array2<f32>, Array2<f32>)> = (0..3)
        .into_par_iter()
        .map(|c| {
            let plane = |t: &Array4<f32>| t.index_axis(Axis(0), 0).index_axis(Axis(0), c).to_owned();
            (weights.smooth(plane(a2).view()), weights.smooth(plane(a).view()))
        })
        .collect();
    for (c, (s_a2, s_a)) in channels.into_iter().enumerate() {
        Zip::from(out.index_axis_mut(Axis(0), 0).index_axis_mut(Axis(0), c)).and(&s_a2).and(&s_a).for_each(
            |o, &x, &y| {
                *o = (*o + x - y).clamp(0.0, 1.0);
            },
        );
    }
    out
}

/// The smoothness weights between each pixel and its right (`x`) and lower (`y`) neighbour.
struct Links {
    x: Array2<f32>,
    y: Array2<f32>,
}

impl Links {
    fn of(guide: &Array4<f32>) -> Self {
        let g = guide.index_axis(Axis(0), 0);
        let (h, w) = (g.shape()[1], g.shape()[2]);
        let l = Array2::from_shape_fn((h, w), |(y, x)| {
            (0.299 * g[[0, y, x]] + 0.587 * g[[1, y, x]] + 0.114 * g[[2, y, x]] + EPSILON).ln()
        });
        let link = |d: f32| LAMBDA / (d.abs().powf(ALPHA) + EPSILON);
        let x = Array2::from_shape_fn((h, w), |(y, x)| if x + 1 < w { link(l[[y, x + 1]] - l[[y, x]]) } else { 0.0 });
        let y = Array2::from_shape_fn((h, w), |(y, x)| if y + 1 < h { link(l[[y + 1, x]] - l[[y, x]]) } else { 0.0 });
        Self { x, y }
    }

    /// (I + L) u.
    fn apply(&self, u: &Array2<f32>, out: &mut Array2<f32>) {
        let (h, w) = u.dim();
        for y in 0..h {
            for x in 0..w {
                let mut v = u[[y, x]];
                let here = u[[y, x]];
                if x + 1 < w {
                    v += self.x[[y, x]] * (here - u[[y, x + 1]]);
                }
                if x > 0 {
                    v += self.x[[y, x - 1]] * (here - u[[y, x - 1]]);
                }
                if y + 1 < h {
                    v += self.y[[y, x]] * (here - u[[y + 1, x]]);
                }
                if y > 0 {
                    v += self.y[[y - 1, x]] * (here - u[[y - 1, x]]);
                }
                out[[y, x]] = v;
            }
        }
    }

    /// The diagonal of I + L.
    fn diagonal(&self) -> Array2<f32> {
        let (h, w) = self.x.dim();
        Array2::from_shape_fn((h, w), |(y, x)| {
            1.0 + self.x[[y, x]]
                + self.y[[y, x]]
                + if x > 0 { self.x[[y, x - 1]] } else { 0.0 }
                + if y > 0 { self.y[[y - 1, x]] } else { 0.0 }
        })
    }

    /// S(f): preconditioned conjugate gradients from u = f.
    fn smooth(&self, f: ArrayView2<f32>) -> Array2<f32> {
        let dot = |a: &Array2<f32>, b: &Array2<f32>| -> f64 {
            Zip::from(a).and(b).fold(0.0, |s, &x, &y| s + f64::from(x * y))
        };
        let inverse_diagonal = self.diagonal().mapv(|d| 1.0 / d);
        let mut u = f.to_owned();
        let mut q = Array2::zeros(u.dim());
        self.apply(&u, &mut q);
        let mut r = &f - &q;
        let mut z = &r * &inverse_diagonal;
        let mut p = z.clone();
        let mut rz = dot(&r, &z);
        let stop = f64::from(TOLERANCE) * f.iter().map(|&v| f64::from(v * v)).sum::<f64>().sqrt();
        for _ in 0..MAX_ITERATIONS {
            if dot(&r, &r).sqrt() <= stop {
                break;
            }
            self.apply(&p, &mut q);
            let step = (rz / dot(&p, &q)) as f32;
            u.scaled_add(step, &p);
            r.scaled_add(-step, &q);
            Zip::from(&mut z).and(&r).and(&inverse_diagonal).for_each(|z, &r, &d| *z = r * d);
            let rz_next = dot(&r, &z);
            let beta = (rz_next / rz) as f32;
            rz = rz_next;
            Zip::from(&mut p).and(&z).for_each(|p, &z| *p = z + beta * *p);
        }
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_keeps_edges_and_flattens_the_rest_and_refining_a_copy_changes_nothing() {
        // A guide with a sharp vertical edge; a noisy signal on it.
        let (h, w) = (12, 16);
        let guide = Array4::from_shape_fn((1, 3, h, w), |(_, _, _, x)| if x < 8 { 0.2 } else { 0.8 });
        let links = Links::of(&guide);
        let noisy = Array2::from_shape_fn((h, w), |(y, x)| {
            (if x < 8 { 0.3 } else { 0.7 }) + if (x + y) % 2 == 0 { 0.05 } else { -0.05 }
        });
        let s = links.smooth(noisy.view());
        // The noise is gone on each side (to 1e-3 of its ±0.05); the step between them stays.
        for side in [s.slice(ndarray::s![.., ..8]), s.slice(ndarray::s![.., 8..])] {
            let (lo, hi) = side.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            assert!(hi - lo < 1e-3, "{s:?}");
        }
        assert!(s[[5, 8]] - s[[5, 7]] > 0.3, "{s:?}");
        let a = guide.mapv(|v| v * 0.9);
        let refined = refine(&a, &a);
        assert!(refined.iter().zip(&a).all(|(x, y)| (x - y).abs() < 1e-5));
    }
}
