//! The `lock` target's step: resolve a recipe's `packages.install` in the
//! pinned base image and write the SHA256SUMS file the build reads.
//!
//! The resolving runs inside the build, in the base image, with the distro's
//! own tool: apt works out the dependency closure minus what the base already
//! has, and prints each package's URL with the SHA256 and size its signed
//! Packages index carries, so no package file is downloaded to hash it.
//! `lockfile::apt` turns that output into pins and `lockfile::render` into the
//! file, sorted, with a header that names the base image and the package list,
//! which later builds check for staleness. This module only runs apt and
//! writes the file: it does I/O because it runs inside the build.

use crate::lockfile::{self, Header, apt::from_apt_print_uris};

/// Runs inside the base image (the `lock` subcommand): reads apt's sources,
/// refreshes the index, asks apt what it would download for `packages`, and
/// writes the lockfile to `out`. Only apt (Debian, Ubuntu) can do this so far.
pub fn run_apt(base: &str, packages: &[String], out: &std::path::Path) -> Result<usize, String> {
    use std::process::Command;

    let mut roots = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        roots.extend(crate::distro::sources::apt_one_line(&t));
    }
    let mut names: Vec<std::path::PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.sort();
    for p in names {
        let Ok(t) = std::fs::read_to_string(&p) else {
            continue;
        };
        match p.extension().and_then(|e| e.to_str()) {
            Some("list") => roots.extend(crate::distro::sources::apt_one_line(&t)),
            Some("sources") => roots.extend(crate::distro::sources::apt_deb822(&t)),
            _ => {}
        }
    }
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
    let header = Header::new(base, packages);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, lockfile::render(&header, &pins))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(pins.len())
}
