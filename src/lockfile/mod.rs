//! The SHA256SUMS lockfile, in the format repro-get reads and writes.
//!
//! A line is `<64 hex><space><space or *><name>`; `#` starts a comment line and
//! blank lines are skipped. Names are distro paths (`pool/main/h/hello/...deb`).
//! Lines for `.sig` files and `/ipfs/<cid>` lines are kept as auxiliary: they
//! are never installed. Every name is checked before anything is fetched, so a
//! name that a shell or a URL could misread never reaches the engine.

use std::collections::HashMap;
use std::fmt;

use crate::recipe::template::basename;

/// One blob the lockfile pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Lowercase hex sha256.
    pub sha256: String,
    pub name: String,
    /// The lockfile it came from (empty if unnamed) and its 1-based line.
    pub file: String,
    pub line: usize,
}

impl Entry {
    pub fn basename(&self) -> &str {
        basename(&self.name)
    }

    /// `sha256:<hex>`, the form BuildKit's `http.checksum` takes.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.sha256)
    }

    /// A short form of the digest for progress names.
    pub fn short_digest(&self) -> &str {
        &self.sha256[..12]
    }
}

/// What a line of the lockfile is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A package to install.
    Package,
    /// A detached signature (`*.sig`).
    Signature,
    /// An `/ipfs/<cid>` alias of a blob.
    Ipfs,
}

/// A parsed lockfile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lockfile {
    pub entries: Vec<Entry>,
}

/// A lockfile error, positioned at its line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

pub fn role(name: &str) -> Role {
    if name.starts_with("/ipfs/") {
        Role::Ipfs
    } else if name.ends_with(".sig") {
        Role::Signature
    } else {
        Role::Package
    }
}

impl Lockfile {
    /// The entries to install, in lockfile order.
    pub fn packages(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| role(&e.name) == Role::Package)
    }
}

/// Parses a lockfile's text.
pub fn parse(text: &str) -> Result<Lockfile, LockError> {
    let mut entries: Vec<Entry> = Vec::new();
    // Name -> index, and package file name -> index: lockfiles run to
    // thousands of lines, so no linear search per line.
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_file: HashMap<String, usize> = HashMap::new();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let err = |col: usize, message: String| LockError {
            line: line_no,
            col,
            message,
        };
        let hex_len = line.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
        if hex_len != 64 {
            return Err(err(
                1,
                format!(
                    "expected a 64-digit hex sha256 at the start of the line, found {:?}",
                    line.split_whitespace().next().unwrap_or("")
                ),
            ));
        }
        let rest = &line[64..];
        let name = match rest.as_bytes() {
            [b' ', b' ' | b'*', ..] => &rest[2..],
            _ => {
                return Err(err(
                    65,
                    "expected two spaces (or a space and '*') between the sha256 and the name"
                        .into(),
                ));
            }
        };
        check_name(name).map_err(|m| err(67, m))?;
        let sha256 = line[..64].to_ascii_lowercase();
        if let Some(prev) = by_name.get(name).map(|&i| &entries[i]) {
            if prev.sha256 != sha256 {
                return Err(err(
                    67,
                    format!(
                        "\"{name}\" is listed twice with different sha256 (first at line {})",
                        prev.line
                    ),
                ));
            }
            continue;
        }
        let same_file = by_file.get(basename(name)).map(|&i| &entries[i]);
        if let Some(prev) = same_file.filter(|_| role(name) == Role::Package) {
            return Err(err(
                67,
                format!(
                    "\"{name}\" has the same file name as \"{}\" (line {}); packages are installed side by side, so file names must differ",
                    prev.name, prev.line
                ),
            ));
        }
        by_name.insert(name.to_string(), entries.len());
        if role(name) == Role::Package {
            by_file.insert(basename(name).to_string(), entries.len());
        }
        entries.push(Entry {
            sha256,
            name: name.to_string(),
            file: String::new(),
            line: line_no,
        });
    }
    Ok(Lockfile { entries })
}

/// Parses a lockfile and records its name in every entry; errors are
/// `file:line:col: message`.
pub fn parse_named(file: &str, text: &str) -> Result<Lockfile, String> {
    let mut lock = parse(text).map_err(|e| format!("{file}:{e}"))?;
    for e in &mut lock.entries {
        e.file = file.to_string();
    }
    Ok(lock)
}

impl Lockfile {
    /// Merges several lockfiles, as repro-get reads several SHA256SUMS: the
    /// same name twice must have the same digest.
    pub fn merge(locks: Vec<Lockfile>) -> Result<Lockfile, String> {
        let mut out = Lockfile::default();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut by_file: HashMap<String, usize> = HashMap::new();
        for lock in locks {
            for e in lock.entries {
                if let Some(prev) = by_name.get(&e.name).map(|&i| &out.entries[i]) {
                    if prev.sha256 != e.sha256 {
                        return Err(format!(
                            "{}:{}:67: \"{}\" is listed with a different sha256 in {}:{}",
                            e.file, e.line, e.name, prev.file, prev.line
                        ));
                    }
                    continue;
                }
                if role(&e.name) == Role::Package
                    && let Some(prev) = by_file.get(e.basename()).map(|&i| &out.entries[i])
                {
                    return Err(format!(
                        "{}:{}:67: \"{}\" has the same file name as \"{}\" ({}:{}); packages are installed side by side, so file names must differ",
                        e.file, e.line, e.name, prev.name, prev.file, prev.line
                    ));
                }
                by_name.insert(e.name.clone(), out.entries.len());
                if role(&e.name) == Role::Package {
                    by_file.insert(e.basename().to_string(), out.entries.len());
                }
                out.entries.push(e);
            }
        }
        Ok(out)
    }
}

