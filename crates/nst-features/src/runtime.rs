//! The runtimes graphs run on, behind one [`Session`]: ONNX Runtime (CPU or CUDA, fp32;
//! fp16 on CUDA) and OpenVINO (CPU, bf16) — the library, the environment, the provider,
//! sessions.

use crate::Error;
use crate::graph::{Storage, is_precision_aid};
use ndarray::{ArrayView, ArrayViewD, ArrayViewMutD, Dimension, IxDyn, Zip};
use onnx_protobuf::{Message, ModelProto};
use openvino::{DeviceType, ElementType, PropertyKey, RwPropertyKey};
use ort::environment::Environment;
use ort::ep::ArenaExtendStrategy;
use ort::ep::cuda::ConvAlgorithmSearch;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, RunOptions, SessionOutputs};
use ort::value::Tensor;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Where the network runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when an NVIDIA GPU is present and the provider loads, else CPU (and says so).
    #[default]
    Auto,
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// The CUDA provider; an error when it cannot be used.
    Cuda,
}

/// The arithmetic the network runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats throughout (ONNX Runtime).
    #[default]
    Fp32,
    /// Convolutions and matrix products on bfloat16 inputs with fp32 sums, the losses and
    /// what follows the last of them in fp32 (OpenVINO on a CPU with bf16 units); about
    /// twice as fast as fp32 where the CPU has them.
    Bf16,
    /// The VGG trunk (convolutions, ReLUs, pooling and their gradients) stored and
    /// computed in float16 on the GPU's tensor cores, with scaled gradients; the Gram
    /// products (TF32 where [`CudaOptions::tf32`]), the losses and the image's gradient in
    /// fp32 ([`Storage::F16`]). ONNX Runtime on CUDA.
    Fp16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            "fp16" => Ok(Precision::Fp16),
            other => Err(format!("unknown precision {other:?} (fp32, bf16 or fp16)")),
        }
    }
}

impl Precision {
    /// Its name: `fp32` or `bf16`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether this CPU has instructions for bfloat16 products (AVX512-BF16; every CPU with
/// AMX-BF16 has them too).
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            other => Err(format!("unknown device {other:?} (auto, cpu or cuda)")),
        }
    }
}

