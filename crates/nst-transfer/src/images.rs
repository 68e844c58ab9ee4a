//! Images in and out: decoding with a pixel cap and EXIF orientation, conversion to
//! (1, 3, H, W) tensors in [0, 1] and back, and encoding.

use crate::Error;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Rgb32FImage, RgbImage};
use ndarray::{Array4, ArrayView4};
use std::io::{BufRead, BufReader, Cursor, Seek, Write};
use std::path::Path;

/// The largest image decoded, in pixels (a decompression-bomb guard: the header is checked first).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Decodes an image file to RGB in [0, 1], upright, alpha composited over white.
pub fn load(path: &Path) -> Result<Rgb32FImage, Error> {
    regular_file(path)?;
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Image { what: format!("cannot read {}", path.display()), reason: e.to_string() })?;
    decode_from(BufReader::new(file), &path.display().to_string(), MAX_PIXELS)
}

/// Decodes an image held in memory (an upload), named `what` in errors, like [`load`] but
/// with its own pixel limit (checked on the header, before anything is decoded).
pub fn decode(bytes: &[u8], what: &str, max_pixels: u64) -> Result<Rgb32FImage, Error> {
    decode_from(Cursor::new(bytes), what, max_pixels)
}

/// Fails unless `path` is a regular file (or a link to one): a folder, a pipe or a device
/// is refused before it is opened, since reading a pipe can block forever.
pub fn regular_file(path: &Path) -> Result<(), Error> {
    let what = || path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Image { what: format!("cannot read {}", path.display()), reason: e.to_string() })?;
    if meta.is_dir() {
        return Err(Error::Image { what: what(), reason: "a folder, not an image".into() });
    }
    if !meta.is_file() {
        return Err(Error::Image {
            what: what(),
            reason: "not a regular file (a pipe or a device); give nst an image file".into(),
        });
    }
    Ok(())
}

fn decode_from(mut input: impl BufRead + Seek, what: &str, max_pixels: u64) -> Result<Rgb32FImage, Error> {
    let bad = |reason: String| Error::Image { what: what.to_string(), reason };
    if input.fill_buf().map_err(|e| bad(e.to_string()))?.is_empty() {
        return Err(bad("an empty file, not an image".into()));
    }
    let reader = ImageReader::new(&mut input).with_guessed_format().map_err(|e| bad(e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(bad("not an image format nst can read (PNG, JPEG, WebP, TIFF, BMP, GIF…)".into()));
    };
    let mut decoder = reader.into_decoder().map_err(|e| bad(format!("cannot decode: {}", one_line(&e))))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(bad(format!("image has no pixels ({w}×{h})")));
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(bad(format!("{w}×{h} is larger than the {} megapixel limit", max_pixels / 1_000_000)));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let corrupt = |e: &dyn std::fmt::Display| bad(format!("corrupt or truncated image ({})", one_line(e)));
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(&e))?;
    if format == ImageFormat::Jpeg {
        strict_jpeg(input).map_err(|e| corrupt(&e))?;
    }
    img.apply_orientation(orientation);
    Ok(flatten_alpha(img))
}

/// Decodes a JPEG again, strictly: `image` fills what a truncated or corrupt file lacks with
/// grey and says nothing; its decoder, zune-jpeg, in strict mode fails on data that ends
/// early or markers where none belong. (JPEG has no checksum: damage that still decodes
/// goes unseen.)
fn strict_jpeg(mut input: impl BufRead + Seek) -> Result<(), String> {
    input.rewind().map_err(|e| e.to_string())?;
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    zune_jpeg::JpegDecoder::new_with_options(input, options).decode().map(drop).map_err(|e| format!("{e:?}"))
}

/// A decoder's message on one line: some end in a line break, and some name a PNG chunk
/// with Rust's debug output of it.
fn one_line(e: &dyn std::fmt::Display) -> String {
    let mut line = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    // "ChunkType { type: IDAT, critical: true, … }" → "IDAT"
    while let Some(start) = line.find("ChunkType { type: ") {
        let rest = &line[start + "ChunkType { type: ".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let end = rest.find('}').map_or(line.len(), |e| start + "ChunkType { type: ".len() + e + 1);
        line.replace_range(start..end, &name);
    }
    line
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

/// An 8-bit image as a (1, 3, H, W) tensor, as it is.
pub fn from_u8(img: &RgbImage) -> Array4<f32> {
    let (w, h) = img.dimensions();
    to_tensor(&DynamicImage::ImageRgb8(img.clone()).to_rgb32f(), w, h)
}

/// A (1, 3, H, W) tensor resized to `width × height` (Lanczos).
pub fn resize_tensor(t: &Array4<f32>, width: u32, height: u32) -> Array4<f32> {
    to_tensor(&tensor_image(t.view()), width, height)
}

/// A (1, 3, H, W) tensor as a float image, values as they are.
pub fn tensor_image(t: ArrayView4<f32>) -> Rgb32FImage {
    let (h, w) = (t.shape()[2], t.shape()[3]);
    Rgb32FImage::from_fn(w as u32, h as u32, |x, y| image::Rgb([0, 1, 2].map(|c| t[[0, c, y as usize, x as usize]])))
}

/// The (1, 3, H, W) tensor as an 8-bit RGB image.
pub fn from_tensor(t: ArrayView4<f32>) -> RgbImage {
    let (h, w) = (t.shape()[2], t.shape()[3]);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        image::Rgb([0, 1, 2].map(|c| (t[[0, c, y as usize, x as usize]].clamp(0.0, 1.0) * 255.0).round() as u8))
    })
}

/// The format an output path asks for, from its extension.
pub fn output_format(path: &Path) -> Result<ImageFormat, Error> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let refuse = |reason: String| Err(Error::Image { what: path.display().to_string(), reason });
    match ImageFormat::from_extension(ext) {
        // The formats that hold 8-bit RGB as it is (not GIF's palette, ICO's sizes, EXR's floats…).
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Tiff | ImageFormat::Bmp)) => {
            Ok(f)
        }
        Some(_) => refuse(format!("nst does not write .{ext} images (use .png, .jpg, .webp, .tif or .bmp)")),
        None if ext.is_empty() => refuse("no extension to tell the output format (use .png or .jpg)".into()),
        None => refuse(format!("unknown image extension .{ext} (use .png, .jpg, .webp, .tif or .bmp)")),
    }
}

/// Encodes `img` in `format` (JPEG at quality 95).
pub fn encode(img: &RgbImage, format: ImageFormat, out: &mut (impl Write + Seek)) -> Result<(), image::ImageError> {
    match format {
        ImageFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(out, 95).encode_image(img),
        f => img.write_to(out, f),
    }
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
