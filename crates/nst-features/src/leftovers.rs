//! Scratch that dies with its process: a file or folder in use holds an advisory lock
//! (`flock`), which the kernel drops when the process ends however it ends, so what a
//! killed process left is told apart from what a live one — in this process namespace or
//! another sharing the folder — is still writing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Entries younger than this are left alone: their lock may not be taken yet.
const GRACE: Duration = Duration::from_secs(60);

/// Takes the lock on `file` (a file or a folder opened for reading) until it is closed.
pub fn hold(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this process owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What processes that ended without cleaning up left in `folder`: the entries named
/// `PREFIX…` that are more than a minute old and that no process holds.
pub fn stale_leftovers(folder: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(prefix)))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > GRACE)
        })
        // A lock taken here is released at once, when the file is closed.
        .filter(|e| File::open(e.path()).is_ok_and(|f| hold(&f).is_ok()))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_held_or_new_is_kept_and_the_rest_is_stale() {
        let d = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(120);
        let age = |p: &Path| File::options().write(true).open(p).unwrap().set_modified(old).unwrap();
        let (stale, held, fresh, other) =
            (d.path().join("x-stale"), d.path().join("x-held"), d.path().join("x-fresh"), d.path().join("y-old"));
        for p in [&stale, &held, &fresh, &other] {
            std::fs::write(p, b"").unwrap();
        }
        for p in [&stale, &held, &other] {
            age(p);
        }
        let lock = File::open(&held).unwrap();
        hold(&lock).unwrap();
        assert_eq!(stale_leftovers(d.path(), "x-"), vec![stale]);
    }
}
