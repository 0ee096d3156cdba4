//! The image's SLSA provenance (`REPRO_PROVENANCE=1`): attached as an
//! attestation on engine 3 (buildctl) and Docker 26.1 (buildx), two
//! `--no-cache` builds give one index digest, every blob of the lockfile is
//! a resolved dependency, and the `provenance` target writes the same
//! predicate. BuildKit's own provenance, beside it, gives a new index on
//! every build.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use repro_frontend::convert::provenance::{ATTACHED_TYPE, BUILD_TYPE, FILE, PREDICATE_TYPE};

use super::example_args;
use crate::support::{
    check_intoto, example_context, harness, lock_entries, oci_json, pool::PoolServer, run,
};

/// The image name the OCI exports carry: BuildKit names the attestation's
/// subject after it.
const NAME: &str = "repro-test/provenance:latest";

/// A build arg that must not reach the provenance (predefined, not
/// declared by the recipe).
const PROXY_MARK: &str = "no-such-proxy.invalid";

/// What an attested OCI export holds.
struct Attested {
    index: String,
    /// The image manifest's digest.
    image: String,
    /// Our statement, if the index carries one.
    statement: Option<serde_json::Value>,
    /// The predicate types of every attestation layer.
    types: Vec<String>,
}

fn read_attested(oci: &Path) -> Attested {
    let top = oci_json(oci, "");
    let index = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let list = oci_json(oci, &index);
    // With no attestation, the export is the image manifest itself.
    let Some(manifests) = list["manifests"].as_array() else {
        return Attested {
            image: index.clone(),
            index,
            statement: None,
            types: Vec::new(),
        };
    };
    let image = manifests
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .expect("the amd64 image")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut statement = None;
    let mut types = Vec::new();
    for m in manifests
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
    {
        let att = oci_json(oci, m["digest"].as_str().unwrap());
        for layer in att["layers"].as_array().unwrap() {
            let kind = layer["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if kind == ATTACHED_TYPE {
                statement = Some(oci_json(oci, layer["digest"].as_str().unwrap()));
            }
            types.push(kind);
        }
    }
    Attested {
        index,
        image,
        statement,
        types,
    }
}

/// Checks the predicate against the lockfile in `ctx`: every blob by sha256,
/// the recipe and lockfile by the bytes' sha256, no time, no proxy.
fn check_predicate(predicate: &serde_json::Value, ctx: &Path) {
    let def = &predicate["buildDefinition"];
    assert_eq!(def["buildType"], BUILD_TYPE);
    let deps = def["resolvedDependencies"].as_array().unwrap();
    let listed: BTreeSet<(String, String)> = deps
        .iter()
        .filter_map(|d| {
            Some((
                d["name"].as_str()?.to_string(),
                d["digest"]["sha256"].as_str()?.to_string(),
            ))
        })
        .collect();
    let entries = lock_entries(&ctx.join("SHA256SUMS-amd64"));
    assert!(entries.len() > 1);
    for e in &entries {
        assert!(
            listed.contains(&(e.name.clone(), e.sha256.clone())),
            "{} {} not a resolved dependency",
            e.name,
            e.sha256
        );
    }
    let sha = |p: &Path| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
    };
    for file in ["repro.yaml", "SHA256SUMS-amd64"] {
        assert!(
            listed.contains(&(file.to_string(), sha(&ctx.join(file)))),
            "{file} not listed by its bytes' sha256"
        );
    }
    let base = harness().base_ref();
    let (_, digest) = base.split_once("@sha256:").unwrap();
    assert!(listed.contains(&("base".to_string(), digest.to_string())));
    let text = predicate.to_string();
    for word in ["startedOn", "finishedOn", "invocationId", PROXY_MARK] {
        assert!(!text.contains(word), "{word} in the provenance: {text}");
    }
}

