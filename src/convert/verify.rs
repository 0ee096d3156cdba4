//! The `verify` target's graph, pure: the rebuilt image (as the image target
//! makes it) and the published image's rootfs, mounted read-only beside the
//! two configs and the facts file in an exec of our own binary, which
//! compares them (see `step/verify.rs`).

use std::collections::BTreeMap;

use serde_json::json;

use super::base::{frontend_image, helper_env, tree_mount};
use super::opts::{Converted, FRONTEND_BINARY, OUT_DIR, Opts};
use super::platform::Platform;
use crate::llb::{self, Mount, Network, State};
use crate::recipe::reference;

/// The build arg naming the published image, `name@sha256:<digest>`.
pub const VERIFY_ARG: &str = "REPRO_VERIFY";

/// The build arg saying what a difference does: `fail` (the default) or
/// `report` (the build succeeds and its output holds the report).
pub const ON_DIFF_ARG: &str = "REPRO_VERIFY_ON_DIFF";

/// The build arg that pins the statement's `timeVerified` (RFC 3339).
pub const TIME_ARG: &str = "REPRO_VERIFY_TIME";

/// What the verify target does when the rebuild differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDiff {
    /// Fail the build with the report's summary.
    Fail,
    /// Succeed and export the report instead of the statement.
    Report,
}

const OURS_DIR: &str = "/ours";
const THEIRS_DIR: &str = "/theirs";
const FACTS_DIR: &str = "/facts";

/// A `REPRO_VERIFY` build arg the verify target cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishedError {
    #[error(
        "the verify target needs --build-arg {VERIFY_ARG}=<image>@sha256:<digest> (the published image to compare with)"
    )]
    Missing,
    #[error("build arg {VERIFY_ARG}=\"{0}\": {1}")]
    Invalid(String, String),
    #[error("build arg {ON_DIFF_ARG}=\"{0}\": expected fail or report")]
    OnDiff(String),
    #[error(
        "build arg {TIME_ARG}=\"{0}\": expected an RFC 3339 time, such as 2026-12-08T10:00:00Z"
    )]
    Time(String),
    #[error(
        "build arg {VERIFY_ARG}=\"{0}\" is not pinned by digest; name the published image as <name>@sha256:<digest> (`docker inspect --format '{{{{index .RepoDigests 0}}}}' <image>` prints it)"
    )]
    Unpinned(String),
}

/// The published image named by the `REPRO_VERIFY` build arg, normalized;
/// it must be pinned by digest.
pub fn published_ref(build_args: &BTreeMap<String, String>) -> Result<String, PublishedError> {
    let value = build_args
        .get(VERIFY_ARG)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or(PublishedError::Missing)?;
    let normalized = reference::normalize(value)
        .map_err(|e| PublishedError::Invalid(value.to_string(), e.to_string()))?;
    if !reference::has_digest(&normalized) {
        return Err(PublishedError::Unpinned(value.to_string()));
    }
    Ok(normalized)
}

/// The `REPRO_VERIFY_ON_DIFF` build arg; unset or empty is `fail`.
pub fn on_diff(build_args: &BTreeMap<String, String>) -> Result<OnDiff, PublishedError> {
    match build_args.get(ON_DIFF_ARG).map(|v| v.trim()) {
        None | Some("") | Some("fail") => Ok(OnDiff::Fail),
        Some("report") => Ok(OnDiff::Report),
        Some(other) => Err(PublishedError::OnDiff(other.to_string())),
    }
}

/// The `REPRO_VERIFY_TIME` build arg, as the statement writes it (UTC,
/// `Z`); None when unset or empty.
pub fn verify_time(
    build_args: &BTreeMap<String, String>,
) -> Result<Option<String>, PublishedError> {
    match build_args.get(TIME_ARG).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => super::image::parse_rfc3339(v)
            .map(|secs| Some(super::image::format_rfc3339(secs)))
            .ok_or_else(|| PublishedError::Time(v.to_string())),
    }
}

/// The published image to compare with.
#[derive(Clone, Debug, Default)]
pub struct Published {
    /// `name@sha256:<digest>`, normalized.
    pub reference: String,
    /// Its config, as the engine resolved it.
    pub config: Vec<u8>,
    /// The image manifest the engine resolved for the platform, when it
    /// says (`sha256:<hex>`).
    pub manifest: Option<String>,
    /// `REPRO_VERIFY_TIME`, normalized.
    pub time: Option<String>,
}

