//! What the integration tests share: one CPU runtime and the real weights, made once.

use nst_features::{Device, Runtime, VggWeights, provision};
use std::sync::OnceLock;

pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(Device::Cpu, &|m| eprintln!("{m}")).expect("ONNX Runtime loads"))
}

pub fn real_weights() -> &'static VggWeights {
    static W: OnceLock<VggWeights> = OnceLock::new();
    W.get_or_init(|| provision::weights(&provision::cache_dir(), &|m| eprintln!("{m}")).expect("weights provision"))
}
