//! The delta layer: a normalized rootfs pruned to what differs from the
//! base, then applied onto a writable mount of the base.
//!
//! The layer is stacked on the base image's own. Applied over the base (OCI
//! image layer spec, changesets), the pruned tree must give exactly the tree
//! it held before: an entry equal to the base's goes, a changed or new one
//! stays, a name the base has and the rootfs lost becomes `.wh.<name>`. Hard
//! links stay links: a link group is kept or dropped as a whole, and only
//! dropped where the base links the same names the same way.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::step::normalize::{
    Untouched, at, is_whiteout_name, read_xattrs, set_times, sorted_children, whiteout_name_error,
};

/// What a pass did, counted in entries below `out` (files and directories;
/// `out` itself is never counted).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeltaReport {
    /// Entries left in `out` (whiteouts aside).
    pub kept: u64,
    /// Entries removed from `out` as equal to the base's.
    pub removed: u64,
    /// `.wh.<name>` files written for names the base has and `out` lost.
    pub whiteouts: u64,
}

/// What [`apply_delta`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ApplyReport {
    /// Entries written (directories included).
    pub written: u64,
    /// Hard links made to an entry written before.
    pub linked: u64,
    /// Names removed for a whiteout.
    pub removed: u64,
}

/// Applies a delta (a tree as [`prune_to_delta`] leaves it) onto `target`,
/// a writable copy of the base: `.wh.<name>` removes `<name>`, any other
/// entry replaces what `target` has at its path (directories are merged),
/// with owner, mode, extended attributes and times; hard links stay links.
/// `target`'s own root is left as it is; a link in `target` is replaced,
/// never written through, and a whiteout of `.`, `..` or an empty name is
/// refused. Run on a mount of the base image
/// (not an exec's root, so no runtime mount stub lands in it), the mount's
/// new snapshot is the layer on top of the base's, and within the build it
/// reads as the full image.
pub fn apply_delta(delta: &Path, target: &Path) -> io::Result<ApplyReport> {
    let mut copier = crate::step::normalize::Copier::applying();
    copier.copy_children(delta, target)?;
    Ok(ApplyReport {
        written: copier.copied - copier.linked,
        linked: copier.linked,
        removed: copier.whiteouts,
    })
}

/// Turns `out` (a full normalized rootfs) into the delta against `base` (the
/// base image's rootfs, read only): entries equal to the base's are removed,
/// names the base has and `out` lacks become whiteouts (owner 0:0, mode
/// 0644, times at `epoch`), and every kept directory keeps its times. No
/// link in either tree is followed, and a name in `out` that would act as a
/// whiteout (`.wh.*`) is refused before anything is pruned.
pub fn prune_to_delta(out: &Path, base: &Path, epoch: i64) -> io::Result<DeltaReport> {
    prune_to_delta_with(out, base, epoch, &Untouched::new())
}

/// [`prune_to_delta`] of a copy that left out the base's own files,
/// untouched (`normalize::normalize_delta_into`): the names in `untouched`
/// (per directory of `out`) count as there and equal to the base's.
pub fn prune_to_delta_with(
    out: &Path,
    base: &Path,
    epoch: i64,
    untouched: &Untouched,
) -> io::Result<DeltaReport> {
    let base_meta = fs::symlink_metadata(base).map_err(|e| at(base, e))?;
    if !base_meta.is_dir() {
        return Err(at(
            base,
            io::Error::new(
                io::ErrorKind::NotADirectory,
                "the base rootfs is not a directory",
            ),
        ));
    }
    let out_meta = fs::symlink_metadata(out).map_err(|e| at(out, e))?;
    // First pass: read everything (out before any change), decide per entry,
    // and collect the link groups to keep whole.
    let mut links = Links::default();
    let plan = plan_dir(
        out,
        out,
        Some(base),
        &out_meta,
        false,
        untouched,
        &mut links,
    )?;
    // Second pass: prune by the plan.
    let mut report = DeltaReport::default();
    apply_dir(plan, &links.keep, epoch, true, &mut report)?;
    Ok(report)
}

/// (device, inode).
type Id = (u64, u64);

/// (atime, mtime), each (seconds, nanoseconds).
type Times = ((i64, i64), (i64, i64));

/// A directory of `out` as read before pruning.
struct DirPlan {
    path: PathBuf,
    times: Times,
    /// Its own metadata equals the base directory's.
    same: bool,
    children: Vec<Node>,
    /// Names the base directory has and this one lacks, sorted.
    deleted: Vec<OsString>,
}

