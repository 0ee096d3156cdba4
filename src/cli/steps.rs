//! The bodies of the subcommands that run inside the build, in execs of
//! the frontend's own image or the target rootfs: lock, fetch, install,
//! normalize (and its delta), sbom, verify. Each runs its step and prints
//! what it did for the build's progress. Does I/O (the step's files,
//! stdout and stderr).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::finish;
use crate::step::normalize::Untouched;

/// Before any step: when the gateway said which binary it planned the step
/// for (`convert::FRONTEND_SHA256_ENV`, set when the frontend image is known
/// only by a local tag), this binary must hash the same, or the step does
/// not run. `None` means go on.
pub fn check_self() -> Option<ExitCode> {
    let expected = std::env::var(crate::convert::FRONTEND_SHA256_ENV).ok()?;
    let actual = std::fs::read("/proc/self/exe")
        .map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b)));
    match actual {
        Ok(actual) => match same_binary(&expected, &actual) {
            Ok(()) => None,
            Err(message) => {
                println!("repro-frontend: {message}");
                Some(ExitCode::FAILURE)
            }
        },
        Err(e) => {
            println!("repro-frontend: cannot read this step's own binary to check it: {e}");
            Some(ExitCode::FAILURE)
        }
    }
}

/// Whether a helper step's binary is the one the gateway planned it for.
fn same_binary(expected: &str, actual: &str) -> Result<(), String> {
    if expected.eq_ignore_ascii_case(actual) {
        return Ok(());
    }
    Err(format!(
        "this step runs a repro-frontend binary with sha256 {actual}, not the {expected} of the frontend that planned the build: the frontend image's tag moved during the build; build again"
    ))
}

