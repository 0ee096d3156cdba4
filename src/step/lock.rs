//! The `lock` target's step: resolve a recipe's `packages.install` in the
//! pinned base image and write the SHA256SUMS file the build reads.
//!
//! The resolving runs inside the build, in the base image, with the distro's
//! own tool: apt works out the dependency closure minus what the base already
//! has, and prints each package's URL with the SHA256 and size its signed
//! Packages index carries, so no package file is downloaded to hash it.
//! `lockfile::apt` turns that output into pins and `lockfile::render` into the
//! file, sorted, with a header that names the base image and the package list,
//! which later builds check for staleness, and each suite's signed InRelease
//! file as apt verified it (where the digests came from). This module only runs apt and
//! writes the file: it does I/O because it runs inside the build.

use std::path::Path;

use crate::lockfile::{self, Header, Release, apt::from_apt_print_uris};

/// Where apt keeps the index files it fetched and verified.
const APT_LISTS: &str = "/var/lib/apt/lists";

/// Runs inside the base image (the `lock` subcommand): reads apt's sources,
/// refreshes the index, asks apt what it would download for `packages`, and
/// writes the lockfile to `out`. Only apt (Debian, Ubuntu) can do this so far.
pub fn run_apt(base: &str, packages: &[String], out: &Path) -> Result<usize, LockStepError> {
    apt_lock(base, packages, out).map_err(LockStepError)
}

/// Why the lock step failed, as it prints it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LockStepError(pub String);

fn apt_lock(base: &str, packages: &[String], out: &Path) -> Result<usize, String> {
    use std::process::Command;

    let files = source_files(Path::new("/"))?;
    let roots = crate::distro::sources::apt_roots(&files, None);
    if roots.is_empty() {
        return Err(
            "the base image has no apt sources (is it Debian or Ubuntu? only apt can lock so far)"
                .into(),
        );
    }
    let status = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .map_err(|e| format!("cannot run apt-get (the lock target needs a Debian or Ubuntu base; not supported for other distros yet): {e}"))?;
    if !status.success() {
        return Err(format!("apt-get update failed ({status})"));
    }
    let output = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "--print-uris",
            "-o",
            "Acquire::ForceHash=SHA256",
        ])
        .args(packages)
        .output()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "apt-get could not resolve {}: {}",
            packages.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let pins = from_apt_print_uris(&String::from_utf8_lossy(&output.stdout), &roots)
        .map_err(|e| e.to_string())?;
    let header = Header::new(base, packages).with_releases(releases(Path::new(APT_LISTS))?);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, lockfile::render(&header, &pins))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(pins.len())
}
/// The InRelease files apt keeps in `lists` (it verified each signature
/// when it fetched them), as release lines.
pub fn apt_releases(lists: &Path) -> Result<Vec<Release>, LockStepError> {
    releases(lists).map_err(LockStepError)
}

fn releases(lists: &Path) -> Result<Vec<Release>, String> {
    let read_err = |e: std::io::Error| format!("cannot read {}: {e}", lists.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(lists).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with("_InRelease") {
            continue;
        }
        let bytes = std::fs::read(entry.path())
            .map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
        out.extend(Release::of_list_file(&name, &bytes));
    }
    Ok(out)
}

/// apt's source files under `root`, as (name, text) in apt's reading order.
pub fn apt_source_files(root: &Path) -> Result<Vec<(String, String)>, LockStepError> {
    source_files(root).map_err(LockStepError)
}

fn source_files(root: &Path) -> Result<Vec<(String, String)>, String> {
    let etc = root.join("etc/apt");
    let mut files = Vec::new();
    let list = etc.join("sources.list");
    if list.is_file() {
        let text = std::fs::read_to_string(&list)
            .map_err(|e| format!("cannot read {}: {e}", list.display()))?;
        files.push(("sources.list".to_string(), text));
    }
    let dir = etc.join("sources.list.d");
    let mut names = Vec::new();
    if dir.is_dir() {
        for entry in
            std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            if let Some(name) = entry.file_name().to_str()
                && (name.ends_with(".list") || name.ends_with(".sources"))
                && entry.path().is_file()
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        files.push((format!("sources.list.d/{name}"), text));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_inrelease_files_of_apts_lists_are_recorded() {
        let lists = tempfile::tempdir().unwrap();
        let put = |name: &str, text: &str| std::fs::write(lists.path().join(name), text).unwrap();
        put(
            "mirror.example.org_debian_dists_bookworm-updates_InRelease",
            "Origin: Debian\nSuite: oldstable-updates\n",
        );
        put(
            "mirror.example.org_debian_dists_bookworm_InRelease",
            "Origin: Debian\n",
        );
        put(
            "mirror.example.org_debian_dists_bookworm_main_binary-amd64_Packages",
            "Package: x\n",
        );
        put("lock", "");
        std::fs::create_dir(lists.path().join("partial")).unwrap();
        let mut found = apt_releases(lists.path()).unwrap();
        found.sort();
        let paths: Vec<&str> = found.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["debian/dists/bookworm", "debian/dists/bookworm-updates"]
        );
        assert_eq!(
            found[1].fields[1],
            ("Suite".to_string(), "oldstable-updates".to_string())
        );
    }
}