/// Sets up the process for nst; call it first thing in a binary, before other threads:
///
/// - ONNX Runtime's telemetry is turned off (`ORT_DISABLE_TELEMETRY=1`, unless the variable
///   is set): from 1.29 on, Linux builds keep a device id and an event store under
///   `~/.cache/Microsoft` and try to send them; the variable is read once, when the library loads.
/// - glibc's allocator keeps freed memory for reuse instead of returning it to the system
///   (no `mmap` per allocation, no trimming, one arena for all threads), so that the large
///   buffers of one session run are reused by the next without page faults: the peak
///   resident memory stays what one run needs, and a tiled evaluation runs ~1.5× faster.
///   A no-op elsewhere than on glibc.
pub fn prepare_process() {
    if std::env::var_os("ORT_DISABLE_TELEMETRY").is_none() {
        // SAFETY: called first thing in a binary, when no other thread reads the environment.
        unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
        // One arena: without mmap a thread's own arena cannot hold large buffers (its heaps
        // are 64 MB at most) and every allocation of a run on a spawned thread (a server's
        // worker) would fall back through the kernel.
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the free memory inside the heap back to the system (glibc's
/// `malloc_trim`): with [`prepare_process`] nothing is returned on its own, so a
/// binary calls this between phases whose buffers differ (the stages of a
/// coarse-to-fine run), lest the holes the last phase left count as resident.
/// A no-op elsewhere than on glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How sessions run on CUDA ([`Runtime::with_cuda`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CudaOptions {
    /// TensorFloat-32 in convolutions and matrix products: fp32 in and out, the products
    /// of 10-bit mantissas summed in fp32 on the tensor cores, as PyTorch runs convolutions
    /// by default. On by default.
    pub tf32: bool,
    /// Convolutions in the NHWC layout, with the transposes around them.
    pub nhwc: bool,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions { tf32: true, nhwc: false }
    }
}

/// A loaded runtime and where its sessions run.
pub struct Runtime {
    /// Shared by the runtimes made from this one ([`Runtime::with_storage`],
    /// [`Runtime::with_new_interrupt`]).
    backend: Arc<Backend>,
    /// ONNX Runtime's profiler writes each session's node timings to a JSON file named
    /// from this prefix ([`Runtime::with_profiling`]).
    profile: Option<std::path::PathBuf>,
    /// What the graphs' trunk holds ([`Runtime::with_storage`]).
    storage: Storage,
    /// Stops its sessions' runs ([`Runtime::interrupt`]).
    interrupt: Interrupt,
}

/// Stops the runs of a [`Runtime`]'s graphs from another thread: once tripped, a run under
/// way ends between two of its operators (on ONNX Runtime; OpenVINO's before it starts),
/// and every later run at once, with [`Error::Interrupted`], until it is reset. A tiled
/// pass, a run per tile, ends at its tile under way. Work outside the graphs stops at its
/// [`Interrupt::stop_point`]s.
///
/// Clones are handles to the same switch. The pairs' graphs ([`crate::DevicePairs`]) do
/// not heed it: they take milliseconds, and an optimizer stopped between its pairs' passes
/// would have to say they failed.
#[derive(Clone)]
pub struct Interrupt(Arc<Switch>);

struct Switch {
    tripped: AtomicBool,
    /// ONNX Runtime's options the runs are given, whose flag its executor checks between
    /// operators; none on OpenVINO.
    runs: Option<RunOptions>,
}

impl Interrupt {
    fn new(runs: Option<RunOptions>) -> Self {
        Interrupt(Arc::new(Switch { tripped: AtomicBool::new(false), runs }))
    }

    /// Stops the run under way, and every later one until [`Interrupt::reset`].
    pub fn interrupt(&self) {
        self.0.tripped.store(true, Ordering::SeqCst);
        if let Some(runs) = &self.0.runs {
            // Setting a flag: ONNX Runtime's call cannot fail.
            let _ = runs.terminate();
        }
    }

    /// Lets runs go on again.
    pub fn reset(&self) {
        if let Some(runs) = &self.0.runs {
            let _ = runs.unterminate();
        }
        self.0.tripped.store(false, Ordering::SeqCst);
    }

    /// Whether it is tripped.
    pub fn is_interrupted(&self) -> bool {
        self.0.tripped.load(Ordering::SeqCst)
    }

    /// [`Error::Interrupted`] once tripped: where work outside the graphs (PatchMatch, a
    /// patch bank's matches) stops.
    pub fn stop_point(&self) -> Result<(), Error> {
        if self.is_interrupted() { Err(Error::Interrupted) } else { Ok(()) }
    }
}

/// A switch of its own that no runtime's runs heed: for work outside the graphs alone
/// (PatchMatch, a patch bank's matches).
impl Default for Interrupt {
    fn default() -> Self {
        Interrupt::new(None)
    }
}

/// Handles are equal when they are to the same switch.
impl PartialEq for Interrupt {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Interrupt {}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_interrupted() { "Interrupt(tripped)" } else { "Interrupt" })
    }
}

enum Backend {
    /// ONNX Runtime, on its CUDA provider (`cuda`: with these options) or its CPU one.
    OnnxRuntime { env: Environment, cuda: Option<CudaOptions> },
    /// OpenVINO's CPU plugin, in `precision` (compiling needs the core mutably).
    OpenVino { core: Mutex<openvino::Core>, precision: Precision },
}

/// The threads a session computes on: every core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Loads `libraries` in order, for good: the CUDA provider, loaded after them, finds each
/// library it needs among those already loaded, by name, before it looks on the system
/// ([`crate::Cache::cuda_libraries`] gives them in an order where each comes after those
/// it needs).
pub fn preload(libraries: &[std::path::PathBuf]) -> Result<(), Error> {
    for l in libraries {
        ort::util::preload_dylib(l).map_err(|e| Error::Cuda {
            reason: format!("cannot load {}: {}", l.display(), last_line(&e.to_string())),
        })?;
    }
    Ok(())
}

fn nvidia_gpu_present() -> bool {
    Path::new("/dev/nvidiactl").exists() || Path::new("/proc/driver/nvidia/version").exists()
}

impl Device {
    /// Whether this device needs ONNX Runtime's CUDA build (`auto` does when an NVIDIA
    /// GPU is present); `cuda` without one is an error, before anything is fetched.
    pub fn wants_cuda(self) -> Result<bool, Error> {
        match self {
            Device::Cpu => Ok(false),
            Device::Cuda if !nvidia_gpu_present() => {
                Err(Error::Cuda { reason: "no NVIDIA GPU or driver found".into() })
            }
            Device::Cuda => Ok(true),
            Device::Auto => Ok(nvidia_gpu_present()),
        }
    }
}

