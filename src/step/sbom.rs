//! The sbom step (runs inside the build, in the frontend's own image): reads
//! the facts file and the built rootfs's dpkg database and os-release, and
//! writes the SPDX document. Does I/O.

use std::path::Path;

use super::inroot;
use crate::sbom::{self, Facts, Rootfs};

/// The longest dpkg status file read (a large system's is a few MiB).
const STATUS_CAP: u64 = 256 << 20;

/// A failure of the sbom step, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Facts { path: String, message: String },
    #[error(transparent)]
    Document(#[from] sbom::SbomError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Reads what the document needs under `rootfs`: dpkg's database (if there
/// is one) and os-release (`etc/os-release`, else `usr/lib/os-release`).
/// Links resolve inside `rootfs`, as the image's own processes see them,
/// never to the step's own files; only regular files are read, each up to a
/// bound.
pub fn read_rootfs(rootfs: &Path) -> Result<Rootfs, StepError> {
    let dpkg = match optional(rootfs, "var/lib/dpkg/status", STATUS_CAP)? {
        Some(text) => Some(sbom::dpkg::parse_status(&text)?),
        None => None,
    };
    let mut os = None;
    for p in ["etc/os-release", "usr/lib/os-release"] {
        if let Some(text) = optional(rootfs, p, OS_RELEASE_CAP)? {
            os = Some(text);
            break;
        }
    }
    let (os_id, os_version) = os.as_deref().map(sbom::os_ids).unwrap_or_default();
    Ok(Rootfs {
        dpkg,
        os_id,
        os_version,
        secrets: Vec::new(),
    })
}

/// The longest os-release read.
const OS_RELEASE_CAP: u64 = 1 << 20;

/// The text of `/rel` in `rootfs`, None when nothing is there (a missing
/// file, or a link that leads nowhere inside the rootfs).
fn optional(rootfs: &Path, rel: &str, cap: u64) -> Result<Option<String>, StepError> {
    let shown = |resolved: &Path| match resolved.strip_prefix(rootfs) {
        Ok(inside) if inside != Path::new(rel) => {
            format!("/{rel} (resolved to /{} in the rootfs)", inside.display())
        }
        _ => format!("/{rel}"),
    };
    let failed = |path: String, e: std::io::Error, resolved: &Path| {
        // The step's mount point is noise to the user: the message alone.
        let text = e.to_string();
        let prefix = format!("{}: ", resolved.display());
        let message = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
        StepError::Read {
            path,
            source: std::io::Error::new(e.kind(), message),
        }
    };
    let resolved = match inroot::resolve(rootfs, Path::new(rel)) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => return Err(failed(format!("/{rel}"), e, rootfs)),
    };
    match inroot::read_regular(&resolved, cap) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(failed(shown(&resolved), e, &resolved)),
    }
}

/// The longest record of removed keys read.
const RECORD_CAP: u64 = 16 << 20;

