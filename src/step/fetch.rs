//! The fetch step run inside the build: for each blob, try the providers in
//! order and keep the first whose bytes match the lockfile's sha256.
//!
//! BuildKit cannot fall back from one URL to another: a failed source ends the
//! whole build, and it has no size or time bound. So when a recipe lists
//! several providers (or an `oci://` or `context://` one), or the lockfile
//! gives sizes, the frontend runs `repro-frontend fetch` from its own image
//! instead. Its LLB holds the whole provider list and the blob list, so
//! which provider answered never changes the LLB of the install step; and a
//! blob is written to the output only after its digest was checked, so nothing
//! unverified can be installed. A healthy first provider is the only one asked.
//!
//! A provider cannot hold the step: each download stops at the blob's size
//! when the lockfile gives one (a byte more, or a byte short, and the next
//! provider is tried) and at [`MAX_BLOB_BYTES`] when it does not; one try at
//! one provider, every request of it included, ends at [`Limits::deadline`]
//! (a provider that trickles is dropped then, and the next one tried); a read
//! that waits longer than [`Limits::stall`] fails; and a download goes to one
//! `<name>.partial` file in the output folder, removed when it fails, so the
//! disk holds at most one partial file per blob in flight (8 at a time).
//! Like `normalize.rs`, this module does I/O because it runs inside the build.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::recipe::template::{Template, Vars, basename};

/// Where the build context is mounted for `context://` providers.
pub const CONTEXT_DIR: &str = "/context";

/// What to fetch: written by the frontend into the fetch exec's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// URL templates, in the order to try them.
    pub providers: Vec<String>,
    pub blobs: Vec<Blob>,
    /// The deadline of one try at one provider for one blob, in seconds
    /// (the recipe's `packages.fetch-timeout`); [`DEADLINE`] when absent,
    /// and then left out of the JSON, so the step's LLB digest is what it
    /// was before the setting existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_secs: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    pub name: String,
    /// Lowercase hex.
    pub sha256: String,
    /// Its length in bytes, when the lockfile gives it. Left out of the JSON
    /// when absent, so a plan without sizes has the bytes (and the fetch step
    /// the LLB digest) it had before sizes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Its IPFS CID, when the lockfile gives one (`{{.CID}}` providers).
    /// Left out when absent, as `size` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

impl Blob {
    /// The blob as a template sees it.
    pub fn vars(&self) -> Vars<'_> {
        Vars {
            name: &self.name,
            sha256: &self.sha256,
            cid: self.cid.as_deref(),
        }
    }
}

/// How much a download of a blob without a recorded size may read: 4 GiB,
/// far above any distro package (the largest Debian .deb files are a few
/// hundred MiB), yet a bound on the disk and time a hostile provider can take.
pub const MAX_BLOB_BYTES: u64 = 4 << 30;

/// Where one provider says a blob is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An `http://` or `https://` URL.
    Http(String),
    /// A registry blob: `<scheme>://<host>/v2/<repo>/blobs/sha256:<hex>`,
    /// shown to users as the `oci://` URL.
    Registry { url: String, shown: String },
    /// A file in the build context (air-gapped builds).
    Context { path: String, shown: String },
}

impl Location {
    pub fn shown(&self) -> &str {
        match self {
            Location::Http(u) => u,
            Location::Registry { shown, .. } | Location::Context { shown, .. } => shown,
        }
    }
}

/// Renders a provider for a blob and sorts out its scheme; `None` when the
/// provider names blobs by CID and this one has none.
pub fn locate(template: &Template, v: Vars) -> Result<Option<Location>, LocateError> {
    let Some(rendered) = template.render(v) else {
        return Ok(None);
    };
    scheme_of(rendered, v.sha256).map(Some).map_err(LocateError)
}

/// A provider's URL for a blob that names no scheme the fetch step knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LocateError(pub String);

fn scheme_of(rendered: String, sha256: &str) -> Result<Location, String> {
    if rendered.starts_with("http://") || rendered.starts_with("https://") {
        return Ok(Location::Http(rendered));
    }
    if let Some(rest) = rendered.strip_prefix("oci://") {
        // oci://<host>/<repo>: the blob is addressed by digest, not by name.
        let (host, repo) = rest
            .split_once('/')
            .filter(|(h, r)| !h.is_empty() && !r.is_empty())
            .ok_or_else(|| format!("\"{rendered}\" is not oci://<registry>/<repository>"))?;
        let repo = repo.trim_end_matches('/');
        // Registries on the loopback are plain HTTP, as the engines assume.
        let scheme = if is_loopback(host) { "http" } else { "https" };
        return Ok(Location::Registry {
            url: format!("{scheme}://{host}/v2/{repo}/blobs/sha256:{sha256}"),
            shown: rendered,
        });
    }
    if let Some(path) = rendered.strip_prefix("context://") {
        let path = path.trim_start_matches('/');
        if path.is_empty() || path.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(format!(
                "\"{rendered}\" is not a clean path in the build context"
            ));
        }
        return Ok(Location::Context {
            path: path.to_string(),
            shown: rendered.clone(),
        });
    }
    Err(format!(
        "\"{rendered}\" has an unknown scheme (use http://, https://, oci:// or context://)"
    ))
}

/// Whether a registry host (`<host>[:<port>]`) is this machine's loopback,
/// matched exactly: an address in 127.0.0.0/8, `[::1]` or `localhost` (any
/// case), each with an optional port. `localhost.example`,
/// `127.0.0.1.example` and `localhostx` are other hosts.
pub fn is_loopback(host: &str) -> bool {
    // The name, and what follows it: nothing or `:<port>`.
    let (local, rest) = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, rest)) => (v6.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback()), rest),
            None => return false,
        },
        None => {
            let (name, rest) = host.find(':').map_or((host, ""), |i| host.split_at(i));
            let local = name.eq_ignore_ascii_case("localhost")
                || name.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback());
            (local, rest)
        }
    };
    let port_ok = rest.is_empty()
        || rest.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    local && port_ok
}

/// Whether an `http://` or `https://` URL names a loopback host (see
/// [`is_loopback`]); user info before an `@` is not the host.
pub fn url_is_loopback(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    is_loopback(host)
}

/// One try at one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub from: String,
    /// `None` when this provider delivered the right bytes.
    pub failure: Option<String>,
}

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub blob: Blob,
    pub attempts: Vec<Attempt>,
    /// The `{{.CID}}` providers passed over: the blob has no CID.
    pub skipped: usize,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.attempts.last().is_some_and(|a| a.failure.is_none())
    }
}

