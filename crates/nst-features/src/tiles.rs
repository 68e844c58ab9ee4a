//! Images larger than one network pass: the loss and its gradient over tiles.
//!
//! The image is cut into *cores* that partition it; each core is run in a
//! *window* that adds a halo at least as wide as the deepest layer's receptive
//! radius, with every boundary on the deepest pooling grid, so the features of a
//! core's cells are exactly the whole image's. Then:
//!
//! 1. Gram matrices are sums over cells: R_l = Σ_tiles (F·m)(F·m)ᵀ, m the core's
//!    mask ([`tile_features_graph`]), summed here in f64; with regions, one per region,
//!    m the core's mask times the region's guide.
//! 2. The loss is a function of R_l and of the content features; its derivative
//!    ∂loss/∂R_l is formed here, and each tile back-propagates its core's share
//!    ([`tile_gradient_graph`]); the shares, added at their windows, are the
//!    whole image's gradient (every cell belongs to exactly one core).
//! 3. The TV term, a sum over neighbouring pixels, is computed here on the whole image.
//!
//! A tiled evaluation runs the network forward twice (once per pass) and
//! backward once, plus the halos: about 1.5–2× an untiled one.

use crate::Error;
use crate::config::LossSpec;
use crate::graph::{content_blocks, tile_features_graph, tile_gradient_graph};
use crate::guide::{Guides, region_weights};
use crate::layers::Layer;
use crate::runtime::{Inputs, Runtime, Session};
use crate::targets::Targets;
use crate::weights::VggWeights;
use ndarray::{Array1, Array3, Array4, ArrayView4, ArrayViewMut4, Axis, Ix3, Ix4, Zip, s};
use std::borrow::Cow;
use std::ops::Range;

/// How a graph runs: one pass over the whole image, or over tiles.
pub(crate) enum Passes<T> {
    /// The graph on the whole image.
    Whole(Session),
    /// Tiles (see [`Tiling`]).
    Tiled(T),
}

/// How an image of `height × width` is cut: cores of `core` pixels (the last in
/// each direction shorter), windows `halo` pixels wider on every side that has image.
#[derive(Clone, Debug, PartialEq)]
pub struct Tiling {
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Core side, a multiple of the deepest layer's stride.
    pub core: usize,
    /// Halo width, the deepest layer's radius rounded up to its stride.
    pub halo: usize,
    tiles: Vec<Tile>,
}

/// One tile: the rows and columns (image pixels) of its window and of its core.
#[derive(Clone, Debug, PartialEq)]
struct Tile {
    window: [Range<usize>; 2],
    core: [Range<usize>; 2],
}

impl Tiling {
    /// Cuts `height × width` into cores of about `core` pixels for `obj`'s layers.
    pub fn new(obj: &LossSpec, height: usize, width: usize, core: usize) -> Self {
        let deepest = deepest_layer(obj);
        let align = deepest.stride();
        let core = core.max(1).next_multiple_of(align);
        let halo = deepest.radius().next_multiple_of(align);
        let spans = |n: usize| -> Vec<(Range<usize>, Range<usize>)> {
            (0..n)
                .step_by(core)
                .map(|start| {
                    let end = (start + core).min(n);
                    (start.saturating_sub(halo)..(end + halo).min(n), start..end)
                })
                .collect()
        };
        let (rows, cols) = (spans(height), spans(width));
        let tiles = rows
            .iter()
            .flat_map(|(wr, cr)| {
                cols.iter().map(|(wc, cc)| Tile { window: [wr.clone(), wc.clone()], core: [cr.clone(), cc.clone()] })
            })
            .collect();
        Self { height, width, core, halo, tiles }
    }

    /// How many tiles.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// `true` when there are no tiles (an empty image).
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// The largest window, (rows, columns).
    pub fn largest_window(&self) -> (usize, usize) {
        let len = |t: &Tile, a: usize| t.window[a].len();
        (
            self.tiles.iter().map(|t| len(t, 0)).max().unwrap_or(0),
            self.tiles.iter().map(|t| len(t, 1)).max().unwrap_or(0),
        )
    }
}

impl Tile {
    /// The window's and the core's cells in block `block`'s maps, in whole-map
    /// coordinates. Windows start on the pooling grid, and cores end on it or at
    /// the image's edge, so pixel ranges shift down exactly (pooling floors).
    fn cells(&self, block: u8) -> ([Range<usize>; 2], [Range<usize>; 2]) {
        let k = block - 1;
        let at = |r: &Range<usize>| (r.start >> k)..(r.end >> k);
        ([at(&self.window[0]), at(&self.window[1])], [at(&self.core[0]), at(&self.core[1])])
    }

