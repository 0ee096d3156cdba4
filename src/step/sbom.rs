//! The sbom step (runs inside the build, in the frontend's own image): reads
//! the facts file and the built rootfs's dpkg database and os-release, and
//! writes the SPDX document. Does I/O.

use std::path::Path;

use crate::sbom::{self, Facts, Rootfs};

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
pub fn read_rootfs(rootfs: &Path) -> Result<Rootfs, StepError> {
    let status = rootfs.join("var/lib/dpkg/status");
    let dpkg = match optional(&status)? {
        Some(text) => Some(sbom::dpkg::parse_status(&text)?),
        None => None,
    };
    let mut os = None;
    // An absolute link would lead out of the mounted rootfs: then the
    // second path is read.
    for p in ["etc/os-release", "usr/lib/os-release"] {
        if let Some(text) = optional(&rootfs.join(p))? {
            os = Some(text);
            break;
        }
    }
    let (os_id, os_version) = os.as_deref().map(sbom::os_ids).unwrap_or_default();
    Ok(Rootfs {
        dpkg,
        os_id,
        os_version,
    })
}

fn optional(path: &Path) -> Result<Option<String>, StepError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StepError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes the document for `rootfs` and the facts file to `out`; returns
/// the number of packages from dpkg and from the lockfile.
pub fn run(rootfs: &Path, facts: &Path, out: &Path) -> Result<(usize, usize), StepError> {
    let text = std::fs::read(facts).map_err(|source| StepError::Read {
        path: facts.display().to_string(),
        source,
    })?;
    let facts_value: Facts = serde_json::from_slice(&text).map_err(|e| StepError::Facts {
        path: facts.display().to_string(),
        message: e.to_string(),
    })?;
    let fs = read_rootfs(rootfs)?;
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
        let e = run(dir.path(), &facts, &dir.path().join("out.json")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: missing field", facts.display())),
            "{e}"
        );
    }
}
