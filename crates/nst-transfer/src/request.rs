//! A transfer to do: the images and the [`Settings`].

use crate::masks::Masks;
use crate::settings::{SWAP_STYLE_MAX, Settings};
use crate::{Error, images};
use image::Rgb32FImage;

/// Where the optimization starts.
#[derive(Clone, Debug, Default)]
pub enum Init {
    /// The content image.
    #[default]
    Content,
    /// Uniform noise in [0, 1] from [`Settings::seed`].
    Random,
    /// This image, resized to the output size.
    Image(Rgb32FImage),
    /// Style swap with one style: the painting's own pixels laid out along the first
    /// swap's patch matches, so the reconstruction starts in the painting's palette and
    /// strokes rather than the photo's (swap's default).
    Painting,
}

impl Init {
    /// Where a run of `settings` with `styles` style images starts unless told otherwise:
    /// [`Init::Painting`] for style swap with one style, or with style masks (`regions`:
    /// each region painted from its own style), else [`Init::Content`].
    pub fn default_for(settings: &Settings, styles: usize, regions: bool) -> Self {
        if settings.swap().is_some() && (styles == 1 || regions) { Init::Painting } else { Init::Content }
    }
}

/// A style image and its blend weight.
#[derive(Clone, Debug)]
pub struct Style {
    /// The painting, RGB in [0, 1].
    pub image: Rgb32FImage,
    /// Its weight in the blend of several styles (any scale: weights are normalized).
    pub weight: f32,
}

/// One transfer: a content photo, one or more styles, where to start, and the settings.
#[derive(Clone, Debug)]
pub struct Request {
    /// The photo, RGB in [0, 1] ([`images::load`] or [`images::decode`]).
    pub content: Rgb32FImage,
    /// The styles.
    pub styles: Vec<Style>,
    /// Where the optimization starts.
    pub init: Init,
    /// How.
    pub settings: Settings,
    /// Which style goes where, and what stays the photo (none by default).
    pub masks: Masks,
}

impl Request {
    /// A request with the default [`Settings`] and equal blend weights.
    pub fn new(content: Rgb32FImage, styles: Vec<Rgb32FImage>) -> Self {
        let styles = styles.into_iter().map(|image| Style { image, weight: 1.0 }).collect();
        Self { content, styles, init: Init::Content, settings: Settings::default(), masks: Masks::default() }
    }

