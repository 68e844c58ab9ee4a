//! Style swap (Chen & Schmidt, *Fast Patch-based Style Transfer of Arbitrary Style*, 2016):
//! every k×k patch of the content features is replaced by the style patch it
//! correlates with best (normalized cross-correlation), and overlapping patches
//! are averaged.
//!
//! The matching is a matrix product of content patches against the normalized
//! style patches, in tiles of content positions with a running argmax, so the
//! score map (style patches × content positions) is never held whole.

use crate::patchmatch::Nnf;
use crate::{Error, Interrupt};
use ndarray::{Array2, Array4, ArrayView2, ArrayView4, Axis, s};
use rayon::prelude::*;

/// Bytes of scores one tile may hold.
const TILE_BYTES: usize = 64 << 20;

/// The k×k patches of one or more style feature maps (one bank from all of them).
pub struct PatchBank {
    channels: usize,
    k: usize,
    stride: usize,
    /// One patch per row, flattened as (channel, dy, dx).
    patches: Array2<f32>,
    /// The same rows scaled to unit L2 norm (zero rows stay zero).
    normalized: Array2<f32>,
    /// Each patch's top-left corner in its style's map.
    origins: Vec<(usize, usize)>,
    /// Each style's feature map size, (height, width).
    sizes: Vec<(usize, usize)>,
}

/// Top-left corners `0, stride, …` plus the last one, so every row/column is covered.
fn corners(len: usize, k: usize, stride: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..=len - k).step_by(stride).collect();
    if v.last() != Some(&(len - k)) {
        v.push(len - k);
    }
    v
}

/// All `(y, x)` corners of a `h × w` map.
fn positions(h: usize, w: usize, k: usize, stride: usize) -> Vec<(usize, usize)> {
    let xs = corners(w, k, stride);
    corners(h, k, stride).into_iter().flat_map(|y| xs.iter().map(move |&x| (y, x))).collect()
}

fn check(what: &str, f: &ArrayView4<f32>, k: usize) -> Result<(), Error> {
    let s = f.shape();
    if s[0] != 1 || s[2] < k || s[3] < k {
        return Err(Error::InvalidSetting(format!(
            "{what} features of {}×{} are smaller than {k}×{k} patches",
            s[3], s[2]
        )));
    }
    Ok(())
}

impl PatchBank {
    /// Cuts every `k × k` patch (corners `stride` apart) of the style feature maps (1, C, H, W).
    pub fn new(styles: &[ArrayView4<f32>], k: usize, stride: usize) -> Result<Self, Error> {
        Self::within(styles, &[], k, stride)
    }

    /// [`PatchBank::new`] with only the patches whose centre cell is inside `masks[i]` (a map
    /// of style i's size, true inside; all of style i when it has none).
    pub fn within(
        styles: &[ArrayView4<f32>],
        masks: &[Option<ArrayView2<bool>>],
        k: usize,
        stride: usize,
    ) -> Result<Self, Error> {
        if k == 0 || stride == 0 || stride > k {
            return Err(Error::InvalidSetting(format!("patch size {k} and stride {stride}: need 1 ≤ stride ≤ size")));
        }
        let channels = styles.first().map_or(0, |f| f.shape()[1]);
        let mut rows = Vec::new();
        let mut origins = Vec::new();
        let mut sizes = Vec::new();
        for (i, f) in styles.iter().enumerate() {
            check("style", f, k)?;
            let mask = masks.get(i).copied().flatten();
            if mask.is_some_and(|m| m.dim() != (f.shape()[2], f.shape()[3])) {
                return Err(Error::Shape {
                    what: format!("patch mask of style {}", i + 1),
                    expected: vec![f.shape()[2], f.shape()[3]],
                    actual: mask.map_or(vec![], |m| m.shape().to_vec()),
                });
            }
            if f.shape()[1] != channels {
                return Err(Error::Shape {
                    what: "style features".into(),
                    expected: vec![1, channels],
                    actual: f.shape().to_vec(),
                });
            }
            for (y, x) in positions(f.shape()[2], f.shape()[3], k, stride) {
                if mask.is_some_and(|m| !m[[y + k / 2, x + k / 2]]) {
                    continue;
                }
                rows.push(f.slice(s![0, .., y..y + k, x..x + k]).iter().copied().collect::<Vec<f32>>());
                origins.push((y, x));
            }
            sizes.push((f.shape()[2], f.shape()[3]));
        }
        if rows.is_empty() {
            return Err(Error::InvalidSetting(format!("the masks leave no {k}×{k} style patch")));
        }
        let d = channels * k * k;
        let patches = Array2::from_shape_vec((rows.len(), d), rows.concat()).map_err(|e| Error::Shape {
            what: format!("style patches ({e})"),
            expected: vec![],
            actual: vec![],
        })?;
        let mut normalized = patches.clone();
        for mut row in normalized.rows_mut() {
            let norm = row.dot(&row).sqrt();
            if norm > 0.0 {
                row /= norm;
            }
        }
        Ok(Self { channels, k, stride, patches, normalized, origins, sizes })
    }

