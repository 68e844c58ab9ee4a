//! The features graph in a session: an image → its content features and Gram matrices,
//! and the targets of a content image and blended style images.

use crate::Error;
use crate::config::{LossSpec, check_blend};
use crate::graph::features_graph;
use crate::guide::Guides;
use crate::runtime::Runtime;
use crate::targets::Targets;
use crate::tiles::{Passes, TileFeatures};
use crate::weights::VggWeights;
use ndarray::{ArrayView4, Axis, Ix2};

/// The features graph in a session: image → content features and Gram matrices.
pub struct FeatureNet {
    net: Passes<TileFeatures>,
    objective: LossSpec,
    /// For guided Grams of a whole image ([`FeatureNet::with_guides`]): one tile.
    whole_guided: Option<TileFeatures>,
}

/// A region's style: its image, and where in it the style is taken from (that image's
/// guides, from its style-side mask), everywhere when `None`.
pub struct RegionStyle<'a> {
    /// The style image (1, 3, H, W).
    pub image: ArrayView4<'a, f32>,
    /// Its guides, at its own maps.
    pub source: Option<&'a Guides>,
}

/// A core larger than any image: tile features in one pass.
const ONE_TILE: usize = 1 << 20;

impl FeatureNet {
    /// Builds the features graph of `objective` and opens its session.
    pub fn new(rt: &Runtime, objective: &LossSpec, weights: &VggWeights) -> Result<Self, Error> {
        let net = Passes::Whole(rt.session(&features_graph(objective, weights, rt.storage())?)?);
        Ok(Self { net, objective: objective.clone(), whole_guided: None })
    }

    /// The same targets computed over tiles of about `core` pixels (see [`crate::Tiling`]),
    /// for images too large for one pass.
    pub fn tiled(rt: &Runtime, objective: &LossSpec, weights: &VggWeights, core: usize) -> Result<Self, Error> {
        let net = Passes::Tiled(TileFeatures::new(rt, objective, weights, core)?);
        Ok(Self { net, objective: objective.clone(), whole_guided: None })
    }

    /// [`FeatureNet::tiled`] with tiles of about `tile` pixels when given, else [`FeatureNet::new`].
    pub fn open(rt: &Runtime, spec: &LossSpec, weights: &VggWeights, tile: Option<usize>) -> Result<Self, Error> {
        match tile {
            Some(core) => Self::tiled(rt, spec, weights, core),
            None => Self::new(rt, spec, weights),
        }
    }

    /// Readies guided Gram matrices ([`FeatureNet::region_targets`] with style-side
    /// guides); a tiled net already has them.
    pub fn with_guides(mut self, rt: &Runtime, weights: &VggWeights) -> Result<Self, Error> {
        if matches!(self.net, Passes::Whole(_)) && self.whole_guided.is_none() {
            self.whole_guided = Some(TileFeatures::new(rt, &self.objective, weights, ONE_TILE)?);
        }
        Ok(self)
    }

    /// Runs one image (1, 3, H, W, RGB in [0, 1]).
    pub fn run(&mut self, image: ArrayView4<f32>) -> Result<Targets, Error> {
        self.objective.check_image(image)?;
        let session = match &mut self.net {
            Passes::Whole(session) => session,
            Passes::Tiled(tiles) => return tiles.targets(image),
        };
        let image = image.as_standard_layout();
        let out = session.run(vec![("image".into(), image.view().into_dyn())])?;
        let content = self
            .objective
            .content
            .iter()
            .map(|(l, _)| Ok((*l, out.array(&format!("content/{l}"))?)))
            .collect::<Result<_, Error>>()?;
        let style = self
            .objective
            .style
            .iter()
            .map(|(l, _)| Ok((*l, out.array::<Ix2>(&format!("style/{l}"))?.insert_axis(Axis(0)))))
            .collect::<Result<_, Error>>()?;
        Ok(Targets { content, style, guides: None })
    }

    /// Content features of `content`, and style Grams blended over `styles` with
    /// weights `b_k` (normalized to sum 1). Style images may have any size.
    pub fn targets(&mut self, content: ArrayView4<f32>, styles: &[(ArrayView4<f32>, f32)]) -> Result<Targets, Error> {
        let total = check_blend(&styles.iter().map(|(_, b)| *b).collect::<Vec<_>>())?;
        let mut t = self.run(content)?;
        for (_, g) in &mut t.style {
            g.fill(0.0);
        }
        for (image, b) in styles {
            let s = self.run(*image)?;
            for ((_, acc), (_, g)) in t.style.iter_mut().zip(s.style) {
                acc.scaled_add((f64::from(*b) / total) as f32, &g);
            }
        }
        Ok(t)
    }

    /// Targets for regions: the content's features, per style layer region r's Gram of
    /// its style ([`RegionStyle`]: (F⊙g)(F⊙g)ᵀ/(C·Σg²) inside its style-side guides, the
    /// plain Gram without), and the regions' `guides` at the content's maps. Where a
    /// style-side guide is empty at a layer, the region's guide there is emptied too, so that
    /// its term is skipped rather than matched to a zero Gram.
    pub fn region_targets(
        &mut self,
        content: ArrayView4<f32>,
        styles: &[RegionStyle<'_>],
        mut guides: Guides,
    ) -> Result<Targets, Error> {
        if styles.len() != guides.regions() {
            return Err(Error::InvalidSetting(format!(
                "{} region styles for {} regions",
                styles.len(),
                guides.regions()
            )));
        }
        let mut t = self.run(content)?;
        let per_region = styles
            .iter()
            .map(|style| {
                self.objective.check_image(style.image)?;
                match style.source {
                    None => Ok(self.run(style.image)?.style),
                    Some(source) => {
                        let net = match (&mut self.net, &mut self.whole_guided) {
                            (Passes::Tiled(tiles), _) | (_, Some(tiles)) => tiles,
                            _ => {
                                return Err(Error::InvalidSetting(
                                    "style-side guides need FeatureNet::with_guides".into(),
                                ));
                            }
                        };
                        net.guided_grams(style.image, source)
                    }
                }
            })
            .collect::<Result<Vec<_>, Error>>()?;
        for (r, style) in styles.iter().enumerate() {
            let Some(source) = style.source else { continue };
            for i in 0..guides.layers.len().min(source.layers.len()) {
                if source.empty_at(i, 0) {
                    guides.layers[i].1.index_axis_mut(Axis(0), r).fill(0.0);
                }
            }
        }
        for (i, (_, gram)) in t.style.iter_mut().enumerate() {
            let views: Vec<_> = per_region.iter().map(|r| r[i].1.view()).collect();
            *gram = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::InvalidSetting(e.to_string()))?;
        }
        t.guides = Some(guides);
        Ok(t)
    }
}
