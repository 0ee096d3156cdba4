//! The packages part of the graph: the lockfile's blobs fetched and
//! verified (by BuildKit's HTTP source, or by our fetch step where providers
//! fall back), gathered in one directory, and installed by the distro's tool
//! with no network. Pure: builds LLB only.

use std::collections::{BTreeMap, HashMap};

use super::base::{frontend_image, helper_env, tree_mount};
use super::opts::{ConvertError, FRONTEND_BINARY, OUT_DIR, Opts, PACKAGES_DIR, TOOL_DIR, err_at};
use super::platform::Platform;
use crate::distro::arch;
use crate::distro::install::Installer;
use crate::llb::{self, CopyOpts, LocalOpts, Location, Mount, Network, State};
use crate::lockfile::{Entry, Lockfile};
use crate::recipe::template::{Template, Vars};
use crate::recipe::{Packages, Recipe};
use crate::step::fetch;

/// The root after the install step, the gathered blobs, and how many
/// packages were installed.
pub struct Installed {
    pub root: State,
    pub blobs: Option<State>,
    pub count: usize,
}

/// Fetches, verifies and installs the lockfile's packages on `root`; the ops
/// point at the recipe's `packages:` lines (`at`).
pub fn install_packages(
    recipe: &Recipe,
    packages: &Packages,
    lock: &Lockfile,
    opts: &Opts,
    root: State,
    at: Option<Location>,
) -> Result<Installed, ConvertError> {
    let installer = packages
        .installer
        .as_ref()
        .map(|i| i.value)
        .or(opts.installer)
        .unwrap_or(Installer::Dpkg);
    let packages_only: Vec<&Entry> = lock.packages().collect();
    check_kinds(&packages_only, installer)?;
    check_arch(&packages_only, installer, &opts.platform)?;
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
    if entries.is_empty() {
        return Ok(Installed {
            root,
            blobs: None,
            count: 0,
        });
    }
    let cids = lock.cids();
    if let Some(e) = entries
        .iter()
        .find(|e| !cids.contains_key(e.sha256.as_str()))
        && providers.iter().all(Template::needs_cid)
    {
        return Err(e.error_at_name(format!(
                "\"{}\" has no CID (no \"<sha256>  /ipfs/<cid>\" line with its sha256), and every provider names blobs by {{{{.CID}}}}; add its CID line or a provider by name, such as http://<mirror>/debian/{{{{.Name}}}}",
                e.name
            )));
    }
    // A single provider that gives an http(s) URL for every blob: BuildKit's
    // own HTTP sources, nothing to fall back to. They have no size or time
    // bound, so where the lockfile gives sizes the fetch step (which stops
    // at the size and at a deadline) is used instead, unless the provider is
    // the build host's own loopback: a service of the user's own, which the
    // engine reaches and a step in the build's network would not.
    // A fetch timeout in the recipe is kept the same way.
    let deadline = packages.fetch_timeout.as_ref().map(|t| t.value);
    let sized = entries.iter().any(|e| e.size.is_some()) || deadline.is_some();
    let urls: Option<Vec<String>> = match providers.as_slice() {
        [single] => entries
            .iter()
            .map(|e| match fetch::locate(single, vars_of(e, &cids)) {
                Ok(Some(fetch::Location::Http(url))) => Some(url),
                _ => None,
            })
            .collect::<Option<Vec<String>>>()
            .filter(|urls| !sized || urls.iter().all(|u| fetch::url_is_loopback(u))),
        _ => None,
    };
    let blobs = match urls {
        Some(urls) => fetch_natively(&entries, &urls, &at),
        None => fetch_with_fallback(&providers, &entries, &cids, deadline, opts, &at),
    };
    let asked: Vec<&str> = packages.install.iter().map(|p| p.value.as_str()).collect();
    let how = Install {
        installer,
        count: packages_only.len(),
        asked: &asked,
    };
    Ok(Installed {
        root: install(&root, blobs.clone(), &how, opts, at),
        blobs: Some(blobs),
        count: packages_only.len(),
    })
}

/// Every package must be of the kind the install tool installs.
fn check_kinds(packages: &[&Entry], installer: Installer) -> Result<(), ConvertError> {
    match packages.iter().find(|e| !installer.accepts(&e.name)) {
        None => Ok(()),
        Some(entry) => Err(entry.error_at_name(format!(
                "cannot install \"{}\" with {installer}: it installs {} packages (set packages.installer if the base image's tool is another)",
                entry.name,
                installer.package_kind()
            ))),
    }
}

/// Every package must be for the target platform's machine (or for every
/// machine): a lockfile made for another platform fails here, at its line,
/// rather than in the tool's own words halfway through the install.
fn check_arch(
    packages: &[&Entry],
    installer: Installer,
    platform: &Platform,
) -> Result<(), ConvertError> {
    let variant = platform.variant.as_deref();
    let key = platform.key();
    let found = packages.iter().find_map(|e| {
        arch::mismatch(installer, &e.name, &platform.architecture, variant).map(|m| (e, m))
    });
    match found {
        None => Ok(()),
        Some((entry, m)) => Err(entry.error_at_name(format!(
                "\"{}\" is a package for {}, and this build is for {key} ({} to {installer}): the lockfile was made for another platform; name the lockfile for {key} in packages.sums (SHA256SUMS-${{TARGETARCH}} picks one per platform, and --target lock --platform {key} writes it), or build for {} with --platform",
                entry.name, m.package, m.wanted, m.package,
            ))),
    }
}

