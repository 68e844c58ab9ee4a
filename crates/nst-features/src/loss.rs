//! The loss-and-gradient graph as an [`nst_optim::Objective`].

use crate::Error;
use crate::config::LossSpec;
use crate::features::FeatureNet;
use crate::graph::{Regions, loss_graph, term_names};
use crate::runtime::Inputs;
use crate::runtime::Runtime;
use crate::targets::Targets;
use crate::tiles::{Passes, TiledLoss, map_size};
use crate::weights::VggWeights;
use ndarray::{Array1, ArrayView1, ArrayView4, ArrayViewMut1, ArrayViewMut4, Zip};

/// The style-transfer loss of images of one size, with its gradient, from one session run.
///
/// The session is built once and the targets bound to it (copied to the device it runs
/// on once); each evaluation passes the image in and copies the loss, the terms and the
/// gradient out.
pub struct Loss {
    passes: Passes<TiledLoss>,
    targets: Targets,
    /// Per style layer, each region's weight and Gram normalization (from the guides).
    regions: Vec<(Array1<f32>, Array1<f32>)>,
    height: usize,
    width: usize,
    names: Vec<String>,
    terms: Vec<f32>,
}

impl Loss {
    /// Builds the loss graph of `objective` for images of `height × width`: one Gram per
    /// style layer, or one per region when the targets carry guides.
    pub fn new(
        rt: &Runtime,
        objective: &LossSpec,
        weights: &VggWeights,
        targets: Targets,
        height: usize,
        width: usize,
    ) -> Result<Self, Error> {
        objective.check_size(height, width)?;
        let regions = if targets.guides.is_some() { Regions::Guided } else { Regions::Whole };
        let passes = Passes::Whole(rt.session(&loss_graph(objective, weights, regions, rt.storage())?)?);
        Self::with_passes(passes, objective, targets, height, width)
    }

    /// The same loss evaluated over tiles of about `core` pixels (see [`crate::Tiling`]):
    /// the same value and gradient (to float rounding) in far less memory, at
    /// about 1.5–2× the time.
    pub fn tiled(
        rt: &Runtime,
        objective: &LossSpec,
        weights: &VggWeights,
        targets: Targets,
        (height, width): (usize, usize),
        core: usize,
    ) -> Result<Self, Error> {
        objective.check_size(height, width)?;
        let passes = Passes::Tiled(TiledLoss::new(rt, objective, weights, core)?);
        Self::with_passes(passes, objective, targets, height, width)
    }

    /// The loss of `content` and `styles` (with their blend weights) for images of the
    /// content's size: the targets, then the loss, over tiles of about `tile` pixels when given.
    pub fn from_images(
        rt: &Runtime,
        spec: &LossSpec,
        weights: &VggWeights,
        content: ArrayView4<f32>,
        styles: &[(ArrayView4<f32>, f32)],
        tile: Option<usize>,
    ) -> Result<Self, Error> {
        let targets = FeatureNet::open(rt, spec, weights, tile)?.targets(content, styles)?;
        Self::open(rt, spec, weights, targets, (content.shape()[2], content.shape()[3]), tile)
    }

    /// [`Loss::tiled`] with tiles of about `tile` pixels when given, else [`Loss::new`].
    pub fn open(
        rt: &Runtime,
        spec: &LossSpec,
        weights: &VggWeights,
        targets: Targets,
        (height, width): (usize, usize),
        tile: Option<usize>,
    ) -> Result<Self, Error> {
        match tile {
            Some(core) => Self::tiled(rt, spec, weights, targets, (height, width), core),
            None => Self::new(rt, spec, weights, targets, height, width),
        }
    }

    fn with_passes(
        passes: Passes<TiledLoss>,
        objective: &LossSpec,
        targets: Targets,
        height: usize,
        width: usize,
    ) -> Result<Self, Error> {
        check_guides(objective, &targets, height, width)?;
        let names = term_names(objective);
        let terms = vec![0.0; names.len()];
        let regions = targets.region_weights(height, width);
        let mut loss = Self { passes, targets, regions, height, width, names, terms };
        loss.bind_targets()?;
        Ok(loss)
    }

    /// Binds the targets to the whole image's session (tiles take their own slices each pass).
    fn bind_targets(&mut self) -> Result<(), Error> {
        if let Passes::Whole(session) = &mut self.passes {
            session.bind(target_inputs(&self.targets, &self.regions))?;
        }
        Ok(())
    }

    /// Replaces the targets (same layers and shapes), keeping the session.
    pub fn set_targets(&mut self, targets: Targets) -> Result<(), Error> {
        if targets.shapes() != self.targets.shapes() || targets.guides.is_some() != self.targets.guides.is_some() {
            return Err(Error::Shape {
                what: "targets".into(),
                expected: self.targets.shapes().concat(),
                actual: targets.shapes().concat(),
            });
        }
        self.regions = targets.region_weights(self.height, self.width);
        self.targets = targets;
        self.bind_targets()
    }

