//! One input pipeline for the gateway and the `llb` subcommand: the recipe,
//! the base image (pinned, its config, what its files say) and the lockfiles
//! become a `Prepared` value holding the complete `convert::Opts`, so both
//! sides convert the same inputs the same way; `Prepared::convert` then
//! converts for the target (pure).
//!
//! The reads go through the `Inputs` trait; its two sides are the gateway's
//! (`gateway::inputs`, LLBBridge reads) and `local::LocalFolder` (the `llb`
//! subcommand's files). This file does no I/O of its own: only through the
//! trait.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow, bail};

use crate::convert::image::BaseConfig;
use crate::convert::{self, Converted, Platform};
use crate::distro::install::{Installer, os_release_field};
use crate::distro::sources;
use crate::frontend::opts::Target;
use crate::llb::{self, LocalOpts, Network, ResolveMode, State};
use crate::located::Located;
use crate::lockfile::{self, Lockfile};
use crate::recipe::yaml::Span;
use crate::recipe::{self, Recipe, reference};

/// The base image's digest (empty if unknown) and config (`None` if unknown).
pub(crate) type Resolved = Result<(String, Option<Vec<u8>>)>;
/// A file of the build context; the error says why, without the place.
pub(crate) type ContextFile = Result<Vec<u8>, String>;

/// Where the pipeline reads from. Paths of base files are absolute
/// (`/etc/os-release`); context paths are relative to the build context.
pub(crate) trait Inputs {
    /// The recipe file's bytes.
    async fn recipe(&mut self, filename: &str) -> Result<Vec<u8>>;
    /// A file of the build context.
    async fn context_file(&mut self, path: &str) -> ContextFile;
    /// The base image resolved.
    async fn resolve_image(
        &mut self,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
    ) -> Resolved;
    /// [`Inputs::resolve_image`] of the base and [`Inputs::context_file`] of
    /// each path (in order, stopping at the first that fails), side by side
    /// where the source can.
    async fn resolve_while_reading(
        &mut self,
        reference: &str,
        platform: &Platform,
        mode: ResolveMode,
        paths: &[String],
    ) -> (Resolved, Vec<ContextFile>) {
        let resolved = self.resolve_image(reference, platform, mode).await;
        let mut files = Vec::new();
        for path in paths {
            let file = self.context_file(path).await;
            let failed = file.is_err();
            files.push(file);
            if failed {
                break;
            }
        }
        (resolved, files)
    }
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
    /// Its image ID and binary when the engine gave no digest.
    pub frontend_local: Option<convert::LocalFrontend>,
    pub resolve_mode: ResolveMode,
    /// The build context local and its session.
    pub context_name: String,
    pub session_id: Option<String>,
    pub network: Network,
    /// The worker's snapshotter label, if it has one.
    pub snapshotter: Option<String>,
    /// The engine can be told not to content-hash a mount (see
    /// `convert::Opts::skip_content_hash`).
    pub skip_content_hash: bool,
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
    /// Whether the image carries the record of the private keys and
    /// identities its build made (`convert::SECRETS_RECORD`, when it made
    /// any).
    pub secrets: bool,
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

