//! The server's files: each job's uploads, preview, result and report, in a folder of this
//! server's, removed when the server stops.
//!
//! Servers' folders live in one parent folder of the user's, `$TMP/nst-serve-UID/`, each marked
//! as nst's and locked while its server runs; a server starting removes the marked, unlocked
//! folders that killed servers left there — and never touches anything else.

use std::path::PathBuf;

/// The file that marks a folder as a server's.
const MARK: &str = ".nst-serve";

/// A job's files, by name.
pub struct Store {
    dir: tempfile::TempDir,
    /// The folder, held open and locked while the server runs (see `nst_transfer::leftovers`).
    _lock: std::fs::File,
}

/// `$TMP/nst-serve-UID`, created private if need be; `None` when it is not a private folder
/// of this user's (then nothing is swept, and the server's folder goes straight into `$TMP`).
fn parent() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let dir = std::env::temp_dir().join(format!("nst-serve-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0).then_some(dir)
}

impl Store {
    /// A new, empty store; removes what killed servers left.
    pub fn new() -> std::io::Result<Self> {
        let dir = match parent() {
            Some(parent) => {
                for stale in nst_transfer::leftovers::stale_leftovers(&parent, "server-") {
                    if stale.join(MARK).is_file() {
                        let _ = std::fs::remove_dir_all(stale);
                    }
                }
                tempfile::Builder::new().prefix("server-").tempdir_in(parent)?
            }
            None => tempfile::Builder::new().prefix("nst-serve-").tempdir()?,
        };
        std::fs::write(dir.path().join(MARK), b"a folder of nst serve, removed when it stops\n")?;
        let lock = std::fs::File::open(dir.path())?;
        nst_transfer::leftovers::hold(&lock)?;
        Ok(Self { dir, _lock: lock })
    }

    /// The folder.
    #[cfg(test)]
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A new folder for a job's files; its name (nst's own, never a client's) is the key.
    pub fn create(&self) -> std::io::Result<String> {
        let dir = tempfile::Builder::new().prefix("job-").tempdir_in(self.dir.path()).map_err(pathless)?;
        let name = dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = dir.keep();
        Ok(name)
    }

    /// Where file `name` of folder `key` lives.
    fn path(&self, key: &str, name: &str) -> PathBuf {
        self.dir.path().join(key).join(name)
    }

    /// Stores a file, atomically (a reader sees the old or the new file whole).
    pub fn put(&self, key: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(key, name);
        let folder = path.parent().unwrap_or(self.dir.path());
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(folder)?;
            let mut tmp = tempfile::NamedTempFile::new_in(folder)?;
            std::io::Write::write_all(&mut tmp, bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(pathless)
    }

    /// Removes folder `key` (a name [`Store::create`] gave) and its files.
    pub fn remove(&self, key: &str) -> std::io::Result<()> {
        if key.is_empty() || key.contains(['/', '\\']) || key.starts_with('.') {
            return Err(std::io::Error::other(format!("not a job's folder: {key:?}")));
        }
        std::fs::remove_dir_all(self.dir.path().join(key))
    }

    /// A stored file.
    pub fn get(&self, key: &str, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key, name)).ok()
    }
}

/// What went wrong with the server's folder, in words for the page: the folder's path, which
/// is the server's business, stays out (tempfile's errors carry it).
fn pathless(e: std::io::Error) -> std::io::Error {
    use std::io::ErrorKind;
    let what = match e.kind() {
        ErrorKind::NotFound => "is gone".to_string(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => "is on a full disk".to_string(),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => "cannot be written to".to_string(),
        kind => format!("cannot be written to ({kind})"),
    };
    std::io::Error::new(e.kind(), format!("the server's folder for its jobs {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_new_store_sweeps_only_its_kind() {
        let parent = parent().expect("a private parent folder");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        let age = |p: &Path| std::fs::File::open(p).unwrap().set_modified(old).unwrap();
        // Left by a killed server: marked, unlocked, old.
        let killed = tempfile::Builder::new().prefix("server-").tempdir_in(&parent).unwrap().keep();
        std::fs::write(killed.join(MARK), b"").unwrap();
        age(&killed);
        // Someone else's folder with the same prefix and no mark.
        let other = tempfile::Builder::new().prefix("server-").tempdir_in(&parent).unwrap().keep();
        std::fs::write(other.join("notes.txt"), b"mine").unwrap();
        age(&other);
        let live = Store::new().unwrap();
        assert!(!killed.exists(), "a killed server's folder stays");
        assert!(other.join("notes.txt").exists(), "a folder without the mark was removed");
        assert!(live.dir().join(MARK).is_file());
        std::fs::remove_dir_all(other).unwrap();
    }

    #[test]
    fn a_store_whose_folder_went_says_so_without_its_path() {
        let store = Store::new().unwrap();
        std::fs::remove_dir_all(store.dir()).unwrap();
        assert_eq!(store.create().unwrap_err().to_string(), "the server's folder for its jobs is gone");
    }
}
