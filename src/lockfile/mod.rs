//! The SHA256SUMS lockfile, in the format repro-get reads and writes, and
//! the one set of rules that parsing one file and merging several share.
//!
//! A line is `<64 hex><space><space or *><name>`; `#` starts a comment line and
//! blank lines are skipped. Names are distro paths (`pool/main/h/hello/...deb`).
//! Lines for `.sig` files and `/ipfs/<cid>` lines are kept as auxiliary: they
//! are never installed. An `/ipfs/<cid>` line gives the CID of the blob with
//! the same sha256 (`{{.CID}}` providers); its CID must be of a kind `cid`
//! accepts, and a raw CIDv1 must hash to that sha256. Every name is checked before anything is fetched, so a
//! name that a shell or a URL could misread never reaches the engine.
//!
//! Sizes ride in comments, so repro-get, `sha256sum --check` and every other
//! reader of the format ignore them: a line
//!
//! ```text
//! # size: <bytes> <name>
//! ```
//!
//! gives the length in bytes of the file `<name>` pins (decimal, no sign). The
//! lock target writes one per entry, after the entries and sorted like them,
//! with the size apt's index lists; the fetch step stops reading a download
//! there. Size lines are optional, a file may have them for some entries and
//! not others; a size line whose name no entry has, a second size for the
//! same name that differs, or a malformed one (anything after `# size:` that
//! is not `<digits> <name>`) is an error at its line. Any other comment is
//! ignored.
//!
//! `header` reads and checks the header the lock target writes; `apt` turns
//! apt's `--print-uris` answer into entries. Pure: no I/O.

pub mod apt;
pub mod cid;
pub mod header;

use std::collections::HashMap;

use cid::Cid;

use crate::digest::is_sha256_hex;
use crate::recipe::template::basename;

pub use header::{Header, Release, staleness};

/// One blob the lockfile pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Lowercase hex sha256.
    pub sha256: String,
    pub name: String,
    /// Its length in bytes, when a `# size:` line gives it.
    pub size: Option<u64>,
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

    /// An error about this entry, placed at its name on its lockfile line.
    pub fn error_at_name(&self, message: impl ToString) -> crate::located::Located {
        crate::located::Located::new(&self.file, (self.line, NAME_COL), message)
    }

    /// A short form of the digest for progress names.
    pub fn short_digest(&self) -> &str {
        &self.sha256[..12]
    }

    /// Where it was read: `file:line`, or `line N` when `from` is the same file.
    fn place(&self, from: &str) -> String {
        if self.file == from {
            format!("line {}", self.line)
        } else {
            format!("{}:{}", self.file, self.line)
        }
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

/// A parsed lockfile (or several merged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lockfile {
    pub entries: Vec<Entry>,
}