/// The process's ONNX Runtime environment and the library it was loaded from. ONNX Runtime
/// (through `ort`) builds one environment per process and refuses a second even after the
/// first is gone, so it is kept here for every runtime loaded later: two engines opened one
/// after the other (or at once, from two threads) share it.
static ENVIRONMENT: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// The environment of ONNX Runtime from `library`: the process's, or a new one loaded from it.
fn environment(library: &Path) -> Result<Environment, Error> {
    let fail = |reason: String| Error::Runtime { path: library.into(), reason };
    let mut held = ENVIRONMENT.lock().unwrap_or_else(PoisonError::into_inner);
    match &*held {
        Some((loaded, env)) if loaded == library => return Ok(env.clone()),
        Some((loaded, _)) => {
            return Err(fail(format!(
                "this process already runs ONNX Runtime from {}, and can load only one",
                loaded.display()
            )));
        }
        None => {}
    }
    let env = ort::init_from(library)
        .map_err(|e| fail(e.to_string()))?
        .with_name("nst")
        .with_telemetry(false)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    *held = Some((library.to_path_buf(), env.clone()));
    Ok(env)
}

impl Runtime {
    /// Loads ONNX Runtime from `library` (which `Cache::runtime_library` provisions)
    /// for `device`; `log` hears which provider was chosen.
    pub fn load(device: Device, library: &Path, log: &dyn Fn(&str)) -> Result<Self, Error> {
        let want_cuda = device.wants_cuda()?;
        let env = environment(library)?;
        let cuda = want_cuda.then(CudaOptions::default);
        let interrupt = Interrupt::new(Some(RunOptions::new()?));
        let backend = Arc::new(Backend::OnnxRuntime { env: env.clone(), cuda });
        let mut rt = Runtime { backend, profile: None, storage: Storage::F32, interrupt };
        if want_cuda {
            // Probe the provider once with a trivial graph, so failures surface here.
            let mut probe = crate::graph::GraphBuilder::new("probe");
            probe.input("x", &[crate::graph::Dim::Fixed(1)])?;
            probe.wire("y", "Relu", &["x"], vec![])?;
            probe.output("y", &[crate::graph::Dim::Fixed(1)])?;
            match rt.session(&probe.finish()) {
                Ok(_) => log("running on CUDA"),
                Err(e) if device == Device::Cuda => return Err(Error::Cuda { reason: e.to_string() }),
                Err(e) => {
                    log(&format!("CUDA unavailable ({e}); running on CPU"));
                    rt.backend = Arc::new(Backend::OnnxRuntime { env, cuda: None });
                }
            }
        } else if device == Device::Auto {
            log("no GPU found; running on CPU");
        }
        Ok(rt)
    }

    /// Loads OpenVINO's C library `library` (which `Cache::openvino_library` provisions;
    /// its CPU plugin and ONNX reader are found beside it) to run on the CPU in `precision`.
    /// `bf16` on a CPU that OpenVINO finds no bf16 units on is an error.
    pub fn openvino(library: &Path, precision: Precision) -> Result<Self, Error> {
        let fail = |e: &dyn std::fmt::Display| {
            Error::OpenVino(format!("cannot load {}: {}", library.display(), last_line(&e.to_string())))
        };
        openvino_sys::library::load_from(library).map_err(|e| fail(&e))?;
        let mut core = openvino::Core::new().map_err(|e| fail(&e))?;
        let cpu = DeviceType::CPU;
        if precision == Precision::Bf16 {
            let caps = core.get_property(&cpu, &PropertyKey::DeviceCapabilities).map_err(|e| fail(&e))?;
            if !caps.split_whitespace().any(|c| c == "BF16") {
                return Err(Error::InvalidSetting(format!(
                    "this CPU has no bf16 units (OpenVINO finds: {caps}); use --precision fp32"
                )));
            }
        }
        let hint = match precision {
            Precision::Fp32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => {
                return Err(Error::InvalidSetting("fp16 runs on ONNX Runtime's CUDA provider, not OpenVINO".into()));
            }
        };
        core.set_property(&cpu, &RwPropertyKey::HintInferencePrecision, hint).map_err(|e| fail(&e))?;
        core.set_property(&cpu, &RwPropertyKey::InferenceNumThreads, &threads().to_string()).map_err(|e| fail(&e))?;
        Ok(Runtime {
            backend: Arc::new(Backend::OpenVino { core: Mutex::new(core), precision }),
            profile: None,
            storage: Storage::F32,
            interrupt: Interrupt::new(None),
        })
    }

