//! A job as the page sends it: a multipart form with the images and a few settings, read
//! within limits, the images decoded with the engine's checks, and the whole request
//! planned before it is queued, so that a job that cannot run is refused in words at once.

use crate::queue::{JobSpec, MaskSpec};
use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use axum::http::StatusCode;
use nst_transfer::images::{self, Pixels};
use nst_transfer::words::count;
use nst_transfer::{Analogy, Method, Request, Settings, Style, Swap};
use std::time::Duration;
use tokio::sync::Semaphore;
use unicode_segmentation::UnicodeSegmentation;

/// What one server accepts.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub body: usize,
    /// The largest image file, in bytes.
    pub file: usize,
    /// The largest image, in pixels (checked on the header, before decoding).
    pub pixels: u64,
    /// The most style images.
    pub styles: usize,
    /// The largest output side.
    pub size: u32,
    /// The largest evaluation budget.
    pub evaluations: usize,
    /// The most jobs queued, running or being sent (an upload holds its place from its first
    /// byte) at once: more are refused until one ends (each holds its uploads, up to `body`,
    /// on disk).
    pub waiting: usize,
    /// The most finished jobs kept with a result, with their files (uploads, result,
    /// report): as another ends, the one that ended first is forgotten; as many again
    /// without one (failed, or cancelled before their first image), apart, so that those
    /// do not push out anyone's results.
    pub kept: usize,
    /// The longest an upload may send nothing, in seconds.
    pub idle_s: u64,
    /// The longest an upload may take, in seconds.
    pub upload_s: u64,
}

impl Default for Limits {
    /// 48 MB a request, 20 MB and 40 megapixels an image, 4 styles, 2048 px, 2000
    /// evaluations, 16 jobs waiting, 100 finished jobs kept, 30 s without a byte, 10 minutes
    /// an upload (48 MB at 80 kB/s).
    fn default() -> Self {
        Self {
            body: 48 << 20,
            file: 20 << 20,
            pixels: 40_000_000,
            styles: 4,
            size: 2048,
            evaluations: 2000,
            waiting: 16,
            kept: 100,
            idle_s: 30,
            upload_s: 600,
        }
    }
}

/// A job checked and ready: the spec to queue and the uploads to store.
pub struct Upload {
    pub spec: JobSpec,
    pub content: Vec<u8>,
    pub styles: Vec<Vec<u8>>,
    /// The style masks (one per style, or none), then the keep mask, by stored name.
    pub masks: Vec<(String, Vec<u8>)>,
}

/// Why an upload is refused: a status and a sentence for the page.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn bad(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
}

/// Why the body could not be read: too large in all, or cut off.
fn unreadable(e: MultipartError, limits: &Limits) -> Refusal {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the upload is larger than {} in all", bytes_text(limits.body)),
        }
    } else {
        Refusal::bad(format!("the upload could not be read ({e})"))
    }
}

/// `read`'s result, unless nothing came for `idle`.
async fn within<T>(idle: Duration, read: impl Future<Output = T>) -> Result<T, Refusal> {
    tokio::time::timeout(idle, read).await.map_err(|_| Refusal {
        status: StatusCode::REQUEST_TIMEOUT,
        message: format!("the upload stalled: nothing came for {} s", idle.as_secs()),
    })
}