    /// Number of patches.
    pub fn len(&self) -> usize {
        self.patches.nrows()
    }

    /// `true` when there are no patches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// For each content patch (corners as in [`PatchBank::new`], row-major), the index
    /// of the style patch of highest normalized cross-correlation (the first on ties); stops,
    /// [`Error::Interrupted`], at the block of patches under way when `interrupt` is tripped.
    pub fn best_matches(&self, content: ArrayView4<f32>, interrupt: &Interrupt) -> Result<Vec<usize>, Error> {
        check("content", &content, self.k)?;
        if content.shape()[1] != self.channels {
            return Err(Error::Shape {
                what: "content features".into(),
                expected: vec![1, self.channels],
                actual: content.shape().to_vec(),
            });
        }
        let pos = positions(content.shape()[2], content.shape()[3], self.k, self.stride);
        let tile = (TILE_BYTES / 4 / self.len().max(1)).clamp(1, 4096);
        let d = self.channels * self.k * self.k;
        let c = content.index_axis(Axis(0), 0);
        let out: Vec<Vec<usize>> = pos
            .par_chunks(tile)
            .map(|chunk| {
                interrupt.stop_point()?;
                let mut q = Array2::<f32>::zeros((chunk.len(), d));
                for (mut row, &(y, x)) in q.rows_mut().into_iter().zip(chunk) {
                    for (dst, &src) in row.iter_mut().zip(c.slice(s![.., y..y + self.k, x..x + self.k]).iter()) {
                        *dst = src;
                    }
                }
                let scores = q.dot(&self.normalized.t());
                Ok(scores
                    .rows()
                    .into_iter()
                    .map(|r| {
                        r.iter()
                            .enumerate()
                            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
                            .0
                    })
                    .collect())
            })
            .collect::<Result<_, Error>>()?;
        Ok(out.concat())
    }

    /// The swapped features: each content patch replaced by its best style patch
    /// (unnormalized), overlaps averaged. Same shape as `content`.
    pub fn swap(&self, content: ArrayView4<f32>) -> Result<Array4<f32>, Error> {
        let best = self.best_matches(content, &Interrupt::default())?;
        Ok(self.assemble((content.shape()[2], content.shape()[3]), &best))
    }

    /// The swapped features of a content map of `(h, w)` whose best matches are `best`.
    pub fn assemble(&self, (h, w): (usize, usize), best: &[usize]) -> Array4<f32> {
        let k = self.k;
        let mut out = Array4::<f32>::zeros((1, self.channels, h, w));
        let mut count = Array2::<f32>::zeros((h, w));
        for (&(y, x), &b) in positions(h, w, k, self.stride).iter().zip(best) {
            let patch = self.patches.row(b);
            let patch = patch.to_shape((self.channels, k, k)).expect("patch rows are C·k·k");
            let mut dst = out.slice_mut(s![0, .., y..y + k, x..x + k]);
            dst += &patch;
            count.slice_mut(s![y..y + k, x..x + k]).mapv_inplace(|n| n + 1.0);
        }
        for mut plane in out.index_axis_mut(Axis(0), 0).outer_iter_mut() {
            plane /= &count;
        }
        out
    }

