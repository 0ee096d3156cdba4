//! The normalization pass run inside the build: clamp times, drop build logs and caches.
//!
//! `repro-frontend normalize --epoch N DIR` runs in an exec whose root is the
//! frontend's own image and whose `DIR` is the target rootfs, so it needs no
//! tool from the target image (a distroless or busybox base has no GNU find or
//! touch) and the engine's per-exec mount stubs (/etc/hosts and friends) are
//! made in our root, not in the target's. This is the one library module that
//! touches a filesystem; the gateway never calls it.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Caches whose content depends on inode numbers or timing; removed, like
/// the backups below, whoever wrote them: an image never needs them.
const CACHES: &[&str] = &["var/cache/ldconfig/aux-cache"];

/// Directories whose files are removed when the build wrote them (mtime newer
/// than the epoch): logs, and apt's binary caches.
const LOG_DIRS: &[&str] = &["var/log", "var/cache/apt"];

/// Directories whose backup files (`*-old`) are removed, the base's too:
/// dpkg and debconf keep the previous copy of their databases there.
const BACKUP_DIRS: &[&str] = &["var/lib/dpkg", "var/cache/debconf"];

/// Directories for runtime and scratch state: what the build added there is
/// removed; the directories themselves and what the base had stay.
const SCRATCH_DIRS: &[&str] = &["run", "tmp", "var/tmp"];

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub removed: Vec<PathBuf>,
    pub clamped: u64,
    pub entries: u64,
    /// Hard links replaced by copies.
    pub unlinked: u64,
}

/// Normalizes the tree at `root`. `base`, when given, is the base image's
/// rootfs: an entry of a scratch directory that the base also has is kept.
/// Without it, "added by the build" means "newer than the epoch".
pub fn normalize(root: &Path, epoch: i64, base: Option<&Path>) -> io::Result<Report> {
    let mut report = Report::default();
    let newer = |m: &fs::Metadata| newer_than(m.mtime(), m.mtime_nsec(), epoch);
    for rel in CACHES {
        remove_if(root, &root.join(rel), &mut report, |_| true)?;
    }
    for rel in LOG_DIRS {
        walk_files(&root.join(rel), &mut |path, meta| {
            if meta.is_file() && newer_than(meta.mtime(), meta.mtime_nsec(), epoch) {
                remove_if(root, path, &mut report, |_| true)?;
            }
            Ok(())
        })?;
    }
    for rel in BACKUP_DIRS {
        walk_files(&root.join(rel), &mut |path, meta| {
            if !meta.is_dir()
                && path
                    .file_name()
                    .is_some_and(|n| n.as_bytes().ends_with(b"-old"))
            {
                remove_if(root, path, &mut report, |_| true)?;
            }
            Ok(())
        })?;
    }
    for rel in SCRATCH_DIRS {
        prune_added(root, Path::new(rel), base, &newer, &mut report)?;
    }
    empty_dev(root, &mut report)?;
    remove_sqlite_shm(root, root, epoch, &mut report)?;
    clamp_pacman_install_dates(root, epoch)?;
    break_hardlinks(root, &mut HashSet::new(), &mut report)?;
    clamp_tree(root, epoch, &mut report)?;
    Ok(report)
}

/// Empties /dev. The runtime mounts its own /dev over it, so nothing there
/// is ever seen; and Docker 20.10's copy turns device nodes into empty files
/// where newer engines keep them, so leaving them would make the engines'
/// images differ.
fn empty_dev(root: &Path, report: &mut Report) -> io::Result<()> {
    let dev = root.join("dev");
    match fs::symlink_metadata(&dev) {
        Ok(m) if m.is_dir() => {}
        _ => return Ok(()),
    }
    let mut children: Vec<PathBuf> = fs::read_dir(&dev)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    children.sort();
    for child in children {
        remove_if(root, &child, report, |_| true)?;
    }
    Ok(())
}

/// Removes SQLite shared-memory files (`<db>-shm`) the build wrote: an index
/// of the write-ahead log that SQLite rebuilds on open, holding whatever was
/// in memory (rpm's database leaves one behind).
fn remove_sqlite_shm(root: &Path, dir: &Path, epoch: i64, report: &mut Report) -> io::Result<()> {
    let mut children: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    children.sort();
    for child in children {
        let meta = fs::symlink_metadata(&child)?;
        if meta.is_dir() {
            remove_sqlite_shm(root, &child, epoch, report)?;
        } else if meta.is_file()
            && newer_than(meta.mtime(), meta.mtime_nsec(), epoch)
            && let Some(db) = child
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix("-shm"))
            && child.with_file_name(db).is_file()
        {
            remove_if(root, &child, report, |_| true)?;
        }
    }
    Ok(())
}

