//! PatchMatch between feature maps (Barnes et al. 2009, as generalized by Deep Image
//! Analogy, Liao et al. 2017): a nearest-neighbour field (NNF) that sends each position
//! of a map A to the position of a map B whose patch is most alike, found by
//! propagation from neighbours and random search, and the voting that rebuilds a map
//! of A's shape from B's values along the field.
//!
//! Propagation proposes both a neighbour's match moved back by the offset (the field
//! translates locally, as in the reference) and moved on by it (the field mirrors along
//! that axis): a face turned the other way is found by propagation rather than by luck.
//!
//! The distance between a patch at p in A and one at q in B is the mean, over the
//! patch's offsets inside both maps, of −(Ā(p+δ)·B̄(q+δ) + Ā′(p+δ)·B̄′(q+δ)): two pairs
//! of channel-normalized maps (A with B, and A′ with B′) compared at once.
//!
//! Every pass reads the field the last pass left and writes a new one, rows in parallel,
//! each row's random numbers from its own generator: a result depends on the seed only,
//! not on the threads.

use crate::{Error, Interrupt};
use ndarray::{Array4, ArrayView4};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;

/// A feature map ready for matching: (height, width, channels), each position's vector
/// scaled to unit length (zero vectors stay zero).
#[derive(Clone, Debug)]
pub struct NormalizedMap {
    height: usize,
    width: usize,
    channels: usize,
    data: Vec<f32>,
}

impl NormalizedMap {
    /// Normalizes the feature map `f` (1, C, H, W) channel-wise at each position.
    pub fn new(f: ArrayView4<f32>) -> Self {
        let (_, c, h, w) = f.dim();
        let mut data = vec![0.0f32; h * w * c];
        data.par_chunks_mut((w * c).max(1)).enumerate().for_each(|(y, row)| {
            for x in 0..w {
                let cell = &mut row[x * c..(x + 1) * c];
                for (k, v) in cell.iter_mut().enumerate() {
                    *v = f[[0, k, y, x]];
                }
                let norm = cell.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > 0.0 {
                    cell.iter_mut().for_each(|v| *v /= norm);
                }
            }
        });
        Self { height: h, width: w, channels: c, data }
    }

    /// (height, width).
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    fn at(&self, y: usize, x: usize) -> &[f32] {
        let i = (y * self.width + x) * self.channels;
        &self.data[i..i + self.channels]
    }
}

/// A nearest-neighbour field: for each position (y, x) of a map of `size`, a position in a
/// map of `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nnf {
    size: (usize, usize),
    to: (usize, usize),
    field: Vec<(u32, u32)>,
}

impl Nnf {
    /// The field that sends each position to the same relative place in `to`
    /// (the identity when the sizes agree).
    pub fn identity(size: (usize, usize), to: (usize, usize)) -> Self {
        let scale = |p: usize, from: usize, onto: usize| ((p * onto) / from.max(1)).min(onto.saturating_sub(1)) as u32;
        let field =
            (0..size.0 * size.1).map(|i| (scale(i / size.1, size.0, to.0), scale(i % size.1, size.1, to.1))).collect();
        Self { size, to, field }
    }

    /// A field from explicit matches, one `(y, x)` in `to` per position of `size`, row by row.
    pub fn from_matches(size: (usize, usize), to: (usize, usize), matches: &[(usize, usize)]) -> Result<Self, Error> {
        if matches.len() != size.0 * size.1 || matches.iter().any(|&(y, x)| y >= to.0 || x >= to.1) {
            return Err(Error::InvalidSetting(format!(
                "a field of {}×{} needs {} matches inside {}×{}",
                size.1,
                size.0,
                size.0 * size.1,
                to.1,
                to.0
            )));
        }
        Ok(Self { size, to, field: matches.iter().map(|&(y, x)| (y as u32, x as u32)).collect() })
    }

    /// The size of the map it is defined on, (height, width).
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// The size of the map it points into, (height, width).
    pub fn target_size(&self) -> (usize, usize) {
        self.to
    }

    /// Where (y, x) goes.
    pub fn get(&self, y: usize, x: usize) -> (usize, usize) {
        let (ty, tx) = self.field[y * self.size.1 + x];
        (ty as usize, tx as usize)
    }

