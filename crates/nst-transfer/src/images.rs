//! Images in and out: decoding with a pixel cap, EXIF orientation and colour profiles,
//! conversion to (1, 3, H, W) tensors in [0, 1] and back, and encoding.

use crate::Error;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Rgb32FImage, RgbImage};
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};
use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;
use std::io::{BufRead, BufReader, Cursor, Seek, Write};
use std::path::Path;

/// The largest image decoded, in pixels (a decompression-bomb guard: the header is checked first).
pub const MAX_PIXELS: u64 = 100_000_000;

/// What an image's values stand for, which says whether its colour profile applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pixels {
    /// Colours (a photo, a painting): those of a file with an ICC profile (Display P3, Adobe
    /// RGB, ProPhoto, a grey profile…) are converted to sRGB, the space nst works and writes
    /// in. A file without one is taken as sRGB; a profile that cannot be read or does not fit
    /// the image's channels is ignored, as browsers do.
    Picture,
    /// Values (a mask, a label map): read as stored, whatever profile the file carries, so that
    /// a label's colour stays the colour it was painted in.
    Data,
}

/// What became of a [`Pixels::Picture`]'s colour profile as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Colours {
    /// sRGB as it was: no profile, one that is sRGB in all but name, or data's (not applied).
    Srgb,
    /// Converted to sRGB from the profile named.
    Converted(String),
    /// A profile not applied: why, and what the colours were taken as.
    Ignored(String),
}

impl Colours {
    /// A line for the user about the image `what`, unless its colours were sRGB already.
    pub fn note(&self, what: &str) -> Option<String> {
        match self {
            Colours::Srgb => None,
            Colours::Converted(name) => Some(format!("{what}: colours converted to sRGB from its profile ({name})")),
            Colours::Ignored(why) => Some(format!("{what}: its colour profile is not applied: {why}")),
        }
    }
}

/// Decodes an image file to RGB in [0, 1], upright, alpha composited over white, in sRGB for a
/// [`Pixels::Picture`].
pub fn load(path: &Path, pixels: Pixels) -> Result<Rgb32FImage, Error> {
    load_with_colours(path, pixels).map(|(image, _)| image)
}

/// [`load`], and what became of the image's colour profile.
pub fn load_with_colours(path: &Path, pixels: Pixels) -> Result<(Rgb32FImage, Colours), Error> {
    regular_file(path)?;
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Image { what: format!("cannot read {}", path.display()), reason: e.to_string() })?;
    decode_from(BufReader::new(file), &path.display().to_string(), MAX_PIXELS, pixels)
}

/// Decodes an image held in memory (an upload), named `what` in errors, like [`load`] but
/// with its own pixel limit (checked on the header, before anything is decoded).
pub fn decode(bytes: &[u8], what: &str, max_pixels: u64, pixels: Pixels) -> Result<Rgb32FImage, Error> {
    decode_with_colours(bytes, what, max_pixels, pixels).map(|(image, _)| image)
}

