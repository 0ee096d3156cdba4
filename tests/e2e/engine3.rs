//! Engine 3: standalone BuildKit v0.26.3, driven with `buildctl build
//! --frontend gateway.v0` as its users run it, the frontend image pulled
//! from the local registry. buildkitd runs beside dockerd (setup.sh starts
//! it), so these tests do not depend on which Docker Engine is up; they are
//! ignored by default and `scripts/test.sh` runs them after the two Docker
//! engines (`cargo test --test tests engine3 -- --ignored`).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::pool::{Fault, PoolServer};
use crate::support::{
    FAILING_STEP_LINES, Run, check_release_lines, corpus_context, example_context,
    failing_step_recipe, harness, keep_rootfs_record, lock_entries, lock_entry, marked_lines,
    oci_json, run, without_release_lines,
};

/// Where this engine's exports go for the cross-engine check.
pub fn out_dir() -> PathBuf {
    Path::new(harness().get("HARNESS_DIR"))
        .join("out")
        .join("3")
}

/// A `buildctl build` of `recipe` (its folder is the `dockerfile` local)
/// with `ctx` as the context, the harness's base and `mirror`, and `extra`
/// buildctl arguments.
pub(super) fn buildctl(recipe: &Path, ctx: &Path, mirror: &str, extra: &[&str]) -> Run {
    let h = harness();
    let third_party = h.get("E3_MISSING");
    assert!(third_party.is_empty(), "{third_party}");
    let mut cmd = Command::new(h.get("BUILDCTL"));
    cmd.args(["--addr", h.get("E3_ADDR"), "build", "--progress=plain"])
        .args(["--frontend", "gateway.v0", "--opt"])
        .arg(format!("source={}", h.get("E3_FRONTEND_REF")))
        .arg("--local")
        .arg(format!("context={}", ctx.display()))
        .arg("--local")
        .arg(format!(
            "dockerfile={}",
            recipe.parent().expect("recipe folder").display()
        ))
        .arg("--opt")
        .arg(format!(
            "filename={}",
            recipe.file_name().expect("recipe name").to_string_lossy()
        ))
        .arg("--opt")
        .arg(format!("build-arg:BASE={}", h.base_ref()))
        .arg("--opt")
        .arg(format!("build-arg:MIRROR={mirror}"))
        .args(extra);
    run(&mut cmd)
}

/// The digests buildctl's `--metadata-file` reports.
fn metadata(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("metadata file")).expect("metadata JSON")
}

/// What an OCI build reported.
struct OciBuild {
    /// The build output (plain progress).
    text: String,
    manifest: String,
    config: String,
    /// The image manifest's annotations, read from the OCI tar.
    annotations: serde_json::Value,
}

/// Builds the example context `ctx` with `--output type=oci` and `extra`
/// buildctl arguments; the digests come from `--metadata-file`.
fn oci_build(ctx: &Path, pool: &PoolServer, extra: &[&str]) -> OciBuild {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta.json");
    let output = format!("type=oci,dest={}", dir.path().join("image.tar").display());
    let meta_arg = meta.display().to_string();
    let mut args = vec!["--output", &output, "--metadata-file", &meta_arg];
    args.extend_from_slice(extra);
    let r = buildctl(&ctx.join("repro.yaml"), ctx, &pool.url, &args);
    assert!(r.ok, "{} on engine 3:\n{}", ctx.display(), r.text);
    let m = metadata(&meta);
    let digest = |key: &str| m[key].as_str().unwrap_or_default().to_string();
    let (manifest, config) = (
        digest("containerimage.digest"),
        digest("containerimage.config.digest"),
    );
    assert!(
        manifest.starts_with("sha256:") && config.starts_with("sha256:"),
        "no digests in the metadata: {m}"
    );
    // The manifest blob, for its annotations.
    let blob = format!("blobs/sha256/{}", manifest.trim_start_matches("sha256:"));
    let x = run(Command::new("tar")
        .arg("-xf")
        .arg(dir.path().join("image.tar"))
        .arg("-C")
        .arg(dir.path())
        .arg(&blob));
    assert!(x.ok, "{}", x.text);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(&blob)).unwrap()).unwrap();
    OciBuild {
        text: r.text,
        manifest,
        config,
        annotations: json["annotations"].clone(),
    }
}