    /// The image size this loss is for.
    pub fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The terms of the last evaluation, by name (`content_relu4_2`, `style_relu1_1`, `tv`).
    pub fn terms(&self) -> impl Iterator<Item = (&str, f32)> {
        self.names.iter().map(String::as_str).zip(self.terms.iter().copied())
    }

    /// Loss at `image` (1, 3, H, W); writes ∂loss/∂image into `grad`.
    pub fn evaluate(&mut self, image: ArrayView4<f32>, mut grad: ArrayViewMut4<f32>) -> Result<f32, Error> {
        let expected = [1, 3, self.height, self.width];
        for (what, shape) in [("image", image.shape()), ("gradient", grad.shape())] {
            if shape != expected {
                return Err(Error::Shape { what: what.into(), expected: expected.to_vec(), actual: shape.to_vec() });
            }
        }
        let session = match &mut self.passes {
            Passes::Whole(session) => session,
            Passes::Tiled(tiled) => return tiled.evaluate(&self.targets, &self.regions, image, grad, &mut self.terms),
        };
        let out = session.run(vec![("image".into(), image.into_dyn())])?;
        let loss = out.scalar("loss")?;
        for (name, v) in self.names.iter().zip(self.terms.iter_mut()) {
            *v = out.scalar(&format!("term/{name}"))?;
        }
        let g = out.view::<ndarray::Ix4>("grad")?;
        if g.shape() != expected {
            return Err(Error::Shape {
                what: "gradient output".into(),
                expected: expected.to_vec(),
                actual: g.shape().to_vec(),
            });
        }
        // In parallel: 50 MB at 2048², between the GPU's pass and the optimizer's.
        Zip::from(&mut grad).and(&g).par_for_each(|d, &v| *d = v);
        Ok(loss)
    }
}

/// The loss graph's target inputs, by name: content features, style Grams, and per guided
/// style layer its guides, region weights and Gram normalizations.
fn target_inputs<'a>(targets: &'a Targets, regions: &'a [(Array1<f32>, Array1<f32>)]) -> Inputs<'a> {
    let mut inputs: Inputs<'_> = Vec::new();
    for (l, t) in &targets.content {
        inputs.push((format!("content/{l}").into(), t.view().into_dyn()));
    }
    for (l, t) in &targets.style {
        inputs.push((format!("style/{l}").into(), t.view().into_dyn()));
    }
    if let Some(guides) = &targets.guides {
        for ((l, g), (lambda, norm)) in guides.layers.iter().zip(regions) {
            inputs.push((format!("guide/{l}").into(), g.view().into_dyn()));
            inputs.push((format!("lambda/{l}").into(), lambda.view().into_dyn()));
            inputs.push((format!("norm/{l}").into(), norm.view().into_dyn()));
        }
    }
    inputs
}

/// Checks that guides, when given, are one per style layer in order, at the maps of an
/// image of `height × width`, with as many regions as each layer has style Grams.
fn check_guides(objective: &LossSpec, targets: &Targets, height: usize, width: usize) -> Result<(), Error> {
    let Some(guides) = &targets.guides else { return Ok(()) };
    let guided: Vec<String> = guides.layers.iter().map(|(l, _)| l.to_string()).collect();
    let style: Vec<String> = objective.style.iter().map(|(l, _)| l.to_string()).collect();
    if guided != style {
        return Err(Error::InvalidSetting(format!(
            "guides are for {} but the style layers are {}",
            guided.join(", "),
            style.join(", ")
        )));
    }
    for ((l, g), (_, a)) in guides.layers.iter().zip(&targets.style) {
        let (h, w) = map_size(l.block(), height, width);
        let expected = [a.shape()[0], 1, h, w];
        if g.shape() != expected {
            return Err(Error::Shape {
                what: format!("guide of {l}"),
                expected: expected.to_vec(),
                actual: g.shape().to_vec(),
            });
        }
    }
    Ok(())
}

impl nst_optim::Objective<f32> for Loss {
    type Error = Error;

    /// `x` and `g` are the image and its gradient flattened from (1, 3, H, W).
    fn value_and_gradient(&mut self, x: ArrayView1<f32>, g: ArrayViewMut1<f32>) -> Result<f32, Error> {
        let shape = (1, 3, self.height, self.width);
        let bad = |what: &str, n: usize| Error::Shape {
            what: what.into(),
            expected: vec![1, 3, shape.2, shape.3],
            actual: vec![n],
        };
        let n = (x.len(), g.len());
        let x = x.into_shape_with_order(shape).map_err(|_| bad("image", n.0))?;
        let g = g.into_shape_with_order(shape).map_err(|_| bad("gradient", n.1))?;
        self.evaluate(x, g)
    }
}