    /// 1 on the core's cells of block `block`'s maps of the window, 0 on the halo.
    fn mask(&self, block: u8) -> Array4<f32> {
        let (w, c) = self.cells(block);
        let mut m = Array4::zeros((1, 1, w[0].len(), w[1].len()));
        m.slice_mut(s![
            ..,
            ..,
            c[0].start - w[0].start..c[0].end - w[0].start,
            c[1].start - w[1].start..c[1].end - w[1].start
        ])
        .fill(1.0);
        m
    }

    /// A style layer's guides in this window: the core's mask times each region's guide
    /// (the core's mask alone, one region, without guides).
    fn guide(&self, layer: Layer, guides: Option<&Guides>) -> Array4<f32> {
        let core = self.mask(layer.block());
        match guides.and_then(|g| g.get(layer)) {
            None => core,
            Some(g) => {
                let (w, _) = self.cells(layer.block());
                &g.slice(s![.., .., w[0].clone(), w[1].clone()]) * &core
            }
        }
    }

    fn image<'a>(&self, image: &'a ArrayView4<f32>) -> ArrayView4<'a, f32> {
        image.slice(s![.., .., self.window[0].clone(), self.window[1].clone()])
    }
}

fn deepest_layer(obj: &LossSpec) -> Layer {
    obj.content.iter().chain(&obj.style).map(|(l, _)| *l).max().unwrap_or(Layer { conv: 0, relu: true })
}

/// A map of block `block` for an image of `height × width`: (height, width) pooled.
pub(crate) fn map_size(block: u8, height: usize, width: usize) -> (usize, usize) {
    (height >> (block - 1), width >> (block - 1))
}

/// The inputs every tile graph takes, by name: the window, each content block's core
/// mask, and each style layer's guides ([`Tile::guide`]); `held` keeps them alive.
fn tile_inputs<'a>(
    obj: &LossSpec,
    tile: &Tile,
    image: &ArrayView4<f32>,
    guides: Option<&Guides>,
    held: &'a mut Vec<(String, Array4<f32>)>,
) -> Inputs<'a> {
    held.clear();
    held.push(("image".into(), tile.image(image).as_standard_layout().into_owned()));
    held.extend(content_blocks(obj).into_iter().map(|b| (format!("mask/{b}"), tile.mask(b))));
    held.extend(obj.style.iter().map(|(l, _)| (format!("guide/{l}"), tile.guide(*l, guides))));
    held.iter().map(|(name, a)| (Cow::from(name.as_str()), a.view().into_dyn())).collect()
}

/// The tile features graph in a session, run over a tiling.
pub(crate) struct TileFeatures {
    session: Session,
    objective: LossSpec,
    core: usize,
}

impl TileFeatures {
    pub fn new(rt: &Runtime, objective: &LossSpec, weights: &VggWeights, core: usize) -> Result<Self, Error> {
        let session = rt.session(&tile_features_graph(objective, weights, rt.storage())?)?;
        Ok(Self { session, objective: objective.clone(), core })
    }

    /// Content features and (normalized) Gram matrices (1, C, C) of `image`, tile by tile.
    pub fn targets(&mut self, image: ArrayView4<f32>) -> Result<Targets, Error> {
        let (h, w) = (image.shape()[2], image.shape()[3]);
        let mut content: Vec<(Layer, Array4<f32>)> = self
            .objective
            .content
            .iter()
            .map(|(l, _)| {
                let (mh, mw) = map_size(l.block(), h, w);
                (*l, Array4::zeros((1, l.channels(), mh, mw)))
            })
            .collect();
        let grams = self.grams(image, None, Some(&mut content))?;
        let style = self
            .objective
            .style
            .iter()
            .zip(grams)
            .map(|((l, _), r)| (*l, (r / gram_count(*l, h, w)).mapv(|v| v as f32)))
            .collect();
        Ok(Targets { content, style, guides: None })
    }

    /// The guided Gram matrices of `image`, (F⊙g_r)(F⊙g_r)ᵀ/(C·Σg_r²) per region
    /// (0 for a region empty at a layer), `guides` being at `image`'s maps.
    pub fn guided_grams(
        &mut self,
        image: ArrayView4<f32>,
        guides: &Guides,
    ) -> Result<Vec<(Layer, Array3<f32>)>, Error> {
        let sums = self.grams(image, Some(guides), None)?;
        self.objective
            .style
            .iter()
            .zip(sums)
            .map(|((l, _), mut r)| {
                let g = guides.get(*l).ok_or_else(|| Error::InvalidSetting(format!("no guide for {l}")))?;
                let (_, norm) = region_weights(g.view(), l.channels());
                for (mut r, n) in r.outer_iter_mut().zip(&norm) {
                    r *= f64::from(*n);
                }
                Ok((*l, r.mapv(|v| v as f32)))
            })
            .collect()
    }

