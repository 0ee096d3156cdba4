//! The `repro-frontend` binary: the command line parsed and dispatched to
//! `repro_frontend::cli`. With no arguments, the BuildKit gateway frontend.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use repro_frontend::cli::{self, steps};
use repro_frontend::frontend::local::LocalBuild;

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
        /// Seconds since 1970, up to the end of 9999.
        #[arg(long, value_parser = epoch_arg)]
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
        /// The base's census (`repro-frontend census`): with --delta, a
        /// directory the build did not touch and the census does not name
        /// is left out of every walk.
        #[arg(long, requires = "delta")]
        census: Option<PathBuf>,
        /// A state of the build before DIR, `LABEL=PATH`, in build order
        /// (the root after the install step, after each step): names who
        /// made a private key or identity.
        #[arg(long = "stage", value_name = "LABEL=PATH")]
        stages: Vec<String>,
        /// An image path (`*` within a name) whose private key the build
        /// made is left out of the image (the recipe's private-keys.remove).
        #[arg(long = "remove-key", value_name = "PATTERN")]
        remove_keys: Vec<String>,
        /// An image path whose private key ships on purpose
        /// (private-keys.keep).
        #[arg(long = "keep-key", value_name = "PATTERN")]
        keep_keys: Vec<String>,
        /// The recipe's file name, for messages.
        #[arg(long)]
        recipe: Option<String>,
        /// Write what became of the private keys and identities the build
        /// made into the image (JSON, at /usr/share/repro-frontend/
        /// private-keys.json, when there is any), for the SBOM and the
        /// image's annotations.
        #[arg(long)]
        record: bool,
        /// The root of the tree to normalize.
        dir: PathBuf,
    },
    /// List the base image's directories that hold an entry normalize
    /// would change (a time newer than EPOCH, an ACL, a pacman record), for
    /// `normalize --delta --census` (runs inside the build, once per base).
    Census {
        /// Seconds since 1970, up to the end of 9999.
        #[arg(long, value_parser = epoch_arg)]
        epoch: i64,
        /// The directory to write the census into.
        #[arg(long)]
        out: PathBuf,
        /// The base image's rootfs (read only).
        base: PathBuf,
    },
    /// Compare a rebuilt image with a published one, file by file and by
    /// config (runs inside the build, for the `verify` target): write
    /// verify.intoto.json to OUT when equal; otherwise write
    /// verify-report.txt (and verify-report.json) and print it on stderr
    /// (the frontend fails the build).
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
        /// Read the normalize step's record of the private keys and
        /// identities the build made from the rootfs, where it is one.
        #[arg(long)]
        secrets: bool,
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

impl LlbArgs {
    /// The offline conversion these arguments ask for.
    fn build(&self) -> anyhow::Result<LocalBuild> {
        Ok(LocalBuild {
            recipe: self.recipe.clone(),
            context: self.context.clone(),
            build_args: cli::build_args(&self.build_args)?,
            platform: repro_frontend::frontend::opts::parse_platform(&self.platform)?,
            base_config: self.base_config.clone(),
            base_root: self.base_root.clone(),
            frontend_image: self.frontend_image.clone(),
            resolve_mode: repro_frontend::llb::ResolveMode::Default,
        })
    }
}

impl VerifyArgs {
    fn into_args(self) -> repro_frontend::step::verify::Args {
        repro_frontend::step::verify::Args {
            ours: self.ours,
            theirs: self.theirs,
            ours_config: self.ours_config,
            theirs_config: self.theirs_config,
            facts: self.facts,
            out: self.out,
        }
    }
}

/// `--epoch`: a whole number of seconds in the range every file time and
/// image time can carry.
fn epoch_arg(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if repro_frontend::recipe::epoch_in_range(n) => Ok(n),
        _ => Err(format!(
            "\"{s}\" is not a whole number of seconds from 1970 to the end of 9999"
        )),
    }
}

fn main() -> ExitCode {
    let Some(command) = Cli::parse().command else {
        return cli::gateway();
    };
    if let Some(refused) = steps::check_self() {
        return refused;
    }
    match command {
        Cmd::Lock {
            base,
            out,
            packages,
        } => steps::lock(&base, &packages, &out),
        Cmd::Fetch { plan, out, context } => steps::fetch(&plan, &out, &context),
        Cmd::Install { tool, manual, dir } => steps::install(&tool, &manual, &dir),
        Cmd::Lockfile(LockfileCmd::FromApt {
            base,
            roots,
            packages,
        }) => cli::finish(cli::lockfile_from_apt(&base, &roots, &packages)),
        Cmd::Lockfile(LockfileCmd::Entries { files }) => cli::finish(cli::lockfile_entries(&files)),
        Cmd::Sources { root, suite, all } => cli::sources(&root, suite.as_deref(), all),
        Cmd::Verify(args) => steps::verify(&args.into_args()),
        Cmd::Llb(a) => cli::finish(
            a.build()
                .and_then(|b| cli::llb(&b, a.no_cache, a.config_out.as_deref(), a.dump)),
        ),
        Cmd::Sbom {
            rootfs,
            facts,
            secrets,
            out,
        } => steps::sbom(&rootfs, &facts, secrets, &out),
        Cmd::Normalize {
            epoch,
            base,
            out,
            delta,
            census,
            stages,
            remove_keys,
            keep_keys,
            recipe,
            record,
            dir,
        } => {
            let secrets = steps::Secrets {
                stages,
                remove: remove_keys,
                keep: keep_keys,
                recipe: recipe.unwrap_or_default(),
                record,
            };
            steps::normalize_and_delta(epoch, base, out, delta, census, &secrets, &dir)
        }
        Cmd::Census { epoch, out, base } => steps::census(epoch, &base, &out),
    }
}
