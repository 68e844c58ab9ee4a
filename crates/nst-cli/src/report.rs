//! The `--report` file: the command line's settings and the engine's report, as JSON.

use crate::args::Args;
use crate::request::{InitArg, Job};
use anyhow::{Context, Result};
use nst_transfer::{Analogy, BoundsMethod, LineSearchKind, LossConfig, Method, Report, Settings, Swap};
use serde::{Serialize, Serializer};
use std::path::{Path, PathBuf};

/// The file: its own format, so that a change inside the engine does not change it.
#[derive(Serialize)]
struct ReportFile<'a> {
    nst: &'static str,
    settings: ReportSettings<'a>,
    /// Where images went that could not be written where the settings say (the temporary
    /// folder), by kind: `"image"`, `"reverse"`.
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "lossy_map")]
    rescued: &'a [(&'a str, &'a Path)],
    #[serde(flatten)]
    run: &'a Report,
}

/// The settings as the command line gave them.
#[derive(Serialize)]
struct ReportSettings<'a> {
    #[serde(serialize_with = "lossy_path")]
    content: &'a Path,
    #[serde(serialize_with = "lossy_paths")]
    styles: &'a [PathBuf],
    blend: &'a [f32],
    #[serde(serialize_with = "lossy_path")]
    output: &'a Path,
    size: u32,
    style_scale: f64,
    evaluations: usize,
    seed: u64,
    /// The loss the run minimized; none for analogy, whose feature deconvolutions' losses
    /// follow from the method.
    #[serde(skip_serializing_if = "Option::is_none")]
    loss: Option<LossConfig>,
    swap: Option<&'a Swap>,
    analogy: Option<&'a Analogy>,
    original_colors: bool,
    color_transfer: bool,
    stages: Vec<(u32, usize)>,
    max_memory: u64,
    tile: Option<usize>,
    init: Init<'a>,
    history: usize,
    line_search: LineSearchKind,
    lr: f64,
    bounds: bool,
    bounds_method: BoundsMethod,
    save_every: Option<u32>,
    device: String,
    precision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    masks: Option<serde_json::Value>,
}

/// The loss a run of `s` minimizes, as settings: Gatys's, as configured; swap's, a content
/// term at its layer and the configured TV (the configured content and style weights play
/// no part in it); none for analogy.
fn minimized(s: &Settings) -> Result<Option<LossConfig>> {
    Ok(match &s.method {
        Method::Gatys => Some(s.loss.clone()),
        Method::Swap(_) => {
            let spec = s.loss_spec()?;
            Some(LossConfig {
                pool: spec.pool,
                content: spec.content.iter().map(|(layer, w)| (layer.to_string(), f64::from(*w))).collect(),
                style: Default::default(),
                tv: s.loss.tv,
            })
        }
        Method::Analogy(_) => None,
    })
}

/// `"content"`, `"random"`, `"painting"`, or `{"image": PATH}`.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Init<'a> {
    Content,
    Random,
    Painting,
    Image(#[serde(serialize_with = "lossy_path")] &'a Path),
}

/// A path as text, any bytes that are not UTF-8 replaced.
fn lossy_path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

fn lossy_map<S: Serializer>(ps: &[(&str, &Path)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(ps.iter().map(|(k, p)| (k, p.to_string_lossy())))
}

fn lossy_paths<S: Serializer>(ps: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ps.iter().map(|p| p.to_string_lossy()))
}

/// Writes the report of `run` for the command `args`, whose request had `stages`, as pretty
/// JSON, atomically, naming where the `rescued` images went.
pub fn write(
    path: &Path,
    args: &Args,
    job: &Job,
    stages: &[(u32, usize)],
    run: &Report,
    rescued: &[(&str, &Path)],
) -> Result<()> {
    let s = &job.settings;
    let settings = ReportSettings {
        content: &args.content,
        styles: &args.styles,
        blend: &job.blend,
        output: &args.output,
        size: s.size,
        style_scale: s.style_scale,
        evaluations: s.evaluations,
        seed: s.seed,
        loss: minimized(s)?,
        swap: s.swap(),
        analogy: s.analogy(),
        original_colors: s.original_colors,
        color_transfer: s.color_transfer,
        stages: stages.to_vec(),
        max_memory: s.max_memory,
        tile: s.tile,
        init: match &job.init {
            InitArg::Content => Init::Content,
            InitArg::Random => Init::Random,
            InitArg::Painting => Init::Painting,
            InitArg::Image(p) => Init::Image(p),
        },
        history: s.history,
        line_search: s.line_search,
        lr: s.lr,
        bounds: s.bounds,
        bounds_method: s.bounds_method,
        save_every: args.save_every,
        device: format!("{:?}", args.device).to_lowercase(),
        precision: args.precision.to_string(),
        masks: job.masks.report(),
    };
    let file = ReportFile { nst: env!("CARGO_PKG_VERSION"), settings, rescued, run };
    crate::files::write_or_rescue(path, "report", |out| {
        serde_json::to_writer_pretty(out, &file).with_context(|| format!("cannot write {}", path.display()))
    })
    .map_err(|r| r.error)
}