/// Checks that a name is a clean relative path made of safe characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    let path = match name.strip_prefix("/ipfs/") {
        Some(cid) if !cid.contains('/') && !cid.is_empty() => cid,
        _ if name.starts_with('/') => {
            return Err(format!(
                "name \"{name}\" is absolute; names must be relative paths"
            ));
        }
        _ => name,
    };
    if let Some(bad) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._+~:@=,-/".contains(*c)))
    {
        return Err(format!(
            "name {name:?} contains {bad:?}, which a shell or a URL could misread"
        ));
    }
    for component in path.split('/') {
        match component {
            "" => {
                return Err(format!(
                    "name \"{name}\" is not clean (empty path component)"
                ));
            }
            "." | ".." => {
                return Err(format!(
                    "name \"{name}\" is not clean (\"{component}\" path component)"
                ));
            }
            c if c.starts_with('-') => {
                return Err(format!(
                    "name \"{name}\" has a component starting with '-', which a tool could read as an option"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "35b1508eeee9c1dfba798c4c04304ef0f266990f936a51f165571edf53325cbc";
    const H2: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn reads_every_line_form() {
        let text = format!(
            "# made by hand\n\n{H1}  pool/main/h/hello/hello_2.10-2_amd64.deb\n{H2} *pool/main/x/x.deb\r\n{H2}  pool/main/x/x.deb.sig\n{H1}  /ipfs/QmQPeNsJPyVWPFDVHb77w8G42Fvo15z4bG2X8D2GhfbSXc\n"
        );
        let lock = parse(&text).unwrap();
        assert_eq!(lock.entries.len(), 4);
        assert_eq!(lock.entries[0].line, 3);
        assert_eq!(lock.entries[1].name, "pool/main/x/x.deb");
        let pkgs: Vec<_> = lock.packages().map(|e| e.name.as_str()).collect();
        assert_eq!(
            pkgs,
            [
                "pool/main/h/hello/hello_2.10-2_amd64.deb",
                "pool/main/x/x.deb"
            ]
        );
        assert_eq!(role(&lock.entries[2].name), Role::Signature);
        assert_eq!(role(&lock.entries[3].name), Role::Ipfs);
    }

    #[test]
    fn uppercase_hex_is_normalised() {
        let lock = parse(&format!("{}  a.deb\n", H1.to_uppercase())).unwrap();
        assert_eq!(lock.entries[0].sha256, H1);
        assert_eq!(lock.entries[0].digest(), format!("sha256:{H1}"));
    }

    #[test]
    fn rejects_unsafe_names_with_their_line() {
        for bad in [
            "/etc/passwd",
            "pool/../x.deb",
            "./x.deb",
            "a//b.deb",
            "a/b.deb;rm",
            "a b.deb",
            "$(x).deb",
            "a/-x.deb",
            "x%2f.deb",
            "a/",
        ] {
            let err = parse(&format!("# c\n{H1}  {bad}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{bad}");
            assert_eq!(err.col, 67, "{bad}");
        }
    }

    #[test]
    fn rejects_bad_hashes_and_separators() {
        assert_eq!(parse("abc  x.deb\n").unwrap_err().col, 1);
        assert_eq!(parse(&format!("{H1} x.deb\n")).unwrap_err().col, 65);
        assert_eq!(parse(&format!("{H1}\tx.deb\n")).unwrap_err().col, 65);
    }

    #[test]
    fn several_lockfiles_merge_and_must_agree() {
        let a = parse_named("SHA256SUMS-a", &format!("{H1}  a.deb\n{H2}  b.deb\n")).unwrap();
        let b = parse_named("SHA256SUMS-b", &format!("{H2}  b.deb\n{H1}  c/c.deb\n")).unwrap();
        let m = Lockfile::merge(vec![a.clone(), b]).unwrap();
        let names: Vec<_> = m
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.file.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("a.deb", "SHA256SUMS-a"),
                ("b.deb", "SHA256SUMS-a"),
                ("c/c.deb", "SHA256SUMS-b")
            ]
        );
        let c = parse_named("SHA256SUMS-c", &format!("# x\n{H1}  b.deb\n")).unwrap();
        let e = Lockfile::merge(vec![a, c]).unwrap_err();
        assert_eq!(
            e,
            "SHA256SUMS-c:2:67: \"b.deb\" is listed with a different sha256 in SHA256SUMS-a:2"
        );
    }

    #[test]
    fn same_name_twice_must_agree() {
        assert_eq!(
            parse(&format!("{H1}  a.deb\n{H1}  a.deb\n"))
                .unwrap()
                .entries
                .len(),
            1
        );
        let err = parse(&format!("{H1}  a.deb\n{H2}  a.deb\n")).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("first at line 1"));
        let err = parse(&format!("{H1}  a/x.deb\n{H2}  b/x.deb\n")).unwrap_err();
        assert!(err.message.contains("same file name"));
    }
}
