//! The command line: `repro-frontend llb` prints a Definition others can read.

use std::process::Command;

use bollard_buildkit_proto::pb;
use prost::Message;

use crate::support::{lock_entries, repo};

fn llb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_repro-frontend"))
        .arg("llb")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run repro-frontend llb")
}

/// `BASE=<the base the hello lockfile was made for>`: the lockfile's header
/// names it, and `llb` refuses a lockfile made for another base.
fn hello_base_arg() -> String {
    let sums = std::fs::read_to_string(repo().join("examples/hello/SHA256SUMS-amd64")).unwrap();
    let base = sums
        .lines()
        .find_map(|l| l.strip_prefix("# base: "))
        .expect("the hello lockfile names its base");
    format!("BASE={}", base.trim())
}

#[test]
fn llb_prints_a_definition_of_the_hello_example() {
    let base = hello_base_arg();
    let out = llb(&[
        "examples/hello/repro.yaml",
        "--context",
        "examples/hello",
        "--base-config",
        "tests/data/recipes/base-config.json",
        "--build-arg",
        "MIRROR=http://127.0.0.1:1/debian",
        "--build-arg",
        &base,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let def = pb::Definition::decode(out.stdout.as_slice()).expect("a Definition on stdout");
    let ops: Vec<pb::Op> = def
        .def
        .iter()
        .map(|b| pb::Op::decode(b.as_slice()).unwrap())
        .collect();
    // The last op is the terminal one, pointing at the squashed result.
    let last = ops.last().unwrap();
    assert!(last.op.is_none() && last.inputs.len() == 1);
    // The lockfile's one package is fetched by checksum from the mirror given.
    let entry = lock_entries(&repo().join("examples/hello/SHA256SUMS-amd64")).swap_remove(0);
    let (sum, name) = (entry.sha256, entry.name);
    let http: Vec<&pb::SourceOp> = ops
        .iter()
        .filter_map(|o| match &o.op {
            Some(pb::op::Op::Source(s)) if s.identifier.starts_with("http") => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(http.len(), 1);
    assert_eq!(
        http[0].identifier,
        format!("http://127.0.0.1:1/debian/{name}")
    );
    assert_eq!(http[0].attrs["http.checksum"], format!("sha256:{sum}"));
    // The install step runs offline; the epoch comes from the base config's
    // created time.
    let execs: Vec<&pb::ExecOp> = ops
        .iter()
        .filter_map(|o| match &o.op {
            Some(pb::op::Op::Exec(e)) => Some(e),
            _ => None,
        })
        .collect();
    let install = execs
        .iter()
        .find(|e| {
            e.meta
                .as_ref()
                .unwrap()
                .args
                .get(1)
                .is_some_and(|a| a == "install")
        })
        .unwrap();
    assert_eq!(install.network, pb::NetMode::None as i32);
    assert!(
        install
            .meta
            .as_ref()
            .unwrap()
            .env
            .contains(&"SOURCE_DATE_EPOCH=1714521600".to_string())
    );
    // Every op named in the metadata is in the Definition.
    assert_eq!(def.metadata.len(), ops.len() - 1);
}

#[test]
fn llb_writes_the_image_config_and_dumps_ops() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let base = hello_base_arg();
    let out = llb(&[
        "examples/hello/repro.yaml",
        "--context",
        "examples/hello",
        "--build-arg",
        &base,
        "--build-arg",
        "SOURCE_DATE_EPOCH=86400",
        "--config-out",
        config.to_str().unwrap(),
        "--dump",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\"install 1 package(s) with dpkg (no network)\""),
        "{text}"
    );
    assert!(text.lines().last().unwrap().ends_with("terminal"), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(v["created"], "1970-01-02T00:00:00Z");
    assert_eq!(
        v["config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/hello"])
    );
}

#[test]
fn llb_reports_recipe_errors_with_their_place() {
    let out = llb(&["tests/data/recipes/negative/unknown-step/repro.yaml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("repro.yaml:5:5: unknown step kind \"rnu\""),
        "{err}"
    );
}

// `llb` accepted a lockfile made for another base; the gateway refused it.
#[test]
fn llb_refuses_a_stale_lockfile_as_the_gateway_does() {
    let out = llb(&[
        "examples/hello/repro.yaml",
        "--context",
        "examples/hello",
        "--build-arg",
        "SOURCE_DATE_EPOCH=86400",
        "--dump",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SHA256SUMS-amd64 is stale: it was made for base ")
            && err.contains("re-run the lock target"),
        "{err}"
    );
}

fn frontend(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_repro-frontend"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run repro-frontend");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

#[test]
fn lockfile_from_apt_writes_what_the_lock_target_writes_and_entries_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("roots");
    std::fs::write(&roots, "# archive roots\nhttp://m.invalid/debian/\n").unwrap();
    let uris = format!(
        "Reading package lists...\n'http://m.invalid/debian/pool/main/z/z/z_1%2b2_amd64.deb' z_1+2_amd64.deb 7 SHA256:{}\n'http://m.invalid/debian/pool/main/a/a/a_1_amd64.deb' a_1_amd64.deb 53080 SHA256:{}\n",
        "b".repeat(64),
        "A".repeat(64)
    );
    let roots_arg = roots.to_str().unwrap();
    let args = [
        "lockfile",
        "from-apt",
        "--base",
        "r@sha256:1",
        "--roots",
        roots_arg,
        "z",
        "a",
    ];
    let out = frontend(&args, &uris);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    assert_eq!(
        text,
        format!(
            "# Made by repro-frontend's lock target; re-run it rather than edit this file.\n\
             # base: r@sha256:1\n\
             # packages: a z\n\
             # index: apt's Packages files (each SHA256 as the signed index lists it; nothing was downloaded to hash it)\n\
             {a}  pool/main/a/a/a_1_amd64.deb\n\
             {b}  pool/main/z/z/z_1+2_amd64.deb\n\
             # size: 53080 pool/main/a/a/a_1_amd64.deb\n\
             # size: 7 pool/main/z/z/z_1+2_amd64.deb\n"
        )
    );
    // The same answer gives the same bytes.
    assert_eq!(frontend(&args, &uris).stdout, text.as_bytes());

    let lock = dir.path().join("SHA256SUMS");
    std::fs::write(&lock, &text).unwrap();
    let out = frontend(&["lockfile", "entries", lock.to_str().unwrap()], "");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{a}  pool/main/a/a/a_1_amd64.deb\n{b}  pool/main/z/z/z_1+2_amd64.deb\n")
    );
    // A size line whose entry was deleted by hand is an error at its line.
    let edited: String = text
        .lines()
        .filter(|l| !l.starts_with(&a))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&lock, edited).unwrap();
    let out = frontend(&["lockfile", "entries", lock.to_str().unwrap()], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:6:15: size line for \"pool/main/a/a/a_1_amd64.deb\", which no entry names",
            lock.display()
        )),
        "{err}"
    );
}

/// `repro-frontend sources`, which scripts/lib.sh asks for the host's mirror.
#[test]
fn sources_prints_the_deb_roots_of_a_suite_in_apt_order() {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/apt");
    std::fs::create_dir_all(etc.join("sources.list.d")).unwrap();
    std::fs::write(
        etc.join("sources.list"),
        "deb http://sec.example/debian-security bookworm-security main\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("sources.list.d/b.list"),
        "deb http://b.example/debian bookworm main\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("sources.list.d/a.sources"),
        "Types: deb\nURIs: http://a.example/debian/\nSuites: bookworm\n",
    )
    .unwrap();
    let sources = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_repro-frontend"))
            .arg("sources")
            .arg("--root")
            .arg(root.path())
            .args(args)
            .output()
            .expect("run repro-frontend sources")
    };
    let first = sources(&["--suite", "bookworm"]);
    assert!(first.status.success());
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "http://a.example/debian\n"
    );
    let all = sources(&["--suite", "bookworm", "--all"]);
    assert_eq!(
        String::from_utf8_lossy(&all.stdout),
        "http://a.example/debian\nhttp://b.example/debian\n"
    );
    let none = sources(&["--suite", "sid"]);
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no http(s) deb source for suite sid"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
}
