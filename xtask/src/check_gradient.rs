//! `cargo xtask check-gradient FIXTURE.npz CONFIG.json`: one JSON line comparing
//! the loss-and-gradient graph with a reference case.

use anyhow::{Context, Result};
use nst_features::fixture::{Fixture, FixtureConfig};
use nst_features::{Cache, Device};
use std::path::Path;

pub fn run(fixture: &Path, config: &Path) -> Result<()> {
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let config: FixtureConfig = serde_json::from_str(&text).with_context(|| format!("parsing {}", config.display()))?;
    let fixture = Fixture::load(fixture, config)?;
    let log = |m: &str| eprintln!("{m}");
    let cache = Cache::locate()?;
    let weights = cache.weights(&log)?;
    let rt = cache.open_runtime(Device::Auto, nst_features::Precision::Fp32, &log)?;
    let c = fixture.compare(&rt, &weights)?;
    println!("{}", serde_json::to_string(&c)?);
    Ok(())
}
