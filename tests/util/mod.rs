//! Helpers of the end-to-end tests: a temporary folder with generated images, and running `nst`.

use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary folder, removed when dropped.
pub struct Dir(pub tempfile::TempDir);

impl Dir {
    pub fn new() -> Self {
        Dir(tempfile::tempdir().expect("temporary folder"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// A smooth "photo": a lit disc on a gradient, `w × h`.
    pub fn content(&self, name: &str, w: u32, h: u32) -> PathBuf {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let d = ((fx - 0.5).powi(2) + (fy - 0.45).powi(2)).sqrt();
            let disc = if d < 0.25 { 1.0 - d * 2.0 } else { 0.2 };
            Rgb([(255.0 * disc) as u8, (200.0 * fy) as u8, (255.0 * (1.0 - fx) * 0.8) as u8])
        });
        let p = self.path(name);
        img.save(&p).expect("write content");
        p
    }

    /// A "painting": coloured diagonal strokes, `w × h`.
    pub fn style(&self, name: &str, w: u32, h: u32) -> PathBuf {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let band = ((x + 2 * y) / 6) % 3;
            [Rgb([230, 180, 30]), Rgb([20, 40, 160]), Rgb([240, 240, 220])][band as usize]
        });
        let p = self.path(name);
        img.save(&p).expect("write style");
        p
    }

    /// A "landscape": a blue sky over 55 % of the height with a soft cloud, above a field.
    pub fn sky_photo(&self, name: &str, w: u32, h: u32) -> PathBuf {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            if fy < 0.55 {
                let t = fy / 0.55;
                let cloud = (-((fx - 0.3).powi(2) / 0.02 + (fy - 0.25).powi(2) / 0.004)).exp();
                let sky = [70.0 + 80.0 * t, 130.0 + 60.0 * t, 230.0 + 10.0 * t];
                Rgb(sky.map(|c| (c + (245.0 - c) * cloud) as u8))
            } else {
                let stripe = ((fx * 40.0 + fy * 9.0).sin() * 0.5 + 0.5) * 30.0;
                Rgb([(80.0 + stripe) as u8, (110.0 + stripe) as u8, 45])
            }
        });
        let p = self.path(name);
        img.save(&p).expect("write sky photo");
        p
    }

    /// A brown-and-white texture (hide-like blobs with a little grain), `w × h`.
    pub fn brown_white(&self, name: &str, w: u32, h: u32) -> PathBuf {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let v = (fx * 0.21 + (fy * 0.13).sin() * 2.0).sin() + (fy * 0.17 + (fx * 0.11).sin() * 2.0).sin();
            let grain = ((x * 7919 + y * 104_729) % 17) as f32 - 8.0;
            let base = if v > 0.3 { [110.0, 70.0, 40.0] } else { [235.0, 230.0, 220.0] };
            Rgb(base.map(|c: f32| (c + grain).clamp(0.0, 255.0) as u8))
        });
        let p = self.path(name);
        img.save(&p).expect("write texture");
        p
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write file");
        p
    }
}

/// `nst` with `args`, its output captured.
pub fn nst(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    command(args).output().expect("nst runs")
}

/// The `nst` command with `args`, to add an environment or spawn.
pub fn command(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nst"));
    c.args(args.iter().map(|a| a.as_ref()));
    c
}

/// The one-line error of a failed run: no panic, and no part said twice
/// (`…: Read-only file system: Read-only file system`).
pub fn error_of(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got success");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let parts: Vec<&str> = lines[0].split(": ").collect();
    assert!(parts.windows(2).all(|w| w[0] != w[1]), "a part said twice: {}", lines[0]);
    lines[0].to_string()
}

/// The names in a folder that start with `prefix` (temporary files, scratch).
pub fn leftovers(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

pub fn dims(p: &Path) -> (u32, u32) {
    image::image_dimensions(p).expect("a readable image")
}
