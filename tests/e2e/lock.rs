//! The lock target: `docker build --target lock --output type=local,dest=...`
//! writes the lockfile from `packages.install`, against the real Debian
//! index the base image's apt sources name.

use std::path::Path;

use crate::support::{
    check_release_lines, docker_build, harness, lock_entries, pool::PoolServer, repo, run,
    without_release_lines,
};

/// A context holding a recipe that installs `packages` on the harness base.
fn context(packages: &[&str], mirror: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    let text = format!(
        "# syntax=repro-frontend:v0\nbase: {}\npackages:\n  install: [{}]\n  sums: SHA256SUMS-${{TARGETARCH}}\n  providers: [\"{mirror}/{{{{.Name}}}}\"]\nimage:\n  entrypoint: [/usr/bin/hello]\n",
        harness().base_ref(),
        packages.join(", ")
    );
    std::fs::write(ctx.path().join("repro.yaml"), text).unwrap();
    ctx
}

/// Runs the lock target into `dest` and returns the lockfile's text.
fn lock(ctx: &Path, dest: &Path) -> String {
    let h = harness();
    let r = run(h
        .build_cmd()
        .arg("--progress=plain")
        .args(["--target", "lock", "--output"])
        .arg(format!("type=local,dest={}", dest.display()))
        .arg("-f")
        .arg(ctx.join("repro.yaml"))
        .arg(ctx));
    assert!(r.ok, "{}", r.text);
    std::fs::read_to_string(dest.join("SHA256SUMS-amd64"))
        .expect("the lock target wrote SHA256SUMS-amd64")
}

#[test]
fn lock_writes_the_lockfile_the_build_then_uses() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = context(&["hello"], &pool.url);
    let out1 = tempfile::tempdir().unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let first = lock(ctx.path(), out1.path());
    let second = lock(ctx.path(), out2.path());
    assert_eq!(first, second, "locking twice gave different files");
    assert!(
        first.contains(&format!("# base: {}\n", h.base_ref())),
        "{first}"
    );
    assert!(first.contains("# packages: hello\n"), "{first}");
    assert!(first.contains("# index: apt's Packages files"), "{first}");
    // The very file the harness computed from the base's index (with
    // `repro-frontend lockfile from-apt`, the same library code), plus the
    // signed release files apt read, which the harness does not record.
    let harness_lock = std::fs::read_to_string(h.lockfile("hello")).unwrap();
    assert_eq!(without_release_lines(&first), harness_lock);
    check_release_lines(&first);
    // Every entry has the size apt's index lists: the pool file's length.
    let entries = lock_entries(&out1.path().join("SHA256SUMS-amd64"));
    assert!(!entries.is_empty());
    for e in &entries {
        let len = std::fs::metadata(h.pool_dir().join(&e.name)).unwrap().len();
        assert_eq!(e.size, Some(len), "{}", e.name);
    }

    // Build with it.
    std::fs::copy(
        out1.path().join("SHA256SUMS-amd64"),
        ctx.path().join("SHA256SUMS-amd64"),
    )
    .unwrap();
    let (r, id) = docker_build(&ctx.path().join("repro.yaml"), ctx.path(), &[]);
    assert!(r.ok, "{}", r.text);
    let id = id.expect("image id");
    let _guard = super::ImageGuard(Some(id.clone()));
    let out = run(h.docker().args(["run", "--rm", &id]));
    assert_eq!(out.text.trim(), "Hello, world!");

    // The recipe asks for more than the lockfile has: stale.
    let stale = context(&["hello", "gcc"], &pool.url);
    std::fs::copy(
        out1.path().join("SHA256SUMS-amd64"),
        stale.path().join("SHA256SUMS-amd64"),
    )
    .unwrap();
    let (r, id) = docker_build(&stale.path().join("repro.yaml"), stale.path(), &[]);
    assert!(!r.ok && id.is_none(), "{}", r.text);
    assert!(
        r.text.contains("SHA256SUMS-amd64 is stale: it was made for packages [hello], and the recipe asks for [gcc hello]; re-run the lock target"),
        "{}",
        r.text
    );
}

#[test]
fn the_gcc_example_locks_from_package_names_only() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = tempfile::tempdir().unwrap();
    for f in ["repro.yaml", "hello.c"] {
        std::fs::copy(repo().join("examples/gcc").join(f), ctx.path().join(f)).unwrap();
    }
    let dest = tempfile::tempdir().unwrap();
    let r = run(h
        .build_cmd()
        .arg("--progress=plain")
        .args(["--target", "lock", "--output"])
        .arg(format!("type=local,dest={}", dest.path().display()))
        .args(["--build-arg", &format!("BASE={}", h.base_ref())])
        .arg("-f")
        .arg(ctx.path().join("repro.yaml"))
        .arg(ctx.path()));
    assert!(r.ok, "{}", r.text);
    // Digests, names and sizes, as the frontend reads them.
    let pins = |p: &Path| -> Vec<(String, String, Option<u64>)> {
        lock_entries(p)
            .into_iter()
            .map(|e| (e.sha256, e.name, e.size))
            .collect()
    };
    let written = pins(&dest.path().join("SHA256SUMS-amd64"));
    assert!(written.iter().all(|p| p.2.is_some()), "{written:?}");
    assert_eq!(
        written,
        pins(&h.lockfile("gcc")),
        "the lock target and the harness disagree"
    );
    std::fs::copy(
        dest.path().join("SHA256SUMS-amd64"),
        ctx.path().join("SHA256SUMS-amd64"),
    )
    .unwrap();
    let (r, id) = docker_build(
        &ctx.path().join("repro.yaml"),
        ctx.path(),
        &[
            "--build-arg".into(),
            format!("BASE={}", h.base_ref()),
            "--build-arg".into(),
            format!("MIRROR={}", pool.url),
        ],
    );
    assert!(r.ok, "{}", r.text);
    // No guard removes this image: it is the very image the gcc example
    // test builds, maybe at this moment (test.sh prunes dangling images).
    let id = id.expect("image id");
    let out = run(h.docker().args(["run", "--rm", &id]));
    assert_eq!(out.text.trim(), "hello from a reproducible gcc build");
}
