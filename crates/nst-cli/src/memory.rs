//! How much memory a stage needs, and the tiling and history that make it fit.
//!
//! The estimate adds what a stage holds at once: the process and its sessions,
//! whole-image vectors (the image, the gradient, the optimizer's iterates), the
//! L-BFGS history (two vectors per pair), the content targets and style images,
//! and the network's working memory for the largest window it runs.

use anyhow::{Result, bail};
use nst_features::{Objective, SESSION_BYTES_PER_PIXEL, Tiling};
use serde::Serialize;

/// ONNX Runtime, the weights in two sessions, the rest of the process (measured ~0.5 GB).
const BASE: u64 = 600_000_000;

/// Whole-image float vectors alive at once besides the history: content, image,
/// best image, gradient, and the solver's direction, previous point and gradient,
/// trial point, Cauchy point and scratch.
const VECTORS: u64 = 10;

/// Tile cores tried, largest first; smaller ones spend most of their time on halos.
const TILE_CORES: [usize; 6] = [2048, 1536, 1024, 768, 512, 256];

/// The history nst keeps while it tries smaller tiles.
const COMFORTABLE_HISTORY: usize = 10;

/// The shortest history nst shrinks to before refusing.
const MIN_HISTORY: usize = 5;

/// How a stage runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// Tile core side, or `None` for one pass over the whole image.
    pub tile: Option<usize>,
    /// How many tiles (1 when untiled).
    pub tiles: usize,
    /// L-BFGS history pairs.
    pub history: usize,
    /// The estimate, in bytes.
    pub bytes: u64,
}

/// The machine's physical memory in bytes, when the system says.
pub fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system parameters.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages > 0 && page > 0).then(|| pages as u64 * page as u64)
}

/// Gigabytes, for messages.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// The first plan that fits in `budget`, besides `held` bytes the run keeps
/// throughout (the full-size content and style tensors). The history holds at most one pair per
/// evaluation, so a stage of `evaluations` needs `min(history, evaluations)` pairs.
/// Tried in order: the whole image; tiles from the largest core down, each with
/// the longest history (halved, not below [`COMFORTABLE_HISTORY`]) that fits;
/// then the smallest tiles with a history down to [`MIN_HISTORY`]. `tile` forces
/// tiles of that core. Refuses, saying what it would take, when nothing fits.
pub fn plan(
    obj: &Objective,
    (height, width): (usize, usize),
    styles: &[(usize, usize)],
    (history, evaluations): (usize, usize),
    held: u64,
    budget: u64,
    tile: Option<usize>,
) -> Result<Plan> {
    let vector = 3 * 4 * (height * width) as u64;
    let content: u64 =
        obj.content.iter().map(|(l, _)| 4 * (l.channels() * (height / l.stride()) * (width / l.stride())) as u64).sum();
    let style_images: u64 = styles.iter().map(|&(h, w)| 3 * 4 * (h * w) as u64).sum();
    let fixed = BASE + held + VECTORS * vector + content + style_images;
    // Styles are run through the same network: their windows count too.
    let network = |core: Option<usize>| -> (u64, usize) {
        let sizes = std::iter::once((height, width)).chain(styles.iter().copied());
        let mut pixels = 0;
        let mut tiles = 1;
        for (i, (h, w)) in sizes.enumerate() {
            let p = match core {
                None => h * w,
                Some(core) => {
                    let tiling = Tiling::new(obj, h, w, core);
                    if i == 0 {
                        tiles = tiling.len();
                    }
                    let (wh, ww) = tiling.largest_window();
                    wh * ww
                }
            };
            pixels = pixels.max(p);
        }
        (SESSION_BYTES_PER_PIXEL * pixels as u64, tiles)
    };
    let cores: Vec<Option<usize>> = match tile {
        Some(core) => vec![Some(core)],
        // A core at least as large as the image is the whole image.
        None => std::iter::once(None)
            .chain(TILE_CORES.iter().filter(|&&c| c < height.max(width)).map(|&c| Some(c)))
            .collect(),
    };
    let pairs = history.min(evaluations).max(1);
    let histories = |floor: usize| {
        let mut h = vec![pairs];
        while h[h.len() - 1] > floor {
            h.push((h[h.len() - 1] / 2).max(floor));
        }
        h
    };
    let attempt = |core: Option<usize>, m: usize| {
        let (net, tiles) = network(core);
        let bytes = fixed + 2 * m as u64 * vector + net;
        // The solver keeps the requested history unless it had to be shortened.
        let history = if m < pairs { m } else { history };
        (bytes <= budget).then_some(Plan { tile: core, tiles, history, bytes }).ok_or(bytes)
    };
    let comfortable =
        cores.iter().flat_map(|&c| histories(COMFORTABLE_HISTORY.min(pairs)).into_iter().map(move |m| (c, m)));
    let last = cores[cores.len() - 1];
    let tight = histories(MIN_HISTORY.min(pairs)).into_iter().map(|m| (last, m));
    let mut smallest = u64::MAX;
    for (core, m) in comfortable.chain(tight) {
        match attempt(core, m) {
            Ok(plan) => return Ok(plan),
            Err(bytes) => smallest = smallest.min(bytes),
        }
    }
    let how = match last {
        Some(core) => format!(" in tiles of {core} px"),
        None => String::new(),
    };
    bail!(
        "a {width}×{height} output needs about {}{how} with a history of {}, more than the {} allowed \
         (raise --max-memory if the machine has it, or lower --size)",
        gb(smallest),
        MIN_HISTORY.min(pairs),
        gb(budget)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nst_features::LossConfig;

    fn gatys() -> Objective {
        LossConfig::preset("gatys").unwrap().resolve().unwrap()
    }

    #[test]
    fn small_images_run_whole_and_large_ones_in_tiles() {
        let obj = gatys();
        let p = plan(&obj, (512, 512), &[(512, 400)], (100, 500), 0, 12_000_000_000, None).unwrap();
        assert_eq!((p.tile, p.tiles, p.history), (None, 1, 100));
        // A few evaluations hold a few pairs: large tiles, the history untouched.
        let p = plan(&obj, (4096, 4096), &[(4096, 2560)], (100, 4), 0, 12_000_000_000, None).unwrap();
        assert_eq!((p.tile, p.tiles, p.history), (Some(768), 36, 100), "{p:?}");
        // Many evaluations: the history shrinks to 10 before the tiles go below 512.
        let p = plan(&obj, (4096, 4096), &[(4096, 2560)], (100, 500), 0, 12_000_000_000, None).unwrap();
        assert_eq!((p.tile, p.history), (Some(512), 12), "{p:?}");
        assert!(p.bytes <= 12_000_000_000);
    }

    #[test]
    fn history_shrinks_before_refusing_and_forced_tiles_are_kept() {
        let obj = gatys();
        let p = plan(&obj, (2048, 2048), &[], (1000, 1000), 0, 8_000_000_000, None).unwrap();
        assert!(p.history < 1000 && p.tile.is_some(), "{p:?}");
        let p = plan(&obj, (300, 300), &[], (10, 10), 0, 12_000_000_000, Some(128)).unwrap();
        assert_eq!((p.tile, p.tiles), (Some(128), 9));
        let e = plan(&obj, (16384, 16384), &[], (100, 100), 0, 12_000_000_000, None).unwrap_err().to_string();
        assert!(
            e.starts_with("a 16384×16384 output needs about ") && e.contains("more than the 12.0 GB allowed"),
            "{e}"
        );
    }
}
