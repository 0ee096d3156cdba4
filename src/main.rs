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
    /// Clamp times newer than EPOCH and remove build logs and caches in DIR
    /// (runs inside the build, on the target rootfs).
    Normalize {
        /// Seconds since 1970.
        #[arg(long)]
        epoch: i64,
        /// The base image's rootfs: what it has under /run and /tmp is kept.
        #[arg(long)]
        base: Option<PathBuf>,
        /// The root of the tree to normalize.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => gateway(),
        Some(Cmd::Normalize { epoch, base, dir }) => {
            match repro_frontend::normalize::normalize(&dir, epoch, base.as_deref())
                .with_context(|| format!("normalize {}", dir.display()))
            {
                Ok(report) => {
                    for path in &report.removed {
                        println!("removed {}", path.display());
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
    let opts = repro_frontend::opts::from_env(std::env::vars());
    let code = match runtime.block_on(repro_frontend::gateway::run(opts)) {
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
