//! Offline conversion: the `llb` subcommand's counterpart of the gateway.
//!
//! Where the gateway asks the engine (the recipe and lockfile from client
//! locals, the base image's config and files), this reads local files: the
//! recipe, the lockfiles under the context directory, the base config from a
//! file (`docker image inspect` output or an OCI image config) and the base
//! image's unpacked root filesystem, when given. The pipeline behind both is
//! `inputs::prepare`. May do I/O (reads those files).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use bollard_buildkit_proto::pb;

use crate::convert::image::BaseConfig;
use crate::convert::{Converted, Platform};
use crate::frontend::bridge::Target;
use crate::frontend::inputs::{self, LocalFolder, Prepared, Request};
use crate::llb::{Network, ResolveMode};

/// Options of an offline conversion; they mirror the gateway's opts.
#[derive(Clone, Debug)]
pub struct LocalBuild {
    pub recipe: PathBuf,
    pub context: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub platform: Platform,
    /// The base image's config, if known (else the epoch must be given).
    pub base_config: Option<PathBuf>,
    /// The base image's unpacked root filesystem, if at hand: its os-release
    /// and package sources are read as the gateway reads them from the image.
    pub base_root: Option<PathBuf>,
    pub frontend_image: String,
    pub resolve_mode: ResolveMode,
}

/// Reads a base config: an OCI image config, or `docker image inspect` output
/// (a list of objects with `Config`, `Created`, `Architecture`, `Os`).
pub fn read_base_config(bytes: &[u8]) -> Result<BaseConfig> {
    Ok(BaseConfig::parse(&inputs::oci_config(bytes)?)?)
}

/// Reads and checks the inputs through the same pipeline as the gateway.
pub fn prepare(b: &LocalBuild) -> Result<Prepared> {
    let filename = b
        .recipe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repro.yaml".into());
    let req = Request {
        target: Target::Image,
        filename,
        build_args: b.build_args.clone(),
        platform: b.platform.clone(),
        frontend_image: b.frontend_image.clone(),
        resolve_mode: b.resolve_mode,
        context_name: "context".into(),
        session_id: None,
        network: Network::Sandbox,
        // `llb` writes what BuildKit's own overlayfs worker gets.
        snapshotter: Some(crate::convert::DELTA_SNAPSHOTTER.to_string()),
    };
    let mut folder = LocalFolder {
        recipe: b.recipe.clone(),
        context: b.context.clone(),
        base_config: b.base_config.clone(),
        base_root: b.base_root.clone(),
    };
    // The pipeline is async for the gateway's sake; here every read is a
    // plain file read, so a current-thread runtime just drives it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(inputs::prepare(&mut folder, &req))
}

/// Converts a recipe from local files.
pub fn convert(b: &LocalBuild) -> Result<Converted> {
    prepare(b)?.to_llb()
}

/// The Definition the gateway would solve for these inputs, and the image
/// config it would return.
pub fn definition(b: &LocalBuild, no_cache: bool) -> Result<(pb::Definition, Option<Vec<u8>>)> {
    let out = prepare(b)?.convert()?;
    Ok((out.definition(no_cache), out.config))
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
