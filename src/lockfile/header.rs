//! The header the lock target writes at the top of a lockfile (the base image
//! and the package list it was made for, and the signed release files apt
//! took the digests from), and the check that a recipe still asks for what
//! the lockfile was made for. Pure; no I/O.
//!
//! A release line records one suite's `InRelease` file as apt verified it
//! when it updated, without the mirror's host:
//!
//! ```text
//! # inrelease: debian/dists/bookworm sha256:<hex> | Origin: Debian | Suite: oldstable | Codename: bookworm | Date: Sat, 08 Nov 2025 10:33:22 UTC
//! ```
//!
//! Builds ignore these lines (they are comments to every reader of the
//! format); an auditor fetches the same file from a snapshot archive by its
//! date, checks its signature and sha256, and follows its Packages digests to
//! each package's sha256.

use std::fmt;

/// What a lockfile was made from, as its header records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub base: String,
    /// Sorted package names.
    pub packages: Vec<String>,
    /// The signed release files of the suites apt read, sorted by path
    /// (none in lockfiles made before they were recorded).
    pub releases: Vec<Release>,
}

/// One suite's `InRelease` file, as apt verified it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    /// Its path on the mirror without the host: `debian/dists/bookworm`.
    pub path: String,
    /// The sha256 (hex) of the file's bytes, signature included.
    pub sha256: String,
    /// Its `Origin:`, `Suite:`, `Codename:` and `Date:` fields, those it has.
    pub fields: Vec<(String, String)>,
}

const BASE_LINE: &str = "# base: ";
const PACKAGES_LINE: &str = "# packages: ";
const RELEASE_LINE: &str = "# inrelease: ";
/// The fields of a release file a release line keeps, in this order.
pub const RELEASE_FIELDS: [&str; 4] = ["Origin", "Suite", "Codename", "Date"];

impl Release {
    /// A release line's record of the file apt keeps as `list_name` in
    /// /var/lib/apt/lists (`<host>_<path>_dists_<suite>_InRelease`, `/` as
    /// `_`), with `bytes` its content; `None` if the name is not one.
    pub fn of_list_file(list_name: &str, bytes: &[u8]) -> Option<Release> {
        let stem = list_name.strip_suffix("_InRelease")?;
        // The host is the first component; the rest is the path.
        let (_host, path) = stem.split_once('_')?;
        if !path.contains("dists_") {
            return None;
        }
        let text = String::from_utf8_lossy(bytes);
        let fields = RELEASE_FIELDS
            .iter()
            .filter_map(|k| release_field(&text, k).map(|v| (k.to_string(), v)))
            .collect();
        Some(Release {
            path: unquote(&path.replace('_', "/")),
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
            fields,
        })
    }

    fn parse_line(rest: &str) -> Option<Release> {
        let mut parts = rest.split(" | ");
        let (path, sum) = parts.next()?.split_once(" sha256:")?;
        let fields = parts
            .map(|p| {
                p.split_once(": ")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Release {
            path: path.to_string(),
            sha256: sum.to_string(),
            fields,
        })
    }
}

/// apt's list file names quote `_` and other characters as `%xx`.
fn unquote(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A top-level field of a release file (`Key: value` at the start of a
/// line, before the signature).
fn release_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .take_while(|l| !l.starts_with("-----BEGIN PGP SIGNATURE"))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .map(|v| v.trim().to_string())
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{RELEASE_LINE}{} sha256:{}", self.path, self.sha256)?;
        for (k, v) in &self.fields {
            write!(f, " | {k}: {v}")?;
        }
        Ok(())
    }
}

impl Header {
    /// The header for `base` and `packages`, in any order (it keeps them sorted,
    /// so the same request always writes the same line).
    pub fn new(base: &str, packages: &[String]) -> Header {
        let mut packages = packages.to_vec();
        packages.sort();
        Header {
            base: base.to_string(),
            packages,
            releases: Vec::new(),
        }
    }

    /// With these release files recorded, sorted by path.
    pub fn with_releases(mut self, mut releases: Vec<Release>) -> Header {
        releases.sort();
        self.releases = releases;
        self
    }

