//! Other distros' package tools, end to end with packages the tests build
//! themselves: rpm, on a base image that carries it (Debian's rpm).

use super::ImageGuard;
use crate::support::{docker_build, harness, pool::PoolServer, run};

#[test]
fn rpm_packages_are_installed_with_rpm_reproducibly() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = tempfile::tempdir().unwrap();
    let lock = std::path::Path::new(h.get("LOCK_DIR")).join("rpm/SHA256SUMS-amd64");
    std::fs::copy(&lock, ctx.path().join("SHA256SUMS-amd64")).unwrap();
    let recipe = ctx.path().join("repro.yaml");
    std::fs::write(
        &recipe,
        format!(
            "# syntax=repro-frontend:v0\n\
             base: {}\n\
             packages:\n  installer: rpm\n  sums: SHA256SUMS-${{TARGETARCH}}\n  providers: [\"{}/{{{{.Name}}}}\"]\n\
             image:\n  cmd: [cat, /usr/share/repro-hello/hello.txt]\n",
            h.get("RPM_BASE_REF"),
            pool.url
        ),
    )
    .unwrap();
    let args = vec!["--no-cache".to_string()];
    let (a, id1) = docker_build(&recipe, ctx.path(), &args);
    assert!(a.ok, "{}", a.text);
    assert!(
        a.text
            .contains("install 1 package(s) with rpm (no network)"),
        "{}",
        a.text
    );
    let (b, id2) = docker_build(&recipe, ctx.path(), &args);
    assert!(b.ok, "{}", b.text);
    let _guard = ImageGuard(id1.clone());
    let id = id1.expect("image id");
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
    assert_eq!(
        Some(id),
        id2,
        "two --no-cache rpm builds gave different images"
    );
}
