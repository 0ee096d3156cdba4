//! The command line: `repro-frontend llb` prints a Definition others can read.

use std::process::Command;

use bollard_buildkit_proto::pb;
use prost::Message;

use crate::support::repo;

fn llb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_repro-frontend"))
        .arg("llb")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run repro-frontend llb")
}

#[test]
fn llb_prints_a_definition_of_the_hello_example() {
    let out = llb(&[
        "examples/hello/repro.yaml",
        "--context",
        "examples/hello",
        "--base-config",
        "tests/data/recipes/base-config.json",
        "--build-arg",
        "MIRROR=http://127.0.0.1:1/debian",
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
    let sums = std::fs::read_to_string(repo().join("examples/hello/SHA256SUMS-amd64")).unwrap();
    let (sum, name) = sums
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .split_once("  ")
        .unwrap();
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
    let out = llb(&[
        "examples/hello/repro.yaml",
        "--context",
        "examples/hello",
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
