//! The harness's shell scripts, run for real: the state file that set-up
//! writes reads back exactly, in the shell and in Rust.

use std::process::Command;

use crate::support::{check_intoto, parse_state, repo, run};

/// Values that broke the old `KEY=value` file, which the demo sourced as
/// shell: set-up wrote `E3_MISSING=the last scripts/setup.sh ran --only ...`
/// and the demo ran `last --only` (issue 23).
const VALUES: &[(&str, &str)] = &[
    ("SPACES", "the last scripts/setup.sh ran --only engine,base"),
    ("FLAG", "--only engine"),
    ("QUOTES", r#"it's "quoted" and 'single'"#),
    ("DOLLAR", "$HOME ${PATH} $(rm -rf /) `id`"),
    ("SEMI", "a; b && c | d > e"),
    ("EQUALS", "k=v=w"),
    ("EDGES", "  leading and trailing  "),
    ("BACKSLASH", r"a\nb\\c"),
    ("EMPTY", ""),
    ("HASH", "# not a comment"),
];

/// Runs `script` in bash with scripts/state.sh sourced, in a fresh folder.
fn bash(dir: &std::path::Path, script: &str) -> std::process::Output {
    Command::new("bash")
        .arg("-euc")
        .arg(format!(
            "source {}\n{script}",
            repo().join("scripts/state.sh").display()
        ))
        .current_dir(dir)
        .output()
        .expect("run bash")
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = repo().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn state_file_values_read_back_exactly_in_shell_and_rust() {
    let dir = tempdir("state-roundtrip");
    let mut script = String::from("rm -f env\n");
    for (key, value) in VALUES {
        // The value reaches state_put as the shell's own argument, from a
        // file, so the test's quoting cannot hide a writer bug.
        std::fs::write(dir.join(format!("in-{key}")), value).unwrap();
        script.push_str(&format!("state_put env {key} \"$(cat in-{key})\"\n"));
    }
    let out = bash(&dir, &script);
    assert!(
        out.status.success(),
        "state_put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("env")).unwrap();

    // Rust reads it back.
    let vars = parse_state(&text).expect("parse the state file");
    assert_eq!(vars.len(), VALUES.len(), "{vars:?}");
    for (key, value) in VALUES {
        assert_eq!(
            vars.get(*key).map(String::as_str),
            Some(*value),
            "Rust read of {key}"
        );
    }

    // The shell reads it back, and nothing in it ran.
    let mut script = String::from("state_load env\n");
    for (key, _) in VALUES {
        script.push_str(&format!("printf '%s\\0' \"${key}\"\n"));
    }
    let out = bash(&dir, &script);
    assert!(
        out.status.success(),
        "state_load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
    for (i, (key, value)) in VALUES.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(got[i]),
            *value,
            "shell read of {key}"
        );
    }
    assert!(
        out.stderr.is_empty(),
        "state_load ran something: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn state_put_refuses_a_newline_and_a_bad_key() {
    let dir = tempdir("state-refuse");
    let out = bash(&dir, "state_put env MULTI $'one\\ntwo'");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MULTI holds a newline"));
    let out = bash(&dir, "state_put env 'BAD KEY' v");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad key \"BAD KEY\""));
    assert!(
        !dir.join("env").exists() || std::fs::read_to_string(dir.join("env")).unwrap().is_empty()
    );
}

#[test]
fn state_load_names_a_malformed_line() {
    let dir = tempdir("state-malformed");
    std::fs::write(dir.join("env"), "# header\nGOOD=1\nnot a pair\n").unwrap();
    let out = bash(&dir, "state_load env");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("env:3: not KEY=VALUE"));
    assert_eq!(
        parse_state("# header\nGOOD=1\nnot a pair\n"),
        Err("3: not KEY=VALUE".to_string())
    );
}

