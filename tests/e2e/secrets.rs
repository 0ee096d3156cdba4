//! Private keys a build's own steps make (issue 24): one the frontend does
//! not know how to regenerate fails the build, naming the file, the step
//! and the recipe setting; the recipe's `private-keys:` removes it or keeps
//! it on purpose, loudly.

use super::{ImageGuard, example_args};
use crate::support::pool::PoolServer;
use crate::support::{docker_build, docker_run, harness};

/// A PKCS#8 private key (a throwaway Ed25519 key made for this test).
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMo4Hbx6lPOb8h2zn3ewXxGSen\n-----END PRIVATE KEY-----\n";

/// A recipe (no packages) whose second step writes [`KEY`] to
/// /srv/app/tls.key, with `extra` appended.
fn recipe(extra: &str) -> String {
    let lines: Vec<String> = KEY.lines().map(|l| format!("'{l}'")).collect();
    format!(
        "# syntax=repro-frontend:v0\nargs: {{BASE: \"\", MIRROR: \"\"}}\nbase: ${{BASE}}\nsteps:\n  - run: mkdir -p /srv/app\n  - run: printf '%s\\n' {} > /srv/app/tls.key\n{extra}",
        lines.join(" ")
    )
}

/// Builds `text` in a fresh context; the run and the image ID.
fn build(text: &str) -> (crate::support::Run, Option<String>) {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = tempfile::tempdir().unwrap();
    let path = ctx.path().join("repro.yaml");
    std::fs::write(&path, text).unwrap();
    docker_build(&path, ctx.path(), &example_args(&pool))
}

#[test]
fn a_key_a_step_made_fails_the_build_naming_the_file_the_step_and_the_setting() {
    let (r, id) = build(&recipe(""));
    let _guard = ImageGuard(id.clone());
    assert!(!r.ok && id.is_none(), "the build should fail:\n{}", r.text);
    for want in [
        "/srv/app/tls.key: a private key (PRIVATE KEY) made by step 2 (repro.yaml:6: run printf '%s\\n' '-----BEGIN PRIVATE KEY-----'",
        "every container of this image would share it",
        "private-keys: {remove: [/srv/app/tls.key]}",
        "private-keys: {keep: [/srv/app/tls.key]}",
    ] {
        assert!(r.text.contains(want), "no {want:?} in:\n{}", r.text);
    }
}

#[test]
fn the_recipe_removes_it_or_keeps_it_loudly() {
    let (r, id) = build(&recipe("private-keys:\n  remove: [/srv/app/*.key]\n"));
    let _guard = ImageGuard(id.clone());
    assert!(r.ok, "{}", r.text);
    assert!(
        r.text.contains(
            "removed /srv/app/tls.key: private key (PRIVATE KEY), made by step 2 (repro.yaml:6:"
        ),
        "{}",
        r.text
    );
    let id = id.expect("image id");
    let out = docker_run(&[
        "--entrypoint",
        "sh",
        &id,
        "-c",
        "test -d /srv/app && test ! -e /srv/app/tls.key && echo gone",
    ]);
    assert!(out.text.contains("gone"), "{}", out.text);

    let (r, id) = build(&recipe("private-keys:\n  keep: [/srv/app/tls.key]\n"));
    let _guard = ImageGuard(id.clone());
    assert!(r.ok, "{}", r.text);
    assert!(
        r.text
            .contains("WARNING: KEPT /srv/app/tls.key: private key (PRIVATE KEY)")
            && r.text.contains("every container of this image shares it"),
        "{}",
        r.text
    );
    let id = id.expect("image id");
    let out = docker_run(&["--entrypoint", "cat", &id, "/srv/app/tls.key"]);
    assert_eq!(out.text, KEY, "the kept key is in the image as made");
}
