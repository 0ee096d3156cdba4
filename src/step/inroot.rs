//! Paths inside a root filesystem that is not our own `/`: a link in it is
//! data, never a way to the files of the container we run in.
//!
//! The steps run in the frontend's image with the built rootfs mounted at a
//! directory, so the kernel resolves a link `var/log -> /out` to our `/out`,
//! not the rootfs's. Two ways out of that, each for its kind of pass: a pass
//! that removes or rewrites entries under a known directory takes the
//! directory only when no component of its path is a link
//! ([`unlinked`]); a read of a known file resolves links the way the
//! image's own processes would, with the rootfs as `/` ([`resolve`]), and
//! reads a regular file only, up to a size ([`read_regular`]). Does I/O
//! (lstat, readlink, open and read; never a write).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::step::normalize::at;

/// Links followed in one resolution before it is refused, as the kernel's
/// own limit (MAXSYMLINKS).
pub const MAX_HOPS: usize = 40;

/// `root/rel` and the entry's own metadata (a link is not followed), when
/// it is there and no component of `rel` is a link: every component but the
/// last is a real directory. None otherwise. `rel` is relative and has no
/// `..` (those are our own constant paths and names read from a directory).
pub fn unlinked(root: &Path, rel: &Path) -> io::Result<Option<(PathBuf, fs::Metadata)>> {
    let mut path = root.to_path_buf();
    let mut last = None;
    for c in rel.components() {
        match c {
            Component::Normal(name) => {
                if let Some(m) = &last
                    && !is_real_dir(m)
                {
                    return Ok(None);
                }
                path.push(name);
                last = match fs::symlink_metadata(&path) {
                    Ok(m) if m.file_type().is_symlink() => return Ok(None),
                    Ok(m) => Some(m),
                    Err(e) if gone(&e) => return Ok(None),
                    Err(e) => return Err(at(&path, e)),
                };
            }
            Component::CurDir => {}
            _ => return Ok(None),
        }
    }
    Ok(last.map(|m| (path, m)))
}

/// `root/rel` when it is a real directory reached through no link (see
/// [`unlinked`]).
pub fn real_dir(root: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    Ok(unlinked(root, rel)?.and_then(|(p, m)| is_real_dir(&m).then_some(p)))
}

pub(crate) fn is_real_dir(m: &fs::Metadata) -> bool {
    m.is_dir() && !m.file_type().is_symlink()
}

/// Whether a lookup found nothing there (ENOTDIR: a file in the middle).
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Resolves `rel` below `root` as the kernel would if `root` were `/`:
/// every link, the last component's too, is followed with absolute targets
/// re-rooted at `root` and `..` stopping at it. The result is a path below
/// `root` whose components are real directories and whose last one is no
/// link; None when nothing is there (a missing entry, a dangling link, a
/// non-directory in the middle). More than [`MAX_HOPS`] links is an error
/// naming `rel`.
pub fn resolve(root: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    let mut here = root.to_path_buf();
    let mut depth = 0usize;
    let mut hops = 0usize;
    // Still to walk, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(rel, &mut pending);
    while let Some(name) = pending.pop() {
        if name == ".." {
            if depth > 0 {
                here.pop();
                depth -= 1;
            }
            continue;
        }
        here.push(&name);
        let meta = match fs::symlink_metadata(&here) {
            Ok(m) => m,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(at(&here, e)),
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(io::Error::other(format!(
                    "/{}: more than {MAX_HOPS} symbolic links on the way",
                    rel.display()
                )));
            }
            let target = fs::read_link(&here).map_err(|e| at(&here, e))?;
            here.pop();
            if target.has_root() {
                here = root.to_path_buf();
                depth = 0;
            }
            push_components(&target, &mut pending);
            continue;
        }
        if !meta.is_dir() && !pending.is_empty() {
            return Ok(None);
        }
        depth += 1;
    }
    Ok(Some(here))
}

/// Pushes the names and `..`s of `path` onto `pending` so that the first
/// one is popped first (a leading `/` and `.`s are dropped).
fn push_components(path: &Path, pending: &mut Vec<OsString>) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}

