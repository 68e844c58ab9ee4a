//! Measures of how a result looks against its painting, for tests and benchmarks:
//! whether it took the painting's palette, how much pixel-level colour noise it has, and
//! how far each masked region is from each style.

use crate::{Engine, Error, Request, images};
use image::RgbImage;
use ndarray::Array4;
use nst_features::{FeatureNet, Guides, Layer, Loss, MaskMode, RegionStyle, Targets};

impl Engine {
    /// How far each region of `image` (the request's style masks, at the image's size) is
    /// from each style: `d[r][k]` = the request's style terms (Gatys' layers and weights)
    /// of region r alone against style k. Regions are read with `inside` guides, so that
    /// the features along an edge, which see both sides, count for neither.
    pub fn style_distances(&self, image: &RgbImage, request: &Request) -> Result<Vec<Vec<f64>>, Error> {
        let mut spec = request.settings.loss.resolve()?;
        (spec.content, spec.tv) = (Vec::new(), 0.0);
        let layers: Vec<Layer> = spec.style.iter().map(|(l, _)| *l).collect();
        let (w, h) = image.dimensions();
        let x = images::from_u8(image);
        let styles: Vec<Array4<f32>> = request
            .styles
            .iter()
            .zip(request.style_sizes(w.max(h)))
            .map(|(s, (sw, sh))| images::to_tensor(&s.image, sw, sh))
            .collect();
        let mut net = FeatureNet::new(&self.runtime, &spec, &self.weights)?;
        let mut grad = Array4::zeros(x.raw_dim());
        // One session for every (region, style): the targets change, their shapes do not.
        let mut loss: Option<Loss> = None;
        let mut distance = |targets: Targets| -> Result<f64, Error> {
            let loss = match &mut loss {
                Some(l) => {
                    l.set_targets(targets)?;
                    l
                }
                None => loss.insert(Loss::new(&self.runtime, &spec, &self.weights, targets, h as usize, w as usize)?),
            };
            Ok(f64::from(loss.evaluate(x.view(), grad.view_mut())?))
        };
        request
            .masks
            .at(w, h)
            .styles
            .iter()
            .map(|mask| {
                let guides = Guides::new(&[mask.view()], &layers, MaskMode::Inside);
                styles
                    .iter()
                    .map(|style| {
                        let region = [RegionStyle { image: style.view(), source: None }];
                        distance(net.region_targets(x.view(), &region, guides.clone())?)
                    })
                    .collect()
            })
            .collect()
    }
}

/// How much of each region went to another style: the mean over regions of the distance to
/// its own style (region r's is style r) over the distance to the nearest other
/// ([`Engine::style_distances`]). Below 1, the regions are nearer their own styles.
pub fn leakage(distances: &[Vec<f64>]) -> f64 {
    let ratio = |(r, d): (usize, &Vec<f64>)| {
        let other = d.iter().enumerate().filter(|(k, _)| *k != r).map(|(_, v)| *v).fold(f64::MAX, f64::min);
        d[r] / other
    };
    distances.iter().enumerate().map(ratio).sum::<f64>() / distances.len().max(1) as f64
}

/// The median, over `image`'s pixels, of the RGB distance (0–255 units) to the nearest
/// colour that occurs in `palette` (a painting): near 0 when the image is made of the
/// painting's colours, large when it keeps colours the painting lacks.
pub fn palette_distance(image: &RgbImage, palette: &RgbImage) -> f64 {
    // The painting's colours, 5 bits a channel: enough to tell a palette, few enough to search.
    let mut colours: Vec<[f64; 3]> = palette.pixels().map(|p| p.0.map(|v| f64::from(v >> 3 << 3) + 4.0)).collect();
    colours.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    colours.dedup();
    let mut d: Vec<f64> = image
        .pixels()
        .map(|p| {
            let c = p.0.map(f64::from);
            colours.iter().map(|q| (0..3).map(|k| (c[k] - q[k]).powi(2)).sum::<f64>()).fold(f64::MAX, f64::min).sqrt()
        })
        .collect();
    d.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    d.get(d.len() / 2).copied().unwrap_or(0.0)
}

/// Mean chroma high-frequency energy: the mean, over pixels, of |(Cb, Cr) − its 3×3 box
/// mean| (BT.601, 0–255 units). Rainbow speckle scores high; smooth colour or colour
/// that changes only with the strokes scores low.
pub fn chroma_noise(image: &RgbImage) -> f64 {
    let (w, h) = image.dimensions();
    let chroma: Vec<[f64; 2]> = image
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(f64::from);
            let y = 0.299 * r + 0.587 * g + 0.114 * b;
            [(b - y) / 1.772, (r - y) / 1.402]
        })
        .collect();
    let at = |x: u32, y: u32| chroma[(y * w + x) as usize];
    let mut total = 0.0;
    for y in 0..h {
        for x in 0..w {
            let (mut mean, mut n) = ([0.0; 2], 0.0);
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let c = at(nx, ny);
                    mean = [mean[0] + c[0], mean[1] + c[1]];
                    n += 1.0;
                }
            }
            let c = at(x, y);
            total += ((c[0] - mean[0] / n).powi(2) + (c[1] - mean[1] / n).powi(2)).sqrt();
        }
    }
    total / f64::from((w * h).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn an_image_of_the_palette_is_near_it_and_speckle_is_noise() {
        let palette = RgbImage::from_fn(8, 8, |x, _| if x < 4 { Rgb([200, 120, 40]) } else { Rgb([250, 250, 250]) });
        assert!(palette_distance(&palette, &palette) < 8.0);
        let sky = RgbImage::from_pixel(8, 8, Rgb([40, 90, 220]));
        assert!(palette_distance(&sky, &palette) > 100.0);
        assert!(chroma_noise(&sky) < 1e-9);
        let speckle =
            RgbImage::from_fn(8, 8, |x, y| if (x + y) % 2 == 0 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
        assert!(chroma_noise(&speckle) > 50.0);
    }
}
