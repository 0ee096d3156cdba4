//! The normalization pass run inside the build: copy the rootfs onto
//! scratch, clamp times, drop build logs and caches.
//!
//! `repro-frontend normalize --epoch N --out OUT DIR` runs in an exec whose
//! root is the frontend's own image, with the target rootfs mounted read-only
//! at `DIR` and an empty scratch mount at `OUT`. It copies the tree into
//! `OUT` (one layer, no whiteouts: the squash) and normalizes the copy there,
//! so nothing in the target is touched in place: no overlay copy-up, which
//! would also split hard links. It needs no tool from the target image (a
//! distroless or busybox base has no GNU find or touch), and the engine's
//! per-exec mount stubs (/etc/hosts and friends) are made in our root, not in
//! the target's. This is the one library module that touches a filesystem;
//! the gateway never calls it.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Seek};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::step::{inroot, secrets};

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

/// The longest pacman `desc` file read (a package's is a few KiB).
const DESC_CAP: u64 = 16 << 20;

/// The longest file read as a Java keystore (the JDK's cacerts is about
/// 200 KiB).
const KEYSTORE_CAP: u64 = 64 << 20;

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub removed: Vec<PathBuf>,
    pub clamped: u64,
    pub entries: u64,
    /// Entries copied onto scratch.
    pub copied: u64,
    /// Of those, hard links kept as links.
    pub linked: u64,
    /// Java keystores whose entry dates were clamped.
    pub keystores: Vec<PathBuf>,
    /// Keystores left as they were, and why.
    pub skipped: Vec<(PathBuf, String)>,
    /// The private keys and identities the build made, and what became of
    /// each (see [`secrets`]).
    pub secrets: secrets::Outcome,
}

/// What the secrets pass is told: who made what (the build's stages) and
/// the recipe's `private-keys:` choices. The default knows no stages and
/// takes the frontend's defaults.
#[derive(Clone, Debug, Default)]
pub struct SecretsInput {
    pub stages: Vec<secrets::Stage>,
    pub policy: secrets::Policy,
}

/// Normalizes the tree at `root`. `base`, when given, is the base image's
/// rootfs: an entry of a scratch directory that the base also has is kept.
/// Without it, "added by the build" means "newer than the epoch". No link
/// in `root` is followed: a pass takes a directory only when no component
/// of its path is a link (see [`inroot`]). A name that would act as an OCI
/// whiteout (`.wh.*`) is refused before anything changes.
pub fn normalize(root: &Path, epoch: i64, base: Option<&Path>) -> io::Result<Report> {
    normalize_with(root, epoch, base, &SecretsInput::default())
}

/// [`normalize`], with the build's stages and the recipe's choices for the
/// private keys and identities it made (see [`secrets`]). A private key
/// nobody decided on is an error before anything changes.
pub fn normalize_with(
    root: &Path,
    epoch: i64,
    base: Option<&Path>,
    input: &SecretsInput,
) -> io::Result<Report> {
    let mut gone = removals(root, epoch, base, &HashSet::new())?;
    let found = find_secrets(root, epoch, base, input, &mut gone, &HashSet::new())?;
    let mut report = Report::default();
    for path in gone {
        remove(root, &path, &mut report)?;
    }
    for rel in found.emptied() {
        empty(root, Path::new(rel))?;
    }
    report.secrets = found;
    clamp(root, epoch, base, &mut report)?;
    Ok(report)
}

/// The secrets pass on `root`: what it removes joins `gone` (outermost
/// paths kept); a refusal is an error naming every file.
fn find_secrets(
    root: &Path,
    epoch: i64,
    base: Option<&Path>,
    input: &SecretsInput,
    gone: &mut Vec<PathBuf>,
    quiet: &HashSet<PathBuf>,
) -> io::Result<secrets::Outcome> {
    let skip: HashSet<PathBuf> = gone.iter().chain(quiet).cloned().collect();
    let found = secrets::find(root, base, epoch, &input.stages, &input.policy, &skip)?;
    if let Some(text) = found.refusal(&input.policy) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, text));
    }
    let more: Vec<PathBuf> = found.removed().map(|rel| root.join(rel)).collect();
    gone.extend(more);
    *gone = outermost(std::mem::take(gone));
    Ok(found)
}

/// Truncates the regular file `root/rel` (reached through no link) to
/// nothing.
fn empty(root: &Path, rel: &Path) -> io::Result<()> {
    if let Some((path, meta)) = inroot::unlinked(root, rel)?
        && meta.is_file()
    {
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| at(&path, e))?;
    }
    Ok(())
}

/// Copies the tree at `src` into the empty directory `out` and normalizes
/// the copy (see [`normalize`]). `src` is only read. What the passes remove
/// is found in `src` first and never copied (a build's sparse `lastlog` can
/// be hundreds of GB long); the copy's directory that held it gets the
/// times a removal followed by the clamp would have given it.
pub fn normalize_into(
    src: &Path,
    out: &Path,
    epoch: i64,
    base: Option<&Path>,
) -> io::Result<Report> {
    normalize_into_with(src, out, epoch, base, &SecretsInput::default())
}

/// [`normalize_into`], with the build's stages and the recipe's choices
/// for the private keys and identities it made (see [`normalize_with`]):
/// what is removed is never copied, what is emptied is emptied in the copy.
pub fn normalize_into_with(
    src: &Path,
    out: &Path,
    epoch: i64,
    base: Option<&Path>,
    input: &SecretsInput,
) -> io::Result<Report> {
    Ok(copy_and_normalize(src, out, epoch, base, input, None)?.0)
}

/// [`normalize_into_with`] for the delta (`delta::prune_to_delta` next):
/// what is the base's own file, untouched, is not copied, since the delta
/// drops it anyway; the names left out come back, per directory of `out`,
/// for the prune to count as equal to the base's. The delta it gives is
/// the one the full copy gives.
///
/// With the base's census (see [`census`]), a whole directory the build
/// did not touch is left out the same way, unless the census names it:
/// the walks are then in proportion to what the build changed.
pub fn normalize_delta_into(
    src: &Path,
    out: &Path,
    epoch: i64,
    base: &Path,
    input: &SecretsInput,
    census: Option<&HashSet<PathBuf>>,
) -> io::Result<(Report, Untouched)> {
    let quiet = match census {
        Some(census) => quiet_dirs(src, base, epoch, census)?,
        None => HashSet::new(),
    };
    copy_and_normalize(src, out, epoch, Some(base), input, Some(quiet))
}

/// The directories of `src` the build did not touch, outermost only, that
/// normalization would leave as the base has them: the same directory as
/// the base's twin (see [`untouched_dir`]), not named by the base's
/// `census`, and neither above nor below a place the removal passes look
/// (caches, logs, backups, scratch, /dev), which find the base's own
/// entries too.
fn quiet_dirs(
    src: &Path,
    base: &Path,
    epoch: i64,
    census: &HashSet<PathBuf>,
) -> io::Result<HashSet<PathBuf>> {
    let mut quiet = HashSet::new();
    // (below the root, the build's directory, the base's): both real
    // directories, each reached through real directories only.
    let mut todo = vec![(PathBuf::new(), src.to_path_buf(), base.to_path_buf())];
    while let Some((rel, dir, twin)) = todo.pop() {
        for child in sorted_children(&dir)? {
            let Some(name) = child.file_name() else {
                continue;
            };
            let child_rel = rel.join(name);
            let meta = fs::symlink_metadata(&child).map_err(|e| at(&child, e))?;
            if !inroot::is_real_dir(&meta) {
                continue;
            }
            let removal_place =
                removal_places().any(|p| p.starts_with(&child_rel) || child_rel.starts_with(p));
            let Some((child_twin, twin_meta)) = base_dir(twin.join(name)) else {
                continue;
            };
            if !removal_place
                && !census.contains(&child_rel)
                && untouched_dir(&meta, &twin_meta, epoch)
            {
                quiet.insert(child);
            } else {
                todo.push((child_rel, child, child_twin));
            }
        }
    }
    Ok(quiet)
}