fn examples_reproduce(example: &str) {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context(example);
    let first = oci_build(ctx.path(), &pool, &["--no-cache"]);
    let second = oci_build(ctx.path(), &pool, &["--no-cache"]);
    assert_eq!(
        first.manifest, second.manifest,
        "{example}: two --no-cache builds, two manifests"
    );
    assert_eq!(first.config, second.config);
    let c1 = first.config;
    // The rootfs and the config digest, for the three-way check.
    let out = out_dir();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(format!("{example}.config-digest")), &c1).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("rootfs.tar");
    let r = buildctl(
        &ctx.path().join("repro.yaml"),
        ctx.path(),
        &pool.url,
        &["--output", &format!("type=tar,dest={}", dest.display())],
    );
    assert!(r.ok, "{}", r.text);
    keep_rootfs_record(&dest, &out, example);
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_hello_reproduces_as_oci() {
    examples_reproduce("hello");
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_gcc_reproduces_as_oci() {
    examples_reproduce("gcc");
}

// Issue 24: on the engine that keeps annotations and attestations, the keys
// set reproduces, and what was removed is in the manifest's annotations and
// in the SBOM, named by file.
#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_install_time_keys_are_removed_annotated_and_the_image_reproduces() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = corpus_context("keys");
    let first = oci_build(ctx.path(), &pool, &["--no-cache"]);
    let second = oci_build(ctx.path(), &pool, &["--no-cache"]);
    assert_eq!(first.manifest, second.manifest, "keys: two manifests");
    assert!(
        first.text.contains(
            "removed /etc/ssh/ssh_host_rsa_key: SSH host key, made by package openssh-server"
        ),
        "{}",
        first.text
    );
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    let output = format!("type=oci,dest={}", tar.display());
    let r = buildctl(
        &ctx.path().join("repro.yaml"),
        ctx.path(),
        &pool.url,
        &["--output", &output, "--opt", "attest:sbom="],
    );
    assert!(r.ok, "{}", r.text);
    let oci = dir.path().join("oci");
    std::fs::create_dir(&oci).unwrap();
    let x = run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&oci));
    assert!(x.ok, "{}", x.text);
    let index = oci_json(&oci, "");
    let top = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let image_index = oci_json(&oci, &top);
    // With an attestation the image is an index: its image manifest, and
    // the attestation manifest beside it.
    let manifests = image_index["manifests"].as_array().expect("an index");
    let image = manifests
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .expect("the amd64 image");
    let manifest = oci_json(&oci, image["digest"].as_str().unwrap());
    let removed = manifest["annotations"]["repro-frontend.secrets.removed"]
        .as_str()
        .unwrap_or_else(|| panic!("no removal annotation in {manifest}"));
    for path in [
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_ed25519_key.pub",
        "/etc/ssl/private/ssl-cert-snakeoil.key",
    ] {
        assert!(
            removed.split(',').any(|p| p == path),
            "{path} not in {removed}"
        );
    }
    assert_eq!(
        manifest["annotations"]["repro-frontend.secrets.emptied"],
        "/etc/machine-id"
    );
    // The SBOM's image package carries one annotation per file.
    let attestation = manifests
        .iter()
        .find(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .expect("the attestation manifest");
    let att = oci_json(&oci, attestation["digest"].as_str().unwrap());
    let layer = att["layers"][0]["digest"].as_str().unwrap();
    let statement = oci_json(&oci, layer);
    let notes = statement["predicate"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["SPDXID"] == "SPDXRef-Image")
        .and_then(|p| p["annotations"].as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        notes.iter().any(|n| n["comment"]
            .as_str()
            .unwrap_or_default()
            .starts_with("removed /etc/ssh/ssh_host_ed25519_key: SSH host key")),
        "{notes:?}"
    );
}

