//! ONNX Runtime: the library, the environment, the execution provider, sessions.

use crate::Error;
use onnx_protobuf::{Message, ModelProto};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use std::path::Path;

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

/// A loaded ONNX Runtime and the provider sessions are placed on.
pub struct Runtime {
    env: Environment,
    cuda: bool,
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

impl Runtime {
    /// Loads ONNX Runtime from `library` (which `Cache::runtime_library` provisions)
    /// for `device`; `log` hears which provider was chosen.
    pub fn load(device: Device, library: &Path, log: &dyn Fn(&str)) -> Result<Self, Error> {
        let want_cuda = device.wants_cuda()?;
        let lib = library;
        let env = ort::init_from(lib)
            .map_err(|e| Error::Runtime { path: lib.into(), reason: e.to_string() })?
            .with_name("nst")
            .with_telemetry(false)
            .build()
            .map_err(|e| Error::Runtime { path: lib.into(), reason: e.to_string() })?;
        let mut rt = Runtime { env, cuda: want_cuda };
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
                    rt.cuda = false;
                }
            }
        } else if device == Device::Auto {
            log("no GPU found; running on CPU");
        }
        Ok(rt)
    }

    /// `true` when sessions run on CUDA.
    pub fn is_cuda(&self) -> bool {
        self.cuda
    }

    /// A session for `model`, optimized once, on this runtime's provider.
    ///
    /// On CPU, memory is allocated per run rather than from ONNX Runtime's arena,
    /// which grows by doubling and keeps each session's peak: measured on the
    /// `gatys` loss at 768², 3.4 GB peak and 4.4 s per evaluation against 6.2 GB
    /// and 7.6 s with the arena (with [`prepare_process`]; 256² is 8 % slower).
    pub fn session(&self, model: &ModelProto) -> Result<Session, Error> {
        let bytes = model.write_to_bytes().map_err(|e| Error::Graph {
            node: "model".into(),
            op: "serialize".into(),
            reason: e.to_string(),
        })?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut builder = Session::builder(&self.env)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(ort::Error::from)?
            .with_intra_threads(threads)
            .map_err(ort::Error::from)?;
        if self.cuda {
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(ort::Error::from)?;
        } else {
            builder = builder
                .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
                .map_err(ort::Error::from)?;
        }
        Ok(builder.commit_from_memory(&bytes)?)
    }
}

/// The session output `name` as an owned array of dimensionality `D`.
pub(crate) fn output<D: ndarray::Dimension>(
    out: &ort::session::SessionOutputs<'_>,
    name: &str,
) -> Result<ndarray::Array<f32, D>, Error> {
    Ok(output_view(out, name)?.to_owned())
}

/// The session output `name` viewed with dimensionality `D`.
pub(crate) fn output_view<'a, D: ndarray::Dimension>(
    out: &'a ort::session::SessionOutputs<'_>,
    name: &str,
) -> Result<ndarray::ArrayView<'a, f32, D>, Error> {
    let a = out[name].try_extract_array::<f32>()?;
    a.into_dimensionality::<D>().map_err(|e| Error::Graph {
        node: name.into(),
        op: "output".into(),
        reason: e.to_string(),
    })
}