/// A lockfile error, positioned at its file (when named), line and column:
/// `SHA256SUMS-amd64:2:67: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{line}:{col}: {message}", file_prefix(.file))]
pub struct LockError {
    /// Empty when the text was parsed without a name.
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

fn file_prefix(file: &str) -> String {
    if file.is_empty() {
        String::new()
    } else {
        format!("{file}:")
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

/// The column of names on an entry line (after 64 hex digits and 2 separators).
const NAME_COL: usize = 67;

/// The comment that carries an entry's size.
const SIZE_PREFIX: &str = "# size:";

/// The rules every entry passes, whether it comes from the next line of one
/// file or from another file being merged: the same name twice must have the
/// same digest (and size, when both give one), and two packages must not
/// share a file name, since they are installed side by side. Name -> index
/// and package file name -> index: lockfiles run to thousands of lines, so
/// no linear search per entry.
#[derive(Default)]
struct Rules {
    out: Lockfile,
    by_name: HashMap<String, usize>,
    by_file: HashMap<String, usize>,
}

impl Rules {
    fn add(&mut self, e: Entry) -> Result<(), LockError> {
        let err = |message: String| LockError {
            file: e.file.clone(),
            line: e.line,
            col: NAME_COL,
            message,
        };
        if let Some(&i) = self.by_name.get(&e.name) {
            let prev = &mut self.out.entries[i];
            if prev.sha256 != e.sha256 {
                return Err(err(if prev.file == e.file {
                    format!(
                        "\"{}\" is listed twice with different sha256 (first at line {})",
                        e.name, prev.line
                    )
                } else {
                    format!(
                        "\"{}\" is listed with a different sha256 in {}:{}",
                        e.name, prev.file, prev.line
                    )
                }));
            }
            match (prev.size, e.size) {
                (Some(a), Some(b)) if a != b => {
                    return Err(err(format!(
                        "\"{}\" has size {b} here and {a} at {}",
                        e.name,
                        prev.place(&e.file)
                    )));
                }
                (None, Some(b)) => prev.size = Some(b),
                _ => {}
            }
            return Ok(());
        }
        let is_package = role(&e.name) == Role::Package;
        if is_package && let Some(&i) = self.by_file.get(e.basename()) {
            let prev = &self.out.entries[i];
            return Err(err(format!(
                "\"{}\" has the same file name as \"{}\" ({}); packages are installed side by side, so file names must differ",
                e.name,
                prev.name,
                prev.place(&e.file)
            )));
        }
        self.by_name.insert(e.name.clone(), self.out.entries.len());
        if is_package {
            self.by_file
                .insert(e.basename().to_string(), self.out.entries.len());
        }
        self.out.entries.push(e);
        Ok(())
    }
}

impl Lockfile {
    /// Each sha256's CID, from the first `/ipfs/<cid>` line with it (repro-
    /// get also pulls by one CID when a hash file lists several).
    pub fn cids(&self) -> HashMap<&str, &str> {
        let mut out = HashMap::new();
        for e in &self.entries {
            if let Some(cid) = e.name.strip_prefix("/ipfs/") {
                out.entry(e.sha256.as_str()).or_insert(cid);
            }
        }
        out
    }

    /// The entries to install, in lockfile order.
    pub fn packages(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| role(&e.name) == Role::Package)
    }

    /// Merges several lockfiles, as repro-get reads several SHA256SUMS, with
    /// the rules one file follows: the same name twice must have the same
    /// digest.
    pub fn merge(locks: Vec<Lockfile>) -> Result<Lockfile, LockError> {
        let mut rules = Rules::default();
        for e in locks.into_iter().flat_map(|l| l.entries) {
            rules.add(e)?;
        }
        Ok(rules.out)
    }
}

/// Parses a lockfile's text; errors are `line:col: message`.
pub fn parse(text: &str) -> Result<Lockfile, LockError> {
    parse_named("", text)
}

/// Parses a lockfile and records its name in every entry; errors are
/// `file:line:col: message`.
pub fn parse_named(file: &str, text: &str) -> Result<Lockfile, LockError> {
    let mut rules = Rules::default();
    // (line, column of the name, size, name): applied once every entry is in.
    let mut sizes: Vec<(usize, usize, u64, &str)> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let err = |col: usize, message: String| LockError {
            file: file.to_string(),
            line: line_no,
            col,
            message,
        };
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(SIZE_PREFIX) {
            let (size, name) = parse_size(rest).ok_or_else(|| {
                err(
                    1,
                    format!(
                        "malformed size line {trimmed:?}: expected \"{SIZE_PREFIX} <bytes> <name>\""
                    ),
                )
            })?;
            // `name` is a slice of `line`, so the difference is its offset.
            let col = name.as_ptr() as usize - line.as_ptr() as usize + 1;
            sizes.push((line_no, col, size, name));
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        rules.add(entry(file, line_no, line)?)?;
    }
    apply_sizes(&mut rules, file, sizes)?;
    Ok(rules.out)
}

/// One `<sha256>  <name>` line.
fn entry(file: &str, line_no: usize, line: &str) -> Result<Entry, LockError> {
    let err = |col: usize, message: String| LockError {
        file: file.to_string(),
        line: line_no,
        col,
        message,
    };
    let sum_ok = line.get(..64).is_some_and(is_sha256_hex)
        && !line.as_bytes().get(64).is_some_and(u8::is_ascii_hexdigit);
    if !sum_ok {
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
                "expected two spaces (or a space and '*') between the sha256 and the name".into(),
            ));
        }
    };
    check_name(name).map_err(|m| err(NAME_COL, m.0))?;
    let sha256 = line[..64].to_ascii_lowercase();
    if let Some(text) = name.strip_prefix("/ipfs/") {
        // The CID starts after "/ipfs/".
        let at = NAME_COL + 6;
        let cid = Cid::parse(text).map_err(|m| err(at, m.to_string()))?;
        if let Some(hashed) = cid.file_sha256().filter(|h| *h != sha256) {
            return Err(err(
                at,
                format!("the raw CID \"{text}\" is the sha256 {hashed}, not this line's {sha256}"),
            ));
        }
    }
    Ok(Entry {
        sha256,
        name: name.to_string(),
        size: None,
        file: file.to_string(),
        line: line_no,
    })
}

