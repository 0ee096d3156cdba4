//! The verify step: compares a rebuilt image with a published one (both
//! root filesystems file by file, and their image configs) and writes an
//! in-toto statement when they are equal or a report when they are not.
//! Runs inside the build as `repro-frontend verify`; does I/O (reads both
//! trees, writes the output folder).
//!
//! Paths are compared as the raw bytes the file system holds, never decoded:
//! two names that differ in one byte are two paths, whatever their encoding.
//! Names are escaped only where they are shown ([`escape`]), so a name with a
//! newline or a terminal control cannot add a line to the report.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The statement's `_type` (in-toto Statement v1).
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The statement's predicate: SLSA's verification summary (VSA) v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// Who verified: this frontend's verify step.
pub const VERIFIER_ID: &str = "https://repro-frontend.invalid/verifier/v1";
/// The policy the image was verified against (docs/sbom-and-verify.md
/// defines it); its digest is the policy file's.
pub const POLICY_URI: &str = "https://repro-frontend.invalid/verify-policy/v1";
/// SLSA's verified property for an artifact two builders made alike (the
/// draft's verified-properties page).
pub const REPRODUCED: &str = "SLSA_BUILD_REPRODUCED";
/// The SLSA version whose VSA and verified properties the statement follows.
pub const SLSA_VERSION: &str = "1.2";
/// Our extension field of the predicate (a URI, as the VSA allows): what
/// was compared, and on a difference, its summary.
pub const EXTENSION: &str = "https://repro-frontend.invalid/verify/v1";
/// The statement, PASSED or FAILED.
pub const STATEMENT_FILE: &str = "verify.intoto.json";
/// The policy: the inputs of the rebuild and what is compared.
pub const POLICY_FILE: &str = "verify-policy.json";
/// The report written when they differ.
pub const REPORT_FILE: &str = "verify-report.txt";
/// The same report as JSON, beside it.
pub const REPORT_JSON_FILE: &str = "verify-report.json";
/// How many differing paths the closing summary names.
const SUMMARY_PATHS: usize = 20;

/// A verify failure that is not a difference: a file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{file}: {message}")]
    Format { file: String, message: String },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> VerifyError + '_ {
    move |source| VerifyError::Io {
        path: escape(path.as_os_str().as_bytes()),
        source,
    }
}

/// A name as shown: printable text as it is; a backslash as `\\`; newline,
/// tab and carriage return as `\n`, `\t`, `\r`; other control bytes and
/// bytes that are not UTF-8 as `\xHH`; control, line-separator and
/// direction-changing characters beyond ASCII as `\u{HHHH}`. Every escape
/// starts with a backslash and a literal one is doubled, so two names never
/// show the same, and the result is one line of printable text.
pub fn escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c => push_shown(&mut out, c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Text from elsewhere (a config value, an image name) made one printable
/// line: control and hidden characters escaped as by [`escape`], backslashes
/// left as they are (the text is shown, never keyed).
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_shown(&mut out, c);
    }
    out
}

/// One character as [`escape`] shows it, a backslash aside.
fn push_shown(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if hidden(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        c => out.push(c),
    }
}

/// Characters beyond ASCII that break or disguise a line: C1 controls, the
/// line and paragraph separators, direction marks and overrides, zero-width
/// characters and the byte-order mark.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// What the frontend tells the step about the build (the facts file).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    pub recipe: Named,
    pub lockfiles: Vec<Named>,
    /// The pinned base image of the rebuild.
    pub base: String,
    /// The published image, `name@sha256:<hex>`.
    pub image: String,
    /// The platform compared (`linux/arm64`): an index names several.
    #[serde(default)]
    pub platform: Option<String>,
    /// The frontend image that rebuilt and compared, by digest (or by tag
    /// and image ID on Docker's classic image store).
    #[serde(default)]
    pub frontend: Option<String>,
    /// `timeVerified`, pinned (`REPRO_VERIFY_TIME`, RFC 3339 in UTC);
    /// otherwise the step's clock.
    #[serde(default)]
    pub time: Option<String>,
    /// The image manifest compared (`sha256:<hex>`), when the engine named
    /// it (the published reference may name an index).
    #[serde(default)]
    pub manifest: Option<String>,
}

/// A file by name and sha256 (hex).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub name: String,
    pub sha256: String,
}

/// The kinds of difference, in the report's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// In the rebuild, not in the published image.
    Missing,
    /// In the published image, not in the rebuild.
    Extra,
    Type,
    Mode,
    Owner,
    Size,
    Content,
    Mtime,
    Link,
    Xattr,
    Hardlink,
    Config,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Missing,
        Kind::Extra,
        Kind::Type,
        Kind::Mode,
        Kind::Owner,
        Kind::Size,
        Kind::Content,
        Kind::Mtime,
        Kind::Link,
        Kind::Xattr,
        Kind::Hardlink,
        Kind::Config,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Type => "type",
            Kind::Mode => "mode",
            Kind::Owner => "owner",
            Kind::Size => "size",
            Kind::Content => "content",
            Kind::Mtime => "mtime",
            Kind::Link => "link",
            Kind::Xattr => "xattr",
            Kind::Hardlink => "hardlink",
            Kind::Config => "config",
        }
    }
}

/// One difference: a path (or `config:<field>`) and what each side has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub kind: Kind,
    /// The raw bytes of the path from the root, or `config:<field>`.
    pub path: Vec<u8>,
    /// Each side as shown, one printable line (names in it escaped).
    pub ours: String,
    pub theirs: String,
}