    /// The field at a finer level (maps of `size` into maps of `to`): each position takes its
    /// coarse cell's match, offset by where it lies in that cell, scaled, and clamped.
    pub fn upsample(&self, size: (usize, usize), to: (usize, usize)) -> Self {
        let ry = size.0 as f64 / self.size.0 as f64;
        let rx = size.1 as f64 / self.size.1 as f64;
        let (sy, sx) = (to.0 as f64 / self.to.0 as f64, to.1 as f64 / self.to.1 as f64);
        // The coarse cell of fine position p, for a ratio r and a coarse length.
        let cell = |p: usize, r: f64, coarse: usize| (((p as f64 + 0.5) / r) as usize).min(coarse - 1);
        // The fine match of p in cell c whose coarse match is m: offset within the cell, scaled by s.
        let along = |p: usize, c: usize, r: f64, s: f64, m: usize, onto: usize| {
            let q = (m as f64 + 0.5) * s + (p as f64 + 0.5 - (c as f64 + 0.5) * r) - 0.5;
            q.round().clamp(0.0, (onto - 1) as f64) as u32
        };
        let field = (0..size.0 * size.1)
            .map(|i| {
                let (y, x) = (i / size.1, i % size.1);
                let (cy, cx) = (cell(y, ry, self.size.0), cell(x, rx, self.size.1));
                let (my, mx) = self.get(cy, cx);
                (along(y, cy, ry, sy, my, to.0), along(x, cx, rx, sx, mx, to.1))
            })
            .collect();
        Self { size, to, field }
    }

    /// A map of this field's size rebuilt from `source` (1, C, H, W) of the target's size:
    /// each position averages the values that the `patch × patch` patches covering it
    /// bring from their matches.
    pub fn vote(&self, source: ArrayView4<f32>, patch: usize) -> Result<Array4<f32>, Error> {
        let (_, c, sh, sw) = source.dim();
        if patch.is_multiple_of(2) {
            return Err(Error::InvalidSetting(format!("patch size {patch} must be odd")));
        }
        if (sh, sw) != self.to {
            return Err(Error::Shape {
                what: "voted map".into(),
                expected: vec![1, c, self.to.0, self.to.1],
                actual: source.shape().to_vec(),
            });
        }
        let (h, w) = self.size;
        let r = (patch / 2) as isize;
        // Where each position's votes come from, as indices into a source plane.
        let sources: Vec<Vec<usize>> = (0..h * w)
            .into_par_iter()
            .map(|i| {
                let (y, x) = ((i / w) as isize, (i % w) as isize);
                let mut from = Vec::with_capacity(patch * patch);
                for dy in -r..=r {
                    for dx in -r..=r {
                        // The patch centred at (y − dy, x − dx) covers (y, x) at its offset (dy, dx).
                        let (py, px) = (y - dy, x - dx);
                        if py < 0 || px < 0 || py >= h as isize || px >= w as isize {
                            continue;
                        }
                        let (my, mx) = self.get(py as usize, px as usize);
                        let (qy, qx) = (my as isize + dy, mx as isize + dx);
                        if qy >= 0 && qx >= 0 && qy < sh as isize && qx < sw as isize {
                            from.push(qy as usize * sw + qx as usize);
                        }
                    }
                }
                from
            })
            .collect();
        let source = source.as_standard_layout();
        let planes = source.as_slice().expect("standard layout");
        let mut out = vec![0.0f32; c * h * w];
        out.par_chunks_mut(h * w).zip(planes.par_chunks(sh * sw)).for_each(|(plane, src)| {
            for (v, from) in plane.iter_mut().zip(&sources) {
                *v = from.iter().map(|&j| src[j]).sum::<f32>() / from.len().max(1) as f32;
            }
        });
        Ok(Array4::from_shape_vec((1, c, h, w), out).expect("c·h·w values"))
    }
}

/// PatchMatch's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchMatch {
    /// Patch side (odd).
    pub patch: usize,
    /// The first random-search radius; it halves down to 1 within each iteration.
    pub radius: usize,
    /// Iterations of propagation then random search.
    pub iterations: usize,
    /// Seed of the random search.
    pub seed: u64,
}

/// The jumps of propagation within an iteration (jump flooding).
const JUMPS: [isize; 4] = [8, 4, 2, 1];

