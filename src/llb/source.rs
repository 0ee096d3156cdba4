//! Source ops: an image by reference, a client directory, an HTTP file
//! checked against its sha256 (mirrors client/llb/source.go). Pure.

use std::collections::{BTreeMap, BTreeSet};

use bollard_buildkit_proto::pb;

use super::*;

/// How an image source finds its image: BuildKit's `image.resolvemode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResolveMode {
    #[default]
    Default,
    ForcePull,
    PreferLocal,
}

impl ResolveMode {
    /// Reads the `image-resolve-mode` frontend opt.
    pub fn from_opt(value: &str) -> Option<ResolveMode> {
        match value {
            "" | "default" => Some(ResolveMode::Default),
            "pull" => Some(ResolveMode::ForcePull),
            "local" => Some(ResolveMode::PreferLocal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResolveMode::Default => "default",
            ResolveMode::ForcePull => "pull",
            ResolveMode::PreferLocal => "local",
        }
    }
}

fn source(
    identifier: String,
    attrs: BTreeMap<String, String>,
    name: Option<String>,
    mut caps: BTreeSet<Cap>,
    platform: Option<pb::Platform>,
) -> State {
    let mut op = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp { identifier, attrs })),
        ..Default::default()
    };
    let platform = platform.map(Arc::new);
    set_platform(&mut op, &mut caps, &platform);
    State {
        platform,
        ..State::from_output(Output {
            vertex: Vertex::new(op, Vec::new(), name, caps, Vec::new()),
            index: 0,
        })
    }
}

/// mirrors client/llb/source.go Image(). With a platform, BuildKit takes
/// that platform's manifest from an index, and execs on the state run that
/// platform's programs; without one, the worker's own.
pub fn image(
    reference: &str,
    mode: ResolveMode,
    name: Option<String>,
    platform: Option<pb::Platform>,
) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = BTreeSet::from([CAP_SOURCE_IMAGE]);
    if mode != ResolveMode::Default {
        attrs.insert("image.resolvemode".to_string(), mode.as_str().to_string());
        caps.insert(CAP_SOURCE_IMAGE_RESOLVE_MODE);
    }
    source(
        format!("docker-image://{reference}"),
        attrs,
        name,
        caps,
        platform,
    )
}

/// Options of a local (client directory) source.
#[derive(Clone, Debug, Default)]
pub struct LocalOpts {
    pub session_id: Option<String>,
    pub include_patterns: Vec<String>,
    pub shared_key_hint: Option<String>,
}

/// mirrors client/llb/source.go Local()
pub fn local(name: &str, opts: &LocalOpts, display: Option<String>) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = BTreeSet::from([CAP_SOURCE_LOCAL]);
    if let Some(id) = &opts.session_id {
        attrs.insert("local.session".to_string(), id.clone());
        caps.insert(CAP_SOURCE_LOCAL_SESSION_ID);
    }
    if !opts.include_patterns.is_empty() {
        // BuildKit reads this attribute as a JSON array of strings.
        let json = serde_json::to_string(&opts.include_patterns).unwrap_or_default();
        attrs.insert("local.includepattern".to_string(), json);
        caps.insert(CAP_SOURCE_LOCAL_INCLUDE_PATTERNS);
    }
    if let Some(hint) = &opts.shared_key_hint {
        attrs.insert("local.sharedkeyhint".to_string(), hint.clone());
        caps.insert(CAP_SOURCE_LOCAL_SHARED_KEY_HINT);
    }
    source(format!("local://{name}"), attrs, display, caps, None)
}

/// mirrors client/llb/source.go HTTP(): one file, fetched by BuildKit and
/// verified against `checksum` (`sha256:<hex>`) before anything uses it.
pub fn http(
    url: &str,
    checksum: &str,
    filename: &str,
    perm: Option<u32>,
    name: Option<String>,
) -> State {
    let mut attrs = BTreeMap::new();
    let mut caps = BTreeSet::from([CAP_SOURCE_HTTP]);
    attrs.insert("http.checksum".to_string(), checksum.to_string());
    caps.insert(CAP_SOURCE_HTTP_CHECKSUM);
    attrs.insert("http.filename".to_string(), filename.to_string());
    if let Some(perm) = perm {
        attrs.insert("http.perm".to_string(), format!("{perm:o}"));
        caps.insert(CAP_SOURCE_HTTP_PERM);
    }
    source(url.to_string(), attrs, name, caps, None)
}