    /// The matches as a field from the content map's positions into the style's map, each
    /// position taking the match of the patch whose centre is nearest it; `None` when the
    /// bank holds several styles (a field points into one map).
    pub fn field(&self, (h, w): (usize, usize), best: &[usize]) -> Option<Nnf> {
        let [to] = self.sizes[..] else { return None };
        let k = self.k;
        let mut nearest = vec![(usize::MAX, (0, 0)); h * w];
        for (&(y, x), &b) in positions(h, w, k, self.stride).iter().zip(best) {
            let (sy, sx) = self.origins[b];
            for dy in 0..k {
                for dx in 0..k {
                    // Twice the distance to the centre, in each axis: 0 at the centre.
                    let d = (2 * dy).abs_diff(k - 1) + (2 * dx).abs_diff(k - 1);
                    let cell = &mut nearest[(y + dy) * w + x + dx];
                    if d < cell.0 {
                        *cell = (d, (sy + dy, sx + dx));
                    }
                }
            }
        }
        let matches: Vec<(usize, usize)> = nearest.into_iter().map(|(_, m)| m).collect();
        Nnf::from_matches((h, w), to, &matches).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    #[test]
    fn a_mask_keeps_only_the_patches_centred_inside_it() {
        let f = random((1, 4, 9, 12), 3);
        let left = Array2::from_shape_fn((9, 12), |(_, x)| x < 5);
        let all = PatchBank::new(&[f.view()], 3, 1).unwrap();
        let some = PatchBank::within(&[f.view()], &[Some(left.view())], 3, 1).unwrap();
        // Corners x = 0..=9, centres x + 1 < 5: x ≤ 3, so 4 of 10 columns, all 7 rows.
        assert_eq!((all.len(), some.len()), (70, 28));
        assert!(some.origins.iter().all(|&(_, x)| x + 1 < 5));
        let best = some.best_matches(f.view(), &Interrupt::default()).unwrap();
        assert!(best.iter().all(|&b| some.origins[b].1 + 1 < 5));
        let none = Array2::from_elem((9, 12), false);
        assert!(PatchBank::within(&[f.view()], &[Some(none.view())], 3, 1).is_err());
        assert!(PatchBank::within(&[f.view()], &[Some(left.slice(s![.., ..6]))], 3, 1).is_err());
    }

    fn random(shape: (usize, usize, usize, usize), seed: u64) -> Array4<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array4::from_shape_simple_fn(shape, || rng.random_range(-1.0f32..1.0).max(0.0))
    }

    /// The brute-force definition: loops over patches, cross-correlation in f64.
    fn brute_force(
        content: &Array4<f32>,
        styles: &[Array4<f32>],
        k: usize,
        stride: usize,
    ) -> (Vec<usize>, Array4<f32>) {
        let mut bank: Vec<Vec<f64>> = Vec::new();
        for f in styles {
            for (y, x) in positions(f.shape()[2], f.shape()[3], k, stride) {
                let mut p = Vec::new();
                for c in 0..f.shape()[1] {
                    for dy in 0..k {
                        for dx in 0..k {
                            p.push(f64::from(f[[0, c, y + dy, x + dx]]));
                        }
                    }
                }
                bank.push(p);
            }
        }
        let (ch, h, w) = (content.shape()[1], content.shape()[2], content.shape()[3]);
        let mut out = Array4::<f64>::zeros((1, ch, h, w));
        let mut count = Array2::<f64>::zeros((h, w));
        let mut best_all = Vec::new();
        for (y, x) in positions(h, w, k, stride) {
            let (mut best, mut best_v) = (0, f64::NEG_INFINITY);
            for (i, p) in bank.iter().enumerate() {
                let norm = p.iter().map(|v| v * v).sum::<f64>().sqrt();
                let mut dotp = 0.0;
                let mut j = 0;
                for c in 0..ch {
                    for dy in 0..k {
                        for dx in 0..k {
                            dotp += f64::from(content[[0, c, y + dy, x + dx]]) * p[j];
                            j += 1;
                        }
                    }
                }
                let v = if norm > 0.0 { dotp / norm } else { 0.0 };
                if v > best_v {
                    (best, best_v) = (i, v);
                }
            }
            best_all.push(best);
            let mut j = 0;
            for c in 0..ch {
                for dy in 0..k {
                    for dx in 0..k {
                        out[[0, c, y + dy, x + dx]] += bank[best][j];
                        j += 1;
                    }
                }
            }
            for dy in 0..k {
                for dx in 0..k {
                    count[[y + dy, x + dx]] += 1.0;
                }
            }
        }
        for c in 0..ch {
            let mut plane = out.slice_mut(s![0, c, .., ..]);
            plane /= &count;
        }
        (best_all, out.mapv(|v| v as f32))
    }

