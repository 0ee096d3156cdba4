//! The install step as it runs inside the build: the distro's tool on the
//! verified package files, offline, in the order the tool works out.
//!
//! `repro-frontend install --tool dpkg DIR` runs in the target rootfs (our
//! static binary is mounted from the frontend's own image), so the argv the
//! engine shows on failure stays one short line. For Debian and Ubuntu it
//! runs apt on the local files with no sources, no lists and no network:
//! apt orders unpacking and configuration by Pre-Depends and Depends, as a
//! plain `apt-get install` does, and runs the triggers. A base without apt
//! gets `dpkg --install` (argument order), with a message saying what it
//! needs when a Pre-Depends chain makes that fail. While the tool runs, a
//! `policy-rc.d` that refuses every service start exists (unless the base
//! has its own); it is gone before the step ends, unless a package put its
//! own in its place, which stays. When the tool fails, the
//! last lines of the step name the packages and the tool's own reasons.
//!
//! This module does I/O (processes, files); it only ever runs inside a
//! build container, never in the gateway.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use crate::distro::install::Installer;

/// Debian's hook that `invoke-rc.d` asks before starting a service; exit
/// status 101 means "action forbidden".
pub const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";
const POLICY_RC_D_TEXT: &str =
    "#!/bin/sh\n# repro-frontend: no service starts during the install step\nexit 101\n";

/// apt's view of the package indexes during the install: an empty folder
/// (see `apt_offline_options`), removed when the step ends.
pub const APT_LISTS_DIR: &str = "tmp/repro-apt-lists";

/// How the step installs: the program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub program: String,
    pub args: Vec<String>,
}

impl Plan {
    fn new(program: &str, args: Vec<String>) -> Plan {
        Plan {
            program: program.into(),
            args,
        }
    }

    /// apt, which orders the install by Pre-Depends; bare dpkg does not.
    pub fn uses_apt(&self) -> bool {
        self.program.starts_with("apt")
    }

    /// A short name for messages: "apt-get (offline)", "dpkg", ...
    pub fn how(&self) -> String {
        if self.uses_apt() {
            format!("{} (offline)", self.program)
        } else {
            self.program.clone()
        }
    }
}

/// The options that keep apt to the files at hand: no sources, an empty
/// lists folder (lists the base image carries, with their mirror's
/// versions, are never consulted and nothing is written to
/// /var/lib/apt/lists), no binary caches, and the files read by root (the
/// _apt user may not be able to read the mount).
fn apt_offline_options() -> Vec<String> {
    [
        "Dir::Etc::SourceList=/dev/null",
        "Dir::Etc::SourceParts=/dev/null",
        &format!("Dir::State::Lists=/{APT_LISTS_DIR}"),
        "Dir::Cache::pkgcache=",
        "Dir::Cache::srcpkgcache=",
        "APT::Sandbox::User=root",
    ]
    .iter()
    .flat_map(|o| ["-o".to_string(), o.to_string()])
    .collect()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// What a Debian-family base has for installing local .deb files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebTools {
    Apt,
    DpkgOnly,
}

/// The command for `files` (absolute paths, sorted) with `tool`.
pub fn plan(tool: Installer, files: &[String], deb_tools: DebTools, rpm_keys: bool) -> Plan {
    let mut plan = match tool {
        Installer::Dpkg if deb_tools == DebTools::Apt => {
            let mut args = strings(&[
                "install",
                "--yes",
                "--no-install-recommends",
                // Never remove what the base has to make room: the lockfile
                // says what to add, nothing else.
                "--no-remove",
            ]);
            args.extend(apt_offline_options());
            args.extend(strings(&[
                "-o",
                "Dpkg::Use-Pty=0",
                "-o",
                "Dpkg::Options::=--force-confold",
                // No fsync per file: the engine commits the snapshot when
                // the step ends, and a crash mid-step discards it anyway.
                "-o",
                "Dpkg::Options::=--force-unsafe-io",
            ]));
            Plan::new("apt-get", args)
        }
        Installer::Dpkg => Plan::new(
            "dpkg",
            strings(&["--install", "--force-confold", "--force-unsafe-io"]),
        ),
        // rpm checks digests always and signatures when the base has keys.
        Installer::Rpm => {
            let level = if rpm_keys { "signature" } else { "digest" };
            Plan::new(
                "rpm",
                strings(&[
                    "--install",
                    "--replacepkgs",
                    "--define",
                    &format!("_pkgverify_level {level}"),
                ]),
            )
        }
        // apk checks signatures against /etc/apk/keys (no --allow-untrusted).
        Installer::Apk => Plan::new("apk", strings(&["add", "--no-network", "--no-cache"])),
        // pacman verifies a package's .sig when one lies beside it.
        Installer::Pacman => Plan::new(
            "pacman",
            strings(&["--upgrade", "--noconfirm", "--noprogressbar"]),
        ),
    };
    plan.args.extend(files.iter().cloned());
    plan
}

