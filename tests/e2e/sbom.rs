//! The image's SBOM: the `sbom` target with `--output type=local` on the
//! current engine, and the SBOM attestation on Docker 26.1 (`--sbom=true`)
//! and engine 3 (`attest:sbom`).

use std::path::Path;

use super::example_args;
use crate::support::{
    docker_build_output, example_context, harness, lock_entries, oci_json, pool::PoolServer, repo,
    run,
};

/// `--target sbom --output type=local` of an example; the document's bytes.
fn sbom_target(example: &str, ctx: &Path, pool: &PoolServer) -> Vec<u8> {
    let dest = tempfile::tempdir().unwrap();
    let mut args = example_args(pool);
    args.extend([
        "--target".to_string(),
        "sbom".to_string(),
        "--output".to_string(),
        format!("type=local,dest={}", dest.path().display()),
    ]);
    let recipe = repo().join("examples").join(example).join("repro.yaml");
    let r = docker_build_output(&recipe, ctx, &args);
    assert!(r.ok, "sbom target of {example}:\n{}", r.text);
    let names: Vec<_> = std::fs::read_dir(dest.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["sbom.spdx.json"], "only the document");
    std::fs::read(dest.path().join("sbom.spdx.json")).unwrap()
}

/// Checks the document lists every package of the context's lockfile with
/// its sha256, and packages that came with the base image.
fn check_lists_the_lockfile(doc: &serde_json::Value, ctx: &Path, want: usize) {
    let entries = lock_entries(&ctx.join("SHA256SUMS-amd64"));
    let debs: Vec<_> = entries
        .iter()
        .filter(|e| e.name.ends_with(".deb"))
        .collect();
    assert_eq!(debs.len(), want);
    let packages = doc["packages"].as_array().unwrap();
    for e in &debs {
        let found = packages.iter().find(|p| {
            p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-deb-")
                && p["checksums"][0]["checksumValue"] == e.sha256.as_str()
        });
        let p = found.unwrap_or_else(|| panic!("{} is not in the SBOM", e.name));
        assert!(p["comment"].as_str().unwrap().contains(&e.name), "{p}");
    }
    let base = packages
        .iter()
        .filter(|p| {
            p["downloadLocation"] == "NOASSERTION"
                && p["comment"]
                    .as_str()
                    .unwrap()
                    .starts_with("came with the base image ")
        })
        .count();
    assert!(
        base > 10,
        "the base image's packages are listed too ({base})"
    );
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
}

#[test]
fn the_sbom_target_lists_the_lockfile_and_is_byte_identical() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("gcc");
    let first = sbom_target("gcc", ctx.path(), &pool);
    let second = sbom_target("gcc", ctx.path(), &pool);
    assert!(first == second, "two builds of the sbom target differ");
    let doc: serde_json::Value = serde_json::from_slice(&first).unwrap();
    check_lists_the_lockfile(&doc, ctx.path(), 41);
}

/// `buildctl --opt attest:sbom=` with an OCI layout output: the index digest
/// and the SPDX document of the attestation manifest's in-toto layer.
fn attested_build(ctx: &Path, pool: &PoolServer) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("image");
    let r = super::engine3::buildctl(
        &ctx.join("repro.yaml"),
        ctx,
        &pool.url,
        &[
            "--no-cache",
            "--opt",
            "attest:sbom=",
            "--output",
            &format!("type=oci,dest={},tar=false", oci.display()),
        ],
    );
    assert!(r.ok, "{}", r.text);
    read_attested(&oci, &r.text)
}

/// `docker buildx build --sbom=true` with an OCI layout output, and the
/// provenance attestation on (buildx's default) or off.
fn buildx_attested(ctx: &Path, pool: &PoolServer, provenance: bool) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("image");
    let mut cmd = harness().docker();
    cmd.args(["buildx", "build", "--progress=plain", "--sbom=true"]);
    if !provenance {
        cmd.arg("--provenance=false");
    }
    let r = run(cmd
        .args(example_args(pool))
        .arg("--output")
        .arg(format!("type=oci,dest={},tar=false", oci.display()))
        .arg("-f")
        .arg(ctx.join("repro.yaml"))
        .arg(ctx));
    assert!(r.ok, "{}", r.text);
    read_attested(&oci, &r.text)
}

/// The index digest of an OCI layout and the SPDX predicate of its
/// attestation manifest; checks BuildKit ran no scanner of its own.
fn read_attested(oci: &Path, log: &str) -> (String, serde_json::Value) {
    assert!(
        !log.contains("generating sbom using"),
        "BuildKit ran its own scanner:\n{log}"
    );
    let top = oci_json(oci, "");
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let index = oci_json(oci, &index_digest);
    let manifests = index["manifests"].as_array().expect("an image index");
    let att = manifests
        .iter()
        .find(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .unwrap_or_else(|| panic!("no attestation manifest in {index}"));
    let att = oci_json(oci, att["digest"].as_str().unwrap());
    let layer = att["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["in-toto.io/predicate-type"] == "https://spdx.dev/Document")
        .unwrap_or_else(|| panic!("no SPDX layer in {att}"));
    let statement = oci_json(oci, layer["digest"].as_str().unwrap());
    (index_digest, statement["predicate"].clone())
}

#[test]
#[ignore = "needs docker buildx (engine 26); scripts/test.sh runs it there"]
fn buildx_sbom_attestation_reproduces_and_is_the_sbom_target() {
    let h = harness();
    assert_eq!(h.engine(), "26", "run with REPRO_ENGINE=26 (docker buildx)");
    let pool = PoolServer::start(h.pool_dir());
    let ctx = example_context("gcc");
    let (index1, sbom1) = buildx_attested(ctx.path(), &pool, false);
    let (index2, sbom2) = buildx_attested(ctx.path(), &pool, false);
    assert_eq!(
        index1, index2,
        "two --sbom=true builds gave different indexes"
    );
    assert_eq!(sbom1, sbom2);
    check_lists_the_lockfile(&sbom1, ctx.path(), 41);
    let file: serde_json::Value =
        serde_json::from_slice(&sbom_target("gcc", ctx.path(), &pool)).unwrap();
    assert_eq!(sbom1, file, "the attestation is the sbom target's document");
    // buildx's default provenance records build times: the README's advice
    // to turn it off rests on this.
    let (index3, sbom3) = buildx_attested(ctx.path(), &pool, true);
    assert_eq!(sbom3, sbom1);
    assert_ne!(index3, index1, "the provenance attestation changed nothing");
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_sbom_attestation_reproduces_and_is_the_sbom_target() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("gcc");
    let (index1, sbom1) = attested_build(ctx.path(), &pool);
    let (index2, sbom2) = attested_build(ctx.path(), &pool);
    assert_eq!(index1, index2, "two attested builds gave different indexes");
    assert_eq!(sbom1, sbom2);
    check_lists_the_lockfile(&sbom1, ctx.path(), 41);
    // The sbom target on the same engine writes the same document.
    let dest = super::engine3::local_build(ctx.path(), &pool, &["--opt", "target=sbom"]);
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.path().join("sbom.spdx.json")).unwrap())
            .unwrap();
    assert_eq!(sbom1, file);
}