    #[test]
    fn matches_brute_force_on_random_tensors() {
        for (k, stride, seed) in [(3, 1, 1), (2, 2, 2), (3, 2, 3), (1, 1, 4)] {
            let content = random((1, 5, 9, 11), seed);
            let styles = [random((1, 5, 8, 7), seed + 10), random((1, 5, 6, 10), seed + 20)];
            let views: Vec<_> = styles.iter().map(|s| s.view()).collect();
            let bank = PatchBank::new(&views, k, stride).unwrap();
            let (best, expected) = brute_force(&content, &styles, k, stride);
            assert_eq!(
                bank.best_matches(content.view(), &Interrupt::default()).unwrap(),
                best,
                "k {k} stride {stride}"
            );
            let got = bank.swap(content.view()).unwrap();
            for (a, b) in got.iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "k {k} stride {stride}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn swapping_a_map_with_itself_returns_it() {
        let f = random((1, 6, 10, 12), 9).mapv(|v| v + 0.1);
        let bank = PatchBank::new(&[f.view()], 1, 1).unwrap();
        assert_eq!(bank.swap(f.view()).unwrap(), f, "exact for k = 1");
        let bank = PatchBank::new(&[f.view()], 3, 1).unwrap();
        let s = bank.swap(f.view()).unwrap();
        for (a, b) in s.iter().zip(&f) {
            assert!((a - b).abs() <= 1e-6, "k = 3 up to the overlap averaging: {a} vs {b}");
        }
    }

    #[test]
    fn the_field_points_where_the_best_patches_were_cut() {
        let style = random((1, 6, 10, 12), 4).mapv(|v| v + 0.1);
        let content = style.slice(s![.., .., 2..8, 3..10]).to_owned();
        let bank = PatchBank::new(&[style.view()], 3, 1).unwrap();
        let best = bank.best_matches(content.view(), &Interrupt::default()).unwrap();
        let field = bank.field((6, 7), &best).unwrap();
        for (y, x) in positions(6, 7, 1, 1) {
            assert_eq!(field.get(y, x), (y + 2, x + 3));
        }
        let two = PatchBank::new(&[style.view(), style.view()], 3, 1).unwrap();
        assert!(two.field((6, 7), &best).is_none(), "a field points into one style");
    }

    #[test]
    fn refuses_bad_patch_settings_and_small_maps() {
        let f = random((1, 2, 4, 4), 1);
        assert!(PatchBank::new(&[f.view()], 3, 4).is_err());
        assert!(PatchBank::new(&[f.view()], 0, 1).is_err());
        assert!(PatchBank::new(&[f.view()], 5, 1).is_err());
        let bank = PatchBank::new(&[f.view()], 3, 1).unwrap();
        assert!(bank.swap(random((1, 2, 2, 8), 2).view()).is_err());
        assert!(bank.swap(random((1, 3, 8, 8), 2).view()).is_err());
    }

    #[test]
    fn a_tripped_switch_stops_the_matches() {
        let f = random((1, 2, 8, 8), 1);
        let bank = PatchBank::new(&[f.view()], 3, 1).unwrap();
        let stop = Interrupt::default();
        stop.interrupt();
        assert!(matches!(bank.best_matches(f.view(), &stop), Err(Error::Interrupted)));
        stop.reset();
        assert_eq!(bank.best_matches(f.view(), &stop).unwrap().len(), 36);
    }
}