    /// The switch that stops this runtime's runs (see [`Interrupt`]).
    pub fn interrupt(&self) -> Interrupt {
        self.interrupt.clone()
    }

    /// This runtime (the same backend, options and storage) with a switch of its own, for
    /// one of several runs that share it: its sessions stop on that switch alone.
    pub fn with_new_interrupt(&self) -> Result<Runtime, Error> {
        let runs = match *self.backend {
            Backend::OnnxRuntime { .. } => Some(RunOptions::new()?),
            Backend::OpenVino { .. } => None,
        };
        Ok(Runtime {
            backend: self.backend.clone(),
            profile: self.profile.clone(),
            storage: self.storage,
            interrupt: Interrupt::new(runs),
        })
    }

    /// `true` when sessions run on CUDA.
    pub fn is_cuda(&self) -> bool {
        matches!(*self.backend, Backend::OnnxRuntime { cuda: Some(_), .. })
    }

    /// The same runtime with `options` for the sessions opened from now on, when they run
    /// on CUDA (else unchanged).
    pub fn with_cuda(mut self, options: CudaOptions) -> Self {
        if let Backend::OnnxRuntime { env, cuda: Some(_) } = &*self.backend {
            self.backend = Arc::new(Backend::OnnxRuntime { env: env.clone(), cuda: Some(options) });
        }
        self
    }

    /// The same runtime with ONNX Runtime's profiler on in the sessions opened from now on:
    /// each writes its nodes' timings to `prefix_<date>.json` when it closes.
    pub fn with_profiling(mut self, prefix: &Path) -> Self {
        self.profile = Some(prefix.into());
        self
    }

    /// This ONNX Runtime (the same environment and provider, a process has one, and the same
    /// [`Interrupt`]) building graphs whose trunk holds `storage`. [`Storage::F16`] is `--precision fp16` on CUDA;
    /// on the CPU provider it runs too (fp16 tensors, kernels in fp32), where the tests
    /// check its numbers. OpenVINO's precision is its own: an error there.
    pub fn with_storage(&self, storage: Storage) -> Result<Runtime, Error> {
        match *self.backend {
            Backend::OnnxRuntime { .. } => Ok(Runtime {
                backend: self.backend.clone(),
                profile: self.profile.clone(),
                storage,
                // One switch: a run stops whichever of the two it is on.
                interrupt: self.interrupt.clone(),
            }),
            Backend::OpenVino { .. } => {
                Err(Error::InvalidSetting("OpenVINO runs fp32 graphs in the precision it was opened with".into()))
            }
        }
    }

    /// What the trunk of the graphs built for this runtime holds.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The memory free on the GPU sessions run on (the first NVIDIA GPU, as the NVIDIA
    /// driver's management library reports it); `None` on the CPU, or where the library
    /// does not answer.
    pub fn gpu_free_memory(&self) -> Option<u64> {
        if !self.is_cuda() {
            return None;
        }
        let nvml = nvml_wrapper::Nvml::init().ok()?;
        let info = nvml.device_by_index(0).ok()?.memory_info().ok()?;
        Some(info.free)
    }

    /// The arithmetic sessions run in.
    pub fn precision(&self) -> Precision {
        match *self.backend {
            Backend::OnnxRuntime { .. } if self.storage == Storage::F16 => Precision::Fp16,
            Backend::OnnxRuntime { .. } => Precision::Fp32,
            Backend::OpenVino { precision, .. } => precision,
        }
    }