/// `repro-frontend verify` on two one-file trees (equal, or with the file's
/// bytes changed in the published one), with the time pinned; the
/// statement's path.
fn vsa_of_trees(dir: &std::path::Path, equal: bool) -> std::path::PathBuf {
    let (ours, theirs, out) = (dir.join("ours"), dir.join("theirs"), dir.join("out"));
    for tree in [&ours, &theirs] {
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/f"), "same\n").unwrap();
    }
    if !equal {
        std::fs::write(theirs.join("etc/f"), "changed\n").unwrap();
    }
    for tree in [&ours, &theirs] {
        let t = run(Command::new("touch")
            .args(["-h", "-d", "@1000000"])
            .arg(tree.join("etc/f"))
            .arg(tree.join("etc")));
        assert!(t.ok, "{}", t.text);
    }
    let config = dir.join("config.json");
    std::fs::write(&config, "{}").unwrap();
    let facts = dir.join("facts.json");
    std::fs::write(
        &facts,
        format!(
            r#"{{"recipe":{{"name":"repro.yaml","sha256":"{}"}},"lockfiles":[],"base":"b@sha256:1","image":"reg.invalid/hello@sha256:{}","time":"2026-12-08T10:00:00Z"}}"#,
            "1".repeat(64),
            "4".repeat(64)
        ),
    )
    .unwrap();
    let r = run(Command::new(env!("CARGO_BIN_EXE_repro-frontend"))
        .arg("verify")
        .arg("--ours")
        .arg(&ours)
        .arg("--theirs")
        .arg(&theirs)
        .arg("--ours-config")
        .arg(&config)
        .arg("--theirs-config")
        .arg(&config)
        .arg("--facts")
        .arg(&facts)
        .arg("--out")
        .arg(&out));
    assert!(r.ok, "{}", r.text);
    out.join("verify.intoto.json")
}

// Issue 26: the verify statement is an SLSA VSA that the in-toto schemas
// accept, PASSED and FAILED; and the checker is not a rubber stamp: it
// refuses a VSA with a field missing, of the wrong type, or unknown.
#[test]
fn the_verify_statement_passes_the_in_toto_schemas_and_bad_ones_do_not() {
    let dir = tempdir("vsa-schema");
    for (equal, result) in [(true, "PASSED"), (false, "FAILED")] {
        let sub = dir.join(result);
        let file = vsa_of_trees(&sub, equal);
        let file = file.to_str().unwrap();
        let r = check_intoto(&["statement", file]);
        assert!(r.ok, "{}", r.text);
        assert!(
            r.text.contains(&format!("valid: VSA {result}")),
            "{}",
            r.text
        );
    }
    let good: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("PASSED/out/verify.intoto.json")).unwrap())
            .unwrap();
    type Break = fn(&mut serde_json::Value);
    let cases: [(&str, Break); 5] = [
        ("resourceUri is required", |v| {
            v["predicate"]
                .as_object_mut()
                .unwrap()
                .remove("resourceUri");
        }),
        ("verifiedLevels is not a non-empty array", |v| {
            v["predicate"]["verifiedLevels"] = serde_json::json!("SLSA_BUILD_REPRODUCED");
        }),
        ("has no field named \"verdict\"", |v| {
            v["predicate"]["verdict"] = serde_json::json!("ok");
        }),
        ("At least one subject required", |v| {
            v["subject"] = serde_json::json!([]);
        }),
        ("timeVerified", |v| {
            v["predicate"]["timeVerified"] = serde_json::json!("yesterday");
        }),
    ];
    for (n, (reason, spoil)) in cases.iter().enumerate() {
        let mut bad = good.clone();
        spoil(&mut bad);
        let path = dir.join(format!("bad-{n}.json"));
        std::fs::write(&path, bad.to_string()).unwrap();
        let r = check_intoto(&["statement", path.to_str().unwrap()]);
        assert!(!r.ok, "accepted a VSA that {reason}: {}", r.text);
        assert!(r.text.contains(reason), "{reason}: {}", r.text);
    }
}
