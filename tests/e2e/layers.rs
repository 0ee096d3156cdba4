//! `image.layers: base`: the base image's layers as published plus one
//! reproducible layer of what differs, on workers with the overlayfs
//! snapshotter (Docker 26.1 with the containerd image store, engine 3);
//! Docker 20.10's classic store squashes and says so in the progress output.

use std::path::Path;
use std::process::Command;

use super::ImageGuard;
use crate::support::{
    Run, docker_build, docker_build_output, docker_run, harness, layer_digests_of, oci_json,
    push_image, registry_json, run,
};

/// Where these tests push.
const REPOSITORY: &str = "repro/layers-test";

/// A recipe on `base` with steps that delete a base file, change a base
/// file's mode only, replace a base directory with a file, and hard-link a
/// base file under a new name.
fn cases_recipe(base: &str) -> String {
    format!(
        "# syntax=repro-frontend:v0\nargs: {{BASE: \"{base}\", MIRROR: \"\"}}\nbase: ${{BASE}}\nsteps:\n  - run: rm /etc/issue.net\n  - run: chmod 600 /etc/debian_version\n  - run: rm -r /etc/skel && echo file > /etc/skel\n  - run: ln /usr/bin/base64 /usr/local/bin/b64\nimage:\n  layers: base\n  cmd: [\"/bin/sh\"]\n"
    )
}

/// The folder holding `recipe` as repro.yaml.
fn context(recipe: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("repro.yaml"), recipe).unwrap();
    dir
}

/// Two `--no-cache` builds of the recipe in `ctx`; the image ID after
/// checking both gave the same, and the first build's output.
fn build_twice(ctx: &Path, base: &str) -> (String, String) {
    let args = [
        "--no-cache".to_string(),
        "--build-arg".to_string(),
        format!("BASE={base}"),
    ];
    let recipe = ctx.join("repro.yaml");
    let (first, id1) = docker_build(&recipe, ctx, &args);
    assert!(first.ok, "{}", first.text);
    let (second, id2) = docker_build(&recipe, ctx, &args);
    assert!(second.ok, "{}", second.text);
    let id = id1.expect("an image id");
    assert_eq!(Some(&id), id2.as_ref(), "two --no-cache builds differ");
    (id, first.text)
}

/// `docker image inspect` of one field, as JSON.
fn inspect(image: &str, field: &str) -> serde_json::Value {
    let r = run(harness()
        .docker()
        .args(["image", "inspect", "--format"])
        .arg(format!("{{{{json {field}}}}}"))
        .arg(image));
    assert!(r.ok, "{}", r.text);
    serde_json::from_str(r.text.trim()).unwrap()
}

/// What the steps did, seen from a container of the image. `squashed`:
/// the hard link made across the boundary is one file with two names; in a
/// layer on the base it is a copy (the base's file is unchanged, so the
/// layer does not carry it, and a tar's hard link points inside its layer).
fn check_in_a_container(id: &str, squashed: bool) {
    let r: Run = docker_run(&[
        id,
        "sh",
        "-c",
        "test ! -e /etc/issue.net && echo gone; stat -c %a /etc/debian_version; cat /etc/skel; cmp /usr/bin/base64 /usr/local/bin/b64 && echo same; stat -c %i:%h /usr/bin/base64 /usr/local/bin/b64",
    ]);
    assert!(r.ok, "{}", r.text);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines[..4], ["gone", "600", "file", "same"], "{}", r.text);
    match squashed {
        true => assert!(
            lines[4] == lines[5] && lines[4].ends_with(":2"),
            "{}",
            r.text
        ),
        false => assert!(
            lines[4] != lines[5] && lines[5].ends_with(":1"),
            "{}",
            r.text
        ),
    }
}

/// The manifest of `name@sha256:...` in the registry, and its layers'
/// digests.
fn layer_digests(reference: &str) -> (serde_json::Value, Vec<String>) {
    let (name, digest) = reference.split_once('@').unwrap();
    let m = registry_json(name, "manifests", digest);
    let layers = layer_digests_of(&m);
    (m, layers)
}

