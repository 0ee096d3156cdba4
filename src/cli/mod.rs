//! The subcommands' bodies, below `main.rs`'s argument parsing: the
//! gateway frontend (no subcommand), `llb`, `lockfile` and `sources` here,
//! the in-build steps in `steps`. Each maps its outcome to an exit code and
//! prints what it did. Does I/O (the files each one reads and writes,
//! stdout and stderr).

pub mod steps;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::frontend::local::LocalBuild;
use crate::lockfile;

/// The exit code of a subcommand run at the binary's edge; its error on stderr.
pub fn finish(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repro-frontend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The gateway frontend: one build over stdio, the options read from the
/// environment.
pub fn gateway() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("repro-frontend: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = crate::frontend::opts::from_env(std::env::vars());
    let code = match runtime.block_on(crate::frontend::gateway::run(opts)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("repro-frontend: {e:#}");
            1
        }
    };
    // tokio reads stdin on a blocking thread that BuildKit's open pipe keeps
    // alive; returning from main would wait on it forever. Leave now.
    std::process::exit(code)
}

/// The `sources` subcommand: prints the archive roots.
pub fn sources(root: &Path, suite: Option<&str>, all: bool) -> ExitCode {
    finish(apt_sources(root, suite, all).map(|roots| {
        for r in roots {
            println!("{r}");
        }
    }))
}

/// The roots `sources` prints.
fn apt_sources(root: &Path, suite: Option<&str>, all: bool) -> anyhow::Result<Vec<String>> {
    let files = crate::step::lock::apt_source_files(root).map_err(anyhow::Error::msg)?;
    let mut roots = crate::distro::sources::apt_roots(&files, suite);
    if roots.is_empty() {
        let suite = suite.map(|s| format!(" for suite {s}")).unwrap_or_default();
        anyhow::bail!(
            "no http(s) deb source{suite} in {}/etc/apt/sources.list or sources.list.d/",
            root.display().to_string().trim_end_matches('/')
        );
    }
    if !all {
        roots.truncate(1);
    }
    Ok(roots)
}

/// `lockfile from-apt`: apt's `--print-uris` output on stdin into the
/// lockfile the lock target would write, on stdout.
pub fn lockfile_from_apt(base: &str, roots: &Path, packages: &[String]) -> anyhow::Result<()> {
    let roots: Vec<String> = std::fs::read_to_string(roots)
        .with_context(|| format!("read {}", roots.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut uris = String::new();
    std::io::stdin()
        .read_to_string(&mut uris)
        .context("read apt's output from stdin")?;
    let pins = lockfile::apt::from_apt_print_uris(&uris, &roots)?;
    anyhow::ensure!(
        !pins.is_empty(),
        "apt's output on stdin names no package file"
    );
    let header = lockfile::Header::new(base, packages);
    let mut out = std::io::stdout().lock();
    out.write_all(lockfile::render(&header, &pins).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `lockfile entries`: the lockfiles merged as a build merges them, one
/// `<sha256>  <name>` line per entry on stdout.
pub fn lockfile_entries(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut locks = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?;
        locks.push(lockfile::parse_named(&f.display().to_string(), &text)?);
    }
    let mut out = std::io::stdout().lock();
    for e in lockfile::Lockfile::merge(locks)?.entries {
        writeln!(out, "{}  {}", e.sha256, e.name)?;
    }
    out.flush()?;
    Ok(())
}

/// `--build-arg NAME=VALUE` values, by name.
pub fn build_args(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut build_args = BTreeMap::new();
    for kv in pairs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--build-arg {kv:?} is not NAME=VALUE"))?;
        build_args.insert(k.to_string(), v.to_string());
    }
    Ok(build_args)
}

/// The `llb` subcommand: the Definition the gateway would solve, on stdout
/// (its ops one a line with `dump`), and the image config written to
/// `config_out`.
pub fn llb(
    b: &LocalBuild,
    no_cache: bool,
    config_out: Option<&Path>,
    dump: bool,
) -> anyhow::Result<()> {
    let (def, config) = crate::frontend::local::definition(b, no_cache)?;
    if let (Some(path), Some(config)) = (config_out, &config) {
        std::fs::write(path, config).with_context(|| format!("write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if dump {
        for line in crate::llb::describe(&def) {
            writeln!(out, "{line}")?;
        }
    } else {
        out.write_all(&prost::Message::encode_to_vec(&def))?;
    }
    out.flush()?;
    Ok(())
}
