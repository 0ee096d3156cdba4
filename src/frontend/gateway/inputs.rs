//! The gateway's side of the input pipeline: `frontend::inputs::Inputs`
//! read through the LLBBridge (the recipe and lockfiles from the client's
//! locals, the base image resolved and solved so its files can be read).
//! Does I/O: each read is a request to the engine.

use anyhow::{Result, anyhow};

use super::client::{Bridge, ImageRef, LocalFile};
use crate::convert::Platform;
use crate::frontend::inputs::{ContextFile, Inputs, Resolved};
use crate::frontend::opts::FrontendOpts;
use crate::llb::{self, ResolveMode};

/// Reads through the LLBBridge, from the locals and session the client's
/// options name.
pub(super) struct Gateway<'a> {
    bridge: &'a mut Bridge,
    opts: &'a FrontendOpts,
    /// The solved base image's ref, once opened.
    base: Option<String>,
}

impl<'a> Gateway<'a> {
    pub fn new(bridge: &'a mut Bridge, opts: &'a FrontendOpts) -> Self {
        Gateway {
            bridge,
            opts,
            base: None,
        }
    }

    fn base_id(&self) -> Result<&str> {
        self.base
            .as_deref()
            .ok_or_else(|| anyhow!("the base image was read before it was solved"))
    }
}

/// A file of the build context's local, and the name of its load in
/// progress.
fn context_local<'o>(opts: &'o FrontendOpts, path: &'o str) -> (LocalFile<'o>, String) {
    let file = LocalFile {
        local: &opts.context_key,
        path,
        session_id: opts.session_id.as_deref(),
        language: "",
    };
    (file, format!("load lockfile {path}"))
}

impl Inputs for Gateway<'_> {
    async fn recipe(&mut self, filename: &str) -> Result<Vec<u8>> {
        let file = LocalFile {
            local: &self.opts.dockerfile_key,
            path: filename,
            session_id: self.opts.session_id.as_deref(),
            language: "yaml",
        };
        self.bridge
            .read_local(&file, &format!("load recipe {filename}"))
            .await
            .map_err(|s| anyhow!("cannot read the recipe {filename}: {}", s.message()))
    }

    async fn context_file(&mut self, path: &str) -> ContextFile {
        let (file, display) = context_local(self.opts, path);
        self.bridge
            .read_local(&file, &display)
            .await
            .map_err(|s| s.message().to_string())
    }

    async fn resolve_image(
        &mut self,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
    ) -> Resolved {
        let image = ImageRef {
            reference,
            platform,
            mode,
        };
        let (digest, config) = self
            .bridge
            .resolve_named("base image", &image, self.opts.session_id.as_deref())
            .await?;
        Ok((digest, Some(config)))
    }

    async fn resolve_while_reading(
        &mut self,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
        paths: &[String],
    ) -> (Resolved, Vec<ContextFile>) {
        let image = ImageRef {
            reference,
            platform,
            mode,
        };
        let opts = self.opts;
        let locals: Vec<_> = paths.iter().map(|p| context_local(opts, p)).collect();
        let session_id = opts.session_id.as_deref();
        let (resolved, files) = self
            .bridge
            .resolve_while_reading("base image", &image, session_id, &locals)
            .await;
        let files = files
            .into_iter()
            .map(|f| f.map_err(|s| s.message().to_string()))
            .collect();
        (
            resolved.map(|(digest, config)| (digest, Some(config))),
            files,
        )
    }

    async fn open_base(
        &mut self,
        base_ref: &str,
        platform: &Platform,
        mode: ResolveMode,
    ) -> Result<bool> {
        let state = llb::image(
            base_ref,
            mode,
            Some(format!(
                "read the package setup of {base_ref} ({})",
                platform.key()
            )),
            Some(platform.to_pb()),
        );
        self.base = Some(self.bridge.solve_base(state).await?);
        Ok(true)
    }

    async fn base_file(&mut self, path: &str) -> Result<Option<Vec<u8>>> {
        let id = self.base_id()?.to_string();
        self.bridge.read_optional(&id, path).await
    }

    async fn base_dir(&mut self, dir: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let id = self.base_id()?.to_string();
        let mut out = Vec::new();
        for name in self.bridge.read_dir(&id, dir).await? {
            if let Some(t) = self
                .bridge
                .read_optional(&id, &format!("{dir}/{name}"))
                .await?
            {
                out.push((name, t));
            }
        }
        Ok(out)
    }
}
