//! The base image's census for `image.layers: base`: which of its
//! directories hold an entry that normalization would change.
//!
//! `repro-frontend census --epoch N --out OUT BASE` runs once per base image
//! and epoch, in an exec of its own beside the install (so the engine caches
//! it across builds, and a cold build runs it while packages are fetched).
//! It writes `OUT/dirty-dirs`: the directories (paths below the root,
//! NUL-terminated, sorted) that hold, at any depth, an entry normalize would
//! not leave as the base has it: a time newer than the epoch, a POSIX ACL
//! (which the copy drops), a pacman record (whose dates it rewrites), or a
//! name that would act as a whiteout.
//!
//! The normalize step of `layers: base` then leaves out of its walks every
//! directory the build did not touch (the same inode and change time in the
//! base's mount and the build's: an overlay mount copies a directory up, to
//! a new change time, before anything below it changes) unless the census
//! names it. Its work is in proportion to what the build changed, and its
//! delta is the one the full walk gives.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::step::normalize::{at, is_whiteout_name, left_as_it_is, sorted_children};

/// The census's file name in its output directory.
pub const FILE: &str = "dirty-dirs";

/// The directories below `base` (relative, sorted) that hold, at any
/// depth, an entry normalization would change (see the module's text).
/// Links are never followed; the root itself is not listed.
pub fn census(base: &Path, epoch: i64) -> io::Result<Vec<PathBuf>> {
    let mut dirty = Vec::new();
    walk(base, base, epoch, &mut dirty)?;
    dirty.sort();
    Ok(dirty)
}

/// Walks `dir`; returns whether it holds a dirty entry, pushing each
/// directory below `root` that does (or is dirty itself).
fn walk(root: &Path, dir: &Path, epoch: i64, dirty: &mut Vec<PathBuf>) -> io::Result<bool> {
    let mut any = false;
    for path in sorted_children(dir)? {
        let meta = fs::symlink_metadata(&path).map_err(|e| at(&path, e))?;
        let mut hit = changed_by_normalize(&path, &meta, epoch)?;
        if meta.is_dir() {
            hit |= walk(root, &path, epoch, dirty)?;
            if hit {
                dirty.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
        any |= hit;
    }
    Ok(any)
}

/// Whether normalize would change the base's entry at `path`, or refuse it.
fn changed_by_normalize(path: &Path, meta: &fs::Metadata, epoch: i64) -> io::Result<bool> {
    let whiteout = path
        .file_name()
        .is_some_and(|n| is_whiteout_name(n.as_bytes()));
    Ok(whiteout || !left_as_it_is(path, meta, epoch)?)
}

/// Writes the census to `out/dirty-dirs`.
pub fn write(out: &Path, dirs: &[PathBuf]) -> io::Result<()> {
    let mut bytes = Vec::new();
    for d in dirs {
        bytes.extend_from_slice(d.as_os_str().as_bytes());
        bytes.push(0);
    }
    let path = out.join(FILE);
    fs::write(&path, bytes).map_err(|e| at(&path, e))
}

/// Reads a census file written by [`write`].
pub fn read(path: &Path) -> io::Result<HashSet<PathBuf>> {
    let bytes = fs::read(path).map_err(|e| at(path, e))?;
    if bytes.last().is_some_and(|b| *b != 0) {
        return Err(at(
            path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                "not a census: the last path is not NUL-terminated",
            ),
        ));
    }
    Ok(bytes
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(OsStr::from_bytes(p)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::normalize::set_times;

    const EPOCH: i64 = 1_000_000;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, rel).unwrap();
    }

    /// Every entry below `root`, deepest first, to `secs`.
    fn stamp(root: &Path, secs: i64) {
        for c in sorted_children(root).unwrap() {
            if fs::symlink_metadata(&c).unwrap().is_dir() {
                stamp(&c, secs);
            }
            set_times(&c, (secs, 0), (secs, 0)).unwrap();
        }
    }

    #[test]
    fn names_every_directory_above_what_normalize_would_change() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch(root, "usr/share/doc/a/copyright");
        touch(root, "usr/lib/x/y/late");
        touch(root, "var/lib/pacman/local/x-1-1/desc");
        touch(root, "srv/.wh.trick");
        touch(root, "top-late");
        fs::create_dir_all(root.join("opt/later-dir/inner")).unwrap();
        stamp(root, 1000);
        set_times(&root.join("usr/lib/x/y/late"), (1, 0), (EPOCH, 1)).unwrap();
        set_times(&root.join("top-late"), (1, 0), (EPOCH + 1, 0)).unwrap();
        set_times(&root.join("opt/later-dir"), (1, 0), (EPOCH + 1, 0)).unwrap();
        let dirs = census(root, EPOCH).unwrap();
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        assert_eq!(
            shown,
            [
                "opt",
                "opt/later-dir",
                "srv",
                "usr",
                "usr/lib",
                "usr/lib/x",
                "usr/lib/x/y",
                "var",
                "var/lib",
                "var/lib/pacman",
                "var/lib/pacman/local",
                "var/lib/pacman/local/x-1-1",
            ]
        );
        touch(root, "out/.keep");
        write(&root.join("out"), &dirs).unwrap();
        let back = read(&root.join("out").join(FILE)).unwrap();
        assert_eq!(back, dirs.into_iter().collect());
    }

    #[test]
    fn a_census_that_is_not_one_is_refused_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(FILE);
        fs::write(&p, b"usr\0lib").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains(FILE) && e.contains("NUL"), "{e}");
    }
}