    /// The runtime and where it runs, in words: `ONNX Runtime on CPU`, `OpenVINO bf16 on CPU`.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::OnnxRuntime { cuda: Some(o), .. } => {
                let products = if o.tf32 { "TF32" } else { "fp32" };
                match self.storage {
                    Storage::F16 => format!("ONNX Runtime on CUDA (fp16, {products})"),
                    Storage::F32 => format!("ONNX Runtime on CUDA ({products})"),
                }
            }
            Backend::OnnxRuntime { cuda: None, .. } if self.storage == Storage::F16 => {
                "ONNX Runtime on CPU (fp16)".into()
            }
            Backend::OnnxRuntime { cuda: None, .. } => "ONNX Runtime on CPU".into(),
            Backend::OpenVino { precision, .. } => format!("OpenVINO {precision} on CPU"),
        }
    }

    /// An ONNX Runtime session of `model` on this runtime's provider, CUDA with `cuda`'s
    /// settings; OpenVINO has none.
    pub(crate) fn onnx_runtime_session(
        &self,
        model: &ModelProto,
        cuda: Option<CudaOptions>,
    ) -> Result<ort::session::Session, Error> {
        let Backend::OnnxRuntime { env, .. } = &*self.backend else {
            return Err(Error::InvalidSetting("an ONNX Runtime session on OpenVINO".into()));
        };
        let bytes = serialized(model)?;
        let mut builder = ort::session::Session::builder(env)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(ort::Error::from)?
            .with_intra_threads(threads())
            .map_err(ort::Error::from)?;
        if let Some(prefix) = &self.profile {
            builder = builder.with_profiling(prefix).map_err(ort::Error::from)?;
        }
        match cuda {
            Some(o) => {
                let cuda = ort::ep::CUDA::default()
                    .with_arena_extend_strategy(ArenaExtendStrategy::SameAsRequested)
                    .with_conv_algorithm_search(ConvAlgorithmSearch::Exhaustive)
                    .with_conv_max_workspace(true)
                    .with_tf32(o.tf32)
                    .with_prefer_nhwc(o.nhwc);
                builder =
                    builder.with_execution_providers([cuda.build().error_on_failure()]).map_err(ort::Error::from)?;
            }
            None => {
                builder = builder
                    .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
                    .map_err(ort::Error::from)?;
            }
        }
        Ok(builder.commit_from_memory(&bytes)?)
    }

    /// A session for `model`, optimized once, on this runtime's device.
    ///
    /// ONNX Runtime on CPU allocates memory per run rather than from its arena,
    /// which grows by doubling and keeps each session's peak: measured on the
    /// `gatys` loss at 768², 3.4 GB peak and 4.4 s per evaluation against 6.2 GB
    /// and 7.6 s with the arena (with [`prepare_process`]; 256² is 8 % slower).
    /// On CUDA the arena grows by what is asked (not by doubling), cuDNN tries every
    /// convolution algorithm once per shape and keeps the fastest, with all the
    /// workspace it wants, and TF32 as [`CudaOptions`] say. Only the graph's outputs that
    /// are read (not [`is_precision_aid`]) are fetched into host memory. (Fetching them into
    /// page-locked memory failed in ONNX Runtime 1.31, its copy finding source and destination
    /// the same; the pairs' graphs ([`crate::DevicePairs`]) do fetch into it, with the memory
    /// type `CPUOutput`, which these sessions have not tried yet.)
    pub(crate) fn session(&self, model: &ModelProto) -> Result<Session, Error> {
        match &*self.backend {
            Backend::OnnxRuntime { cuda, .. } => {
                let session = self.onnx_runtime_session(model, *cuda)?;
                let binding = session.create_binding()?;
                let fetch =
                    model.graph.output.iter().map(|o| o.name.clone()).filter(|o| !is_precision_aid(o)).collect();
                let interrupt = self.interrupt();
                Ok(Session::OnnxRuntime(Box::new(BoundSession {
                    session,
                    binding,
                    fetch,
                    inputs: HashMap::new(),
                    interrupt,
                })))
            }
            Backend::OpenVino { core, .. } => {
                let bytes = serialized(model)?;
                let mut core = core.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let model_ov = core.read_model_from_buffer(&bytes, None).map_err(ov("reading the graph"))?;
                let mut compiled = core.compile_model(&model_ov, DeviceType::CPU).map_err(ov("compiling the graph"))?;
                let request = compiled.create_infer_request().map_err(ov("creating a request"))?;
                let inputs = model
                    .graph
                    .input
                    .iter()
                    .filter(|i| compiled.get_input_by_name(&i.name).is_ok())
                    .map(|i| i.name.clone())
                    .collect();
                let outputs = model.graph.output.iter().map(|o| o.name.clone()).collect();
                Ok(Session::OpenVino { request, inputs, outputs, _compiled: compiled, interrupt: self.interrupt() })
            }
        }
    }
}

