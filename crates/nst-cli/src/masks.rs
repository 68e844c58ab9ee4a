//! The mask flags: which files to read and what a label map's colours stand for; the rules
//! (shapes, shares, what goes with what) are the engine's ([`nst_transfer::Masks`]).

use crate::args::{Args, MaskModeArg};
use anyhow::{Context, Result, bail};
use nst_transfer::masks::{self, parse_hex};
use nst_transfer::words::count;
use nst_transfer::{Label, MaskMode, Masks, images};
use std::path::{Path, PathBuf};

/// What each colour of a label map stands for.
type Labels = Vec<(image::Rgb<u8>, Label)>;

/// The mask flags, parsed; nothing is read yet.
#[derive(Clone, Debug, Default)]
pub struct MaskArgs {
    styles: Vec<PathBuf>,
    sources: Vec<Option<PathBuf>>,
    labels: Option<(PathBuf, Labels)>,
    keep: Option<PathBuf>,
    mode: MaskMode,
    feather: u32,
    style_count: usize,
}

impl MaskArgs {
    /// Parses `--style-masks`, `--style-source-masks`, `--label-map` with `--labels`,
    /// `--keep-photo`, `--feather` and `--mask-mode`.
    pub fn from_args(args: &Args) -> Result<Self> {
        let list = |flag: &str, v: &str| -> Result<Vec<String>> {
            let items: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
            if items.len() != args.styles.len() {
                let (masks, styles) = (count(items.len(), "mask"), count(args.styles.len(), "style image"));
                bail!("{flag} has {masks} for {styles}");
            }
            if items.iter().any(String::is_empty) {
                bail!("{flag}: an empty name in {v:?}");
            }
            Ok(items)
        };
        let styles = match &args.style_masks {
            Some(v) => list("--style-masks", v)?.into_iter().map(PathBuf::from).collect(),
            None => Vec::new(),
        };
        let sources = match &args.style_source_masks {
            Some(v) => {
                list("--style-source-masks", v)?.into_iter().map(|s| (s != "-").then(|| PathBuf::from(s))).collect()
            }
            None => Vec::new(),
        };
        let labels = match (&args.label_map, &args.labels) {
            (Some(map), Some(spec)) => Some((map.clone(), parse_labels(spec, &args.styles)?)),
            _ => None,
        };
        let m = Self {
            styles,
            sources,
            labels,
            keep: args.keep_photo.clone(),
            mode: match args.mask_mode {
                Some(MaskModeArg::Inside) => MaskMode::Inside,
                _ => MaskMode::Soft,
            },
            feather: args.feather.unwrap_or(0),
            style_count: args.styles.len(),
        };
        if args.feather.is_some() && m.keep_flags().is_none() {
            bail!("--feather blends kept regions: give --keep-photo or a keep label");
        }
        if args.mask_mode.is_some() && m.is_empty() {
            bail!("--mask-mode is for masks: give --style-masks, --label-map or --keep-photo");
        }
        if !m.sources.is_empty() && m.styles.is_empty() && m.labels.is_none() {
            bail!("--style-source-masks goes with --style-masks or --label-map (which region takes which style)");
        }
        Ok(m)
    }

