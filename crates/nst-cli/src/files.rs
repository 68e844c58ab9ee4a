//! The files of a run: what it reads and writes, checked against each other before any
//! work; atomic writes that a signal can abandon without leaving a partial file; the
//! `--save-every` images.

use anyhow::{Context, Result, bail};
use nst_transfer::{Cache, Snapshot, images, leftovers};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a run reads and writes.
pub struct Files<'a> {
    /// The images read, each with its flag (none for the photo and the paintings): content,
    /// styles, an `--init` image, masks.
    pub inputs: Vec<(&'static str, &'a Path)>,
    /// The output image.
    pub output: &'a Path,
    /// The `--report` file.
    pub report: Option<&'a Path>,
    /// The `--analogy-reverse` image.
    pub reverse: Option<&'a Path>,
    /// `--save-every`: numbered saves `NAME_<k>.EXT` for k up to this many evaluations.
    pub numbered_up_to: Option<usize>,
    /// The cache provisioning writes into.
    pub cache: &'a Cache,
}

/// Where the writes land: the output and the report, through any links to their targets.
pub struct Targets {
    pub output: PathBuf,
    pub report: Option<PathBuf>,
    pub reverse: Option<PathBuf>,
}

impl Files<'_> {
    /// Checks, before any work, that no file nst writes is one it reads (by canonical path
    /// and by inode, so links of every kind count), that the writes do not land on each
    /// other or in the cache's own files, that their folders exist and take a new file,
    /// and that numbered saves would replace nothing that is there now.
    pub fn check(&self) -> Result<Targets> {
        let mut inputs = Vec::new();
        let mut inodes = HashSet::new();
        for &(flag, p) in &self.inputs {
            let readable = images::regular_file(p)
                .map_err(anyhow::Error::from)
                .and_then(|()| p.canonicalize().with_context(|| format!("cannot read {}", p.display())));
            inputs.push(readable.map_err(|e| match flag {
                "" => e,
                "--init" => {
                    anyhow::anyhow!("--init {e:#} (it takes content, random, painting or the path of an image)")
                }
                flag => anyhow::anyhow!("{flag} {e:#}"),
            })?);
            inodes.extend(inode(p));
        }
        let is_input = |c: &Path| inputs.iter().any(|i| i == c) || inode(c).is_some_and(|n| inodes.contains(&n));
        let output = target(self.output, "--output")?;
        images::output_format(self.output)?;
        if is_input(&output) {
            bail!("refusing to overwrite the input {}", self.output.display());
        }
        if self.report.is_some_and(|r| r == Path::new("-")) {
            // `-` reads as standard output, which a report is not written to (it is a file).
            bail!("--report - would be a file named '-'; give the report a file name (run.json)");
        }
        let report = self.report.map(|r| target(r, "--report")).transpose()?;
        if let (Some(r), Some(path)) = (&report, self.report) {
            if is_input(r) {
                bail!("--report {} is one of the inputs; refusing to overwrite it", path.display());
            }
            if *r == output || inode(r).is_some_and(|n| inode(&output) == Some(n)) {
                bail!("--report {} is the output image; give the report its own name", path.display());
            }
        }
        if let Some(path) = self.report.filter(|p| image::ImageFormat::from_path(p).is_ok()) {
            // `--report out.png` is most likely the output's name given to the wrong flag.
            bail!("--report {} names an image, but the report is JSON; give it a .json name", path.display());
        }
        let reverse = self.reverse.map(|r| target(r, "--analogy-reverse")).transpose()?;
        if let (Some(r), Some(path)) = (&reverse, self.reverse) {
            images::output_format(path).map_err(|e| anyhow::anyhow!("--analogy-reverse {e}"))?;
            let same = |other: &Path| r == other || inode(r).is_some_and(|n| inode(other) == Some(n));
            if is_input(r) {
                bail!("--analogy-reverse {} is one of the inputs; refusing to overwrite it", path.display());
            }
            if same(&output) || report.as_deref().is_some_and(same) {
                bail!("--analogy-reverse {} is also the output or the report; give it its own name", path.display());
            }
        }
        let cache = self.cache.dir();
        for (canonical, path, flag) in [
            (Some(&output), Some(self.output), "--output"),
            (report.as_ref(), self.report, "--report"),
            (reverse.as_ref(), self.reverse, "--analogy-reverse"),
        ] {
            if let (Some(c), Some(p)) = (canonical, path)
                && self.cache.owns(c)
            {
                bail!("{flag} {} is inside nst's cache {}; write it elsewhere", p.display(), cache.display());
            }
        }
        let folder = output.parent().unwrap_or(Path::new("/"));
        if let Some(up_to) = self.numbered_up_to {
            // A report never has a numbered image's name: an image's name is refused above.
            // The reverse image may, and one would replace the other.
            if let Some(r) = reverse.as_deref().filter(|r| {
                r.parent() == output.parent()
                    && r.file_name().is_some_and(|n| numbered_index(&output, n, up_to).is_some())
            }) {
                bail!("--analogy-reverse {} is one of --save-every's names; give it another", r.display());
            }
            let entries = std::fs::read_dir(folder).with_context(|| format!("cannot read {}", folder.display()))?;
            let mut there: Vec<(usize, PathBuf)> = entries
                .flatten()
                .filter_map(|e| numbered_index(&output, &e.file_name(), up_to).map(|k| (k, e.path())))
                .collect();
            there.sort();
            // Up to five named, or four and how many more.
            let shown = if there.len() <= 5 { 5 } else { 4 };
            let names: Vec<String> = there.iter().take(shown).map(|(_, p)| p.display().to_string()).collect();
            match there.len() {
                0 => {}
                1 => bail!(
                    "--save-every would overwrite {}, which this run did not write; move it or choose another --output",
                    names[0]
                ),
                n => bail!(
                    "--save-every would overwrite {n} files this run did not write ({}{}); move them or choose another --output",
                    names.join(", "),
                    if n > shown { format!(" and {} more", n - shown) } else { String::new() }
                ),
            }
        }
        let others = [&report, &reverse];
        for folder in std::iter::once(folder).chain(others.iter().filter_map(|p| p.as_deref().and_then(Path::parent))) {
            sweep_temporaries(folder);
        }
        self.cache.create().context("nst's cache (set NST_CACHE_DIR to a folder of yours)")?;
        Ok(Targets { output, report, reverse })
    }
}

