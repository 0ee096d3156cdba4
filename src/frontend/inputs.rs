//! One input pipeline for the gateway and the `llb` subcommand: the recipe,
//! the base image (pinned, its config, what its files say) and the lockfiles
//! become a `Prepared` value holding the complete `convert::Opts`, so both
//! sides convert the same inputs the same way.
//!
//! The reads go through the `Inputs` trait; its two sides are `Gateway`
//! (LLBBridge reads) and `LocalFolder` (the `llb` subcommand's files). This
//! file does I/O only through them (`LocalFolder` reads the local disk).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::convert::image::BaseConfig;
use crate::convert::{self, Converted, Platform};
use crate::distro::install::{Installer, os_release_field};
use crate::distro::sources;
use crate::frontend::bridge::{Bridge, Target};
use crate::frontend::opts::FrontendOpts;
use crate::llb::{self, LocalOpts, Network, ResolveMode, State};
use crate::lockfile::{self, Lockfile};
use crate::recipe::{self, Recipe, reference};

/// Where the pipeline reads from. Paths of base files are absolute
/// (`/etc/os-release`); context paths are relative to the build context.
pub(crate) trait Inputs {
    /// The recipe file's bytes.
    async fn recipe(&mut self, filename: &str) -> Result<Vec<u8>>;
    /// A file of the build context; the error says why, without the place.
    async fn context_file(&mut self, path: &str) -> Result<Vec<u8>, String>;
    /// The base image's digest (empty if unknown) and config (`None` if unknown).
    async fn resolve_image(
        &mut self,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
    ) -> Result<(String, Option<Vec<u8>>)>;
    /// Makes the base image's files readable; false when there are none to read.
    async fn open_base(
        &mut self,
        base_ref: &str,
        platform: &Platform,
        mode: ResolveMode,
    ) -> Result<bool>;
    /// A file of the opened base image; `None` if it does not exist.
    async fn base_file(&mut self, path: &str) -> Result<Option<Vec<u8>>>;
    /// The files of a directory of the opened base image, in name order; none
    /// if the directory does not exist.
    async fn base_dir(&mut self, dir: &str) -> Result<Vec<(String, Vec<u8>)>>;
}

/// What the build was asked for, besides the files.
#[derive(Clone, Debug)]
pub struct Request {
    pub target: Target,
    /// The recipe's name in messages.
    pub filename: String,
    pub build_args: BTreeMap<String, String>,
    pub platform: Platform,
    /// The frontend's own image, before normalizing.
    pub frontend_image: String,
    pub resolve_mode: ResolveMode,
    /// The build context local and its session.
    pub context_name: String,
    pub session_id: Option<String>,
    pub network: Network,
    /// The worker's snapshotter label, if it has one.
    pub snapshotter: Option<String>,
}

/// The inputs of one conversion, read and checked.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub target: Target,
    pub recipe: Recipe,
    /// The merged lockfiles (empty for the lock target, which makes one).
    pub lock: Lockfile,
    /// Each lockfile's name and text, as read (hashed for the SBOM and the
    /// verify target's facts).
    pub lockfiles: Vec<(String, String)>,
    pub opts: convert::Opts,
}

/// What a target converts to.
#[derive(Clone, Debug)]
pub struct Output {
    pub state: State,
    /// The image config JSON; `None` when the result is not an image.
    pub config: Option<Vec<u8>>,
    /// The lock target always resolves again: the package index moves on.
    pub always_fresh: bool,
}

impl Output {
    /// The Definition to solve; `no_cache` is `--no-cache`.
    pub fn definition(&self, no_cache: bool) -> bollard_buildkit_proto::pb::Definition {
        self.state.marshal_with(llb::Constraints {
            ignore_cache: no_cache || self.always_fresh,
        })
    }
}

impl Prepared {
    /// The recipe and each lockfile by name and hash: what the SBOM and the
    /// verify statement name as the build's inputs.
    fn input_files(&self) -> crate::sbom::Inputs {
        let of = crate::sbom::InputFile::of;
        crate::sbom::Inputs {
            recipe: Some(of(&self.recipe.file, self.recipe.text.as_bytes())),
            lockfiles: self
                .lockfiles
                .iter()
                .map(|(name, text)| of(name, text.as_bytes()))
                .collect(),
        }
    }