    /// R_l = Σ_tiles (F⊙g_r)(F⊙g_r)ᵀ per style layer and region (one region, g the
    /// core's mask, without guides); with `content`, also copies each core's content
    /// features into those whole-image maps.
    fn grams(
        &mut self,
        image: ArrayView4<f32>,
        guides: Option<&Guides>,
        mut content: Option<&mut Vec<(Layer, Array4<f32>)>>,
    ) -> Result<Vec<Array3<f64>>, Error> {
        let tiling = Tiling::new(&self.objective, image.shape()[2], image.shape()[3], self.core);
        let regions = guides.map_or(1, Guides::regions);
        let mut sums: Vec<Array3<f64>> =
            self.objective.style.iter().map(|(l, _)| Array3::zeros((regions, l.channels(), l.channels()))).collect();
        let mut held = Vec::new();
        for tile in &tiling.tiles {
            let inputs = tile_inputs(&self.objective, tile, &image, guides, &mut held);
            let out = self.session.run(inputs)?;
            for ((l, _), sum) in self.objective.style.iter().zip(&mut sums) {
                let g = out.view::<Ix3>(&format!("gram/{l}"))?;
                Zip::from(sum).and(&g).for_each(|s, &g| *s += f64::from(g));
            }
            if let Some(content) = content.as_deref_mut() {
                for (l, map) in content.iter_mut() {
                    let f = out.view::<Ix4>(&format!("features/{l}"))?;
                    let (win, core) = tile.cells(l.block());
                    let local = |a: usize| core[a].start - win[a].start..core[a].end - win[a].start;
                    map.slice_mut(s![.., .., core[0].clone(), core[1].clone()]).assign(&f.slice(s![
                        ..,
                        ..,
                        local(0),
                        local(1)
                    ]));
                }
            }
        }
        Ok(sums)
    }
}

/// N = C·h·w of a layer's map for an image of `height × width` (Grams are R / N).
fn gram_count(layer: Layer, height: usize, width: usize) -> f64 {
    let (h, w) = map_size(layer.block(), height, width);
    (layer.channels() * h * w) as f64
}

/// The loss and its gradient over tiles (see the module docs).
pub(crate) struct TiledLoss {
    features: TileFeatures,
    gradient: Session,
}

impl TiledLoss {
    pub fn new(rt: &Runtime, objective: &LossSpec, weights: &VggWeights, core: usize) -> Result<Self, Error> {
        let gradient = rt.session(&tile_gradient_graph(objective, weights, rt.storage())?)?;
        Ok(Self { features: TileFeatures::new(rt, objective, weights, core)?, gradient })
    }

