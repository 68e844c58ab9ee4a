//! Images in and out: decoding with a pixel cap and EXIF orientation, conversion
//! to (1, 3, H, W) tensors in [0, 1], and encoding.

use crate::files::{self, Existing};
use anyhow::{Context, Result, bail};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Rgb32FImage, RgbImage};
use ndarray::{Array4, ArrayView4};
use std::io::BufReader;
use std::path::Path;

/// The largest image decoded, in pixels (a decompression-bomb guard: the header is checked first).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Decodes an image file to RGB in [0, 1], upright, alpha composited over white.
pub fn load(path: &Path) -> Result<Rgb32FImage> {
    files::regular_file(path)?;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if reader.format().is_none() {
        bail!("{}: not an image format nst can read (PNG, JPEG, WebP, TIFF, BMP, GIF…)", path.display());
    }
    let mut decoder = reader.into_decoder().with_context(|| format!("{}: cannot decode", path.display()))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        bail!("{}: image has no pixels ({w}×{h})", path.display());
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        bail!("{}: {w}×{h} is larger than the {} megapixel limit", path.display(), MAX_PIXELS / 1_000_000);
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)
        .with_context(|| format!("{}: corrupt or truncated image", path.display()))?;
    img.apply_orientation(orientation);
    Ok(flatten_alpha(img))
}

fn flatten_alpha(img: DynamicImage) -> Rgb32FImage {
    if !img.color().has_alpha() {
        return img.to_rgb32f();
    }
    let rgba = img.to_rgba32f();
    Rgb32FImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        image::Rgb([0, 1, 2].map(|c| p[c] * p[3] + (1.0 - p[3])))
    })
}

/// `(width, height)` with the longest side scaled to `longest` (at least 1 pixel each).
pub fn fit(width: u32, height: u32, longest: u32) -> (u32, u32) {
    let scale = f64::from(longest) / f64::from(width.max(height));
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    (side(width), side(height))
}

/// Resizes to `width × height` (Lanczos) and lays out as (1, 3, H, W).
pub fn to_tensor(img: &Rgb32FImage, width: u32, height: u32) -> Array4<f32> {
    let resized = if (img.width(), img.height()) == (width, height) {
        img.clone()
    } else {
        image::imageops::resize(img, width, height, image::imageops::FilterType::Lanczos3)
    };
    Array4::from_shape_fn((1, 3, height as usize, width as usize), |(_, c, y, x)| {
        resized.get_pixel(x as u32, y as u32).0[c].clamp(0.0, 1.0)
    })
}

/// A (1, 3, H, W) tensor resized to `width × height` (Lanczos).
pub fn resize_tensor(t: &Array4<f32>, width: u32, height: u32) -> Array4<f32> {
    let (h, w) = (t.shape()[2], t.shape()[3]);
    let img = Rgb32FImage::from_fn(w as u32, h as u32, |x, y| {
        image::Rgb([0, 1, 2].map(|c| t[[0, c, y as usize, x as usize]]))
    });
    to_tensor(&img, width, height)
}

/// The (1, 3, H, W) tensor as an 8-bit RGB image.
pub fn from_tensor(t: ArrayView4<f32>) -> RgbImage {
    let (h, w) = (t.shape()[2], t.shape()[3]);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        image::Rgb([0, 1, 2].map(|c| (t[[0, c, y as usize, x as usize]].clamp(0.0, 1.0) * 255.0).round() as u8))
    })
}

/// The format an output path asks for, from its extension.
pub fn output_format(path: &Path) -> Result<ImageFormat> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    match ImageFormat::from_extension(ext) {
        Some(f) if f.writing_enabled() && !matches!(f, ImageFormat::Gif | ImageFormat::Ico) => Ok(f),
        Some(f) => bail!(
            "{}: nst does not write {} images (use .png, .jpg, .webp, .tif or .bmp)",
            path.display(),
            f.extensions_str().first().map_or(ext.to_string(), |e| e.to_uppercase())
        ),
        None if ext.is_empty() => {
            bail!("{}: no extension to tell the output format (use .png or .jpg)", path.display())
        }
        None => bail!("{}: unknown image extension .{ext} (use .png, .jpg, .webp, .tif or .bmp)", path.display()),
    }
}

/// Encodes `img` into `path` (atomically), in the format its extension names.
pub fn save(img: &RgbImage, path: &Path, existing: Existing) -> Result<()> {
    let format = output_format(path)?;
    files::write_atomic(path, existing, |out| {
        match format {
            ImageFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(out, 95).encode_image(img),
            f => img.write_to(out, f),
        }
        .with_context(|| format!("cannot encode {}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_scales_the_longest_side() {
        assert_eq!(fit(1000, 500, 512), (512, 256));
        assert_eq!(fit(300, 600, 128), (64, 128));
        assert_eq!(fit(10000, 1, 64), (64, 1));
    }

    #[test]
    fn tensor_round_trip_is_exact_for_8_bit() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
        let f = DynamicImage::ImageRgb8(img.clone()).to_rgb32f();
        assert_eq!(from_tensor(to_tensor(&f, 5, 3).view()), img);
    }
}
