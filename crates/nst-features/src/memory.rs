//! What the network needs in memory: the runtime, the targets, and the working set of a
//! pass, by image size and tiling. A planner adds these to its own vectors (see
//! `nst-transfer`); the optimizer reports its own (`nst_optim::Lbfgs::memory`).

use crate::config::LossSpec;
use crate::tiles::Tiling;

/// The runtime (ONNX Runtime or OpenVINO), the weights in the sessions, and the rest of a
/// process (measured ~0.5 GB).
pub const RUNTIME_BYTES: u64 = 600_000_000;

/// Peak working memory of the network per image pixel (window pixel when
/// tiled), on CPU: `--example loss_bench` (targets, then loss and gradient, one
/// process) under `/usr/bin/time -v` for the `gatys` loss (deepest layer
/// relu5_1) at 512²–1536² peaked at 4.7–6.7 kB per pixel above a ~0.6 GB base;
/// this is the worst of those plus 12 %. Shallower objectives need less. Measured again
/// with the Grams in parts (ONNX Runtime): 1.25 GB at 512², 4.5 GB at 1024², 8.7 GB at
/// 1536², at most 3.7 kB per pixel above the base; OpenVINO in bf16 about half (2.4 GB
/// at 1024²), so the same figure holds for both.
pub const SESSION_BYTES_PER_PIXEL: u64 = 7_500;

/// What ONNX Runtime's CUDA provider holds on the GPU whatever the image: the CUDA
/// context, cuDNN's and cuBLAS's handles and workspaces (measured with `scripts/gpu-check.sh`
/// on an H200: 1.7 GB above idle for the `gatys` targets and loss at 512², 0.7 GB of it
/// beyond the per-pixel figure), with room.
pub const CUDA_RUNTIME_BYTES: u64 = 1_500_000_000;

/// Peak GPU memory of the network per image pixel on CUDA, the targets on the device
/// included: `loss_bench --device cuda` (targets, then loss and gradient, one process; the
/// arena grows by what is asked) peaked 4.0 GB above idle at 1024², 15.3 GB at 2048²
/// (3.6 kB a pixel between them) and 51.7 GB at 4096² (3.0 kB); this is 3.6 kB plus 10 %.
pub const CUDA_SESSION_BYTES_PER_PIXEL: u64 = 4_000;

/// The same per window pixel when tiled: the tile graphs' two sessions keep their peaks, and
/// each shape of window (edges, corners) its own buffers and convolution workspaces.
/// Measured with 2048² cores (windows of 4.7 M pixels): 24.3 GB above idle at 4096² (4
/// tiles), 40.5 GB at 8192² (16 tiles), 8.2 kB a window pixel; this is that plus 10 %.
pub const CUDA_TILED_BYTES_PER_PIXEL: u64 = 9_000;

/// The network's working memory for a pass over the first of `images` (the one optimized)
/// and over the others (style images, run once for their targets), whole or in tiles of
/// about `core` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkingSet {
    /// Bytes at the peak: the largest image, or window, that one pass holds.
    pub bytes: u64,
    /// The same on CUDA, in GPU memory ([`CUDA_SESSION_BYTES_PER_PIXEL`] whole,
    /// [`CUDA_TILED_BYTES_PER_PIXEL`] tiled; add [`CUDA_RUNTIME_BYTES`]).
    pub gpu_bytes: u64,
    /// Tiles of the first image (1 when whole).
    pub tiles: usize,
    /// Their core's side, the `core` asked for rounded up to the deepest layer's stride
    /// ([`Tiling::core`]); `None` when whole.
    pub core: Option<usize>,
}

impl LossSpec {
    /// The network's working set for `images` (height, width), the first one optimized,
    /// with `regions` guided style regions (0 without guides).
    pub fn working_set(&self, images: &[(usize, usize)], core: Option<usize>, regions: usize) -> WorkingSet {
        let mut pixels = 0;
        let (mut tiles, mut aligned) = (1, None);
        for (i, &(h, w)) in images.iter().enumerate() {
            let p = match core {
                None => h * w,
                Some(core) => {
                    let tiling = Tiling::new(self, h, w, core);
                    if i == 0 {
                        (tiles, aligned) = (tiling.len(), Some(tiling.core));
                    }
                    let (wh, ww) = tiling.largest_window();
                    wh * ww
                }
            };
            pixels = pixels.max(p);
        }
        let guided = self.guided_bytes_per_pixel(regions);
        let cuda_per_pixel = if core.is_some() { CUDA_TILED_BYTES_PER_PIXEL } else { CUDA_SESSION_BYTES_PER_PIXEL };
        WorkingSet {
            bytes: (SESSION_BYTES_PER_PIXEL + guided) * pixels as u64,
            gpu_bytes: (cuda_per_pixel + guided) * pixels as u64,
            tiles,
            core: aligned,
        }
    }

    /// What guided style terms add per image pixel: per region and style layer, three maps
    /// of the layer (the guided maps F⊙g, their transpose or E·(F⊙g), the gradient's maps
    /// before the guide) and the guide. Measured with two regions above the unguided peak:
    /// 1.3 kB a pixel at 512², 2.8 kB at 1024² (3.0 GB); this says 2.9 kB.
    pub fn guided_bytes_per_pixel(&self, regions: usize) -> u64 {
        let floats: f64 =
            self.style.iter().map(|(l, _)| (3 * l.channels() + 1) as f64 / (l.stride() * l.stride()) as f64).sum();
        (4.0 * regions as f64 * floats).ceil() as u64
    }

    /// The content targets of an image of `height × width`: its feature maps at the content layers.
    pub fn content_target_bytes(&self, height: usize, width: usize) -> u64 {
        self.content.iter().map(|(l, _)| 4 * (l.channels() * (height / l.stride()) * (width / l.stride())) as u64).sum()
    }
}