    /// The image conversion of these inputs.
    pub fn to_llb(&self) -> Result<Converted> {
        Ok(convert::to_llb(&self.recipe, &self.lock, &self.opts)?)
    }

    /// The image's SBOM: a state holding only `sbom.spdx.json`.
    pub fn sbom(&self) -> Result<State> {
        let image = self.to_llb()?;
        let facts =
            convert::sbom::facts(&self.recipe, &self.lock, &self.opts, &self.input_files())?;
        Ok(convert::sbom::sbom_llb(&image, &facts, &self.opts))
    }

    /// Converts for the requested target.
    pub fn convert(&self) -> Result<Output> {
        match self.target {
            Target::Lock => Ok(Output {
                state: convert::lock_llb(&self.recipe, &self.opts)?,
                config: None,
                always_fresh: true,
            }),
            Target::Image => {
                let c = self.to_llb()?;
                Ok(Output {
                    state: c.state,
                    config: Some(c.config),
                    always_fresh: false,
                })
            }
            Target::Sbom => Ok(Output {
                state: self.sbom()?,
                config: None,
                always_fresh: false,
            }),
            Target::Verify => bail!(
                "{}: the verify target is converted with the published image's config",
                self.recipe.file
            ),
            // The packages target returns the gathered blobs, not an image.
            Target::Packages => match self.to_llb()?.packages {
                Some(blobs) => Ok(Output {
                    state: blobs,
                    config: None,
                    always_fresh: false,
                }),
                None => bail!(
                    "{}: the packages target needs packages in the recipe and the lockfile",
                    self.recipe.file
                ),
            },
        }
    }
}

impl Prepared {
    /// The verify target: the image conversion of these inputs, compared
    /// with the published image in an exec of our own binary.
    pub fn verify(&self, published: &convert::verify::Published) -> Result<Output> {
        let built = self.to_llb()?;
        let facts = convert::verify::facts(
            &self.input_files(),
            &self.opts.base_ref,
            &published.reference,
            &self.opts.platform,
        );
        Ok(Output {
            state: convert::verify::verify_llb(&built, published, facts, &self.opts),
            config: None,
            always_fresh: false,
        })
    }
}