/// A value as a message quotes it: its first 40 characters, `…` for the rest.
fn quoted(value: &str) -> String {
    match value.char_indices().nth(40) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// Whether `c` is shown as itself: not a control character, nor an invisible one that changes
/// how the text around it reads (direction overrides and isolates, zero-width characters).
fn visible(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// A file's name as shown on the page: the last path part, its visible characters, at most 80
/// of what a reader counts as characters (grapheme clusters: a letter with its accents, a
/// flag); a longer one ends in `…`. Browsers send a name's `"` as `%22` and its line breaks
/// as `%0D` and `%0A` (the HTML standard's form encoding): the quote is put back, the breaks
/// go with the other control characters.
fn shown_name(name: Option<&str>, fallback: &str) -> String {
    const LONGEST: usize = 80;
    let last = name.and_then(|n| n.rsplit(['/', '\\']).next()).unwrap_or_default();
    let last = last.replace("%22", "\"").replace("%0D", "").replace("%0A", "");
    let mut printable: String = last.chars().filter(|&c| visible(c)).collect();
    if printable.chars().all(char::is_whitespace) {
        printable = fallback.into();
    }
    if let Some((cut, _)) = printable.grapheme_indices(true).nth(LONGEST) {
        let (last_kept, _) = printable[..cut].grapheme_indices(true).next_back().expect("80 graphemes before the cut");
        printable.truncate(last_kept);
        printable.push('…');
    }
    printable
}

/// The fields a form may have: `style`, `weight` and `style_mask` repeat, in order; the others
/// come once.
const FIELDS: [&str; 12] = [
    "content",
    "style",
    "weight",
    "style_mask",
    "keep",
    "method",
    "size",
    "iterations",
    "style_weight",
    "original_colors",
    "mask_mode",
    "feather",
];
const REPEATED: [&str; 3] = ["style", "weight", "style_mask"];

/// Reads the form: `content` (a file), `style` (files, in order) and `weight` (one per style),
/// `method` (gatys, swap, analogy), `size`, `iterations`, `style_weight`, `original_colors`;
/// masks: `style_mask` (files, one per style), `keep` (a file), `mask_mode` (soft, inside),
/// `feather` (pixels). A field given twice is refused (which value was meant cannot be
/// told), but for `style`, `weight` and `style_mask`, which repeat; so is a field it does not
/// know (a misspelt one would otherwise be a setting silently left at its default). An upload
/// that sends nothing for [`Limits::idle_s`], or takes longer than [`Limits::upload_s`], is
/// refused. After a refusal the rest of the body is read (within its limit), so that the
/// client, still sending, gets the answer.
///
/// Decoding the images to check them takes up to 12 bytes a pixel; `checking` lets one upload
/// at a time do it.
pub async fn read(mut form: Multipart, limits: &Limits, checking: &Semaphore) -> Result<Upload, Refusal> {
    let mut content: Option<(String, Vec<u8>)> = None;
    let mut styles: Vec<(String, Vec<u8>)> = Vec::new();
    let mut style_masks: Vec<(String, Vec<u8>)> = Vec::new();
    let mut keep: Option<(String, Vec<u8>)> = None;
    let mut mask_spec = MaskSpec::default();
    let mut weights: Vec<f32> = Vec::new();
    let mut method = "gatys".to_string();
    let (mut size, mut iterations, mut style_weight, mut original_colors) = (None, None, None, false);
    let idle = Duration::from_secs(limits.idle_s);
    // A client sending a byte now and then would hold its place in the line for good.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(limits.upload_s);
    let gathered = tokio::time::timeout_at(deadline, async {
        let mut given = std::collections::HashSet::new();
        while let Some(mut field) = within(idle, form.next_field()).await?.map_err(|e| unreadable(e, limits))? {
            let name = field.name().unwrap_or_default().to_string();
            if !FIELDS.contains(&name.as_str()) {
                return Err(Refusal::bad(format!(
                    "the form has no field {} (it takes {})",
                    quoted(&name),
                    FIELDS.join(", ")
                )));
            }
            if !REPEATED.contains(&name.as_str()) && !given.insert(name.clone()) {
                return Err(Refusal::bad(format!("the form gives {name:?} twice")));
            }
            if ["content", "style", "style_mask", "keep"].contains(&name.as_str()) {
                let shown = shown_name(field.file_name(), &name);
                let mut bytes = Vec::new();
                while let Some(chunk) = within(idle, field.chunk()).await?.map_err(|e| unreadable(e, limits))? {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > limits.file {
                        return Err(Refusal {
                            status: StatusCode::PAYLOAD_TOO_LARGE,
                            message: format!("{shown} is larger than {}", bytes_text(limits.file)),
                        });
                    }
                }
                match name.as_str() {
                    "content" => content = Some((shown, bytes)),
                    "style" => styles.push((shown, bytes)),
                    "style_mask" => style_masks.push((shown, bytes)),
                    _ => keep = Some((shown, bytes)),
                }
                continue;
            }
            let text = within(idle, field.text()).await?.map_err(|e| unreadable(e, limits))?;
            let text = text.trim();
            let number = |what: &str| -> Result<f64, Refusal> {
                text.parse::<f64>().map_err(|_| Refusal::bad(format!("{what}: {} is not a number", quoted(text))))
            };
            match name.as_str() {
                "weight" => {
                    let v = number("a style weight")?;
                    weights.push(
                        nst_transfer::check_weight("a style weight", v).map_err(|e| Refusal::bad(e.to_string()))?,
                    );
                }
                "method" => method = text.to_lowercase(),
                "size" => size = Some(number("the size")?),
                "iterations" => iterations = Some(number("the evaluations")?),
                "style_weight" => style_weight = Some(number("the style weight")?),
                "original_colors" => {
                    original_colors = match text.to_ascii_lowercase().as_str() {
                        "on" | "true" | "yes" | "1" => true,
                        "off" | "false" | "no" | "0" => false,
                        _ => {
                            return Err(Refusal::bad(format!(
                                "original_colors is on or off (true or false, yes or no, 1 or 0), not {}",
                                quoted(text)
                            )));
                        }
                    }
                }
                "mask_mode" => {
                    mask_spec.mode = match text {
                        "soft" => nst_transfer::MaskMode::Soft,
                        "inside" => nst_transfer::MaskMode::Inside,
                        other => {
                            return Err(Refusal::bad(format!("unknown mask mode {} (soft or inside)", quoted(other))));
                        }
                    }
                }
                _ => {
                    // The feather: the last of the fields.
                    let v = number("the feather")?;
                    if !(v.fract() == 0.0 && (0.0..=256.0).contains(&v)) {
                        return Err(Refusal::bad("the feather must be a whole number of pixels from 0 to 256"));
                    }
                    mask_spec.feather = v as u32;
                }
            }
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|_| {
        Err(Refusal {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!("the upload took longer than {} s", limits.upload_s),
        })
    });
    if let Err(refusal) = gathered {
        if refusal.status != StatusCode::REQUEST_TIMEOUT {
            // What is left, read and dropped, within the body's limit, the idle time and the deadline.
            let _ = tokio::time::timeout_at(deadline, async {
                while let Ok(Ok(Some(mut rest))) = tokio::time::timeout(idle, form.next_field()).await {
                    while let Ok(Ok(Some(_))) = tokio::time::timeout(idle, rest.chunk()).await {}
                }
            })
            .await;
        }
        return Err(refusal);
    }
    let (content_name, content) = content.ok_or_else(|| Refusal::bad("choose a content photo"))?;
    if styles.is_empty() {
        return Err(Refusal::bad("choose at least one style image"));
    }
    if styles.len() > limits.styles {
        return Err(Refusal::bad(format!("at most {} style images, got {}", limits.styles, styles.len())));
    }
    if !weights.is_empty() && weights.len() != styles.len() {
        let (weights, styles) = (count(weights.len(), "weight"), count(styles.len(), "style image"));
        return Err(Refusal::bad(format!("{weights} for {styles}")));
    }
    weights.resize(styles.len(), 1.0);

    let mut settings = Settings::for_method(match method.as_str() {
        "gatys" => Method::Gatys,
        "swap" => Method::Swap(Swap::default()),
        "analogy" => Method::Analogy(Analogy::default()),
        other => return Err(Refusal::bad(format!("unknown method {} (gatys, swap or analogy)", quoted(other)))),
    });
    if let Some(v) = size {
        if !(v.fract() == 0.0 && (16.0..=f64::from(limits.size)).contains(&v)) {
            return Err(Refusal::bad(format!("the size must be a whole number from 16 to {} px", limits.size)));
        }
        settings.size = v as u32;
    }
    if let Some(v) = iterations {
        if !(v.fract() == 0.0 && (1.0..=limits.evaluations as f64).contains(&v)) {
            return Err(Refusal::bad(format!(
                "the evaluations must be a whole number from 1 to {}",
                limits.evaluations
            )));
        }
        settings.evaluations = v as usize;
    }
    if let Some(w) = style_weight {
        nst_transfer::check_weight("the style weight", w).map_err(|e| Refusal::bad(e.to_string()))?;
        if w == 0.0 && settings.method == Method::Gatys {
            return Err(Refusal::bad("the style weight must be more than 0 (with 0 the result is the photo)"));
        }
        for v in settings.loss.style.values_mut() {
            *v = w;
        }
    }
    settings.original_colors = original_colors;
    mask_spec.styles = style_masks.iter().map(|(n, _)| n.clone()).collect();
    mask_spec.keep = keep.as_ref().map(|(n, _)| n.clone());
    let masks = style_masks
        .into_iter()
        .enumerate()
        .map(|(i, (_, b))| (format!("mask-{i}"), b))
        .chain(keep.map(|(_, b)| ("keep".to_string(), b)))
        .collect();
    let spec = JobSpec {
        files: String::new(),
        settings,
        content_name,
        styles: styles.iter().map(|(n, _)| n.clone()).zip(weights).collect(),
        masks: mask_spec,
        notes: Vec::new(),
    };
    let upload = Upload { spec, content, styles: styles.into_iter().map(|(_, b)| b).collect(), masks };
    // Decoding and planning take a while (up to several 40-megapixel images): off the executor,
    // one upload at a time, the memory handed back after.
    let pixels = limits.pixels;
    let _turn = checking.acquire().await.map_err(|e| Refusal::bad(format!("the upload could not be checked ({e})")))?;
    tokio::task::spawn_blocking(move || {
        let checked = planned(upload, pixels);
        nst_transfer::release_free_memory();
        checked
    })
    .await
    .map_err(|e| Refusal::bad(format!("the upload could not be checked ({e})")))?
}

/// `upload` decoded with the engine's checks and planned: what cannot run is refused now.
/// What decoding said of the pictures' colours goes into the spec's notes.
fn planned(mut upload: Upload, pixels: u64) -> Result<Upload, Refusal> {
    let decode = |bytes: &[u8], name: &str, kind| images::decode(bytes, name, pixels, kind);
    let mut notes = Vec::new();
    let mut picture = |bytes: &[u8], name: &str| {
        let (image, colours) = images::decode_with_colours(bytes, name, pixels, Pixels::Picture)?;
        notes.extend(colours.note(name));
        Ok::<_, nst_transfer::Error>(image)
    };
    let spec = &upload.spec;
    let masks = spec
        .masks
        .read(|stored, shown| {
            let bytes = upload.masks.iter().find(|(n, _)| n == stored).map(|(_, b)| b.as_slice()).unwrap_or_default();
            decode(bytes, shown, Pixels::Data)
        })
        .map_err(|e| Refusal::bad(e.to_string()))?;
    let request = Request {
        content: picture(&upload.content, &spec.content_name).map_err(|e| Refusal::bad(e.to_string()))?,
        styles: upload
            .styles
            .iter()
            .zip(&spec.styles)
            .map(|(bytes, (name, weight))| Ok(Style { image: picture(bytes, name)?, weight: *weight }))
            .collect::<Result<Vec<_>, nst_transfer::Error>>()
            .map_err(|e| Refusal::bad(e.to_string()))?,
        init: nst_transfer::Init::default_for(&spec.settings, spec.styles.len(), !masks.styles.is_empty()),
        settings: spec.settings.clone(),
        masks,
    };
    request.plan(None).map_err(|e| Refusal::bad(explain(&e)))?;
    upload.spec.notes = notes;
    Ok(upload)
}

/// A size as people read it: `20 MiB`, `195 KiB`.
pub fn bytes_text(bytes: usize) -> String {
    if bytes.is_multiple_of(1 << 20) { format!("{} MiB", bytes >> 20) } else { format!("{} KiB", bytes.div_ceil(1024)) }
}

/// An engine error in the page's words.
fn explain(e: &nst_transfer::Error) -> String {
    match e {
        nst_transfer::Error::TooLarge { .. } => format!("{e}: choose a smaller size"),
        nst_transfer::Error::TooSmall { .. } => format!("{e}: choose a larger size"),
        nst_transfer::Error::Setting { name: "blend", reason } => format!("the style weights {reason}"),
        nst_transfer::Error::Setting { name: "style masks", reason } => format!("the style masks: {reason}"),
        nst_transfer::Error::Setting { name: "keep", reason } => format!("the keep mask: {reason}"),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown_name;

    #[test]
    fn shown_names_are_the_last_part_printable_and_short() {
        assert_eq!(shown_name(Some("C:\\photos/cat\n.png"), "content"), "cat.png");
        assert_eq!(shown_name(Some(" "), "content"), "content");
        assert_eq!(shown_name(Some("the %22scream%22%0D%0A.jpg"), "style"), "the \"scream\".jpg");
        assert_eq!(shown_name(Some("\u{200b}"), "content"), "content");
        assert_eq!(shown_name(Some("photo\u{202e}gnp.exe"), "content"), "photognp.exe");
        let long = format!("{}.png", "a".repeat(100));
        let shown = shown_name(Some(&long), "content");
        assert_eq!(shown.chars().count(), 80);
        assert!(shown.ends_with("a…"), "{shown}");
        let exact = "b".repeat(80);
        assert_eq!(shown_name(Some(&exact), "content"), exact);
        // Cut between letters with their accents, not inside one: e + U+0301 is one letter.
        let accented = "e\u{301}".repeat(81);
        let shown = shown_name(Some(&accented), "content");
        assert_eq!(shown, format!("{}…", "e\u{301}".repeat(79)));
        assert_eq!(shown_name(Some(&"e\u{301}".repeat(80)), "content"), "e\u{301}".repeat(80));
    }
}