/// Where the removal passes look, below the root: what is at, above or
/// below one of these is never left out as untouched.
fn removal_places() -> impl Iterator<Item = &'static Path> {
    let caches = CACHES.iter().filter_map(|c| Path::new(c).parent());
    let dirs = [LOG_DIRS, BACKUP_DIRS, SCRATCH_DIRS, &["dev"]]
        .into_iter()
        .flatten()
        .map(Path::new);
    caches.chain(dirs)
}

/// Whether the directory with `meta` in the build's tree is the base's
/// directory with `twin`, untouched: the same inode and change time (an
/// overlay mount copies a directory up, to a new change time, before
/// anything below it is made, changed or removed), and the same mode,
/// owner, link count, size and mtime, no newer than the epoch.
fn untouched_dir(meta: &fs::Metadata, twin: &fs::Metadata, epoch: i64) -> bool {
    !newer_than(meta.mtime(), meta.mtime_nsec(), epoch) && inode_key(meta) == inode_key(twin)
}

/// What must be equal for an entry of the build's tree to be the base's
/// own inode, untouched: the inode, its change time, and the rest of its
/// metadata.
type InodeKey = (u64, (i64, i64), (i64, i64), u32, (u32, u32), u64, u64, u64);

fn inode_key(m: &fs::Metadata) -> InodeKey {
    (
        m.ino(),
        (m.ctime(), m.ctime_nsec()),
        (m.mtime(), m.mtime_nsec()),
        m.mode(),
        (m.uid(), m.gid()),
        m.size(),
        m.nlink(),
        m.rdev(),
    )
}

fn copy_and_normalize(
    src: &Path,
    out: &Path,
    epoch: i64,
    base: Option<&Path>,
    input: &SecretsInput,
    untouched_dirs: Option<HashSet<PathBuf>>,
) -> io::Result<(Report, Untouched)> {
    let leave_untouched = untouched_dirs.is_some();
    let quiet = untouched_dirs.unwrap_or_default();
    let mut gone = removals(src, epoch, base, &quiet)?;
    let found = find_secrets(src, epoch, base, input, &mut gone, &quiet)?;
    let skip = gone.iter().cloned().collect();
    let mut copier = match (leave_untouched, base) {
        (true, Some(base)) => Copier::skipping_untouched(skip, base, epoch, quiet),
        _ => Copier::skipping(skip),
    };
    let meta = fs::symlink_metadata(src).map_err(|e| at(src, e))?;
    copier.copy_dir(src, out, &meta)?;
    for rel in found.emptied() {
        empty(out, Path::new(rel))?;
    }
    let mut report = Report {
        copied: copier.copied,
        linked: copier.linked,
        secrets: found,
        ..Report::default()
    };
    let mut parents = HashSet::new();
    for path in &gone {
        report.removed.push(shown(src, path));
        if let Some(parent) = path.parent()
            && parents.insert(parent)
        {
            let copy = out.join(parent.strip_prefix(src).unwrap_or(parent));
            set_times_nofollow(&copy, epoch, true)?;
            report.clamped += 1;
        }
    }
    clamp(out, epoch, base, &mut report)?;
    Ok((report, copier.untouched))
}

/// The passes that change entries in place: install dates, keystores,
/// times. With `base`, a directory the base also has takes the base's
/// time (see [`clamp_tree`]).
fn clamp(root: &Path, epoch: i64, base: Option<&Path>, report: &mut Report) -> io::Result<()> {
    clamp_pacman_install_dates(root, epoch)?;
    let base_dir = base.and_then(|b| base_dir(b.to_path_buf()));
    clamp_tree(root, root, base_dir.as_ref(), epoch, report)
}

/// `path` with its metadata when it is a directory, not a link: the base's
/// twin of a directory of the build, reached one real directory at a time.
fn base_dir(path: PathBuf) -> Option<(PathBuf, fs::Metadata)> {
    let meta = fs::symlink_metadata(&path).ok()?;
    inroot::is_real_dir(&meta).then_some((path, meta))
}

/// What the passes remove from `root`, read before anything is removed or
/// copied: paths below `root` reached through no link, in the passes'
/// order, none below another. Fails on a name that would act as a whiteout
/// (see [`scan`]), but in the directories `quiet` names (see
/// [`quiet_dirs`]).
fn removals(
    root: &Path,
    epoch: i64,
    base: Option<&Path>,
    quiet: &HashSet<PathBuf>,
) -> io::Result<Vec<PathBuf>> {
    let newer = |m: &fs::Metadata| newer_than(m.mtime(), m.mtime_nsec(), epoch);
    let mut gone = Vec::new();
    for rel in CACHES {
        if let Some((path, _)) = inroot::unlinked(root, Path::new(rel))? {
            gone.push(path);
        }
    }
    for rel in LOG_DIRS {
        walk_below(root, rel, &mut |path, meta| {
            if meta.is_file() && newer(meta) {
                gone.push(path.to_path_buf());
            }
        })?;
    }
    for rel in BACKUP_DIRS {
        walk_below(root, rel, &mut |path, meta| {
            if !meta.is_dir()
                && path
                    .file_name()
                    .is_some_and(|n| n.as_bytes().ends_with(b"-old"))
            {
                gone.push(path.to_path_buf());
            }
        })?;
    }
    for rel in SCRATCH_DIRS {
        prune_added(root, Path::new(rel), base, &newer, &mut gone)?;
    }
    gone.extend(dev_entries(root)?);
    let skip: HashSet<PathBuf> = gone.iter().chain(quiet).cloned().collect();
    scan(root, root, epoch, &skip, &mut gone)?;
    Ok(outermost(gone))
}

/// `paths` without repeats and without any path below another of them, in
/// their order.
fn outermost(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let all: HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let mut seen = HashSet::new();
    paths
        .iter()
        .filter(|p| !p.ancestors().skip(1).any(|a| all.contains(a)) && seen.insert(p.as_path()))
        .cloned()
        .collect()
}

/// `path` as the image shows it: `/<path below root>`.
fn shown(root: &Path, path: &Path) -> PathBuf {
    Path::new("/").join(path.strip_prefix(root).unwrap_or(path))
}

/// Whether a name would act as an OCI whiteout in a layer (`.wh.<name>`,
/// `.wh..wh..opq`).
pub(crate) fn is_whiteout_name(name: &[u8]) -> bool {
    name.starts_with(b".wh.")
}

/// The error for an entry whose name would act as a whiteout, shown at its
/// path in the image.
pub(crate) fn whiteout_name_error(shown: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: a name starting with .wh. would act as an OCI whiteout in the image's layer (deleting what the layer below has there); rename or remove it in the step that made it",
            shown.display()
        ),
    )
}

/// One walk of the whole tree below `dir` (not following links, skipping
/// what `skip` holds): refuses a name that would act as a whiteout, and
/// pushes onto `gone` the SQLite shared-memory files the build wrote (see
/// [`is_sqlite_shm`]).
fn scan(
    root: &Path,
    dir: &Path,
    epoch: i64,
    skip: &HashSet<PathBuf>,
    gone: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for path in sorted_children(dir)? {
        if skip.contains(&path) {
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| at(&path, e))?;
        if is_sqlite_shm(&path, &meta, epoch) {
            gone.push(path);
            continue;
        }
        if path
            .file_name()
            .is_some_and(|n| is_whiteout_name(n.as_bytes()))
        {
            return Err(whiteout_name_error(&shown(root, &path)));
        }
        if meta.is_dir() {
            scan(root, &path, epoch, skip, gone)?;
        }
    }
    Ok(())
}

