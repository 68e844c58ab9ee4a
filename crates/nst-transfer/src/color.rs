//! Colour control: keeping the content's colours (luminance-only transfer) and
//! recolouring the style images to the content's colour statistics.

use crate::Error;
use ndarray::{Array1, Array2, Array4, ArrayView4, Axis};
use ndarray_linalg::{Eigh, UPLO};

/// BT.601 luma weights.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// (Y, Cb, Cr) of an RGB pixel in [0, 1] (BT.601, full range, chroma centred on 0).
pub fn ycbcr(rgb: [f32; 3]) -> [f32; 3] {
    let y = LUMA[0] * rgb[0] + LUMA[1] * rgb[1] + LUMA[2] * rgb[2];
    [y, (rgb[2] - y) / 1.772, (rgb[0] - y) / 1.402]
}

fn rgb(ycc: [f32; 3]) -> [f32; 3] {
    let [y, cb, cr] = ycc;
    let r = y + 1.402 * cr;
    let b = y + 1.772 * cb;
    let g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1];
    [r, g, b]
}

/// The luminances at which `(Cb, Cr)` stays inside the RGB cube: each channel is
/// `Y + k·chroma`, so each gives an interval of Y; their intersection.
fn luma_range(cb: f32, cr: f32) -> (f32, f32) {
    let offsets = [1.402 * cr, -(LUMA[0] * 1.402 * cr + LUMA[2] * 1.772 * cb) / LUMA[1], 1.772 * cb];
    offsets.iter().fold((0.0f32, 1.0f32), |(lo, hi), k| (lo.max(-k), hi.min(1.0 - k)))
}

/// The stylized image's luminance with the content's chroma (both (1, 3, H, W)).
/// Where that pair leaves the RGB gamut, the luminance is moved to the nearest value
/// that keeps the chroma (the content pixel itself shows one exists), not clipped per channel.
pub fn original_colors(stylized: ArrayView4<f32>, content: ArrayView4<f32>) -> Array4<f32> {
    let (h, w) = (stylized.shape()[2], stylized.shape()[3]);
    let mut out = Array4::zeros(stylized.raw_dim());
    for y in 0..h {
        for x in 0..w {
            let px = |t: &ArrayView4<f32>| [0, 1, 2].map(|c| t[[0, c, y, x]].clamp(0.0, 1.0));
            let (s, c) = (ycbcr(px(&stylized)), ycbcr(px(&content)));
            let (lo, hi) = luma_range(c[1], c[2]);
            let v = rgb([s[0].clamp(lo.min(c[0]), hi.max(c[0])), c[1], c[2]]);
            for ch in 0..3 {
                out[[0, ch, y, x]] = v[ch].clamp(0.0, 1.0);
            }
        }
    }
    out
}

/// Mean and covariance of the pixels of a (1, 3, H, W) image.
fn moments(img: ArrayView4<f32>) -> (Array1<f64>, Array2<f64>) {
    let px =
        img.index_axis(Axis(0), 0).to_shape((3, img.shape()[2] * img.shape()[3])).expect("3 planes").mapv(f64::from);
    let mean = px.mean_axis(Axis(1)).expect("non-empty");
    let centred = &px - &mean.view().insert_axis(Axis(1));
    let cov = centred.dot(&centred.t()) / px.ncols() as f64;
    (mean, cov)
}

/// `Σ^{p}` of a symmetric positive semi-definite 3×3 matrix (eigenvalues floored at 1e-8).
fn sym_power(m: &Array2<f64>, p: f64) -> Result<Array2<f64>, Error> {
    let (vals, vecs) = m.eigh(UPLO::Lower).map_err(|e| {
        Error::setting("color_transfer", format!("failed: the colour covariance has no eigendecomposition ({e})"))
    })?;
    let d = Array2::from_diag(&vals.mapv(|v| v.max(1e-8).powf(p)));
    Ok(vecs.dot(&d).dot(&vecs.t()))
}

/// `style` recoloured so its pixels have the content's mean and covariance:
/// `x' = Σc^{½} Σs^{−½} (x − μs) + μc`, clipped to [0, 1].
pub fn match_colors(style: ArrayView4<f32>, content: ArrayView4<f32>) -> Result<Array4<f32>, Error> {
    let (ms, cs) = moments(style);
    let (mc, cc) = moments(content);
    let a = sym_power(&cc, 0.5)?.dot(&sym_power(&cs, -0.5)?);
    let mut out = style.to_owned();
    let (h, w) = (style.shape()[2], style.shape()[3]);
    for y in 0..h {
        for x in 0..w {
            let v: Array1<f64> = (0..3).map(|c| f64::from(style[[0, c, y, x]]) - ms[c]).collect();
            let t = a.dot(&v) + &mc;
            for c in 0..3 {
                out[[0, c, y, x]] = (t[c] as f32).clamp(0.0, 1.0);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_round_trips() {
        for p in [[0.2, 0.5, 0.9], [1.0, 0.0, 0.3], [0.0, 0.0, 0.0]] {
            let back = rgb(ycbcr(p));
            for c in 0..3 {
                assert!((back[c] - p[c]).abs() < 1e-5, "{p:?} → {back:?}");
            }
        }
    }

    #[test]
    fn original_colors_keep_content_chroma_and_stylized_luma() {
        let content = Array4::from_shape_fn((1, 3, 4, 5), |(_, c, y, x)| 0.2 + 0.1 * c as f32 + 0.05 * (x + y) as f32);
        let stylized = Array4::from_shape_fn((1, 3, 4, 5), |(_, c, y, x)| 0.6 - 0.1 * c as f32 + 0.02 * (x * y) as f32);
        let out = original_colors(stylized.view(), content.view());
        let px = |t: &Array4<f32>, y, x| ycbcr([0, 1, 2].map(|c| t[[0, c, y, x]]));
        for y in 0..4 {
            for x in 0..5 {
                let (o, c, s) = (px(&out, y, x), px(&content, y, x), px(&stylized, y, x));
                assert!((o[0] - s[0]).abs() < 1e-5 && (o[1] - c[1]).abs() < 1e-5 && (o[2] - c[2]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn matched_style_has_the_content_statistics() {
        let content = Array4::from_shape_fn((1, 3, 8, 8), |(_, c, y, x)| 0.3 + 0.04 * ((x * (c + 1) + y) % 7) as f32);
        let style = Array4::from_shape_fn((1, 3, 6, 9), |(_, c, y, x)| 0.5 + 0.03 * ((x + 2 * y * (c + 2)) % 5) as f32);
        let out = match_colors(style.view(), content.view()).unwrap();
        let ((mo, co), (mc, cc)) = (moments(out.view()), moments(content.view()));
        for i in 0..3 {
            assert!((mo[i] - mc[i]).abs() < 1e-4, "mean {mo} vs {mc}");
            for j in 0..3 {
                assert!((co[[i, j]] - cc[[i, j]]).abs() < 1e-4, "cov {co} vs {cc}");
            }
        }
    }
}