/// How long one try at one provider for one blob may take: 10 minutes,
/// about half a megabyte a second for the largest Debian packages.
pub const DEADLINE: Duration = Duration::from_secs(600);

/// Timeouts of one try and the size cap of one download.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect: Duration,
    /// Until the response headers arrive.
    pub response: Duration,
    /// For the whole of one try at one provider for one blob: every request
    /// (a registry's challenge and token too) and every byte of the body. A
    /// provider that trickles is dropped at this point for the next.
    pub deadline: Duration,
    /// For each read from the connection: a provider that stops sending
    /// fails after this long, not at the deadline.
    pub stall: Duration,
    /// The most a blob without a recorded size may have.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(30),
            deadline: DEADLINE,
            stall: Duration::from_secs(30),
            max_bytes: MAX_BLOB_BYTES,
        }
    }
}

/// How many bytes a download must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    /// The lockfile's size.
    Exactly(u64),
    /// No size recorded: the cap.
    AtMost(u64),
}

impl Length {
    fn of(blob: &Blob, limits: &Limits) -> Length {
        blob.size
            .map_or(Length::AtMost(limits.max_bytes), Length::Exactly)
    }

    fn max(self) -> u64 {
        match self {
            Length::Exactly(n) | Length::AtMost(n) => n,
        }
    }

    /// Why `got` bytes (all of a body, or a Content-Length) are not right,
    /// if they are not.
    fn check(self, got: u64) -> Result<(), String> {
        match self {
            Length::Exactly(n) if got != n => {
                Err(format!("{got} bytes, the lockfile says {n}: not this file"))
            }
            Length::AtMost(n) if got > n => Err(format!(
                "{got} bytes, more than {n}, the cap for a blob the lockfile gives no size for"
            )),
            _ => Ok(()),
        }
    }

    /// The failure of a body that went on past the most it may have.
    fn too_long(self) -> String {
        match self {
            Length::Exactly(n) => {
                format!("more than the lockfile's {n} bytes: not this file (stopped reading)")
            }
            Length::AtMost(n) => format!(
                "more than {n} bytes, the cap for a blob the lockfile gives no size for (stopped reading)"
            ),
        }
    }
}

/// Fetches every blob of the plan into `out` (as `out/<basename>`), trying
/// providers in order; `context` is where `context://` paths are read from.
/// Runs `threads` blobs at a time.
pub fn fetch(
    plan: &Plan,
    out: &Path,
    context: &Path,
    limits: Limits,
    threads: usize,
) -> io::Result<Vec<Outcome>> {
    let templates: Vec<Template> = plan
        .providers
        .iter()
        .map(|p| {
            Template::parse(p).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{p}: {}", e.message))
            })
        })
        .collect::<io::Result<_>>()?;
    fs::create_dir_all(out)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(limits.connect))
        .timeout_recv_response(Some(limits.response))
        .timeout_per_read(Some(limits.stall))
        .http_status_as_error(false)
        .build()
        .into();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; plan.blobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(plan.blobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(blob) = plan.blobs.get(i) else { break };
                    let outcome = fetch_one(&agent, &templates, blob, out, context, &limits);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(outcome);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(results.into_iter().flatten().collect())
}

fn fetch_one(
    agent: &ureq::Agent,
    templates: &[Template],
    blob: &Blob,
    out: &Path,
    context: &Path,
    limits: &Limits,
) -> Outcome {
    let dest = out.join(basename(&blob.name));
    let mut attempts = Vec::new();
    let mut skipped = 0;
    for t in templates {
        let loc = match locate(t, blob.vars()) {
            Ok(Some(l)) => l,
            Ok(None) => {
                skipped += 1;
                continue;
            }
            Err(e) => {
                attempts.push(Attempt {
                    from: t.as_str().to_string(),
                    failure: Some(e.0),
                });
                continue;
            }
        };
        let want = Want {
            sha256: &blob.sha256,
            length: Length::of(blob, limits),
            deadline: Deadline::start(limits.deadline),
        };
        let result = match &loc {
            Location::Http(url) => http_to_file(agent, url, None, &dest, want),
            Location::Registry { url, .. } => registry_to_file(agent, url, &dest, want),
            Location::Context { path, .. } => fs::File::open(context.join(path))
                .map_err(|e| format!("cannot open it in the build context: {e}"))
                .and_then(|f| verified_copy(f, &dest, want)),
        };
        let done = result.is_ok();
        attempts.push(Attempt {
            from: loc.shown().to_string(),
            failure: result.err(),
        });
        if done {
            break;
        }
    }
    Outcome {
        blob: blob.clone(),
        attempts,
        skipped,
    }
}

/// What a download must be: its digest and its length, by its deadline.
#[derive(Clone, Copy, Debug)]
struct Want<'a> {
    sha256: &'a str,
    length: Length,
    deadline: Deadline,
}

/// When one try at one provider ends.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    fn start(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    fn passed(self) -> bool {
        Instant::now() >= self.at
    }

    /// What is left, for the next request's own bound; the failure when
    /// nothing is.
    fn remaining(self) -> Result<Duration, String> {
        match self.at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(self.failure(None)),
        }
    }

    fn failure(self, received: Option<u64>) -> String {
        let got = received.map_or(String::new(), |n| format!(", {n} byte(s) received"));
        format!(
            "not done within {}, the deadline of one try at one provider{got}",
            show_duration(self.total)
        )
    }
}

/// `600 s`, `1.5 s`.
fn show_duration(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{} s", d.as_secs()),
        _ => format!("{:.1} s", d.as_secs_f64()),
    }
}

/// A GET bounded by what is left of the try.
fn get(
    agent: &ureq::Agent,
    url: &str,
    deadline: Deadline,
) -> Result<ureq::RequestBuilder<ureq::typestate::WithoutBody>, String> {
    Ok(agent
        .get(url)
        .config()
        .timeout_global(Some(deadline.remaining()?))
        .build())
}

/// A failed request in words; past the deadline, the deadline's.
fn request_error(e: ureq::Error, deadline: Deadline) -> String {
    match e {
        ureq::Error::Timeout(_) if deadline.passed() => deadline.failure(None),
        e => describe_error(e),
    }
}

