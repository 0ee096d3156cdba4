//! Recipe + lockfile -> LLB: the heart of the frontend.
//!
//! The graph, in order:
//! 1. the base image, by digest;
//! 2. the lockfile's blobs gathered into one read-only directory: one HTTP
//!    source per blob, verified by BuildKit against its sha256, when the
//!    recipe has a single http(s) provider; otherwise fetch execs of our own
//!    binary that try the providers in order (see `fetch.rs`);
//! 3. one install exec of the whole set (dpkg, rpm, apk or pacman) with no
//!    network;
//! 4. the recipe's steps, each with `SOURCE_DATE_EPOCH` set;
//! 5. the normalize exec: our own static binary, from our own image, reads
//!    the target mounted read-only at /target and writes the normalized copy
//!    to a scratch mount at /out (see `normalize.rs`); that mount is the
//!    result: one layer, no whiteouts.

pub mod image;

use std::collections::BTreeMap;

use crate::distro::install::Installer;
use crate::llb::{self, CopyOpts, LocalOpts, Mount, Network, Owner, ResolveMode, State};
use crate::lockfile::{Entry, Lockfile};
use crate::recipe::template::Template;
use crate::recipe::{ArgValues, Command, Recipe, Spanned, Step};
use crate::step::fetch;
use image::{BaseConfig, Provenance};

/// Where the packages are mounted during the install step. Under /tmp, which
/// normalization empties, so the mount point leaves no trace.
pub const PACKAGES_DIR: &str = "/tmp/repro-packages";
/// Where the frontend image is mounted in the install step (under /tmp too).
pub const TOOL_DIR: &str = "/tmp/repro-tool";
/// Where the target rootfs is mounted in the normalize exec.
pub const TARGET_DIR: &str = "/target";
/// Where the base image is mounted (read-only) in the normalize exec.
pub const BASE_DIR: &str = "/base";
/// Where the normalize exec writes the squashed rootfs (a scratch mount).
pub const OUT_DIR: &str = "/out";
/// Path of our binary inside the frontend image.
pub const FRONTEND_BINARY: &str = "/repro-frontend";

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Target platform of the build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Everything the conversion needs besides the recipe and the lockfile.
#[derive(Clone, Debug)]
pub struct Opts {
    /// The base reference used in the LLB (`name@sha256:...`).
    pub base_ref: String,
    pub base: BaseConfig,
    pub epoch: i64,
    pub args: ArgValues,
    pub platform: Platform,
    /// The frontend's own image (the `source` opt), for the normalize exec.
    pub frontend_image: String,
    pub resolve_mode: ResolveMode,
    /// The build context local and how to reach it.
    pub context_name: String,
    pub context: LocalOpts,
    /// A note shown in the progress name of the base image (e.g. an unpinned warning).
    pub base_note: Option<String>,
    /// Provider templates tried before the recipe's (`REPRO_PROVIDERS`).
    pub extra_providers: Vec<String>,
    /// Templates from the base image's package sources, used when the recipe
    /// lists no providers.
    pub default_providers: Vec<String>,
    /// The network of fetch steps and `run` steps (`docker build --network`).
    pub network: Network,
    /// The package tool the base image's os-release implies, if known; the
    /// recipe's `packages.installer` wins, and dpkg is the default.
    pub installer: Option<Installer>,
}

/// The result of the conversion.
#[derive(Clone, Debug)]
pub struct Converted {
    pub state: State,
    /// The image config JSON.
    pub config: Vec<u8>,
    /// The verified package blobs, gathered in one directory by basename:
    /// the `packages` target. None when the recipe installs no package.
    pub packages: Option<State>,
}

/// A conversion error, positioned in the recipe or the lockfile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ConvertError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// The build arg that puts provider templates in front of the recipe's.
pub const PROVIDERS_ARG: &str = "REPRO_PROVIDERS";

