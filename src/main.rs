//! The `repro-frontend` binary: with no arguments, the BuildKit gateway frontend.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// A BuildKit frontend that builds bit-for-bit reproducible images from a
/// recipe and a SHA256SUMS lockfile. Run with no arguments, it is the frontend
/// (BuildKit starts it that way).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Resolve packages with apt and write their lockfile (runs inside the
    /// build, in the base image, for the `lock` target).
    Lock {
        /// The pinned base image, recorded in the lockfile's header.
        #[arg(long)]
        base: String,
        /// The lockfile to write.
        #[arg(long)]
        out: PathBuf,
        /// Package names.
        packages: Vec<String>,
    },
    /// Write or read lockfiles with the library the lock target uses (for
    /// scripts: the test harness writes its lockfiles with it).
    #[command(subcommand)]
    Lockfile(LockfileCmd),
    /// Fetch the blobs of a plan, trying providers in order, keeping only
    /// bytes that match their sha256 (runs inside the build).
    Fetch {
        /// The plan: providers and blobs, as JSON.
        #[arg(long)]
        plan: PathBuf,
        /// Where verified blobs are written.
        #[arg(long)]
        out: PathBuf,
        /// Where `context://` providers read from.
        #[arg(long, default_value = "/context")]
        context: PathBuf,
    },
    /// Print the LLB definition of a recipe to stdout, as dockerfile2llb does:
    /// `repro-frontend llb repro.yaml | buildctl build --local context=.`
    ///
    /// The gateway asks the engine for what this reads locally: the lockfile
    /// comes from --context, and the base image's config (its environment,
    /// and its `created` time as the default epoch) from --base-config, the
    /// output of `docker image inspect <base>` or an OCI image config. Without
    /// it, give the epoch in the recipe or with --build-arg SOURCE_DATE_EPOCH.
    /// The base image's os-release and package sources come from --base-root;
    /// without it the package tool follows the lockfile's package kinds and
    /// the recipe must list its providers.
    /// buildctl does not know the image config: write it with --config-out.
    Llb(LlbArgs),
    /// Install the package files in DIR with the distro's tool (run by the
    /// install step inside the build, in the target rootfs).
    Install {
        /// dpkg, rpm, apk or pacman.
        #[arg(long)]
        tool: String,
        /// A package the recipe asked for (packages.install); with apt, the
        /// others installed are marked automatic.
        #[arg(long)]
        manual: Vec<String>,
        dir: PathBuf,
    },
    /// Clamp times newer than EPOCH and remove build logs and caches in DIR,
    /// or in a copy of DIR made in OUT (runs inside the build, on the target
    /// rootfs).
    Normalize {
        /// Seconds since 1970.
        #[arg(long)]
        epoch: i64,
        /// The base image's rootfs: what it has under /run and /tmp is kept.
        #[arg(long)]
        base: Option<PathBuf>,
        /// An empty directory: copy DIR here and normalize the copy, leaving
        /// DIR as it was.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Then keep in OUT only what differs from BASE, with OCI whiteouts
        /// for what the build deleted, and apply that onto BASE (a writable
        /// mount of the base image, whose new snapshot is the layer on top
        /// of the base's own: `image.layers: base`).
        #[arg(long, requires_all = ["out", "base"])]
        delta: bool,
        /// The root of the tree to normalize.
        dir: PathBuf,
    },
    /// Compare a rebuilt image with a published one, file by file and by
    /// config (runs inside the build, for the `verify` target): write
    /// verify.intoto.json to OUT when equal; otherwise write
    /// verify-report.txt and print it on stderr (the frontend fails the
    /// build).
    Verify(VerifyArgs),
    /// Write the image's SPDX 2.3 SBOM from its rootfs (dpkg's database,
    /// os-release) and the facts the conversion wrote (runs inside the build,
    /// for the `sbom` target and `--sbom=true`).
    Sbom {
        /// The built image's root filesystem (read only).
        #[arg(long)]
        rootfs: PathBuf,
        /// The facts file (JSON) the conversion wrote.
        #[arg(long)]
        facts: PathBuf,
        /// The document to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the archive roots of apt's `deb` sources under ROOT, read in
    /// apt's order (etc/apt/sources.list, then etc/apt/sources.list.d/*.list
    /// and *.sources by name): the first one, or all with --all. Fails when
    /// there is none.
    Sources {
        /// The filesystem root whose etc/apt is read.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Only sources that serve this suite (e.g. bookworm).
        #[arg(long)]
        suite: Option<String>,
        /// Print every root, one a line, not only the first.
        #[arg(long)]
        all: bool,
    },
}