/// The package files in `dir` that `tool` installs, as sorted absolute paths.
pub fn package_files(tool: Installer, dir: &Path) -> io::Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let path = entry?.path();
        if let Some(name) = path.to_str()
            && tool.accepts(name)
        {
            files.push(name.to_string());
        }
    }
    files.sort();
    Ok(files)
}

/// Finds a program the way the step's PATH would.
fn find_program(root: &Path, name: &str) -> bool {
    [
        "usr/local/sbin",
        "usr/local/bin",
        "usr/sbin",
        "usr/bin",
        "sbin",
        "bin",
    ]
    .iter()
    .any(|d| root.join(d).join(name).exists())
}

/// Runs the install step in the rootfs at `root` (`/` in the build). Returns
/// Ok(false) when the tool failed, after printing the summary.
pub fn run(tool: Installer, packages: &Path, manual: &[String], root: &Path) -> io::Result<bool> {
    let files = package_files(tool, packages)?;
    if files.is_empty() {
        println!(
            "repro-frontend: no {} file in {}",
            tool.package_kind(),
            packages.display()
        );
        return Ok(false);
    }
    let deb_tools = if find_program(root, "apt-get") {
        DebTools::Apt
    } else {
        DebTools::DpkgOnly
    };
    let rpm_keys = tool == Installer::Rpm
        && Command::new("rpm")
            .args(["-q", "gpg-pubkey"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let plan = plan(tool, &files, deb_tools, rpm_keys);
    if !find_program(root, &plan.program) {
        println!("\nrepro-frontend: {}", no_tool(tool, &plan.program));
        return Ok(false);
    }
    println!(
        "repro-frontend: installing {} verified file(s) with {}",
        files.len(),
        plan.how()
    );

    let policy = if tool == Installer::Dpkg {
        Some(Policy::install(root)?)
    } else {
        None
    };
    let lists = root.join(APT_LISTS_DIR);
    if plan.uses_apt() {
        fs::create_dir_all(lists.join("partial")).map_err(|e| at(&lists, e))?;
    }
    let outcome = run_logged(&plan);
    let marked = match &outcome {
        Ok((Some(0), _)) => match auto_marks(&plan, &files, manual) {
            Some(marks) => run_marks(&marks),
            None => Ok(true),
        },
        _ => Ok(true),
    };
    // Cleanup happens whatever the tool did, so a failed step leaves no
    // policy behind in a snapshot someone might inspect.
    if let Some(policy) = policy {
        policy.remove()?;
    }
    if lists.exists() {
        fs::remove_dir_all(&lists).map_err(|e| at(&lists, e))?;
    }
    let (status, lines) = outcome?;
    if status == Some(0) {
        return marked;
    }
    report_failure(
        &format!(
            "{} failed ({}) installing the lockfile's {} package(s)",
            plan.how(),
            exit_status(status),
            files.len()
        ),
        &lines,
        hint(&plan, &lines),
    )?;
    Ok(false)
}

/// The step's words for a base image without the tool its packages need
/// (a distroless or scratch image), instead of the runtime's "executable
/// file not found".
fn no_tool(tool: Installer, program: &str) -> String {
    format!(
        "this base image has no {program}, so its {} packages cannot be installed: a base without a package tool \
         (a distroless or scratch image) cannot take packages; use a base image that has {tool} \
         (for .deb packages, a Debian or Ubuntu image), or remove packages: from the recipe",
        tool.package_kind()
    )
}

fn exit_status(status: Option<i32>) -> String {
    status.map_or("a signal".to_string(), |c| format!("exit code {c}"))
}

/// The step's last lines when a tool failed: what failed, the lines of its
/// output that say why, and what to do when the cause is known.
fn report_failure(what: &str, lines: &[String], hint: Option<String>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out)?;
    writeln!(out, "repro-frontend: {what}:")?;
    for line in summary(lines) {
        writeln!(out, "  {line}")?;
    }
    if let Some(hint) = hint {
        writeln!(out, "{hint}")?;
    }
    out.flush()
}

/// The `policy-rc.d` of the step: written when the base has none, removed
/// when the tool is done if it is still ours; a base's own policy, or one a
/// package installed in its place, is left as it is.
pub struct Policy {
    made: Option<PathBuf>,
}

impl Policy {
    pub fn install(root: &Path) -> io::Result<Policy> {
        let path = root.join(POLICY_RC_D);
        let dir_exists = path.parent().is_some_and(Path::is_dir);
        if !dir_exists || fs::symlink_metadata(&path).is_ok() {
            return Ok(Policy { made: None });
        }
        fs::write(&path, POLICY_RC_D_TEXT).map_err(|e| at(&path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(|e| at(&path, e))?;
        Ok(Policy { made: Some(path) })
    }

    /// Removes the policy if it is still ours: a regular file with the text
    /// we wrote. A package that shipped its own (dpkg unpacks over a file no
    /// package owns) or a script that replaced or removed it keeps its way.
    pub fn remove(self) -> io::Result<()> {
        let Some(path) = &self.made else {
            return Ok(());
        };
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(at(path, e)),
        }
        // Reads at most one byte more than ours: a large file is not ours.
        let mut text = Vec::new();
        fs::File::open(path)
            .and_then(|f| {
                use std::io::Read as _;
                f.take(POLICY_RC_D_TEXT.len() as u64 + 1)
                    .read_to_end(&mut text)
            })
            .map_err(|e| at(path, e))?;
        if text != POLICY_RC_D_TEXT.as_bytes() {
            return Ok(());
        }
        fs::remove_file(path).map_err(|e| at(path, e))
    }
}

/// With apt and a list of what the recipe asked for: `apt-mark auto` for
/// every other package installed, so `apt-mark showmanual` lists what was
/// asked and `apt autoremove` knows the rest is a dependency. None when
/// there is nothing to mark or the recipe listed no names.
pub fn auto_marks(plan: &Plan, files: &[String], manual: &[String]) -> Option<Plan> {
    if !plan.uses_apt() || manual.is_empty() {
        return None;
    }
    // `name=version`, `name/release` and `name:arch` all name `name`.
    let asked: Vec<&str> = manual
        .iter()
        .map(|m| m.split(['=', '/', ':']).next().unwrap_or(m))
        .collect();
    let mut auto: Vec<String> = files
        .iter()
        .filter_map(|f| deb_package_name(f))
        .filter(|n| !asked.contains(&n.as_str()))
        .collect();
    auto.sort();
    auto.dedup();
    if auto.is_empty() {
        return None;
    }
    let mut args = vec!["auto".to_string()];
    args.extend(apt_offline_options());
    args.extend(auto);
    Some(Plan::new("apt-mark", args))
}

/// The package name of a Debian pool file: `name_version_arch.deb`.
fn deb_package_name(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    let (name, _) = base.strip_suffix(".deb")?.split_once('_')?;
    (!name.is_empty()).then(|| name.to_string())
}

fn run_marks(marks: &Plan) -> io::Result<bool> {
    let (status, lines) = run_logged(marks)?;
    if status == Some(0) {
        return Ok(true);
    }
    report_failure(
        &format!(
            "apt-mark failed ({}) marking the dependencies automatic",
            exit_status(status)
        ),
        &lines,
        None,
    )?;
    Ok(false)
}

/// Runs the plan with its output passed through, line by line, and kept for
/// the summary. Returns the exit code (None: killed by a signal).
fn run_logged(plan: &Plan) -> io::Result<(Option<i32>, Vec<String>)> {
    let mut child = Command::new(&plan.program)
        .args(&plan.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", plan.program)))?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        readers.push(forward_lines(pipe, tx.clone()));
    }
    if let Some(pipe) = child.stderr.take() {
        readers.push(forward_lines(pipe, tx.clone()));
    }
    drop(tx);
    let mut lines = Vec::new();
    let mut out = io::stdout().lock();
    for line in rx {
        writeln!(out, "{line}")?;
        lines.push(line);
    }
    drop(out);
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait()?;
    Ok((status.code(), lines))
}

/// Sends each line read from `pipe` to `tx`, on a thread of its own.
fn forward_lines<R: io::Read + Send + 'static>(
    pipe: R,
    tx: mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n').map_while(Result::ok) {
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    })
}