/// `buildctl` on engine 3 with an OCI layout output named [`NAME`].
fn engine3_build(ctx: &Path, pool: &PoolServer, extra: &[&str]) -> Attested {
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("image");
    let output = format!("type=oci,dest={},tar=false,name={NAME}", oci.display());
    let no_proxy = format!("build-arg:no_proxy={PROXY_MARK}");
    let mut args = vec!["--no-cache", "--opt", &no_proxy, "--output", &output];
    args.extend_from_slice(extra);
    let r = super::engine3::buildctl(&ctx.join("repro.yaml"), ctx, &pool.url, &args);
    assert!(r.ok, "{}", r.text);
    read_attested(&oci)
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_provenance_reproduces_lists_every_blob_and_is_the_target() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("gcc");
    let ask = ["--opt", "build-arg:REPRO_PROVENANCE=1"];
    let first = engine3_build(ctx.path(), &pool, &ask);
    let second = engine3_build(ctx.path(), &pool, &ask);
    assert_eq!(
        first.index, second.index,
        "two --no-cache builds with the provenance gave two indexes"
    );
    let statement = first.statement.expect("our provenance attestation");
    assert_eq!(statement["predicateType"], ATTACHED_TYPE);
    // BuildKit names the subject after the image and its manifest digest.
    let subjects = statement["subject"].as_array().unwrap();
    assert!(
        subjects.iter().any(
            |s| format!("sha256:{}", s["digest"]["sha256"].as_str().unwrap_or("")) == first.image
        ),
        "{subjects:?} does not name {}",
        first.image
    );
    check_predicate(&statement["predicate"], ctx.path());

    // The provenance target writes the same predicate.
    let no_proxy = format!("build-arg:no_proxy={PROXY_MARK}");
    let dest = super::engine3::local_build(
        ctx.path(),
        &pool,
        &["--opt", "target=provenance", "--opt", &no_proxy],
    );
    let path = dest.path().join(FILE);
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(file, statement["predicate"]);
    // The in-toto schema of the SLSA provenance v1 predicate accepts it.
    let checked = check_intoto(&["predicate", PREDICATE_TYPE, path.to_str().unwrap()]);
    assert!(checked.ok, "{}", checked.text);

    // Without it, no attestation; BuildKit's own provenance gives a new
    // index on every build (its start and end times, its invocation id).
    // hello shows it as well as gcc, in a fraction of the time.
    let hello = example_context("hello");
    let plain = engine3_build(hello.path(), &pool, &[]);
    assert!(plain.statement.is_none() && plain.types.is_empty());
    let theirs = ["--opt", "attest:provenance=mode=min"];
    let a = engine3_build(hello.path(), &pool, &theirs);
    let b = engine3_build(hello.path(), &pool, &theirs);
    assert!(
        a.types
            .iter()
            .any(|t| t.starts_with("https://slsa.dev/provenance/")),
        "{:?}",
        a.types
    );
    assert_eq!(a.image, plain.image, "the image itself is the same");
    assert_ne!(a.index, b.index, "BuildKit's provenance reproduced");
}

#[test]
#[ignore = "needs docker buildx (engine 26); scripts/test.sh runs it"]
fn buildx_provenance_reproduces_and_lists_every_blob() {
    let h = harness();
    assert_eq!(h.engine(), "26", "run with REPRO_ENGINE=26 (docker buildx)");
    let pool = PoolServer::start(h.pool_dir());
    let ctx = example_context("gcc");
    let build = || {
        let dir = tempfile::tempdir().unwrap();
        let oci = dir.path().join("image");
        let mut cmd: Command = h.docker();
        cmd.args(["buildx", "build", "--progress=plain", "--provenance=false"])
            .args(example_args(&pool))
            .args(["--build-arg", "REPRO_PROVENANCE=1"])
            .args(["--build-arg", &format!("no_proxy={PROXY_MARK}")])
            .arg("--output")
            .arg(format!(
                "type=oci,dest={},tar=false,name={NAME}",
                oci.display()
            ))
            .arg("-f")
            .arg(ctx.path().join("repro.yaml"))
            .arg(ctx.path());
        let r = run(&mut cmd);
        assert!(r.ok, "{}", r.text);
        read_attested(&oci)
    };
    let first = build();
    let second = build();
    assert_eq!(
        first.index, second.index,
        "two --no-cache builds with the provenance gave two indexes"
    );
    let statement = first.statement.expect("our provenance attestation");
    check_predicate(&statement["predicate"], ctx.path());
}
