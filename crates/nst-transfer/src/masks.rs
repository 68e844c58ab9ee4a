//! Spatial control: which style goes where ([`Masks::styles`], or a colour label map), where
//! in each painting its style is taken from ([`Masks::sources`]), and regions that stay the
//! photo ([`Masks::keep`]).
//!
//! Masks are greyscale images of the photo's shape, resized to each stage's size. Per pixel,
//! the style masks are shares: where they sum above 1 they are scaled down to 1, where below,
//! the rest of the pixel is unstyled. Kept pixels (keep ≥ ½) take no style, are held at the
//! photo's values by the optimizer's bounds, and are the photo's pixels in the result
//! (blended into the result over `feather` pixels outside).

use crate::words::count;
use crate::{Error, images};
use image::{ImageBuffer, Luma, Rgb, Rgb32FImage, RgbImage};
use ndarray::{Array1, Array2, Array4, ArrayView2};
use nst_features::{Guides, Layer, MaskMode};
use nst_optim::Bounds;

/// A greyscale mask, values in [0, 1].
pub type Mask = ImageBuffer<Luma<f32>, Vec<f32>>;

/// How far (per channel, of 255) a label map's colour may be from a listed one: JPEG noise.
pub const LABEL_TOLERANCE: u8 = 24;

/// The share of a label map's pixels that may be unlike every listed colour (JPEG's
/// blends along edges) before the map is refused as holding a colour the labels lack.
pub const STRAY_SHARE: f64 = 0.02;

/// The masks of a request. The default has none: every style everywhere.
#[derive(Clone, Debug, Default)]
pub struct Masks {
    /// One per style image, in the request's order: how much of that style goes where.
    /// Empty: the styles blend over the whole image.
    pub styles: Vec<Mask>,
    /// One per style image when given: where in that painting its style is taken from
    /// (`None`: all of it).
    pub sources: Vec<Option<Mask>>,
    /// Where the photo stays as it is.
    pub keep: Option<Mask>,
    /// How the masks are carried to the deeper layers.
    pub mode: MaskMode,
    /// Pixels over which a kept region blends into the result outside its edge (0: a hard edge).
    pub feather: u32,
}

/// What a colour of a label map stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// The style image of this index (0-based).
    Style(usize),
    /// The photo, kept.
    Keep,
}

/// The masks at one stage's size, as the engine uses them.
pub(crate) struct StageMasks {
    /// Per style (all of them, or none), the shares after the keep region is taken out.
    pub styles: Vec<Array2<f32>>,
    /// 1 where the photo is kept.
    pub keep: Option<Array2<bool>>,
}

impl Masks {
    /// Whether no mask is given, nor a feather (refused without a keep mask).
    pub fn is_empty(&self) -> bool {
        self.styles.is_empty() && self.keep.is_none() && self.sources.iter().all(Option::is_none) && self.feather == 0
    }

    /// How many guided style regions a run has: one per style with style masks, one (all
    /// but the kept pixels) with a keep mask alone, 0 without masks.
    pub fn regions(&self) -> usize {
        if !self.styles.is_empty() { self.styles.len() } else { usize::from(self.keep.is_some()) }
    }

    /// A mask from an image: its luminance.
    pub fn from_image(img: &Rgb32FImage) -> Mask {
        Mask::from_fn(img.width(), img.height(), |x, y| {
            let [r, g, b] = img.get_pixel(x, y).0;
            Luma([(0.2126 * r + 0.7152 * g + 0.0722 * b).clamp(0.0, 1.0)])
        })
    }