/// The `sources` subcommand: the roots to print.
fn apt_sources(
    root: &std::path::Path,
    suite: Option<&str>,
    all: bool,
) -> anyhow::Result<Vec<String>> {
    let files = repro_frontend::step::lock::apt_source_files(root).map_err(anyhow::Error::msg)?;
    let mut roots = repro_frontend::distro::sources::apt_roots(&files, suite);
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

#[derive(Subcommand)]
enum LockfileCmd {
    /// Turn `apt-get install --print-uris -o Acquire::ForceHash=SHA256`
    /// output (stdin) into the lockfile the lock target would write (stdout).
    FromApt {
        /// The pinned base image, recorded in the header.
        #[arg(long)]
        base: String,
        /// A file of archive roots, one URL per line (`#` comments and blank
        /// lines skipped): names are the URLs' paths below them.
        #[arg(long, value_name = "FILE")]
        roots: PathBuf,
        /// The package names asked for, recorded in the header.
        packages: Vec<String>,
    },
    /// Check lockfiles, merged as a build merges them, and print one
    /// `<sha256>  <name>` line per entry (no comments, no sizes).
    Entries {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs a `lockfile` subcommand, writing to stdout.
fn lockfile(cmd: LockfileCmd) -> anyhow::Result<()> {
    use repro_frontend::lockfile;
    use std::io::{Read as _, Write as _};

    let mut out = std::io::stdout().lock();
    match cmd {
        LockfileCmd::FromApt {
            base,
            roots,
            packages,
        } => {
            let roots: Vec<String> = std::fs::read_to_string(&roots)
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
            let header = lockfile::Header::new(&base, &packages);
            out.write_all(lockfile::render(&header, &pins).as_bytes())?;
        }
        LockfileCmd::Entries { files } => {
            let mut locks = Vec::new();
            for f in &files {
                let text =
                    std::fs::read_to_string(f).with_context(|| format!("read {}", f.display()))?;
                locks.push(lockfile::parse_named(&f.display().to_string(), &text)?);
            }
            for e in lockfile::Lockfile::merge(locks)?.entries {
                writeln!(out, "{}  {}", e.sha256, e.name)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The rebuilt root filesystem.
    #[arg(long, value_name = "DIR")]
    ours: PathBuf,
    /// The published image's root filesystem.
    #[arg(long, value_name = "DIR")]
    theirs: PathBuf,
    /// The rebuilt image's config (JSON).
    #[arg(long, value_name = "FILE")]
    ours_config: PathBuf,
    /// The published image's config (JSON).
    #[arg(long, value_name = "FILE")]
    theirs_config: PathBuf,
    /// The recipe, lockfile and image facts for the statement (JSON).
    #[arg(long, value_name = "FILE")]
    facts: PathBuf,
    /// Where the statement or the report is written.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs the verify step. A difference is not the step's failure: it writes
/// the report to OUT (and stderr, for the build log) and succeeds, so the
/// frontend can read the report and decide (fail the build with its summary,
/// or export it with REPRO_VERIFY_ON_DIFF=report).
fn verify(a: VerifyArgs) -> ExitCode {
    use repro_frontend::step::verify;
    let args = verify::Args {
        ours: a.ours,
        theirs: a.theirs,
        ours_config: a.ours_config,
        theirs_config: a.theirs_config,
        facts: a.facts,
        out: a.out,
    };
    match verify::run(&args) {
        Ok(verify::Outcome::Reproduced { files }) => {
            println!(
                "reproduced: {files} path(s) and the image config are equal; wrote {}",
                verify::STATEMENT_FILE
            );
            ExitCode::SUCCESS
        }
        Ok(verify::Outcome::Different { report }) => {
            eprint!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("repro-frontend: verify: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
struct LlbArgs {
    /// The recipe file.
    recipe: PathBuf,
    /// The build context (where the lockfile and copied files are).
    #[arg(long, default_value = ".")]
    context: PathBuf,
    /// A build arg, NAME=VALUE (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    build_args: Vec<String>,
    /// Target platform, os/arch[/variant].
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    /// The base image's config: `docker image inspect` output or an OCI config.
    #[arg(long, value_name = "FILE")]
    base_config: Option<PathBuf>,
    /// The base image's root filesystem, unpacked (`docker export` into a
    /// folder): its os-release picks the package tool, and its package
    /// sources are the providers of a recipe that lists none.
    #[arg(long, value_name = "DIR")]
    base_root: Option<PathBuf>,
    /// The frontend image that runs the normalize step inside the build.
    #[arg(long, default_value = "repro-frontend:v0")]
    frontend_image: String,
    /// Recompute everything (sets ignore-cache on every op).
    #[arg(long)]
    no_cache: bool,
    /// Write the image config JSON to this file.
    #[arg(long, value_name = "FILE")]
    config_out: Option<PathBuf>,
    /// Print one line per op (digest, kind, progress name) instead of the
    /// binary Definition.
    #[arg(long)]
    dump: bool,
}

fn llb(a: LlbArgs) -> anyhow::Result<()> {
    use std::io::Write as _;

    let mut build_args = std::collections::BTreeMap::new();
    for kv in &a.build_args {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--build-arg {kv:?} is not NAME=VALUE"))?;
        build_args.insert(k.to_string(), v.to_string());
    }
    let (def, config) = repro_frontend::frontend::local::definition(
        &repro_frontend::frontend::local::LocalBuild {
            recipe: a.recipe.clone(),
            context: a.context.clone(),
            build_args,
            platform: repro_frontend::frontend::opts::parse_platform(&a.platform)
                .map_err(anyhow::Error::msg)?,
            base_config: a.base_config.clone(),
            base_root: a.base_root.clone(),
            frontend_image: a.frontend_image.clone(),
            resolve_mode: repro_frontend::llb::ResolveMode::Default,
        },
        a.no_cache,
    )?;
    if let (Some(path), Some(config)) = (&a.config_out, &config) {
        std::fs::write(path, config).with_context(|| format!("write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if a.dump {
        for line in repro_frontend::llb::describe(&def) {
            writeln!(out, "{line}")?;
        }
    } else {
        out.write_all(&prost::Message::encode_to_vec(&def))?;
    }
    out.flush()?;
    Ok(())
}

/// Runs the fetch step; false when a blob could not be fetched.
fn fetch(
    plan: &std::path::Path,
    out: &std::path::Path,
    context: &std::path::Path,
) -> anyhow::Result<bool> {
    use repro_frontend::step::fetch;
    let text = std::fs::read(plan).with_context(|| format!("read {}", plan.display()))?;
    let plan: fetch::Plan =
        serde_json::from_slice(&text).with_context(|| format!("parse {}", plan.display()))?;
    let outcomes = fetch::fetch(&plan, out, context, fetch::Limits::default(), 8)?;
    let (lines, failure) = fetch::report(&outcomes);
    for line in lines {
        println!("{line}");
    }
    match failure {
        None => Ok(true),
        Some(msg) => {
            // stdout, with the other lines, so the build output keeps them in order.
            println!("{msg}");
            Ok(false)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => gateway(),
        Some(Cmd::Lock {
            base,
            out,
            packages,
        }) => lock_step(&base, &packages, &out),
        Some(Cmd::Fetch { plan, out, context }) => match fetch(&plan, &out, &context) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => finish(Err(e)),
        },
        Some(Cmd::Install { tool, manual, dir }) => install_step(&tool, &manual, &dir),
        Some(Cmd::Lockfile(cmd)) => finish(lockfile(cmd)),
        Some(Cmd::Sources { root, suite, all }) => {
            finish(apt_sources(&root, suite.as_deref(), all).map(|roots| {
                for r in roots {
                    println!("{r}");
                }
            }))
        }
        Some(Cmd::Verify(args)) => verify(args),
        Some(Cmd::Llb(args)) => finish(llb(args)),
        Some(Cmd::Sbom { rootfs, facts, out }) => sbom_step(&rootfs, &facts, &out),
        Some(Cmd::Normalize {
            epoch,
            base,
            out,
            delta,
            dir,
        }) => match normalize(epoch, base.as_deref(), out.as_deref(), &dir) {
            ExitCode::SUCCESS if delta => delta_step(epoch, base, out),
            code => code,
        },
    }
}

/// The exit code of a subcommand run at the binary's edge; its error on stderr.
fn finish(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repro-frontend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The lock step (inside the build): its outcome on stdout, which the
/// build's progress shows.
fn lock_step(base: &str, packages: &[String], out: &std::path::Path) -> ExitCode {
    match repro_frontend::step::lock::run_apt(base, packages, out) {
        Ok(n) => {
            println!("locked {n} package file(s) in {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("repro-frontend: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The install step (inside the build, in the target rootfs).
fn install_step(tool: &str, manual: &[String], dir: &std::path::Path) -> ExitCode {
    let Some(tool) = repro_frontend::distro::install::Installer::from_name(tool) else {
        println!("repro-frontend: unknown install tool {tool:?}");
        return ExitCode::FAILURE;
    };
    match repro_frontend::step::install::run(tool, dir, manual, std::path::Path::new("/")) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("repro-frontend: install: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The sbom step (inside the build): the document from the rootfs and facts.
fn sbom_step(rootfs: &std::path::Path, facts: &std::path::Path, out: &std::path::Path) -> ExitCode {
    match repro_frontend::step::sbom::run(rootfs, facts, out) {
        Ok((dpkg, blobs)) => {
            println!(
                "wrote {}: {dpkg} installed package(s), {blobs} package file(s) from the lockfile",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("repro-frontend: sbom: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the normalize step and prints what it did.
fn normalize(
    epoch: i64,
    base: Option<&std::path::Path>,
    out: Option<&std::path::Path>,
    dir: &std::path::Path,
) -> ExitCode {
    let done = match out {
        Some(out) => repro_frontend::step::normalize::normalize_into(dir, out, epoch, base),
        None => repro_frontend::step::normalize::normalize(dir, epoch, base),
    };
    match done.with_context(|| format!("normalize {}", dir.display())) {
        Ok(report) => {
            if out.is_some() {
                println!(
                    "copied {} entries onto scratch ({} hard link(s) kept as links)",
                    report.copied, report.linked
                );
            }
            for path in &report.removed {
                println!("removed {}", path.display());
            }
            for path in &report.keystores {
                println!(
                    "clamped the entry dates of Java keystore {} to {epoch}",
                    path.display()
                );
            }
            for (path, why) in &report.skipped {
                println!(
                    "warning: left Java keystore {} as it is ({why}): its entry dates may differ between builds",
                    path.display()
                );
            }
            println!(
                "clamped {} of {} entries to {epoch}",
                report.clamped, report.entries
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("repro-frontend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `normalize --delta`: prunes the normalized copy down to what differs
/// from the base image, then applies it onto the base.
fn delta_step(epoch: i64, base: Option<PathBuf>, out: Option<PathBuf>) -> ExitCode {
    use repro_frontend::step::delta;
    // clap's `requires_all` makes both present with --delta.
    let (Some(base), Some(out)) = (base, out) else {
        eprintln!("repro-frontend: --delta needs --base and --out");
        return ExitCode::FAILURE;
    };
    let done = delta::prune_to_delta(&out, &base, epoch).and_then(|pruned| {
        let applied = delta::apply_delta(&out, &base)?;
        Ok((pruned, applied))
    });
    match done {
        Ok((p, a)) => {
            println!(
                "the delta: {} entries differ from the base image ({} equal ones dropped), {} whiteout(s)",
                p.kept, p.removed, p.whiteouts
            );
            println!(
                "applied onto the base: {} written, {} hard link(s), {} removed",
                a.written, a.linked, a.removed
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("repro-frontend: delta against {}: {e}", base.display());
            ExitCode::FAILURE
        }
    }
}

fn gateway() -> ExitCode {
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
    let opts = repro_frontend::frontend::opts::from_env(std::env::vars());
    let code = match runtime.block_on(repro_frontend::frontend::gateway::run(opts)) {
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
