//! The examples build to the same image twice and their containers run.

use std::path::Path;
use std::process::Command;

use super::{ImageGuard, example_args};
use crate::support::{
    docker_build, example_context, harness, keep_rootfs_record, pool::PoolServer, repo, run,
};

/// Builds an example twice with --no-cache and returns the image ID after
/// checking both builds gave the same one.
fn build_twice(example: &str) -> (String, PoolServer) {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context(example);
    let recipe = repo().join("examples").join(example).join("repro.yaml");
    let (id, _) = build_twice_in(example, &recipe, ctx.path(), &example_args(&pool));
    (id, pool)
}

/// Builds `recipe` in `ctx` twice with `args` (which hold --no-cache),
/// checks both builds gave the same image ID, and leaves the rootfs export
/// and the config as `<name>.tar` and `<name>.config.json` for the
/// cross-engine check. Returns the image ID and the first build's output.
pub fn build_twice_in(
    example: &str,
    recipe: &Path,
    ctx: &Path,
    args: &[String],
) -> (String, String) {
    let (first, id1) = docker_build(recipe, ctx, args);
    assert!(first.ok, "first build of {example} failed:\n{}", first.text);
    let (second, id2) = docker_build(recipe, ctx, args);
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
    export_rootfs(example, recipe, ctx, args);
    save_config(example, &id1);
    (id1, first.text)
}

/// Writes the image's config JSON, as the engine stored it, to
/// target/harness/out/<engine>/<example>.config.json for the cross-engine check.
fn save_config(example: &str, id: &str) {
    let h = harness();
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    let r = run(h.docker().args(["save", "-o"]).arg(&tar).arg(id));
    assert!(r.ok, "{}", r.text);
    let r = run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .arg("manifest.json"));
    assert!(r.ok, "{}", r.text);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let config = manifest[0]["Config"].as_str().unwrap().to_string();
    let r = run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .arg(&config));
    assert!(r.ok, "{}", r.text);
    let out = Path::new(h.get("HARNESS_DIR")).join("out").join(h.engine());
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(
        dir.path().join(&config),
        out.join(format!("{example}.config.json")),
    )
    .unwrap();
}

/// Exports the example's root filesystem with `--output type=tar` and keeps
/// its record (sha256 and listing) in target/harness/out/<engine>/, for the
/// cross-engine check (`cross_engine.rs`). Same LLB as the builds just made,
/// so it is cached.
fn export_rootfs(example: &str, recipe: &Path, ctx: &Path, args: &[String]) {
    let h = harness();
    let dir = Path::new(h.get("HARNESS_DIR")).join("out").join(h.engine());
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("rootfs.tar");
    let mut cmd = h.build_cmd();
    cmd.arg("--progress=plain")
        .arg("--output")
        .arg(format!("type=tar,dest={}", dest.display()))
        .arg("-f")
        .arg(recipe)
        .args(args.iter().filter(|a| *a != "--no-cache"))
        .arg(ctx);
    let r = run(&mut cmd);
    assert!(r.ok, "export of {example}'s rootfs failed:\n{}", r.text);
    let size = dest.metadata().map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "no tar at {}", dest.display());
    // Hard links stay links: the base's perl-base has two names for one file.
    let list = run(Command::new("tar").arg("-tvf").arg(&dest));
    assert!(
        list.text
            .lines()
            .any(|l| l.starts_with('h') && l.contains("usr/bin/perl")),
        "{example}: no hard link to usr/bin/perl in the rootfs:\n{}",
        list.text
    );
    keep_rootfs_record(&dest, &dir, example);
}

fn inspect(id: &str, format: &str) -> String {
    let r = run(harness().docker().args(["inspect", "--format", format, id]));
    assert!(r.ok, "{}", r.text);
    r.text.trim().to_string()
}

#[test]
fn hello_is_reproducible_and_runs() {
    let (id, pool) = build_twice("hello");
    let _guard = ImageGuard(Some(id.clone()));
    let out = run(harness().docker().args(["run", "--rm", &id]));
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
    let out = run(harness().docker().args([
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
    let out = run(harness().docker().args(["run", "--rm", &id]));
    assert!(out.ok, "{}", out.text);
    assert_eq!(out.text.trim(), "hello from a reproducible gcc build");
    assert_eq!(inspect(&id, "{{len .RootFS.Layers}}"), "1");
    // No build litter: dpkg's log and the package mount point are gone.
    let out = run(harness().docker().args([
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