/// A faithful copy: content, owner, mode (set-id bits too), extended
/// attributes (file capabilities), times; symlinks, device nodes and fifos as
/// themselves; hard links as links (the first path in sorted order is the
/// file). Entries are visited in sorted order so the result never depends on
/// the order the filesystem lists them.
#[derive(Default)]
pub(crate) struct Copier {
    /// (device, inode) of a multiply-linked file -> its first copy.
    links: HashMap<(u64, u64), PathBuf>,
    pub(crate) copied: u64,
    pub(crate) linked: u64,
    /// Copying a delta onto a tree (`delta::apply_delta`): `.wh.<name>`
    /// removes `<name>`, and an entry replaces whatever the tree has there
    /// unless both are directories.
    apply: bool,
    pub(crate) whiteouts: u64,
    /// Paths below the source that are not copied (what the passes remove).
    skip: HashSet<PathBuf>,
    /// With a base (the base image's root) and the epoch, an entry that is
    /// the base's own file, untouched, is not copied (see [`untouched`]).
    base: Option<(PathBuf, i64)>,
    /// What was left out as untouched: per directory of the copy, the names.
    pub(crate) untouched: Untouched,
    /// Directories below the source left out whole as untouched (see
    /// [`quiet_dirs`]).
    quiet: HashSet<PathBuf>,
}

/// The entries a copy left out as the base's own, untouched: per directory
/// of the copy, the names (see `delta::prune_to_delta`).
pub type Untouched = HashMap<PathBuf, Vec<std::ffi::OsString>>;

impl Copier {
    /// A copier that applies a delta (see the `apply` field).
    pub(crate) fn applying() -> Copier {
        Copier {
            apply: true,
            ..Copier::default()
        }
    }

    /// A copier that leaves out the paths in `skip` (with what is below).
    pub(crate) fn skipping(skip: HashSet<PathBuf>) -> Copier {
        Copier {
            skip,
            ..Copier::default()
        }
    }

    /// [`Copier::skipping`], which also leaves out what is the base's own
    /// file, untouched (see [`untouched`]): for the delta, which drops
    /// such entries anyway, so the copy is in proportion to the change.
    /// `quiet` names the directories left out whole.
    pub(crate) fn skipping_untouched(
        skip: HashSet<PathBuf>,
        base: &Path,
        epoch: i64,
        quiet: HashSet<PathBuf>,
    ) -> Copier {
        Copier {
            skip,
            base: Some((base.to_path_buf(), epoch)),
            quiet,
            ..Copier::default()
        }
    }

    pub(crate) fn copy_dir(
        &mut self,
        src: &Path,
        dst: &Path,
        meta: &fs::Metadata,
    ) -> io::Result<()> {
        let twin = self.base.as_ref().map(|(b, _)| b.clone());
        self.dir(src, dst, meta, twin.as_deref())
    }

    /// `twin`: the base's directory at the same path, when it is one.
    fn dir(
        &mut self,
        src: &Path,
        dst: &Path,
        meta: &fs::Metadata,
        twin: Option<&Path>,
    ) -> io::Result<()> {
        match fs::symlink_metadata(dst) {
            Ok(m) if m.is_dir() => {}
            Ok(_) if self.apply => {
                fs::remove_file(dst).map_err(|e| at(dst, e))?;
                fs::create_dir(dst).map_err(|e| at(dst, e))?;
            }
            _ => fs::create_dir(dst).map_err(|e| at(dst, e))?,
        }
        self.children(src, dst, twin)?;
        // Owner, mode and times last: a read-only directory is filled first,
        // and filling it would move its time.
        finish(src, dst, meta)
    }

    /// Copies (or, applying, applies) each entry of `src` into `dst`.
    pub(crate) fn copy_children(&mut self, src: &Path, dst: &Path) -> io::Result<()> {
        self.children(src, dst, None)
    }

    fn children(&mut self, src: &Path, dst: &Path, twin: Option<&Path>) -> io::Result<()> {
        for child in sorted_children(src)? {
            if self.skip.contains(&child) {
                continue;
            }
            if let Some(name) = child.file_name() {
                let whiteout = name.as_bytes().strip_prefix(b".wh.");
                match whiteout {
                    Some(gone) if self.apply => {
                        remove_any(&dst.join(whiteout_target(&child, gone)?))?;
                        self.whiteouts += 1;
                    }
                    _ => {
                        let twin = twin.map(|t| t.join(name));
                        let left_out = self.quiet.contains(&child)
                            || match (&twin, &self.base) {
                                (Some(t), Some((_, epoch))) => untouched(&child, t, *epoch)?,
                                _ => false,
                            };
                        if left_out {
                            self.untouched
                                .entry(dst.to_path_buf())
                                .or_default()
                                .push(name.to_os_string());
                            continue;
                        }
                        self.entry(&child, &dst.join(name), twin.as_deref())?
                    }
                }
            }
        }
        Ok(())
    }

    fn entry(&mut self, src: &Path, dst: &Path, twin: Option<&Path>) -> io::Result<()> {
        let meta = fs::symlink_metadata(src).map_err(|e| at(src, e))?;
        self.copied += 1;
        let kind = meta.file_type();
        if kind.is_dir() {
            // The twin only where the base has a directory there (reached
            // through no link: each step down was one).
            let twin = twin.and_then(|t| base_dir(t.to_path_buf()));
            return self.dir(src, dst, &meta, twin.as_ref().map(|(t, _)| t.as_path()));
        }
        if self.apply {
            remove_any(dst)?;
        }
        if kind.is_symlink() {
            let target = fs::read_link(src).map_err(|e| at(src, e))?;
            std::os::unix::fs::symlink(&target, dst).map_err(|e| at(dst, e))?;
            return finish(src, dst, &meta);
        }
        if kind.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    fs::hard_link(first, dst).map_err(|e| at(dst, e))?;
                    self.linked += 1;
                    return Ok(());
                }
                self.links.insert(key, dst.to_path_buf());
            }
            copy_file(src, dst)?;
        } else {
            // Device nodes, fifos, sockets: made again with the same type and
            // device number.
            let c_path = c_path(dst)?;
            // SAFETY: c_path is a valid NUL-terminated path; mknod reads only it.
            let rc = unsafe {
                libc::mknod(
                    c_path.as_ptr(),
                    meta.mode() as libc::mode_t,
                    meta.rdev() as libc::dev_t,
                )
            };
            if rc != 0 {
                return Err(at(dst, io::Error::last_os_error()));
            }
        }
        finish(src, dst, &meta)
    }
}

/// The name a whiteout at `path` removes: `gone` (what follows `.wh.`),
/// which must name an entry of the directory; an empty name, `.` or `..`
/// would remove the directory itself or its parent, and is refused.
fn whiteout_target<'a>(path: &Path, gone: &'a [u8]) -> io::Result<&'a std::ffi::OsStr> {
    if matches!(gone, b"" | b"." | b"..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: a whiteout of {:?} names no entry of its directory: refused",
                path.display(),
                String::from_utf8_lossy(gone)
            ),
        ));
    }
    Ok(std::ffi::OsStr::from_bytes(gone))
}

/// Whether the entry at `src` (not a directory) is the base's own file at
/// `twin`, untouched by the build and by normalization: the same inode
/// (an overlay mount shows a file no step changed with the inode of the
/// layer that holds it, the same in the base's mount and the build's; a
/// step that changes it, or links it, copies it up to a new one), with the
/// same change time, and the same type, mode, owner, size, link count and
/// mtime, no newer than the epoch, no POSIX ACL (the copy drops those), and
/// no pacman record (whose dates normalize rewrites). Such an entry would
/// be copied and then dropped as equal to the base's; an engine whose
/// snapshots do not share inodes gets false here, and the full copy.
fn untouched(src: &Path, twin: &Path, epoch: i64) -> io::Result<bool> {
    let m = fs::symlink_metadata(src).map_err(|e| at(src, e))?;
    if m.is_dir() {
        return Ok(false);
    }
    let b = match fs::symlink_metadata(twin) {
        Ok(b) => b,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(false);
        }
        Err(e) => return Err(at(twin, e)),
    };
    if inode_key(&m) != inode_key(&b) {
        return Ok(false);
    }
    left_as_it_is(src, &m, epoch)
}

