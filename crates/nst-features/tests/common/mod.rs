//! What the integration tests share: the CPU runtimes and the real weights, made once.

use nst_features::{Cache, Device, Precision, Runtime, VggWeights};
use std::sync::OnceLock;

fn cache() -> Cache {
    Cache::locate().expect("a cache folder")
}

pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        cache().open_runtime(Device::Cpu, Precision::Fp32, &|m| eprintln!("{m}")).expect("ONNX Runtime loads")
    })
}

/// OpenVINO on the CPU in fp32.
#[allow(dead_code)]
pub fn openvino_fp32() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| openvino(Precision::Fp32).expect("OpenVINO loads"))
}

/// OpenVINO on the CPU in bf16, `None` (and a note) on a CPU without bf16 units.
#[allow(dead_code)]
pub fn openvino_bf16() -> Option<&'static Runtime> {
    static RT: OnceLock<Option<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        if !nst_features::cpu_has_bf16() {
            eprintln!("this CPU has no bf16 units: the bf16 checks do not apply here");
            return None;
        }
        Some(openvino(Precision::Bf16).expect("OpenVINO loads in bf16"))
    })
    .as_ref()
}

fn openvino(precision: Precision) -> Result<Runtime, nst_features::Error> {
    let library = cache().openvino_library(&|m| eprintln!("{m}"))?;
    Runtime::openvino(&library, precision)
}

#[allow(dead_code)]
pub fn real_weights() -> &'static VggWeights {
    static W: OnceLock<VggWeights> = OnceLock::new();
    W.get_or_init(|| cache().weights(&|m| eprintln!("{m}")).expect("weights provision"))
}