/// What the statement records: the recipe's and the lockfiles' bytes by
/// sha256, the base, the published image (and the manifest compared, the
/// pinned time) and the frontend that compared them
/// (`Opts::frontend_record`). Deterministic JSON.
pub fn facts(
    inputs: &crate::sbom::Inputs,
    base_ref: &str,
    published: &Published,
    platform: &Platform,
    frontend: &str,
) -> Vec<u8> {
    let named = |f: &crate::sbom::InputFile| json!({ "name": f.name, "sha256": f.sha256 });
    let body = json!({
        "recipe": inputs.recipe.as_ref().map(named),
        "lockfiles": inputs.lockfiles.iter().map(named).collect::<Vec<_>>(),
        "base": base_ref,
        "image": published.reference,
        "platform": platform.key(),
        "frontend": frontend,
        "time": published.time,
        "manifest": published.manifest,
    });
    let mut bytes = body.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// The verify exec: its `/out` holds `verify.intoto.json` when the rebuild
/// equals the published image, otherwise `verify-report.txt` and
/// `verify-report.json`; the exec succeeds either way and the frontend reads
/// which (see `on_diff`).
pub fn verify_llb(built: &Converted, published: &Published, facts: Vec<u8>, opts: &Opts) -> State {
    let theirs = llb::image(
        &published.reference,
        opts.resolve_mode,
        Some(format!("published image {}", published.reference)),
        Some(opts.platform.to_pb()),
    );
    let files = State::scratch()
        .file()
        .mkfile("/ours-config.json", 0o644, built.config.clone(), Some(0))
        .mkfile(
            "/theirs-config.json",
            0o644,
            published.config.clone(),
            Some(0),
        )
        .mkfile("/facts.json", 0o644, facts, Some(0))
        .name("verify: the two image configs and the build's facts")
        .build();
    let arg = |dir: &str, file: &str| format!("{dir}{file}");
    frontend_image(opts)
        .run(vec![
            FRONTEND_BINARY.into(),
            "verify".into(),
            "--ours".into(),
            OURS_DIR.into(),
            "--theirs".into(),
            THEIRS_DIR.into(),
            "--ours-config".into(),
            arg(FACTS_DIR, "/ours-config.json"),
            "--theirs-config".into(),
            arg(FACTS_DIR, "/theirs-config.json"),
            "--facts".into(),
            arg(FACTS_DIR, "/facts.json"),
            "--out".into(),
            OUT_DIR.into(),
        ])
        .network(Network::None)
        .envs(helper_env(opts))
        .mount(tree_mount(opts, OURS_DIR, built.state.clone()))
        .mount(tree_mount(opts, THEIRS_DIR, theirs))
        .mount(Mount::readonly(FACTS_DIR, files))
        .name(format!(
            "verify: compare the rebuild with {} file by file",
            published.reference
        ))
        .build_into(OUT_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    fn args(v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(VERIFY_ARG.to_string(), v.to_string())])
    }

    #[test]
    fn the_published_image_must_be_pinned_by_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            published_ref(&args(&format!("reg.invalid/hello@{d}"))),
            Ok(format!("reg.invalid/hello@{d}"))
        );
        assert_eq!(
            published_ref(&BTreeMap::new()),
            Err(PublishedError::Missing)
        );
        assert_eq!(published_ref(&args(" ")), Err(PublishedError::Missing));
        let err = published_ref(&args("reg.invalid/hello:1")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "build arg REPRO_VERIFY=\"reg.invalid/hello:1\" is not pinned by digest; "
            ),
            "{err}"
        );
        assert!(matches!(
            published_ref(&args("UPPER/x@sha256:1")),
            Err(PublishedError::Invalid(..))
        ));
    }

    #[test]
    fn on_diff_is_fail_or_report() {
        let arg = |v: &str| BTreeMap::from([(ON_DIFF_ARG.to_string(), v.to_string())]);
        assert_eq!(on_diff(&BTreeMap::new()), Ok(OnDiff::Fail));
        assert_eq!(on_diff(&arg("")), Ok(OnDiff::Fail));
        assert_eq!(on_diff(&arg("fail")), Ok(OnDiff::Fail));
        assert_eq!(on_diff(&arg(" report")), Ok(OnDiff::Report));
        assert_eq!(
            on_diff(&arg("warn")).unwrap_err().to_string(),
            "build arg REPRO_VERIFY_ON_DIFF=\"warn\": expected fail or report"
        );
    }

    #[test]
    fn facts_are_deterministic_and_hash_the_texts() {
        let inputs = crate::sbom::Inputs {
            recipe: Some(crate::sbom::InputFile::of("repro.yaml", b"base: b\n")),
            lockfiles: vec![crate::sbom::InputFile::of("SHA256SUMS", b"x")],
        };
        let arm64 = crate::convert::platform::parse_platform("linux/arm64/v8").unwrap();
        let published = Published {
            reference: "i@sha256:2".into(),
            ..Default::default()
        };
        let a = facts(&inputs, "b@sha256:1", &published, &arm64, "f@sha256:3");
        assert_eq!(
            a,
            facts(&inputs, "b@sha256:1", &published, &arm64, "f@sha256:3")
        );
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(
            v["lockfiles"][0]["sha256"],
            hex::encode(Sha256::digest(b"x"))
        );
        assert_eq!(v["image"], "i@sha256:2");
        // An index names several platforms: the statement says which.
        assert_eq!(v["platform"], "linux/arm64");
        assert_eq!(v["frontend"], "f@sha256:3");
    }

    #[test]
    fn the_verify_time_is_rfc_3339_in_utc() {
        let arg = |v: &str| BTreeMap::from([(TIME_ARG.to_string(), v.to_string())]);
        assert_eq!(verify_time(&BTreeMap::new()), Ok(None));
        assert_eq!(verify_time(&arg("")), Ok(None));
        assert_eq!(
            verify_time(&arg("2026-12-08T10:00:00Z")),
            Ok(Some("2026-12-08T10:00:00Z".into()))
        );
        assert_eq!(
            verify_time(&arg("2026-12-08T11:30:00+01:30")),
            Ok(Some("2026-12-08T10:00:00Z".into()))
        );
        let e = verify_time(&arg("yesterday")).unwrap_err().to_string();
        assert!(
            e.contains("REPRO_VERIFY_TIME") && e.contains("yesterday"),
            "{e}"
        );
    }
}
