//! The optimizer's correction pairs in the memory of the device the network runs on: an
//! [`nst_optim::PairMirror`] whose passes over the pairs are matrix products there.
//!
//! L-BFGS(-B) passes over its pairs two or three times per iteration. At 2048² with 100
//! pairs they are 10 GB; on an H200 the products of two vectors with all of them take 2.5 ms
//! (ONNX Runtime's profile), where the host's memory needs tens of milliseconds. The history
//! keeps its own copy in host memory ([`nst_optim::History::set_mirror`]); what crosses the
//! bus per pass is the vectors the pass is with (`g`, `d`) and its result, through pinned
//! host memory. That costs about what a host pass over a few dozen pairs does, so the pairs
//! go over once the history holds [`DevicePairs::PAYS_FROM`].
//!
//! The products run in fp32, without TF32: the pairs' inner products are the history's
//! curvature, and TF32's 10-bit inputs would blur them.
//!
//! The store graph writes a slot's rows that the other graphs, in sessions of their own (on
//! streams of their own), read. Every run ends with an output in host memory, which ONNX
//! Runtime waits for before it returns: a run's writes are done before the next run starts.

use crate::graph::pairs::{combine_graph, dots_graph, store_graph, zeros_graph};
use crate::runtime::CudaOptions;
use crate::{Error, Runtime};
use ndarray::{ArrayView1, ArrayViewD, ArrayViewMut1, ArrayViewMut2, Zip};
use nst_optim::{MirrorError, PairMirror};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{Shape, Tensor, TensorRefMut};
use std::collections::HashMap;

/// `capacity` correction pairs of `n` variables on the device of a [`Runtime`] (ONNX
/// Runtime's, on CUDA or the CPU); see the module docs.
pub struct DevicePairs {
    n: usize,
    capacity: usize,
    /// Each slot's `s` and `y`, `[capacity, n]` each, on the device.
    s: Tensor<f32>,
    y: Tensor<f32>,
    /// The pairs are in CUDA's memory (else in host memory, for ONNX Runtime's CPU provider).
    on_cuda: bool,
    store: Graph,
    dots: Graph,
    combine: Graph,
}

/// A session with its binding, and the host tensors its inputs are copied from (kept, so a
/// run allocates nothing), by name and shape.
struct Graph {
    session: Session,
    binding: IoBinding,
    /// On CUDA, the host tensors and the outputs are in pinned memory, which the GPU copies
    /// from and to directly (measured on an H200 at 2048²: two vectors in, 16.7 ms instead of
    /// 22.5 with pageable memory).
    pinned: Option<Allocator>,
    host: HashMap<(&'static str, usize), Tensor<f32>>,
}

impl DevicePairs {
    /// The number of pairs from which, on CUDA, passes over them on the GPU pay for the
    /// vectors they copy there and back ([`PairMirror::pays_from`]). Measured on an H200 and
    /// its host (16 cores), L-BFGS-B at 512²: 60 evaluations (up to about 50 pairs) took 17.4
    /// ms of optimizer per evaluation with the pairs on the GPU against 15.0 without; 500
    /// evaluations (the history mostly full, 100 pairs) 26.2 against 32.9. Without bounds at
    /// 2048², 30 evaluations (up to 29 pairs): 51.0 against 45.2.
    pub const PAYS_FROM: usize = 40;

    /// Device memory the pairs take: `s` and `y` of each slot in f32, and the vectors the
    /// graphs copy in and work on: a pair to store, up to three vectors to take products
    /// with, a combination's two terms and its sum (a dozen vectors, with room).
    pub fn bytes(n: usize, capacity: usize) -> u64 {
        ((2 * capacity + 12) * n * std::mem::size_of::<f32>()) as u64
    }

    /// Host memory beside the history's own: the vectors copied in and out, kept (in pinned
    /// memory on CUDA) for each number of rows a graph has been given.
    pub fn host_bytes(n: usize) -> u64 {
        (12 * n * std::mem::size_of::<f32>()) as u64
    }