    /// Loss at `image`; writes the gradient into `grad` and the terms (in
    /// [`crate::graph::term_names`] order) into `terms`. `regions` holds each style
    /// layer's region weights λ_r and normalizations ([`Targets::region_weights`]).
    pub fn evaluate(
        &mut self,
        targets: &Targets,
        regions: &[(Array1<f32>, Array1<f32>)],
        image: ArrayView4<f32>,
        mut grad: ArrayViewMut4<f32>,
        terms: &mut [f32],
    ) -> Result<f32, Error> {
        let obj = self.features.objective.clone();
        let (h, w) = (image.shape()[2], image.shape()[3]);

        // Pass 1: the Gram sums, then each style term and 2·∂loss/∂R_r.
        //   term = w·Σ_r λ_r·mean((n_r·R_r − A_r)²) over C² entries, n_r = 1/(C·Σg_r²);
        //   ∂term/∂R_r = 2wλ_r·n_r·(n_r·R_r − A_r)/C².
        let guides = targets.guides.as_ref();
        let sums = if obj.style.is_empty() { Vec::new() } else { self.features.grams(image, guides, None)? };
        let mut style_coef = Vec::with_capacity(obj.style.len());
        let mut style_terms = Vec::with_capacity(obj.style.len());
        for ((((l, wt), r), (_, a)), (lambda, norm)) in obj.style.iter().zip(sums).zip(&targets.style).zip(regions) {
            let c2 = (l.channels() * l.channels()) as f64;
            let mut term = 0.0;
            let mut coef = Array3::zeros(r.raw_dim());
            for (((r, a), mut coef), (&lambda, &n)) in
                r.outer_iter().zip(a.outer_iter()).zip(coef.outer_iter_mut()).zip(lambda.iter().zip(norm))
            {
                let (lambda, n, wt) = (f64::from(lambda), f64::from(n), f64::from(*wt));
                let e = Zip::from(&r).and(&a).map_collect(|&r, &a| n * r - f64::from(a));
                term += wt * lambda * e.iter().map(|v| v * v).sum::<f64>() / c2;
                coef.assign(&e.mapv(|v| (4.0 * wt * lambda * n * v / c2) as f32));
            }
            style_terms.push(term);
            style_coef.push(coef);
        }

        // Pass 2: each tile's share of the gradient, added at its window.
        //   content term = w·Σ(F − T)²/N;  ∂/∂F = (2w/N)(F − T).
        let content_coef: Vec<Array1<f32>> = obj
            .content
            .iter()
            .map(|(l, wt)| Array1::from_elem(1, (2.0 * f64::from(*wt) / gram_count(*l, h, w)) as f32))
            .collect();
        let mut sumsq = vec![0f64; obj.content.len()];
        grad.fill(0.0);
        let tiling = Tiling::new(&obj, h, w, self.features.core);
        let mut held = Vec::new();
        for tile in &tiling.tiles {
            let windows: Vec<Array4<f32>> = targets
                .content
                .iter()
                .map(|(l, t)| {
                    let (win, _) = tile.cells(l.block());
                    t.slice(s![.., .., win[0].clone(), win[1].clone()]).as_standard_layout().into_owned()
                })
                .collect();
            let mut inputs = tile_inputs(&obj, tile, &image, guides, &mut held);
            for (((l, _), t), k) in obj.content.iter().zip(&windows).zip(&content_coef) {
                inputs.push((format!("content/{l}").into(), t.view().into_dyn()));
                inputs.push((format!("coef/content_{l}").into(), k.view().into_dyn()));
            }
            for ((l, _), k) in obj.style.iter().zip(&style_coef) {
                inputs.push((format!("coef/style_{l}").into(), k.view().into_dyn()));
            }
            let out = self.gradient.run(inputs)?;
            for ((l, _), s) in obj.content.iter().zip(&mut sumsq) {
                *s += f64::from(out.scalar(&format!("sumsq/content_{l}"))?);
            }
            let g = out.view::<Ix4>("grad")?;
            let mut at = grad.slice_mut(s![.., .., tile.window[0].clone(), tile.window[1].clone()]);
            if g.shape() != at.shape() {
                return Err(Error::Shape {
                    what: "tile gradient".into(),
                    expected: at.shape().to_vec(),
                    actual: g.shape().to_vec(),
                });
            }
            at += &g;
        }

        // The terms, in term_names order: content, style, tv.
        let mut all: Vec<f64> =
            obj.content.iter().zip(&sumsq).map(|((l, wt), s)| f64::from(*wt) * s / gram_count(*l, h, w)).collect();
        all.extend(style_terms);
        if obj.tv > 0.0 {
            all.push(tv(image, obj.tv, grad.view_mut()));
        }
        for (t, v) in terms.iter_mut().zip(&all) {
            *t = *v as f32;
        }
        Ok(all.iter().sum::<f64>() as f32)
    }
}

/// `tv · ½ Σ (Δp)²` over horizontal and vertical neighbours of the preprocessed
/// image p = 255·BGR − mean (Δp = 255·Δx, the mean cancels, the channel order
/// does not matter); adds ∂/∂x = 255²·tv·(Δ before − Δ after) into `grad`.
fn tv(image: ArrayView4<f32>, weight: f32, mut grad: ArrayViewMut4<f32>) -> f64 {
    let k = f64::from(weight) * 255.0 * 255.0;
    let mut total = 0f64;
    for (x, mut g) in image.axis_iter(Axis(1)).zip(grad.axis_iter_mut(Axis(1))) {
        let (x, mut g) = (x.index_axis_move(Axis(0), 0), g.index_axis_mut(Axis(0), 0));
        for axis in [Axis(0), Axis(1)] {
            let n = x.len_of(axis);
            if n < 2 {
                continue;
            }
            let hi = x.slice_axis(axis, (1..n).into());
            let lo = x.slice_axis(axis, (0..n - 1).into());
            let d = &hi - &lo;
            total += d.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
            // Δ_k = x_{k+1} − x_k enters x_{k+1} with +1 and x_k with −1.
            g.slice_axis_mut(axis, (1..n).into()).scaled_add(k as f32, &d);
            g.slice_axis_mut(axis, (0..n - 1).into()).scaled_add(-k as f32, &d);
        }
    }
    0.5 * k * total
}