/// The (device, inode) of a file, when it exists.
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Where a write to `path` lands, canonical (through links): its folder must exist and
/// take a new file, and what is there must be a regular file.
fn target(path: &Path, flag: &str) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let Some(name) = path.file_name().filter(|_| !path.as_os_str().as_bytes().ends_with(b"/")) else {
        bail!("{flag} {} names a folder, not a file", path.display());
    };
    let folder = folder_of(path);
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{flag} {}: {} is not a folder", path.display(), folder.display()),
        Err(_) => bail!("{flag} {}: the folder {} does not exist", path.display(), folder.display()),
    }
    let canonical = match (std::fs::symlink_metadata(path), std::fs::metadata(path)) {
        (Err(_), _) => folder.canonicalize().with_context(|| format!("cannot read {}", folder.display()))?.join(name),
        (Ok(_), Err(_)) => bail!("{flag} {} is a link to nothing (remove it or give another path)", path.display()),
        (Ok(_), Ok(m)) if m.is_dir() => bail!("{flag} {} is a folder", path.display()),
        (Ok(_), Ok(m)) if !m.is_file() => bail!("{flag} {} is not a regular file", path.display()),
        (Ok(_), Ok(m)) => {
            replaceable(path, &m).map_err(|why| anyhow::anyhow!("{flag} {}: {why}", path.display()))?;
            path.canonicalize().with_context(|| format!("cannot read {}", path.display()))?
        }
    };
    new_file_in(canonical.parent().unwrap_or(Path::new("/")))
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e:#}", path.display()))?;
    Ok(canonical)
}