/// The model's ONNX bytes.
fn serialized(model: &ModelProto) -> Result<Vec<u8>, Error> {
    model.write_to_bytes().map_err(|e| Error::Graph {
        node: "model".into(),
        op: "serialize".into(),
        reason: e.to_string(),
    })
}

/// An OpenVINO error while doing `what`, on one line.
fn ov(what: &str) -> impl Fn(openvino::InferenceError) -> Error + '_ {
    move |e| Error::OpenVino(format!("{what}: {}", last_line(&e.to_string())))
}

/// The last non-empty line of an OpenVINO message: the reason, after the lines that name
/// the check and the source file that failed.
fn last_line(message: &str) -> &str {
    message.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or(message)
}

/// A graph opened on a [`Runtime`], run with named f32 inputs: those that stay the same
/// over many runs (targets) bound once, the others given to each run.
pub(crate) enum Session {
    OnnxRuntime(Box<BoundSession>),
    OpenVino {
        request: openvino::InferRequest,
        /// The inputs the compiled graph takes: OpenVINO's reader drops those nothing uses.
        inputs: HashSet<String>,
        /// The graph's outputs, read back after each run.
        outputs: Vec<String>,
        _compiled: openvino::CompiledModel,
        interrupt: Interrupt,
    },
}

/// An ONNX Runtime session with its inputs and outputs bound: a bound input is on the
/// session's device (copied there once), the outputs read are fetched into host memory.
pub(crate) struct BoundSession {
    session: ort::session::Session,
    binding: IoBinding,
    /// The outputs fetched.
    fetch: Vec<String>,
    /// Each input last bound, in host memory of ONNX Runtime's: bound again with the same
    /// shape, it is copied into this tensor (in parallel, no allocation); with another shape,
    /// a new one replaces it and the outputs are bound again (fetched into new buffers).
    inputs: HashMap<String, Tensor<f32>>,
    interrupt: Interrupt,
}

/// Copies `a` into `data`, a buffer of as many values, in standard (row-major) order, in parallel.
fn copy_into(data: &mut [f32], a: &ArrayViewD<'_, f32>) {
    let mut into = ArrayViewMutD::from_shape(a.raw_dim(), data).expect("a buffer of the array's shape");
    Zip::from(&mut into).and(a).par_for_each(|d, &v| *d = v);
}

/// Named inputs of a run (standard layout).
pub(crate) type Inputs<'a> = Vec<(Cow<'a, str>, ArrayViewD<'a, f32>)>;

impl Session {
    /// Binds `inputs` for every later run, until they are bound again: copied once, to the
    /// device the session runs on.
    pub fn bind(&mut self, inputs: Inputs<'_>) -> Result<(), Error> {
        match self {
            Session::OnnxRuntime(bound) => {
                let BoundSession { binding, fetch, inputs: held, .. } = bound.as_mut();
                let same_shape = |t: &Tensor<f32>, a: &ArrayViewD<'_, f32>| {
                    t.shape().iter().map(|&d| d as usize).eq(a.shape().iter().copied())
                };
                if inputs.iter().any(|(name, a)| held.get(name.as_ref()).is_none_or(|t| !same_shape(t, a))) {
                    binding.clear_outputs();
                    let host = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default)?;
                    for name in fetch.iter() {
                        binding.bind_output_to_device(name.as_str(), &host)?;
                    }
                }
                for (name, a) in inputs {
                    // An owned tensor: ONNX Runtime reads it in place on the CPU, copies it to the
                    // GPU as it binds. (A borrowed view would save the host copy, but ort
                    // 2.0.0-rc.15 then binds a copy of it through a session of its own, which
                    // deadlocks on the CPU.)
                    match held.get_mut(name.as_ref()) {
                        Some(t) if same_shape(t, &a) => copy_into(t.extract_tensor_mut().1, &a),
                        _ => {
                            held.insert(name.to_string(), Tensor::from_array(a.as_standard_layout().into_owned())?);
                        }
                    }
                    binding.bind_input(name.as_ref(), &held[name.as_ref()])?;
                }
            }
            Session::OpenVino { request, inputs: takes, .. } => {
                for (name, a) in inputs.iter().filter(|(name, _)| takes.contains(name.as_ref())) {
                    let what = || format!("input {name}");
                    let dims: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
                    let shape = openvino::Shape::new(&dims).map_err(ov(&what()))?;
                    let mut tensor = openvino::Tensor::new(ElementType::F32, &shape).map_err(ov(&what()))?;
                    copy_into(tensor.get_data_mut::<f32>().map_err(ov(&what()))?, a);
                    request.set_tensor(name, &tensor).map_err(ov(&what()))?;
                }
            }
        }
        Ok(())
    }

    /// Runs the graph on `inputs` and those bound before ([`Session::bind`]), unless its
    /// runtime's [`Interrupt`] is tripped before it ends.
    pub fn run(&mut self, inputs: Inputs<'_>) -> Result<Outputs<'_>, Error> {
        self.bind(inputs)?;
        match self {
            Session::OnnxRuntime(bound) => {
                let BoundSession { session, binding, interrupt, .. } = bound.as_mut();
                interrupt.stop_point()?;
                let out = match &interrupt.0.runs {
                    Some(runs) => session.run_binding_with_options(binding, runs),
                    None => session.run_binding(binding),
                };
                // Tripped meanwhile, ONNX Runtime fails the run with a message of its own.
                interrupt.stop_point()?;
                Ok(Outputs::OnnxRuntime(out?))
            }
            Session::OpenVino { request, outputs, interrupt, .. } => {
                interrupt.stop_point()?;
                request.infer().map_err(ov("running the graph"))?;
                let tensors = outputs
                    .iter()
                    .map(|name| Ok((name.clone(), request.get_tensor(name).map_err(ov(&format!("output {name}")))?)))
                    .collect::<Result<_, Error>>()?;
                Ok(Outputs::OpenVino(tensors))
            }
        }
    }
}

