//! How results look against their painting: `cargo run --release -p nst-transfer --example
//! look -- PAINTING IMAGE...` prints, for each image, the median distance of its pixels to
//! the painting's colours and its chroma noise, beside the painting's own noise at the
//! image's size (see `nst_transfer::measure`).

use image::imageops::FilterType;
use nst_transfer::measure::{chroma_noise, palette_distance};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(painting) = args.next() else {
        return Err("usage: look PAINTING IMAGE...".into());
    };
    let painting = image::open(&painting)?.to_rgb8();
    for path in args {
        let img = image::open(&path)?.to_rgb8();
        let (w, h) = img.dimensions();
        // The painting at the image's scale, for its own noise.
        let scale = f64::from(w.max(h)) / f64::from(painting.width().max(painting.height()));
        let (pw, ph) = ((f64::from(painting.width()) * scale) as u32, (f64::from(painting.height()) * scale) as u32);
        let painting_there = image::imageops::resize(&painting, pw.max(1), ph.max(1), FilterType::Triangle);
        println!(
            "{path}: palette distance {:.1}, chroma noise {:.2} (the painting's own {:.2})",
            palette_distance(&img, &painting),
            chroma_noise(&img),
            chroma_noise(&painting_there)
        );
    }
    Ok(())
}