/// A `buildctl` build of the recipe in `ctx` with `extra` buildctl
/// arguments and `--output type=local`; checks it succeeded and returns the
/// output folder.
pub(super) fn local_build(ctx: &Path, pool: &PoolServer, extra: &[&str]) -> tempfile::TempDir {
    let dest = tempfile::tempdir().unwrap();
    let output = format!("type=local,dest={}", dest.path().display());
    let mut args = extra.to_vec();
    args.extend(["--output", &output]);
    let r = buildctl(&ctx.join("repro.yaml"), ctx, &pool.url, &args);
    assert!(r.ok, "{}", r.text);
    dest
}

/// Runs `--opt target=<target>` on an example with `--output type=local`;
/// returns the example's context and the output folder.
fn target_build(example: &str, target: &str) -> (tempfile::TempDir, tempfile::TempDir) {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context(example);
    let dest = local_build(ctx.path(), &pool, &["--opt", &format!("target={target}")]);
    (ctx, dest)
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_lock_target_writes_the_harness_lockfile() {
    let (_ctx, dest) = target_build("hello", "lock");
    let written = std::fs::read_to_string(dest.path().join("SHA256SUMS-amd64")).unwrap();
    let harness_lock = std::fs::read_to_string(harness().lockfile("hello")).unwrap();
    assert_eq!(without_release_lines(&written), harness_lock);
    check_release_lines(&written);
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_packages_target_writes_the_verified_blobs() {
    let (ctx, dest) = target_build("gcc", "packages");
    for e in lock_entries(&ctx.path().join("SHA256SUMS-amd64")) {
        let base = e.basename();
        let bytes = std::fs::read(dest.path().join(base))
            .unwrap_or_else(|err| panic!("{base} not written: {err}"));
        assert_eq!(hex::encode(Sha256::digest(&bytes)), e.sha256, "{base}");
    }
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_a_blob_with_wrong_bytes_fails_naming_it() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("hello");
    let (sum, name) = lock_entry(ctx.path(), "/hello_");
    pool.fault(&name, Fault::WrongBytes);
    let r = buildctl(
        &ctx.path().join("repro.yaml"),
        ctx.path(),
        &pool.url,
        &["--no-cache"],
    );
    assert!(!r.ok, "the build should fail:\n{}", r.text);
    for needle in [name.clone(), format!("sha256:{sum}")] {
        assert!(r.text.contains(&needle), "no {needle:?} in:\n{}", r.text);
    }
    assert!(!r.text.contains("installing"), "{}", r.text);
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_a_recipe_error_reaches_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("repro.yaml");
    std::fs::write(
        &recipe,
        format!("base: {}\nsteps:\n  - rnu: echo hi\n", harness().base_ref()),
    )
    .unwrap();
    let r = buildctl(&recipe, dir.path(), "http://127.0.0.1:9", &[]);
    assert!(!r.ok, "{}", r.text);
    assert!(
        r.text.contains("repro.yaml:3:5: unknown step kind \"rnu\""),
        "{}",
        r.text
    );
    assert_eq!(marked_lines(&r.text), ["  - rnu: echo hi"], "{}", r.text);
}

/// Issue 12: buildctl prints the recipe lines of a failing `run` step.
#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_a_failing_step_shows_its_recipe_lines() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("repro.yaml");
    std::fs::write(&recipe, failing_step_recipe(harness().base_ref())).unwrap();
    let r = buildctl(&recipe, dir.path(), "http://127.0.0.1:9", &[]);
    assert!(!r.ok, "{}", r.text);
    assert!(r.text.contains("exit code: 3"), "{}", r.text);
    assert_eq!(marked_lines(&r.text), FAILING_STEP_LINES, "{}", r.text);
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_platform_opt_builds_for_amd64() {
    let pool = PoolServer::start(harness().pool_dir());
    let ctx = example_context("hello");
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("image");
    let r = buildctl(
        &ctx.path().join("repro.yaml"),
        ctx.path(),
        &pool.url,
        &[
            "--opt",
            "platform=linux/amd64",
            "--output",
            &format!("type=oci,dest={},tar=false", oci.display()),
        ],
    );
    assert!(r.ok, "{}", r.text);
    // The config blob the index points at names the platform.
    let index = oci_json(&oci, "");
    let manifest = oci_json(&oci, index["manifests"][0]["digest"].as_str().unwrap());
    let config = oci_json(&oci, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["architecture"], "amd64", "{config}");
    assert_eq!(config["os"], "linux", "{config}");
}

/// The build's steps that ran, by progress name: a step ran when its
/// process printed (`#N 0.123 text`), or when it is neither CACHED nor
/// brought back from a cache (`extracting sha256:...`, a cached layer the
/// engine unpacks because the frontend reads the image).
fn ran_steps(text: &str) -> Vec<String> {
    let mut names: std::collections::BTreeMap<String, String> = Default::default();
    let mut cached = std::collections::BTreeSet::new();
    let mut printed = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if !id.starts_with('#') {
            continue;
        }
        let timed = rest
            .split_once(' ')
            .is_some_and(|(t, _)| t.contains('.') && t.parse::<f64>().is_ok());
        if rest == "CACHED" || rest.starts_with("extracting sha256:") {
            cached.insert(id.to_string());
        } else if timed {
            printed.insert(id.to_string());
        } else if !names.contains_key(id)
            && !rest.starts_with("DONE")
            && !rest.starts_with("sha256:")
            && !rest.starts_with(|c: char| c.is_ascii_digit())
        {
            names.insert(id.to_string(), rest.to_string());
        }
    }
    names
        .into_iter()
        .filter(|(id, _)| printed.contains(id) || !cached.contains(id))
        .map(|(_, n)| n)
        .collect()
}

// Ephemeral CI builders share work through an exported cache: after the
// builder's state is wiped, a build importing it must run nothing again.
#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_a_registry_cache_brings_every_step_back() {
    let h = harness();
    let pool = PoolServer::start(h.pool_dir());
    let ctx = example_context("hello");
    // A step that makes a private key the recipe removes: the image's
    // record of it must come back from the cache too (its annotations are
    // in the manifest compared below).
    let recipe = ctx.path().join("repro.yaml");
    let text = std::fs::read_to_string(&recipe).unwrap().replace(
        "steps:\n",
        "private-keys:\n  remove: [/etc/app/demo.key]\nsteps:\n  - run: mkdir -p /etc/app && printf '%s\\n' '-----BEGIN EC PRIVATE KEY-----' MHc '-----END EC PRIVATE KEY-----' > /etc/app/demo.key\n",
    );
    std::fs::write(&recipe, text).unwrap();
    let cache = format!(
        "{}/repro/cache:hello-{}",
        h.get("REGISTRY"),
        std::process::id()
    );
    let export = format!("type=registry,ref={cache},mode=max");
    let first = oci_build(
        ctx.path(),
        &pool,
        &["--no-cache", "--export-cache", &export],
    );
    let prune =
        run(Command::new(h.get("BUILDCTL")).args(["--addr", h.get("E3_ADDR"), "prune", "--all"]));
    assert!(prune.ok, "{}", prune.text);
    let hits_before = pool.hits().len();
    let import = format!("type=registry,ref={cache}");
    let second = oci_build(ctx.path(), &pool, &["--import-cache", &import]);
    assert_eq!(
        first.annotations["repro-frontend.secrets.removed"], "/etc/app/demo.key",
        "{}",
        first.text
    );
    assert_eq!(
        first.manifest, second.manifest,
        "the imported build gave another image"
    );
    let text = second.text;
    let ran: Vec<String> = ran_steps(&text)
        .into_iter()
        .filter(|n| {
            n.starts_with("install ")
                || n.starts_with("run ")
                || n.starts_with("normalize")
                || n.starts_with("gather ")
        })
        .collect();
    assert!(ran.is_empty(), "steps ran again: {ran:?}\n{text}");
    assert_eq!(
        pool.hits().len(),
        hits_before,
        "blobs were fetched again: {:?}",
        pool.hits()
    );
}