/// Whether this user may replace the file `path` (`meta` its metadata): a rename needs only
/// the folder, but a file you may not write is not yours to replace, and in a sticky folder
/// (like `/tmp`) another user's file cannot be replaced at all.
fn replaceable(path: &Path, meta: &std::fs::Metadata) -> std::result::Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: access only reads the path; geteuid has no preconditions.
    let (writable, uid) = unsafe { (libc::access(c_path.as_ptr(), libc::W_OK) == 0, libc::geteuid()) };
    if !writable {
        return Err("you may not write this file, so nst will not replace it".into());
    }
    let folder = std::fs::metadata(folder_of(path));
    if uid != 0 && meta.uid() != uid && folder.is_ok_and(|f| f.mode() & 0o1000 != 0) {
        return Err(format!("it belongs to another user (uid {}) in a sticky folder; write elsewhere", meta.uid()));
    }
    Ok(())
}

/// The `--save-every` images: after every `every` evaluations, the best image so far as
/// `NAME_<evaluations>.EXT` beside the output, never replacing a file.
pub struct NumberedSaves {
    output: PathBuf,
    every: usize,
    last: usize,
}

impl NumberedSaves {
    pub fn new(output: &Path, every: usize) -> Self {
        Self { output: output.to_path_buf(), every, last: 0 }
    }

    /// Saves `snapshot` when a multiple of `every` was passed since the last save.
    pub fn after(&mut self, snapshot: &Snapshot<'_>) -> Result<()> {
        let done = snapshot.evaluations();
        if done / self.every > self.last / self.every {
            self.last = done;
            save(&snapshot.render(), &numbered(&self.output, done), Existing::Keep)?;
        }
        Ok(())
    }
}

/// Encodes `img` into `path` atomically, in the format its extension names.
pub fn save(img: &image::RgbImage, path: &Path, existing: Existing) -> Result<()> {
    let format = images::output_format(path)?;
    write_atomic(path, existing, |out| {
        images::encode(img, format, out).with_context(|| format!("cannot encode {}", path.display()))
    })
}

/// `out.png` → `out_0100.png`: the name of the save after `k` evaluations.
pub fn numbered(path: &Path, k: usize) -> PathBuf {
    path.with_file_name(numbered_name(path, k))
}

fn numbered_name(path: &Path, k: usize) -> OsString {
    let mut name = path.file_stem().unwrap_or(OsStr::new("nst")).to_os_string();
    name.push(format!("_{k:04}."));
    name.push(path.extension().unwrap_or(OsStr::new("png")));
    name
}

/// `k` when `name` is the numbered save of `output` after `k ≤ up_to` evaluations.
fn numbered_index(output: &Path, name: &OsStr, up_to: usize) -> Option<usize> {
    let stem = output.file_stem()?.to_str()?;
    let digits = name.to_str()?.strip_prefix(stem)?.strip_prefix('_')?.split('.').next()?;
    let k: usize = digits.parse().ok()?;
    (k >= 1 && k <= up_to && numbered_name(output, k) == name).then_some(k)
}

/// Whether [`write_atomic`] may replace a file that is already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace it, keeping its permissions (the output and the report, which the user named).
    Replace,
    /// Leave it and fail (numbered saves, which must not replace what nst did not write).
    Keep,
}

/// Atomic writes, and the one under way: its temporary file and destination.
pub struct Writes {
    writing: Mutex<Option<(PathBuf, PathBuf)>>,
}

/// The process's writes: what a signal abandons.
pub static WRITES: Writes = Writes::new();

/// [`Writes::write_atomic`] on the process's [`WRITES`].
pub fn write_atomic(
    path: &Path,
    existing: Existing,
    write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<()>,
) -> Result<()> {
    WRITES.write_atomic(path, existing, write)
}

impl Writes {
    const fn new() -> Self {
        Self { writing: Mutex::new(None) }
    }