/// pacman records when it installed each package (`%INSTALLDATE%` in
/// `/var/lib/pacman/local/*/desc`); dates after the epoch become the epoch.
fn clamp_pacman_install_dates(root: &Path, epoch: i64) -> io::Result<()> {
    let local = root.join("var/lib/pacman/local");
    let Ok(entries) = fs::read_dir(&local) else {
        return Ok(());
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for dir in dirs {
        let desc = dir.join("desc");
        let Ok(meta) = fs::symlink_metadata(&desc) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let text = fs::read_to_string(&desc)?;
        let mut out = String::with_capacity(text.len());
        let mut lines = text.split_inclusive('\n');
        let mut changed = false;
        while let Some(line) = lines.next() {
            out.push_str(line);
            if line.trim_end() == "%INSTALLDATE%"
                && let Some(value) = lines.next()
            {
                match value.trim_end().parse::<i64>() {
                    Ok(t) if t > epoch => {
                        out.push_str(&format!("{epoch}\n"));
                        changed = true;
                    }
                    _ => out.push_str(value),
                }
            }
        }
        if changed {
            fs::write(&desc, out)?;
        }
    }
    Ok(())
}

/// Replaces every hard link after the first (in path order) with a copy.
/// Docker 20.10 exports hard links as separate files and newer engines keep
/// them; with none left, both write the same tar.
fn break_hardlinks(
    dir: &Path,
    seen: &mut HashSet<(u64, u64)>,
    report: &mut Report,
) -> io::Result<()> {
    let mut children: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    children.sort();
    let parent_meta = fs::symlink_metadata(dir)?;
    let mut changed = false;
    for child in children {
        let meta = fs::symlink_metadata(&child)?;
        if meta.is_dir() {
            break_hardlinks(&child, seen, report)?;
        } else if meta.is_file() && meta.nlink() > 1 {
            // The first path of an inode keeps it; later ones get copies.
            if !seen.insert((meta.dev(), meta.ino())) {
                copy_over_link(&child, &meta)?;
                report.unlinked += 1;
                changed = true;
            }
        }
    }
    if changed {
        // Keep the directory's own time as it was.
        set_times(
            dir,
            (parent_meta.atime(), parent_meta.atime_nsec()),
            (parent_meta.mtime(), parent_meta.mtime_nsec()),
        )?;
    }
    Ok(())
}

/// Replaces `path` (a hard link) by an independent copy with the same
/// content, owner, mode and times.
fn copy_over_link(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.repro-copy"));
    fs::copy(path, &tmp)?;
    std::os::unix::fs::lchown(&tmp, Some(meta.uid()), Some(meta.gid()))?;
    // After chown, which clears set-id bits.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    set_times(
        &tmp,
        (meta.atime(), meta.atime_nsec()),
        (meta.mtime(), meta.mtime_nsec()),
    )?;
    fs::rename(&tmp, path)
}

/// Removes what the build added below `root/rel` (see [`normalize`]).
fn prune_added(
    root: &Path,
    rel: &Path,
    base: Option<&Path>,
    newer: &dyn Fn(&fs::Metadata) -> bool,
    report: &mut Report,
) -> io::Result<()> {
    let dir = root.join(rel);
    // Only real directories: a symlink (Debian's /var/run -> /run) is left alone.
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        _ => return Ok(()),
    }
    let mut children: Vec<PathBuf> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    children.sort();
    for child in children {
        let Some(name) = child.file_name() else {
            continue;
        };
        let child_rel = rel.join(name);
        let meta = fs::symlink_metadata(&child)?;
        let in_base = match base {
            Some(b) => fs::symlink_metadata(b.join(&child_rel)).is_ok(),
            None => !newer(&meta),
        };
        if !in_base {
            remove_if(root, &child, report, |_| true)?;
        } else if meta.is_dir() {
            prune_added(root, &child_rel, base, newer, report)?;
        }
    }
    Ok(())
}

fn remove_if(
    root: &Path,
    path: &Path,
    report: &mut Report,
    pred: impl Fn(&fs::Metadata) -> bool,
) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !pred(&meta) {
        return Ok(());
    }
    if meta.is_dir() {
        fs::remove_dir_all(path)?;
    } else {
        fs::remove_file(path)?;
    }
    report
        .removed
        .push(Path::new("/").join(path.strip_prefix(root).unwrap_or(path)));
    Ok(())
}