/// Reads and checks everything a conversion needs.
pub(crate) async fn prepare<I: Inputs>(src: &mut I, req: &Request) -> Result<Prepared> {
    let (recipe, args) = load_recipe(src, req).await?;
    let base = pin_base(src, &recipe, req).await?;
    let known_config = base.config.is_some();
    let config = base.config.unwrap_or_else(|| b"{}".to_vec());
    let base_config =
        BaseConfig::parse(&config).with_context(|| format!("base image {}", base.reference))?;
    let epoch = convert::choose_epoch(
        req.build_args.get("SOURCE_DATE_EPOCH").map(String::as_str),
        &recipe,
        base_config.created,
    )
    .map_err(|e| match known_config {
        true => anyhow!(e),
        false => anyhow!("{e} (or pass the base image's config with --base-config)"),
    })?;
    let mut opts = convert::Opts {
        base_ref: base.reference,
        base: base_config,
        epoch,
        args,
        platform: req.platform.clone(),
        frontend_image: reference::normalize(&req.frontend_image)?,
        resolve_mode: req.resolve_mode,
        context_name: req.context_name.clone(),
        context: LocalOpts {
            session_id: req.session_id.clone(),
            include_patterns: Vec::new(),
            shared_key_hint: Some(req.context_name.clone()),
        },
        base_note: base.note,
        extra_providers: convert::extra_providers(&req.build_args),
        default_providers: Vec::new(),
        network: req.network,
        installer: None,
        snapshotter: req.snapshotter.clone(),
    };
    let mut lock = Lockfile::default();
    let mut lockfiles = Vec::new();
    if req.target != Target::Lock {
        let texts = read_lockfiles(src, &recipe).await?;
        check_stale(&recipe, &opts.base_ref, &texts)?;
        let parsed = texts
            .iter()
            .map(|(name, text)| lockfile::parse_named(name, text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!(e))?;
        lock = Lockfile::merge(parsed).map_err(|e| anyhow!(e))?;
        let probed = probe(src, &recipe, &lock, &opts).await?;
        opts.installer = probed.installer;
        opts.default_providers = probed.default_providers;
        lockfiles = texts;
    }
    Ok(Prepared {
        target: req.target,
        recipe,
        lock,
        lockfiles,
        opts,
    })
}

/// Reads, parses and expands the recipe with the build args and the
/// platform's target args.
async fn load_recipe<I: Inputs>(src: &mut I, req: &Request) -> Result<(Recipe, recipe::ArgValues)> {
    let bytes = src.recipe(&req.filename).await?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{}: the recipe is not UTF-8 text", req.filename))?;
    let parsed = recipe::parse(&req.filename, &text)?;
    let args = parsed.arg_values(&req.build_args, &req.platform.target_args())?;
    let expanded = parsed.expand(&args)?;
    Ok((expanded, args))
}

/// The base image as the build uses it.
struct Base {
    /// `name@sha256:...`, or the tag when unpinned bases are allowed and no
    /// digest is known.
    reference: String,
    note: Option<String>,
    config: Option<Vec<u8>>,
}

/// Resolves the base image and applies the pinning policy: pinned by digest,
/// or allowed unpinned with a warning, or refused with the digest to paste.
async fn pin_base<I: Inputs>(src: &mut I, recipe: &Recipe, req: &Request) -> Result<Base> {
    let at = |e: &dyn std::fmt::Display| {
        format!(
            "{}:{}:{}: {e}",
            recipe.file, recipe.base.span.line, recipe.base.span.col
        )
    };
    let text = reference::normalize(&recipe.base.value).map_err(|e| anyhow!(at(&e)))?;
    let pinned = reference::has_digest(&text);
    let (mut digest, config) = src
        .resolve_image(&text, &req.platform, req.resolve_mode)
        .await?;
    if !pinned && digest.is_empty() {
        // Docker 20.10 answers from its local image store without a digest
        // (`image-resolve-mode=local`); ask the registry for the one to paste.
        if let Ok((d, _)) = src
            .resolve_image(&text, &req.platform, ResolveMode::ForcePull)
            .await
        {
            digest = d;
        }
    }
    let warning = || {
        Some(format!(
            "WARNING: \"{text}\" is not pinned by digest, so this build is not reproducible"
        ))
    };
    let (reference, note) = if pinned {
        (text.clone(), None)
    } else if recipe.allow_unpinned_base && digest.is_empty() {
        (text.clone(), warning())
    } else if recipe.allow_unpinned_base {
        (format!("{text}@{digest}"), warning())
    } else if digest.is_empty() {
        bail!(at(&format_args!(
            "base image \"{text}\" is not pinned by digest, and the engine found no digest for it (try `docker inspect --format '{{{{index .RepoDigests 0}}}}' {text}`); pin it as name@sha256:<digest>, or set allow-unpinned-base: true for experiments"
        )));
    } else {
        bail!(at(&format_args!(
            "base image \"{text}\" is not pinned by digest; the engine resolved it to {text}@{digest} (paste that into base:, or set allow-unpinned-base: true for experiments)"
        )));
    };
    Ok(Base {
        reference,
        note,
        config,
    })
}

/// Reads the recipe's lockfiles from the build context, by name, in order.
async fn read_lockfiles<I: Inputs>(src: &mut I, recipe: &Recipe) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for sums in recipe.packages.iter().flat_map(|p| &p.sums) {
        let path = sums.value.trim_start_matches("./").to_string();
        let bytes = src.context_file(&path).await.map_err(|e| {
            anyhow!(
                "{}:{}:{}: cannot read the lockfile \"{path}\" from the build context: {e}",
                recipe.file,
                sums.span.line,
                sums.span.col,
            )
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow!("{path}: the lockfile is not UTF-8 text"))?;
        out.push((path, text));
    }
    Ok(out)
}

/// A lockfile made by the lock target must match the recipe it was made for;
/// every `sums` file is checked. Lockfiles without the lock target's header
/// (hand-made, or repro-get's own) are not checked: nothing in them says what
/// they were made for.
fn check_stale(recipe: &Recipe, base_ref: &str, lockfiles: &[(String, String)]) -> Result<()> {
    let Some(p) = &recipe.packages else {
        return Ok(());
    };
    if p.install.is_empty() || p.allow_stale_lock {
        return Ok(());
    }
    let install: Vec<String> = p.install.iter().map(|i| i.value.clone()).collect();
    for (path, text) in lockfiles {
        if crate::lockfile::Header::parse(text).is_none() {
            continue;
        }
        if let Some(why) = crate::lockfile::staleness(text, base_ref, &install) {
            bail!(
                "{path} is stale: {why}; re-run the lock target (docker build --target lock --output type=local,dest=<folder> -f {} <context>), or set packages.allow-stale-lock: true",
                recipe.file
            );
        }
    }
    Ok(())
}

/// What the base image's files say.
#[derive(Default)]
struct Probed {
    installer: Option<Installer>,
    default_providers: Vec<String>,
}

/// The base image's package tool (from os-release, else the lockfile's
/// package kinds) unless the recipe names one, and its package sources when
/// the recipe lists no providers.
async fn probe<I: Inputs>(
    src: &mut I,
    recipe: &Recipe,
    lock: &Lockfile,
    opts: &convert::Opts,
) -> Result<Probed> {
    let Some(p) = &recipe.packages else {
        return Ok(Probed::default());
    };
    if lock.packages().next().is_none() || (p.installer.is_some() && !p.providers.is_empty()) {
        return Ok(Probed::default());
    }
    // A lockfile with packages came from a `sums` entry: point at the first.
    let (line, col) = p
        .sums
        .first()
        .map_or((recipe.base.span.line, recipe.base.span.col), |s| {
            (s.span.line, s.span.col)
        });
    let at = format!("{}:{line}:{col}", recipe.file);
    let opened = src
        .open_base(&opts.base_ref, &opts.platform, opts.resolve_mode)
        .await?;
    let os_release = match opened {
        true => os_release(src).await,
        false => Ok(None),
    };
    let mut probed = Probed::default();
    if p.installer.is_none() {
        // Docker 20.10 sometimes refuses to read a file of an image that
        // another build is using ("invalid request ... for build"): then
        // the lockfile's package kind decides.
        let from_os_release = match &os_release {
            Ok(Some(text)) => Installer::from_os_release(text),
            _ => None,
        };
        probed.installer = from_os_release.or_else(|| installer_of_packages(lock));
        if probed.installer.is_none() && opened {
            bail!(
                "{at}: cannot tell the base image's package tool from its /etc/os-release; set packages.installer (dpkg, rpm, apk or pacman)"
            );
        } else if probed.installer.is_none() {
            bail!(
                "{at}: cannot tell the base image's package tool from the lockfile's package kinds; pass --base-root (the base image's unpacked root filesystem) or set packages.installer (dpkg, rpm, apk or pacman)"
            );
        }
    }
    if p.providers.is_empty() {
        if !opened && opts.extra_providers.is_empty() {
            bail!(
                "{at}: packages has no providers, and without --base-root the base image's package sources cannot be read; pass --base-root (the base image's unpacked root filesystem) or add packages.providers"
            );
        }
        if opened {
            let releasever = match os_release {
                Ok(text) => text
                    .as_deref()
                    .and_then(|t| os_release_field(t, "VERSION_ID"))
                    .unwrap_or_default(),
                Err(e) => bail!("{e:#}"),
            };
            probed.default_providers = default_providers(src, &opts.platform, &releasever).await?;
            if probed.default_providers.is_empty() && opts.extra_providers.is_empty() {
                bail!(
                    "{at}: packages has no providers, and the base image has no apt or apk sources to take them from; add packages.providers (URL templates such as \"http://<mirror>/debian/{{{{.Name}}}}\")"
                );
            }
        }
    }
    Ok(probed)
}

/// The one tool that installs every package of the lockfile, if there is one.
fn installer_of_packages(lock: &Lockfile) -> Option<Installer> {
    let mut found = None;
    for e in lock.packages() {
        let tool = Installer::ALL.into_iter().find(|i| i.accepts(&e.name))?;
        if found.is_some_and(|f| f != tool) {
            return None;
        }
        found = Some(tool);
    }
    found
}

/// The base image's os-release file, if it has one.
async fn os_release<I: Inputs>(src: &mut I) -> Result<Option<String>> {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(t) = src.base_file(path).await? {
            return Ok(Some(String::from_utf8_lossy(&t).into_owned()));
        }
    }
    Ok(None)
}

