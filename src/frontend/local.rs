//! Offline conversion: the `llb` subcommand's counterpart of the gateway.
//!
//! Where the gateway asks the engine (the recipe and lockfile from client
//! locals, the base image's config and files), this reads local files: the
//! recipe, the lockfiles under the context directory, the base config from a
//! file (`docker image inspect` output or an OCI image config) and the base
//! image's unpacked root filesystem, when given (`LocalFolder`, this side's
//! `inputs::Inputs`). The pipeline behind both is `inputs::prepare`. Does
//! I/O: reads those files.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use bollard_buildkit_proto::pb;

use crate::convert::image::BaseConfig;
use crate::convert::{Converted, Platform};
use crate::frontend::inputs::{self, ContextFile, Inputs, Prepared, Request, Resolved};
use crate::frontend::opts::Target;
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
    Ok(BaseConfig::parse(&oci_config(bytes)?)?)
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
        frontend_local: None,
        resolve_mode: b.resolve_mode,
        context_name: "context".into(),
        session_id: None,
        network: Network::Sandbox,
        // `llb` writes what BuildKit's own overlayfs worker gets.
        snapshotter: Some(crate::convert::DELTA_SNAPSHOTTER.to_string()),
        skip_content_hash: true,
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

/// The `llb` subcommand's side: a recipe file, a context directory, the base
/// image's config from a file and, optionally, its unpacked root filesystem.
#[derive(Clone, Debug)]
pub struct LocalFolder {
    pub recipe: PathBuf,
    pub context: PathBuf,
    /// `docker image inspect` output or an OCI image config.
    pub base_config: Option<PathBuf>,
    /// The base image's root filesystem, unpacked; without it no base file
    /// is read.
    pub base_root: Option<PathBuf>,
}

impl Inputs for LocalFolder {
    async fn recipe(&mut self, _filename: &str) -> Result<Vec<u8>> {
        std::fs::read(&self.recipe)
            .with_context(|| format!("cannot read {}", self.recipe.display()))
    }

    async fn context_file(&mut self, path: &str) -> ContextFile {
        let full = self.context.join(path);
        std::fs::read(&full).map_err(|e| format!("{}: {e}", full.display()))
    }

    async fn resolve_image(
        &mut self,
        _reference: &str,
        _platform: &Platform,
        _mode: ResolveMode,
    ) -> Resolved {
        let Some(p) = &self.base_config else {
            return Ok((String::new(), None));
        };
        let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        let config = oci_config(&bytes).with_context(|| format!("base config {}", p.display()))?;
        Ok((String::new(), Some(config)))
    }

    async fn open_base(
        &mut self,
        _base_ref: &str,
        _platform: &Platform,
        _mode: ResolveMode,
    ) -> Result<bool> {
        Ok(self.base_root.is_some())
    }

    async fn base_file(&mut self, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(root) = &self.base_root else {
            return Ok(None);
        };
        let Some(full) = in_root(root, path) else {
            return Ok(None);
        };
        match std::fs::read(&full) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(anyhow!("cannot read {}: {e}", full.display())),
        }
    }

    async fn base_dir(&mut self, dir: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let Some(full) = self.base_root.as_deref().and_then(|r| in_root(r, dir)) else {
            return Ok(Vec::new());
        };
        let entries = match std::fs::read_dir(&full) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => bail!("cannot read {}: {e}", full.display()),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", full.display()))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(t) = self.base_file(&format!("{dir}/{name}")).await? {
                out.push((name, t));
            }
        }
        Ok(out)
    }
}