impl Difference {
    pub fn new(
        kind: Kind,
        path: impl AsRef<[u8]>,
        ours: impl Into<String>,
        theirs: impl Into<String>,
    ) -> Self {
        Difference {
            kind,
            path: path.as_ref().to_vec(),
            ours: ours.into(),
            theirs: theirs.into(),
        }
    }

    /// The path as shown ([`escape`]).
    pub fn shown_path(&self) -> String {
        escape(&self.path)
    }

    /// One line: `<kind> <path>: rebuilt <ours>, published <theirs>`.
    pub fn line(&self) -> String {
        format!(
            "{} {}: rebuilt {}, published {}",
            self.kind.name(),
            self.shown_path(),
            self.ours,
            self.theirs
        )
    }
}

/// What one tree entry is, as far as the comparison goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Regular files only.
    pub sha256: Option<String>,
    pub mtime: (i64, i64),
    /// The target's raw bytes.
    pub link: Option<Vec<u8>>,
    /// Sorted by name (raw bytes); values in hex.
    pub xattrs: Vec<(Vec<u8>, String)>,
    /// The first path (in byte order) of this file's hard-link group, when
    /// that is another path.
    pub hardlink_of: Option<Vec<u8>>,
}

/// Tree entries by the raw bytes of their path from the root
/// (`/usr/bin/hello`).
pub type Listing = BTreeMap<Vec<u8>, Entry>;

/// Every entry under `root` but the root itself (a layer tar does not carry
/// it), keyed by the raw bytes of its path from the root.
pub fn scan(root: &Path) -> Result<Listing, VerifyError> {
    let mut out = BTreeMap::new();
    let mut inodes = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut children = fs::read_dir(&dir)
            .map_err(io_at(&dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_at(&dir))?;
        children.sort();
        for name in children {
            let path = dir.join(&name);
            let mut key = rel.clone();
            key.push(b'/');
            key.extend_from_slice(name.as_bytes());
            let meta = fs::symlink_metadata(&path).map_err(io_at(&path))?;
            if meta.is_dir() {
                stack.push((path.clone(), key.clone()));
            } else if meta.nlink() > 1 {
                inodes.insert(key.clone(), (meta.dev(), meta.ino()));
            }
            out.insert(key, entry(&path, &meta)?);
        }
    }
    // Group leaders by byte order of the path, so both sides agree.
    let mut leaders: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for (key, inode) in inodes {
        match leaders.get(&inode) {
            Some(first) => {
                if let Some(e) = out.get_mut(&key) {
                    e.hardlink_of = Some(first.clone());
                }
            }
            None => {
                leaders.insert(inode, key);
            }
        }
    }
    Ok(out)
}

fn entry(path: &Path, meta: &fs::Metadata) -> Result<Entry, VerifyError> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        "directory"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let link = match ft.is_symlink() {
        true => Some(
            fs::read_link(path)
                .map_err(io_at(path))?
                .into_os_string()
                .into_vec(),
        ),
        false => None,
    };
    let sha256 = match ft.is_file() {
        true => Some(file_sha256(path)?),
        false => None,
    };
    let mut xattrs: Vec<(Vec<u8>, String)> = super::normalize::read_xattrs(path)
        .map_err(io_at(path))?
        .into_iter()
        .map(|(n, v)| (n, hex::encode(v)))
        .collect();
    xattrs.sort();
    Ok(Entry {
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: if ft.is_file() { meta.size() } else { 0 },
        sha256,
        mtime: (meta.mtime(), meta.mtime_nsec()),
        link,
        xattrs,
        hardlink_of: None,
    })
}