/// The lines of a failed tool's output that say what went wrong: apt's
/// `E:` lines and unmet dependencies, dpkg's "error processing" and
/// "dependency problems" blocks with their indented reasons, rpm's and
/// pacman's `error:` lines. At most 40 lines, duplicates dropped.
pub fn summary(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_block = false;
    for line in lines {
        let t = line.trim_end();
        let starts_block = t.starts_with("E: ")
            || t.starts_with("dpkg: error")
            || t.starts_with("dpkg: dependency problems")
            || t.starts_with("dpkg: regarding")
            || t.starts_with("error:")
            || t.starts_with("ERROR:")
            || t.starts_with("The following packages have unmet dependencies")
            || t.starts_with("Errors were encountered while processing");
        let continues = in_block && (t.starts_with(' ') || t.starts_with('\t'));
        if starts_block || continues {
            if !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
            in_block = true;
        } else {
            in_block = false;
        }
    }
    if out.is_empty() {
        // Nothing recognised: the tool's last lines say the most.
        let start = lines.len().saturating_sub(10);
        out = lines[start..]
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect();
    }
    if out.len() > 40 {
        let dropped = out.len() - 39;
        out.truncate(39);
        out.push(format!(
            "... ({dropped} more line(s) above in the step's log)"
        ));
    }
    out
}