    /// Whether a run of `evaluations` with a history of `pairs` ever holds the
    /// [`PAYS_FROM`](Self::PAYS_FROM) pairs from which the device's copy pays (the first
    /// pair comes with the second evaluation).
    pub fn pay_for(pairs: usize, evaluations: usize) -> bool {
        pairs.min(evaluations.saturating_sub(1)) >= Self::PAYS_FROM
    }

    /// Whether `capacity` pairs of `n` variables can be held: ONNX Runtime's CUDA kernels
    /// index a tensor's elements with 32-bit integers.
    pub fn fits(n: usize, capacity: usize) -> bool {
        capacity.saturating_mul(n) < 1 << 31
    }

    /// `capacity` slots of `n` variables, zeros, on `runtime`'s device.
    pub fn new(runtime: &Runtime, n: usize, capacity: usize) -> Result<Self, Error> {
        if !Self::fits(n, capacity) {
            return Err(Error::InvalidSetting(format!("{capacity} pairs of {n} variables: more than 2³¹ values")));
        }
        let cuda = runtime.is_cuda().then_some(CudaOptions { tf32: false, nhwc: false });
        let on_cuda = cuda.is_some();
        let open = |model| -> Result<Graph, Error> {
            let session = runtime.onnx_runtime_session(&model, cuda)?;
            let binding = session.create_binding()?;
            let pinned = if on_cuda { Some(Allocator::new(&session, pinned_memory()?)?) } else { None };
            Ok(Graph { session, binding, pinned, host: HashMap::new() })
        };
        let (c, width) = (capacity as i64, n as i64);
        let mut store = open(store_graph(c, width)?)?;
        let allocator = Allocator::new(&store.session, memory(on_cuda)?)?;
        let (mut s, mut y) = (Tensor::new(&allocator, [capacity, n])?, Tensor::new(&allocator, [capacity, n])?);
        let mut zeros = open(zeros_graph(c, width)?)?;
        zeros.binding.bind_output("zero_s", &mut s)?;
        zeros.binding.bind_output("zero_y", &mut y)?;
        zeros.session.run_binding(&zeros.binding)?;
        let mut dots = open(dots_graph(c, width)?)?;
        let mut combine = open(combine_graph(c, width)?)?;
        for g in [&mut store, &mut dots, &mut combine] {
            g.binding.bind_input("S", &s)?;
            g.binding.bind_input("Y", &y)?;
        }
        Ok(DevicePairs { n, capacity, s, y, on_cuda, store, dots, combine })
    }

    /// Row `slot` of `pairs` (`[capacity, n]` on the device), as a tensor of its own.
    fn row(&self, pairs: &Tensor<f32>, slot: usize) -> Result<TensorRefMut<'static, f32>, Error> {
        let start = pairs.data_ptr().cast::<f32>().cast_mut().wrapping_add(slot * self.n);
        // SAFETY: the row lies inside `pairs`, `self.s` or `self.y`. The view is bound as an
        // output of the store graph only, whose binding holds both as inputs (`new` binds them,
        // nothing unbinds them) and so keeps their memory as long as it keeps the view.
        Ok(unsafe { TensorRefMut::from_raw(memory(self.on_cuda)?, start.cast(), Shape::new([self.n as i64]))? })
    }
}

impl Graph {
    /// Copies `rows` (each of length n; zero where `keep` is false, if given) into the host
    /// tensor `name` of shape `[rows, n]` and binds it.
    fn bind_rows(&mut self, name: &'static str, rows: &[ArrayView1<f32>], keep: Option<&[bool]>) -> Result<(), Error> {
        let n = rows.first().map_or(0, |r| r.len());
        let key = (name, rows.len());
        if !self.host.contains_key(&key) {
            let tensor = match &self.pinned {
                Some(pinned) => Tensor::new(pinned, [rows.len(), n])?,
                None => Tensor::from_array(ndarray::Array2::<f32>::zeros((rows.len(), n)))?,
            };
            self.host.insert(key, tensor);
        }
        let tensor = self.host.get_mut(&key).expect("inserted above");
        let mut into = ArrayViewMut2::from_shape((rows.len(), n), tensor.extract_tensor_mut().1)
            .expect("a host tensor of the rows' shape");
        for (mut to, from) in into.outer_iter_mut().zip(rows) {
            match keep {
                None => Zip::from(&mut to).and(from).par_for_each(|t, &v| *t = v),
                Some(keep) => Zip::from(&mut to).and(from).and(&ndarray::aview1(keep)).par_for_each(|t, &v, &k| {
                    *t = if k { v } else { 0.0 };
                }),
            }
        }
        self.binding.bind_input(name, &self.host[&key])?;
        Ok(())
    }