/// The content of the regular file at `path`, which must hold at most `cap`
/// bytes. The open follows no link and does not wait on a fifo; a device, a
/// fifo, a socket or a directory is an error naming the path, as is a file
/// longer than `cap` (of kind `FileTooLarge`), so a read never runs on
/// without end.
pub fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| at(path, e))?;
    let meta = file.metadata().map_err(|e| at(path, e))?;
    if !meta.is_file() {
        return Err(at(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let too_large = || {
        at(
            path,
            io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("longer than {cap} bytes"),
            ),
        )
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| at(path, e))?;
    if data.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with usr/lib/os-release, an outside directory beside it, and
    /// the links the tests resolve.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(root.join("usr/lib/os-release"), "ID=inside\n").unwrap();
        fs::write(outside.join("os-release"), "ID=outside\n").unwrap();
        (tmp, root, outside)
    }

    #[test]
    fn absolute_targets_are_rerooted_and_dotdot_stops_at_the_root() {
        let (_tmp, root, outside) = fixture();
        symlink("/usr/lib/os-release", root.join("etc/abs")).unwrap();
        symlink("../usr/lib/os-release", root.join("etc/rel")).unwrap();
        symlink("../../../../../../usr/lib/os-release", root.join("etc/up")).unwrap();
        symlink("/usr", root.join("u")).unwrap();
        symlink(outside.join("os-release"), root.join("etc/host")).unwrap();
        let want = root.join("usr/lib/os-release");
        for rel in [
            "etc/abs",
            "etc/rel",
            "etc/up",
            "u/lib/os-release",
            "u/../usr/lib/os-release",
        ] {
            assert_eq!(
                resolve(&root, Path::new(rel)).unwrap(),
                Some(want.clone()),
                "{rel}"
            );
        }
        // The host's path, read inside the root, is not there.
        assert_eq!(resolve(&root, Path::new("etc/host")).unwrap(), None);
        assert_eq!(
            resolve(&root, Path::new("usr/lib/os-release/x")).unwrap(),
            None
        );
        assert_eq!(resolve(&root, Path::new("..")).unwrap(), Some(root.clone()));
    }

    #[test]
    fn a_link_loop_is_an_error_naming_the_path() {
        let (_tmp, root, _) = fixture();
        symlink("b", root.join("etc/a")).unwrap();
        symlink("a", root.join("etc/b")).unwrap();
        let err = resolve(&root, Path::new("etc/a")).unwrap_err();
        assert!(err.to_string().contains("/etc/a: more than 40"), "{err}");
    }

    #[test]
    fn unlinked_paths_take_no_link_on_the_way() {
        let (_tmp, root, outside) = fixture();
        symlink(&outside, root.join("var")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        assert!(
            unlinked(&root, Path::new("var/os-release"))
                .unwrap()
                .is_none()
        );
        assert!(
            unlinked(&root, Path::new("lib/os-release"))
                .unwrap()
                .is_none()
        );
        assert!(real_dir(&root, Path::new("lib")).unwrap().is_none());
        assert_eq!(
            real_dir(&root, Path::new("usr/lib")).unwrap(),
            Some(root.join("usr/lib"))
        );
        let (p, m) = unlinked(&root, Path::new("usr/lib/os-release"))
            .unwrap()
            .unwrap();
        assert!(m.is_file() && p == root.join("usr/lib/os-release"));
        // The link itself, when it is the last component, is not followed.
        assert!(unlinked(&root, Path::new("var")).unwrap().is_none());
        assert!(
            unlinked(&root, Path::new("usr/lib/os-release/x"))
                .unwrap()
                .is_none()
        );
        assert!(unlinked(&root, Path::new("../outside")).unwrap().is_none());
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let (_tmp, root, _) = fixture();
        let path = root.join("usr/lib/os-release");
        assert_eq!(read_regular(&path, 64).unwrap(), b"ID=inside\n");
        let err = read_regular(&path, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert!(
            err.to_string().contains("os-release: longer than 4 bytes"),
            "{err}"
        );
        let err = read_regular(Path::new("/dev/zero"), 64).unwrap_err();
        assert!(
            err.to_string().contains("/dev/zero: not a regular file"),
            "{err}"
        );
        let fifo = root.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; makes a fifo.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_regular(&fifo, 64).is_err(), "a fifo is not waited on");
        symlink("usr/lib/os-release", root.join("link")).unwrap();
        assert!(
            read_regular(&root.join("link"), 64).is_err(),
            "no link is followed"
        );
    }
}