/// Calls `f` on every non-directory entry below `dir` (not following links).
fn walk_files(
    dir: &Path,
    f: &mut dyn FnMut(&Path, &fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    paths.sort();
    for path in paths {
        let meta = fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            walk_files(&path, f)?;
        } else {
            f(&path, &meta)?;
        }
    }
    Ok(())
}

/// Sets atime and mtime of everything newer than `epoch` to `epoch`,
/// children before their directory, never following a symlink.
fn clamp_tree(path: &Path, epoch: i64, report: &mut Report) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut children: Vec<PathBuf> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()?;
        children.sort();
        for child in children {
            clamp_tree(&child, epoch, report)?;
        }
    }
    report.entries += 1;
    let newer = newer_than(meta.mtime(), meta.mtime_nsec(), epoch);
    let atime_newer = newer_than(meta.atime(), meta.atime_nsec(), epoch);
    if newer || atime_newer {
        set_times_nofollow(path, epoch, newer)?;
        if newer {
            report.clamped += 1;
        }
    }
    Ok(())
}

fn newer_than(secs: i64, nsecs: i64, epoch: i64) -> bool {
    secs > epoch || (secs == epoch && nsecs > 0)
}

/// Sets atime and mtime exactly (seconds, nanoseconds), not following links.
fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let ts = |(s, ns): (i64, i64)| libc::timespec {
        tv_sec: s as libc::time_t,
        tv_nsec: ns as _,
    };
    utimensat(path, [ts(atime), ts(mtime)])
}

fn set_times_nofollow(path: &Path, epoch: i64, set_mtime: bool) -> io::Result<()> {
    let at = libc::timespec {
        tv_sec: epoch as libc::time_t,
        tv_nsec: 0,
    };
    let mt = if set_mtime {
        at
    } else {
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        }
    };
    utimensat(path, [at, mt])
}