/// Size lines, applied once every entry is in: each must name an entry, and
/// agree with any earlier size line for it.
fn apply_sizes(
    rules: &mut Rules,
    file: &str,
    sizes: Vec<(usize, usize, u64, &str)>,
) -> Result<(), LockError> {
    for (line, col, size, name) in sizes {
        let err = |message: String| LockError {
            file: file.to_string(),
            line,
            col,
            message,
        };
        let i = *rules
            .by_name
            .get(name)
            .ok_or_else(|| err(format!("size line for \"{name}\", which no entry names")))?;
        let e = &mut rules.out.entries[i];
        match e.size {
            Some(prev) if prev != size => {
                return Err(err(format!(
                    "\"{name}\" has size {size} here and {prev} on an earlier size line"
                )));
            }
            _ => e.size = Some(size),
        }
    }
    Ok(())
}

/// `<spaces><digits> <name>` after the size prefix; `None` if it is not that.
fn parse_size(rest: &str) -> Option<(u64, &str)> {
    let rest = rest.strip_prefix(' ')?.trim_end();
    let (bytes, name) = rest.split_once(' ')?;
    if bytes.is_empty() || !bytes.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    if name.contains(char::is_whitespace) {
        return None;
    }
    Some((bytes.parse().ok()?, name))
}

/// One file the lock target pins: its digest, name and size, as the index
/// lists them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pin {
    /// Lowercase hex sha256.
    pub sha256: String,
    pub name: String,
    pub size: u64,
}

/// The lockfile text the lock target writes: the header, the
/// `<sha256>  <name>` lines in the order given (sorted by name by the
/// caller), then one `# size: <bytes> <name>` line per entry in the same
/// order. The same pins always give the same bytes.
pub fn render(header: &Header, pins: &[Pin]) -> String {
    let mut s = String::from(
        "# Made by repro-frontend's lock target; re-run it rather than edit this file.\n",
    );
    s.push_str(&header.to_string());
    s.push_str("# index: apt's Packages files (each SHA256 as the signed index lists it; nothing was downloaded to hash it)\n");
    for r in &header.releases {
        s.push_str(&format!("{r}\n"));
    }
    for p in pins {
        s.push_str(&format!("{}  {}\n", p.sha256, p.name));
    }
    for p in pins {
        s.push_str(&format!("{SIZE_PREFIX} {} {}\n", p.size, p.name));
    }
    s
}

/// A lockfile name that is not a clean relative path of safe characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

/// Checks that a name is a clean relative path made of safe characters.
pub fn check_name(name: &str) -> Result<(), NameError> {
    check_name_text(name).map_err(NameError)
}

