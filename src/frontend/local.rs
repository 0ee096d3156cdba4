//! Offline conversion: the `llb` subcommand's counterpart of the gateway.
//!
//! Where the gateway asks the engine (the recipe and lockfile from client
//! locals, the base image's config), this reads local files: the recipe, the
//! lockfile under the context directory, and the base config from a file
//! (`docker image inspect` output or an OCI image config) when given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::convert::image::BaseConfig;
use crate::convert::{self, Converted, Platform};
use crate::llb::{LocalOpts, ResolveMode};
use crate::recipe::reference;
use crate::{lockfile, recipe};

/// Options of an offline conversion; they mirror the gateway's opts.
#[derive(Clone, Debug)]
pub struct LocalBuild {
    pub recipe: PathBuf,
    pub context: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub platform: Platform,
    /// The base image's config, if known (else the epoch must be given).
    pub base_config: Option<PathBuf>,
    pub frontend_image: String,
    pub resolve_mode: ResolveMode,
}

/// Reads a base config: an OCI image config, or `docker image inspect` output
/// (a list of objects with `Config`, `Created`, `Architecture`, `Os`).
pub fn read_base_config(bytes: &[u8]) -> Result<BaseConfig> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).context("the base config is not JSON")?;
    let inspect = match &value {
        serde_json::Value::Array(items) => items.first(),
        serde_json::Value::Object(o) if o.contains_key("Config") => Some(&value),
        _ => None,
    };
    let oci = match inspect {
        Some(i) => serde_json::json!({
            "config": i.get("Config").cloned().unwrap_or_default(),
            "created": i.get("Created").cloned().unwrap_or_default(),
            "architecture": i.get("Architecture").cloned().unwrap_or_default(),
            "os": i.get("Os").cloned().unwrap_or_default(),
        }),
        None => value,
    };
    Ok(BaseConfig::parse(&serde_json::to_vec(&oci)?)?)
}

/// Converts a recipe from local files.
pub fn convert(b: &LocalBuild) -> Result<Converted> {
    let file = b
        .recipe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repro.yaml".into());
    let text = std::fs::read_to_string(&b.recipe)
        .with_context(|| format!("cannot read {}", b.recipe.display()))?;
    let parsed = recipe::parse(&file, &text)?;
    let args = parsed.arg_values(&b.build_args, &b.platform.target_args())?;
    let r = parsed.expand(&args)?;
    let base_ref = reference::normalize(&r.base.value)
        .map_err(|e| anyhow!("{}:{}:{}: {e}", r.file, r.base.span.line, r.base.span.col))?;
    if !has_digest(&base_ref) && !r.allow_unpinned_base {
        bail!(
            "{}:{}:{}: base image \"{base_ref}\" is not pinned by digest (run `docker buildx imagetools inspect {base_ref}` or `docker inspect` to find it, or set allow-unpinned-base: true)",
            r.file,
            r.base.span.line,
            r.base.span.col
        );
    }
    let base = match &b.base_config {
        Some(p) => read_base_config(
            &std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .with_context(|| format!("base config {}", p.display()))?,
        None => BaseConfig::default(),
    };
    let epoch = convert::choose_epoch(
        b.build_args.get("SOURCE_DATE_EPOCH").map(String::as_str),
        &r,
        base.created,
    )
    .map_err(|e| anyhow!("{e} (or pass the base image's config with --base-config)"))?;
    let lock = read_lockfile(&r, &b.context)?;
    Ok(convert::to_llb(
        &r,
        &lock,
        &convert::Opts {
            base_ref,
            base,
            epoch,
            args,
            platform: b.platform.clone(),
            frontend_image: reference::normalize(&b.frontend_image)?,
            resolve_mode: b.resolve_mode,
            context_name: "context".into(),
            context: LocalOpts::default(),
            base_note: None,
            extra_providers: convert::extra_providers(&b.build_args),
            default_providers: Vec::new(),
            network: crate::llb::Network::Sandbox,
            installer: None,
        },
    )?)
}

/// Reads, parses and merges the recipe's lockfiles from the context directory.
pub fn read_lockfile(r: &recipe::Recipe, context: &Path) -> Result<lockfile::Lockfile> {
    let mut locks = Vec::new();
    for sums in r.packages.iter().flat_map(|p| &p.sums) {
        let name = sums.value.trim_start_matches("./").to_string();
        let text = std::fs::read_to_string(context.join(&name)).map_err(|e| {
            anyhow!(
                "{}:{}:{}: cannot read the lockfile \"{name}\" from the build context {}: {e}",
                r.file,
                sums.span.line,
                sums.span.col,
                context.display()
            )
        })?;
        locks.push(lockfile::parse_named(&name, &text).map_err(|e| anyhow!(e))?);
    }
    lockfile::Lockfile::merge(locks).map_err(|e| anyhow!(e))
}

/// `name@sha256:<64 hex>`.
pub fn has_digest(reference: &str) -> bool {
    reference
        .rsplit_once("@sha256:")
        .is_some_and(|(_, hex)| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_inspect_and_oci_configs() {
        let inspect = br#"[{"Id":"sha256:x","Created":"2024-01-01T00:00:00.5Z","Architecture":"amd64","Os":"linux","Config":{"Env":["PATH=/bin"],"Cmd":["bash"]}}]"#;
        let c = read_base_config(inspect).unwrap();
        assert_eq!(c.created, Some(1_704_067_200));
        assert_eq!(c.env(), [("PATH".to_string(), "/bin".to_string())]);
        let oci = br#"{"created":"2024-01-01T00:00:00Z","config":{"Env":["A=b"]}}"#;
        assert_eq!(read_base_config(oci).unwrap().env()[0].0, "A");
        assert!(read_base_config(b"nope").is_err());
    }
}