impl PatchMatch {
    /// Improves `field` (from A's positions into B's) to the nearest neighbours under the
    /// two-pair distance of `(a, a2)` against `(b, b2)`; stops, [`Error::Interrupted`], at
    /// the pass over the map under way when `interrupt` is tripped.
    pub fn run(
        &self,
        (a, a2): (&NormalizedMap, &NormalizedMap),
        (b, b2): (&NormalizedMap, &NormalizedMap),
        mut field: Nnf,
        interrupt: &Interrupt,
    ) -> Result<Nnf, Error> {
        if self.patch.is_multiple_of(2) {
            return Err(Error::InvalidSetting(format!("patch size {} must be odd", self.patch)));
        }
        let same = |m: &NormalizedMap, n: &NormalizedMap| m.size() == n.size() && m.channels == n.channels;
        if !same(a, a2) || !same(b, b2) || a.channels != b.channels || field.size != a.size() || field.to != b.size() {
            return Err(Error::InvalidSetting(
                "PatchMatch needs maps of matching shapes and a field between them".into(),
            ));
        }
        let pm = Matcher { a, a2, b, b2, r: (self.patch / 2) as isize };
        let (h, w) = a.size();
        let mut cost: Vec<f32> =
            (0..h * w).into_par_iter().map(|i| pm.distance((i / w, i % w), field.field[i])).collect();
        for iteration in 0..self.iterations {
            for jump in JUMPS {
                interrupt.stop_point()?;
                let old = field.field.clone();
                field.field.par_chunks_mut(w).zip(cost.par_chunks_mut(w)).enumerate().for_each(|(y, (row, costs))| {
                    for x in 0..w {
                        for (dy, dx) in [(-jump, 0), (jump, 0), (0, -jump), (0, jump)] {
                            let (ny, nx) = (y as isize + dy, x as isize + dx);
                            if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                                continue;
                            }
                            // The neighbour's match moved back by the offset (a translation),
                            // and moved on by it (a mirror along that axis).
                            let (my, mx) = old[ny as usize * w + nx as usize];
                            for s in [-1, 1] {
                                let q = (clamp(my as isize + s * dy, b.height), clamp(mx as isize + s * dx, b.width));
                                pm.consider((y, x), q, &mut row[x], &mut costs[x]);
                            }
                        }
                    }
                });
            }
            interrupt.stop_point()?;
            field.field.par_chunks_mut(w).zip(cost.par_chunks_mut(w)).enumerate().for_each(|(y, (row, costs))| {
                let mut rng = StdRng::seed_from_u64(
                    self.seed ^ ((iteration as u64) << 48) ^ (y as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                for x in 0..w {
                    let mut radius = self.radius.max(1) as isize;
                    loop {
                        let (my, mx) = row[x];
                        let q = (
                            clamp(my as isize + rng.random_range(-radius as i64..=radius as i64) as isize, b.height),
                            clamp(mx as isize + rng.random_range(-radius as i64..=radius as i64) as isize, b.width),
                        );
                        pm.consider((y, x), q, &mut row[x], &mut costs[x]);
                        if radius == 1 {
                            break;
                        }
                        radius /= 2;
                    }
                }
            });
        }
        Ok(field)
    }
}

fn clamp(v: isize, len: usize) -> u32 {
    v.clamp(0, len as isize - 1) as u32
}

/// The two pairs of maps and the patch radius.
struct Matcher<'m> {
    a: &'m NormalizedMap,
    a2: &'m NormalizedMap,
    b: &'m NormalizedMap,
    b2: &'m NormalizedMap,
    r: isize,
}

impl Matcher<'_> {
    /// The two-pair patch distance between p in A and q in B.
    fn distance(&self, (py, px): (usize, usize), (qy, qx): (u32, u32)) -> f32 {
        let (ah, aw) = (self.a.height as isize, self.a.width as isize);
        let (bh, bw) = (self.b.height as isize, self.b.width as isize);
        let (mut sum, mut n) = (0.0f32, 0u32);
        for dy in -self.r..=self.r {
            let (ay, by) = (py as isize + dy, qy as isize + dy);
            if ay < 0 || by < 0 || ay >= ah || by >= bh {
                continue;
            }
            for dx in -self.r..=self.r {
                let (ax, bx) = (px as isize + dx, qx as isize + dx);
                if ax < 0 || bx < 0 || ax >= aw || bx >= bw {
                    continue;
                }
                let (ay, ax, by, bx) = (ay as usize, ax as usize, by as usize, bx as usize);
                sum += dot(self.a.at(ay, ax), self.b.at(by, bx)) + dot(self.a2.at(ay, ax), self.b2.at(by, bx));
                n += 1;
            }
        }
        -sum / n.max(1) as f32
    }

    /// Takes q for p when it is nearer than the current match.
    fn consider(&self, p: (usize, usize), q: (u32, u32), best: &mut (u32, u32), cost: &mut f32) {
        if q == *best {
            return;
        }
        let d = self.distance(p, q);
        if d < *cost {
            *best = q;
            *cost = d;
        }
    }
}