    /// Checks the settings, the blend weights, and that every image reaches the deepest layer.
    pub fn check(&self) -> Result<(), Error> {
        self.settings.check()?;
        if self.styles.is_empty() {
            return Err(Error::setting("styles", "must hold at least one image"));
        }
        nst_features::check_blend(&self.styles.iter().map(|s| s.weight).collect::<Vec<_>>()).map_err(|e| {
            let reason = match e {
                nst_features::Error::BadWeight { value, .. } => {
                    format!("must be finite numbers ≥ 0, got {}", nst_features::number(value))
                }
                _ => "must not all be 0".into(),
            };
            Error::setting("blend", reason)
        })?;
        if self.settings.swap().is_some() && self.weights_differ() {
            // One bank of every painting's patches: each feature takes the best match, whoever's.
            return Err(Error::setting(
                "blend",
                "cannot differ with swap: it takes each patch from whichever painting matches it best",
            ));
        }
        if matches!(self.init, Init::Painting)
            && (self.settings.swap().is_none() || (self.styles.len() > 1 && self.masks.styles.is_empty()))
        {
            return Err(Error::setting("init", "painting is for style swap with one style image, or with style masks"));
        }
        if self.settings.analogy().is_some() && !matches!(self.init, Init::Content) {
            return Err(Error::setting(
                "init",
                "is not for analogy, which builds its result from the painting's pixels",
            ));
        }
        if !self.masks.is_empty() {
            self.check_masks()?;
        }
        if self.settings.analogy().is_some() && self.styles.len() > 1 {
            return Err(Error::setting("method", format!("analogy takes one style image, got {}", self.styles.len())));
        }
        // How many stages there are depends on the images: their budgets are checked here.
        self.stages()?;
        let spec = self.settings.loss_spec()?;
        let too_small =
            |image: String, (w, h): (u32, u32)| Error::TooSmall { image, size: (w, h), min: spec.min_side() };
        let (w, h) = self.output_size();
        if spec.check_size(h as usize, w as usize).is_err() {
            return Err(too_small("the output".into(), (w, h)));
        }
        for (i, size) in self.style_sizes(self.settings.size).into_iter().enumerate() {
            if spec.check_size(size.1 as usize, size.0 as usize).is_err() {
                let image =
                    if self.styles.len() == 1 { "the style image".into() } else { format!("style image {}", i + 1) };
                return Err(too_small(image, size));
            }
            // Swap cuts the style's features at its layer into patches: there must be one.
            if let Some(sw) = self.settings.swap() {
                let stride = sw.layer.stride() as u32;
                if size.0 / stride < sw.patch as u32 || size.1 / stride < sw.patch as u32 {
                    return Err(Error::setting(
                        "patch",
                        format!(
                            "{} is larger than style {}'s features at {} ({}×{})",
                            sw.patch,
                            i + 1,
                            sw.layer,
                            size.0 / stride,
                            size.1 / stride
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the styles' blend weights are not all the same.
    fn weights_differ(&self) -> bool {
        self.styles.iter().any(|s| s.weight != self.styles[0].weight)
    }

    fn check_masks(&self) -> Result<(), Error> {
        let m = &self.masks;
        if self.settings.analogy().is_some() {
            return Err(Error::setting("masks", "are for gatys and swap, not analogy"));
        }
        if !m.styles.is_empty() && self.weights_differ() {
            return Err(Error::setting("blend", "cannot differ with style masks: each style has its own region"));
        }
        let sizes: Vec<(u32, u32)> = self.styles.iter().map(|s| s.image.dimensions()).collect();
        m.check(self.content.dimensions(), &sizes)?;
        // At the output's size, where a few pixels of either kind may not survive the shrinking.
        let (w, h) = self.output_size();
        if let Some(keep) = m.keep_at(w, h) {
            if keep.iter().all(|&k| k) {
                let reason = format!("the mask keeps every pixel at the output's {w}×{h}: nothing would be restyled");
                return Err(Error::setting("keep", reason));
            }
            if !keep.iter().any(|&k| k) {
                let reason = format!("the mask keeps no pixel at the output's {w}×{h} (white is kept)");
                return Err(Error::setting("keep", reason));
            }
        }
        Ok(())
    }

    /// The output's (width, height): the content's shape at [`Settings::size`].
    pub fn output_size(&self) -> (u32, u32) {
        images::fit(self.content.width(), self.content.height(), self.settings.size)
    }

    /// The stages, (longest side, evaluations), coarsest first: the settings' coarse to fine
    /// schedule, started at the smallest side at which every image still reaches the deepest
    /// layer (a 1000×50 photo at 256 px would be 13 px high; it starts at 310, 310×16).
    pub fn stages(&self) -> Result<Vec<(u32, usize)>, Error> {
        let spec = self.settings.loss_spec()?;
        let (w, h) = self.output_size();
        let reaches = |side: u32| {
            let (sw, sh) = images::fit(w, h, side);
            std::iter::once((sw, sh))
                .chain(self.style_sizes(side))
                .all(|(w, h)| spec.check_size(h as usize, w as usize).is_ok())
        };
        // Whether a side reaches grows with the side: the first from the start on, by halves.
        let start = self.settings.multiscale.map(|start| {
            let (mut short, mut enough) = (start, self.settings.size.max(start));
            if reaches(short) {
                return short;
            }
            while enough - short > 1 {
                let mid = short + (enough - short) / 2;
                if reaches(mid) { enough = mid } else { short = mid }
            }
            enough
        });
        self.settings.stages_from(start)
    }

    /// The style images' (width, height) for a stage whose longest side is `side`.
    pub fn style_sizes(&self, side: u32) -> Vec<(u32, u32)> {
        let mut style_side = ((f64::from(side) * self.settings.style_scale).round() as u32).max(1);
        if self.settings.swap().is_some() {
            style_side = style_side.min(SWAP_STYLE_MAX);
        }
        self.styles.iter().map(|s| images::fit(s.image.width(), s.image.height(), style_side)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb32FImage;

    /// A photo of `w × h` and a square painting.
    fn request(w: u32, h: u32) -> Request {
        Request::new(Rgb32FImage::new(w, h), vec![Rgb32FImage::new(300, 300)])
    }

    /// A wide or tall photo's coarse stages start where its short side reaches the deepest
    /// layer (16 px for gatys): 1000×50 at 256 px would be 13 px high.
    #[test]
    fn coarse_stages_start_where_every_image_is_large_enough() {
        let mut wide = request(1000, 50);
        wide.settings.size = 1000;
        let sides = |r: &Request| r.stages().unwrap().iter().map(|s| s.0).collect::<Vec<_>>();
        assert_eq!(sides(&wide), [310, 620, 1000]);
        assert_eq!(wide.stages().unwrap().iter().map(|s| s.1).sum::<usize>(), wide.settings.evaluations);
        wide.check().unwrap();
        // The stages' own budgets are counted against these stages.
        wide.settings.stage_evaluations = Some(vec![1, 2, 3]);
        assert_eq!(wide.stages().unwrap(), [(310, 1), (620, 2), (1000, 3)]);
        wide.settings.stage_evaluations = Some(vec![1, 2]);
        let e = wide.check().unwrap_err().to_string();
        assert_eq!(e, "stage_evaluations: has 2 numbers for 3 stages (310, 620, 1000 px)");
        wide.settings.stage_evaluations = None;
        // 320×16: the start moves to 310, below the output's side, as 256 is below 320.
        wide.settings.size = 320;
        assert_eq!(sides(&wide), [310, 320]);
        let mut tall = request(50, 1000);
        tall.settings.size = 1000;
        assert_eq!(sides(&tall), [310, 620, 1000]);
        // A painting too thin at the coarse sides moves the start too.
        let mut thin_painting = request(400, 300);
        thin_painting.styles[0].image = Rgb32FImage::new(1000, 40);
        thin_painting.settings.size = 1024;
        assert_eq!(sides(&thin_painting), [388, 776, 1024]);
        // A photo of ordinary shape keeps the settings' schedule.
        let mut square = request(600, 400);
        square.settings.size = 1024;
        assert_eq!(sides(&square), [256, 512, 1024]);
    }
}