/// Whether normalize leaves the entry at `path` (with `meta`) as it is: no
/// time after the epoch, no pacman record (whose dates it rewrites), no
/// POSIX ACL (which the copy drops). The file test of [`untouched`] and the
/// base's census (`step::census`) both rest on it.
pub(crate) fn left_as_it_is(path: &Path, meta: &fs::Metadata, epoch: i64) -> io::Result<bool> {
    if newer_than(meta.mtime(), meta.mtime_nsec(), epoch) || is_pacman_record(path) {
        return Ok(false);
    }
    Ok(!read_xattrs(path)?
        .iter()
        .any(|(name, _)| name.starts_with(DROPPED_XATTR_PREFIX)))
}

/// `.../var/lib/pacman/local/<package>/desc`.
fn is_pacman_record(path: &Path) -> bool {
    let names: Vec<&[u8]> = path.iter().rev().take(5).map(|c| c.as_bytes()).collect();
    matches!(
        names.as_slice(),
        [b"desc", _, b"local", b"pacman", b"lib", ..]
    )
}

/// Copies the regular file `src` to the new file `dst`, data extents only
/// (lseek SEEK_DATA/SEEK_HOLE), then sets its length with ftruncate: holes
/// stay holes. Where the filesystem cannot tell (EINVAL), the whole file
/// is copied.
fn copy_file(src: &Path, dst: &Path) -> io::Result<()> {
    let from = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)
        .map_err(|e| at(src, e))?;
    let to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| at(dst, e))?;
    let len = from.metadata().map_err(|e| at(src, e))?.len();
    let mut offset = 0;
    while offset < len {
        let data = match seek(&from, offset, libc::SEEK_DATA) {
            Ok(Some(d)) => d,
            // No data after `offset`: the rest is a hole.
            Ok(None) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => offset,
            Err(e) => return Err(at(src, e)),
        };
        let hole = match seek(&from, data, libc::SEEK_HOLE) {
            Ok(Some(h)) => h.min(len),
            Ok(None) => len,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => len,
            Err(e) => return Err(at(src, e)),
        };
        copy_range(&from, &to, data, hole - data).map_err(|e| at(dst, e))?;
        offset = hole.max(data + 1);
    }
    to.set_len(len).map_err(|e| at(dst, e))
}

/// lseek(2) with `whence` (SEEK_DATA, SEEK_HOLE) from `offset`; None where
/// the kernel answers ENXIO (no data from there on).
fn seek(file: &fs::File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    // SAFETY: a plain lseek on an open descriptor we own; no memory is passed.
    let at = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
    if at < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            _ => Err(err),
        };
    }
    Ok(Some(at as u64))
}

/// Copies `len` bytes at `offset` of `from` to the same place in `to`.
fn copy_range(from: &fs::File, to: &fs::File, offset: u64, len: u64) -> io::Result<()> {
    let (mut r, mut w) = (from, to);
    r.seek(io::SeekFrom::Start(offset))?;
    w.seek(io::SeekFrom::Start(offset))?;
    let copied = io::copy(&mut r.take(len), &mut w)?;
    if copied != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file became shorter while it was copied",
        ));
    }
    Ok(())
}

/// Removes whatever `path` is (a directory with its contents); nothing
/// there is fine. Whether something was removed.
fn remove_any(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(|e| at(path, e))?,
        Ok(_) => fs::remove_file(path).map_err(|e| at(path, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(at(path, e)),
    }
    Ok(true)
}

/// Owner, then mode (chown clears set-id bits; a symlink has none),
/// extended attributes, times.
fn finish(src: &Path, dst: &Path, meta: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid())).map_err(|e| at(dst, e))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| at(dst, e))?;
    }
    copy_xattrs(src, dst)?;
    set_times(
        dst,
        (meta.atime(), meta.atime_nsec()),
        (meta.mtime(), meta.mtime_nsec()),
    )
}

/// POSIX ACLs (`system.posix_acl_access`, `..._default`): no engine's
/// image layer carries them (Docker 20.10's, Docker 26.1's and BuildKit's
/// layer writers drop them; only `--output type=tar` kept them), so the
/// copy leaves them out and the image and its tar export are one tree.
/// systemd's postinst sets them on /var/log/journal.
const DROPPED_XATTR_PREFIX: &[u8] = b"system.posix_acl_";