/// Templates from the `REPRO_PROVIDERS` build arg (space- or comma-separated).
pub fn extra_providers(build_args: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    build_args
        .get(PROVIDERS_ARG)
        .map(|v| {
            v.split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Picks the epoch: the SOURCE_DATE_EPOCH build arg, else the recipe's
/// `epoch:`, else the base image's `created` time. Never the wall clock.
pub fn choose_epoch(
    build_arg: Option<&str>,
    recipe: &Recipe,
    base_created: Option<i64>,
) -> Result<i64, String> {
    if let Some(v) = build_arg.filter(|v| !v.is_empty()) {
        return v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            format!(
                "build arg SOURCE_DATE_EPOCH=\"{v}\" is not a whole number of seconds since 1970"
            )
        });
    }
    match (&recipe.epoch, base_created) {
        (Some(e), _) => Ok(e.value),
        (None, Some(created)) => Ok(created),
        (None, None) => Err(format!(
            "{}: no epoch: the base image has no \"created\" time; set epoch: in the recipe or --build-arg SOURCE_DATE_EPOCH=<seconds>",
            recipe.file
        )),
    }
}

/// The base image, and a state on it with the base's environment, PATH and
/// SOURCE_DATE_EPOCH, for execs.
fn base_states(opts: &Opts) -> (State, State) {
    let mut base_name = format!("base image {}", opts.base_ref);
    if let Some(note) = &opts.base_note {
        base_name.push_str(&format!(" ({note})"));
    }
    let base = llb::image(&opts.base_ref, opts.resolve_mode, Some(base_name));
    let mut root = base.clone();
    for (k, v) in opts.base.env() {
        root = root.with_env(&k, &v);
    }
    if !root.env().iter().any(|(k, _)| k == "PATH") {
        root = root.with_env("PATH", DEFAULT_PATH);
    }
    root = root.with_env("SOURCE_DATE_EPOCH", &opts.epoch.to_string());
    (base, root)
}

/// The `lock` target: apt, in the pinned base, resolves `packages.install`
/// (the closure minus what the base has) and the frontend's own binary,
/// mounted from its image, writes the lockfile named like the recipe's first
/// `sums` file. The result holds only that file, for `--output type=local`.
pub fn lock_llb(recipe: &Recipe, opts: &Opts) -> Result<State, ConvertError> {
    let Some(packages) = &recipe.packages else {
        return Err(ConvertError {
            file: recipe.file.clone(),
            line: recipe.base.span.line,
            col: recipe.base.span.col,
            message: "the lock target needs a packages: section with install: and sums:".into(),
        });
    };
    if packages.install.is_empty() {
        return Err(err_at(
            &recipe.file,
            &packages.sums[0],
            "the lock target needs packages.install (the package names to resolve)",
        ));
    }
    let file = crate::recipe::template::basename(&packages.sums[0].value).to_string();
    let (_, root) = base_states(opts);
    let mut argv: Vec<String> = vec![
        format!("/repro{FRONTEND_BINARY}"),
        "lock".into(),
        "--base".into(),
        opts.base_ref.clone(),
        "--out".into(),
        format!("{OUT_DIR}/{file}"),
    ];
    argv.extend(packages.install.iter().map(|p| p.value.clone()));
    let names: Vec<&str> = packages.install.iter().map(|p| p.value.as_str()).collect();
    Ok(root
        .with_user("0:0")
        .run(argv)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .network(opts.network)
        .mount(Mount::readonly("/repro", frontend_image(opts)))
        .name(format!(
            "lock {} with apt in {}",
            names.join(" "),
            opts.base_ref
        ))
        .build_into(OUT_DIR))
}

/// Converts an expanded recipe (see [`Recipe::expand`]) and its lockfile.
pub fn to_llb(recipe: &Recipe, lock: &Lockfile, opts: &Opts) -> Result<Converted, ConvertError> {
    let (base, mut root) = base_states(opts);
    let epoch = opts.epoch.to_string();
    if let Some(wd) = opts
        .base
        .config
        .get("WorkingDir")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        root = root.with_cwd(wd);
    }

    let mut n_packages = 0;
    let mut gathered = None;
    if let Some(packages) = &recipe.packages {
        let installer = packages
            .installer
            .as_ref()
            .map(|i| i.value)
            .or(opts.installer)
            .unwrap_or(Installer::Dpkg);
        let packages_only: Vec<&Entry> = lock.packages().collect();
        for entry in &packages_only {
            if !installer.accepts(&entry.name) {
                return Err(ConvertError {
                    file: entry.file.clone(),
                    line: entry.line,
                    col: 67,
                    message: format!(
                        "cannot install \"{}\" with {installer}: it installs {} packages (set packages.installer if the base image's tool is another)",
                        entry.name,
                        installer.package_kind()
                    ),
                });
            }
        }
        // With `signatures: true`, each package's .sig comes along.
        let mut entries = packages_only.clone();
        if packages.signatures {
            for e in &lock.entries {
                if let Some(pkg) = e.name.strip_suffix(".sig")
                    && packages_only.iter().any(|p| p.name == pkg)
                {
                    entries.push(e);
                }
            }
        }
        let providers = provider_templates(recipe, packages, opts)?;
        if !entries.is_empty() {
            let blobs = if let [single] = providers.as_slice()
                && entries.iter().all(|e| {
                    matches!(
                        fetch::locate(single, &e.name, &e.sha256),
                        Ok(fetch::Location::Http(_))
                    )
                }) {
                fetch_natively(single, &entries)
            } else {
                fetch_with_fallback(&providers, &entries, opts)
            };
            n_packages = packages_only.len();
            let asked: Vec<&str> = packages.install.iter().map(|p| p.value.as_str()).collect();
            root = install(&root, blobs.clone(), installer, n_packages, &asked, opts);
            gathered = Some(blobs);
        }
    }

    let mut user = opts
        .base
        .config
        .get("User")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let mut steps_root = root.clone();
    if !user.is_empty() {
        steps_root = steps_root.with_user(&user);
    }
    let context = llb::local(
        &opts.context_name,
        &LocalOpts {
            include_patterns: copy_sources(recipe),
            ..opts.context.clone()
        },
        Some("load build context".into()),
    );
    for step in &recipe.steps {
        steps_root = match &step.value {
            Step::Run(cmd) => {
                let argv = match cmd {
                    Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.value.clone()],
                    Command::Exec(argv) => argv.iter().map(|a| a.value.clone()).collect(),
                };
                let mut exec = steps_root
                    .run(argv)
                    .network(opts.network)
                    .name(format!("run {cmd}"));
                for decl in &recipe.args {
                    if let Some(v) = opts.args.get(&decl.name) {
                        exec = exec.env(&decl.name, v);
                    }
                }
                exec.build().root
            }
            Step::Copy {
                src,
                dest,
                owner,
                mode,
            } => {
                let (user_opt, group_opt) = match owner {
                    Some(o) => parse_owner(o).map_err(|m| err_at(&recipe.file, o, &m))?,
                    None => (None, None),
                };
                let dest_path = absolute(steps_root.cwd(), &dest.value);
                steps_root
                    .file()
                    .copy(
                        &context,
                        &absolute(None, &src.value),
                        &dest_path,
                        CopyOpts {
                            user: user_opt,
                            group: group_opt,
                            mode: mode.as_ref().map(|m| m.value),
                            dir_contents_only: true,
                            create_dest_path: true,
                            allow_wildcard: true,
                            timestamp: None,
                        },
                    )
                    .name(format!("copy {} {}", src.value, dest_path))
                    .build()
            }
            Step::Env(vars) => vars
                .iter()
                .fold(steps_root, |s, (k, v)| s.with_env(k, &v.value)),
            Step::Workdir(w) => {
                let path = absolute(steps_root.cwd(), &w.value);
                steps_root
                    .file()
                    .mkdir(&path, 0o755, true, Some(opts.epoch))
                    .name(format!("workdir {path}"))
                    .build()
                    .with_cwd(&path)
            }
            Step::User(u) => {
                user = u.value.clone();
                steps_root.with_user(&user)
            }
        };
    }

    let squashed = frontend_image(opts)
        .run(vec![
            FRONTEND_BINARY.into(),
            "normalize".into(),
            "--epoch".into(),
            epoch.clone(),
            "--base".into(),
            BASE_DIR.into(),
            "--out".into(),
            OUT_DIR.into(),
            TARGET_DIR.into(),
        ])
        .network(Network::None)
        .mount(Mount::readonly(BASE_DIR, base))
        .mount(Mount::readonly(TARGET_DIR, steps_root))
        .name(format!(
            "normalize: squash onto scratch, clamp times to {epoch}, remove logs and caches"
        ))
        // The scratch mount's snapshot is the image's one layer.
        .build_into(OUT_DIR);

    let comment = format!(
        "{} package(s) from the lockfile and {} step(s) on {}",
        n_packages,
        recipe.steps.len(),
        opts.base_ref
    );
    let config = image::config(
        &opts.base,
        &recipe.image,
        &Provenance {
            epoch: opts.epoch,
            architecture: opts.platform.architecture.clone(),
            os: opts.platform.os.clone(),
            variant: opts.platform.variant.clone(),
            comment,
        },
    );
    Ok(Converted {
        state: squashed,
        config,
        packages: gathered,
    })
}

