//! The server's files: each job's uploads, preview, result and report, in a temporary folder
//! of this server's, removed when the server stops (and, if it was killed, by the next one).

use std::path::PathBuf;

/// The prefix of a server's folder in the temporary folder.
const PREFIX: &str = "nst-serve-";

/// A job's files, by name.
pub struct Store {
    dir: tempfile::TempDir,
    /// The folder, held open and locked while the server runs (see `nst_transfer::leftovers`).
    _lock: std::fs::File,
}

impl Store {
    /// A new, empty store in the system's temporary folder; removes what killed servers left.
    pub fn new() -> std::io::Result<Self> {
        let tmp = std::env::temp_dir();
        for stale in nst_transfer::leftovers::stale_leftovers(&tmp, PREFIX) {
            let _ = std::fs::remove_dir_all(stale);
        }
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir()?;
        let lock = std::fs::File::open(dir.path())?;
        nst_transfer::leftovers::hold(&lock)?;
        Ok(Self { dir, _lock: lock })
    }

    /// A new folder for a job's files; its name (nst's own, never a client's) is the key.
    pub fn create(&self) -> std::io::Result<String> {
        let dir = tempfile::Builder::new().prefix("job-").tempdir_in(self.dir.path())?;
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
        std::fs::create_dir_all(folder)?;
        let mut tmp = tempfile::NamedTempFile::new_in(folder)?;
        std::io::Write::write_all(&mut tmp, bytes)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// A stored file.
    pub fn get(&self, key: &str, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key, name)).ok()
    }
}