    /// The style masks and keep mask a colour label map stands for: each pixel takes the
    /// listed colour nearest to its own. Colours more than [`LABEL_TOLERANCE`] (per channel)
    /// from every listed one are JPEG's blends at edges when few ([`STRAY_SHARE`] of the
    /// map at most), else a colour the labels lack (an error naming it). Every one of
    /// `styles` style images must have a colour.
    pub fn from_labels(map: &RgbImage, labels: &[(Rgb<u8>, Label)], styles: usize) -> Result<Self, Error> {
        let bad = |reason: String| Error::setting("labels", reason);
        if let Some((_, Label::Style(k))) = labels.iter().find(|(_, l)| matches!(l, Label::Style(k) if *k >= styles)) {
            return Err(bad(format!("name style {}, but there are {}", k + 1, count(styles, "style image"))));
        }
        if labels.is_empty() {
            return Err(bad("list no colour".into()));
        }
        if let Some(k) = (0..styles).find(|k| !labels.iter().any(|(_, l)| *l == Label::Style(*k))) {
            return Err(bad(format!("give style {} no colour", k + 1)));
        }
        let close = |a: &Rgb<u8>, b: &Rgb<u8>| (0..3).all(|i| a.0[i].abs_diff(b.0[i]) <= 2 * LABEL_TOLERANCE);
        for (i, (a, _)) in labels.iter().enumerate() {
            if let Some((b, _)) = labels[i + 1..].iter().find(|(b, _)| close(a, b)) {
                return Err(bad(format!(
                    "list {} and {}, too close to tell apart in a map (give colours more than {} apart)",
                    hex(*a),
                    hex(*b),
                    2 * LABEL_TOLERANCE
                )));
            }
        }
        let (w, h) = map.dimensions();
        let mut out = Masks {
            styles: vec![Mask::new(w, h); styles],
            keep: labels.iter().any(|(_, l)| *l == Label::Keep).then(|| Mask::new(w, h)),
            ..Default::default()
        };
        // Pixels unlike every listed colour: how many, and the first.
        let (mut strays, mut first) = (0u64, None);
        for (x, y, p) in map.enumerate_pixels() {
            let distance = |c: &Rgb<u8>| (0..3).map(|i| p.0[i].abs_diff(c.0[i])).max().unwrap_or(0);
            let (colour, label) = labels.iter().min_by_key(|(c, _)| distance(c)).expect("labels are not empty");
            if distance(colour) > LABEL_TOLERANCE {
                strays += 1;
                first = first.or(Some((x, y, *p)));
            }
            let mask = match label {
                Label::Style(k) => &mut out.styles[*k],
                Label::Keep => out.keep.as_mut().expect("a keep mask when keep is labelled"),
            };
            mask.put_pixel(x, y, Luma([1.0]));
        }
        if let Some((x, y, p)) = first.filter(|_| strays as f64 > STRAY_SHARE * f64::from(w) * f64::from(h)) {
            return Err(bad(format!(
                "lack the label map's colour {} ({strays} pixels unlike any listed colour, the first at ({x}, {y})); listed: {}",
                hex(p),
                labels.iter().map(|(c, _)| hex(*c)).collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(k) = out.styles.iter().position(|m| m.pixels().all(|p| p.0[0] == 0.0)) {
            let colour = labels.iter().find(|(_, l)| *l == Label::Style(k)).map(|(c, _)| hex(*c)).unwrap_or_default();
            return Err(bad(format!("give style {} the colour {colour}, which the label map does not hold", k + 1)));
        }
        Ok(out)
    }

    /// Checks the masks against the request: one style mask per style (or none), sources
    /// likewise, each mask of the photo's shape (within a pixel of rounding).
    pub fn check(&self, photo: (u32, u32), styles: &[(u32, u32)]) -> Result<(), Error> {
        let one_per_style = |name, n: usize| {
            if n != 0 && n != styles.len() {
                return Err(Error::setting(
                    name,
                    format!("{} for {}", count(n, "mask"), count(styles.len(), "style image")),
                ));
            }
            Ok(())
        };
        one_per_style("style masks", self.styles.len())?;
        one_per_style("style source masks", self.sources.len())?;
        let shape = |name: &'static str, what: String, mask: &Mask, of: (u32, u32)| {
            if !same_shape(mask.dimensions(), of) {
                return Err(Error::setting(
                    name,
                    format!(
                        "{what} is {}×{} but its image is {}×{}: a mask needs its image's shape",
                        mask.width(),
                        mask.height(),
                        of.0,
                        of.1
                    ),
                ));
            }
            Ok(())
        };
        let black = |m: &Mask| m.pixels().all(|p| p.0[0] == 0.0);
        for (i, m) in self.styles.iter().enumerate() {
            shape("style masks", format!("mask {}", i + 1), m, photo)?;
            if black(m) {
                return Err(Error::setting(
                    "style masks",
                    format!("mask {} is black: style {} would go nowhere", i + 1, i + 1),
                ));
            }
        }
        for (i, (m, &size)) in self.sources.iter().zip(styles).enumerate() {
            if let Some(m) = m {
                shape("style source masks", format!("source mask {}", i + 1), m, size)?;
                if black(m) {
                    return Err(Error::setting(
                        "style source masks",
                        format!("source mask {} is black: there is no style to take from painting {}", i + 1, i + 1),
                    ));
                }
            }
        }
        if self.feather > 0 && self.keep.is_none() {
            return Err(Error::setting("feather", "blends kept regions: give a keep mask"));
        }
        if let Some(keep) = &self.keep {
            shape("keep", "the mask".into(), keep, photo)?;
        }
        Ok(())
    }

    /// Where the photo is kept at `width × height`.
    pub(crate) fn keep_at(&self, width: u32, height: u32) -> Option<Array2<bool>> {
        self.keep.as_ref().map(|k| resize(k, width, height).mapv(|v| v >= 0.5))
    }

    /// The masks at a `width × height` stage.
    pub(crate) fn at(&self, width: u32, height: u32) -> StageMasks {
        let keep = self.keep_at(width, height);
        let mut styles: Vec<Array2<f32>> = self.styles.iter().map(|m| resize(m, width, height)).collect();
        if let Some(first) = styles.first() {
            let mut total = Array2::<f32>::zeros(first.raw_dim());
            for m in &styles {
                total += m;
            }
            for m in &mut styles {
                ndarray::Zip::from(m).and(&total).for_each(|v, &t| *v /= t.max(1.0));
            }
        }
        if let Some(keep) = &keep {
            for m in &mut styles {
                ndarray::Zip::from(m).and(keep).for_each(|v, &k| *v *= f32::from(u8::from(!k)));
            }
        }
        StageMasks { styles, keep }
    }

    /// The source guides of style `k` at its `width × height` tensor, if it has a source mask.
    pub(crate) fn source(&self, k: usize, layers: &[Layer], (width, height): (u32, u32)) -> Option<Guides> {
        let m = self.sources.get(k)?.as_ref()?;
        Some(Guides::new(&[resize(m, width, height).view()], layers, self.mode))
    }
}

impl StageMasks {
    /// The guides at `layers` of the regions (one per style, or the whole image less the
    /// kept pixels); `None` without style masks or kept pixels.
    pub fn guides(&self, layers: &[Layer], mode: MaskMode) -> Option<Guides> {
        if !self.styles.is_empty() {
            let views: Vec<ArrayView2<f32>> = self.styles.iter().map(|m| m.view()).collect();
            return Some(Guides::new(&views, layers, mode));
        }
        let rest = self.keep.as_ref()?.mapv(|k| f32::from(u8::from(!k)));
        Some(Guides::new(&[rest.view()], layers, mode))
    }

    /// `base` with the kept pixels fixed at `photo`'s values (1, 3, H, W), and `x` set to
    /// them there.
    pub fn hold(&self, base: &Bounds<f32>, photo: &Array4<f32>, x: &mut Array4<f32>) -> Bounds<f32> {
        let Some(keep) = &self.keep else { return base.clone() };
        let n = photo.len();
        let (mut lower, mut upper): (Array1<f32>, Array1<f32>) =
            ((0..n).map(|i| base.get(i).0).collect(), (0..n).map(|i| base.get(i).1).collect());
        let plane = keep.len();
        for (i, (&p, v)) in photo.iter().zip(x.iter_mut()).enumerate() {
            if keep.as_slice().expect("standard layout")[i % plane] {
                (lower[i], upper[i], *v) = (p, p, p);
            }
        }
        Bounds::PerVariable { lower, upper }
    }
}

/// The photo's pixels where kept, blended into `result` over `feather` pixels outside the
/// kept region (a Gaussian of the kept region's edge); both of the output's size.
pub(crate) fn composite(result: &RgbImage, photo: &RgbImage, keep: &Array2<bool>, feather: u32) -> RgbImage {
    let hard = Mask::from_fn(result.width(), result.height(), |x, y| {
        Luma([f32::from(u8::from(keep[[y as usize, x as usize]]))])
    });
    let soft = if feather > 0 { image::imageops::blur(&hard, feather as f32 / 2.0) } else { hard.clone() };
    RgbImage::from_fn(result.width(), result.height(), |x, y| {
        if keep[[y as usize, x as usize]] {
            return *photo.get_pixel(x, y);
        }
        let a = (2.0 * soft.get_pixel(x, y).0[0]).min(1.0);
        let (r, p) = (result.get_pixel(x, y).0, photo.get_pixel(x, y).0);
        Rgb([0, 1, 2].map(|c| (f32::from(p[c]) * a + f32::from(r[c]) * (1.0 - a)).round() as u8))
    })
}

/// A mask resized to `width × height` (bilinear: shares stay in [0, 1]) as (H, W).
fn resize(m: &Mask, width: u32, height: u32) -> Array2<f32> {
    let resized = if m.dimensions() == (width, height) {
        m.clone()
    } else {
        image::imageops::resize(m, width, height, image::imageops::FilterType::Triangle)
    };
    Array2::from_shape_fn((height as usize, width as usize), |(y, x)| {
        resized.get_pixel(x as u32, y as u32).0[0].clamp(0.0, 1.0)
    })
}

/// Whether two sizes are one image's shape (aspect within 1 %).
pub fn same_shape(a: (u32, u32), b: (u32, u32)) -> bool {
    let ratio = |(w, h): (u32, u32)| f64::from(w) / f64::from(h);
    (ratio(a) / ratio(b) - 1.0).abs() <= 0.01
}

/// `#rrggbb`.
pub fn hex(c: Rgb<u8>) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0[0], c.0[1], c.0[2])
}

/// Parses `#rrggbb` (or `rrggbb`).
pub fn parse_hex(s: &str) -> Option<Rgb<u8>> {
    let s = s.trim().trim_start_matches('#');
    if s.len() != 6 || !s.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).ok();
    Some(Rgb([byte(0)?, byte(2)?, byte(4)?]))
}