/// One BuildKit HTTP source per blob, verified and cached by BuildKit by its
/// sha256, gathered into one directory: the path when the recipe has a single
/// http(s) provider, so there is nothing to fall back to.
fn fetch_natively(provider: &Template, entries: &[&Entry]) -> State {
    let mut gather = State::scratch().file();
    for e in entries {
        let url = provider.render(&e.name, &e.sha256);
        let blob = llb::http(
            &url,
            &e.digest(),
            e.basename(),
            Some(0o644),
            // The URL is in the name because a failed source ends the build
            // and the engines show that step, not the frontend's message.
            Some(format!(
                "fetch {} (sha256:{}) from {url}",
                e.basename(),
                e.short_digest()
            )),
        );
        let name = format!("/{}", e.basename());
        gather = gather.copy(&blob, &name, &name, CopyOpts::default());
    }
    gather
        .name(format!("gather {} package(s)", entries.len()))
        .build()
}

/// Fetch steps run by the frontend's own binary (`fetch.rs`), trying the
/// providers in order for each blob. Blobs are grouped by the first hex digit
/// of their sha256, so a lockfile change refetches one group, not all; each
/// group's LLB holds the whole provider list, so the provider that answered
/// never shows in the LLB of the install step.
fn fetch_with_fallback(providers: &[Template], entries: &[&Entry], opts: &Opts) -> State {
    let mut groups: BTreeMap<char, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        groups
            .entry(e.sha256.chars().next().unwrap_or('0'))
            .or_default()
            .push(e);
    }
    // Paths the context:// providers read, so only they are sent.
    let mut context_paths = Vec::new();
    for e in entries {
        for p in providers {
            if let Ok(fetch::Location::Context { path, .. }) = fetch::locate(p, &e.name, &e.sha256)
            {
                context_paths.push(path);
            }
        }
    }
    context_paths.sort();
    context_paths.dedup();
    let context = (!context_paths.is_empty()).then(|| {
        llb::local(
            &opts.context_name,
            &LocalOpts {
                include_patterns: context_paths,
                ..opts.context.clone()
            },
            Some("load package blobs from the build context".into()),
        )
    });
    let tool = frontend_image(opts);
    let provider_list: Vec<String> = providers.iter().map(|t| t.as_str().to_string()).collect();
    let mut gather = State::scratch().file();
    for (key, group) in &groups {
        let plan = fetch::Plan {
            providers: provider_list.clone(),
            blobs: group
                .iter()
                .map(|e| fetch::Blob {
                    name: e.name.clone(),
                    sha256: e.sha256.clone(),
                    size: e.size,
                })
                .collect(),
        };
        // A plan of strings always serializes.
        let json = serde_json::to_vec_pretty(&plan).unwrap_or_default();
        let plan_state = State::scratch()
            .file()
            .mkfile("/plan.json", 0o644, json, Some(0))
            .name(format!(
                "plan the fetch of {} package(s) (sha256 {key}…)",
                group.len()
            ))
            .build();
        let mut exec = tool
            .run(vec![
                FRONTEND_BINARY.into(),
                "fetch".into(),
                "--plan".into(),
                "/plan/plan.json".into(),
                "--out".into(),
                OUT_DIR.into(),
                "--context".into(),
                fetch::CONTEXT_DIR.into(),
            ])
            .network(opts.network)
            .mount(Mount::readonly("/plan", plan_state))
            .name(format!(
                "fetch {} package(s) (sha256 {key}…), trying {} provider(s) in order",
                group.len(),
                providers.len()
            ));
        if let Some(ctx) = &context {
            exec = exec.mount(Mount::readonly(fetch::CONTEXT_DIR, ctx.clone()));
        }
        let out = exec.build_into(OUT_DIR);
        gather = gather.copy(
            &out,
            "/",
            "/",
            CopyOpts {
                dir_contents_only: true,
                ..Default::default()
            },
        );
    }
    gather
        .name(format!("gather {} package(s)", entries.len()))
        .build()
}