/// What to do about it, when the cause is one we know.
fn hint(plan: &Plan, lines: &[String]) -> Option<String> {
    let pre_depends = lines.iter().any(|l| l.contains("pre-dependency problem"));
    if pre_depends && !plan.uses_apt() {
        return Some(
            "repro-frontend: this base image has no apt-get, and dpkg alone unpacks the files in name order, \
             so a package whose Pre-Depends sort after it is refused; use a base image that has apt \
             (apt orders the install by Pre-Depends)"
                .into(),
        );
    }
    // Offline, "not installable" means "not among the files given".
    if lines.iter().any(|l| {
        l.contains("but it is not installable") || l.contains("but it is not going to be installed")
    }) {
        return Some(
            "repro-frontend: the lockfile lacks a package (or the version) that the ones above depend on; \
             make it again with the lock target (docker build --target lock --output type=local,dest=. ...) \
             so it holds the whole dependency closure"
                .into(),
        );
    }
    None
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    // Issue 23: a base with no package tool failed with the runtime's
    // "executable file not found"; the step now says what to do.
    #[test]
    fn a_base_without_the_tool_fails_before_running_it_and_says_why() {
        let root = tempfile::tempdir().unwrap();
        let pkgs = root.path().join("tmp/repro-packages");
        fs::create_dir_all(&pkgs).unwrap();
        fs::write(pkgs.join("hello_2.10-3_amd64.deb"), b"!<arch>\n").unwrap();
        let ran = run(Installer::Dpkg, &pkgs, &[], root.path()).unwrap();
        assert!(!ran);
        // Nothing of the tool's set-up was left behind either.
        assert!(!root.path().join(POLICY_RC_D).exists());
        let text = no_tool(Installer::Dpkg, "dpkg");
        assert!(
            text.starts_with(
                "this base image has no dpkg, so its .deb packages cannot be installed"
            )
        );
        assert!(text.contains("remove packages: from the recipe"));
    }

    #[test]
    fn debian_bases_with_apt_install_offline_through_apt() {
        let p = plan(
            Installer::Dpkg,
            &s(&["/p/a.deb", "/p/b.deb"]),
            DebTools::Apt,
            false,
        );
        assert_eq!(p.program, "apt-get");
        assert!(p.uses_apt());
        assert_eq!(p.how(), "apt-get (offline)");
        let joined = p.args.join(" ");
        for want in [
            "install --yes --no-install-recommends --no-remove",
            "Dir::Etc::SourceList=/dev/null",
            "Dir::Etc::SourceParts=/dev/null",
            "Dir::State::Lists=/tmp/repro-apt-lists",
            "Dir::Cache::pkgcache=",
            "Dir::Cache::srcpkgcache=",
            "Dpkg::Options::=--force-confold",
        ] {
            assert!(joined.contains(want), "{want} missing from {joined}");
        }
        assert_eq!(&p.args[p.args.len() - 2..], ["/p/a.deb", "/p/b.deb"]);
    }

    #[test]
    fn without_apt_dpkg_installs_and_cannot_order() {
        let p = plan(
            Installer::Dpkg,
            &s(&["/p/a.deb"]),
            DebTools::DpkgOnly,
            false,
        );
        assert_eq!(p.program, "dpkg");
        assert!(!p.uses_apt());
        assert_eq!(p.how(), "dpkg");
        assert_eq!(
            p.args,
            [
                "--install",
                "--force-confold",
                "--force-unsafe-io",
                "/p/a.deb"
            ]
        );
        let failed = s(&[
            "dpkg: regarding .../python3-minimal_3.11.2-1+b1_amd64.deb containing python3-minimal, pre-dependency problem:",
            " python3-minimal pre-depends on python3.11-minimal (>= 3.11.2-1~)",
            "dpkg: error processing archive /tmp/repro-packages/python3-minimal_3.11.2-1+b1_amd64.deb (--install):",
            " pre-dependency problem - not installing python3-minimal",
        ]);
        assert!(hint(&p, &failed).unwrap().contains("has no apt-get"));
        let apt = plan(Installer::Dpkg, &s(&["/p/a.deb"]), DebTools::Apt, false);
        assert_eq!(hint(&apt, &failed), None);
    }

    #[test]
    fn other_tools_keep_their_commands() {
        let files = s(&["/p/a.apk", "/p/b.apk"]);
        let apk = plan(Installer::Apk, &files, DebTools::Apt, false);
        assert_eq!(apk.program, "apk");
        assert_eq!(
            apk.args,
            ["add", "--no-network", "--no-cache", "/p/a.apk", "/p/b.apk"]
        );
        let rpm = plan(Installer::Rpm, &s(&["/p/x.rpm"]), DebTools::Apt, true);
        assert_eq!(
            rpm.args,
            [
                "--install",
                "--replacepkgs",
                "--define",
                "_pkgverify_level signature",
                "/p/x.rpm"
            ]
        );
        let rpm = plan(Installer::Rpm, &s(&["/p/x.rpm"]), DebTools::Apt, false);
        assert_eq!(rpm.args[3], "_pkgverify_level digest");
        let pacman = plan(Installer::Pacman, &[], DebTools::Apt, false);
        assert_eq!(pacman.args, ["--upgrade", "--noconfirm", "--noprogressbar"]);
    }

    #[test]
    fn summary_keeps_the_tools_reasons() {
        let lines = s(&[
            "Selecting previously unselected package foo.",
            "Unpacking foo (1.0) ...",
            "Setting up foo (1.0) ...",
            "dpkg: error processing package foo (--configure):",
            " installed foo package post-installation script subprocess returned error exit status 3",
            "Processing triggers for libc-bin (2.36-9) ...",
            "Errors were encountered while processing:",
            " foo",
            "E: Sub-process /usr/bin/dpkg returned an error code (1)",
        ]);
        assert_eq!(
            summary(&lines),
            [
                "dpkg: error processing package foo (--configure):",
                " installed foo package post-installation script subprocess returned error exit status 3",
                "Errors were encountered while processing:",
                " foo",
                "E: Sub-process /usr/bin/dpkg returned an error code (1)",
            ]
        );
        let apt = s(&[
            "Reading package lists...",
            "Some packages could not be installed. This may mean that you have",
            "The following packages have unmet dependencies:",
            " python3 : Depends: python3.11 (>= 3.11.2-1~) but it is not installable",
            "E: Unable to correct problems, you have held broken packages.",
        ]);
        let got = summary(&apt);
        assert_eq!(got.len(), 3);
        assert!(got[1].contains("python3 : Depends: python3.11"));
        let p = plan(Installer::Dpkg, &s(&["/p/a.deb"]), DebTools::Apt, false);
        assert!(hint(&p, &apt).unwrap().contains("--target lock"));
    }

    #[test]
    fn summary_falls_back_to_the_last_lines_and_stays_short() {
        let lines: Vec<String> = (0..30).map(|i| format!("line {i}")).collect();
        assert_eq!(summary(&lines).first().unwrap(), "line 20");
        let many: Vec<String> = (0..100).map(|i| format!("E: problem {i}")).collect();
        let got = summary(&many);
        assert_eq!(got.len(), 40);
        assert!(got[39].contains("61 more line(s)"));
    }

    #[test]
    fn package_files_lists_what_the_tool_installs() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.deb", "a.deb", "a.deb.sig", "c.rpm"] {
            fs::write(dir.path().join(n), "x").unwrap();
        }
        let got = package_files(Installer::Dpkg, dir.path()).unwrap();
        let names: Vec<&str> = got.iter().map(|p| p.rsplit('/').next().unwrap()).collect();
        assert_eq!(names, ["a.deb", "b.deb"]);
    }

    #[test]
    fn what_the_recipe_did_not_ask_for_is_marked_automatic() {
        let files = s(&[
            "/p/libpython3.11-minimal_3.11.2-6+deb12u8_amd64.deb",
            "/p/python3-yaml_6.0-3+b2_amd64.deb",
            "/p/python3_3.11.2-1+b1_amd64.deb",
        ]);
        let apt = plan(Installer::Dpkg, &files, DebTools::Apt, false);
        let marks = auto_marks(
            &apt,
            &files,
            &s(&["python3:amd64", "python3-yaml=6.0-3+b2"]),
        )
        .unwrap();
        assert_eq!(marks.program, "apt-mark");
        assert_eq!(marks.args[0], "auto");
        assert!(
            marks
                .args
                .contains(&"Dir::State::Lists=/tmp/repro-apt-lists".to_string())
        );
        assert_eq!(marks.args.last().unwrap(), "libpython3.11-minimal");
        assert!(
            !marks
                .args
                .iter()
                .any(|a| a == "python3" || a == "python3-yaml")
        );
        // No names from the recipe, or no apt: nothing to mark.
        assert_eq!(auto_marks(&apt, &files, &[]), None);
        let dpkg = plan(Installer::Dpkg, &files, DebTools::DpkgOnly, false);
        assert_eq!(auto_marks(&dpkg, &files, &s(&["python3"])), None);
        assert_eq!(deb_package_name("/p/odd.deb"), None);
    }

    #[test]
    fn the_policy_exists_only_while_the_tool_runs() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("usr/sbin")).unwrap();
        let path = root.path().join(POLICY_RC_D);
        let policy = Policy::install(root.path()).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("exit 101\n"), "{text}");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        policy.remove().unwrap();
        assert!(!path.exists());
        // A base's own policy is left alone.
        fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        Policy::install(root.path()).unwrap().remove().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "#!/bin/sh\nexit 0\n");
    }

    // Issue 24: a package that ships its own policy-rc.d (over ours, during
    // the install) had it deleted by the cleanup.
    #[test]
    fn a_policy_a_package_put_in_our_place_is_kept() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("usr/sbin")).unwrap();
        let path = root.path().join(POLICY_RC_D);
        let shipped = "#!/bin/sh\n# from a package\nexit 0\n";
        // Replaced in place (dpkg unpacks over an unowned file).
        let policy = Policy::install(root.path()).unwrap();
        fs::write(&path, shipped).unwrap();
        policy.remove().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), shipped);
        // Replaced by a link: kept, and the target is not read as ours.
        fs::remove_file(&path).unwrap();
        let policy = Policy::install(root.path()).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(root.path().join("usr/sbin/other"), POLICY_RC_D_TEXT).unwrap();
        std::os::unix::fs::symlink("other", &path).unwrap();
        policy.remove().unwrap();
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // Removed by a maintainer script: nothing to do, no error.
        fs::remove_file(&path).unwrap();
        let policy = Policy::install(root.path()).unwrap();
        fs::remove_file(&path).unwrap();
        policy.remove().unwrap();
        assert!(fs::symlink_metadata(&path).is_err());
    }
}
