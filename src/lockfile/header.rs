//! The header the lock target writes at the top of a lockfile (the base image
//! and the package list it was made for), and the check that a recipe still
//! asks for what the lockfile was made for. Pure; no I/O.

use std::fmt;

/// What a lockfile was made from, as its header records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub base: String,
    /// Sorted package names.
    pub packages: Vec<String>,
}

const BASE_LINE: &str = "# base: ";
const PACKAGES_LINE: &str = "# packages: ";

impl Header {
    /// The header for `base` and `packages`, in any order (it keeps them sorted,
    /// so the same request always writes the same line).
    pub fn new(base: &str, packages: &[String]) -> Header {
        let mut packages = packages.to_vec();
        packages.sort();
        Header {
            base: base.to_string(),
            packages,
        }
    }

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

/// The `# base:` and `# packages:` lines.
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
                packages: vec!["p".into(), "q".into()]
            })
        );
    }
}