    /// Writes `path` through a temporary file in the same folder and a rename, so a reader
    /// never sees a partial file and a failure leaves what was there.
    pub fn write_atomic(
        &self,
        path: &Path,
        existing: Existing,
        write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<()>,
    ) -> Result<()> {
        // Created under the lock, so a signal never finds a temporary file it does not know.
        let mut tmp = {
            let mut writing = self.lock();
            let tmp = new_file_in(folder_of(path))?;
            *writing = Some((tmp.path().to_path_buf(), path.to_path_buf()));
            tmp
        };
        let written: Result<()> = (|| {
            let mut out = std::io::BufWriter::new(tmp.as_file_mut());
            write(&mut out)?;
            std::io::Write::flush(&mut out).with_context(|| format!("cannot write {}", path.display()))?;
            drop(out);
            // A file replaced keeps who may read it.
            if let Ok(meta) = std::fs::metadata(path) {
                tmp.as_file()
                    .set_permissions(meta.permissions())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        })();
        // The rename happens under the lock, so an abandoned write can never complete.
        let mut writing = self.lock();
        *writing = None;
        written?;
        match existing {
            Existing::Replace => tmp.persist(path).map(drop),
            Existing::Keep => tmp.persist_noclobber(path).map(drop),
        }
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Removes the temporary file of a write under way, if any, and returns its destination.
    /// The lock stays taken, so no write can finish after this: call it only on the way out.
    pub fn abandon(&self) -> Option<PathBuf> {
        let mut writing = self.lock();
        let abandoned = writing.take().map(|(tmp, dest)| {
            let _ = std::fs::remove_file(tmp);
            dest
        });
        std::mem::forget(writing);
        abandoned
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(PathBuf, PathBuf)>> {
        self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The folder a file goes into (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// The prefix of nst's temporary files, `.nst-partial-PID-…`.
const TEMPORARY: &str = ".nst-partial-";

/// A temporary file in `folder` with the usual permissions of a new file
/// (0666 less the umask), ready to be renamed over the destination.
fn new_file_in(folder: &Path) -> Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    let prefix = format!("{TEMPORARY}{}-", std::process::id());
    b.prefix(&prefix);
    b.permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o666));
    let tmp = b.tempfile_in(folder).map_err(|e| {
        // The error names the random temporary file; say it of the folder instead.
        let e = e.raw_os_error().map_or_else(|| std::io::Error::from(e.kind()), std::io::Error::from_raw_os_error);
        if e.kind() == std::io::ErrorKind::NotFound && !folder.is_dir() {
            anyhow::anyhow!("cannot write to {}: the folder no longer exists", folder.display())
        } else if e.kind() == std::io::ErrorKind::NotFound {
            // /proc, say: the folder is there, but takes no new files.
            anyhow::anyhow!("cannot write to {}: it takes no new files", folder.display())
        } else {
            anyhow::anyhow!("cannot write to {}: {e}", folder.display())
        }
    })?;
    // Held while the file is open: a later run's sweep leaves it alone.
    leftovers::hold(tmp.as_file()).with_context(|| format!("cannot lock {}", tmp.path().display()))?;
    Ok(tmp)
}

/// A file that could not be written where asked: why, and where it went instead, if it could
/// be saved at all.
pub struct Rescue {
    pub error: anyhow::Error,
    pub to: Option<PathBuf>,
}

/// Writes what `write` makes to `path` atomically; if that fails (the folder went away, the
/// disk filled), to a new file in the temporary folder instead, or failing that (`TMPDIR`
/// names no folder, that disk is full too) in the home folder, so the run's work is not lost:
/// the error says where it went, or that that failed too.
pub fn write_or_rescue(
    path: &Path,
    what: &str,
    write: impl Fn(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<()>,
) -> Result<(), Rescue> {
    let Err(e) = write_atomic(path, Existing::Replace, &write) else { return Ok(()) };
    let ext = path.extension().map_or(String::new(), |x| format!(".{}", x.to_string_lossy()));
    let save_in = |folder: &Path| -> Result<PathBuf> {
        let mut file = tempfile::Builder::new()
            .prefix(&format!("nst-rescued-{what}-"))
            .suffix(&ext)
            .disable_cleanup(true)
            .tempfile_in(folder)?;
        let saved = (|| {
            let mut out = std::io::BufWriter::new(file.as_file_mut());
            write(&mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        })();
        if saved.is_err() {
            // Half a file is no rescue.
            let _ = std::fs::remove_file(file.path());
        }
        saved.map(|()| file.path().to_path_buf())
    };
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute());
    let mut failures = Vec::new();
    for folder in std::iter::once(std::env::temp_dir()).chain(home) {
        match save_in(&folder) {
            Ok(to) => {
                let error = anyhow::anyhow!("{e:#}; the {what} is saved in {} instead", to.display());
                return Err(Rescue { error, to: Some(to) });
            }
            Err(r) => failures.push(format!("in {}: {r:#}", folder.display())),
        }
    }
    let error = anyhow::anyhow!("{e:#}; saving the {what} elsewhere failed too ({})", failures.join("; "));
    Err(Rescue { error, to: None })
}

/// Removes the temporary files that a process killed outright (`kill -9`, a power cut)
/// left in `folder`.
fn sweep_temporaries(folder: &Path) {
    for file in leftovers::stale_leftovers(folder, TEMPORARY) {
        if file.is_file() && file.file_name().and_then(OsStr::to_str).is_some_and(is_temporary) {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Whether `name` is one of nst's temporary files: `.nst-partial-PID-` and tempfile's six
/// random letters and digits, nothing else (a user's `.nst-partial-notes.txt` is not).
fn is_temporary(name: &str) -> bool {
    let Some((pid, random)) = name.strip_prefix(TEMPORARY).and_then(|rest| rest.split_once('-')) else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 6
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_and_their_indices() {
        let out = Path::new("/x/sv.png");
        assert_eq!(numbered(out, 3), Path::new("/x/sv_0003.png"));
        assert_eq!(numbered(out, 12345), Path::new("/x/sv_12345.png"));
        assert_eq!(numbered_index(out, OsStr::new("sv_0003.png"), 10), Some(3));
        assert_eq!(numbered_index(out, OsStr::new("sv_0003.png"), 2), None);
        assert_eq!(numbered_index(out, OsStr::new("sv_3.png"), 10), None);
        assert_eq!(numbered_index(out, OsStr::new("sv_0000.png"), 10), None);
        assert_eq!(numbered_index(out, OsStr::new("sv_0003.jpg"), 10), None);
        assert_eq!(numbered_index(out, OsStr::new("sv.png"), 10), None);
    }

    #[test]
    fn temporaries_of_ended_runs_are_swept_and_permissions_kept() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        let stale = d.path().join(format!("{TEMPORARY}7-aBc9Xz"));
        let notes = d.path().join(".nst-notes");
        let (users, named) =
            (d.path().join(format!("{TEMPORARY}notes.txt")), d.path().join(format!("{TEMPORARY}7-abc.png")));
        for p in [&stale, &notes, &users, &named] {
            std::fs::write(p, b"x").unwrap();
            std::fs::File::options().write(true).open(p).unwrap().set_modified(old).unwrap();
        }
        let live = new_file_in(d.path()).unwrap();
        live.as_file().set_modified(old).unwrap();
        sweep_temporaries(d.path());
        assert!(!stale.exists() && notes.exists() && live.path().exists());
        assert!(users.exists() && named.exists(), "a file not named as nst names its own went");
        let private = d.path().join("private.json");
        std::fs::write(&private, b"{}").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&private, Existing::Replace, |out| Ok(std::io::Write::write_all(out, b"[]")?)).unwrap();
        assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(write_atomic(&notes, Existing::Keep, |_| Ok(())).is_err(), "a numbered save replaced a file");
    }

    #[test]
    fn an_abandoned_write_leaves_no_file() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out.png");
        std::fs::write(&dest, b"before").unwrap();
        // A write abandoned halfway, as by a second signal: the temporary file goes, the
        // destination keeps what it had, and the writer never gets to rename (its thread
        // stays blocked until the process ends, as the process would have ended).
        let writes: &'static Writes = Box::leak(Box::new(Writes::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let target = dest.clone();
        std::thread::spawn(move || {
            let _ = writes.write_atomic(&target, Existing::Replace, |out| {
                std::io::Write::write_all(out, b"half")?;
                tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(200));
                Ok(())
            });
            unreachable!("an abandoned write never completes");
        });
        rx.recv().unwrap();
        assert_eq!(writes.abandon().as_deref(), Some(dest.as_path()));
        std::thread::sleep(std::time::Duration::from_millis(400));
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![OsString::from("out.png")]);
        assert_eq!(std::fs::read(&dest).unwrap(), b"before");
    }
}