/// The base image's own package sources, as provider templates; yum's
/// `$releasever` is os-release's `VERSION_ID`, `$basearch` the platform's.
async fn default_providers<I: Inputs>(
    src: &mut I,
    platform: &Platform,
    releasever: &str,
) -> Result<Vec<String>> {
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let mut apt = Vec::new();
    if let Some(t) = src.base_file("/etc/apt/sources.list").await? {
        apt.push(("sources.list".to_string(), text(t)));
    }
    for (name, t) in src.base_dir("/etc/apt/sources.list.d").await? {
        apt.push((name, text(t)));
    }
    let mut roots = sources::apt_roots(&apt, None);
    if let Some(t) = src.base_file("/etc/apk/repositories").await? {
        roots.extend(sources::apk_repositories(&text(t)));
    }
    let basearch = match platform.architecture.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i686",
        other => other,
    };
    for (name, t) in src.base_dir("/etc/yum.repos.d").await? {
        if name.ends_with(".repo") {
            roots.extend(sources::yum_repos(&text(t), releasever, basearch));
        }
    }
    if let Some(t) = src.base_file("/etc/pacman.d/mirrorlist").await? {
        roots.extend(sources::pacman_mirrorlist(&text(t)));
    }
    let mut seen = Vec::new();
    roots.retain(|r| {
        let new = !seen.contains(r);
        seen.push(r.clone());
        new
    });
    Ok(sources::templates(&roots))
}