/// GETs a URL into `dest` if its bytes have the expected length and sha256.
fn http_to_file(
    agent: &ureq::Agent,
    url: &str,
    auth: Option<&str>,
    dest: &Path,
    want: Want,
) -> Result<(), String> {
    let mut req = get(agent, url, want.deadline)?;
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.call().map_err(|e| request_error(e, want.deadline))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    body_to_file(resp, dest, want)
}

/// A successful response's body into `dest`, if its length and sha256 are
/// right. A wrong Content-Length is known before a byte of the body is read.
fn body_to_file(
    resp: ureq::http::Response<ureq::Body>,
    dest: &Path,
    want: Want,
) -> Result<(), String> {
    if let Some(len) = resp.body().content_length() {
        want.length
            .check(len)
            .map_err(|e| format!("the server announces {e}"))?;
    }
    verified_copy(resp.into_body().into_reader(), dest, want)
}

/// Registry blobs: anonymous pull, following a Bearer token challenge.
fn registry_to_file(agent: &ureq::Agent, url: &str, dest: &Path, want: Want) -> Result<(), String> {
    let resp = get(agent, url, want.deadline)?
        .header("Accept", "application/octet-stream")
        .call()
        .map_err(|e| request_error(e, want.deadline))?;
    let status = resp.status();
    if status.is_success() {
        return body_to_file(resp, dest, want);
    }
    if status.as_u16() != 401 {
        return Err(format!("HTTP {status}"));
    }
    // A response may carry several WWW-Authenticate fields.
    let values: Vec<&str> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let token_url = values
        .iter()
        .find_map(|v| bearer_token_url(v))
        .ok_or_else(|| {
            format!(
                "HTTP 401 and no Bearer challenge with an http(s) realm ({:?})",
                values.join(", ")
            )
        })?;
    let mut token_resp = get(agent, &token_url, want.deadline)?
        .call()
        .map_err(|e| request_error(e, want.deadline))?;
    if !token_resp.status().is_success() {
        return Err(format!(
            "anonymous token request: HTTP {}",
            token_resp.status()
        ));
    }
    let text =
        token_resp
            .body_mut()
            .read_to_string()
            .map_err(|e| match want.deadline.passed() {
                true => want.deadline.failure(None),
                false => format!("anonymous token response: {e}"),
            })?;
    let body: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("anonymous token response: {e}"))?;
    let token = body
        .get("token")
        .or_else(|| body.get("access_token"))
        .and_then(|t| t.as_str())
        .ok_or("anonymous token response has no token")?;
    http_to_file(agent, url, Some(&format!("Bearer {token}")), dest, want)
}

/// `Bearer realm="https://auth/token",service="reg",scope="repository:x:pull"`
/// -> `https://auth/token?service=reg&scope=repository:x:pull`: the first
/// Bearer challenge of a `WWW-Authenticate` value, its `service` and `scope`
/// percent-encoded onto the realm's URL. `None` when the value does not
/// parse, has no Bearer challenge, or its realm is not an http(s) URL.
pub fn bearer_token_url(header: &str) -> Option<String> {
    let challenges = challenges(header).ok()?;
    let bearer = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    let realm = bearer.param("realm")?;
    if !(realm.starts_with("https://") || realm.starts_with("http://")) {
        return None;
    }
    let query: Vec<String> = bearer
        .params
        .iter()
        .filter(|(k, _)| k == "service" || k == "scope")
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect();
    let joiner = if realm.contains('?') { '&' } else { '?' };
    Some(match query.is_empty() {
        true => realm.to_string(),
        false => format!("{realm}{joiner}{}", query.join("&")),
    })
}