    /// Runs the graph and hands its output `name`, in host memory, to `read`. The output is
    /// bound afresh each run, so its shape follows the inputs'.
    fn run<R>(&mut self, name: &str, read: impl FnOnce(ArrayViewD<'_, f32>) -> R) -> Result<R, Error> {
        let host = if self.pinned.is_some() { pinned_memory()? } else { memory(false)? };
        self.binding.bind_output_to_device(name, &host)?;
        let outputs = self.session.run_binding(&self.binding)?;
        let value = outputs.get(name).ok_or_else(|| Error::Graph {
            node: name.into(),
            op: "output".into(),
            reason: "no such output".into(),
        })?;
        Ok(read(value.try_extract_array::<f32>()?))
    }
}

impl PairMirror<f32> for DevicePairs {
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// [`DevicePairs::PAYS_FROM`] on CUDA; at once on the CPU, where the pairs on the
    /// "device" are a second copy in host memory, to test the code path CUDA takes.
    fn pays_from(&self) -> usize {
        if self.on_cuda { Self::PAYS_FROM } else { 0 }
    }

    fn store(&mut self, slot: usize, s: ArrayView1<f32>, y: ArrayView1<f32>) -> Result<Vec<f32>, MirrorError> {
        if slot >= self.capacity {
            return Err(format!("slot {slot} of {}", self.capacity).into());
        }
        let (row_s, row_y) = (self.row(&self.s, slot)?, self.row(&self.y, slot)?);
        let graph = &mut self.store;
        graph.bind_rows("s", &[s], None)?;
        graph.bind_rows("y", &[y], None)?;
        graph.binding.bind_output("s_copy", row_s)?;
        graph.binding.bind_output("y_copy", row_y)?;
        Ok(graph.run("dots", |dots| dots.iter().copied().collect())?)
    }

    fn dots(&mut self, vs: &[ArrayView1<f32>], keep: Option<&[bool]>) -> Result<Vec<f32>, MirrorError> {
        self.dots.bind_rows("v", vs, keep)?;
        Ok(self.dots.run("dots", |dots| dots.iter().copied().collect())?)
    }

    fn add_combination(&mut self, coefficients: &[f32], mut out: ArrayViewMut1<f32>) -> Result<(), MirrorError> {
        let (a, b) = coefficients.split_at(self.capacity);
        let graph = &mut self.combine;
        graph.bind_rows("a", &[ndarray::aview1(a)], None)?;
        graph.bind_rows("b", &[ndarray::aview1(b)], None)?;
        graph.bind_rows("out", &[out.view()], None)?;
        // Copied straight into `out`, in parallel: at 2048² a serial copy through a vector took
        // 55 ms on an H200's host.
        graph.run("sum", |sum| {
            let sum = sum.as_slice().map(ndarray::aview1).ok_or("a sum not in standard layout")?;
            Zip::from(&mut out).and(&sum).par_for_each(|o, &v| *o = v);
            Ok(())
        })?
    }
}

/// Host memory that CUDA copies from and to directly.
fn pinned_memory() -> Result<MemoryInfo<'static>, Error> {
    Ok(MemoryInfo::new(AllocationDevice::CUDA_PINNED, 0, AllocatorType::Device, MemoryType::CPUOutput)?)
}

/// CUDA's memory, or the host's.
fn memory(cuda: bool) -> Result<MemoryInfo<'static>, Error> {
    let device = if cuda { AllocationDevice::CUDA } else { AllocationDevice::CPU };
    Ok(MemoryInfo::new(device, 0, AllocatorType::Device, MemoryType::Default)?)
}