enum Node {
    Dir(DirPlan),
    Leaf {
        path: PathBuf,
        /// Equal to the base's entry at the same path.
        same: bool,
        /// The inode in `out`, for regular files: kept whole when in `keep`.
        inode: Option<Id>,
    },
}

/// Hard-link bookkeeping. Dropped files must be linked among themselves
/// exactly as their base counterparts are, since after the layer is applied
/// the base's inodes are what those paths hold.
#[derive(Default)]
struct Links {
    /// Inode in `out` -> the base inode its members correspond to.
    base_of: HashMap<Id, Id>,
    /// Base inode -> the first inode in `out` corresponding to it.
    out_of: HashMap<Id, Id>,
    /// Inodes in `out` whose every name stays.
    keep: HashSet<Id>,
}

impl Links {
    /// Notes a regular file's inode in `out` and, when equal, its base
    /// counterpart's. Order-independent: `keep` ends up the same whatever
    /// order the names are noted in.
    fn note(&mut self, inode: Id, base: Option<Id>) {
        let Some(base) = base else {
            self.keep.insert(inode);
            return;
        };
        match self.base_of.get(&inode) {
            Some(prev) if *prev != base => {
                // Linked in `out`, not in the base.
                self.keep.insert(inode);
            }
            Some(_) => {}
            None => {
                self.base_of.insert(inode, base);
            }
        }
        match self.out_of.get(&base) {
            Some(prev) if *prev != inode => {
                // Linked in the base, not in `out`.
                let prev = *prev;
                self.keep.insert(prev);
                self.keep.insert(inode);
            }
            Some(_) => {}
            None => {
                self.out_of.insert(base, inode);
            }
        }
    }
}

/// Reads the directory `dir` of `out` (with `meta`, taken before it was
/// listed) against `base`, the base's directory at the same path when it is
/// one. A name in `out` that would act as a whiteout is refused.
fn plan_dir(
    out: &Path,
    dir: &Path,
    base: Option<&Path>,
    meta: &fs::Metadata,
    same: bool,
    untouched: &Untouched,
    links: &mut Links,
) -> io::Result<DirPlan> {
    let mut plan = DirPlan {
        path: dir.to_path_buf(),
        times: times(meta),
        same,
        children: Vec::new(),
        deleted: Vec::new(),
    };
    let mut names = HashSet::new();
    for child in sorted_children(dir)? {
        let Some(name) = child.file_name() else {
            continue;
        };
        if is_whiteout_name(name.as_bytes()) {
            let shown = Path::new("/").join(child.strip_prefix(out).unwrap_or(&child));
            return Err(whiteout_name_error(&shown));
        }
        names.insert(name.to_os_string());
        let cm = fs::symlink_metadata(&child).map_err(|e| at(&child, e))?;
        let bpath = base.map(|b| b.join(name));
        let bm = match &bpath {
            Some(p) => base_meta(p)?,
            None => None,
        };
        let same = match (&bpath, &bm) {
            (Some(bp), Some(bm)) => same_entry(&child, &cm, bp, bm)?,
            _ => false,
        };
        if cm.is_dir() {
            let sub = bpath
                .as_deref()
                .filter(|_| bm.as_ref().is_some_and(|m| m.is_dir()));
            let sub = plan_dir(out, &child, sub, &cm, same, untouched, links)?;
            plan.children.push(Node::Dir(sub));
            continue;
        }
        let inode = cm.is_file().then(|| (cm.dev(), cm.ino()));
        if let (Some(inode), Some(bm)) = (inode, &bm)
            && (cm.nlink() > 1 || bm.nlink() > 1)
        {
            links.note(inode, same.then(|| (bm.dev(), bm.ino())));
        } else if let Some(inode) = inode
            && cm.nlink() > 1
        {
            // New in `out` and linked: every name stays.
            links.note(inode, None);
        }
        plan.children.push(Node::Leaf {
            path: child,
            same,
            inode,
        });
    }
    if let Some(left_out) = untouched.get(dir) {
        names.extend(left_out.iter().cloned());
    }
    if let Some(base) = base {
        for child in sorted_children(base)? {
            if let Some(name) = child.file_name()
                && !names.contains(name)
            {
                plan.deleted.push(name.to_os_string());
            }
        }
    }
    Ok(plan)
}