fn file_sha256(path: &Path) -> Result<String, VerifyError> {
    let mut f = fs::File::open(path).map_err(io_at(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Compares two scanned trees; differences in path order, each path's in
/// kind order.
pub fn compare_trees(ours: &Listing, theirs: &Listing) -> Vec<Difference> {
    let mut out = Vec::new();
    for (path, o) in ours {
        match theirs.get(path) {
            None => out.push(Difference::new(Kind::Missing, path, o.kind, "nothing")),
            Some(t) => out.extend(compare_entries(path, o, t)),
        }
    }
    for (path, t) in theirs {
        if !ours.contains_key(path) {
            out.push(Difference::new(Kind::Extra, path, "nothing", t.kind));
        }
    }
    out.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
    out
}

fn compare_entries(path: &[u8], o: &Entry, t: &Entry) -> Vec<Difference> {
    let d = |kind, ours: String, theirs: String| Difference::new(kind, path, ours, theirs);
    if o.kind != t.kind {
        return vec![d(Kind::Type, o.kind.into(), t.kind.into())];
    }
    let mut out = Vec::new();
    if o.mode != t.mode {
        out.push(d(
            Kind::Mode,
            format!("{:04o}", o.mode),
            format!("{:04o}", t.mode),
        ));
    }
    if (o.uid, o.gid) != (t.uid, t.gid) {
        out.push(d(
            Kind::Owner,
            format!("{}:{}", o.uid, o.gid),
            format!("{}:{}", t.uid, t.gid),
        ));
    }
    if o.size != t.size {
        out.push(d(Kind::Size, o.size.to_string(), t.size.to_string()));
    }
    if o.sha256 != t.sha256 {
        let show = |s: &Option<String>| format!("sha256:{}", s.as_deref().unwrap_or(""));
        out.push(d(Kind::Content, show(&o.sha256), show(&t.sha256)));
    }
    if o.mtime != t.mtime {
        let show = |(s, n): (i64, i64)| format!("{s}.{n:09}");
        out.push(d(Kind::Mtime, show(o.mtime), show(t.mtime)));
    }
    if o.link != t.link {
        let show = |l: &Option<Vec<u8>>| format!("-> {}", escape(l.as_deref().unwrap_or(b"")));
        out.push(d(Kind::Link, show(&o.link), show(&t.link)));
    }
    if o.xattrs != t.xattrs {
        let show = |x: &[(Vec<u8>, String)]| {
            let parts: Vec<String> = x
                .iter()
                .map(|(n, v)| format!("{}={v}", escape(n)))
                .collect();
            format!("[{}]", parts.join(" "))
        };
        out.push(d(Kind::Xattr, show(&o.xattrs), show(&t.xattrs)));
    }
    if o.hardlink_of != t.hardlink_of {
        let show = |h: &Option<Vec<u8>>| match h {
            Some(p) => format!("a hard link of {}", escape(p)),
            None => "its first or only name".to_string(),
        };
        out.push(d(
            Kind::Hardlink,
            show(&o.hardlink_of),
            show(&t.hardlink_of),
        ));
    }
    out
}

/// Compares two image configs (JSON). Every top-level field is compared
/// (`config` field by field) except `rootfs.diff_ids`: they are digests of
/// the layer tars, which engines write differently for the same files
/// (Docker 20.10 adds user names to the headers), and the files themselves
/// are compared one by one instead; `rootfs.type` is compared. A field set to
/// its zero value (`false`, `""`, `0`, `null`, `[]`, `{}`) counts as absent:
/// Go's image config types read both the same, and Docker's own builder
/// leaves such fields out where ours writes the base's config as it was.
pub fn compare_configs(
    ours: &[u8],
    theirs: &[u8],
    names: (&str, &str),
) -> Result<Vec<Difference>, VerifyError> {
    let parse = |bytes: &[u8], file: &str| -> Result<BTreeMap<String, Value>, VerifyError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| VerifyError::Format {
            file: file.to_string(),
            message: format!("not an image config: {e}"),
        })?;
        let Value::Object(map) = value else {
            return Err(VerifyError::Format {
                file: file.to_string(),
                message: "not an image config: not a JSON object".into(),
            });
        };
        let mut map: BTreeMap<String, Value> =
            map.into_iter().filter(|(_, v)| !is_zero(v)).collect();
        if let Some(Value::Object(config)) = map.get_mut("config") {
            config.retain(|_, v| !is_zero(v));
        }
        if let Some(rootfs) = map.get_mut("rootfs") {
            *rootfs = json!({ "type": rootfs.get("type").cloned().unwrap_or(Value::Null) });
        }
        Ok(map)
    };
    let ours = parse(ours, names.0)?;
    let theirs = parse(theirs, names.1)?;
    let mut out = Vec::new();
    compare_fields("config:", &ours, &theirs, &mut out);
    let nested = |m: &BTreeMap<String, Value>| match m.get("config") {
        Some(Value::Object(c)) => c.clone().into_iter().collect(),
        _ => BTreeMap::new(),
    };
    compare_fields("config:config.", &nested(&ours), &nested(&theirs), &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// One difference per field that is not equal on both sides; the nested
/// `config` object is left to its own pass.
fn compare_fields(
    prefix: &str,
    ours: &BTreeMap<String, Value>,
    theirs: &BTreeMap<String, Value>,
    out: &mut Vec<Difference>,
) {
    let keys: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for key in keys {
        let (o, t) = (ours.get(key), theirs.get(key));
        if o == t || (prefix == "config:" && key == "config" && both_objects(o, t)) {
            continue;
        }
        let show =
            |v: Option<&Value>| v.map_or("nothing".to_string(), |v| printable(&v.to_string()));
        out.push(Difference::new(
            Kind::Config,
            format!("{prefix}{key}"),
            show(o),
            show(t),
        ));
    }
}

/// A JSON zero value: what Go's encoders leave out with `omitempty`.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn both_objects(a: Option<&Value>, b: Option<&Value>) -> bool {
    matches!((a, b), (Some(Value::Object(_)), Some(Value::Object(_))))
}

/// What the comparison found, for the statement.
#[derive(Clone, Copy, Debug)]
pub enum Verdict<'a> {
    /// Equal: the count of paths compared.
    Passed { files: usize },
    /// Different: the report (its first lines go into the statement).
    Failed { report: &'a str },
}

fn format_error(file: &str, message: String) -> VerifyError {
    VerifyError::Format {
        file: file.into(),
        message,
    }
}

/// Deterministic JSON: keys sorted, two-space indent, a final newline.
fn pretty(value: &Value, file: &str) -> Result<Vec<u8>, VerifyError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| format_error(file, e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The policy file: what the rebuild was made from and what is compared.
/// Its sha256 is the statement's `policy.digest`.
pub fn policy(facts: &Facts) -> Result<Vec<u8>, VerifyError> {
    let named = |n: &Named| json!({ "name": n.name, "digest": { "sha256": n.sha256 } });
    let body = json!({
        "policy": POLICY_URI,
        "rebuild": {
            "recipe": named(&facts.recipe),
            "lockfiles": facts.lockfiles.iter().map(named).collect::<Vec<_>>(),
            "base": facts.base,
            "platform": facts.platform,
        },
        "compare": {
            "config": "every field but rootfs.diff_ids, a zero value as absent",
            "files": "every path: type, mode, owner, size, content sha256, mtime, link target, xattrs, hard links",
        },
    });
    pretty(&body, POLICY_FILE)
}

/// `name@sha256:<hex>` -> (name, hex).
fn split_pinned(image: &str) -> Result<(&str, &str), VerifyError> {
    image
        .split_once("@sha256:")
        .filter(|(_, h)| crate::digest::is_sha256_hex(h))
        .ok_or_else(|| {
            format_error(
                "facts",
                format!("image \"{image}\" is not name@sha256:<hex>"),
            )
        })
}

/// The in-toto Statement v1 with SLSA's verification summary: PASSED with
/// the reproduced property, or FAILED with the difference's summary.
/// Deterministic bytes but for `timeVerified` (`now` unless the facts pin
/// it), the only time in it.
pub fn statement(facts: &Facts, verdict: Verdict, now: &str) -> Result<Vec<u8>, VerifyError> {
    let (name, hex) = split_pinned(&facts.image)?;
    let compared = match &facts.manifest {
        Some(m) => m
            .strip_prefix("sha256:")
            .filter(|h| crate::digest::is_sha256_hex(h))
            .ok_or_else(|| {
                format_error("facts", format!("manifest \"{m}\" is not sha256:<hex>"))
            })?,
        None => hex,
    };
    let policy_digest = hex::encode(Sha256::digest(policy(facts)?));
    let mut extension = json!({
        "image": facts.image,
        "frontend": facts.frontend,
        "platform": facts.platform,
    });
    let (result, levels) = match verdict {
        Verdict::Passed { files } => {
            extension["filesCompared"] = json!(files);
            ("PASSED", REPRODUCED)
        }
        Verdict::Failed { report } => {
            extension["differences"] = json!(summary(report));
            ("FAILED", "FAILED")
        }
    };
    let predicate = json!({
        "verifier": {
            "id": VERIFIER_ID,
            "version": { "repro-frontend": env!("CARGO_PKG_VERSION") },
        },
        "timeVerified": facts.time.as_deref().unwrap_or(now),
        "resourceUri": crate::sbom::purl::oci(name, &format!("sha256:{hex}"), ""),
        "policy": { "uri": POLICY_URI, "digest": { "sha256": policy_digest } },
        "verificationResult": result,
        "verifiedLevels": [levels],
        "slsaVersion": SLSA_VERSION,
        (EXTENSION): extension,
    });
    let body = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": name, "digest": { "sha256": compared } }],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    });
    pretty(&body, STATEMENT_FILE)
}

/// The clock of the step, as `timeVerified` writes it.
fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    crate::convert::image::format_rfc3339(secs)
}

/// The counts per kind (kinds with none left out).
fn counts(diffs: &[Difference]) -> String {
    let parts: Vec<String> = Kind::ALL
        .iter()
        .map(|k| (k, diffs.iter().filter(|d| d.kind == *k).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect();
    parts.join(", ")
}

/// The full report: the counts, then every difference, one a line.
pub fn report(image: &str, diffs: &[Difference]) -> String {
    let mut out = format!(
        "the rebuild differs from {}: {} difference(s): {}\n",
        printable(image),
        diffs.len(),
        counts(diffs)
    );
    for d in diffs {
        out.push_str(&d.line());
        out.push('\n');
    }
    out
}

/// The report as JSON (deterministic bytes, keys sorted, ending in a
/// newline): `image`, `result: "different"`, `counts` per kind and
/// `differences`, each with `kind`, `path` as [`Difference::line`] shows it,
/// `rebuilt` and `published`. A path whose shown form is not the name itself
/// (it had bytes to escape) has `pathHex` too: the raw bytes in hex, which
/// are the name. So the name is `pathHex` decoded when there is one,
/// otherwise `path`.
pub fn report_json(image: &str, diffs: &[Difference]) -> Vec<u8> {
    let counts: serde_json::Map<String, Value> = Kind::ALL
        .iter()
        .map(|k| {
            (
                k.name().to_string(),
                diffs.iter().filter(|d| d.kind == *k).count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k, json!(n)))
        .collect();
    let differences: Vec<Value> = diffs
        .iter()
        .map(|d| {
            let shown = d.shown_path();
            let mut row = json!({
                "kind": d.kind.name(),
                "path": shown,
                "rebuilt": d.ours,
                "published": d.theirs,
            });
            if shown.as_bytes() != d.path.as_slice() {
                row["pathHex"] = json!(hex::encode(&d.path));
            }
            row
        })
        .collect();
    let body = json!({
        "image": image,
        "result": "different",
        "counts": counts,
        "differences": differences,
    });
    // A tree of strings and numbers always serializes.
    let mut bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The summary of a report (as [`report`] writes it): its counts and the
/// first differing paths, clipped. The frontend fails the build with it
/// after reading the report the step wrote.
pub fn summary(report: &str) -> String {
    let mut lines = report.lines();
    let head = lines.next().unwrap_or_default();
    let mut out = format!("not reproduced: {head}\n");
    let rest: Vec<&str> = lines.collect();
    for line in rest.iter().take(SUMMARY_PATHS) {
        let clipped = match line.char_indices().nth(240) {
            Some((i, _)) => format!("{}...", &line[..i]),
            None => line.to_string(),
        };
        out.push_str(&format!("  {clipped}\n"));
    }
    if rest.len() > SUMMARY_PATHS {
        out.push_str(&format!(
            "  ... and {} more in {REPORT_FILE}\n",
            rest.len() - SUMMARY_PATHS
        ));
    }
    out
}

/// The step's inputs (`repro-frontend verify`).
#[derive(Clone, Debug)]
pub struct Args {
    pub ours: PathBuf,
    pub theirs: PathBuf,
    pub ours_config: PathBuf,
    pub theirs_config: PathBuf,
    pub facts: PathBuf,
    pub out: PathBuf,
}

/// What the step found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Equal: the statement was written; the count of paths compared.
    Reproduced { files: usize },
    /// Different: the report was written.
    Different { report: String },
}

/// Compares the trees and the configs and writes the statement or the report.
pub fn run(args: &Args) -> Result<Outcome, VerifyError> {
    let read = |p: &Path| fs::read(p).map_err(io_at(p));
    let facts_bytes = read(&args.facts)?;
    let facts: Facts = serde_json::from_slice(&facts_bytes).map_err(|e| VerifyError::Format {
        file: args.facts.display().to_string(),
        message: e.to_string(),
    })?;
    let mut diffs = compare_configs(
        &read(&args.ours_config)?,
        &read(&args.theirs_config)?,
        (
            &args.ours_config.display().to_string(),
            &args.theirs_config.display().to_string(),
        ),
    )?;
    let ours = scan(&args.ours)?;
    let theirs = scan(&args.theirs)?;
    diffs.extend(compare_trees(&ours, &theirs));
    fs::create_dir_all(&args.out).map_err(io_at(&args.out))?;
    let write = |file: &str, bytes: &[u8]| {
        let path = args.out.join(file);
        fs::write(&path, bytes).map_err(io_at(&path))
    };
    write(POLICY_FILE, &policy(&facts)?)?;
    if diffs.is_empty() {
        let files = ours.len();
        write(
            STATEMENT_FILE,
            &statement(&facts, Verdict::Passed { files }, &now())?,
        )?;
        return Ok(Outcome::Reproduced { files });
    }
    let report = report(&facts.image, &diffs);
    write(REPORT_FILE, report.as_bytes())?;
    write(REPORT_JSON_FILE, &report_json(&facts.image, &diffs))?;
    write(
        STATEMENT_FILE,
        &statement(&facts, Verdict::Failed { report: &report }, &now())?,
    )?;
    Ok(Outcome::Different { report })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    /// Sets every entry's times (links themselves, not their targets).
    fn set_time(path: &Path, secs: i64) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        let ts = libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        // SAFETY: a valid path and two timespecs.
        let rc = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                [ts, ts].as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    }

    /// A small rootfs: a directory, two files (one hard-linked), a link.
    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::write(r.join("usr/bin/hello"), b"hello\n").unwrap();
        fs::write(r.join("usr/bin/other"), b"other\n").unwrap();
        fs::hard_link(r.join("usr/bin/hello"), r.join("usr/bin/hi")).unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        fix_times(r);
        d
    }

    fn fix_times(r: &Path) {
        for p in ["usr/bin/hello", "usr/bin/other", "bin", "usr/bin", "usr"] {
            if fs::symlink_metadata(r.join(p)).is_ok() {
                set_time(&r.join(p), 1_700_000_000);
            }
        }
    }

    fn diff(a: &Path, b: &Path) -> Vec<Difference> {
        compare_trees(&scan(a).unwrap(), &scan(b).unwrap())
    }

    #[test]
    fn equal_trees_are_equal_and_hard_links_are_grouped() {
        let (a, b) = (tree(), tree());
        assert_eq!(diff(a.path(), b.path()), []);
        let s = scan(a.path()).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(
            s[b"/usr/bin/hi".as_slice()].hardlink_of.as_deref(),
            Some(b"/usr/bin/hello".as_slice())
        );
        assert_eq!(s[b"/usr/bin/hello".as_slice()].hardlink_of, None);
        assert_eq!(
            s[b"/bin".as_slice()].link.as_deref(),
            Some(b"usr/bin".as_slice())
        );
    }

    #[test]
    fn a_changed_content_is_named_with_both_digests() {
        let (a, b) = (tree(), tree());
        fs::write(b.path().join("usr/bin/other"), b"OTHER\n").unwrap();
        fix_times(b.path());
        let d = diff(a.path(), b.path());
        let sha = |t: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(t)));
        assert_eq!(
            d,
            [Difference::new(
                Kind::Content,
                "/usr/bin/other",
                sha(b"other\n"),
                sha(b"OTHER\n")
            )]
        );
        assert!(
            d[0].line()
                .starts_with("content /usr/bin/other: rebuilt sha256:")
        );
    }

    #[test]
    fn a_mode_only_change_is_a_mode_difference() {
        let (a, b) = (tree(), tree());
        let p = b.path().join("usr/bin/other");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
        let d = diff(a.path(), b.path());
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].kind, Kind::Mode);
        assert_eq!(d[0].theirs, "4755");
    }

    #[test]
    fn a_link_target_change_is_a_link_difference() {
        let (a, b) = (tree(), tree());
        fs::remove_file(b.path().join("bin")).unwrap();
        symlink("usr/sbin", b.path().join("bin")).unwrap();
        fix_times(b.path());
        let d = diff(a.path(), b.path());
        assert_eq!(
            d,
            [Difference::new(
                Kind::Link,
                "/bin",
                "-> usr/bin",
                "-> usr/sbin"
            )]
        );
    }

    #[test]
    fn missing_and_extra_files_are_named() {
        let (a, b) = (tree(), tree());
        fs::remove_file(b.path().join("usr/bin/other")).unwrap();
        fs::write(b.path().join("usr/changed"), b"x\n").unwrap();
        fix_times(b.path());
        set_time(&b.path().join("usr/changed"), 1_700_000_000);
        let d = diff(a.path(), b.path());
        let kinds: Vec<(Kind, String)> = d.iter().map(|d| (d.kind, d.shown_path())).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Missing, "/usr/bin/other".to_string()),
                (Kind::Extra, "/usr/changed".to_string())
            ]
        );
    }

    #[test]
    fn an_mtime_change_shows_seconds_and_nanoseconds() {
        let (a, b) = (tree(), tree());
        set_time(&b.path().join("usr/bin/other"), 1_700_000_001);
        let d = diff(a.path(), b.path());
        assert_eq!(
            d,
            [Difference::new(
                Kind::Mtime,
                "/usr/bin/other",
                "1700000000.000000000",
                "1700000001.000000000"
            )]
        );
    }

    #[test]
    fn configs_compare_every_field_but_the_diff_ids() {
        let ours = br#"{"architecture":"amd64","config":{"Cmd":["hello"],"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let theirs = br#"{"architecture":"amd64","config":{"Cmd":["hello"],"Env":["A=2"]},"history":[{"created_by":"x"}],"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let d = compare_configs(ours, theirs, ("ours", "theirs")).unwrap();
        let paths: Vec<String> = d.iter().map(Difference::shown_path).collect();
        assert_eq!(paths, ["config:config.Env", "config:history"]);
        assert_eq!(d[0].ours, r#"["A=1"]"#);
        assert_eq!(d[1].ours, "nothing");
        assert!(compare_configs(ours, ours, ("a", "b")).unwrap().is_empty());
        // Zero values count as absent (Docker's builder leaves them out).
        let zeros =
            br#"{"config":{"Tty":false,"User":"","Volumes":null,"Cmd":["hello"]},"history":[]}"#;
        let none = br#"{"config":{"Cmd":["hello"]}}"#;
        assert!(compare_configs(zeros, none, ("a", "b")).unwrap().is_empty());
        let err = compare_configs(b"[]", ours, ("ours.json", "b")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ours.json: not an image config: not a JSON object"
        );
    }

    fn facts() -> Facts {
        Facts {
            recipe: Named {
                name: "repro.yaml".into(),
                sha256: "1".repeat(64),
            },
            lockfiles: vec![Named {
                name: "SHA256SUMS-amd64".into(),
                sha256: "2".repeat(64),
            }],
            base: "reg.invalid/debian@sha256:3333".into(),
            image: format!("reg.invalid/hello@sha256:{}", "4".repeat(64)),
            platform: Some("linux/arm64".into()),
            frontend: Some(format!("repro-frontend:v0@sha256:{}", "5".repeat(64))),
            time: None,
            manifest: None,
        }
    }

    #[test]
    fn the_statement_is_a_deterministic_slsa_vsa() {
        const NOW: &str = "2026-12-08T10:00:00Z";
        let passed = Verdict::Passed { files: 6 };
        let a = statement(&facts(), passed, NOW).unwrap();
        assert_eq!(a, statement(&facts(), passed, NOW).unwrap());
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(v["predicateType"], PREDICATE_TYPE);
        assert_eq!(v["subject"][0]["name"], "reg.invalid/hello");
        assert_eq!(v["subject"][0]["digest"]["sha256"], "4".repeat(64));
        let p = &v["predicate"];
        assert_eq!(p["verifier"]["id"], VERIFIER_ID);
        assert_eq!(p["verificationResult"], "PASSED");
        assert_eq!(p["verifiedLevels"], json!([REPRODUCED]));
        assert_eq!(p["timeVerified"], NOW);
        assert_eq!(p["slsaVersion"], SLSA_VERSION);
        assert!(
            p["resourceUri"]
                .as_str()
                .unwrap()
                .starts_with("pkg:oci/hello@sha256%3A4444"),
            "{p}"
        );
        // The policy's digest is the policy file's, which names the inputs.
        let policy_bytes = policy(&facts()).unwrap();
        assert_eq!(
            p["policy"]["digest"]["sha256"],
            hex::encode(Sha256::digest(&policy_bytes))
        );
        assert_eq!(p["policy"]["uri"], POLICY_URI);
        let pv: Value = serde_json::from_slice(&policy_bytes).unwrap();
        assert_eq!(
            pv["rebuild"]["lockfiles"][0]["digest"]["sha256"],
            "2".repeat(64)
        );
        assert_eq!(p[EXTENSION]["filesCompared"], 6);
        assert_eq!(
            p[EXTENSION]["frontend"],
            format!("repro-frontend:v0@sha256:{}", "5".repeat(64))
        );
        // Keys sorted: `_type` first, `subject` last.
        let text = String::from_utf8(a).unwrap();
        assert!(text.starts_with("{\n  \"_type\""), "{text}");
        assert!(text.ends_with("}\n"), "{text}");

        // A pinned time wins over the clock; the manifest compared is the
        // subject when the engine named it.
        let mut pinned = facts();
        pinned.time = Some("2000-01-01T00:00:00Z".into());
        pinned.manifest = Some(format!("sha256:{}", "6".repeat(64)));
        let v: Value = serde_json::from_slice(&statement(&pinned, passed, NOW).unwrap()).unwrap();
        assert_eq!(v["predicate"]["timeVerified"], "2000-01-01T00:00:00Z");
        assert_eq!(v["subject"][0]["digest"]["sha256"], "6".repeat(64));
        assert!(
            v["predicate"]["resourceUri"]
                .as_str()
                .unwrap()
                .contains("4444"),
            "the resource is the reference asked for"
        );

        // A difference: FAILED, with the summary.
        let report = "the rebuild differs from x: 1 difference(s): extra 1\nextra /a: rebuilt nothing, published file\n";
        let v: Value =
            serde_json::from_slice(&statement(&facts(), Verdict::Failed { report }, NOW).unwrap())
                .unwrap();
        assert_eq!(v["predicate"]["verificationResult"], "FAILED");
        assert_eq!(v["predicate"]["verifiedLevels"], json!(["FAILED"]));
        assert!(
            v["predicate"][EXTENSION]["differences"]
                .as_str()
                .unwrap()
                .contains("extra /a"),
            "{v}"
        );

        let mut bad = facts();
        bad.image = "reg.invalid/hello:latest".into();
        assert!(statement(&bad, passed, NOW).is_err());
        let mut bad = facts();
        bad.manifest = Some("md5:1".into());
        assert!(statement(&bad, passed, NOW).is_err());
    }

    #[test]
    fn run_writes_the_statement_or_the_report() {
        let (a, b) = (tree(), tree());
        let files = tempfile::tempdir().unwrap();
        let f = |n: &str, data: &[u8]| {
            let p = files.path().join(n);
            fs::write(&p, data).unwrap();
            p
        };
        let facts_json = format!(
            r#"{{"recipe":{{"name":"repro.yaml","sha256":"{}"}},"lockfiles":[],"base":"b@sha256:1","image":"reg.invalid/hello@sha256:{}"}}"#,
            "1".repeat(64),
            "4".repeat(64)
        );
        let out = tempfile::tempdir().unwrap();
        let args = Args {
            ours: a.path().into(),
            theirs: b.path().into(),
            ours_config: f("ours.json", b"{}"),
            theirs_config: f("theirs.json", b"{}"),
            facts: f("facts.json", facts_json.as_bytes()),
            out: out.path().into(),
        };
        assert_eq!(run(&args).unwrap(), Outcome::Reproduced { files: 6 });
        let read = |f: &str| -> Value {
            serde_json::from_slice(&fs::read(out.path().join(f)).unwrap()).unwrap()
        };
        assert_eq!(
            read(STATEMENT_FILE)["predicate"]["verificationResult"],
            "PASSED"
        );
        assert!(out.path().join(POLICY_FILE).exists());
        fs::write(b.path().join("usr/changed"), b"x\n").unwrap();
        fix_times(b.path());
        set_time(&b.path().join("usr/changed"), 1_700_000_000);
        let args = Args {
            theirs_config: f("theirs.json", br#"{"created":"x"}"#),
            ..args
        };
        let Outcome::Different { report } = run(&args).unwrap() else {
            panic!("equal")
        };
        assert!(
            report.contains("2 difference(s): extra 1, config 1\n"),
            "{report}"
        );
        assert!(
            report.contains("\nextra /usr/changed: rebuilt nothing, published file\n"),
            "{report}"
        );
        let summary = summary(&report);
        assert!(
            summary
                .starts_with("not reproduced: the rebuild differs from reg.invalid/hello@sha256:"),
            "{summary}"
        );
        assert!(summary.contains("\n  extra /usr/changed: rebuilt nothing"));
        assert_eq!(
            fs::read_to_string(out.path().join(REPORT_FILE)).unwrap(),
            report
        );
        let json: Value =
            serde_json::from_slice(&fs::read(out.path().join(REPORT_JSON_FILE)).unwrap()).unwrap();
        assert_eq!(json["differences"][1]["path"], "/usr/changed");
        assert_eq!(
            read(STATEMENT_FILE)["predicate"]["verificationResult"],
            "FAILED"
        );
    }

    /// Two trees of one file each, with these names and the same bytes.
    fn named_trees(ours: &[u8], theirs: &[u8]) -> (tempfile::TempDir, tempfile::TempDir) {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for (d, name) in [(&a, ours), (&b, theirs)] {
            let p = d.path().join(std::ffi::OsStr::from_bytes(name));
            fs::write(&p, b"same\n").unwrap();
            set_time(&p, 1_700_000_000);
        }
        (a, b)
    }

    // Issue 24: paths were keyed by lossy UTF-8, so two different non-UTF-8
    // names were one path and a changed tree was "reproduced".
    #[test]
    fn two_non_utf8_names_are_two_paths() {
        let (a, b) = named_trees(b"a\xff", b"a\xfe");
        let d = diff(a.path(), b.path());
        let kinds: Vec<Kind> = d.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, [Kind::Extra, Kind::Missing], "{d:?}");
        let lines: Vec<String> = d.iter().map(Difference::line).collect();
        assert_eq!(
            lines,
            [
                r"extra /a\xfe: rebuilt nothing, published file",
                r"missing /a\xff: rebuilt file, published nothing",
            ]
        );
        let (a, b) = named_trees(b"a\xff", b"a\xff");
        assert_eq!(diff(a.path(), b.path()), []);
    }

    // Issue 24 (every path inside the root): a link is compared as data,
    // never followed out of the tree (`/` would be walked, `/dev/zero` read
    // without end).
    #[test]
    fn links_are_compared_never_followed() {
        let (a, b) = (tree(), tree());
        for d in [&a, &b] {
            symlink("/", d.path().join("root")).unwrap();
            symlink("/dev/zero", d.path().join("zero")).unwrap();
        }
        let s = scan(a.path()).unwrap();
        assert_eq!(s.len(), 8);
        assert_eq!(s[b"/root".as_slice()].kind, "symlink");
        assert_eq!(s[b"/zero".as_slice()].sha256, None);
        assert!(s.keys().all(|k| k.starts_with(b"/usr") || k.len() <= 5));
        let d = diff(a.path(), b.path());
        assert!(d.iter().all(|d| d.kind == Kind::Mtime), "{d:?}");
    }

    // Issue 24: a name with a newline injected lines into the summary.
    #[test]
    fn a_name_with_a_newline_stays_on_its_line() {
        let evil = b"x\ncontent hello: rebuilt a, published b\r\x1b[2K";
        let (a, b) = named_trees(b"x", evil);
        let d = diff(a.path(), b.path());
        let report = report("img@sha256:1", &d);
        assert_eq!(report.lines().count(), 3, "{report}");
        assert!(
            report.contains(
                r"extra /x\ncontent hello: rebuilt a, published b\r\x1b[2K: rebuilt nothing, published file"
            ),
            "{report}"
        );
        let summary = summary(&report);
        assert_eq!(summary.lines().count(), 3, "{summary}");
        assert!(!summary.contains('\r') && !summary.contains('\x1b'));
    }

    /// The name [`escape`] showed, read back.
    fn unescape(shown: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = shown;
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            if c != '\\' {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            let e = rest.chars().next().expect("an escape");
            rest = &rest[1..];
            match e {
                '\\' => out.push(b'\\'),
                'n' => out.push(b'\n'),
                't' => out.push(b'\t'),
                'r' => out.push(b'\r'),
                'x' => {
                    out.push(u8::from_str_radix(&rest[..2], 16).unwrap());
                    rest = &rest[2..];
                }
                'u' => {
                    let end = rest.find('}').unwrap();
                    let c = char::from_u32(u32::from_str_radix(&rest[1..end], 16).unwrap());
                    out.extend_from_slice(c.unwrap().encode_utf8(&mut [0; 4]).as_bytes());
                    rest = &rest[end + 1..];
                }
                other => panic!("unknown escape {other:?} in {shown:?}"),
            }
        }
        out
    }

    #[test]
    fn names_are_shown_on_one_printable_line_and_read_back() {
        for (name, shown) in [
            (b"/usr/bin/hello".as_slice(), "/usr/bin/hello"),
            ("/usr/share/doc/café".as_bytes(), "/usr/share/doc/café"),
            (b"/a\nb", r"/a\nb"),
            (b"/a\\nb", r"/a\\nb"),
            (b"/a\xff", r"/a\xff"),
            (b"/a\\xff", r"/a\\xff"),
            (b"/\x1b[31m\x7f\t\r", r"/\x1b[31m\x7f\t\r"),
            (
                "/\u{2028}\u{202e}\u{85}".as_bytes(),
                r"/\u{2028}\u{202e}\u{0085}",
            ),
        ] {
            assert_eq!(escape(name), shown);
            assert_eq!(unescape(shown), name, "{shown}");
        }
        // Every name of up to two bytes reads back, so no two show the same.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let name = [b'/', a, b];
                let shown = escape(&name);
                assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
                assert_eq!(unescape(&shown), name, "{shown:?}");
            }
        }
    }

    #[test]
    fn the_json_report_names_every_path_exactly() {
        let diffs = vec![
            Difference::new(Kind::Extra, b"/a\xff", "nothing", "file"),
            Difference::new(Kind::Extra, b"/a\ncontent x", "nothing", "file"),
            Difference::new(Kind::Content, "/usr/bin/hello", "sha256:1", "sha256:2"),
            Difference::new(Kind::Config, "config:created", "\"a\"", "nothing"),
        ];
        let bytes = report_json("img@sha256:1", &diffs);
        assert_eq!(bytes, report_json("img@sha256:1", &diffs));
        assert!(bytes.ends_with(b"}\n"));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["result"], "different");
        assert_eq!(v["image"], "img@sha256:1");
        assert_eq!(v["counts"], json!({"extra": 2, "content": 1, "config": 1}));
        let rows = v["differences"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0]["path"], r"/a\xff");
        assert_eq!(rows[0]["pathHex"], "2f61ff");
        assert_eq!(rows[1]["path"], r"/a\ncontent x");
        assert_eq!(rows[1]["pathHex"], hex::encode(b"/a\ncontent x"));
        assert_eq!(
            rows[2],
            json!({"kind": "content", "path": "/usr/bin/hello", "rebuilt": "sha256:1", "published": "sha256:2"})
        );
        assert_eq!(rows[3]["rebuilt"], "\"a\"");
        assert!(rows[3].get("pathHex").is_none());
        // The name is pathHex decoded, else path.
        for (row, d) in rows.iter().zip(&diffs) {
            let name = match row.get("pathHex") {
                Some(h) => hex::decode(h.as_str().unwrap()).unwrap(),
                None => row["path"].as_str().unwrap().as_bytes().to_vec(),
            };
            assert_eq!(name, d.path);
        }
    }

    #[test]
    fn the_summary_names_the_first_paths_and_counts_the_rest() {
        let diffs: Vec<Difference> = (0..SUMMARY_PATHS + 3)
            .map(|i| Difference::new(Kind::Content, format!("/f{i}"), "a".repeat(300), "b"))
            .collect();
        let summary = summary(&report("img@sha256:1", &diffs));
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines.len(), SUMMARY_PATHS + 2, "{summary}");
        assert!(lines[0].starts_with(
            "not reproduced: the rebuild differs from img@sha256:1: 23 difference(s)"
        ));
        assert!(lines[1].starts_with("  content /f0: rebuilt aaa") && lines[1].ends_with("..."));
        assert_eq!(
            lines[SUMMARY_PATHS + 1],
            "  ... and 3 more in verify-report.txt"
        );
        assert_eq!(summary, super::summary(&report("img@sha256:1", &diffs)));
    }
}