/// `u·v` in eight running sums, which the compiler keeps in vector registers (one
/// sequential sum cannot be vectorized without reordering it, and is ~8× slower).
fn dot(u: &[f32], v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (uc, vc) = (u.chunks_exact(8), v.chunks_exact(8));
    let tail: f32 = uc.remainder().iter().zip(vc.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in uc.zip(vc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random features, (1, C, H, W).
    fn noise(c: usize, h: usize, w: usize, seed: u64) -> Array4<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array4::from_shape_simple_fn((1, c, h, w), || rng.random::<f32>() - 0.5)
    }

    fn matcher() -> PatchMatch {
        PatchMatch { patch: 3, radius: 16, iterations: 10, seed: 1 }
    }

    #[test]
    fn finds_a_shifted_copy() {
        let big = noise(16, 40, 50, 3);
        let (oy, ox) = (7, 11);
        let b = big.slice(ndarray::s![.., .., oy..oy + 30, ox..ox + 36]).to_owned();
        let a = big.slice(ndarray::s![.., .., 0..30, 0..36]).to_owned();
        let a = NormalizedMap::new(a.view());
        let b = NormalizedMap::new(b.view());
        let start = Nnf::identity(a.size(), b.size());
        let field = matcher().run((&a, &a), (&b, &b), start, &Interrupt::default()).unwrap();
        // A's (y, x) is B's (y − 7, x − 11) wherever that is inside B.
        let (h, w) = a.size();
        let inside: Vec<_> = (oy..h).flat_map(|y| (ox..w).map(move |x| (y, x))).collect();
        let hits = inside.iter().filter(|&&(y, x)| field.get(y, x) == (y - oy, x - ox)).count();
        assert!(hits as f64 / inside.len() as f64 > 0.99, "{hits} of {}", inside.len());
        // The same seed gives the same field.
        let again =
            matcher().run((&a, &a), (&b, &b), Nnf::identity(a.size(), b.size()), &Interrupt::default()).unwrap();
        assert_eq!(field, again);
    }

    #[test]
    fn finds_a_mirrored_copy_through_the_second_pair() {
        let f = noise(16, 24, 32, 5);
        let mirrored = f.slice(ndarray::s![.., .., .., ..;-1]).to_owned();
        // The first pair tells nothing (constant maps); the second carries the match.
        let flat = Array4::from_elem((1, 16, 24, 32), 1.0);
        let (a, b) = (NormalizedMap::new(flat.view()), NormalizedMap::new(flat.view()));
        let (a2, b2) = (NormalizedMap::new(f.view()), NormalizedMap::new(mirrored.view()));
        let field =
            matcher().run((&a, &a2), (&b, &b2), Nnf::identity((24, 32), (24, 32)), &Interrupt::default()).unwrap();
        // A mirrored 3×3 patch meets its twin in one column, and so it does one or two
        // columns either side (in the neighbouring column): those distances tie, the rows do not.
        let near = (0..24 * 32).filter(|i| {
            let (y, x) = (i / 32, i % 32);
            let (my, mx) = field.get(y, x);
            my == y && mx.abs_diff(31 - x) <= 2
        });
        let share = near.count() as f64 / (24 * 32) as f64;
        assert!(share > 0.97, "{share}");
    }

    #[test]
    fn votes_copy_along_the_field_and_upsampling_keeps_offsets() {
        let source = noise(2, 6, 8, 9);
        // A 1-px patch vote is a plain lookup; the identity field gives the source back.
        let id = Nnf::identity((6, 8), (6, 8));
        assert_eq!(id.vote(source.view(), 1).unwrap(), source);
        let near = |a: &Array4<f32>, b: &Array4<f32>| a.iter().zip(b).all(|(u, v)| (u - v).abs() < 1e-6);
        assert!(near(&id.vote(source.view(), 3).unwrap(), &source));
        let shifted = Nnf::from_matches((4, 4), (6, 8), &(0..16).map(|i| (i / 4 + 2, i % 4 + 3)).collect::<Vec<_>>());
        let voted = shifted.unwrap().vote(source.view(), 3).unwrap();
        assert!(near(&voted, &source.slice(ndarray::s![.., .., 2..6, 3..7]).to_owned()));
        // A shift of (1, 2) at the coarse level is a shift of (2, 4) at twice the size.
        let coarse =
            Nnf::from_matches((4, 4), (6, 6), &(0..16).map(|i| (i / 4 + 1, i % 4 + 2)).collect::<Vec<_>>()).unwrap();
        let fine = coarse.upsample((8, 8), (12, 12));
        assert_eq!(fine.get(3, 5), (5, 9));
        assert_eq!(fine.get(7, 7), (9, 11));
        assert!(Nnf::from_matches((2, 2), (2, 2), &[(0, 0); 3]).is_err());
        let e = PatchMatch { patch: 4, ..matcher() }.run(
            (&NormalizedMap::new(source.view()), &NormalizedMap::new(source.view())),
            (&NormalizedMap::new(source.view()), &NormalizedMap::new(source.view())),
            id.clone(),
            &Interrupt::default(),
        );
        assert!(e.is_err());
        // A tripped switch stops it, at its first pass.
        let stop = Interrupt::default();
        stop.interrupt();
        let map = NormalizedMap::new(source.view());
        assert!(matches!(matcher().run((&map, &map), (&map, &map), id, &stop), Err(Error::Interrupted)));
    }
}