/// Prunes by `plan`, children first. Returns whether the directory itself
/// was removed (never `out`).
fn apply_dir(
    plan: DirPlan,
    keep: &HashSet<Id>,
    epoch: i64,
    root: bool,
    report: &mut DeltaReport,
) -> io::Result<bool> {
    let mut kept = 0u64;
    for node in plan.children {
        match node {
            Node::Dir(sub) => {
                if !apply_dir(sub, keep, epoch, false, report)? {
                    kept += 1;
                }
            }
            Node::Leaf { path, same, inode } => {
                if same && !inode.is_some_and(|i| keep.contains(&i)) {
                    fs::remove_file(&path).map_err(|e| at(&path, e))?;
                    report.removed += 1;
                } else {
                    kept += 1;
                    report.kept += 1;
                }
            }
        }
    }
    for name in &plan.deleted {
        let mut wh = OsString::from(".wh.");
        wh.push(name);
        whiteout(&plan.path.join(wh), epoch)?;
        report.whiteouts += 1;
    }
    if !root && plan.same && kept == 0 && plan.deleted.is_empty() {
        fs::remove_dir(&plan.path).map_err(|e| at(&plan.path, e))?;
        report.removed += 1;
        return Ok(true);
    }
    // Removals and whiteouts moved the directory's times; put them back.
    let (atime, mtime) = plan.times;
    set_times(&plan.path, atime, mtime)?;
    if !root {
        report.kept += 1;
    }
    Ok(false)
}

/// Writes an OCI whiteout: an empty file, 0:0, mode 0644, times at `epoch`.
fn whiteout(path: &Path, epoch: i64) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| at(path, e))?;
    std::os::unix::fs::lchown(path, Some(0), Some(0)).map_err(|e| at(path, e))?;
    // The umask may have taken bits from the mode asked for.
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(|e| at(path, e))?;
    set_times(path, (epoch, 0), (epoch, 0))
}

/// The base's entry at `path`; none when there is nothing there.
fn base_meta(path: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path, e)),
    }
}

fn times(m: &fs::Metadata) -> Times {
    ((m.atime(), m.atime_nsec()), (m.mtime(), m.mtime_nsec()))
}

/// Whether the entry of `out` at `o` equals the base's at `b`: type, mode
/// (set-id and sticky bits too), owner, mtime to the nanosecond, extended
/// attributes, and by type content, link target or device number.
/// Directories are compared by their own metadata only.
fn same_entry(o: &Path, om: &fs::Metadata, b: &Path, bm: &fs::Metadata) -> io::Result<bool> {
    let kind = |m: &fs::Metadata| m.mode() & libc::S_IFMT;
    if kind(om) != kind(bm)
        || om.mode() & 0o7777 != bm.mode() & 0o7777
        || (om.uid(), om.gid()) != (bm.uid(), bm.gid())
        || (om.mtime(), om.mtime_nsec()) != (bm.mtime(), bm.mtime_nsec())
    {
        return Ok(false);
    }
    let ft = om.file_type();
    if (ft.is_file() && om.size() != bm.size()) || (is_device(om) && om.rdev() != bm.rdev()) {
        return Ok(false);
    }
    let mut ox = read_xattrs(o)?;
    let mut bx = read_xattrs(b)?;
    ox.sort();
    bx.sort();
    if ox != bx {
        return Ok(false);
    }
    if ft.is_symlink() {
        let ot = fs::read_link(o).map_err(|e| at(o, e))?;
        keep_atime(o, om)?;
        return Ok(ot == fs::read_link(b).map_err(|e| at(b, e))?);
    }
    if ft.is_file() {
        let same = same_content(o, b)?;
        keep_atime(o, om)?;
        return Ok(same);
    }
    Ok(true)
}

fn is_device(m: &fs::Metadata) -> bool {
    let k = m.mode() & libc::S_IFMT;
    k == libc::S_IFBLK || k == libc::S_IFCHR
}

/// Reading a file or a link may move its atime (relatime); the layer should
/// carry the times normalize left, so they are put back.
fn keep_atime(path: &Path, before: &fs::Metadata) -> io::Result<()> {
    let now = fs::symlink_metadata(path).map_err(|e| at(path, e))?;
    if (now.atime(), now.atime_nsec()) != (before.atime(), before.atime_nsec()) {
        set_times(path, times(before).0, times(before).1)?;
    }
    Ok(())
}