/// Writes the document for `rootfs` and the facts file to `out`; returns
/// the number of packages from dpkg and from the lockfile. With `secrets`,
/// the normalize step's record of the private keys and identities the build
/// made is read from the rootfs, where there is one.
pub fn run(
    rootfs: &Path,
    facts: &Path,
    secrets: bool,
    out: &Path,
) -> Result<(usize, usize), StepError> {
    let text = std::fs::read(facts).map_err(|source| StepError::Read {
        path: facts.display().to_string(),
        source,
    })?;
    let facts_value: Facts = serde_json::from_slice(&text).map_err(|e| StepError::Facts {
        path: facts.display().to_string(),
        message: e.to_string(),
    })?;
    let mut fs = read_rootfs(rootfs)?;
    let record = Path::new(crate::step::secrets::RECORD_PATH.trim_start_matches('/'));
    let found = match secrets {
        true => inroot::unlinked(rootfs, record).map_err(|source| StepError::Read {
            path: rootfs.join(record).display().to_string(),
            source,
        })?,
        false => None,
    };
    if let Some((path, _)) = found {
        let path = path.as_path();
        let text = inroot::read_regular(path, RECORD_CAP).map_err(|source| StepError::Read {
            path: path.display().to_string(),
            source,
        })?;
        fs.secrets = serde_json::from_slice(&text).map_err(|e| StepError::Facts {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let doc = sbom::render(&facts_value, &fs)?;
    std::fs::write(out, doc).map_err(|source| StepError::Write {
        path: out.display().to_string(),
        source,
    })?;
    Ok((fs.dpkg.map_or(0, |d| d.len()), facts_value.blobs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rootfs_without_dpkg_has_no_database_and_an_os_release_from_usr_lib() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::write(
            dir.path().join("usr/lib/os-release"),
            "ID=fedora\nVERSION_ID=40\n",
        )
        .unwrap();
        let fs = read_rootfs(dir.path()).unwrap();
        assert_eq!(fs.dpkg, None);
        assert_eq!(
            (fs.os_id.as_str(), fs.os_version.as_str()),
            ("fedora", "40")
        );
    }

    #[test]
    fn a_bad_facts_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let facts = dir.path().join("facts.json");
        std::fs::write(&facts, "{}").unwrap();
        let e = run(dir.path(), &facts, false, &dir.path().join("out.json")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: missing field", facts.display())),
            "{e}"
        );
    }

    /// A rootfs with usr/lib/os-release saying fedora 40, and a directory
    /// outside it with an os-release of its own.
    fn rootfs_beside_another() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(
            root.join("usr/lib/os-release"),
            "ID=fedora\nVERSION_ID=40\n",
        )
        .unwrap();
        std::fs::write(outside.join("os-release"), "ID=outside\nVERSION_ID=1\n").unwrap();
        (tmp, root, outside)
    }

    fn os(root: &Path) -> (String, String) {
        let fs = read_rootfs(root).unwrap();
        (fs.os_id, fs.os_version)
    }

    // The sbom step read through links to the container's own files, and
    // `etc/os-release -> /dev/zero` read without end (issue 24).
    #[test]
    fn links_are_resolved_inside_the_rootfs() {
        let want = ("fedora".to_string(), "40".to_string());
        for target in [
            "/usr/lib/os-release",
            "../usr/lib/os-release",
            "../../../usr/lib/os-release",
        ] {
            let (_tmp, root, _) = rootfs_beside_another();
            std::os::unix::fs::symlink(target, root.join("etc/os-release")).unwrap();
            assert_eq!(os(&root), want, "{target}");
        }
        // Out of the rootfs there is nothing: the second path is read.
        let (_tmp, root, outside) = rootfs_beside_another();
        std::os::unix::fs::symlink(outside.join("os-release"), root.join("etc/os-release"))
            .unwrap();
        assert_eq!(os(&root), want);
        let (_tmp, root, _) = rootfs_beside_another();
        std::os::unix::fs::symlink("/dev/zero", root.join("etc/os-release")).unwrap();
        assert_eq!(os(&root), want);
    }

    #[test]
    fn a_device_fifo_or_oversized_file_is_an_error_naming_it() {
        let (_tmp, root, _) = rootfs_beside_another();
        let fifo = root.join("etc/os-release");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; makes a fifo.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_rootfs(&root).unwrap_err().to_string();
        assert!(e.contains("etc/os-release: not a regular file"), "{e}");

        let (_tmp, root, _) = rootfs_beside_another();
        std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
        let status = std::fs::File::create(root.join("var/lib/dpkg/status")).unwrap();
        status.set_len(STATUS_CAP + 1).unwrap();
        let e = read_rootfs(&root).unwrap_err().to_string();
        assert!(e.contains("var/lib/dpkg/status: longer than"), "{e}");

        // A link to a device inside the rootfs names where it led.
        let (_tmp, root, _) = rootfs_beside_another();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::os::unix::fs::symlink("/dev/fifo", root.join("etc/os-release")).unwrap();
        let fifo = root.join("dev/fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_rootfs(&root).unwrap_err().to_string();
        assert!(
            e.contains("/etc/os-release (resolved to /dev/fifo in the rootfs)"),
            "{e}"
        );
    }
}