/// The gateway side: reads through the LLBBridge.
pub(crate) struct Gateway<'a> {
    pub bridge: &'a mut Bridge,
    pub opts: &'a FrontendOpts,
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

impl Inputs for Gateway<'_> {
    async fn recipe(&mut self, filename: &str) -> Result<Vec<u8>> {
        let key = self.opts.dockerfile_key.clone();
        self.bridge
            .read_local(
                &key,
                filename,
                self.opts,
                &format!("load recipe {filename}"),
            )
            .await
            .map_err(|s| anyhow!("cannot read the recipe {filename}: {}", s.message()))
    }

    async fn context_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        let key = self.opts.context_key.clone();
        self.bridge
            .read_local(&key, path, self.opts, &format!("load lockfile {path}"))
            .await
            .map_err(|s| s.message().to_string())
    }

    async fn resolve_image(
        &mut self,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
    ) -> Result<(String, Option<Vec<u8>>)> {
        let (digest, config) = self
            .bridge
            .resolve_image(reference, platform, mode, self.opts)
            .await?;
        Ok((digest, Some(config)))
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

    async fn context_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        let full = self.context.join(path);
        std::fs::read(&full).map_err(|e| format!("{}: {e}", full.display()))
    }

    async fn resolve_image(
        &mut self,
        _reference: &str,
        _platform: &Platform,
        _mode: ResolveMode,
    ) -> Result<(String, Option<Vec<u8>>)> {
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

    use prost::Message;

    use super::super::bridge::fake::{build, error_of, with_files};
    use crate::convert::Platform;
    use crate::frontend::local::{self, LocalBuild};
    use crate::llb::ResolveMode;

    fn data() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
    }

    /// The golden cases: tests/data/recipes/<case>/ (not negative/).
    fn golden_cases() -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(data().join("recipes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("repro.yaml").is_file())
            .collect();
        v.sort();
        v
    }

    fn build_args(case: &Path) -> Vec<(String, String)> {
        std::fs::read_to_string(case.join("build-args"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The case's files, by name (recipe, lockfiles, copied sources).
    fn case_files(case: &Path) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(case)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().is_file())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    const OS_RELEASE: &str = "etc/os-release";

    /// The Definition bytes the gateway solved for the image and the config
    /// it returned, through the fake bridge.
    fn through_gateway(case: &Path, args: &[(String, String)]) -> (Vec<u8>, Vec<u8>) {
        let os_release =
            std::fs::read_to_string(data().join("base-root").join(OS_RELEASE)).unwrap();
        let mut files: Vec<(String, String)> = case_files(case)
            .into_iter()
            .map(|(name, text)| match name.as_str() {
                "repro.yaml" => ("dockerfile/repro.yaml".to_string(), text),
                _ => (format!("context/{name}"), text),
            })
            .collect();
        // The fake serves the base image's files under "context".
        files.push((format!("context//{OS_RELEASE}"), os_release));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let fake = with_files(&refs);
        fake.0.lock().unwrap().image_config =
            Some(std::fs::read(data().join("recipes/base-config.json")).unwrap());
        let opts: Vec<(String, String)> = [("source".to_string(), "repro-frontend:v0".to_string())]
            .into_iter()
            .chain(
                args.iter()
                    .map(|(k, v)| (format!("build-arg:{k}"), v.clone())),
            )
            .collect();
        let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ret = runtime.block_on(build(fake.clone(), opts));
        assert!(
            ret.error.is_none(),
            "{}: {}",
            case.display(),
            error_of(&ret)
        );
        let config = ret.result.unwrap().metadata["containerimage.config"].clone();
        let def = fake
            .0
            .lock()
            .unwrap()
            .solved
            .last()
            .unwrap()
            .encode_to_vec();
        (def, config)
    }

    /// The same through the `llb` subcommand's side, from a folder holding
    /// the same files.
    fn through_llb(case: &Path, args: &[(String, String)]) -> (Vec<u8>, Vec<u8>) {
        let tmp = tempfile::tempdir().unwrap();
        let context = tmp.path().join("context");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&context).unwrap();
        for (name, text) in case_files(case) {
            std::fs::write(context.join(name), text).unwrap();
        }
        std::fs::copy(
            data().join("base-root").join(OS_RELEASE),
            root.join(OS_RELEASE),
        )
        .unwrap();
        let config = tmp.path().join("base-config.json");
        std::fs::copy(data().join("recipes/base-config.json"), &config).unwrap();
        let b = LocalBuild {
            recipe: context.join("repro.yaml"),
            context: context.clone(),
            build_args: args.iter().cloned().collect(),
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
            base_config: Some(config),
            base_root: Some(root),
            frontend_image: "repro-frontend:v0".into(),
            resolve_mode: ResolveMode::Default,
        };
        let (def, config) =
            local::definition(&b, false).unwrap_or_else(|e| panic!("{}: {e:#}", case.display()));
        (def.encode_to_vec(), config.expect("an image config"))
    }

    #[test]
    fn llb_and_the_gateway_give_the_same_definition_for_every_golden_case() {
        let cases = golden_cases();
        assert!(cases.len() >= 7, "{cases:?}");
        for case in cases {
            let args = build_args(&case);
            let (gw_def, gw_config) = through_gateway(&case, &args);
            let (llb_def, llb_config) = through_llb(&case, &args);
            assert!(
                gw_def == llb_def,
                "{}: the Definitions differ",
                case.display()
            );
            assert_eq!(
                String::from_utf8_lossy(&gw_config),
                String::from_utf8_lossy(&llb_config),
                "{}",
                case.display()
            );
        }
    }

    // The comparison above must be able to fail: a different build arg on
    // one side gives other bytes.
    #[test]
    fn the_comparison_sees_a_different_build_arg() {
        let case = data().join("recipes/minimal");
        let (gw_def, gw_config) = through_gateway(&case, &[]);
        let other = [("SOURCE_DATE_EPOCH".to_string(), "86400".to_string())];
        let (llb_def, llb_config) = through_llb(&case, &other);
        assert!(gw_def != llb_def);
        assert_ne!(gw_config, llb_config);
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
        let err = local::prepare(&local_build(ctx.path(), None)).unwrap_err();
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
        let p = local::prepare(&local_build(ctx.path(), Some(root.path().into()))).unwrap();
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
        let p = local::prepare(&local_build(ctx.path(), None)).unwrap();
        assert_eq!(
            p.opts.installer,
            Some(crate::distro::install::Installer::Apk)
        );
        let root = folder(&[("etc/os-release", "ID=alpine\n")]);
        let p = local::prepare(&local_build(ctx.path(), Some(root.path().into()))).unwrap();
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
        local::prepare(&local_build(ctx.path(), None)).unwrap();
        // The second one was made for other packages: stale.
        let ctx = folder(&[("repro.yaml", &recipe), ("A", &fresh), ("B", &other)]);
        let err = local::prepare(&local_build(ctx.path(), None)).unwrap_err();
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
            super::in_root(root.path(), "/up/x"),
            Some(root.path().join("etc/x"))
        );
        assert_eq!(super::in_root(root.path(), "/loop/x"), None);
    }
}