/// The recipe's providers, after those the `REPRO_PROVIDERS` build arg puts
/// in front, parsed.
fn provider_templates(
    recipe: &Recipe,
    packages: &crate::recipe::Packages,
    opts: &Opts,
) -> Result<Vec<Template>, ConvertError> {
    // Providers that come from outside the recipe: the error names where.
    let parse_from = |p: &str, from: &str| {
        Template::parse(p).map_err(|e| ConvertError {
            file: from.into(),
            line: 1,
            col: 1 + e.offset,
            message: format!("{} in \"{p}\"", e.message),
        })
    };
    let mut out = Vec::new();
    for p in &opts.extra_providers {
        out.push(parse_from(p, "build arg REPRO_PROVIDERS")?);
    }
    if packages.providers.is_empty() {
        for p in &opts.default_providers {
            out.push(parse_from(p, "the base image's package sources")?);
        }
    }
    for p in &packages.providers {
        out.push(Template::parse(&p.value).map_err(|e| ConvertError {
            file: recipe.file.clone(),
            line: p.span.line,
            col: p.span.col + e.offset,
            message: e.message,
        })?);
    }
    if out.is_empty() {
        return Err(err_at(
            &recipe.file,
            &packages.sums[0],
            "no provider to fetch packages from (add packages.providers or the REPRO_PROVIDERS build arg)",
        ));
    }
    Ok(out)
}

