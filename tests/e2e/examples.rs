//! The examples build to the same image twice and their containers run.

use std::process::Command;

use super::{ImageGuard, example_args};
use crate::support::{docker_build, example_context, harness, pool::PoolServer, repo, run};

/// Builds an example twice with --no-cache and returns the image ID after
/// checking both builds gave the same one.
fn build_twice(example: &str) -> (String, PoolServer) {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = example_context(example);
    let recipe = repo().join("examples").join(example).join("repro.yaml");
    let args = example_args(&pool);
    let (first, id1) = docker_build(&recipe, ctx.path(), &args);
    assert!(first.ok, "first build of {example} failed:\n{}", first.text);
    let (second, id2) = docker_build(&recipe, ctx.path(), &args);
    assert!(
        second.ok,
        "second build of {example} failed:\n{}",
        second.text
    );
    let (id1, id2) = (id1.expect("image id"), id2.expect("image id"));
    assert_eq!(
        id1, id2,
        "two --no-cache builds of {example} gave different images"
    );
    (id1, pool)
}

fn inspect(id: &str, format: &str) -> String {
    let r = run(Command::new(harness().docker()).args(["inspect", "--format", format, id]));
    assert!(r.ok, "{}", r.text);
    r.text.trim().to_string()
}

#[test]
fn hello_is_reproducible_and_runs() {
    let (id, pool) = build_twice("hello");
    let _guard = ImageGuard(Some(id.clone()));
    let out = run(Command::new(harness().docker()).args(["run", "--rm", &id]));
    assert!(out.ok, "{}", out.text);
    assert_eq!(out.text.trim(), "Hello, world!");
    // One squashed layer, and the blob came from the recipe's provider.
    assert_eq!(inspect(&id, "{{len .RootFS.Layers}}"), "1");
    assert!(
        pool.hits()
            .iter()
            .any(|p| p.ends_with(".deb") && p.contains("/hello_")),
        "{:?}",
        pool.hits()
    );
    // The step ran with the packages installed.
    let out = run(Command::new(harness().docker()).args([
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        &id,
        "/hello-version.txt",
    ]));
    assert!(out.text.contains("GNU Hello"), "{}", out.text);
}

#[test]
fn gcc_is_reproducible_and_its_program_runs() {
    let (id, _pool) = build_twice("gcc");
    let _guard = ImageGuard(Some(id.clone()));
    let out = run(Command::new(harness().docker()).args(["run", "--rm", &id]));
    assert!(out.ok, "{}", out.text);
    assert_eq!(out.text.trim(), "hello from a reproducible gcc build");
    assert_eq!(inspect(&id, "{{len .RootFS.Layers}}"), "1");
    // No build litter: dpkg's log and the package mount point are gone.
    let out = run(Command::new(harness().docker()).args([
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        &id,
        "-c",
        "test ! -e /var/log/dpkg.log.new; ls -A /tmp; test ! -e /tmp/repro-packages && echo clean",
    ]));
    assert_eq!(out.text.trim(), "clean", "{}", out.text);
}