    /// The image's SLSA provenance: a state holding only
    /// `provenance.json` (see `convert::provenance`).
    pub fn provenance(&self) -> Result<State> {
        let facts =
            convert::sbom::facts(&self.recipe, &self.lock, &self.opts, &self.input_files())?;
        let declared = crate::recipe::ArgValues {
            values: self
                .opts
                .args
                .values
                .iter()
                .filter(|(name, _)| self.recipe.args.iter().any(|d| &d.name == *name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let predicate = convert::provenance::predicate(
            &facts,
            &convert::provenance::Request {
                // What it describes is the image, whichever target writes it.
                target: Target::Image.name(),
                platform: &self.opts.platform,
                args: &declared,
                lockfiles: &self.lockfiles,
            },
        );
        Ok(convert::provenance::provenance_llb(predicate))
    }

    /// Converts for the requested target.
    pub fn convert(&self) -> Result<Output> {
        match self.target {
            Target::Lock => Ok(Output {
                state: convert::lock_llb(&self.recipe, &self.opts)?,
                config: None,
                always_fresh: true,
                secrets: false,
            }),
            Target::Image => {
                let c = self.to_llb()?;
                Ok(Output {
                    state: c.state,
                    config: Some(c.config),
                    always_fresh: false,
                    secrets: c.secrets,
                })
            }
            Target::Provenance => Ok(Output {
                state: self.provenance()?,
                config: None,
                always_fresh: false,
                secrets: false,
            }),
            Target::Sbom => Ok(Output {
                state: self.sbom()?,
                config: None,
                always_fresh: false,
                secrets: false,
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
                    secrets: false,
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
            published,
            &self.opts.platform,
            &self.opts.frontend_record(),
        );
        Ok(Output {
            state: convert::verify::verify_llb(&built, published, facts, &self.opts),
            config: None,
            always_fresh: false,
            secrets: false,
        })
    }
}

/// Reads and checks everything a conversion needs.
pub(crate) async fn prepare<I: Inputs>(src: &mut I, req: &Request) -> Result<Prepared> {
    let (recipe, args) = load_recipe(src, req).await?;
    let text =
        reference::normalize(&recipe.base.value).map_err(|e| at(&recipe, recipe.base.span, e))?;
    let paths = match req.target {
        Target::Lock => Vec::new(),
        _ => lockfile_paths(&recipe),
    };
    // The base is resolved while the lockfiles are read: neither needs the other.
    let (resolved, files) = src
        .resolve_while_reading(&text, &req.platform, req.resolve_mode, &paths)
        .await;
    let base = pin_base(src, &recipe, req, text, resolved?).await?;
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
        frontend_local: req.frontend_local.clone(),
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
        skip_content_hash: req.skip_content_hash,
    };
    let mut lock = Lockfile::default();
    let mut lockfiles = Vec::new();
    if req.target != Target::Lock {
        let texts = lockfile_texts(&recipe, &paths, files)?;
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
async fn pin_base<I: Inputs>(
    src: &mut I,
    recipe: &Recipe,
    req: &Request,
    text: String,
    resolved: (String, Option<Vec<u8>>),
) -> Result<Base> {
    let at = |message: &dyn std::fmt::Display| at(recipe, recipe.base.span, message);
    let pinned = reference::has_digest(&text);
    let (mut digest, config) = resolved;
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
        return Err(at(&format_args!(
            "base image \"{text}\" is not pinned by digest, and the engine found no digest for it (try `docker inspect --format '{{{{index .RepoDigests 0}}}}' {text}`); pin it as name@sha256:<digest>, or set allow-unpinned-base: true for experiments"
        ))
        .into());
    } else {
        return Err(at(&format_args!(
            "base image \"{text}\" is not pinned by digest; the engine resolved it to {text}@{digest} (paste that into base:, or set allow-unpinned-base: true for experiments)"
        ))
        .into());
    };
    Ok(Base {
        reference,
        note,
        config,
    })
}

/// The recipe's lockfiles, as paths in the build context, in order.
fn lockfile_paths(recipe: &Recipe) -> Vec<String> {
    recipe
        .packages
        .iter()
        .flat_map(|p| &p.sums)
        .map(|sums| sums.value.trim_start_matches("./").to_string())
        .collect()
}

/// The lockfiles read from the build context (`files`, one per path of
/// [`lockfile_paths`] up to the first that failed) as text; a failed read
/// is an error at its `sums` line.
fn lockfile_texts(
    recipe: &Recipe,
    paths: &[String],
    files: Vec<ContextFile>,
) -> Result<Vec<(String, String)>> {
    let sums = recipe.packages.iter().flat_map(|p| &p.sums);
    let mut out = Vec::new();
    for ((path, file), sums) in paths.iter().zip(files).zip(sums) {
        let bytes = file.map_err(|e| {
            at(
                recipe,
                sums.span,
                format_args!("cannot read the lockfile \"{path}\" from the build context: {e}"),
            )
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow!("{path}: the lockfile is not UTF-8 text"))?;
        out.push((path.clone(), text));
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

/// An error at the recipe item that starts at `span`.
fn at(recipe: &Recipe, span: Span, message: impl std::fmt::Display) -> Located {
    Located::new(&recipe.file, (span.line, span.col), message)
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
    // With providers, a lockfile of one package kind names the tool: the
    // base is not opened, so nothing waits for it to be pulled before the
    // build's definition goes out (a base without that tool fails the
    // install step, saying so).
    if p.installer.is_none()
        && !p.providers.is_empty()
        && let Some(tool) = installer_of_packages(lock)
    {
        return Ok(Probed {
            installer: Some(tool),
            ..Probed::default()
        });
    }
    // A lockfile with packages came from a `sums` entry: point at the first.
    let span = p.sums.first().map_or(recipe.base.span, |s| s.span);
    let at = |message: &str| -> anyhow::Error { at(recipe, span, message).into() };
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
            return Err(at(
                "cannot tell the base image's package tool from its /etc/os-release; set packages.installer (dpkg, rpm, apk or pacman)",
            ));
        } else if probed.installer.is_none() {
            return Err(at(
                "cannot tell the base image's package tool from the lockfile's package kinds; pass --base-root (the base image's unpacked root filesystem) or set packages.installer (dpkg, rpm, apk or pacman)",
            ));
        }
    }
    if p.providers.is_empty() {
        if !opened && opts.extra_providers.is_empty() {
            return Err(at(
                "packages has no providers, and without --base-root the base image's package sources cannot be read; pass --base-root (the base image's unpacked root filesystem) or add packages.providers",
            ));
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
                return Err(at(
                    "packages has no providers, and the base image has no apt or apk sources to take them from; add packages.providers (URL templates such as \"http://<mirror>/debian/{{.Name}}\")",
                ));
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
