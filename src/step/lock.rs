//! The `lock` target: resolve a recipe's `packages.install` in the pinned
//! base image and write the SHA256SUMS file the build reads.
//!
//! The resolving runs inside the build, in the base image, with the distro's
//! own tool: apt works out the dependency closure minus what the base already
//! has, and prints each package's URL with the SHA256 its signed Packages
//! index carries, so no package file is downloaded to hash it. This module
//! turns that output into a lockfile, sorted, with a header that names the
//! base image and the package list, which later builds check for staleness.

use std::fmt;

/// What a lockfile was made from, as its header records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub base: String,
    pub packages: Vec<String>,
}

const BASE_LINE: &str = "# base: ";
const PACKAGES_LINE: &str = "# packages: ";

impl Header {
    /// Reads the header of a lockfile made by the lock target, if it has one.
    pub fn parse(text: &str) -> Option<Header> {
        let mut base = None;
        let mut packages = None;
        for line in text
            .lines()
            .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        {
            if let Some(b) = line.strip_prefix(BASE_LINE) {
                base = Some(b.trim().to_string());
            } else if let Some(p) = line.strip_prefix(PACKAGES_LINE) {
                packages = Some(p.split_whitespace().map(str::to_string).collect());
            }
        }
        Some(Header {
            base: base?,
            packages: packages?,
        })
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{BASE_LINE}{}", self.base)?;
        writeln!(f, "{PACKAGES_LINE}{}", self.packages.join(" "))
    }
}

/// Decodes `%xx` escapes (apt prints URLs percent-encoded: `%2b` for `+`).
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("bad escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// Turns `apt-get install --print-uris -o Acquire::ForceHash=SHA256` output
/// into `(sha256, name)` pairs; a name is the URL's path below the archive
/// root it starts with (`roots`, from the base image's apt sources).
pub fn from_apt_print_uris(
    output: &str,
    roots: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix('\'') else {
            continue;
        };
        let Some((url, fields)) = rest.split_once('\'') else {
            continue;
        };
        let mut fields = fields.split_whitespace();
        let (_file, _size, hash) = (fields.next(), fields.next(), fields.next());
        let hash = hash.ok_or_else(|| format!("apt printed no hash for {url}"))?;
        let hex = hash
            .strip_prefix("SHA256:")
            .ok_or_else(|| format!("apt printed {hash} for {url}, not a SHA256 from the index"))?;
        if hex.len() != 64 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("bad SHA256 {hex:?} for {url}"));
        }
        let url = percent_decode(url)?;
        let name = roots
            .iter()
            .filter_map(|r| url.strip_prefix(&format!("{}/", r.trim_end_matches('/'))))
            .min_by_key(|n| n.len())
            .ok_or_else(|| {
                format!(
                    "{url} is under none of the base image's apt sources ({})",
                    roots.join(", ")
                )
            })?;
        crate::lockfile::check_name(name)?;
        out.push((hex.to_ascii_lowercase(), name.to_string()));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup();
    Ok(out)
}

/// The lockfile text: header, then `<sha256>  <name>` lines sorted by name.
pub fn render(header: &Header, entries: &[(String, String)]) -> String {
    let mut s = String::from(
        "# Made by repro-frontend's lock target; re-run it rather than edit this file.\n",
    );
    s.push_str(&header.to_string());
    s.push_str("# index: apt's Packages files (each SHA256 as the signed index lists it; nothing was downloaded to hash it)\n");
    for (sum, name) in entries {
        s.push_str(&format!("{sum}  {name}\n"));
    }
    s
}

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
    let entries = from_apt_print_uris(&String::from_utf8_lossy(&output.stdout), &roots)?;
    let mut sorted = packages.to_vec();
    sorted.sort();
    let header = Header {
        base: base.to_string(),
        packages: sorted,
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, render(&header, &entries))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(entries.len())
}