/// Byte-for-byte comparison of two files of the same size.
fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let mut fa = open_noatime(a)?;
    let mut fb = open_noatime(b)?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| at(a, e))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| at(b, e))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` as far as the file goes; short only at its end.
fn read_full(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Opens for reading without moving the atime where the kernel allows it
/// (O_NOATIME needs the owner or CAP_FOWNER).
fn open_noatime(path: &Path) -> io::Result<fs::File> {
    let r = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path);
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => fs::File::open(path),
        r => r,
    }
    .map_err(|e| at(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    const EPOCH: i64 = 1_700_000_000;

    /// Sets every entry's atime and mtime below and at `p` to (secs, 0),
    /// children before their directory.
    fn stamp(p: &Path, secs: i64) {
        let m = fs::symlink_metadata(p).unwrap();
        if m.is_dir() {
            for c in sorted_children(p).unwrap() {
                stamp(&c, secs);
            }
        }
        set_times(p, (secs, 0), (secs, 0)).unwrap();
    }

    fn mtime(p: &Path) -> (i64, i64) {
        let m = fs::symlink_metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    }

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// Every path below `root`, sorted, directories with a trailing '/'.
    fn listing(root: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for c in sorted_children(dir).unwrap() {
                let rel = c.strip_prefix(root).unwrap().display().to_string();
                if fs::symlink_metadata(&c).unwrap().is_dir() {
                    out.push(format!("{rel}/"));
                    walk(root, &c, out);
                } else {
                    out.push(rel);
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out
    }

    /// A base tree, all at time 1000, and `out` as its faithful copy.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let out = tmp.path().join("out");
        write(&base.join("etc/keep.conf"), "same");
        write(&base.join("etc/changed.conf"), "old");
        write(&base.join("etc/mode.sh"), "#!/bin/sh");
        write(&base.join("etc/gone.conf"), "bye");
        symlink("target-a", base.join("etc/link")).unwrap();
        write(&base.join("olddir/a"), "a");
        write(&base.join("olddir/sub/b"), "b");
        write(&base.join("swap/inner"), "i");
        write(&base.join("usr/bin/tool"), "tool");
        write(&base.join("data/x"), "x");
        stamp(&base, 1000);
        cp_a(&base, &out);
        (tmp, base, out)
    }

    /// `cp -a src dst`: a faithful copy made by another tool than ours.
    fn cp_a(src: &Path, dst: &Path) {
        let ok = Command::new("cp").arg("-a").arg(src).arg(dst).status();
        assert!(ok.unwrap().success(), "cp -a {}", src.display());
    }

    #[test]
    fn an_unchanged_copy_prunes_to_nothing() {
        let (_tmp, base, out) = fixture();
        let report = prune_to_delta(&out, &base, EPOCH).unwrap();
        assert_eq!(listing(&out), Vec::<String>::new());
        assert_eq!(report.kept, 0);
        assert_eq!(report.whiteouts, 0);
        assert_eq!(report.removed, listing(&base).len() as u64);
        assert_eq!(mtime(&out), (1000, 0), "out keeps its times");
    }

    #[test]
    fn changes_stay_deletions_become_whiteouts_and_dir_times_are_restored() {
        let (_tmp, base, out) = fixture();
        fs::write(out.join("etc/changed.conf"), "new").unwrap();
        set_times(&out.join("etc/changed.conf"), (1000, 0), (1000, 0)).unwrap();
        fs::set_permissions(out.join("etc/mode.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_file(out.join("etc/gone.conf")).unwrap();
        fs::remove_file(out.join("etc/link")).unwrap();
        symlink("target-b", out.join("etc/link")).unwrap();
        set_times(&out.join("etc/link"), (1000, 0), (1000, 0)).unwrap();
        fs::remove_dir_all(out.join("olddir")).unwrap();
        fs::remove_dir_all(out.join("swap")).unwrap();
        write(&out.join("swap"), "now a file");
        set_times(&out.join("swap"), (1000, 0), (1000, 0)).unwrap();
        set_times(&out.join("etc"), (1500, 7), (2000, 5)).unwrap();
        set_times(&out, (1000, 0), (1000, 0)).unwrap();

        let report = prune_to_delta(&out, &base, EPOCH).unwrap();

        // Before listing: reading a directory may move its atime.
        let etc = fs::symlink_metadata(out.join("etc")).unwrap();
        assert_eq!((etc.mtime(), etc.mtime_nsec()), (2000, 5));
        assert_eq!((etc.atime(), etc.atime_nsec()), (1500, 7));
        assert_eq!(
            listing(&out),
            [
                ".wh.olddir",
                "etc/",
                "etc/.wh.gone.conf",
                "etc/changed.conf",
                "etc/link",
                "etc/mode.sh",
                "swap",
            ]
        );
        assert_eq!(fs::read(out.join("etc/changed.conf")).unwrap(), b"new");
        assert_eq!(
            fs::read_link(out.join("etc/link")).unwrap(),
            Path::new("target-b")
        );
        for wh in [".wh.olddir", "etc/.wh.gone.conf"] {
            let m = fs::symlink_metadata(out.join(wh)).unwrap();
            assert!(m.is_file());
            assert_eq!((m.len(), m.mode() & 0o7777), (0, 0o644));
            assert_eq!((m.uid(), m.gid()), (0, 0));
            assert_eq!(mtime(&out.join(wh)), (EPOCH, 0));
            assert_eq!((m.atime(), m.atime_nsec()), (EPOCH, 0));
        }
        assert_eq!(mtime(&out), (1000, 0), "out's own times are restored too");
        assert_eq!(
            report,
            DeltaReport {
                kept: 5,
                removed: 6,
                whiteouts: 2,
            }
        );
    }

    #[test]
    fn a_new_file_keeps_its_unchanged_directory_with_its_time() {
        let (_tmp, base, out) = fixture();
        write(&out.join("data/new"), "n");
        set_times(&out.join("data"), (1000, 0), (1000, 0)).unwrap();
        prune_to_delta(&out, &base, EPOCH).unwrap();
        assert_eq!(listing(&out), ["data/", "data/new"]);
        assert_eq!(mtime(&out.join("data")), (1000, 0));
    }

    #[test]
    fn a_new_hard_link_to_an_unchanged_file_keeps_both_names_linked() {
        let (_tmp, base, out) = fixture();
        fs::hard_link(out.join("usr/bin/tool"), out.join("usr/bin/tool2")).unwrap();
        set_times(&out.join("usr/bin"), (1000, 0), (1000, 0)).unwrap();
        prune_to_delta(&out, &base, EPOCH).unwrap();
        assert_eq!(
            listing(&out),
            ["usr/", "usr/bin/", "usr/bin/tool", "usr/bin/tool2"]
        );
        let a = fs::symlink_metadata(out.join("usr/bin/tool")).unwrap();
        let b = fs::symlink_metadata(out.join("usr/bin/tool2")).unwrap();
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    }

    #[test]
    fn link_structure_that_differs_from_the_base_is_kept() {
        let (_tmp, base, out) = fixture();
        // Linked in the base, apart in out.
        write(&base.join("twin/a"), "t");
        fs::hard_link(base.join("twin/a"), base.join("twin/b")).unwrap();
        stamp(&base.join("twin"), 1000);
        write(&out.join("twin/a"), "t");
        write(&out.join("twin/b"), "t");
        stamp(&out.join("twin"), 1000);
        // The other way round: apart in the base, linked in out.
        write(&base.join("pair/a"), "p");
        write(&base.join("pair/b"), "p");
        stamp(&base.join("pair"), 1000);
        write(&out.join("pair/a"), "p");
        fs::hard_link(out.join("pair/a"), out.join("pair/b")).unwrap();
        stamp(&out.join("pair"), 1000);
        prune_to_delta(&out, &base, EPOCH).unwrap();
        assert_eq!(
            listing(&out),
            ["pair/", "pair/a", "pair/b", "twin/", "twin/a", "twin/b"]
        );
    }

    #[test]
    fn owner_time_and_xattr_changes_are_changes() {
        let (_tmp, base, out) = fixture();
        std::os::unix::fs::lchown(out.join("etc/keep.conf"), Some(1), Some(1)).unwrap();
        set_times(&out.join("usr/bin/tool"), (1000, 0), (1000, 1)).unwrap();
        let name = std::ffi::CString::new("user.repro").unwrap();
        let path =
            std::ffi::CString::new(out.join("data/x").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path and name, a 2-byte value.
        let xattr =
            unsafe { libc::lsetxattr(path.as_ptr(), name.as_ptr(), b"ok".as_ptr().cast(), 2, 0) }
                == 0;
        prune_to_delta(&out, &base, EPOCH).unwrap();
        let mut want = vec!["etc/", "etc/keep.conf", "usr/", "usr/bin/", "usr/bin/tool"];
        if xattr {
            want.splice(0..0, ["data/", "data/x"]);
        }
        assert_eq!(listing(&out), want);
    }

    #[test]
    fn a_missing_base_is_an_error_that_names_it() {
        let (tmp, base, out) = fixture();
        let missing = tmp.path().join("nope");
        let err = prune_to_delta(&out, &missing, EPOCH).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert_eq!(listing(&out), listing(&base), "out is left alone");
    }

    /// Every entry below `root` with what a layer carries of it.
    fn described(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for rel in listing(root) {
            let p = root.join(rel.trim_end_matches('/'));
            let m = fs::symlink_metadata(&p).unwrap();
            let content = match m.file_type() {
                t if t.is_file() => String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned(),
                t if t.is_symlink() => fs::read_link(&p).unwrap().display().to_string(),
                _ => String::new(),
            };
            out.push(format!(
                "{rel} {:o} {}:{} {} {} links={} {content}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec(),
                if m.is_dir() { 0 } else { m.nlink() },
            ));
        }
        out
    }

    #[test]
    fn the_delta_applied_over_a_copy_of_the_base_gives_the_full_tree() {
        let (tmp, base, out) = fixture();
        // The full tree: every kind of change the layer must carry.
        fs::write(out.join("etc/changed.conf"), "new").unwrap();
        fs::set_permissions(out.join("etc/mode.sh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::remove_file(out.join("etc/gone.conf")).unwrap();
        fs::remove_dir_all(out.join("olddir")).unwrap();
        fs::remove_dir_all(out.join("swap")).unwrap();
        write(&out.join("swap"), "now a file");
        fs::remove_file(out.join("data/x")).unwrap();
        write(&out.join("data/x/deeper"), "dir over a file");
        fs::hard_link(out.join("usr/bin/tool"), out.join("usr/bin/tool2")).unwrap();
        stamp(&out, 1200);
        let full = tmp.path().join("full");
        cp_a(&out, &full);
        let want = described(&full);

        prune_to_delta(&out, &base, EPOCH).unwrap();
        let target = tmp.path().join("target");
        cp_a(&base, &target);
        let report = apply_delta(&out, &target).unwrap();
        assert_eq!(report.removed, 2, "{report:?}");
        assert_eq!(report.linked, 1, "{report:?}");
        assert_eq!(described(&target), want);
        assert!(
            !listing(&target).iter().any(|p| p.contains(".wh.")),
            "a whiteout file was copied"
        );
    }

    // A delta entry `.wh..` removed the directory above it, `.wh.` the
    // directory it is in (issue 24).
    #[test]
    fn a_whiteout_of_dot_dotdot_or_nothing_is_refused() {
        for name in [".wh.", ".wh..", ".wh..."] {
            let tmp = tempfile::tempdir().unwrap();
            let delta = tmp.path().join("delta");
            let target = tmp.path().join("target");
            write(&delta.join("etc").join(name), "");
            write(&target.join("etc/passwd"), "root");
            write(&target.join("keep"), "k");
            let before = listing(&target);
            let err = apply_delta(&delta, &target).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
            assert!(err.to_string().contains("names no entry"), "{name}: {err}");
            assert_eq!(listing(&target), before, "{name}");
        }
    }

    // A name like a whiteout in the normalized tree would delete the base's
    // file when the layer is applied (issue 24).
    #[test]
    fn a_name_like_a_whiteout_in_out_is_refused() {
        let (_tmp, base, out) = fixture();
        write(&out.join("etc/.wh.keep.conf"), "");
        let err = prune_to_delta(&out, &base, EPOCH).unwrap_err();
        assert!(err.to_string().contains("/etc/.wh.keep.conf"), "{err}");
        assert!(out.join("etc/keep.conf").exists(), "out is left alone");
    }

    /// Every entry below `dir` with its content, sorted.
    fn contents(dir: &Path) -> Vec<String> {
        listing(dir)
            .into_iter()
            .map(|rel| {
                let p = dir.join(rel.trim_end_matches('/'));
                let text = fs::read(&p).map(|b| String::from_utf8_lossy(&b).into_owned());
                format!("{rel} {}", text.unwrap_or_default())
            })
            .collect()
    }

    // Guards that a link in the base or the target is data: neither the
    // prune nor the apply reads or writes through it.
    #[test]
    fn links_in_the_base_lead_nowhere_outside_it() {
        let (tmp, base, out) = fixture();
        let outside = tmp.path().join("outside");
        write(&outside.join("f"), "outside");
        write(&outside.join("keep.conf"), "same");
        let before = contents(&outside);
        // The base's /etc is a link out; out has a real /etc.
        fs::remove_dir_all(base.join("etc")).unwrap();
        symlink(&outside, base.join("etc")).unwrap();
        prune_to_delta(&out, &base, EPOCH).unwrap();
        // Nothing of outside's read as the base's: no whiteout for its `f`,
        // and its equal keep.conf is no reason to drop out's.
        assert!(!listing(&out).iter().any(|p| p.contains(".wh.")));
        assert!(out.join("etc/keep.conf").exists());
        // Applying onto a target whose /var is a link out replaces the link.
        let target = tmp.path().join("target");
        cp_a(&base, &target);
        symlink(&outside, target.join("var")).unwrap();
        let delta = tmp.path().join("delta");
        write(&delta.join("var/.wh.f"), "");
        write(&delta.join("var/new"), "n");
        apply_delta(&delta, &target).unwrap();
        assert!(fs::symlink_metadata(target.join("var")).unwrap().is_dir());
        assert_eq!(contents(&outside), before);
    }

    /// A built tree as an overlay mount shows one: what no step touched is
    /// the base's own inode (here a hard link to the base's file), what a
    /// step changed or made is a new one.
    fn built_over(base: &Path, built: &Path) {
        fn walk(base: &Path, built: &Path) {
            fs::create_dir(built).unwrap();
            for c in sorted_children(base).unwrap() {
                let to = built.join(c.file_name().unwrap());
                if fs::symlink_metadata(&c).unwrap().is_dir() {
                    walk(&c, &to);
                } else {
                    fs::hard_link(&c, &to).unwrap();
                }
            }
            let m = fs::symlink_metadata(base).unwrap();
            set_times(
                built,
                (m.atime(), m.atime_nsec()),
                (m.mtime(), m.mtime_nsec()),
            )
            .unwrap();
        }
        walk(base, built);
    }

    // The copy that leaves the base's untouched files out must give the
    // delta the full copy gave, entry for entry, and the same tree once
    // applied.
    #[test]
    fn leaving_untouched_files_out_of_the_copy_gives_the_same_delta() {
        use crate::step::normalize::{SecretsInput, normalize_delta_into, normalize_into_with};
        let (tmp, base, _) = fixture();
        // A link group in the base, one name of it changed by the build.
        write(&base.join("usr/lib/pair-a"), "p");
        fs::hard_link(base.join("usr/lib/pair-a"), base.join("usr/lib/pair-b")).unwrap();
        write(&base.join("var/log/base.log"), "base log");
        write(&base.join("var/lib/dpkg/status-old"), "backup");
        write(&base.join("opt/future"), "newer than the epoch");
        stamp(&base, 1000);
        set_times(&base.join("opt/future"), (EPOCH + 9, 0), (EPOCH + 9, 0)).unwrap();
        let built = tmp.path().join("built");
        built_over(&base, &built);
        // What the steps did.
        fs::remove_file(built.join("etc/changed.conf")).unwrap();
        write(&built.join("etc/changed.conf"), "new");
        fs::remove_file(built.join("etc/gone.conf")).unwrap();
        fs::remove_dir_all(built.join("olddir/sub")).unwrap();
        fs::remove_file(built.join("usr/lib/pair-b")).unwrap();
        write(&built.join("usr/lib/pair-b"), "q");
        write(&built.join("usr/bin/new-tool"), "new");
        fs::hard_link(
            built.join("usr/bin/new-tool"),
            built.join("usr/bin/new-alias"),
        )
        .unwrap();
        write(&built.join("var/log/dpkg.log"), "build log");
        write(&built.join("srv/app/data"), "d");
        // A step that only touched a directory.
        write(&built.join("data/tmp-file"), "t");
        fs::remove_file(built.join("data/tmp-file")).unwrap();

        let full = tmp.path().join("full");
        let lean = tmp.path().join("lean");
        fs::create_dir(&full).unwrap();
        fs::create_dir(&lean).unwrap();
        let input = SecretsInput::default();
        normalize_into_with(&built, &full, EPOCH, Some(&base), &input).unwrap();
        let (_, untouched) =
            normalize_delta_into(&built, &lean, EPOCH, &base, &input, None).unwrap();
        let left: usize = untouched.values().map(Vec::len).sum();
        assert!(left >= 5, "{untouched:?}");
        assert!(
            !lean.join("usr/bin/tool").exists(),
            "an untouched file was copied"
        );
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        cp_a(&base, &a);
        cp_a(&base, &b);
        same_delta_and_tree((&full, &a), (&lean, &b), &untouched);
    }

    /// An overlay mount of `lower` at `merged` (upper and work made beside
    /// it), unmounted when dropped: the engine's snapshots are such mounts,
    /// and only a real one shows a directory no step touched with the
    /// inode and change time of the layer below. Needs root, as CI runs.
    struct Overlay(PathBuf);

    impl Overlay {
        fn mount(lower: &Path, merged: &Path) -> Overlay {
            let name = merged.file_name().unwrap().to_string_lossy().to_string();
            let upper = merged.with_file_name(format!("{name}.upper"));
            let work = merged.with_file_name(format!("{name}.work"));
            for d in [merged, &upper, &work] {
                fs::create_dir_all(d).unwrap();
            }
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            );
            let out = Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &opts])
                .arg(merged)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "this test mounts an overlay, as the engine does, and needs root: mount -o {opts} {}: {}",
                merged.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            Overlay(merged.to_path_buf())
        }
    }

    impl Drop for Overlay {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }

    // With the base's census, normalize leaves out whole directories the
    // build did not touch; on real overlay mounts (the build's tree and the
    // base's, over one lower layer) the delta and the applied tree must be
    // the ones the full copy gives, including where the base itself holds
    // what normalize changes (a time after the epoch, a backup, a cache, a
    // pacman record) in a directory the build never touched.
    #[test]
    fn leaving_untouched_directories_out_on_overlay_mounts_gives_the_same_delta() {
        use crate::step::census;
        use crate::step::normalize::{SecretsInput, normalize_delta_into, normalize_into_with};
        let (tmp, base, _) = fixture();
        write(&base.join("usr/share/quiet/a/b/deep"), "deep");
        write(&base.join("usr/share/quiet/c"), "c");
        write(&base.join("usr/share/touched/one"), "1");
        write(&base.join("opt/later/future"), "newer than the epoch");
        write(&base.join("var/lib/dpkg/info/x.list"), "/x");
        write(&base.join("var/lib/dpkg/status-old"), "backup");
        write(&base.join("var/cache/ldconfig/aux-cache"), "cache");
        write(
            &base.join("var/lib/pacman/local/x-1-1/desc"),
            "%NAME%\nx\n\n%INSTALLDATE%\n1999999\n",
        );
        stamp(&base, 1000);
        set_times(
            &base.join("opt/later/future"),
            (EPOCH + 9, 0),
            (EPOCH + 9, 0),
        )
        .unwrap();
        let dirty = census::census(&base, EPOCH).unwrap();
        let shown: Vec<String> = dirty.iter().map(|d| d.display().to_string()).collect();
        assert!(
            shown.contains(&"opt/later".to_string())
                && shown.contains(&"var/lib/pacman/local/x-1-1".to_string())
                && !shown.iter().any(|d| d.starts_with("usr")),
            "{shown:?}"
        );
        let built = tmp.path().join("built");
        let _built = Overlay::mount(&base, &built);
        // What the steps did, through the overlay (copy-up as in a build).
        fs::write(built.join("etc/changed.conf"), "new").unwrap();
        fs::remove_file(built.join("etc/gone.conf")).unwrap();
        fs::remove_dir_all(built.join("olddir/sub")).unwrap();
        write(&built.join("usr/share/touched/two"), "2");
        write(&built.join("usr/bin/new-tool"), "new");
        write(&built.join("var/log/dpkg.log"), "build log");
        // Both sides' base mounts are writable, as the engine's is: the
        // delta is applied onto them.
        let (base_a, base_b) = (tmp.path().join("base-a"), tmp.path().join("base-b"));
        let _a = Overlay::mount(&base, &base_a);
        let _b = Overlay::mount(&base, &base_b);

        let (full, lean) = (tmp.path().join("full"), tmp.path().join("lean"));
        fs::create_dir(&full).unwrap();
        fs::create_dir(&lean).unwrap();
        let input = SecretsInput::default();
        normalize_into_with(&built, &full, EPOCH, Some(&base_a), &input).unwrap();
        let census: std::collections::HashSet<PathBuf> = dirty.into_iter().collect();
        let (_, untouched) =
            normalize_delta_into(&built, &lean, EPOCH, &base_b, &input, Some(&census)).unwrap();
        assert!(
            !lean.join("usr/share/quiet").exists() && !lean.join("data").exists(),
            "an untouched directory was copied: {:?} {:?}",
            lean.join("usr/share/quiet").exists(),
            fs::read_dir(&lean)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>()
        );
        assert!(
            untouched
                .get(&lean.join("usr/share"))
                .is_some_and(|names| names.iter().any(|n| n == "quiet")),
            "{untouched:?}"
        );
        assert!(lean.join("opt/later").exists(), "the census was not heeded");
        same_delta_and_tree((&full, &base_a), (&lean, &base_b), &untouched);
    }

    /// The full copy and the lean one (which left `untouched` out), each
    /// with a base of its own: pruned, they are the same delta, entry for
    /// entry; applied, the same tree.
    fn same_delta_and_tree(full: (&Path, &Path), lean: (&Path, &Path), untouched: &Untouched) {
        let full_report = prune_to_delta(full.0, full.1, EPOCH).unwrap();
        let lean_report = prune_to_delta_with(lean.0, lean.1, EPOCH, untouched).unwrap();
        assert_eq!(described(lean.0), described(full.0));
        assert_eq!(
            (lean_report.kept, lean_report.whiteouts),
            (full_report.kept, full_report.whiteouts)
        );
        apply_delta(full.0, full.1).unwrap();
        apply_delta(lean.0, lean.1).unwrap();
        assert_eq!(described(lean.1), described(full.1));
    }
}