/// Percent-encodes a query value, leaving RFC 3986's unreserved characters
/// and the `:` and `/` of a registry scope as they are.
fn query_escape(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One challenge of a `WWW-Authenticate` value (RFC 7235 section 4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// As sent; compare without case.
    pub scheme: String,
    /// A token68 instead of parameters (`Negotiate abc==`).
    pub token68: Option<String>,
    /// Names lowercased, values unquoted, in their order.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The first value of a parameter, by its lowercase name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value: `1#challenge`, a challenge being
/// `auth-scheme [ 1*SP ( token68 / #auth-param ) ]` and an auth-param
/// `token BWS "=" BWS ( token / quoted-string )` (RFC 7235 sections 2.1 and
/// 4.1, RFC 7230 section 3.2.6 for quoted-string and its `\` escapes).
pub fn challenges(header: &str) -> Result<Vec<Challenge>, String> {
    let mut p = Lexer {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_list_separators();
        if p.done() {
            break;
        }
        let scheme = p.token().ok_or_else(|| p.expected("an auth-scheme"))?;
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        let spaced = p.skip_ows() > 0;
        if spaced && !p.done() && p.peek() != Some(b',') {
            if let Some(t) = p.token68() {
                challenge.token68 = Some(t);
            } else {
                p.params(&mut challenge.params)?;
            }
        }
        p.skip_ows();
        if !p.done() && p.peek() != Some(b',') {
            return Err(p.expected("\",\" or the end"));
        }
        out.push(challenge);
    }
    if out.is_empty() {
        return Err("no challenge".into());
    }
    Ok(out)
}

/// A cursor over a header value.
struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expected(&self, what: &str) -> String {
        format!("expected {what} at byte {}", self.i)
    }

    /// Spaces and tabs; how many.
    fn skip_ows(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }

    /// What `#rule` allows between elements: commas and spaces.
    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    fn is_tchar(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(Self::is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A token68, only when it is all there is up to the next `,` or the
    /// end (otherwise the text is auth-params, and nothing is consumed).
    fn token68(&mut self) -> Option<String> {
        let start = self.i;
        let mut j = self.i;
        while self
            .s
            .get(j)
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
        {
            j += 1;
        }
        if j == start {
            return None;
        }
        while self.s.get(j) == Some(&b'=') {
            j += 1;
        }
        let mut k = j;
        while matches!(self.s.get(k), Some(b' ' | b'\t')) {
            k += 1;
        }
        if k < self.s.len() && self.s[k] != b',' {
            return None;
        }
        self.i = j;
        Some(String::from_utf8_lossy(&self.s[start..j]).into_owned())
    }

    /// `#auth-param` up to the end or the start of the next challenge (a
    /// token after a comma that no `=` follows).
    fn params(&mut self, out: &mut Vec<(String, String)>) -> Result<(), String> {
        loop {
            let name = self
                .token()
                .ok_or_else(|| self.expected("a parameter name"))?;
            self.skip_ows();
            if self.peek() != Some(b'=') {
                return Err(self.expected(&format!("\"=\" after \"{name}\"")));
            }
            self.i += 1;
            self.skip_ows();
            let value = match self.peek() {
                Some(b'"') => self.quoted()?,
                _ => self
                    .token()
                    .ok_or_else(|| self.expected(&format!("a value for \"{name}\"")))?,
            };
            out.push((name.to_ascii_lowercase(), value));
            // Another parameter of this challenge, or the next challenge?
            let save = self.i;
            self.skip_ows();
            if self.peek() != Some(b',') {
                self.i = save;
                return Ok(());
            }
            self.skip_list_separators();
            let next = self.i;
            let is_param = self.token().is_some() && {
                self.skip_ows();
                self.peek() == Some(b'=')
            };
            self.i = if is_param { next } else { save };
            if !is_param {
                return Ok(());
            }
        }
    }

    /// A quoted-string, unescaped: `"a \"b\""` -> `a "b"`.
    fn quoted(&mut self) -> Result<String, String> {
        let start = self.i;
        self.i += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated quoted string at byte {start}")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&value).into_owned());
                }
                Some(b'\\') => {
                    let escaped = self
                        .s
                        .get(self.i + 1)
                        .copied()
                        .ok_or_else(|| format!("unterminated quoted string at byte {start}"))?;
                    value.push(escaped);
                    self.i += 2;
                }
                Some(b) => {
                    value.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

fn describe_error(e: ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
    }
}

/// Copies `src` into `dest` through a temporary file, and keeps it only if
/// its length and sha256 are the expected ones. Reads one byte past the
/// length at most: a longer source is cut off there.
fn verified_copy(src: impl Read, dest: &Path, want: Want) -> Result<(), String> {
    let max = want.length.max();
    let mut src = src.take(max.saturating_add(1));
    // The whole name plus a suffix: `x.pkg.tar.zst` and `x.pkg.tar.xz`,
    // fetched by two threads at once, must not share a temporary file.
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let tmp: PathBuf = dest.with_file_name(name);
    let result = (|| -> Result<String, String> {
        let mut f =
            fs::File::create(&tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut read: u64 = 0;
        loop {
            let n = src
                .read(&mut buf)
                .map_err(|e| match want.deadline.passed() {
                    true => want.deadline.failure(Some(read)),
                    false => format!("reading the body: {e}"),
                })?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if want.deadline.passed() {
                return Err(want.deadline.failure(Some(read)));
            }
            if read > max {
                return Err(want.length.too_long());
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n])
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        }
        want.length.check(read)?;
        Ok(hex::encode(hasher.finalize()))
    })();
    let sha256 = want.sha256;
    match result {
        Ok(got) if got == sha256 => {
            fs::rename(&tmp, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))
        }
        Ok(got) => {
            let _ = fs::remove_file(&tmp);
            Err(format!(
                "wrong bytes: got sha256:{got}, the lockfile says sha256:{sha256}"
            ))
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The report printed by the fetch step; the error summary when any failed.
pub fn report(outcomes: &[Outcome]) -> (Vec<String>, Option<String>) {
    let mut lines = Vec::new();
    for o in outcomes {
        if let Some(last) = o.attempts.last().filter(|_| o.ok()) {
            let tries = o.attempts.len();
            let note = if tries > 1 {
                format!(" (after {} failed provider(s))", tries - 1)
            } else {
                String::new()
            };
            lines.push(format!(
                "fetched {} from {}{note}",
                basename(&o.blob.name),
                last.from
            ));
        }
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok()).collect();
    if failed.is_empty() {
        return (lines, None);
    }
    let mut msg = format!(
        "{} of {} package(s) could not be fetched and verified; nothing was installed:",
        failed.len(),
        outcomes.len()
    );
    for o in failed {
        msg.push_str(&format!("\n  {} (sha256:{}):", o.blob.name, o.blob.sha256));
        if o.skipped > 0 {
            msg.push_str(&format!(
                "\n    {} {{{{.CID}}}} provider(s): skipped, the lockfile has no CID for it",
                o.skipped
            ));
        }
        for a in &o.attempts {
            msg.push_str(&format!(
                "\n    {}: {}",
                a.from,
                a.failure.as_deref().unwrap_or("ok")
            ));
        }
    }
    (lines, Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn t(s: &str) -> Template {
        Template::parse(s).unwrap()
    }

    /// Where a provider says a blob without a CID is.
    fn loc(template: &str, name: &str, sha256: &str) -> Result<Location, LocateError> {
        let v = Vars {
            name,
            sha256,
            cid: None,
        };
        locate(&t(template), v).map(|l| l.expect("a location"))
    }

    #[test]
    fn locations_by_scheme() {
        let sum = "ab".repeat(32);
        assert_eq!(
            loc("http://m/d/{{.Name}}", "pool/x.deb", &sum).unwrap(),
            Location::Http("http://m/d/pool/x.deb".into())
        );
        assert_eq!(
            loc("oci://127.0.0.1:5000/repro/pool", "pool/x.deb", &sum).unwrap(),
            Location::Registry {
                url: format!("http://127.0.0.1:5000/v2/repro/pool/blobs/sha256:{sum}"),
                shown: "oci://127.0.0.1:5000/repro/pool".into()
            }
        );
        assert!(matches!(
            loc("oci://registry.example/r", "x", &sum).unwrap(),
            Location::Registry { url, .. } if url.starts_with("https://registry.example/v2/r/blobs/")
        ));
        assert_eq!(
            loc("context://blobs/{{.Basename}}", "pool/x.deb", &sum).unwrap(),
            Location::Context {
                path: "blobs/x.deb".into(),
                shown: "context://blobs/x.deb".into()
            }
        );
        assert!(loc("context://../{{.Basename}}", "x.deb", &sum).is_err());
        assert!(
            loc("ftp://m/{{.Name}}", "x.deb", &sum)
                .unwrap_err()
                .0
                .contains("unknown scheme")
        );
        assert!(loc("oci://hostonly", "x.deb", &sum).is_err());
    }

    // Issue 24: the plain-HTTP exception matched `localhost.evil.tld` and
    // `127.0.0.1.evil.tld` by prefix.
    #[test]
    fn only_loopback_registries_are_plain_http() {
        let sum = "ab".repeat(32);
        let scheme = |host: &str| match loc(&format!("oci://{host}/r"), "x", &sum).unwrap() {
            Location::Registry { url, .. } => url.split_once("://").unwrap().0.to_string(),
            other => panic!("{other:?}"),
        };
        for remote in [
            "localhost.evil.tld",
            "localhost.evil.tld:5000",
            "localhostx",
            "localhost:",
            "localhost:5000x",
            "127.0.0.1.evil.tld",
            "127.0.0.1.evil.tld:5000",
            "127.0.0",
            "127.0.0.256",
            "127.0.0.01",
            "127.example",
            "[::1].evil.tld",
            "[::1]x",
            "[::2]",
            "128.0.0.1",
            "registry.example",
        ] {
            assert_eq!(scheme(remote), "https", "{remote}");
        }
        for local in [
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "127.255.255.254",
            "localhost",
            "localhost:5000",
            "LocalHost:5000",
            "[::1]",
            "[::1]:5000",
        ] {
            assert_eq!(scheme(local), "http", "{local}");
        }
    }

    #[test]
    fn loopback_urls() {
        assert!(url_is_loopback("http://127.0.0.1:8000/pool/a.deb"));
        assert!(url_is_loopback("https://localhost/a.deb"));
        assert!(url_is_loopback("http://[::1]:80?x"));
        assert!(url_is_loopback("http://user@127.0.0.1/a"));
        assert!(!url_is_loopback("http://127.0.0.1@mirror.example/a"));
        assert!(!url_is_loopback("http://localhost.mirror.example/a"));
        assert!(!url_is_loopback("http://mirror.example/127.0.0.1/a"));
        assert!(!url_is_loopback("127.0.0.1/a"));
    }

    #[test]
    fn bearer_challenges() {
        assert_eq!(
            bearer_token_url(r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull""#).as_deref(),
            Some("https://auth.example/token?service=reg.example&scope=repository:a/b:pull")
        );
        assert_eq!(bearer_token_url("Basic realm=x"), None);
    }

    #[test]
    fn challenges_parse_into_schemes_token68_and_params() {
        let got =
            challenges(r#"Negotiate abc==, Basic realm="a,b=c", charset=UTF-8,Bearer"#).unwrap();
        let params = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            got,
            [
                Challenge {
                    scheme: "Negotiate".into(),
                    token68: Some("abc==".into()),
                    params: vec![],
                },
                Challenge {
                    scheme: "Basic".into(),
                    token68: None,
                    params: params(&[("realm", "a,b=c"), ("charset", "UTF-8")]),
                },
                Challenge {
                    scheme: "Bearer".into(),
                    token68: None,
                    params: vec![],
                },
            ]
        );
        assert_eq!(
            challenges(r#"Bearer realm="open"#).unwrap_err(),
            "unterminated quoted string at byte 13"
        );
        assert!(challenges(" , ").is_err());
    }

    // Issue 24: the challenge parser split inside quoted values.
    #[test]
    fn bearer_challenges_follow_rfc_7235() {
        let url = |h: &str| bearer_token_url(h);
        let ok = |h: &str, want: &str| assert_eq!(url(h).as_deref(), Some(want), "{h}");
        // Commas and `=` inside quoted values; the realm's own query kept.
        ok(
            r#"Bearer realm="https://auth.example/token?a=1,b=2",service="reg",scope="repository:x:pull,push""#,
            "https://auth.example/token?a=1,b=2&service=reg&scope=repository:x:pull%2Cpush",
        );
        // Several challenges in one header, Bearer not first; a quoted comma
        // in another scheme's realm.
        ok(
            r#"Basic realm="basic, realm", Bearer realm="https://auth.example/t", service="reg""#,
            "https://auth.example/t?service=reg",
        );
        // A token68 challenge before it.
        ok(
            r#"Negotiate abc+/123==, Bearer realm="https://auth.example/t""#,
            "https://auth.example/t",
        );
        // Scheme and parameter names in any case; token values; spaces
        // around `=` and `,`.
        ok(
            r#"bEARER REALM = "https://auth.example/t" , Service=reg,SCOPE="a=b""#,
            "https://auth.example/t?service=reg&scope=a%3Db",
        );
        // Backslash-escaped quotes and backslashes.
        ok(
            r#"Bearer realm="https://auth.example/t",service="a \"b\" \\c""#,
            "https://auth.example/t?service=a%20%22b%22%20%5Cc",
        );
        // Other parameters are ignored, quoted commas and all.
        ok(
            r#"Bearer realm="https://auth.example/t",error="invalid_token",error_description="expired, renew it""#,
            "https://auth.example/t",
        );
        // No Bearer challenge, a broken header, or a realm that is no URL.
        for bad in [
            "",
            "Basic realm=x",
            "Basic realm=\"a\", Negotiate abc==",
            r#"Bearer realm="https://auth.example/t"#,
            r#"Bearer realm"#,
            r#"Bearer realm=,service=x"#,
            r#"Bearer service="reg""#,
            r#"Bearer realm="file:///etc/passwd""#,
            r#"Bearer realm="https://auth.example/t" junk"#,
        ] {
            assert_eq!(url(bad), None, "{bad}");
        }
    }

    /// Serves fixed responses per path; anything else is a 404.
    fn serve(routes: Vec<(&'static str, &'static str, Vec<u8>)>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = routes
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, st, b)| (*st, b.clone()))
                    .unwrap_or(("404 Not Found", Vec::new()));
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            }
        });
        url
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn test_limits() -> Limits {
        Limits {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(2),
            deadline: Duration::from_secs(5),
            stall: Duration::from_secs(2),
            max_bytes: MAX_BLOB_BYTES,
        }
    }

    fn run(
        providers: Vec<String>,
        blobs: Vec<Blob>,
        context: &Path,
    ) -> (tempfile::TempDir, Vec<Outcome>) {
        let out = tempfile::tempdir().unwrap();
        let plan = Plan {
            providers,
            blobs,
            deadline_secs: None,
        };
        let outcomes = fetch(&plan, out.path(), context, test_limits(), 4).unwrap();
        (out, outcomes)
    }

    #[test]
    fn falls_through_to_the_next_provider_and_keeps_only_right_bytes() {
        let good = b"the real package".to_vec();
        let bad = serve(vec![
            ("/p/a.deb", "200 OK", b"tampered".to_vec()),
            ("/p/b.deb", "500 Internal Server Error", Vec::new()),
        ]);
        let healthy = serve(vec![
            ("/p/a.deb", "200 OK", good.clone()),
            ("/p/b.deb", "200 OK", good.clone()),
        ]);
        // A port nobody listens on: connection refused.
        let down = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let blobs = vec![
            Blob {
                name: "p/a.deb".into(),
                sha256: sha(&good),
                size: None,
                cid: None,
            },
            Blob {
                name: "p/b.deb".into(),
                sha256: sha(&good),
                size: None,
                cid: None,
            },
        ];
        let providers = vec![
            format!("{down}/{{{{.Name}}}}"),
            format!("{bad}/{{{{.Name}}}}"),
            format!("{healthy}/{{{{.Name}}}}"),
        ];
        let (out, outcomes) = run(providers, blobs, Path::new("/nonexistent"));
        assert!(outcomes.iter().all(Outcome::ok), "{outcomes:?}");
        assert_eq!(fs::read(out.path().join("a.deb")).unwrap(), good);
        let a = &outcomes[0].attempts;
        assert_eq!(a.len(), 3);
        assert!(
            a[1].failure
                .as_deref()
                .unwrap()
                .starts_with("wrong bytes: got sha256:"),
            "{a:?}"
        );
        assert!(
            outcomes[1].attempts[1]
                .failure
                .as_deref()
                .unwrap()
                .contains("500"),
            "{:?}",
            outcomes[1].attempts
        );
        let (lines, err) = report(&outcomes);
        assert!(err.is_none());
        assert!(
            lines[0].ends_with("(after 2 failed provider(s))"),
            "{lines:?}"
        );
        assert!(!out.path().join("a.partial").exists());
    }

    #[test]
    fn cid_providers_serve_blobs_with_a_cid_and_are_skipped_for_the_rest() {
        let (a, b) = (b"package a".to_vec(), b"package b".to_vec());
        let cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        const AT: &str = "/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        // A gateway that serves wrong bytes, a good one, then a mirror by name.
        let bad = serve(vec![(AT, "200 OK", b"forged".to_vec())]);
        let gateway = serve(vec![(AT, "200 OK", a.clone())]);
        let mirror = serve(vec![("/p/b.deb", "200 OK", b.clone())]);
        let blob = |name: &str, bytes: &[u8], cid: Option<&str>| Blob {
            name: name.into(),
            sha256: sha(bytes),
            size: None,
            cid: cid.map(str::to_string),
        };
        let providers = vec![
            format!("{bad}/ipfs/{{{{.CID}}}}"),
            format!("{gateway}/ipfs/{{{{ .CID }}}}"),
            format!("{mirror}/{{{{.Name}}}}"),
        ];
        let blobs = vec![blob("p/a.deb", &a, Some(cid)), blob("p/b.deb", &b, None)];
        let (out, outcomes) = run(providers.clone(), blobs, Path::new("/nonexistent"));
        assert!(outcomes.iter().all(Outcome::ok), "{outcomes:?}");
        assert_eq!(fs::read(out.path().join("a.deb")).unwrap(), a);
        assert_eq!(fs::read(out.path().join("b.deb")).unwrap(), b);
        let first = &outcomes[0].attempts;
        assert!(
            first[0]
                .failure
                .as_deref()
                .unwrap()
                .starts_with("wrong bytes"),
            "{first:?}"
        );
        assert_eq!(first[1].from, format!("{gateway}/ipfs/{cid}"));
        // b has no CID: both gateways passed over, not failed.
        assert_eq!((outcomes[1].skipped, outcomes[1].attempts.len()), (2, 1));
        let (lines, err) = report(&outcomes);
        assert!(err.is_none());
        // Skipping is not a failure (the frontend names it once, in the
        // gather step's name).
        assert_eq!(lines[1], format!("fetched b.deb from {mirror}/p/b.deb"));
        // With only the gateways, b cannot be fetched, and the error says why.
        let blobs = vec![blob("p/b.deb", &b, None)];
        let (_out, outcomes) = run(providers[..2].to_vec(), blobs, Path::new("/nonexistent"));
        let (_, err) = report(&outcomes);
        assert!(
            err.unwrap()
                .contains("2 {{.CID}} provider(s): skipped, the lockfile has no CID for it"),
            "{outcomes:?}"
        );
    }

    #[test]
    fn a_plan_without_cids_or_sizes_has_the_bytes_it_had_before_them() {
        let plan = Plan {
            providers: vec!["http://m/{{.Name}}".into()],
            blobs: vec![Blob {
                name: "a.deb".into(),
                sha256: "0".repeat(64),
                size: None,
                cid: None,
            }],
            deadline_secs: None,
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"providers":["http://m/{{{{.Name}}}}"],"blobs":[{{"name":"a.deb","sha256":"{}"}}]}}"#,
                "0".repeat(64)
            )
        );
    }

    #[test]
    fn a_healthy_first_provider_is_the_only_one_asked() {
        let good = b"x".to_vec();
        let first = serve(vec![("/a.deb", "200 OK", good.clone())]);
        let second = "http://127.0.0.1:9".to_string();
        let blobs = vec![Blob {
            name: "a.deb".into(),
            sha256: sha(&good),
            size: None,
            cid: None,
        }];
        let (_out, outcomes) = run(
            vec![
                format!("{first}/{{{{.Name}}}}"),
                format!("{second}/{{{{.Name}}}}"),
            ],
            blobs,
            Path::new("/"),
        );
        assert_eq!(outcomes[0].attempts.len(), 1);
    }

    #[test]
    fn when_all_fail_the_report_lists_every_attempt_and_nothing_is_written() {
        let wrong = serve(vec![("/a.deb", "200 OK", b"nope".to_vec())]);
        let blobs = vec![Blob {
            name: "a.deb".into(),
            sha256: "0".repeat(64),
            size: None,
            cid: None,
        }];
        let (out, outcomes) = run(
            vec![
                format!("{wrong}/{{{{.Name}}}}"),
                "context://cache/{{.Basename}}".into(),
            ],
            blobs,
            Path::new("/nonexistent"),
        );
        assert!(!outcomes[0].ok());
        let (_, err) = report(&outcomes);
        let err = err.unwrap();
        assert!(
            err.starts_with(
                "1 of 1 package(s) could not be fetched and verified; nothing was installed:"
            ),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "{wrong}/a.deb: wrong bytes: got sha256:{}",
                sha(b"nope")
            )),
            "{err}"
        );
        assert!(
            err.contains("context://cache/a.deb: cannot open it in the build context"),
            "{err}"
        );
        assert_eq!(
            fs::read_dir(out.path()).unwrap().count(),
            0,
            "nothing unverified is left"
        );
    }

    #[test]
    fn context_blobs_are_verified_too() {
        let ctx = tempfile::tempdir().unwrap();
        fs::create_dir_all(ctx.path().join("blobs")).unwrap();
        fs::write(ctx.path().join("blobs/a.deb"), b"air-gapped").unwrap();
        let blobs = vec![Blob {
            name: "pool/a.deb".into(),
            sha256: sha(b"air-gapped"),
            size: None,
            cid: None,
        }];
        let (out, outcomes) = run(
            vec!["context://blobs/{{.Basename}}".into()],
            blobs,
            ctx.path(),
        );
        assert!(outcomes[0].ok(), "{outcomes:?}");
        assert_eq!(fs::read(out.path().join("a.deb")).unwrap(), b"air-gapped");
    }

    /// What a provider sends after its status line.
    #[derive(Clone)]
    enum Send {
        /// Zeros until the client hangs up, no Content-Length.
        Zeros,
        /// These bytes, then close (no Content-Length).
        Bytes(Vec<u8>),
        /// A Content-Length header of this value, then these bytes.
        Announce(u64, Vec<u8>),
        /// A Content-Length header, then one byte per interval.
        Trickle(Vec<u8>, Duration),
    }

    /// A server on 127.0.0.1 that answers each connection in a thread of its
    /// own (so a stream without end does not hold the others): `answer`
    /// gets the request's head and the connection. Its address.
    fn serve_each(
        answer: impl Fn(&str, &mut std::net::TcpStream) + std::marker::Send + Sync + 'static,
    ) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let answer = std::sync::Arc::new(answer);
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let n = s.read(&mut buf).unwrap_or(0);
                    answer(&String::from_utf8_lossy(&buf[..n]), &mut s);
                });
            }
        });
        addr
    }

    /// Serves each path its `Send`.
    fn serve_stream(routes: Vec<(&'static str, Send)>) -> String {
        let addr = serve_each(move |req, s| {
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            let Some((_, send)) = routes.iter().find(|(p, _)| *p == path) else {
                let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                return;
            };
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n");
            match send {
                Send::Zeros => {
                    let _ = s.write_all(b"\r\n");
                    let zeros = vec![0u8; 1 << 16];
                    while s.write_all(&zeros).is_ok() {}
                }
                Send::Bytes(b) => {
                    let _ = s.write_all(b"\r\n");
                    let _ = s.write_all(b);
                }
                Send::Announce(len, b) => {
                    let _ = write!(s, "Content-Length: {len}\r\n\r\n");
                    let _ = s.write_all(b);
                }
                Send::Trickle(b, every) => {
                    let _ = write!(s, "Content-Length: {}\r\n\r\n", b.len());
                    for byte in b {
                        if s.write_all(&[*byte]).is_err() {
                            break;
                        }
                        std::thread::sleep(*every);
                    }
                }
            }
        });
        format!("http://{addr}")
    }

    fn only_file_left(out: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn hostile_providers_are_cut_off_at_the_recorded_size() {
        let good: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut longer = good.clone();
        longer.extend_from_slice(b"and then some");
        let hostile = serve_stream(vec![
            ("/zeros/a.deb", Send::Zeros),
            ("/longer/a.deb", Send::Bytes(longer)),
            (
                "/shorter/a.deb",
                Send::Bytes(good[..good.len() - 1].to_vec()),
            ),
            ("/lying/a.deb", Send::Announce(1 << 40, good.clone())),
            ("/good/a.deb", Send::Bytes(good.clone())),
        ]);
        let blob = Blob {
            name: "a.deb".into(),
            sha256: sha(&good),
            size: Some(good.len() as u64),
            cid: None,
        };
        let providers: Vec<String> = ["zeros", "longer", "shorter", "lying", "good"]
            .iter()
            .map(|p| format!("{hostile}/{p}/{{{{.Name}}}}"))
            .collect();

        // (a) alone before the good one: how long the endless stream holds it.
        let started = std::time::Instant::now();
        let (out, outcomes) = run(
            vec![providers[0].clone(), providers[4].clone()],
            vec![blob.clone()],
            Path::new("/nonexistent"),
        );
        let took = started.elapsed();
        eprintln!("an endless stream of zeros, then the good provider: {took:?}");
        assert!(outcomes[0].ok(), "{outcomes:?}");
        assert_eq!(fs::read(out.path().join("a.deb")).unwrap(), good);

        let (out, outcomes) = run(providers, vec![blob], Path::new("/nonexistent"));
        assert!(outcomes[0].ok(), "{outcomes:?}");
        let failures: Vec<&str> = outcomes[0]
            .attempts
            .iter()
            .filter_map(|a| a.failure.as_deref())
            .collect();
        assert_eq!(
            failures,
            [
                "more than the lockfile's 100000 bytes: not this file (stopped reading)",
                "more than the lockfile's 100000 bytes: not this file (stopped reading)",
                "99999 bytes, the lockfile says 100000: not this file",
                "the server announces 1099511627776 bytes, the lockfile says 100000: not this file",
            ]
        );
        assert_eq!(fs::read(out.path().join("a.deb")).unwrap(), good);
        assert_eq!(only_file_left(out.path()), ["a.deb"]);
    }

    /// A blob of these bytes, its size in the lockfile.
    fn sized(name: &str, bytes: &[u8]) -> Blob {
        Blob {
            name: name.into(),
            sha256: sha(bytes),
            size: Some(bytes.len() as u64),
            cid: None,
        }
    }

    /// Fetches one blob, each try at one provider ending at `deadline`.
    fn fetch_within(
        providers: Vec<String>,
        blob: Blob,
        deadline: Duration,
    ) -> (tempfile::TempDir, Vec<Outcome>) {
        let out = tempfile::tempdir().unwrap();
        let plan = Plan {
            providers,
            blobs: vec![blob],
            deadline_secs: None,
        };
        let limits = Limits {
            deadline,
            ..test_limits()
        };
        let outcomes = fetch(&plan, out.path(), Path::new("/"), limits, 1).unwrap();
        (out, outcomes)
    }

    // Issue 24: a mirror trickling a byte at a time held the fetch until the
    // body's own timeout; one try at one provider now has one deadline.
    #[test]
    fn a_trickling_provider_is_abandoned_at_the_deadline_for_the_next() {
        let good: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        // 60 s for the whole file: far past the deadline and the test's limit.
        let hostile = serve_stream(vec![
            (
                "/slow/a.deb",
                Send::Trickle(good.clone(), Duration::from_millis(100)),
            ),
            ("/good/a.deb", Send::Bytes(good.clone())),
        ]);
        let started = std::time::Instant::now();
        let (out, outcomes) = fetch_within(
            vec![
                format!("{hostile}/slow/{{{{.Name}}}}"),
                format!("{hostile}/good/{{{{.Name}}}}"),
            ],
            sized("a.deb", &good),
            Duration::from_secs(1),
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(outcomes[0].ok(), "{outcomes:?}");
        let attempts = &outcomes[0].attempts;
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        let failure = attempts[0].failure.as_deref().unwrap();
        assert!(
            failure.starts_with("not done within 1 s, the deadline of one try at one provider, "),
            "{failure}"
        );
        assert!(failure.ends_with(" byte(s) received"), "{failure}");
        assert_eq!(fs::read(out.path().join("a.deb")).unwrap(), good);
        assert_eq!(only_file_left(out.path()), ["a.deb"]);
    }

    /// A registry at 127.0.0.1 that asks for a Bearer token (a challenge
    /// with commas in its quoted values) and serves `blob` for the token,
    /// each answer `delay` late; the URL of its `oci://` provider.
    fn serve_registry(blob: Vec<u8>, delay: Duration) -> String {
        let addr = std::sync::Arc::new(std::sync::OnceLock::<std::net::SocketAddr>::new());
        let known = addr.clone();
        let bound = serve_each(move |req, s| {
            let target = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            let authorized = req
                .lines()
                .any(|l| l.eq_ignore_ascii_case("authorization: Bearer t0k"));
            std::thread::sleep(delay);
            let token_path = "/token?x=1,y=2&service=reg&scope=repository:r:pull%2Cpush";
            let head = |len: usize| {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
            };
            let _ = if target == token_path {
                let body = br#"{"token":"t0k"}"#;
                s.write_all(head(body.len()).as_bytes())
                    .and_then(|()| s.write_all(body))
            } else if !target.starts_with("/v2/r/blobs/sha256:") {
                s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            } else if !authorized {
                let at = known.get().copied();
                let at = at.map_or(String::new(), |a| a.to_string());
                write!(
                    s,
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x, y\"\r\nWWW-Authenticate: Bearer realm=\"http://{at}/token?x=1,y=2\",service=\"reg\",scope=\"repository:r:pull,push\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            } else {
                s.write_all(head(blob.len()).as_bytes())
                    .and_then(|()| s.write_all(&blob))
            };
        });
        let _ = addr.set(bound);
        let addr = bound;
        format!("oci://{addr}/r")
    }

    #[test]
    fn a_registry_blob_comes_through_its_bearer_challenge() {
        let good = b"a registry blob".to_vec();
        let registry = serve_registry(good.clone(), Duration::ZERO);
        let (out, outcomes) = run(
            vec![registry.clone()],
            vec![sized("p/a.deb", &good)],
            Path::new("/"),
        );
        assert!(outcomes[0].ok(), "{outcomes:?}");
        assert_eq!(outcomes[0].attempts[0].from, registry);
        assert_eq!(fs::read(out.path().join("a.deb")).unwrap(), good);
    }

    // Issue 24: each request of a registry's token dance had its own
    // timeouts, so a slow registry could hold one try for their sum.
    #[test]
    fn the_deadline_covers_every_request_of_a_registry_try() {
        let good = b"a registry blob".to_vec();
        // Three answers (challenge, token, blob), each 700 ms late: each
        // within the per-request limits, the three past the deadline.
        let registry = serve_registry(good.clone(), Duration::from_millis(700));
        let mirror = serve(vec![("/p/a.deb", "200 OK", good.clone())]);
        let (out, outcomes) = fetch_within(
            vec![registry, format!("{mirror}/{{{{.Name}}}}")],
            sized("p/a.deb", &good),
            Duration::from_millis(1500),
        );
        assert!(outcomes[0].ok(), "{outcomes:?}");
        let attempts = &outcomes[0].attempts;
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        assert_eq!(
            attempts[0].failure.as_deref(),
            Some("not done within 1.5 s, the deadline of one try at one provider")
        );
        assert_eq!(attempts[1].from, format!("{mirror}/p/a.deb"));
        assert_eq!(fs::read(out.path().join("a.deb")).unwrap(), good);
    }

    #[test]
    fn without_a_size_a_download_stops_at_the_cap() {
        let good = b"small".to_vec();
        let hostile = serve_stream(vec![
            ("/zeros/a.deb", Send::Zeros),
            ("/good/a.deb", Send::Bytes(good.clone())),
        ]);
        let out = tempfile::tempdir().unwrap();
        let plan = Plan {
            providers: vec![
                format!("{hostile}/zeros/{{{{.Name}}}}"),
                format!("{hostile}/good/{{{{.Name}}}}"),
            ],
            blobs: vec![Blob {
                name: "a.deb".into(),
                sha256: sha(&good),
                size: None,
                cid: None,
            }],
            deadline_secs: None,
        };
        let limits = Limits {
            max_bytes: 1 << 20,
            ..test_limits()
        };
        let outcomes = fetch(&plan, out.path(), Path::new("/"), limits, 1).unwrap();
        assert!(outcomes[0].ok(), "{outcomes:?}");
        assert_eq!(
            outcomes[0].attempts[0].failure.as_deref(),
            Some(
                "more than 1048576 bytes, the cap for a blob the lockfile gives no size for (stopped reading)"
            )
        );
        assert_eq!(only_file_left(out.path()), ["a.deb"]);
    }

    #[test]
    fn a_plan_without_sizes_serializes_as_before() {
        let mut blob = Blob {
            name: "a.deb".into(),
            sha256: "ab".into(),
            size: None,
            cid: None,
        };
        assert_eq!(
            serde_json::to_string(&blob).unwrap(),
            r#"{"name":"a.deb","sha256":"ab"}"#
        );
        let back: Blob = serde_json::from_str(r#"{"name":"a.deb","sha256":"ab"}"#).unwrap();
        assert_eq!(back, blob);
        blob.size = Some(7);
        assert_eq!(
            serde_json::to_string(&blob).unwrap(),
            r#"{"name":"a.deb","sha256":"ab","size":7}"#
        );
    }
}