/// Loads a mask file (its luminance).
pub fn load(path: &std::path::Path) -> Result<Mask, Error> {
    Ok(Masks::from_image(&images::load(path, images::Pixels::Data)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_maps_survive_jpeg_noise_and_unknown_colours_are_named() {
        let map = RgbImage::from_fn(8, 4, |x, _| if x < 4 { Rgb([10, 0, 250]) } else { Rgb([255, 240, 255]) });
        let labels = [(Rgb([0, 0, 255]), Label::Style(0)), (Rgb([255, 255, 255]), Label::Keep)];
        let m = Masks::from_labels(&map, &labels, 1).unwrap();
        assert_eq!(m.styles[0].get_pixel(1, 1).0, [1.0]);
        assert_eq!(m.styles[0].get_pixel(5, 1).0, [0.0]);
        assert_eq!(m.keep.as_ref().unwrap().get_pixel(5, 1).0, [1.0]);
        // One odd pixel of 32 (3 %) is a colour the labels lack; one of 6,400 is an edge.
        let mut odd = map.clone();
        odd.put_pixel(2, 3, Rgb([0, 200, 0]));
        assert!(Masks::from_labels(&odd, &labels, 1).is_err());
        let big = RgbImage::from_fn(80, 80, |x, y| if (x, y) == (5, 5) { Rgb([0, 200, 0]) } else { Rgb([0, 0, 255]) });
        assert!(Masks::from_labels(&big, &labels, 1).is_ok());
        let e = Masks::from_labels(&odd, &labels, 1).unwrap_err().to_string();
        assert_eq!(
            e,
            "labels: lack the label map's colour #00c800 (1 pixels unlike any listed colour, the first at (2, 3)); listed: #0000ff, #ffffff"
        );
        let e = Masks::from_labels(&map, &labels, 2).unwrap_err().to_string();
        assert_eq!(e, "labels: give style 2 no colour");
        let twice = [(Rgb([255, 0, 0]), Label::Style(0)), (Rgb([250, 10, 0]), Label::Style(1))];
        let e = Masks::from_labels(&map, &twice, 2).unwrap_err().to_string();
        assert!(e.starts_with("labels: list #ff0000 and #fa0a00, too close to tell apart"), "{e}");
        let absent = [
            (Rgb([0, 0, 255]), Label::Style(0)),
            (Rgb([255, 255, 255]), Label::Style(1)),
            (Rgb([0, 255, 0]), Label::Keep),
        ];
        let mut blue_white = map.clone();
        blue_white.put_pixel(0, 0, Rgb([0, 0, 255]));
        assert!(Masks::from_labels(&blue_white, &absent, 2).is_ok());
        let only_blue = RgbImage::from_pixel(8, 4, Rgb([0, 0, 255]));
        let e = Masks::from_labels(&only_blue, &absent, 2).unwrap_err().to_string();
        assert_eq!(e, "labels: give style 2 the colour #ffffff, which the label map does not hold");
        assert_eq!(parse_hex("#00FF7f"), Some(Rgb([0, 255, 127])));
        assert_eq!(parse_hex("#00FF7"), None);
    }

    #[test]
    fn shares_above_one_are_scaled_and_kept_pixels_take_no_style() {
        let full = Mask::from_pixel(4, 2, Luma([1.0]));
        let half = Mask::from_pixel(4, 2, Luma([0.5]));
        let keep = Mask::from_fn(4, 2, |x, _| Luma([if x == 0 { 1.0 } else { 0.0 }]));
        let m = Masks { styles: vec![full, half.clone()], keep: Some(keep), ..Default::default() };
        let stage = m.at(4, 2);
        assert_eq!(stage.styles[0].row(0).to_vec(), [0.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(stage.styles[1].row(0).to_vec(), [0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
        let alone = Masks { styles: vec![half], ..Default::default() }.at(4, 2);
        assert_eq!(alone.styles[0][[1, 3]], 0.5);
    }

    #[test]
    fn kept_pixels_are_fixed_by_the_bounds() {
        let keep = Mask::from_fn(3, 2, |x, y| Luma([if (x, y) == (1, 0) { 1.0 } else { 0.0 }]));
        let stage = Masks { keep: Some(keep), ..Default::default() }.at(3, 2);
        let photo = Array4::from_shape_fn((1, 3, 2, 3), |(_, c, y, x)| (c * 6 + y * 3 + x) as f32 / 20.0);
        let mut x = Array4::from_elem((1, 3, 2, 3), 0.9);
        let b = stage.hold(&Bounds::Uniform { lower: 0.0, upper: 1.0 }, &photo, &mut x);
        for c in 0..3 {
            let i = c * 6 + 1;
            assert_eq!(b.get(i), (photo[[0, c, 0, 1]], photo[[0, c, 0, 1]]));
            assert_eq!(x[[0, c, 0, 1]], photo[[0, c, 0, 1]]);
            assert_eq!(b.get(c * 6), (0.0, 1.0));
        }
    }
}