/// The names in a gzip layer blob of the registry.
fn layer_names(name: &str, digest: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("layer.tar.gz");
    let (host, path) = name.split_once('/').unwrap();
    let r = run(Command::new("curl")
        .args(["-fsS", "-o"])
        .arg(&blob)
        .arg(format!("http://{host}/v2/{path}/blobs/{digest}")));
    assert!(r.ok, "{}", r.text);
    let r = run(Command::new("tar").arg("-tzf").arg(&blob));
    assert!(r.ok, "{}", r.text);
    r.text
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn layers_base_keeps_the_base_layers_and_adds_one_reproducible_delta() {
    let h = harness();
    let base = h.base_ref();
    let ctx = context(&cases_recipe(base));
    let (id, text) = build_twice(ctx.path(), base);
    let _image = ImageGuard(Some(id.clone()));
    let diff_ids = inspect(&id, ".RootFS.Layers");
    check_in_a_container(&id, h.engine() == "20");
    if h.engine() == "20" {
        // Its classic image store would stamp the whiteouts with the wall
        // clock: one squashed layer, and a warning.
        assert!(
            text.contains("(warning: image.layers: base needs the overlayfs snapshotter, and this engine's is Docker's classic image store"),
            "{text}"
        );
        assert_eq!(diff_ids.as_array().unwrap().len(), 1, "{diff_ids}");
        return;
    }
    let base_ids = inspect(base, ".RootFS.Layers");
    let n = base_ids.as_array().unwrap().len();
    assert_eq!(diff_ids.as_array().unwrap().len(), n + 1, "{diff_ids}");
    assert_eq!(
        diff_ids.as_array().unwrap()[..n],
        base_ids.as_array().unwrap()[..]
    );

    // Pushed, the base's layers are the very blobs the base was pushed as.
    let published = push_image(&id, REPOSITORY, &format!("e2e-{}-cases", h.engine()));
    let (manifest, ours) = layer_digests(&published);
    let (_, theirs) = layer_digests(base);
    assert_eq!(ours[..n], theirs[..], "the base's layers were re-encoded");
    let (name, _) = published.split_once('@').unwrap();
    // One history entry per layer; ours last, at the epoch.
    let config = registry_json(
        name,
        "blobs",
        manifest["config"]["digest"].as_str().unwrap(),
    );
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), n + 1, "{config}");
    assert_eq!(history[n]["created"], config["created"]);
    assert_eq!(config["rootfs"]["diff_ids"], diff_ids);
    let size = manifest["layers"][n]["size"].as_u64().unwrap();
    assert!(size < 1_000_000, "the delta layer is {size} bytes");
    // For the cross-engine check against engine 3's.
    save_delta_diff_id(h.engine(), &diff_ids[n]);
    let names = layer_names(name, &ours[n]);
    for want in [
        "etc/.wh.issue.net",
        "etc/debian_version",
        "etc/skel",
        "usr/local/bin/b64",
    ] {
        assert!(
            names.iter().any(|x| x == want),
            "{want} not in the delta: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|x| x == "usr/bin/ls"),
        "an unchanged file is in the delta"
    );

    // The verify target rebuilds it and finds the published image, unpacked
    // from the base's blobs and the delta, equal file by file to the one
    // normalized tree (the steps that read the rootfs do not see the merge).
    let out = tempfile::tempdir().unwrap();
    let r = docker_build_output(
        &ctx.path().join("repro.yaml"),
        ctx.path(),
        &[
            "--no-cache".to_string(),
            "--build-arg".to_string(),
            format!("BASE={base}"),
            "--target".to_string(),
            "verify".to_string(),
            "--build-arg".to_string(),
            format!("REPRO_VERIFY={published}"),
            "--output".to_string(),
            format!("type=local,dest={}", out.path().display()),
        ],
    );
    assert!(r.ok, "{}", r.text);
    assert!(out.path().join("verify.intoto.json").exists());

    // That image as the base of another: three layers, the first two kept.
    let on_top = format!(
        "# syntax=repro-frontend:v0\nargs: {{BASE: \"{published}\"}}\nbase: ${{BASE}}\nsteps:\n  - run: echo more > /more\nimage:\n  layers: base\n"
    );
    let ctx2 = context(&on_top);
    let (id2, _) = build_twice(ctx2.path(), &published);
    let _image2 = ImageGuard(Some(id2.clone()));
    let r = docker_run(&[&id2, "cat", "/more", "/etc/skel"]);
    assert_eq!(r.text, "more\nfile\n", "{}", r.text);
    let published2 = push_image(&id2, REPOSITORY, &format!("e2e-{}-on-top", h.engine()));
    let (_, layers2) = layer_digests(&published2);
    assert_eq!(layers2.len(), n + 2);
    assert_eq!(layers2[..n + 1], ours[..]);
}

/// Leaves an engine's delta diff_id where the cross-engine check reads it.
fn save_delta_diff_id(engine: &str, diff_id: &serde_json::Value) {
    let out = Path::new(harness().get("HARNESS_DIR"))
        .join("out")
        .join(engine);
    std::fs::create_dir_all(&out).unwrap();
    let diff_id = diff_id.as_str().expect("a diff_id");
    std::fs::write(out.join("layers-delta.diff-id"), diff_id).unwrap();
}

/// The cases recipe through buildctl with `--output type=oci`: the
/// manifest's digest, its layers' digests and the config's diff_ids.
fn engine3_cases(ctx: &Path) -> (String, Vec<String>, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("image");
    let r = super::engine3::buildctl(
        &ctx.join("repro.yaml"),
        ctx,
        "",
        &[
            "--no-cache",
            "--output",
            &format!("type=oci,dest={},tar=false", oci.display()),
        ],
    );
    assert!(r.ok, "{}", r.text);
    let top = oci_json(&oci, "");
    let digest = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest = oci_json(&oci, &digest);
    let layers = layer_digests_of(&manifest);
    let config = oci_json(&oci, manifest["config"]["digest"].as_str().unwrap());
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap().clone();
    (digest, layers, diff_ids)
}

#[test]
#[ignore = "engine 3 (buildkitd); scripts/test.sh runs it"]
fn engine3_layers_base_reproduces_and_keeps_the_base_blobs() {
    let h = harness();
    let ctx = context(&cases_recipe(h.base_ref()));
    let (first, layers, diff_ids) = engine3_cases(ctx.path());
    let (second, _, _) = engine3_cases(ctx.path());
    assert_eq!(first, second, "two --no-cache builds, two manifests");
    let (_, theirs) = layer_digests(h.base_ref());
    let n = theirs.len();
    assert_eq!(layers.len(), n + 1);
    assert_eq!(layers[..n], theirs[..], "the base's layers were re-encoded");
    save_delta_diff_id("3", &diff_ids[n]);
}