    /// Reads the header of a lockfile made by the lock target, if it has one.
    pub fn parse(text: &str) -> Option<Header> {
        let mut base = None;
        let mut packages = None;
        let mut releases = Vec::new();
        for line in text
            .lines()
            .take_while(|l| l.starts_with('#') || l.trim().is_empty())
        {
            if let Some(b) = line.strip_prefix(BASE_LINE) {
                base = Some(b.trim().to_string());
            } else if let Some(p) = line.strip_prefix(PACKAGES_LINE) {
                packages = Some(p.split_whitespace().map(str::to_string).collect());
            } else if let Some(r) = line.strip_prefix(RELEASE_LINE) {
                releases.extend(Release::parse_line(r));
            }
        }
        Some(Header {
            base: base?,
            packages: packages?,
            releases,
        })
    }
}

/// The `# base:` and `# packages:` lines (the release lines follow the
/// index line; see `render`).
impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{BASE_LINE}{}", self.base)?;
        writeln!(f, "{PACKAGES_LINE}{}", self.packages.join(" "))
    }
}

/// Why a build must not use this lockfile with this recipe, if it must not.
pub fn staleness(lock_text: &str, base: &str, install: &[String]) -> Option<String> {
    let Some(h) = Header::parse(lock_text) else {
        return Some(
            "it was not made by the lock target (it has no \"# base:\" and \"# packages:\" header)"
                .into(),
        );
    };
    let want = Header::new(base, install);
    if h.base != want.base {
        return Some(format!(
            "it was made for base {}, and the recipe's base is {base}",
            h.base
        ));
    }
    if h.packages != want.packages {
        return Some(format!(
            "it was made for packages [{}], and the recipe asks for [{}]",
            h.packages.join(" "),
            want.packages.join(" ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::render;

    #[test]
    fn stale_lockfiles_are_told_apart() {
        let h = Header::new("b@sha256:1", &["hello".into(), "gcc".into()]);
        assert_eq!(h.packages, ["gcc", "hello"]);
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

    const IN_RELEASE: &str = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nLabel: Debian\nSuite: oldstable\nVersion: 12.12\nCodename: bookworm\nDate: Sat, 08 Nov 2025 10:33:22 UTC\nSHA256:\n 0123 45 main/binary-amd64/Packages\n-----BEGIN PGP SIGNATURE-----\n\nOrigin: forged\n-----END PGP SIGNATURE-----\n";

    #[test]
    fn a_release_line_records_the_signed_file_without_the_host() {
        let r = Release::of_list_file(
            "mirror.example.org_debian_dists_bookworm_InRelease",
            IN_RELEASE.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.path, "debian/dists/bookworm");
        let line = r.to_string();
        assert_eq!(
            line,
            format!(
                "# inrelease: debian/dists/bookworm sha256:{} | Origin: Debian | Suite: oldstable | Codename: bookworm | Date: Sat, 08 Nov 2025 10:33:22 UTC",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    IN_RELEASE.as_bytes()
                ))
            )
        );
        assert!(!line.contains("mirror.example.org"));
        // apt quotes "_" in a path as %5f.
        let quoted = Release::of_list_file("h_deb%5fports_dists_sid_InRelease", b"").unwrap();
        assert_eq!(quoted.path, "deb_ports/dists/sid");
        // Packages files and other lists are not release files.
        assert_eq!(
            Release::of_list_file(
                "mirror.example.org_debian_dists_bookworm_main_binary-amd64_Packages",
                b""
            ),
            None
        );
        // Read back from a lockfile, with the old lines as they were.
        let h = Header::new("b@sha256:1", &["hello".into()]).with_releases(vec![r.clone()]);
        let text = render(&h, &[]);
        assert_eq!(Header::parse(&text), Some(h));
        assert_eq!(staleness(&text, "b@sha256:1", &["hello".into()]), None);
        assert!(text.starts_with("# Made by repro-frontend's lock target; re-run it rather than edit this file.\n# base: b@sha256:1\n# packages: hello\n# index: "), "{text}");
    }

    #[test]
    fn only_leading_comments_are_a_header() {
        assert_eq!(
            Header::parse("aaaa  x.deb\n# base: b\n# packages: p\n"),
            None
        );
        assert_eq!(
            Header::parse("# base: b\n\n# packages: p q\n"),
            Some(Header {
                base: "b".into(),
                packages: vec!["p".into(), "q".into()],
                releases: Vec::new(),
            })
        );
    }
}