/// [`decode`], and what became of the image's colour profile.
pub fn decode_with_colours(
    bytes: &[u8],
    what: &str,
    max_pixels: u64,
    pixels: Pixels,
) -> Result<(Rgb32FImage, Colours), Error> {
    decode_from(Cursor::new(bytes), what, max_pixels, pixels)
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

fn decode_from(
    mut input: impl BufRead + Seek,
    what: &str,
    max_pixels: u64,
    pixels: Pixels,
) -> Result<(Rgb32FImage, Colours), Error> {
    let bad = |reason: String| Error::Image { what: what.to_string(), reason };
    let start = input.fill_buf().map_err(|e| bad(e.to_string()))?;
    if start.is_empty() {
        return Err(bad("an empty file, not an image".into()));
    }
    let Ok(format) = image::guess_format(start) else {
        return Err(bad("not an image format nst can read (PNG, JPEG, WebP, TIFF, BMP, GIF…)".into()));
    };
    let tiff = format == ImageFormat::Tiff;
    let tiff_profile = if tiff && pixels == Pixels::Picture { tiff_profile(&mut input) } else { None };
    let mut decoder = ImageReader::with_format(&mut input, format)
        .into_decoder()
        .map_err(|e| bad(format!("cannot decode: {}", one_line(&e))))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(bad(format!("image has no pixels ({w}×{h})")));
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(bad(format!("{w}×{h} is larger than the {} megapixel limit", max_pixels / 1_000_000)));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let profile = match pixels {
        Pixels::Picture if tiff => tiff_profile,
        Pixels::Picture => decoder.icc_profile().ok().flatten(),
        Pixels::Data => None,
    };
    let corrupt = |e: &dyn std::fmt::Display| bad(format!("corrupt or truncated image ({})", one_line(e)));
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(&e))?;
    if format == ImageFormat::Jpeg {
        strict_jpeg(input).map_err(|e| corrupt(&e))?;
    }
    img.apply_orientation(orientation);
    let grey = img.color().channel_count() <= 2;
    let (to_srgb, colours) = match profile.map(|icc| ToSrgb::new(&icc, grey)) {
        None | Some(Ok(None)) => (None, Colours::Srgb),
        Some(Ok(Some((to_srgb, name)))) => (Some(to_srgb), Colours::Converted(name)),
        Some(Err(why)) => (None, Colours::Ignored(why)),
    };
    let rgb = on_white(img, to_srgb.as_ref()).map_err(|e| bad(format!("cannot convert its colours to sRGB ({e})")))?;
    Ok((rgb, colours))
}

/// A profile's description (its first, for one in several languages), on one line and at
/// most 60 characters; "unnamed" where it has none.
fn profile_name(profile: &ColorProfile) -> String {
    let text = match &profile.description {
        Some(moxcms::ProfileText::PlainString(s)) => s.clone(),
        Some(moxcms::ProfileText::Localizable(l)) => l.first().map(|s| s.value.clone()).unwrap_or_default(),
        Some(moxcms::ProfileText::Description(d)) => d.ascii_string.clone(),
        None => String::new(),
    };
    let line: String =
        text.split_whitespace().collect::<Vec<_>>().join(" ").chars().filter(|c| !c.is_control()).take(60).collect();
    if line.is_empty() { "unnamed".into() } else { line }
}

/// A TIFF's ICC profile, read with limits of its own: image's TIFF decoder bounds a tag's value
/// by the image's size in bytes, and the tiff crate counts 32 bytes per byte of a profile, so
/// that a profile larger than about a 32nd of the image (a 492-byte one in a 64×43 image, a
/// 216 KB table-based one in a 600×400) was dropped without a word. Profiles up to 4 MB are
/// read. The input is rewound after.
fn tiff_profile(input: &mut (impl BufRead + Seek)) -> Option<Vec<u8>> {
    let mut limits = tiff::decoder::Limits::default();
    limits.ifd_value_size = 32 << 22;
    let profile = tiff::decoder::Decoder::new(&mut *input)
        .ok()
        .and_then(|d| d.with_limits(limits).get_tag_u8_vec(tiff::tags::Tag::IccProfile).ok());
    input.rewind().ok()?;
    profile
}

/// The conversion of an image's colours from its ICC profile to sRGB, in floats, with the
/// profile's perceptual intent (for the matrix profiles of cameras and displays the same as
/// relative colorimetric).
struct ToSrgb {
    transform: std::sync::Arc<moxcms::TransformF32Executor>,
    /// The profile is a grey one: each pixel's grey level (its red, the three being equal in a
    /// grey image made RGB) goes in, RGB comes out.
    grey: bool,
}