    /// Where the region kept as the photo comes from, in the flags' words: `--keep-photo`,
    /// the label map's keep colour, or both; `None` when nothing is kept.
    pub fn keep_flags(&self) -> Option<&'static str> {
        let label = self.labels.as_ref().is_some_and(|(_, l)| l.iter().any(|(_, l)| *l == Label::Keep));
        match (self.keep.is_some(), label) {
            (true, false) => Some("--keep-photo"),
            (false, true) => Some("--labels' keep colour"),
            (true, true) => Some("--keep-photo with --labels' keep colour"),
            (false, false) => None,
        }
    }

    /// Whether style masks are given (each region has its style).
    pub fn has_regions(&self) -> bool {
        !self.styles.is_empty() || self.labels.is_some()
    }

    /// Whether no mask flag is given.
    pub fn is_empty(&self) -> bool {
        self.styles.is_empty() && self.sources.is_empty() && self.labels.is_none() && self.keep.is_none()
    }

    /// What the report says of the masks: the files, the labels, the mode and feather;
    /// `None` without masks.
    pub fn report(&self) -> Option<serde_json::Value> {
        if self.is_empty() {
            return None;
        }
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let labels = self.labels.as_ref().map(|(map, labels)| {
            let meaning: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .map(|(c, l)| {
                    let what = match l {
                        Label::Style(k) => format!("style {}", k + 1),
                        Label::Keep => "keep".into(),
                    };
                    (masks::hex(*c), what.into())
                })
                .collect();
            serde_json::json!({ "map": path(map), "colours": meaning })
        });
        Some(serde_json::json!({
            "style_masks": self.styles.iter().map(|p| path(p)).collect::<Vec<_>>(),
            "style_source_masks": self.sources.iter().map(|p| p.as_deref().map(path)).collect::<Vec<_>>(),
            "labels": labels,
            "keep_photo": self.keep.as_deref().map(path),
            "mode": self.mode,
            "feather": self.feather,
        }))
    }

    /// The files the masks read, each with its flag.
    pub fn inputs(&self) -> Vec<(&'static str, &Path)> {
        let mut v: Vec<(&str, &Path)> = self.styles.iter().map(|p| ("--style-masks", p.as_path())).collect();
        v.extend(self.sources.iter().flatten().map(|p| ("--style-source-masks", p.as_path())));
        v.extend(self.labels.iter().map(|(p, _)| ("--label-map", p.as_path())));
        v.extend(self.keep.as_deref().map(|p| ("--keep-photo", p)));
        v
    }

    /// Reads the masks; `photo` is the photo's size, for the label map's shape.
    pub fn read(&self, photo: (u32, u32)) -> Result<Masks> {
        let mut m = match &self.labels {
            Some((path, labels)) => {
                let map = images::load(path, images::Pixels::Data)?;
                if !masks::same_shape(map.dimensions(), photo) {
                    bail!(
                        "--label-map: {} is {}×{} but the photo is {}×{}: the map needs the photo's shape",
                        path.display(),
                        map.width(),
                        map.height(),
                        photo.0,
                        photo.1
                    );
                }
                let rgb = image::DynamicImage::ImageRgb32F(map).to_rgb8();
                Masks::from_labels(&rgb, labels, self.style_count).map_err(crate::request::explain)?
            }
            None => Masks {
                styles: self.styles.iter().map(|p| masks::load(p)).collect::<Result<_, _>>()?,
                ..Default::default()
            },
        };
        m.sources = self.sources.iter().map(|p| p.as_deref().map(masks::load).transpose()).collect::<Result<_, _>>()?;
        if let Some(path) = &self.keep {
            let keep = masks::load(path)?;
            m.keep = Some(match m.keep.take() {
                // A keep label and --keep-photo: both are kept.
                Some(labelled) if labelled.dimensions() == keep.dimensions() => {
                    image::ImageBuffer::from_fn(keep.width(), keep.height(), |x, y| {
                        image::Luma([labelled.get_pixel(x, y).0[0].max(keep.get_pixel(x, y).0[0])])
                    })
                }
                Some(_) => bail!("--keep-photo and --label-map differ in size: give them the same size"),
                None => keep,
            });
        }
        m.mode = self.mode;
        m.feather = self.feather;
        Ok(m)
    }
}

/// `--labels`: `#rrggbb=STYLE` pairs, STYLE a style's path, file name or 1-based number, or `keep`.
fn parse_labels(spec: &str, styles: &[PathBuf]) -> Result<Labels> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (colour, target) =
                item.split_once('=').with_context(|| format!("--labels: {item:?} is not COLOUR=STYLE"))?;
            let colour = parse_hex(colour)
                .with_context(|| format!("--labels: {:?} is not a colour like #00ff00", colour.trim()))?;
            let target = target.trim();
            if target == "keep" {
                return Ok((colour, Label::Keep));
            }
            let by_number = target.parse::<usize>().ok().filter(|n| (1..=styles.len()).contains(n)).map(|n| n - 1);
            let by_path = styles.iter().position(|p| p == Path::new(target));
            let named: Vec<usize> = (0..styles.len())
                .filter(|&i| styles[i].file_name().is_some_and(|n| n == std::ffi::OsStr::new(target)))
                .collect();
            let index = match (by_path.or(by_number), named.as_slice()) {
                (Some(i), _) | (None, &[i]) => i,
                (None, []) => {
                    bail!("--labels: {target:?} is not one of the style images (give its path, file name or number)")
                }
                (None, _) => bail!("--labels: several style images are named {target:?}: give its path or number"),
            };
            Ok((colour, Label::Style(index)))
        })
        .collect()
}
