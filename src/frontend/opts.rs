//! The frontend's options, as BuildKit hands them over in the environment,
//! parsed once into one typed value: the target, the platforms, the build
//! args and the rest. Pure: it reads no environment itself (the caller hands
//! over the variables).
//!
//! BuildKit passes each opt as `BUILDKIT_FRONTEND_OPT_<n>=<key>=<value>` (the
//! numbering carries no meaning) plus `BUILDKIT_SESSION_ID`.

use std::collections::BTreeMap;

use crate::convert::Platform;
pub use crate::convert::platform::{PlatformError, parse_platform};
use crate::llb::{Network, ResolveMode};

/// An opt BuildKit handed over that this frontend cannot take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptsError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("invalid image-resolve-mode \"{0}\" (expected default, pull or local)")]
    ResolveMode(String),
    #[error("invalid network mode \"{0}\" (expected default, host or none)")]
    Network(String),
    #[error("invalid cache-imports option {json:?}: {reason}")]
    CacheImports { json: String, reason: String },
    #[error("unknown target \"{0}\" (targets: {list})", list = Target::listing())]
    Target(String),
    #[error(transparent)]
    Provenance(#[from] crate::convert::provenance::ArgError),
}

/// The targets a recipe has (`--target`); the first is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Image,
    Lock,
    Packages,
    Sbom,
    Provenance,
    Verify,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Image,
        Target::Lock,
        Target::Packages,
        Target::Sbom,
        Target::Provenance,
        Target::Verify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Image => "image",
            Target::Lock => "lock",
            Target::Packages => "packages",
            Target::Sbom => "sbom",
            Target::Provenance => "provenance",
            Target::Verify => "verify",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Target::Image => "build the image from the recipe and its lockfile",
            Target::Lock => {
                "write the lockfile for packages.install (use with --output type=local)"
            }
            Target::Packages => {
                "fetch and verify the lockfile's package blobs only (use with --output type=local)"
            }
            Target::Sbom => "write the image's SPDX SBOM (use with --output type=local)",
            Target::Provenance => {
                "write the image's SLSA provenance predicate, for cosign attest (use with --output type=local)"
            }
            Target::Verify => {
                "rebuild and compare with the image named by the REPRO_VERIFY build arg (use with --output type=local)"
            }
        }
    }

    /// The `target` opt: empty is the default.
    pub fn from_opt(opt: Option<&str>) -> Result<Target, OptsError> {
        match opt.unwrap_or("") {
            "" => Ok(Target::Image),
            name => Target::ALL
                .into_iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| OptsError::Target(name.to_string())),
        }
    }

    /// Every target with its description, for the unknown-target error.
    fn listing() -> String {
        Target::ALL
            .iter()
            .map(|t| format!("{}: {}", t.name(), t.description()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Options of one build request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendOpts {
    /// Name of the recipe in the `dockerfile` local (`filename`).
    pub filename: String,
    /// Name of the local holding the recipe (`dockerfilekey`).
    pub dockerfile_key: String,
    /// Name of the local holding the build context (`contextkey`).
    pub context_key: String,
    /// `build-arg:*` values.
    pub build_args: BTreeMap<String, String>,
    /// `target`, checked (`Image` when none is given, and for a subrequest,
    /// which builds nothing).
    pub target: Target,
    /// `platform`: the target platforms, in the order given, each once
    /// (`--platform linux/amd64,linux/arm64`); empty means the worker's own.
    pub platforms: Vec<Platform>,
    pub resolve_mode: ResolveMode,
    /// The frontend's own image reference (`source`); the gateway replaces
    /// it with the pinned one before it converts anything.
    pub source: Option<String>,
    /// Set by the gateway, never by a client: the frontend image is known
    /// only by a local tag (see `convert::LocalFrontend`).
    pub frontend_local: Option<crate::convert::LocalFrontend>,
    pub session_id: Option<String>,
    /// `no-cache`: recompute everything (the Dockerfile frontend's opt; a
    /// recipe is one stage, so any value means all of it).
    pub no_cache: bool,
    /// `force-network-mode` (`docker build --network`): the network of the
    /// steps that use one (fetch steps and `run` steps).
    pub network: Network,
    /// `requestid`: a subrequest (`frontend.targets`, ...) instead of a build.
    pub request_id: Option<String>,
    /// Caches to import (`cache-imports`, and the older `cache-from`), as
    /// (type, attributes): handed to every solve, since BuildKit consults
    /// only the imports a solve request carries.
    pub cache_imports: Vec<CacheImport>,
    /// `attest:sbom` (`docker buildx build --sbom=true`, `buildctl --opt
    /// attest:sbom=`), or the `BUILDKIT_ATTEST_SBOM` build arg BuildKit also
    /// reads: return the image's SBOM as an attestation.
    pub attest_sbom: bool,
    /// The `REPRO_PROVENANCE` build arg: return our deterministic SLSA
    /// provenance as an attestation (`convert::provenance`).
    pub provenance: bool,
}

/// Whether the client asked for an SBOM attestation: BuildKit's
/// frontend/attestations/parse.go reads the same two keys; a value with
/// `disabled=true` turns it off.
fn attest_sbom(raw: &BTreeMap<String, String>) -> bool {
    ["attest:sbom", "build-arg:BUILDKIT_ATTEST_SBOM"]
        .iter()
        .filter_map(|k| raw.get(*k))
        .any(|v| !v.split(',').any(|f| f.trim() == "disabled=true"))
}

/// One cache source (`buildctl --import-cache`, `buildx --cache-from`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct CacheImport {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Attrs", default)]
    pub attrs: BTreeMap<String, String>,
}

/// `cache-imports` (a JSON list of `{"Type", "Attrs"}` as BuildKit's client
/// writes it) and `cache-from` (registry references, comma-separated).
fn cache_imports(raw: &BTreeMap<String, String>) -> Result<Vec<CacheImport>, OptsError> {
    let mut out: Vec<CacheImport> = match raw.get("cache-imports").filter(|v| !v.is_empty()) {
        Some(json) => serde_json::from_str(json).map_err(|e| OptsError::CacheImports {
            json: json.clone(),
            reason: e.to_string(),
        })?,
        None => Vec::new(),
    };
    if let Some(refs) = raw.get("cache-from") {
        for r in refs.split(',').filter(|r| !r.is_empty()) {
            out.push(CacheImport {
                kind: "registry".into(),
                attrs: BTreeMap::from([("ref".to_string(), r.to_string())]),
            });
        }
    }
    Ok(out)
}

/// Recipe name when the client names none.
pub const DEFAULT_FILENAME: &str = "repro.yaml";

/// Collects `BUILDKIT_FRONTEND_OPT_*` pairs from an environment listing.
pub fn from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<FrontendOpts, OptsError> {
    let mut raw = BTreeMap::new();
    let mut session_id = None;
    for (k, v) in vars {
        if k.starts_with("BUILDKIT_FRONTEND_OPT_") {
            match v.split_once('=') {
                Some((key, value)) => {
                    raw.insert(key.to_string(), value.to_string());
                }
                None => {
                    raw.insert(v, String::new());
                }
            }
        } else if k == "BUILDKIT_SESSION_ID" && !v.is_empty() {
            session_id = Some(v);
        }
    }
    parse(&raw, session_id)
}

/// A `--platform` list (`linux/amd64,linux/arm64`): each once, by the key
/// BuildKit's exporters use (`linux/arm64/v8` is `linux/arm64`).
pub fn parse_platforms(list: &str) -> Result<Vec<Platform>, PlatformError> {
    let mut out: Vec<Platform> = Vec::new();
    for text in list.split(',').map(str::trim) {
        let p = parse_platform(text)?;
        if !out.iter().any(|q| q.key() == p.key()) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Types the raw opts.
pub fn parse(
    raw: &BTreeMap<String, String>,
    session_id: Option<String>,
) -> Result<FrontendOpts, OptsError> {
    let get = |k: &str| raw.get(k).filter(|v| !v.is_empty()).cloned();
    let build_args = raw
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("build-arg:")
                .map(|n| (n.to_string(), v.clone()))
        })
        .collect();
    let resolve_mode = match raw.get("image-resolve-mode") {
        None => ResolveMode::Default,
        Some(v) => ResolveMode::from_opt(v).ok_or_else(|| OptsError::ResolveMode(v.clone()))?,
    };
    let platforms = match get("platform") {
        None => Vec::new(),
        Some(list) => parse_platforms(&list)?,
    };
    let request_id = get("requestid");
    // A subrequest builds nothing: its answer does not depend on the target,
    // which is not checked for it.
    let target = match request_id {
        Some(_) => Target::Image,
        None => Target::from_opt(raw.get("target").map(String::as_str))?,
    };
    let provenance = crate::convert::provenance::requested(&build_args)?;
    Ok(FrontendOpts {
        filename: get("filename").unwrap_or_else(|| DEFAULT_FILENAME.to_string()),
        dockerfile_key: get("dockerfilekey").unwrap_or_else(|| "dockerfile".to_string()),
        context_key: get("contextkey").unwrap_or_else(|| "context".to_string()),
        build_args,
        target,
        platforms,
        resolve_mode,
        source: get("source"),
        frontend_local: None,
        session_id,
        no_cache: raw.contains_key("no-cache"),
        request_id,
        cache_imports: cache_imports(raw)?,
        attest_sbom: attest_sbom(raw),
        provenance,
        network: match raw.get("force-network-mode").map(String::as_str) {
            None | Some("") | Some("default") | Some("sandbox") => Network::Sandbox,
            Some("host") => Network::Host,
            Some("none") => Network::None,
            Some(other) => return Err(OptsError::Network(other.to_string())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_imports_come_from_both_spellings() {
        let mut raw = BTreeMap::new();
        raw.insert(
            "cache-imports".to_string(),
            r#"[{"Type":"registry","Attrs":{"ref":"127.0.0.1:5000/c:hello","mode":"max"}},{"Type":"local","Attrs":{"src":"/c"}}]"#.to_string(),
        );
        raw.insert(
            "cache-from".to_string(),
            "r.example/a,r.example/b".to_string(),
        );
        let o = parse(&raw, None).unwrap();
        let kinds: Vec<&str> = o.cache_imports.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, ["registry", "local", "registry", "registry"]);
        assert_eq!(o.cache_imports[0].attrs["ref"], "127.0.0.1:5000/c:hello");
        assert_eq!(o.cache_imports[3].attrs["ref"], "r.example/b");
        raw.insert("cache-imports".to_string(), "{not json".to_string());
        assert!(
            parse(&raw, None)
                .unwrap_err()
                .to_string()
                .contains("invalid cache-imports")
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_opts_in_any_order() {
        let o = from_env(env(&[
            ("BUILDKIT_FRONTEND_OPT_3", "build-arg:MIRROR=http://x/y=z"),
            ("BUILDKIT_FRONTEND_OPT_0", "filename=other.yaml"),
            ("BUILDKIT_FRONTEND_OPT_1", "image-resolve-mode=local"),
            ("BUILDKIT_FRONTEND_OPT_2", "source=repro-frontend:v0"),
            ("BUILDKIT_FRONTEND_OPT_4", "no-cache="),
            ("BUILDKIT_SESSION_ID", "abc"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(o.filename, "other.yaml");
        assert_eq!(o.build_args["MIRROR"], "http://x/y=z");
        assert_eq!(o.resolve_mode, ResolveMode::PreferLocal);
        assert_eq!(o.source.as_deref(), Some("repro-frontend:v0"));
        assert_eq!(o.session_id.as_deref(), Some("abc"));
        assert_eq!(o.dockerfile_key, "dockerfile");
        assert!(o.no_cache, "an empty no-cache value means everything");
        assert_eq!(o.network, Network::Sandbox);
        let mut raw = BTreeMap::new();
        raw.insert("force-network-mode".to_string(), "host".to_string());
        assert_eq!(parse(&raw, None).unwrap().network, Network::Host);
    }

    #[test]
    fn defaults_without_opts() {
        let o = from_env(Vec::new()).unwrap();
        assert_eq!(o.filename, DEFAULT_FILENAME);
        assert_eq!(o.context_key, "context");
        assert!(o.platforms.is_empty());
        assert_eq!(o.source, None);
        assert!(!o.no_cache);
    }

    #[test]
    fn an_sbom_is_asked_for_by_either_key_unless_disabled() {
        let ask = |k: &str, v: &str| {
            let raw = BTreeMap::from([(k.to_string(), v.to_string())]);
            parse(&raw, None).unwrap().attest_sbom
        };
        assert!(ask("attest:sbom", ""));
        assert!(ask("attest:sbom", "generator=x/y"));
        assert!(ask("build-arg:BUILDKIT_ATTEST_SBOM", "true"));
        assert!(!ask("attest:sbom", "disabled=true"));
        assert!(!ask("attest:provenance", "mode=max"));
    }

    #[test]
    fn platforms() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(p.target_args()["TARGETPLATFORM"], "linux/arm64/v8");
        assert_eq!(p.target_args()["TARGETARCH"], "arm64");
        assert!(parse_platform("amd64").is_err());
        let mut raw = BTreeMap::new();
        raw.insert(
            "platform".to_string(),
            "linux/amd64,linux/arm64".to_string(),
        );
        let keys = |o: FrontendOpts| o.platforms.iter().map(|p| p.key()).collect::<Vec<_>>();
        assert_eq!(
            keys(parse(&raw, None).unwrap()),
            ["linux/amd64", "linux/arm64"]
        );
        raw.insert(
            "platform".to_string(),
            "linux/arm64, linux/amd64,linux/arm64/v8".to_string(),
        );
        assert_eq!(
            keys(parse(&raw, None).unwrap()),
            ["linux/arm64", "linux/amd64"]
        );
        raw.insert("platform".to_string(), "linux/amd64,arm64".to_string());
        assert!(
            parse(&raw, None)
                .unwrap_err()
                .to_string()
                .contains("invalid platform \"arm64\"")
        );
    }

    #[test]
    fn targets_parse_by_name_and_an_unknown_one_lists_them_all() {
        assert_eq!(Target::from_opt(None).unwrap(), Target::Image);
        assert_eq!(Target::from_opt(Some("")).unwrap(), Target::Image);
        assert_eq!(Target::from_opt(Some("image")).unwrap(), Target::Image);
        assert_eq!(Target::from_opt(Some("lock")).unwrap(), Target::Lock);
        assert_eq!(
            Target::from_opt(Some("packages")).unwrap(),
            Target::Packages
        );
        assert_eq!(Target::from_opt(Some("sbom")).unwrap(), Target::Sbom);
        let err = Target::from_opt(Some("nope")).unwrap_err().to_string();
        assert!(
            err.starts_with("unknown target \"nope\" (targets: image: build the image"),
            "{err}"
        );
        assert!(
            err.contains("; lock: ") && err.contains("; packages: "),
            "{err}"
        );
    }
}
