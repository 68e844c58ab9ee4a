//! Feature deconvolution (Deep Image Analogy): the features at one layer whose forward
//! pass through the trunk matches a target at a deeper layer, as an
//! [`nst_optim::Objective`] over the shallower features.

use crate::Error;
use crate::config::Pool;
use crate::graph::slice_graph;
use crate::layers::Layer;
use crate::runtime::{Runtime, Session};
use crate::weights::VggWeights;
use ndarray::{Array4, ArrayView1, ArrayView4, ArrayViewMut1, ArrayViewMut4};

/// `mean((VGG_{from→to}(x) − target)²)` and its gradient with respect to `x`, the
/// features at `from`, from one run of the slice graph ([`crate::graph::slice_graph`]).
pub struct Deconvolution {
    session: Session,
    from: Layer,
    to: Layer,
    target: Array4<f32>,
    /// The shape of `x`: `from`'s maps of the image `target` is the `to` maps of.
    shape: [usize; 4],
}

impl Deconvolution {
    /// The slice from the ReLU `from` to the deeper ReLU `to`, with its session; the target
    /// is set by [`Deconvolution::set_target`].
    pub fn new(rt: &Runtime, (from, to): (Layer, Layer), pool: Pool, weights: &VggWeights) -> Result<Self, Error> {
        let session = rt.session(&slice_graph(from, to, pool, weights)?)?;
        Ok(Self {
            session,
            from,
            to,
            target: Array4::zeros((1, to.channels(), 1, 1)),
            shape: [1, from.channels(), 1, 1],
        })
    }

    /// The target at `to` (1, C_to, h, w), and the size of `from`'s maps `(height, width)`
    /// that leads to it (pooling floors odd sizes, so both are given).
    pub fn set_target(&mut self, target: Array4<f32>, (height, width): (usize, usize)) -> Result<(), Error> {
        let t = target.shape();
        let pools = self.to.block() - self.from.block();
        let (h, w) = (height >> pools, width >> pools);
        if t[0] != 1 || t[1] != self.to.channels() || t[2] != h || t[3] != w || h == 0 || w == 0 {
            return Err(Error::Shape {
                what: format!("target at {} for {}×{} maps at {}", self.to, width, height, self.from),
                expected: vec![1, self.to.channels(), h, w],
                actual: t.to_vec(),
            });
        }
        self.target = target;
        self.shape = [1, self.from.channels(), height, width];
        Ok(())
    }

    /// The shape of the features optimized: (1, C_from, height, width).
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The loss at `x`; writes ∂loss/∂x into `grad`.
    pub fn evaluate(&mut self, x: ArrayView4<f32>, mut grad: ArrayViewMut4<f32>) -> Result<f32, Error> {
        for (what, shape) in [("features", x.shape()), ("gradient", grad.shape())] {
            if shape != self.shape {
                return Err(Error::Shape { what: what.into(), expected: self.shape.to_vec(), actual: shape.to_vec() });
            }
        }
        let x = x.as_standard_layout();
        let out = self.session.run(vec![
            ("features".into(), x.view().into_dyn()),
            (format!("content/{}", self.to).into(), self.target.view().into_dyn()),
        ])?;
        let loss = out.scalar("loss")?;
        grad.assign(&out.view::<ndarray::Ix4>("grad")?);
        Ok(loss)
    }
}

impl nst_optim::Objective<f32> for Deconvolution {
    type Error = Error;

    /// `x` and `g` are the features and their gradient flattened from [`Deconvolution::shape`].
    fn value_and_gradient(&mut self, x: ArrayView1<f32>, g: ArrayViewMut1<f32>) -> Result<f32, Error> {
        let shape = self.shape;
        let bad = |what: &str, n: usize| Error::Shape { what: what.into(), expected: shape.to_vec(), actual: vec![n] };
        let n = (x.len(), g.len());
        let x = x.into_shape_with_order(shape).map_err(|_| bad("features", n.0))?;
        let g = g.into_shape_with_order(shape).map_err(|_| bad("gradient", n.1))?;
        self.evaluate(x, g)
    }
}