fn frontend_image(opts: &Opts) -> State {
    llb::image(
        &opts.frontend_image,
        opts.resolve_mode,
        Some(format!("frontend image {}", opts.frontend_image)),
    )
}

/// Installs the gathered packages with the distro's tool, offline. The exec
/// runs our own binary (mounted from the frontend image under /tmp, which
/// normalization empties), which runs the tool and summarises its failures
/// (see `install_step.rs`); the argv stays short whatever the package count.
fn install(
    root: &State,
    blobs: State,
    installer: Installer,
    n_packages: usize,
    asked: &[&str],
    opts: &Opts,
) -> State {
    let mut argv: Vec<String> = vec![
        format!("{TOOL_DIR}{FRONTEND_BINARY}"),
        "install".into(),
        "--tool".into(),
        installer.name().into(),
    ];
    // What the recipe asked for stays marked manual; apt marks the rest of
    // the closure automatic, as a plain `apt-get install` would.
    for name in asked {
        argv.push(format!("--manual={name}"));
    }
    argv.push(PACKAGES_DIR.into());
    let mut exec = root
        .with_user("0:0")
        .run(argv)
        .network(Network::None)
        .mount(Mount::readonly(PACKAGES_DIR, blobs))
        .mount(Mount::readonly(TOOL_DIR, frontend_image(opts)))
        .name(format!(
            "install {n_packages} package(s) with {installer} (no network)"
        ));
    for (k, v) in installer.env() {
        exec = exec.env(k, v);
    }
    exec.build().root.with_user("")
}