/// What a [`Session::run`] gave, by output name.
pub(crate) enum Outputs<'s> {
    OnnxRuntime(SessionOutputs<'s>),
    OpenVino(Vec<(String, openvino::Tensor)>),
}

impl Outputs<'_> {
    /// The output `name` viewed with dimensionality `D`.
    pub fn view<D: Dimension>(&self, name: &str) -> Result<ArrayView<'_, f32, D>, Error> {
        let shape_error = |reason: String| Error::Graph { node: name.into(), op: "output".into(), reason };
        let a: ArrayViewD<'_, f32> = match self {
            Outputs::OnnxRuntime(out) => {
                let value = out.get(name).ok_or_else(|| shape_error("no such output".into()))?;
                value.try_extract_array::<f32>()?
            }
            Outputs::OpenVino(tensors) => {
                let what = format!("output {name}");
                let ov = ov(&what);
                let (_, t) =
                    tensors.iter().find(|(n, _)| n == name).ok_or_else(|| shape_error("no such output".into()))?;
                let kind = t.get_element_type().map_err(&ov)?;
                if kind != ElementType::F32 {
                    return Err(shape_error(format!("{kind:?}, not f32")));
                }
                // OpenVINO's C API cannot describe a rank-0 shape: a scalar's fails.
                let dims: Vec<usize> = match t.get_shape() {
                    Ok(shape) => shape.get_dimensions().iter().map(|&d| d as usize).collect(),
                    Err(_) if t.get_size().map_err(&ov)? == 1 => Vec::new(),
                    Err(e) => return Err(ov(e)),
                };
                ArrayView::from_shape(IxDyn(&dims), t.get_data::<f32>().map_err(&ov)?)
                    .map_err(|e| shape_error(e.to_string()))?
            }
        };
        a.into_dimensionality::<D>().map_err(|e| shape_error(e.to_string()))
    }

    /// The output `name` as an owned array of dimensionality `D`.
    pub fn array<D: Dimension>(&self, name: &str) -> Result<ndarray::Array<f32, D>, Error> {
        Ok(self.view(name)?.to_owned())
    }

    /// The first value of the output `name` (a loss or a term); NaN when it is empty.
    pub fn scalar(&self, name: &str) -> Result<f32, Error> {
        Ok(self.view::<IxDyn>(name)?.iter().copied().next().unwrap_or(f32::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::last_line;

    #[test]
    fn openvino_messages_become_their_reason_on_one_line() {
        let message = "Exception from src/inference/src/cpp/infer_request.cpp:223:\nCheck '::getPort(port, name, {_impl->get_inputs(), _impl->get_outputs()})' failed at src/inference/src/cpp/infer_request.cpp:223:\nPort for tensor name mask/4 was not found.\n\n";
        assert_eq!(last_line(message), "Port for tensor name mask/4 was not found.");
        assert_eq!(last_line("plain"), "plain");
    }
}