/// Copies every extended attribute the kernel lets us read, not following
/// links (see [`read_xattrs`]), but POSIX ACLs (see
/// [`DROPPED_XATTR_PREFIX`]).
fn copy_xattrs(src: &Path, dst: &Path) -> io::Result<()> {
    let d = c_path(dst)?;
    for (name, value) in read_xattrs(src)? {
        if name.starts_with(DROPPED_XATTR_PREFIX) {
            continue;
        }
        let c_name = CString::new(name.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // SAFETY: value holds `value.len()` initialized bytes.
        let rc = unsafe {
            libc::lsetxattr(
                d.as_ptr(),
                c_name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(
                err.kind(),
                format!(
                    "{}: cannot set extended attribute {}: {err}",
                    dst.display(),
                    String::from_utf8_lossy(&name)
                ),
            ));
        }
    }
    Ok(())
}

/// The extended attributes of `path` (not following links) the kernel lets
/// us read, as (name, value) in the kernel's order; none where the
/// filesystem has none. `trusted.*` (overlayfs' own bookkeeping, root-only)
/// is skipped: layer tars never carry it.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let s = c_path(path)?;
    // SAFETY: a NULL buffer of size 0 asks for the list's length only.
    let len = unsafe { libc::llistxattr(s.as_ptr(), std::ptr::null_mut(), 0) };
    if len < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            _ => Err(at(path, err)),
        };
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; len as usize];
    // SAFETY: names has the length passed; the kernel writes at most that.
    let len = unsafe { libc::llistxattr(s.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if len < 0 {
        return Err(at(path, io::Error::last_os_error()));
    }
    names.truncate(len as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.") {
            continue;
        }
        let c_name =
            CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // SAFETY: as above, a length query.
        let size = unsafe { libc::lgetxattr(s.as_ptr(), c_name.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(at(path, io::Error::last_os_error()));
        }
        let mut value = vec![0u8; size as usize];
        // SAFETY: value has the length passed.
        let size = unsafe {
            libc::lgetxattr(
                s.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if size < 0 {
            return Err(at(path, io::Error::last_os_error()));
        }
        value.truncate(size as usize);
        out.push((name.to_vec(), value));
    }
    Ok(out)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// An I/O error that names its path.
pub(crate) fn at(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

/// What emptying /dev removes. The runtime mounts its own /dev over it, so nothing there
/// is ever seen; and Docker 20.10's copy turns device nodes into empty files
/// where newer engines keep them, so leaving them would make the engines'
/// images differ.
fn dev_entries(root: &Path) -> io::Result<Vec<PathBuf>> {
    match inroot::real_dir(root, Path::new("dev"))? {
        Some(dev) => sorted_children(&dev),
        None => Ok(Vec::new()),
    }
}

/// Whether `path` is a SQLite shared-memory file (`<db>-shm`) the build
/// wrote: an index of the write-ahead log that SQLite rebuilds on open,
/// holding whatever was in memory (rpm's database leaves one behind). The
/// database beside it must be a regular file itself, not a link.
fn is_sqlite_shm(path: &Path, meta: &fs::Metadata, epoch: i64) -> bool {
    meta.is_file()
        && newer_than(meta.mtime(), meta.mtime_nsec(), epoch)
        && path
            .file_name()
            .and_then(|n| n.as_bytes().strip_suffix(b"-shm"))
            .filter(|db| !db.is_empty())
            .is_some_and(|db| {
                fs::symlink_metadata(path.with_file_name(std::ffi::OsStr::from_bytes(db)))
                    .is_ok_and(|m| m.is_file())
            })
}

/// pacman records when it installed each package (`%INSTALLDATE%` in
/// `/var/lib/pacman/local/*/desc`); dates after the epoch become the epoch.
fn clamp_pacman_install_dates(root: &Path, epoch: i64) -> io::Result<()> {
    let Some(local) = inroot::real_dir(root, Path::new("var/lib/pacman/local"))? else {
        return Ok(());
    };
    for dir in sorted_children(&local)? {
        let Some(name) = dir.file_name() else {
            continue;
        };
        let Some((desc, meta)) = inroot::unlinked(&local, &Path::new(name).join("desc"))? else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let bytes = inroot::read_regular(&desc, DESC_CAP)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            at(
                &desc,
                io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
            )
        })?;
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
            fs::write(&desc, out).map_err(|e| at(&desc, e))?;
        }
    }
    Ok(())
}

/// Pushes onto `gone` what the build added below `root/rel` (see
/// [`normalize`]). Only a real directory reached through no link is pruned:
/// a symlink (Debian's /var/run -> /run) is left alone. An entry is in the
/// base when the base has it at the same path, reached through no link.
fn prune_added(
    root: &Path,
    rel: &Path,
    base: Option<&Path>,
    newer: &dyn Fn(&fs::Metadata) -> bool,
    gone: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let Some(dir) = inroot::real_dir(root, rel)? else {
        return Ok(());
    };
    for child in sorted_children(&dir)? {
        let Some(name) = child.file_name() else {
            continue;
        };
        let child_rel = rel.join(name);
        let meta = fs::symlink_metadata(&child).map_err(|e| at(&child, e))?;
        let in_base = match base {
            Some(b) => inroot::unlinked(b, &child_rel)?.is_some(),
            None => !newer(&meta),
        };
        if !in_base {
            gone.push(child);
        } else if meta.is_dir() {
            prune_added(root, &child_rel, base, newer, gone)?;
        }
    }
    Ok(())
}

/// Removes `path` (a whole tree if it is a directory), if it exists, and
/// reports it as `/<path below root>`.
fn remove(root: &Path, path: &Path, report: &mut Report) -> io::Result<()> {
    if remove_any(path)? {
        report.removed.push(shown(root, path));
    }
    Ok(())
}

/// The paths of a directory's entries, sorted, so nothing depends on the
/// order the filesystem lists them.
pub(crate) fn sorted_children(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut children: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| at(dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    children.sort();
    Ok(children)
}

/// Calls `f` on every non-directory entry below `root/rel`, a real
/// directory reached through no link (nothing when it is not one), not
/// following links below it either.
fn walk_below(root: &Path, rel: &str, f: &mut dyn FnMut(&Path, &fs::Metadata)) -> io::Result<()> {
    match inroot::real_dir(root, Path::new(rel))? {
        Some(dir) => walk_files(&dir, f),
        None => Ok(()),
    }
}

/// Calls `f` on every non-directory entry below the directory `dir`.
fn walk_files(dir: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata)) -> io::Result<()> {
    for path in sorted_children(dir)? {
        let meta = fs::symlink_metadata(&path).map_err(|e| at(&path, e))?;
        if meta.is_dir() {
            walk_files(&path, f)?;
        } else {
            f(&path, &meta);
        }
    }
    Ok(())
}

/// Sets atime and mtime of everything newer than `epoch` to `epoch`,
/// children before their directory, never following a symlink.
///
/// A directory the base image also has as a directory (`base`: its path in
/// the base and its metadata, reached through no link) gets the base's
/// mtime, clamped. A directory's mtime records when an entry in it last
/// came or went, and the build's steps add and remove transient entries
/// (the engine's mount stubs, dpkg's scratch files) that leave no other
/// trace: the engine's layer of a step leaves such a directory out, so the
/// same step brought back from a cache gives the base's mtime where the
/// step run here gave the build's clock. Taking the base's makes both the
/// same.
fn clamp_tree(
    root: &Path,
    path: &Path,
    base: Option<&(PathBuf, fs::Metadata)>,
    epoch: i64,
    report: &mut Report,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for child in sorted_children(path)? {
            let in_base = match (base, child.file_name()) {
                (Some((dir, _)), Some(name)) => base_dir(dir.join(name)),
                _ => None,
            };
            clamp_tree(root, &child, in_base.as_ref(), epoch, report)?;
        }
    }
    report.entries += 1;
    let newer = newer_than(meta.mtime(), meta.mtime_nsec(), epoch);
    if newer && meta.is_file() && may_be_keystore(path) {
        clamp_keystore(root, path, epoch, report)?;
    }
    let atime_newer = newer_than(meta.atime(), meta.atime_nsec(), epoch);
    if let Some((_, twin)) = base.filter(|_| meta.is_dir()) {
        let mut mtime = (twin.mtime(), twin.mtime_nsec());
        if newer_than(mtime.0, mtime.1, epoch) {
            mtime = (epoch, 0);
        }
        if mtime != (meta.mtime(), meta.mtime_nsec()) || atime_newer {
            let atime = match atime_newer {
                true => (epoch, 0),
                false => (meta.atime(), meta.atime_nsec()),
            };
            set_times(path, atime, mtime)?;
            if mtime != (meta.mtime(), meta.mtime_nsec()) {
                report.clamped += 1;
            }
        }
        return Ok(());
    }
    if newer || atime_newer {
        set_times_nofollow(path, epoch, newer)?;
        if newer {
            report.clamped += 1;
        }
    }
    Ok(())
}

/// Java keystores by their usual names: `cacerts` (the JDK's and
/// ca-certificates-java's) and `*.jks`, `*.keystore`.
fn may_be_keystore(path: &Path) -> bool {
    let name = path.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
    name == b"cacerts" || name.ends_with(b".jks") || name.ends_with(b".keystore")
}

/// Clamps the entry dates of a JKS keystore the build wrote (see
/// `keystore.rs`); content is rewritten in place, so hard links stay.
fn clamp_keystore(root: &Path, path: &Path, epoch: i64, report: &mut Report) -> io::Result<()> {
    let shown = shown(root, path);
    let data = match inroot::read_regular(path, KEYSTORE_CAP) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
            report
                .skipped
                .push((shown, format!("longer than {KEYSTORE_CAP} bytes, not read")));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if !crate::step::keystore::is_jks(&data) {
        return Ok(());
    }
    match crate::step::keystore::clamp_dates(&data, epoch, crate::step::keystore::DEFAULT_PASSWORD)
    {
        Ok(Some(bytes)) => {
            fs::write(path, bytes).map_err(|e| at(path, e))?;
            report.keystores.push(shown);
        }
        Ok(None) => {}
        Err(e) => report.skipped.push((shown, e.to_string())),
    }
    Ok(())
}

fn newer_than(secs: i64, nsecs: i64, epoch: i64) -> bool {
    secs > epoch || (secs == epoch && nsecs > 0)
}

/// Sets atime and mtime exactly (seconds, nanoseconds), not following links.
pub(crate) fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
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
    let c_path = c_path(path)?;
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
        return Err(at(path, io::Error::last_os_error()));
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

    /// A source tree with a set-id file and its hard link, a symlink, a
    /// fifo, a read-only directory, a user xattr (where the filesystem takes
    /// them) and a file under /dev, copied onto scratch at epoch 2000.
    struct Copied {
        /// Holds the directory: bind it (not `..`) to keep the tree.
        _tmp: tempfile::TempDir,
        src: PathBuf,
        out: PathBuf,
        report: Report,
        /// Whether the source's `user.repro` xattr could be set.
        xattr: bool,
        /// The source's usr/bin before the copy.
        before: fs::Metadata,
    }

    fn copied_onto_scratch() -> Copied {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let out = tmp.path().join("out");
        fs::create_dir_all(src.join("usr/bin")).unwrap();
        fs::create_dir_all(src.join("dev")).unwrap();
        fs::create_dir_all(src.join("ro")).unwrap();
        fs::create_dir(&out).unwrap();
        fs::write(src.join("usr/bin/perl"), "#!perl").unwrap();
        fs::set_permissions(src.join("usr/bin/perl"), fs::Permissions::from_mode(0o4755)).unwrap();
        set_times_nofollow(&src.join("usr/bin/perl"), 1000, true).unwrap();
        fs::hard_link(src.join("usr/bin/perl"), src.join("usr/bin/perl5")).unwrap();
        symlink("perl", src.join("usr/bin/perl-link")).unwrap();
        set_times_nofollow(&src.join("usr/bin/perl-link"), 900, true).unwrap();
        fs::write(src.join("ro/file"), "r").unwrap();
        fs::set_permissions(src.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        set_times_nofollow(&src.join("ro"), 800, true).unwrap();
        let fifo = c_path(&src.join("usr/bin/fifo")).unwrap();
        // SAFETY: a valid path; makes a fifo.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        set_times_nofollow(&src.join("usr/bin/fifo"), 700, true).unwrap();
        // A user xattr where the filesystem takes them (tmpfs and ext4 do).
        let name = CString::new("user.repro").unwrap();
        let perl = c_path(&src.join("usr/bin/perl")).unwrap();
        // SAFETY: valid path, name and a 2-byte value.
        let xattr =
            unsafe { libc::lsetxattr(perl.as_ptr(), name.as_ptr(), b"ok".as_ptr().cast(), 2, 0) }
                == 0;
        fs::write(src.join("dev/null"), "").unwrap();
        set_times_nofollow(&src.join("usr/bin"), 500, true).unwrap();
        let before = fs::symlink_metadata(src.join("usr/bin")).unwrap();

        let report = normalize_into(&src, &out, 2000, None).unwrap();

        // Writable again after the copy, so the temporary directory can go.
        fs::set_permissions(src.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
        Copied {
            _tmp: tmp,
            src,
            out,
            report,
            xattr,
            before,
        }
    }

    #[test]
    fn the_copy_onto_scratch_keeps_links_modes_times_and_xattrs() {
        let Copied {
            _tmp,
            out,
            report,
            xattr,
            ..
        } = copied_onto_scratch();
        assert_eq!(report.linked, 1);
        let a = fs::symlink_metadata(out.join("usr/bin/perl")).unwrap();
        let b = fs::symlink_metadata(out.join("usr/bin/perl5")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hard links stay links");
        assert_eq!(fs::read(out.join("usr/bin/perl5")).unwrap(), b"#!perl");
        assert_eq!(b.mode() & 0o7777, 0o4755, "set-id bits survive the copy");
        assert_eq!(b.mtime(), 1000, "the copy keeps the file's time");
        assert_eq!(
            fs::read_link(out.join("usr/bin/perl-link")).unwrap(),
            Path::new("perl")
        );
        assert_eq!(mtime(&out.join("usr/bin/perl-link")), 900);
        let f = fs::symlink_metadata(out.join("usr/bin/fifo")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&f.file_type()));
        assert_eq!((f.mode() & 0o7777, f.mtime()), (0o600, 700));
        assert_eq!(fs::read(out.join("ro/file")).unwrap(), b"r");
        let ro = fs::symlink_metadata(out.join("ro")).unwrap();
        assert_eq!((ro.mode() & 0o7777, ro.mtime()), (0o555, 800));
        assert_eq!(
            mtime(&out.join("usr/bin")),
            500,
            "directories keep their own time"
        );
        if xattr {
            let name = CString::new("user.repro").unwrap();
            let copy = c_path(&out.join("usr/bin/perl")).unwrap();
            let mut value = [0u8; 8];
            // SAFETY: valid path and name; value is 8 bytes long.
            let n = unsafe {
                libc::lgetxattr(
                    copy.as_ptr(),
                    name.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            assert_eq!(
                &value[..n.max(0) as usize],
                b"ok",
                "extended attributes are copied"
            );
        }
    }

    #[test]
    fn the_copy_onto_scratch_empties_dev_and_leaves_the_source_alone() {
        let Copied {
            _tmp,
            src,
            out,
            before,
            ..
        } = copied_onto_scratch();
        assert_eq!(fs::read_dir(out.join("dev")).unwrap().count(), 0);
        // The source is read, never written.
        assert!(src.join("dev/null").exists());
        let after = fs::symlink_metadata(src.join("usr/bin")).unwrap();
        assert_eq!((before.mtime(), before.ino()), (after.mtime(), after.ino()));
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

    // Issue 24: host keys and machine identities made at install time were
    // shipped (each build differed, and every container shared one key).
    #[test]
    fn install_time_keys_are_never_copied_and_identities_are_emptied() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
        fs::create_dir_all(src.join("etc/ssh")).unwrap();
        fs::create_dir(&out).unwrap();
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        fs::write(src.join("etc/ssh/ssh_host_ed25519_key"), key).unwrap();
        fs::write(
            src.join("etc/ssh/ssh_host_ed25519_key.pub"),
            "ssh-ed25519 AAAA\n",
        )
        .unwrap();
        fs::write(
            src.join("etc/machine-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        fs::write(src.join("etc/hostname"), "kept\n").unwrap();
        let report = normalize_into(&src, &out, 1_000, None).unwrap();
        assert!(!out.join("etc/ssh/ssh_host_ed25519_key").exists());
        assert!(!out.join("etc/ssh/ssh_host_ed25519_key.pub").exists());
        assert_eq!(fs::read(out.join("etc/machine-id")).unwrap(), b"");
        assert_eq!(fs::read(out.join("etc/hostname")).unwrap(), b"kept\n");
        assert_eq!(mtime(&out.join("etc/machine-id")), 1_000);
        assert_eq!(mtime(&out.join("etc/ssh")), 1_000);
        assert_eq!(report.secrets.findings.len(), 3);
        // The source is only read.
        assert!(src.join("etc/ssh/ssh_host_ed25519_key").exists());
        assert_ne!(fs::read(src.join("etc/machine-id")).unwrap(), b"");

        // In place, the same.
        normalize(&src, 1_000, None).unwrap();
        assert!(!src.join("etc/ssh/ssh_host_ed25519_key").exists());
        assert_eq!(fs::read(src.join("etc/machine-id")).unwrap(), b"");
    }

    #[test]
    fn a_key_nobody_decided_on_fails_before_anything_is_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
        fs::create_dir_all(src.join("srv")).unwrap();
        fs::create_dir(&out).unwrap();
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        fs::write(src.join("srv/app.key"), key).unwrap();
        let err = normalize_into(&src, &out, 1_000, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/srv/app.key: a private key (PRIVATE KEY)"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "nothing copied");
        let keep = SecretsInput {
            policy: secrets::Policy {
                keep: vec!["/srv/app.key".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let report = normalize_into_with(&src, &out, 1_000, None, &keep).unwrap();
        assert_eq!(fs::read_to_string(out.join("srv/app.key")).unwrap(), key);
        assert_eq!(report.secrets.findings[0].action, secrets::Action::Kept);
    }

    // The keys corpus set: systemd's postinst puts an ACL on
    // /var/log/journal; the tar export kept it, the image layer did not.
    #[test]
    fn posix_acls_are_left_out_of_the_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
        fs::create_dir_all(src.join("journal")).unwrap();
        fs::create_dir(&out).unwrap();
        // user::rwx group::r-x group:4:r-x mask::r-x other::r-x
        let acl: [u8; 44] = [
            2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255, 4, 0, 5, 0, 255, 255, 255, 255, 8, 0, 5, 0,
            4, 0, 0, 0, 16, 0, 5, 0, 255, 255, 255, 255, 32, 0, 5, 0, 255, 255, 255, 255,
        ];
        let path = c_path(&src.join("journal")).unwrap();
        let name = CString::new("system.posix_acl_access").unwrap();
        // SAFETY: valid C strings and a buffer of `acl.len()` bytes.
        let rc = unsafe {
            libc::lsetxattr(
                path.as_ptr(),
                name.as_ptr(),
                acl.as_ptr().cast(),
                acl.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "set an ACL: {}", io::Error::last_os_error());
        // A user xattr beside it is copied: the copy does copy xattrs here.
        let user = CString::new("user.repro").unwrap();
        // SAFETY: as above, with a 2-byte value.
        let rc =
            unsafe { libc::lsetxattr(path.as_ptr(), user.as_ptr(), b"ok".as_ptr().cast(), 2, 0) };
        assert_eq!(rc, 0, "set a user xattr: {}", io::Error::last_os_error());
        assert!(
            read_xattrs(&src.join("journal"))
                .unwrap()
                .iter()
                .any(|(n, _)| n.starts_with(DROPPED_XATTR_PREFIX))
        );
        normalize_into(&src, &out, 1_000, None).unwrap();
        let copied = read_xattrs(&out.join("journal")).unwrap();
        assert!(
            copied
                .iter()
                .all(|(n, _)| !n.starts_with(DROPPED_XATTR_PREFIX)),
            "{copied:?}"
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

    // ca-certificates-java stamps each cacerts entry with the install time.
    #[test]
    fn java_keystores_the_build_wrote_get_their_entry_dates_clamped() {
        use crate::step::keystore::tests::keystore;
        let epoch = 1_700_000_000;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("etc/ssl/certs/java");
        fs::create_dir_all(&dir).unwrap();
        let cacerts = dir.join("cacerts");
        fs::write(&cacerts, keystore(&[1_795_990_410_983], false, "changeit")).unwrap();
        // A keystore with another password is reported, not touched.
        let other = keystore(&[1_795_990_410_983], false, "s3cret");
        fs::write(dir.join("app.jks"), &other).unwrap();
        let report = normalize(root.path(), epoch, None).unwrap();
        assert_eq!(
            fs::read(&cacerts).unwrap(),
            keystore(&[epoch * 1000], false, "changeit")
        );
        assert_eq!(mtime(&cacerts), epoch);
        assert_eq!(
            report.keystores,
            [PathBuf::from("/etc/ssl/certs/java/cacerts")]
        );
        assert_eq!(fs::read(dir.join("app.jks")).unwrap(), other);
        assert_eq!(report.skipped.len(), 1);
        assert!(report.skipped[0].1.contains("password"));
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

    /// Every entry below `dir` with its type, mode, mtime and content (or
    /// link target), sorted: what a pass must leave alone.
    fn snapshot(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for c in sorted_children(&d).unwrap() {
                let m = fs::symlink_metadata(&c).unwrap();
                let what = if m.is_dir() {
                    stack.push(c.clone());
                    String::new()
                } else if m.file_type().is_symlink() {
                    fs::read_link(&c).unwrap().display().to_string()
                } else {
                    String::from_utf8_lossy(&fs::read(&c).unwrap()).into_owned()
                };
                out.push(format!(
                    "{} {:o} {} {what}",
                    c.display(),
                    m.mode(),
                    m.mtime()
                ));
            }
        }
        out.sort();
        out
    }

    /// A directory outside every root, laid out like the root's /var with
    /// something for each pass to remove or rewrite.
    fn outside_var(dir: &Path) {
        write_tree(
            dir,
            &[
                ("log/new.log", "the build's output"),
                ("cache/apt/pkgcache.bin", "c"),
                ("cache/ldconfig/aux-cache", "a"),
                ("cache/debconf/config.dat-old", "b"),
                ("lib/dpkg/status-old", "b"),
                ("lib/pacman/local/pkg/desc", "%INSTALLDATE%\n1795631660\n"),
                ("tmp/added/f", "t"),
                ("db.sqlite", "db"),
            ],
        );
    }

    /// Writes each (path, text) below `root`, making the directories.
    fn write_tree(root: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            fs::write(root.join(path), text).unwrap();
        }
    }

    /// A root whose /var (or each directory the passes visit below it) is
    /// a link to `outside`, absolute or relative with `..` enough to leave
    /// the root.
    fn root_linking_out(root: &Path, outside: &Path, whole_var: bool, absolute: bool) {
        let target = |rel: &str, depth: usize| {
            let abs = outside.join(rel);
            if absolute {
                abs
            } else {
                let up = "../".repeat(depth + 8);
                PathBuf::from(format!("{up}{}", abs.display()).replace("//", "/"))
            }
        };
        fs::create_dir_all(root.join("var")).unwrap();
        if whole_var {
            fs::remove_dir(root.join("var")).unwrap();
            symlink(target("", 0), root.join("var")).unwrap();
            return;
        }
        for (link, to) in [
            ("var/log", "log"),
            ("var/cache/apt", "cache/apt"),
            ("var/cache/ldconfig", "cache/ldconfig"),
            ("var/cache/debconf", "cache/debconf"),
            ("var/lib/dpkg", "lib/dpkg"),
            ("var/lib/pacman/local/pkg", "lib/pacman/local/pkg"),
            ("var/tmp", "tmp"),
        ] {
            let path = root.join(link);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            symlink(target(to, link.matches('/').count()), &path).unwrap();
        }
        symlink(target("db.sqlite", 0), root.join("db.sqlite")).unwrap();
        fs::write(root.join("db.sqlite-shm"), "x").unwrap();
    }

    // A link in the built root made normalize delete and rewrite files
    // outside it, in the normalize container (issue 24).
    #[test]
    fn links_out_of_the_root_are_never_followed() {
        for whole_var in [true, false] {
            for absolute in [true, false] {
                for into in [false, true] {
                    let tmp = tempfile::tempdir().unwrap();
                    let outside = tmp.path().join("outside");
                    outside_var(&outside);
                    let before = snapshot(&outside);
                    let root = tmp.path().join("root");
                    root_linking_out(&root, &outside, whole_var, absolute);
                    let done = if into {
                        let out = tmp.path().join("out");
                        fs::create_dir(&out).unwrap();
                        normalize_into(&root, &out, 1_000, None)
                    } else {
                        normalize(&root, 1_000, None)
                    };
                    let case = format!("whole var {whole_var}, absolute {absolute}, copy {into}");
                    assert!(done.is_ok(), "{case}: {done:?}");
                    assert_eq!(snapshot(&outside), before, "{case}");
                }
            }
        }
    }

    // `etc/.wh.passwd` in a built root deleted the base's /etc/passwd in
    // `image.layers: base` (issue 24).
    #[test]
    fn a_name_that_would_be_a_whiteout_is_refused_with_its_path() {
        for name in [".wh.passwd", ".wh..wh..opq", ".wh.."] {
            let tmp = tempfile::tempdir().unwrap();
            let src = tmp.path().join("src");
            fs::create_dir_all(src.join("etc")).unwrap();
            fs::write(src.join("etc").join(name), "").unwrap();
            let out = tmp.path().join("out");
            fs::create_dir(&out).unwrap();
            let err = normalize_into(&src, &out, 1_000, None).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("/etc/{name}")), "{msg}");
            assert!(msg.contains("whiteout"), "{msg}");
            assert_eq!(
                fs::read_dir(&out).unwrap().count(),
                0,
                "refused before the copy"
            );
            assert!(normalize(&src, 1_000, None).is_err(), "in place too");
        }
        // A directory of that name too; one the passes remove is no matter.
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("usr/.wh.lib")).unwrap();
        assert!(normalize(tmp.path(), 1_000, None).is_err());
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("tmp")).unwrap();
        fs::write(tmp.path().join("tmp/.wh.x"), "").unwrap();
        let report = normalize(tmp.path(), 1_000, None).unwrap();
        assert_eq!(report.removed, [PathBuf::from("/tmp/.wh.x")]);
    }

    /// The bytes of `f` from `at` on, `n` of them.
    fn read_at(f: &fs::File, at: u64, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, at).unwrap();
        buf
    }

    // A `useradd` with a large uid leaves a sparse lastlog hundreds of GB
    // long; the copy made it dense (issue 24).
    #[test]
    fn sparse_files_stay_sparse_in_the_copy() {
        const GIB: u64 = 1 << 30;
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("var/lib")).unwrap();
        let big = src.join("var/lib/big");
        let f = fs::File::create(&big).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"head", 0).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"tail", GIB + 4).unwrap();
        // A hole at the end too: the length comes from ftruncate.
        f.set_len(2 * GIB).unwrap();
        drop(f);
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        normalize_into(&src, &out, 1_000, None).unwrap();
        let copy = out.join("var/lib/big");
        let m = fs::symlink_metadata(&copy).unwrap();
        assert_eq!(m.len(), 2 * GIB);
        assert!(
            m.blocks() < 1024,
            "{} blocks: the holes were filled",
            m.blocks()
        );
        let c = fs::File::open(&copy).unwrap();
        assert_eq!(read_at(&c, 0, 8), b"head\0\0\0\0");
        assert_eq!(read_at(&c, GIB, 8), b"\0\0\0\0tail");
        assert_eq!(read_at(&c, 2 * GIB - 4, 4), [0; 4]);
    }

    // normalize copied a build's lastlog in full before it deleted it.
    #[test]
    fn what_the_passes_remove_is_never_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("var/log")).unwrap();
        fs::create_dir_all(src.join("tmp/build/deep")).unwrap();
        fs::write(src.join("var/log/lastlog"), "l").unwrap();
        fs::write(src.join("tmp/build/deep/f"), "f").unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        let report = normalize_into(&src, &out, 1_000, None).unwrap();
        // var, var/log, tmp: nothing else was copied.
        assert_eq!(report.copied, 3, "{report:?}");
        assert_eq!(
            report.removed,
            [
                PathBuf::from("/var/log/lastlog"),
                PathBuf::from("/tmp/build")
            ]
        );
        assert!(!out.join("var/log/lastlog").exists());
        assert_eq!(fs::read_dir(out.join("tmp")).unwrap().count(), 0);
    }

    /// `cp -a src dst`: a faithful copy made by another tool than ours.
    fn cp_a(src: &Path, dst: &Path) {
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(src)
            .arg(dst)
            .status();
        assert!(ok.unwrap().success(), "cp -a {}", src.display());
    }

    /// Every entry below `root` with what a layer carries of it.
    fn described(root: &Path) -> Vec<String> {
        let mut out: Vec<String> = snapshot(root)
            .into_iter()
            .map(|l| l.replacen(&root.display().to_string(), "", 1))
            .collect();
        let m = fs::symlink_metadata(root).unwrap();
        out.push(format!("/ {:o} {} {}", m.mode(), m.mtime(), m.atime()));
        out
    }

    // Guards the copy that skips what the passes remove: it must give the
    // tree that copying first and removing after gave.
    #[test]
    fn skipping_removals_in_the_copy_gives_the_tree_removing_after_the_copy_gave() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        write_tree(
            &src,
            &[
                ("var/log/apt/history.log", "h"),
                ("var/log/old.log", "o"),
                ("var/lib/dpkg/status-old", "s"),
                ("dev/null", ""),
                ("run/keep/new", ""),
                ("etc/conf", "c"),
            ],
        );
        fs::create_dir_all(src.join("tmp")).unwrap();
        set_times_nofollow(&src.join("var/log/old.log"), 10, true).unwrap();
        // Every directory older than the epoch, as in a base.
        for d in [
            "var/log/apt",
            "var/log",
            "var/lib/dpkg",
            "var/lib",
            "var",
            "dev",
            "run/keep",
            "run",
            "etc",
            "tmp",
            "",
        ] {
            set_times_nofollow(&src.join(d), 10, true).unwrap();
        }
        let base = tmp.path().join("base");
        fs::create_dir_all(base.join("run/keep")).unwrap();
        let old_way = tmp.path().join("old");
        cp_a(&src, &old_way);
        let old = normalize(&old_way, 1_000, Some(&base)).unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        let new = normalize_into(&src, &out, 1_000, Some(&base)).unwrap();
        assert_eq!(described(&out), described(&old_way));
        assert_eq!((new.removed, new.clamped), (old.removed, old.clamped));
    }

    fn mtime_ns(p: &Path) -> (i64, i64) {
        let m = fs::symlink_metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    }

    // The same step run here, or brought back from a cache (whose layer
    // leaves out a directory only its time changed in), gives one tree: a
    // directory the base has takes the base's time, clamped.
    #[test]
    fn a_directory_the_base_has_takes_the_bases_time_however_the_build_left_it() {
        let epoch = 1_700_000_000;
        let trees: Vec<Vec<String>> = [true, false]
            .into_iter()
            .map(|ran_here| {
                let tmp = tempfile::tempdir().unwrap();
                let (base, built, out) = (
                    tmp.path().join("base"),
                    tmp.path().join("built"),
                    tmp.path().join("out"),
                );
                for root in [&base, &built] {
                    write_tree(root, &[("etc/hostname", "h"), ("usr/bin/ls", "ls")]);
                    fs::create_dir_all(root.join("future")).unwrap();
                    set_times(&root.join("etc/hostname"), (1000, 0), (1000, 0)).unwrap();
                    set_times(&root.join("usr/bin/ls"), (1000, 0), (1000, 0)).unwrap();
                    set_times(&root.join("etc"), (1000, 0), (1_000_000, 5)).unwrap();
                    set_times(&root.join("usr/bin"), (1000, 0), (1_000_000, 0)).unwrap();
                    set_times(&root.join("future"), (1000, 0), (epoch + 50, 0)).unwrap();
                }
                write_tree(&built, &[("usr/bin/hello", "hi"), ("opt/new/file", "n")]);
                if ran_here {
                    // A mount stub came and went: only /etc's time says so.
                    fs::write(built.join("etc/resolv.conf"), "").unwrap();
                    fs::remove_file(built.join("etc/resolv.conf")).unwrap();
                    assert!(mtime(&built.join("etc")) > epoch);
                }
                fs::create_dir(&out).unwrap();
                normalize_into(&built, &out, epoch, Some(&base)).unwrap();
                assert_eq!(mtime_ns(&out.join("etc")), (1_000_000, 5));
                assert_eq!(mtime_ns(&out.join("usr/bin")), (1_000_000, 0));
                assert_eq!(mtime_ns(&out.join("future")), (epoch, 0));
                assert_eq!(mtime_ns(&out.join("opt/new")), (epoch, 0));
                let prefix = out.display().to_string();
                snapshot(&out)
                    .into_iter()
                    .map(|l| l.replacen(&prefix, "", 1))
                    .collect()
            })
            .collect();
        assert_eq!(trees[0], trees[1]);
    }
}