/// The context paths the copy steps read, as include patterns, so only they
/// are sent from the client.
fn copy_sources(recipe: &Recipe) -> Vec<String> {
    let mut out: Vec<String> = recipe
        .steps
        .iter()
        .filter_map(|s| match &s.value {
            Step::Copy { src, .. } => Some(
                src.value
                    .trim_start_matches('/')
                    .trim_start_matches("./")
                    .to_string(),
            ),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn absolute(cwd: Option<&str>, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        let base = cwd.unwrap_or("/").trim_end_matches('/');
        format!("{base}/{path}")
    }
}

/// `uid[:gid]` with numbers or names.
fn parse_owner(o: &Spanned<String>) -> Result<(Option<Owner>, Option<Owner>), String> {
    let one = |s: &str| -> Result<Owner, String> {
        if s.is_empty() {
            return Err(format!("owner \"{}\" has an empty user or group", o.value));
        }
        Ok(match s.parse::<u32>() {
            Ok(id) => Owner::Id(id),
            Err(_) => Owner::Name(s.to_string()),
        })
    };
    match o.value.split_once(':') {
        Some((u, g)) => Ok((Some(one(u)?), Some(one(g)?))),
        None => {
            let u = one(&o.value)?;
            Ok((Some(u.clone()), Some(u)))
        }
    }
}

fn err_at<T>(file: &str, at: &Spanned<T>, message: &str) -> ConvertError {
    ConvertError {
        file: file.to_string(),
        line: at.span.line,
        col: at.span.col,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{lockfile, recipe};
    use bollard_buildkit_proto::pb;
    use prost::Message;
    use std::collections::BTreeMap;

    const RECIPE: &str = r#"
args:
  MIRROR: http://mirror.invalid/debian
base: reg.invalid/debian@sha256:1111111111111111111111111111111111111111111111111111111111111111
packages:
  sums: SHA256SUMS-amd64
  providers: ["${MIRROR}/{{.Name}}"]
steps:
  - run: hello > /hello.txt
  - copy: {src: hello.c, dest: src/, owner: "1000:1000", mode: "0600"}
image:
  cmd: [hello]
"#;
    const SUMS: &str = "\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  pool/main/h/hello/hello_2.10-3_amd64.deb
bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  pool/main/libx/libx1_1.0_amd64.deb
";

    fn opts(args: ArgValues) -> Opts {
        Opts {
            base_ref: "reg.invalid/debian@sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            base: BaseConfig::parse(br#"{"config":{"Env":["PATH=/usr/bin:/bin"]},"created":"2024-01-01T00:00:00Z"}"#).unwrap(),
            epoch: 1_700_000_000,
            args,
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
            frontend_image: "repro-frontend:v0".into(),
            resolve_mode: ResolveMode::Default,
            context_name: "context".into(),
            context: LocalOpts::default(),
            base_note: None,
            extra_providers: Vec::new(),
            default_providers: Vec::new(),
            network: Network::Sandbox,
            installer: None,
        }
    }

    fn convert(mirror: &str) -> Converted {
        convert_text(RECIPE, mirror)
    }

    fn convert_text(text: &str, mirror: &str) -> Converted {
        let r = recipe::parse("repro.yaml", text).unwrap();
        let mut build = BTreeMap::new();
        build.insert("MIRROR".to_string(), mirror.to_string());
        let args = r.arg_values(&build, &BTreeMap::new()).unwrap();
        let r = r.expand(&args).unwrap();
        let lock = lockfile::parse_named("SHA256SUMS-amd64", SUMS).unwrap();
        to_llb(&r, &lock, &opts(args)).unwrap()
    }

    fn ops(c: &Converted) -> Vec<(pb::Op, pb::OpMetadata)> {
        let def = c.state.marshal();
        def.def
            .iter()
            .map(|b| {
                let d = format!(
                    "sha256:{}",
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
                );
                (
                    pb::Op::decode(b.as_slice()).unwrap(),
                    def.metadata.get(&d).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The install step's exec (`repro-frontend install ...`) and its name.
    fn install_exec(c: &Converted) -> (pb::ExecOp, String) {
        execs(c)
            .into_iter()
            .find(|(e, _)| {
                e.meta
                    .as_ref()
                    .unwrap()
                    .args
                    .get(1)
                    .is_some_and(|a| a == "install")
            })
            .expect("an install step")
    }

    fn execs(c: &Converted) -> Vec<(pb::ExecOp, String)> {
        ops(c)
            .into_iter()
            .filter_map(|(op, md)| match op.op {
                Some(pb::op::Op::Exec(e)) => Some((
                    e,
                    md.description
                        .get("llb.customname")
                        .cloned()
                        .unwrap_or_default(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_verified_http_source_per_package() {
        let c = convert("http://127.0.0.1:8000");
        let sources: Vec<pb::SourceOp> = ops(&c)
            .into_iter()
            .filter_map(|(op, _)| match op.op {
                Some(pb::op::Op::Source(s)) if s.identifier.starts_with("http") => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(sources.len(), 2);
        assert_eq!(
            sources[0].identifier,
            "http://127.0.0.1:8000/pool/main/h/hello/hello_2.10-3_amd64.deb"
        );
        assert_eq!(
            sources[0].attrs["http.checksum"],
            format!("sha256:{}", "a".repeat(64))
        );
        assert_eq!(sources[0].attrs["http.filename"], "hello_2.10-3_amd64.deb");
    }

    #[test]
    fn install_runs_our_binary_offline_with_packages_read_only() {
        let c = convert("http://127.0.0.1:8000");
        let (install, name) = install_exec(&c);
        let meta = install.meta.unwrap();
        // A short argv whatever the package count: the error line BuildKit
        // prints when the step fails quotes it.
        assert_eq!(
            meta.args,
            [
                "/tmp/repro-tool/repro-frontend",
                "install",
                "--tool",
                "dpkg",
                "/tmp/repro-packages",
            ]
        );
        for env in [
            "SOURCE_DATE_EPOCH=1700000000",
            "DEBIAN_FRONTEND=noninteractive",
            "DEBCONF_NONINTERACTIVE_SEEN=true",
        ] {
            assert!(meta.env.contains(&env.to_string()), "{env}: {:?}", meta.env);
        }
        let tool = install.mounts.iter().find(|m| m.dest == TOOL_DIR).unwrap();
        assert!(tool.readonly);
        assert_eq!(install.network, pb::NetMode::None as i32);
        let pkgs = install
            .mounts
            .iter()
            .find(|m| m.dest == PACKAGES_DIR)
            .unwrap();
        assert!(pkgs.readonly);
        assert!(name.contains("install 2 package(s)"));
    }

    #[test]
    fn the_names_the_recipe_asked_for_reach_the_install_step() {
        let text = RECIPE.replace(
            "  sums: SHA256SUMS-amd64\n",
            "  install: [hello]\n  sums: SHA256SUMS-amd64\n  allow-stale-lock: true\n",
        );
        let c = convert_text(&text, "http://127.0.0.1:8000");
        let (install, _) = install_exec(&c);
        let argv = install.meta.unwrap().args;
        assert_eq!(argv[4], "--manual=hello");
        assert_eq!(argv.last().unwrap(), PACKAGES_DIR);
    }

    #[test]
    fn steps_see_the_epoch_and_normalize_runs_our_binary_on_the_target() {
        let c = convert("http://127.0.0.1:8000");
        let all = execs(&c);
        let (run, _) = all
            .iter()
            .find(|(e, _)| e.meta.as_ref().unwrap().args[0] == "/bin/sh")
            .unwrap();
        let meta = run.meta.as_ref().unwrap();
        assert_eq!(meta.args[2], "hello > /hello.txt");
        assert!(
            meta.env
                .contains(&"SOURCE_DATE_EPOCH=1700000000".to_string())
        );
        assert!(
            meta.env
                .contains(&"MIRROR=http://127.0.0.1:8000".to_string())
        );
        let (norm, _) = all
            .iter()
            .find(|(e, _)| e.meta.as_ref().unwrap().args[0] == FRONTEND_BINARY)
            .unwrap();
        assert_eq!(
            norm.meta.as_ref().unwrap().args,
            [
                FRONTEND_BINARY,
                "normalize",
                "--epoch",
                "1700000000",
                "--base",
                BASE_DIR,
                "--out",
                OUT_DIR,
                TARGET_DIR
            ]
        );
        assert!(norm.mounts.iter().any(|m| m.dest == BASE_DIR && m.readonly));
        assert_eq!(norm.network, pb::NetMode::None as i32);
        let target = norm.mounts.iter().find(|m| m.dest == TARGET_DIR).unwrap();
        assert!(target.readonly, "the target is only read");
        let out = norm.mounts.iter().find(|m| m.dest == OUT_DIR).unwrap();
        assert_eq!(
            (out.input, out.output),
            (-1, 1),
            "a scratch mount, output 1"
        );
    }

    #[test]
    fn result_is_the_normalize_steps_scratch_mount() {
        let c = convert("http://127.0.0.1:8000");
        let all = ops(&c);
        let (terminal, _) = &all[all.len() - 1];
        let (last, md) = &all[all.len() - 2];
        let Some(pb::op::Op::Exec(e)) = &last.op else {
            panic!("the op before the terminal one is not the normalize exec")
        };
        assert_eq!(e.meta.as_ref().unwrap().args[1], "normalize");
        assert_eq!(terminal.inputs[0].index, 1, "the image is the /out mount");
        assert!(
            md.description["llb.customname"].starts_with("normalize: squash onto scratch"),
            "{:?}",
            md.description
        );
    }

    #[test]
    fn copy_step_reads_only_its_source_from_the_context() {
        let c = convert("http://127.0.0.1:8000");
        let all = ops(&c);
        let local = all
            .iter()
            .find_map(|(op, _)| match &op.op {
                Some(pb::op::Op::Source(s)) if s.identifier == "local://context" => Some(s.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(local.attrs["local.includepattern"], "[\"hello.c\"]");
        let copy = all
            .iter()
            .find_map(|(op, md)| match &op.op {
                Some(pb::op::Op::File(f))
                    if md.description["llb.customname"].starts_with("copy hello.c") =>
                {
                    Some(f.clone())
                }
                _ => None,
            })
            .unwrap();
        let Some(pb::file_action::Action::Copy(cp)) = &copy.actions[0].action else {
            panic!()
        };
        assert_eq!(cp.dest, "/src/");
        assert_eq!(cp.mode, 0o600);
        assert!(cp.owner.is_some());
    }

    #[test]
    fn the_config_comes_with_the_conversion() {
        let c = convert("http://127.0.0.1:8000");
        let v: serde_json::Value = serde_json::from_slice(&c.config).unwrap();
        assert_eq!(v["created"], "2023-11-14T22:13:20Z");
        assert_eq!(v["config"]["Cmd"], serde_json::json!(["hello"]));
    }

    #[test]
    fn non_deb_packages_are_refused_with_their_line() {
        let r = recipe::parse("repro.yaml", RECIPE).unwrap();
        let args = r.arg_values(&BTreeMap::new(), &BTreeMap::new()).unwrap();
        let r = r.expand(&args).unwrap();
        let lock = lockfile::parse_named(
            "SHA256SUMS-amd64",
            &format!(
                "{}  a.deb\n{}  x/bash-5.1.16-r2.apk\n",
                "a".repeat(64),
                "b".repeat(64)
            ),
        )
        .unwrap();
        let e = to_llb(&r, &lock, &opts(args)).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("SHA256SUMS-amd64", 2));
        assert!(
            e.message.contains("with dpkg: it installs .deb packages"),
            "{}",
            e.message
        );
    }
}
