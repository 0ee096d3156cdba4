//! Other distros' package tools, end to end with packages the tests build
//! themselves (no rpm or pacman repository is reachable here), each on a
//! base image that carries the tool (Debian's rpm, Debian's pacman).

use super::ImageGuard;
use crate::support::{docker_build, harness, pool::PoolServer, run};

/// A recipe for the harness's `tool` package: its lockfile `sums` (under
/// LOCK_DIR/<tool>/), on the base `base_key` names, from the pool under
/// `pool_prefix`, with `extra` lines under `packages:`. Returns the context.
fn recipe(tool: &str, sums: &str, base_key: &str, pool: &str, extra: &str) -> tempfile::TempDir {
    let h = harness();
    let ctx = tempfile::tempdir().unwrap();
    let lock = std::path::Path::new(h.get("LOCK_DIR"))
        .join(tool)
        .join(sums);
    std::fs::copy(&lock, ctx.path().join("SHA256SUMS-amd64")).unwrap();
    let text = format!(
        "# syntax=repro-frontend:v0\nbase: {}\npackages:\n  installer: {tool}\n  sums: SHA256SUMS-${{TARGETARCH}}\n  providers: [\"{pool}/{{{{.Name}}}}\"]\n{extra}image:\n  cmd: [cat, /usr/share/repro-hello/hello.txt]\n",
        h.get(base_key),
    );
    std::fs::write(ctx.path().join("repro.yaml"), text).unwrap();
    ctx
}

/// Builds, twice with --no-cache, a recipe that installs the harness's
/// package for `tool` on the base image `base_key` names; checks both builds
/// give the same image, and returns it.
fn build_twice(tool: &str, base_key: &str) -> (String, ImageGuard) {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = recipe(tool, "SHA256SUMS-amd64", base_key, &pool.url, "");
    let recipe = ctx.path().join("repro.yaml");
    let args = vec!["--no-cache".to_string()];
    let (a, id1) = docker_build(&recipe, ctx.path(), &args);
    assert!(a.ok, "{}", a.text);
    let step = format!("install 1 package(s) with {tool} (no network)");
    assert!(a.text.contains(&step), "{}", a.text);
    let (b, id2) = docker_build(&recipe, ctx.path(), &args);
    assert!(b.ok, "{}", b.text);
    let guard = ImageGuard(id1.clone());
    let id = id1.expect("image id");
    assert_eq!(
        Some(id.clone()),
        id2,
        "two --no-cache {tool} builds gave different images"
    );
    (id, guard)
}

#[test]
fn rpm_packages_are_installed_with_rpm_reproducibly() {
    let h = harness();
    let (id, _guard) = build_twice("rpm", "RPM_BASE_REF");
    let out = run(h.docker().args(["run", "--rm", &id]));
    assert_eq!(out.text.trim(), "hello from an rpm", "{}", out.text);
    let q = run(h.docker().args([
        "run",
        "--rm",
        "--entrypoint",
        "rpm",
        &id,
        "-q",
        "repro-hello",
    ]));
    assert_eq!(q.text.trim(), "repro-hello-1.0-1.noarch", "{}", q.text);
}

#[test]
fn pacman_packages_are_installed_with_pacman_reproducibly() {
    let h = harness();
    let (id, _guard) = build_twice("pacman", "PACMAN_BASE_REF");
    let out = run(h.docker().args(["run", "--rm", &id]));
    assert_eq!(
        out.text.trim(),
        "hello from a pacman package",
        "{}",
        out.text
    );
    let q = run(h.docker().args([
        "run",
        "--rm",
        "--entrypoint",
        "pacman",
        &id,
        "-Q",
        "repro-hello",
    ]));
    assert_eq!(q.text.trim(), "repro-hello 1.0-1", "{}", q.text);
}

#[test]
fn pacman_checks_signatures_when_the_recipe_asks() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = recipe(
        "pacman",
        "SHA256SUMS-signed",
        "PACMAN_SIGNED_BASE_REF",
        &pool.url,
        "  signatures: true\n",
    );
    let (r, id) = docker_build(&ctx.path().join("repro.yaml"), ctx.path(), &[]);
    assert!(r.ok, "{}", r.text);
    let _guard = ImageGuard(id.clone());
    let out = run(h.docker().args(["run", "--rm", &id.expect("image id")]));
    assert_eq!(
        out.text.trim(),
        "hello from a pacman package",
        "{}",
        out.text
    );

    // The same package with a signature over other bytes: the lockfile pins
    // both files, so they arrive, and pacman refuses the package.
    let bad = recipe(
        "pacman",
        "SHA256SUMS-badsig",
        "PACMAN_SIGNED_BASE_REF",
        &format!("{}/badsig", pool.url),
        "  signatures: true\n",
    );
    let (r, id) = docker_build(&bad.path().join("repro.yaml"), bad.path(), &[]);
    assert!(
        !r.ok && id.is_none(),
        "a bad signature must fail the build:\n{}",
        r.text
    );
    assert!(r.text.contains("signature"), "{}", r.text);
}