impl ToSrgb {
    /// The conversion from the profile `icc`, with the profile's name; `None` where there is
    /// nothing to do, a profile that is sRGB in all but name: no colour moves by a quarter of
    /// an 8-bit step, of each channel's 256 levels alone and together (the curves) and a
    /// 9-level grid over the cube (the primaries). Why not, for a profile that cannot be read
    /// or does not fit the image (`grey`: it has one channel, not three).
    fn new(icc: &[u8], grey: bool) -> Result<Option<(Self, String)>, String> {
        let as_srgb = |why: String| format!("{why}; its colours are taken as sRGB");
        let profile = ColorProfile::new_from_slice(icc).map_err(|e| as_srgb(format!("it cannot be read ({e})")))?;
        let input = match (profile.color_space, grey) {
            (DataColorSpace::Rgb, false) => Layout::Rgb,
            (DataColorSpace::Gray, true) => Layout::Gray,
            (DataColorSpace::Rgb, true) => return Err(as_srgb("an RGB profile in a grey image".into())),
            (DataColorSpace::Gray, false) => return Err(as_srgb("a grey profile in an RGB image".into())),
            (DataColorSpace::Cmyk, _) => {
                return Err("a CMYK profile; its colours come from the plain CMYK-to-RGB formula, approximately \
                            (convert it to RGB for exact ones)"
                    .into());
            }
            (space, _) => return Err(as_srgb(format!("a {space:?} profile, where nst takes RGB and grey ones"))),
        };
        let srgb = ColorProfile::new_srgb();
        let transform = profile
            .create_transform_f32(input, &srgb, Layout::Rgb, TransformOptions::default())
            .map_err(|e| as_srgb(format!("it cannot be converted from ({e})")))?;
        let to_srgb = ToSrgb { transform, grey };
        let ramps =
            (0..256).map(|v| v as f32 / 255.0).flat_map(|v| [[v, 0.0, 0.0], [0.0, v, 0.0], [0.0, 0.0, v], [v; 3]]);
        let levels: [f32; 9] = std::array::from_fn(|i| i as f32 / 8.0);
        let cube = levels.iter().flat_map(|&r| levels.iter().flat_map(move |&g| levels.map(|b| [r, g, b])));
        let grid: Vec<f32> = ramps.chain(cube).flatten().collect();
        let mut probe = grid.clone();
        to_srgb.convert(&mut probe).map_err(|e| as_srgb(format!("it cannot be converted from ({e})")))?;
        let moved = probe.iter().zip(&grid).any(|(a, b)| (a - b).abs() > 0.25 / 255.0 || a.is_nan());
        Ok(moved.then(|| (to_srgb, profile_name(&profile))))
    }

    /// Converts interleaved RGB in place, clamped to [0, 1]: colours outside sRGB's gamut
    /// are clipped.
    fn convert(&self, rgb: &mut [f32]) -> Result<(), moxcms::CmsError> {
        let source: Vec<f32> = if self.grey { rgb.iter().step_by(3).copied().collect() } else { rgb.to_vec() };
        self.transform.transform(&source, rgb)?;
        rgb.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        Ok(())
    }

