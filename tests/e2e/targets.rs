//! `docker buildx build --print targets` (buildx 0.13; `--call targets` in
//! later releases) lists the recipe's targets through the frontend.targets
//! subrequest. Docker 20.10's `docker build` has no such flag, so this runs
//! on engine 26 only: ignored by default, and `scripts/test.sh` runs it there.

use crate::support::{harness, repo, run};

#[test]
#[ignore = "needs docker buildx (engine 26); scripts/test.sh runs it there"]
fn buildx_print_targets_lists_image_lock_and_packages() {
    let h = harness();
    assert_eq!(h.engine(), "26", "run with REPRO_ENGINE=26 (docker buildx)");
    let r = run(h
        .build_cmd()
        .env("BUILDX_EXPERIMENTAL", "1")
        .args(["--print", "targets", "-f"])
        .arg(repo().join("examples/hello/repro.yaml"))
        .arg(repo().join("examples/hello")));
    assert!(r.ok, "{}", r.text);
    assert!(r.text.contains("image (default)"), "{}", r.text);
    assert!(r.text.contains("lock"), "{}", r.text);
    assert!(
        r.text.contains("write the lockfile for packages.install"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("fetch and verify the lockfile's package blobs only"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("rebuild and compare with the image named by the REPRO_VERIFY build arg"),
        "{}",
        r.text
    );
    assert!(r.text.contains("write the image's SPDX SBOM"), "{}", r.text);
    assert!(
        r.text
            .contains("write the image's SLSA provenance predicate"),
        "{}",
        r.text
    );
}