/// A lockfile entry as a provider template sees it, its CID from the
/// lockfile's `/ipfs/` lines.
fn vars_of<'a>(e: &'a Entry, cids: &HashMap<&str, &'a str>) -> Vars<'a> {
    Vars {
        name: &e.name,
        sha256: &e.sha256,
        cid: cids.get(e.sha256.as_str()).copied(),
    }
}

/// One BuildKit HTTP source per blob, verified and cached by BuildKit by its
/// sha256, gathered into one directory: the path when the recipe has a single
/// http(s) provider, so there is nothing to fall back to, and the lockfile
/// gives no sizes to bound the downloads by (or the provider is on the
/// loopback).
fn fetch_natively(entries: &[&Entry], urls: &[String], at: &Option<Location>) -> State {
    let mut gather = State::scratch().file();
    for (e, url) in entries.iter().zip(urls) {
        let blob = llb::http(
            url,
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
        .at(at.clone())
        .build()
}

/// Fetch steps run by the frontend's own binary (`fetch.rs`), trying the
/// providers in order for each blob. Blobs are grouped by the first hex digit
/// of their sha256, so a lockfile change refetches one group, not all; each
/// group's LLB holds the whole provider list, so the provider that answered
/// never shows in the LLB of the install step.
fn fetch_with_fallback(
    providers: &[Template],
    entries: &[&Entry],
    cids: &HashMap<&str, &str>,
    deadline_secs: Option<u64>,
    opts: &Opts,
    at: &Option<Location>,
) -> State {
    let mut groups: BTreeMap<char, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        groups
            .entry(e.sha256.chars().next().unwrap_or('0'))
            .or_default()
            .push(e);
    }
    let context = blob_context(providers, entries, cids, opts);
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
                    cid: cids.get(e.sha256.as_str()).map(|c| c.to_string()),
                })
                .collect(),
            deadline_secs,
        };
        let out = fetch_group(&tool, &plan, *key, context.as_ref(), opts, at);
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
    // Said once, here, rather than by each fetch step: a lockfile may give
    // CIDs for a few blobs only.
    let without = entries
        .iter()
        .filter(|e| !cids.contains_key(e.sha256.as_str()))
        .count();
    let note = match providers.iter().any(Template::needs_cid) && without > 0 {
        true => format!(
            " ({without} without a CID in the lockfile: the {{{{.CID}}}} provider(s) skip them)"
        ),
        false => String::new(),
    };
    gather
        .name(format!("gather {} package(s){note}", entries.len()))
        .at(at.clone())
        .build()
}

/// One group's fetch step: its plan in a file of its own, and our binary
/// fetching the plan's blobs into `OUT_DIR`. `key` is the group's first
/// sha256 digit.
fn fetch_group(
    tool: &State,
    plan: &fetch::Plan,
    key: char,
    context: Option<&State>,
    opts: &Opts,
    at: &Option<Location>,
) -> State {
    // A plan of strings always serializes.
    let json = serde_json::to_vec_pretty(plan).unwrap_or_default();
    let plan_state = State::scratch()
        .file()
        .mkfile("/plan.json", 0o644, json, Some(0))
        .name(format!(
            "plan the fetch of {} package(s) (sha256 {key}…)",
            plan.blobs.len()
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
        .envs(helper_env(opts))
        .mount(Mount::readonly("/plan", plan_state))
        .name(format!(
            "fetch {} package(s) (sha256 {key}…), trying {} provider(s) in order",
            plan.blobs.len(),
            plan.providers.len()
        ));
    if let Some(ctx) = context {
        exec = exec.mount(Mount::readonly(fetch::CONTEXT_DIR, ctx.clone()));
    }
    exec.at(at.clone()).build_into(OUT_DIR)
}

/// The build context, when context:// providers read blobs from it: only
/// the paths they read are sent.
fn blob_context(
    providers: &[Template],
    entries: &[&Entry],
    cids: &HashMap<&str, &str>,
    opts: &Opts,
) -> Option<State> {
    // Paths the context:// providers read, so only they are sent.
    let mut context_paths = Vec::new();
    for e in entries {
        for p in providers {
            if let Ok(Some(fetch::Location::Context { path, .. })) =
                fetch::locate(p, vars_of(e, cids))
            {
                context_paths.push(path);
            }
        }
    }
    context_paths.sort();
    context_paths.dedup();
    (!context_paths.is_empty()).then(|| {
        llb::local(
            &opts.context_name,
            &LocalOpts {
                include_patterns: context_paths,
                ..opts.context.clone()
            },
            Some("load package blobs from the build context".into()),
        )
    })
}

/// The recipe's providers, after those the `REPRO_PROVIDERS` build arg puts
/// in front, parsed.
pub(super) fn provider_templates(
    recipe: &Recipe,
    packages: &Packages,
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

/// How the install step runs: the tool, the package count, and the names
/// the recipe asked for (they stay marked manual).
struct Install<'a> {
    installer: Installer,
    count: usize,
    asked: &'a [&'a str],
}

/// Installs the gathered packages with the distro's tool, offline. The exec
/// runs our own binary (mounted from the frontend image under /tmp, which
/// normalization empties), which runs the tool and summarises its failures
/// (see `install_step.rs`); the argv stays short whatever the package count.
fn install(root: &State, blobs: State, how: &Install, opts: &Opts, at: Option<Location>) -> State {
    let Install {
        installer,
        count: n_packages,
        asked,
    } = *how;
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
        .envs(helper_env(opts))
        .mount(tree_mount(opts, PACKAGES_DIR, blobs))
        .mount(Mount::readonly(TOOL_DIR, frontend_image(opts)))
        .name(format!(
            "install {n_packages} package(s) with {installer} (no network)"
        ))
        .at(at);
    for (k, v) in installer.env() {
        exec = exec.env(k, v);
    }
    exec.build().root.with_user("")
}