    /// [`ToSrgb::convert`] over an image, in parallel by bands of rows.
    fn apply(&self, img: &mut Rgb32FImage) -> Result<(), moxcms::CmsError> {
        let row = 3 * img.width() as usize;
        let band = row * ((1 << 16) / row + 1);
        img.par_chunks_mut(band).try_for_each(|rows| self.convert(rows))
    }
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

/// `img` as RGB floats in sRGB (converted by `to_srgb`, if given), then laid on white where it
/// is transparent: converted first, as a viewer does, so that a half-transparent colour
/// outside sRGB is clipped before it is blended.
fn on_white(img: DynamicImage, to_srgb: Option<&ToSrgb>) -> Result<Rgb32FImage, moxcms::CmsError> {
    let convert = |mut rgb: Rgb32FImage| -> Result<Rgb32FImage, moxcms::CmsError> {
        if let Some(to_srgb) = to_srgb {
            to_srgb.apply(&mut rgb)?;
        }
        Ok(rgb)
    };
    if !img.color().has_alpha() {
        return convert(img.to_rgb32f());
    }
    let rgba = img.to_rgba32f();
    drop(img);
    let colour = Rgb32FImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, _] = rgba.get_pixel(x, y).0;
        image::Rgb([r, g, b])
    });
    let mut rgb = convert(colour)?;
    for (p, q) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = q.0[3];
        p.0 = p.0.map(|c| c * a + (1.0 - a));
    }
    Ok(rgb)
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

    /// `img` encoded in `format` with the ICC profile `icc` embedded.
    fn tagged(img: &image::DynamicImage, icc: Vec<u8>, format: ImageFormat) -> Vec<u8> {
        fn write(mut e: impl image::ImageEncoder, icc: Vec<u8>, img: &image::DynamicImage) {
            e.set_icc_profile(icc).unwrap();
            e.write_image(img.as_bytes(), img.width(), img.height(), img.color().into()).unwrap();
        }
        let mut out = Cursor::new(Vec::new());
        match format {
            ImageFormat::Png => write(image::codecs::png::PngEncoder::new(&mut out), icc, img),
            ImageFormat::Jpeg => write(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90), icc, img),
            ImageFormat::Tiff => write(image::codecs::tiff::TiffEncoder::new(&mut out), icc, img),
            f => panic!("no {f:?} here"),
        }
        out.into_inner()
    }

    /// sRGB's transfer curve, to linear and back.
    fn linear(v: f32) -> f32 {
        if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
    }
    fn encoded(v: f32) -> f32 {
        let v = v.clamp(0.0, 1.0);
        if v <= 0.0031308 { 12.92 * v } else { 1.055 * v.powf(1.0 / 2.4) - 0.055 }
    }

    /// Display P3 colours in sRGB, computed here: P3 has sRGB's curve and white (D65) and
    /// wider primaries, so linear sRGB is a fixed matrix of linear P3.
    fn p3_in_srgb(p3: [f32; 3]) -> [f32; 3] {
        const M: [[f32; 3]; 3] =
            [[1.224_94, -0.224_94, 0.0], [-0.042_057, 1.042_057, 0.0], [-0.019_638, -0.078_636, 1.098_274]];
        let l = p3.map(linear);
        M.map(|row| encoded(row[0] * l[0] + row[1] * l[1] + row[2] * l[2]))
    }

    fn p3() -> Vec<u8> {
        ColorProfile::new_display_p3().encode().unwrap()
    }

    fn colours() -> RgbImage {
        let colours = [[128, 128, 128], [153, 102, 77], [40, 180, 90], [250, 20, 30], [20, 60, 240], [255, 255, 255]];
        RgbImage::from_fn(6, 2, |x, _| image::Rgb(colours[x as usize]))
    }

    #[test]
    fn a_display_p3_picture_is_read_in_srgb_and_its_masks_as_stored() {
        let img = colours();
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            let bytes = tagged(&DynamicImage::ImageRgb8(img.clone()), p3(), format);
            let stored = decode(&bytes, "p3", MAX_PIXELS, Pixels::Data).unwrap();
            let srgb = decode(&bytes, "p3", MAX_PIXELS, Pixels::Picture).unwrap();
            if format == ImageFormat::Png {
                let as_written = DynamicImage::ImageRgb8(img.clone()).to_rgb32f();
                assert_eq!(stored, as_written, "a mask keeps its values");
            }
            for (s, p) in srgb.pixels().zip(stored.pixels()) {
                let expected = p3_in_srgb(p.0);
                for c in 0..3 {
                    assert!(
                        (s.0[c] - expected[c]).abs() < 2e-3,
                        "{format:?}: P3 {:?} → {:?}, expected {expected:?}",
                        p.0,
                        s.0
                    );
                }
            }
            // P3's pure red lies outside sRGB: clipped to its red.
            let red = srgb.get_pixel(3, 0).0;
            assert!(red[0] == 1.0 && red[1] == 0.0, "{format:?}: {red:?}");
        }
    }

    #[test]
    fn a_half_transparent_colour_is_converted_before_it_is_laid_on_white() {
        // P3's pure red at half opacity: clipped to sRGB's red, then blended with white.
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(2, 2, image::Rgba([255, 0, 0, 128])));
        let read = decode(&tagged(&img, p3(), ImageFormat::Png), "red", MAX_PIXELS, Pixels::Picture).unwrap();
        let a = 128.0 / 255.0;
        let expected = [1.0, 1.0 - a, 1.0 - a];
        let got = read.get_pixel(0, 0).0;
        assert!((0..3).all(|c| (got[c] - expected[c]).abs() < 2e-3), "{got:?}, expected {expected:?}");
    }

    #[test]
    fn srgb_tagged_and_unreadable_profiles_leave_the_values_as_stored() {
        let img = DynamicImage::ImageRgb8(colours());
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        for icc in [srgb, b"not a profile".to_vec(), ColorProfile::new_gray_with_gamma(2.2).encode().unwrap()] {
            let bytes = tagged(&img, icc, ImageFormat::Png);
            assert_eq!(decode(&bytes, "x", MAX_PIXELS, Pixels::Picture).unwrap(), img.to_rgb32f());
        }
    }

    #[test]
    fn a_small_tiffs_profile_is_read() {
        // 64×43 RGB is 8 KB; the P3 profile, 32 bytes a byte to image's TIFF decoder, 16 KB.
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 43, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 77])));
        let (tif, png) = (tagged(&img, p3(), ImageFormat::Tiff), tagged(&img, p3(), ImageFormat::Png));
        let read = |bytes: &[u8]| decode(bytes, "p3", MAX_PIXELS, Pixels::Picture).unwrap();
        assert_ne!(read(&png), img.to_rgb32f());
        assert_eq!(read(&tif), read(&png));
    }

    #[test]
    fn a_profile_of_srgbs_primaries_with_other_shadows_is_applied() {
        // sRGB's primaries and curve, but darker below a quarter: the same as sRGB at 0, ¼, ½,
        // ¾ and 1, and 8 levels darker in between, as a display calibration might make it.
        let mut profile = ColorProfile::new_srgb();
        profile.cicp = None; // which would name sRGB's curve
        let curve: Vec<u16> = (0..4096)
            .map(|i| {
                let v = i as f32 / 4095.0;
                let l = if v < 0.25 { linear(v) * (0.5 + 2.0 * v) } else { linear(v) };
                (l * 65535.0).round() as u16
            })
            .collect();
        for trc in [&mut profile.red_trc, &mut profile.green_trc, &mut profile.blue_trc] {
            *trc = Some(moxcms::ToneReprCurve::Lut(curve.clone()));
        }
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(2, 2, image::Rgb([30, 30, 30])));
        let bytes = tagged(&img, profile.encode().unwrap(), ImageFormat::Png);
        let v = decode(&bytes, "shadows", MAX_PIXELS, Pixels::Picture).unwrap().get_pixel(0, 0).0[0];
        let stored = 30.0 / 255.0;
        let expected = encoded(linear(stored) * (0.5 + 2.0 * stored));
        assert!((v - expected).abs() < 2e-3, "{v}, expected {expected} (stored {stored})");
    }

    #[test]
    fn a_grey_picture_with_a_grey_profile_is_read_in_srgb() {
        // A linear grey profile: the stored 0.5 is half the light, sRGB's 0.735.
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([128])));
        let linear_grey = ColorProfile::new_gray_with_gamma(1.0).encode().unwrap();
        let bytes = tagged(&grey, linear_grey, ImageFormat::Png);
        let read = decode(&bytes, "grey", MAX_PIXELS, Pixels::Picture).unwrap();
        let expected = encoded(128.0 / 255.0);
        for p in read.pixels() {
            assert!(p.0.iter().all(|&v| (v - expected).abs() < 2e-3), "{:?}, expected {expected}", p.0);
        }
    }

    #[test]
    fn tensor_round_trip_is_exact_for_8_bit() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
        let f = DynamicImage::ImageRgb8(img.clone()).to_rgb32f();
        assert_eq!(from_tensor(to_tensor(&f, 5, 3).view()), img);
    }
}