fn check_name_text(name: &str) -> Result<(), String> {
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
    fn ipfs_lines_give_each_sha256_its_first_cid() {
        // The raw CIDv1 of the empty file, and repro-get's README's CIDv0.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let raw = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        let v0 = "QmRY19HEWeTJtRC6vAdz7rDfX3PjSMgXmd1KYi9guAACUj";
        let text = format!(
            "{H1}  pool/a.deb\n{empty}  pool/empty.deb\n{H1}  /ipfs/{v0}\n{empty}  /ipfs/{raw}\n{H1}  /ipfs/QmQPeNsJPyVWPFDVHb77w8G42Fvo15z4bG2X8D2GhfbSXc\n"
        );
        let lock = parse(&text).unwrap();
        let cids = lock.cids();
        assert_eq!(cids.get(H1), Some(&v0), "the first CID of a sha256");
        assert_eq!(cids.get(empty), Some(&raw));
        assert_eq!(cids.get(H2), None);
    }

    #[test]
    fn a_cid_that_is_not_one_we_accept_or_names_other_bytes_is_refused_at_its_line() {
        let err = parse(&format!(
            "{H1}  pool/a.deb\n{H1}  /ipfs/zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "2:73: \"zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA\" is not a CID we accept"
            ),
            "{err}"
        );
        // A raw CID is the file's own sha256: it must be the line's.
        let raw = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        let err = parse(&format!("{H1}  /ipfs/{raw}\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "1:73: the raw CID \"{raw}\" is the sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855, not this line's {H1}"
            )
        );
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
            e.to_string(),
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

    #[test]
    fn size_lines_give_sizes_and_other_comments_stay_ignored() {
        let text = format!(
            "# sizes follow\n{H1}  a/a.deb\n{H2}  b.deb\n# size: 1234 a/a.deb\n#size: x y\n# sized 1\n"
        );
        let lock = parse_named("S", &text).unwrap();
        assert_eq!(lock.entries[0].size, Some(1234));
        assert_eq!(lock.entries[1].size, None);
        // Before its entry, or twice with the same value, is fine too.
        let text = format!("# size: 0 b.deb\n{H2}  b.deb\n# size: 0 b.deb\n");
        assert_eq!(parse(&text).unwrap().entries[0].size, Some(0));
    }

    #[test]
    fn bad_size_lines_are_errors_at_their_line() {
        for (bad, col, msg) in [
            (
                "# size: 12 c.deb",
                12,
                "size line for \"c.deb\", which no entry names",
            ),
            ("# size: -1 a.deb", 1, "malformed size line"),
            ("# size: 1k a.deb", 1, "malformed size line"),
            ("# size: 12", 1, "malformed size line"),
            ("# size: 12 a.deb extra", 1, "malformed size line"),
            ("# size:12 a.deb", 1, "malformed size line"),
            (
                "# size: 99999999999999999999999 a.deb",
                1,
                "malformed size line",
            ),
            ("# size: 13 a.deb", 12, "has size 13 here and 12"),
        ] {
            let text = format!("{H1}  a.deb\n# size: 12 a.deb\n{bad}\n");
            let err = parse_named("SHA256SUMS-x", &text).unwrap_err();
            assert_eq!((err.line, err.col), (3, col), "{bad}: {err}");
            assert!(err.to_string().starts_with("SHA256SUMS-x:3:"), "{err}");
            assert!(err.message.contains(msg), "{bad}: {err}");
        }
    }

    #[test]
    fn merge_keeps_a_size_and_rejects_two_that_differ() {
        let a = parse_named("A", &format!("{H1}  a.deb\n")).unwrap();
        let b = parse_named("B", &format!("{H1}  a.deb\n# size: 5 a.deb\n")).unwrap();
        let m = Lockfile::merge(vec![a, b.clone()]).unwrap();
        assert_eq!(m.entries[0].size, Some(5));
        assert_eq!(m.entries[0].file, "A");
        let c = parse_named("C", &format!("\n{H1}  a.deb\n# size: 6 a.deb\n")).unwrap();
        let e = Lockfile::merge(vec![b, c]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "C:2:67: \"a.deb\" has size 6 here and 5 at B:1"
        );
    }
}