fn utimensat(path: &Path, times: [libc::timespec; 2]) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: c_path is a valid NUL-terminated string and `times` has the two
    // entries utimensat reads; AT_SYMLINK_NOFOLLOW makes it act on links themselves.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("{}: {err}", path.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mtime(p: &Path) -> i64 {
        fs::symlink_metadata(p).unwrap().mtime()
    }

    #[test]
    fn clamps_newer_entries_and_removes_build_litter() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for d in [
            "etc",
            "var/log/apt",
            "var/lib/dpkg",
            "var/cache/ldconfig",
            "var/cache/debconf",
            "tmp/x",
            "run",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("etc/new"), "n").unwrap();
        fs::write(root.join("etc/old"), "o").unwrap();
        set_times_nofollow(&root.join("etc/old"), 1000, true).unwrap();
        fs::write(root.join("var/log/dpkg.log"), "log").unwrap();
        fs::write(root.join("var/log/apt/history.log"), "log").unwrap();
        fs::write(root.join("var/log/base.log"), "from the base").unwrap();
        set_times_nofollow(&root.join("var/log/base.log"), 1000, true).unwrap();
        fs::write(root.join("var/lib/dpkg/status"), "s").unwrap();
        fs::write(root.join("var/lib/dpkg/status-old"), "s").unwrap();
        // Backups and caches go even when the base had them.
        set_times_nofollow(&root.join("var/lib/dpkg/status-old"), 1000, true).unwrap();
        fs::write(root.join("var/cache/debconf/config.dat-old"), "c").unwrap();
        fs::write(root.join("var/cache/ldconfig/aux-cache"), "a").unwrap();
        fs::write(root.join("tmp/x/y"), "t").unwrap();
        fs::write(root.join("run/lock"), "").unwrap();
        fs::create_dir_all(root.join("run/keep/added")).unwrap();
        symlink("/nonexistent/target", root.join("etc/dangling")).unwrap();
        // The base had /run/keep, nothing else under /run or /tmp.
        let base = tempfile::tempdir().unwrap();
        fs::create_dir_all(base.path().join("run/keep")).unwrap();

        let epoch = 1_600_000_000;
        let report = normalize(root, epoch, Some(base.path())).unwrap();

        for gone in [
            "var/log/dpkg.log",
            "var/log/apt/history.log",
            "var/lib/dpkg/status-old",
            "var/cache/debconf/config.dat-old",
            "var/cache/ldconfig/aux-cache",
            "tmp/x",
            "run/lock",
            "run/keep/added",
        ] {
            assert!(
                fs::symlink_metadata(root.join(gone)).is_err(),
                "{gone} should be removed"
            );
        }
        assert!(root.join("var/log/base.log").exists(), "older logs stay");
        assert!(root.join("var/lib/dpkg/status").exists());
        assert!(root.join("tmp").is_dir() && root.join("run/keep").is_dir());
        assert_eq!(mtime(&root.join("etc/new")), epoch);
        assert_eq!(
            mtime(&root.join("etc/old")),
            1000,
            "older files keep their time"
        );
        assert_eq!(
            mtime(&root.join("etc/dangling")),
            epoch,
            "links are clamped themselves"
        );
        assert_eq!(mtime(&root.join("etc")), epoch);
        assert_eq!(mtime(root), epoch);
        assert!(report.removed.contains(&PathBuf::from("/var/log/dpkg.log")));
        assert!(report.clamped > 5);
    }

    #[test]
    fn without_a_base_only_newer_scratch_entries_go() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("run/old")).unwrap();
        fs::create_dir_all(tmp.path().join("run/new")).unwrap();
        set_times_nofollow(&tmp.path().join("run/old"), 10, true).unwrap();
        let report = normalize(tmp.path(), 100, None).unwrap();
        assert!(tmp.path().join("run/old").is_dir());
        assert_eq!(report.removed, [PathBuf::from("/run/new")]);
    }

    #[test]
    fn hard_links_become_copies_and_dev_is_emptied() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("dev")).unwrap();
        fs::write(root.join("usr/bin/perl"), "#!perl").unwrap();
        fs::set_permissions(
            root.join("usr/bin/perl"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        set_times_nofollow(&root.join("usr/bin/perl"), 1000, true).unwrap();
        fs::hard_link(root.join("usr/bin/perl"), root.join("usr/bin/perl5")).unwrap();
        fs::write(root.join("dev/null"), "").unwrap();
        symlink("/proc/self/fd", root.join("dev/fd")).unwrap();
        set_times_nofollow(&root.join("usr/bin"), 500, true).unwrap();

        let report = normalize(root, 2000, None).unwrap();

        assert_eq!(report.unlinked, 1);
        let a = fs::symlink_metadata(root.join("usr/bin/perl")).unwrap();
        let b = fs::symlink_metadata(root.join("usr/bin/perl5")).unwrap();
        assert_ne!(a.ino(), b.ino());
        assert_eq!((a.nlink(), b.nlink()), (1, 1));
        assert_eq!(fs::read(root.join("usr/bin/perl5")).unwrap(), b"#!perl");
        assert_eq!(b.mode() & 0o7777, 0o4755);
        assert_eq!(b.mtime(), 1000, "the copy keeps the file's time");
        assert_eq!(
            mtime(&root.join("usr/bin")),
            500,
            "and the directory keeps its own"
        );
        assert_eq!(fs::read_dir(root.join("dev")).unwrap().count(), 0);
    }

    #[test]
    fn sqlite_shared_memory_files_the_build_wrote_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("root/.rpmdb");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("rpmdb.sqlite"), "db").unwrap();
        fs::write(dir.join("rpmdb.sqlite-shm"), "index").unwrap();
        fs::write(dir.join("rpmdb.sqlite-wal"), "log").unwrap();
        fs::write(dir.join("lonely-shm"), "not sqlite").unwrap();
        let report = normalize(tmp.path(), 100, None).unwrap();
        assert!(!dir.join("rpmdb.sqlite-shm").exists());
        assert!(dir.join("rpmdb.sqlite-wal").exists(), "the log holds data");
        assert!(dir.join("lonely-shm").exists());
        assert!(
            report
                .removed
                .contains(&PathBuf::from("/root/.rpmdb/rpmdb.sqlite-shm"))
        );
    }

    #[test]
    fn pacman_install_dates_are_clamped() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("var/lib/pacman/local/repro-hello-1.0-1");
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join("desc"),
            "%NAME%\nrepro-hello\n\n%BUILDDATE%\n1700000000\n\n%INSTALLDATE%\n1795631660\n\n",
        )
        .unwrap();
        normalize(tmp.path(), 1_750_000_000, None).unwrap();
        let text = fs::read_to_string(d.join("desc")).unwrap();
        assert!(text.contains("%INSTALLDATE%\n1750000000\n"), "{text}");
        assert!(text.contains("%BUILDDATE%\n1700000000\n"), "{text}");
    }

    #[test]
    fn a_second_pass_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        fs::write(tmp.path().join("a/b/c"), "x").unwrap();
        normalize(tmp.path(), 5, None).unwrap();
        let again = normalize(tmp.path(), 5, None).unwrap();
        assert_eq!(again.clamped, 0);
        assert!(again.removed.is_empty());
    }
}