/// Why a build must not use this lockfile with this recipe, if it must not.
pub fn staleness(lock_text: &str, base: &str, install: &[String]) -> Option<String> {
    let Some(h) = Header::parse(lock_text) else {
        return Some(
            "it was not made by the lock target (it has no \"# base:\" and \"# packages:\" header)"
                .into(),
        );
    };
    let mut want = install.to_vec();
    want.sort();
    if h.base != base {
        return Some(format!(
            "it was made for base {}, and the recipe's base is {base}",
            h.base
        ));
    }
    if h.packages != want {
        return Some(format!(
            "it was made for packages [{}], and the recipe asks for [{}]",
            h.packages.join(" "),
            want.join(" ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Reading package lists...\n\
        'http://m.example/debian/pool/main/g/gcc-12/cpp-12_12.2.0-14%2bdeb12u1_amd64.deb' cpp-12_12.2.0-14+deb12u1_amd64.deb 10 SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
        'http://m.example/debian-security/pool/updates/main/l/linux/linux-libc-dev_6.1_amd64.deb' linux-libc-dev_6.1_amd64.deb 20 SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n\
        'http://m.example/debian/pool/main/b/binutils/binutils_2.40-2_amd64.deb' binutils_2.40-2_amd64.deb 30 SHA256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\n";

    fn roots() -> Vec<String> {
        vec![
            "http://m.example/debian".into(),
            "http://m.example/debian-security".into(),
        ]
    }

    #[test]
    fn apt_output_becomes_sorted_names_below_their_archive_root() {
        let e = from_apt_print_uris(OUT, &roots()).unwrap();
        let names: Vec<&str> = e.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "pool/main/b/binutils/binutils_2.40-2_amd64.deb",
                "pool/main/g/gcc-12/cpp-12_12.2.0-14+deb12u1_amd64.deb",
                "pool/updates/main/l/linux/linux-libc-dev_6.1_amd64.deb"
            ]
        );
        assert_eq!(e[2].0, "b".repeat(64));
    }

    #[test]
    fn other_hashes_and_unknown_roots_are_errors() {
        let md5 = "'http://m.example/debian/pool/a.deb' a.deb 1 MD5Sum:d04c2e9639dee67aa836d8232b1ca658\n";
        assert!(
            from_apt_print_uris(md5, &roots())
                .unwrap_err()
                .contains("not a SHA256")
        );
        let elsewhere = format!(
            "'http://other.example/pool/a.deb' a.deb 1 SHA256:{}\n",
            "a".repeat(64)
        );
        assert!(
            from_apt_print_uris(&elsewhere, &roots())
                .unwrap_err()
                .contains("none of the base image's apt sources")
        );
    }

    #[test]
    fn stale_lockfiles_are_told_apart() {
        let h = Header {
            base: "b@sha256:1".into(),
            packages: vec!["gcc".into(), "hello".into()],
        };
        let text = render(&h, &[]);
        assert_eq!(
            staleness(&text, "b@sha256:1", &["hello".into(), "gcc".into()]),
            None
        );
        assert!(
            staleness(&text, "b@sha256:2", &["gcc".into(), "hello".into()])
                .unwrap()
                .contains("made for base b@sha256:1")
        );
        assert!(
            staleness(&text, "b@sha256:1", &["gcc".into()])
                .unwrap()
                .contains("asks for [gcc]")
        );
        assert!(
            staleness("# hand made\n", "b", &[])
                .unwrap()
                .contains("not made by the lock target")
        );
    }

    #[test]
    fn rendered_files_are_stable_and_their_header_reads_back() {
        let h = Header {
            base: "reg/debian@sha256:00".into(),
            packages: vec!["gcc".into(), "libc6-dev".into()],
        };
        let e = from_apt_print_uris(OUT, &roots()).unwrap();
        let text = render(&h, &e);
        assert_eq!(text, render(&h, &e));
        assert_eq!(Header::parse(&text), Some(h));
        let lock = crate::lockfile::parse(&text).unwrap();
        assert_eq!(lock.entries.len(), 3);
        assert_eq!(Header::parse("aaaa  x.deb\n"), None);
    }
}
