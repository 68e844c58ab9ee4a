//! What the integration tests share: one CPU runtime and the real weights, made once.

use nst_features::{Cache, Device, Runtime, VggWeights};
use std::sync::OnceLock;

fn cache() -> Cache {
    Cache::locate().expect("a cache folder")
}

pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| cache().open_runtime(Device::Cpu, &|m| eprintln!("{m}")).expect("ONNX Runtime loads"))
}

pub fn real_weights() -> &'static VggWeights {
    static W: OnceLock<VggWeights> = OnceLock::new();
    W.get_or_init(|| cache().weights(&|m| eprintln!("{m}")).expect("weights provision"))
}