/// The lock step (inside the build): its outcome on stdout, which the
/// build's progress shows.
pub fn lock(base: &str, packages: &[String], out: &Path) -> ExitCode {
    match crate::step::lock::run_apt(base, packages, out) {
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
pub fn install(tool: &str, manual: &[String], dir: &Path) -> ExitCode {
    let Some(tool) = crate::distro::install::Installer::from_name(tool) else {
        println!("repro-frontend: unknown install tool {tool:?}");
        return ExitCode::FAILURE;
    };
    match crate::step::install::run(tool, dir, manual, Path::new("/")) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("repro-frontend: install: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The sbom step (inside the build): the document from the rootfs and facts.
pub fn sbom(rootfs: &Path, facts: &Path, secrets: bool, out: &Path) -> ExitCode {
    match crate::step::sbom::run(rootfs, facts, secrets, out) {
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

/// The normalize step's secrets options as given on its command line.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// `LABEL=PATH`, in build order.
    pub stages: Vec<String>,
    pub remove: Vec<String>,
    pub keep: Vec<String>,
    pub recipe: String,
    /// Whether the record goes into the image.
    pub record: bool,
}

impl Secrets {
    fn input(&self) -> anyhow::Result<crate::step::normalize::SecretsInput> {
        use crate::step::secrets::{Policy, Stage};
        let mut stages = Vec::new();
        for s in &self.stages {
            // The label may hold `=`; the path is after the last one.
            let Some((label, dir)) = s.rsplit_once('=') else {
                anyhow::bail!("--stage {s:?} is not LABEL=PATH");
            };
            stages.push(Stage {
                label: label.to_string(),
                dir: PathBuf::from(dir),
            });
        }
        Ok(crate::step::normalize::SecretsInput {
            stages,
            policy: Policy {
                remove: self.remove.clone(),
                keep: self.keep.clone(),
                recipe: self.recipe.clone(),
            },
        })
    }
}

/// Prints what became of the private keys and identities the build made,
/// one line each, and writes the record into the image at `root`.
fn report_secrets(
    found: &crate::step::secrets::Outcome,
    root: Option<&Path>,
    epoch: i64,
) -> anyhow::Result<()> {
    use crate::step::secrets::Action;
    for f in &found.findings {
        let regenerate = f
            .regenerate
            .as_deref()
            .map(|r| format!("; a container makes its own with: {r}"))
            .unwrap_or_default();
        match f.action {
            Action::Removed => println!(
                "removed {}: {}, made by {}{regenerate}",
                f.path, f.what, f.made_by
            ),
            Action::Emptied => println!(
                "emptied {}: {}, made by {}; left empty, as on first boot{regenerate}",
                f.path, f.what, f.made_by
            ),
            Action::Kept => println!(
                "WARNING: KEPT {}: {}, made by {}, ships in the image because the recipe's private-keys.keep says so; every container of this image shares it",
                f.path, f.what, f.made_by
            ),
        }
    }
    if let Some(root) = root
        && crate::step::secrets::write_record(root, found, epoch).with_context(|| {
            format!(
                "cannot write the record of removed keys into {}",
                root.display()
            )
        })?
    {
        println!(
            "recorded what became of them in {}",
            crate::step::secrets::RECORD_PATH
        );
    }
    Ok(())
}

/// Runs the normalize step and prints what it did.
/// For the delta (`delta_too`), the copy leaves out the base's own files,
/// untouched; they come back for the delta step.
fn normalize(
    epoch: i64,
    base: Option<&Path>,
    out: Option<&Path>,
    delta_too: bool,
    census: Option<&Path>,
    secrets: &Secrets,
    dir: &Path,
) -> Result<Untouched, ExitCode> {
    use crate::step::normalize as n;
    let done = secrets.input().and_then(|input| {
        Ok(match (out, base) {
            (Some(out), Some(base)) if delta_too => {
                let census = census.map(crate::step::census::read).transpose()?;
                n::normalize_delta_into(dir, out, epoch, base, &input, census.as_ref())?
            }
            (Some(out), _) => (
                n::normalize_into_with(dir, out, epoch, base, &input)?,
                Untouched::new(),
            ),
            (None, _) => (
                n::normalize_with(dir, epoch, base, &input)?,
                Untouched::new(),
            ),
        })
    });
    let done = done.and_then(|(report, untouched)| {
        let root = secrets.record.then_some(out.unwrap_or(dir));
        report_secrets(&report.secrets, root, epoch)?;
        Ok((report, untouched))
    });
    match done.with_context(|| format!("normalize {}", dir.display())) {
        Ok((report, untouched)) => {
            if out.is_some() {
                println!(
                    "copied {} entries onto scratch ({} hard link(s) kept as links)",
                    report.copied, report.linked
                );
            }
            if delta_too {
                let left: usize = untouched.values().map(Vec::len).sum();
                println!(
                    "left {left} entries out of the copy: the base image's own files and directories, untouched"
                );
            }
            // The secrets pass's removals were printed with their reason.
            let explained: std::collections::HashSet<&str> = report
                .secrets
                .findings
                .iter()
                .map(|f| f.path.as_str())
                .collect();
            for path in &report.removed {
                if !explained.contains(path.to_string_lossy().as_ref()) {
                    println!("removed {}", path.display());
                }
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
            Ok(untouched)
        }
        Err(e) => {
            eprintln!("repro-frontend: {e:#}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// `normalize`, then with `delta` the delta step on its copy.
pub fn normalize_and_delta(
    epoch: i64,
    base: Option<PathBuf>,
    out: Option<PathBuf>,
    delta_too: bool,
    census: Option<PathBuf>,
    secrets: &Secrets,
    dir: &Path,
) -> ExitCode {
    match normalize(
        epoch,
        base.as_deref(),
        out.as_deref(),
        delta_too,
        census.as_deref(),
        secrets,
        dir,
    ) {
        Ok(untouched) if delta_too => delta(epoch, base, out, &untouched),
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// `normalize --delta`: prunes the normalized copy down to what differs
/// from the base image, then applies it onto the base.
fn delta(
    epoch: i64,
    base: Option<PathBuf>,
    out: Option<PathBuf>,
    untouched: &Untouched,
) -> ExitCode {
    use crate::step::delta;
    // clap's `requires_all` makes both present with --delta.
    let (Some(base), Some(out)) = (base, out) else {
        eprintln!("repro-frontend: --delta needs --base and --out");
        return ExitCode::FAILURE;
    };
    let done = delta::prune_to_delta_with(&out, &base, epoch, untouched).and_then(|pruned| {
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

/// Runs the fetch step: it fails when a blob could not be fetched.
pub fn fetch(plan: &Path, out: &Path, context: &Path) -> ExitCode {
    match fetch_blobs(plan, out, context) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => finish(Err(e)),
    }
}

/// The fetch step's work; false when a blob could not be fetched.
fn fetch_blobs(plan: &Path, out: &Path, context: &Path) -> anyhow::Result<bool> {
    use crate::step::fetch;
    let text = std::fs::read(plan).with_context(|| format!("read {}", plan.display()))?;
    let plan: fetch::Plan =
        serde_json::from_slice(&text).with_context(|| format!("parse {}", plan.display()))?;
    let limits = fetch::Limits {
        deadline: plan
            .deadline_secs
            .map_or(fetch::DEADLINE, std::time::Duration::from_secs),
        ..fetch::Limits::default()
    };
    let outcomes = fetch::fetch(&plan, out, context, limits, 8)?;
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

/// Runs the verify step. A difference is not the step's failure: it writes
/// the report to OUT (and stderr, for the build log) and succeeds, so the
/// frontend can read the report and decide (fail the build with its summary,
/// or export it with REPRO_VERIFY_ON_DIFF=report).
pub fn verify(args: &crate::step::verify::Args) -> ExitCode {
    use crate::step::verify;
    match verify::run(args) {
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

/// `census`: writes the base's census (see `step::census`) into `out`.
pub fn census(epoch: i64, base: &Path, out: &Path) -> ExitCode {
    use crate::step::census;
    let done = census::census(base, epoch).and_then(|dirs| {
        census::write(out, &dirs)?;
        Ok(dirs.len())
    });
    match done {
        Ok(n) => {
            println!(
                "{n} directories of the base hold an entry normalize would change (a time after {epoch}, an ACL, a pacman record); the others it may leave out where the build did not touch them"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("repro-frontend: census of {}: {e}", base.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_runs_only_under_the_binary_the_gateway_planned_it_for() {
        let a = "ab".repeat(32);
        assert_eq!(same_binary(&a, &a.to_uppercase()), Ok(()));
        let err = same_binary(&a, &"cd".repeat(32)).unwrap_err();
        assert!(err.contains(&"cd".repeat(32)) && err.contains(&a), "{err}");
        assert!(err.contains("tag moved"), "{err}");
    }
}