/// Where an absolute path of the base image lies under its unpacked root,
/// following symbolic links as the image would (an absolute link target
/// starts again at the root; `..` stops at the root), so a link never leads
/// out of it. `None` when links loop.
fn in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut at: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        let candidate = at
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c))
            .join(&part);
        match std::fs::read_link(&candidate) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                if target.has_root() {
                    at.clear();
                }
                for c in target.components().rev() {
                    if let Component::Normal(n) = c {
                        todo.push(n.to_string_lossy().into_owned());
                    } else if c == Component::ParentDir {
                        todo.push("..".into());
                    }
                }
            }
            Err(_) => at.push(part),
        }
    }
    Some(at.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// An OCI image config from an OCI image config or `docker image inspect`
/// output (a list of objects with `Config`, `Created`, `Architecture`, `Os`).
pub fn oci_config(bytes: &[u8]) -> Result<Vec<u8>> {
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
    Ok(serde_json::to_vec(&oci)?)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

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

    const BASE: &str =
        "debian@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const DEB: &str = "pool/main/h/hello/hello_2.10-3_amd64.deb";

    /// A context folder with these files; the recipe is `repro.yaml`.
    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = tmp.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        tmp
    }

    fn local_build(ctx: &Path, base_root: Option<PathBuf>) -> LocalBuild {
        LocalBuild {
            recipe: ctx.join("repro.yaml"),
            context: ctx.to_path_buf(),
            build_args: [("SOURCE_DATE_EPOCH".to_string(), "0".to_string())].into(),
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
            base_config: None,
            base_root,
            frontend_image: "repro-frontend:v0".into(),
            resolve_mode: ResolveMode::Default,
        }
    }

    // `llb` had no default providers: a recipe without them failed there
    // and built through the gateway.
    #[test]
    fn without_providers_llb_reads_the_base_roots_sources_or_asks_for_them() {
        let sums = format!("{}  {DEB}\n", "a".repeat(64));
        let recipe = format!("base: {BASE}\npackages:\n  sums: SHA256SUMS\n");
        let ctx = folder(&[("repro.yaml", &recipe), ("SHA256SUMS", &sums)]);
        let err = prepare(&local_build(ctx.path(), None)).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("repro.yaml:3:9: packages has no providers")
                && format!("{err:#}").contains("pass --base-root"),
            "{err:#}"
        );
        // os-release as Debian has it: a relative link into /usr/lib; the
        // sources list behind an absolute link, read inside the root.
        let root = folder(&[
            ("usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            ("srv/sources", "deb http://m.example/debian bookworm main\n"),
        ]);
        std::fs::create_dir_all(root.path().join("etc/apt")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", root.path().join("etc/os-release"))
            .unwrap();
        std::os::unix::fs::symlink("/srv/sources", root.path().join("etc/apt/sources.list"))
            .unwrap();
        let p = prepare(&local_build(ctx.path(), Some(root.path().into()))).unwrap();
        assert_eq!(
            p.opts.installer,
            Some(crate::distro::install::Installer::Dpkg)
        );
        assert_eq!(
            p.opts.default_providers,
            ["http://m.example/debian/{{.Name}}"]
        );
    }

    // `llb` always assumed dpkg: an apk base got a dpkg install step.
    #[test]
    fn the_installer_follows_the_base_root_then_the_lockfiles_kinds() {
        let sums = format!("{}  v3.16/main/x86_64/bash-5.1.16-r2.apk\n", "a".repeat(64));
        let recipe = format!(
            "base: {BASE}\npackages:\n  sums: SHA256SUMS\n  providers: [\"http://m/{{{{.Name}}}}\"]\n"
        );
        let ctx = folder(&[("repro.yaml", &recipe), ("SHA256SUMS", &sums)]);
        let p = prepare(&local_build(ctx.path(), None)).unwrap();
        assert_eq!(
            p.opts.installer,
            Some(crate::distro::install::Installer::Apk)
        );
        let root = folder(&[("etc/os-release", "ID=alpine\n")]);
        let p = prepare(&local_build(ctx.path(), Some(root.path().into()))).unwrap();
        assert_eq!(
            p.opts.installer,
            Some(crate::distro::install::Installer::Apk)
        );
    }

    // The gateway checked only the first sums file for staleness.
    #[test]
    fn every_lockfile_with_the_lock_targets_header_is_checked_for_staleness() {
        let line = format!("{}  {DEB}\n", "a".repeat(64));
        let base = crate::recipe::reference::normalize(BASE).unwrap();
        let fresh = format!("# base: {base}\n# packages: hello\n{line}");
        let other = format!("# base: {base}\n# packages: gcc\n{line}");
        let recipe = format!(
            "base: {BASE}\npackages:\n  install: [hello]\n  sums: [A, B]\n  providers: [\"http://m/{{{{.Name}}}}\"]\n"
        );
        // Hand-made (no header) and fresh: built.
        let ctx = folder(&[("repro.yaml", &recipe), ("A", &line), ("B", &fresh)]);
        prepare(&local_build(ctx.path(), None)).unwrap();
        // The second one was made for other packages: stale.
        let ctx = folder(&[("repro.yaml", &recipe), ("A", &fresh), ("B", &other)]);
        let err = prepare(&local_build(ctx.path(), None)).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("B is stale: it was made for packages [gcc]"),
            "{err:#}"
        );
    }

    #[test]
    fn links_in_the_base_root_stay_inside_it() {
        let root = folder(&[("etc/x", "x")]);
        std::os::unix::fs::symlink("/../../../etc", root.path().join("up")).unwrap();
        std::os::unix::fs::symlink("loop", root.path().join("loop")).unwrap();
        assert_eq!(
            in_root(root.path(), "/up/x"),
            Some(root.path().join("etc/x"))
        );
        assert_eq!(in_root(root.path(), "/loop/x"), None);
    }
}
