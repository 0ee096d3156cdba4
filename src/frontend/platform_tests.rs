//! Several platforms in one build, through the fake LLBBridge: a ref per
//! platform with `refs.platforms` and a config each, every platform with its
//! own lockfile and base manifest, the lock target's lockfiles side by side,
//! and the refusal on Docker's classic image store. Tests only.

use bollard_buildkit_proto::moby::buildkit::v1::frontend::result;
use bollard_buildkit_proto::pb;

use super::gateway::fake::*;

const SOURCE: (&str, &str) = ("source", "repro-frontend:v0");
const BOTH: (&str, &str) = ("platform", "linux/amd64,linux/arm64");

fn recipe(sums: &str) -> String {
    format!(
        "base: {BASE}\npackages:\n  install: [hello]\n  sums: {sums}\n  providers: [\"http://m.example/{{{{.Name}}}}\"]\nimage:\n  cmd: [hello]\n"
    )
}

fn sums(arch: &str) -> String {
    format!(
        "{}  pool/main/h/hello/hello_2.10-3_{arch}.deb\n",
        if arch == "amd64" { "a" } else { "b" }.repeat(64)
    )
}

fn two_arch_fake(sums_name: &str) -> Fake {
    with_files(&[
        ("dockerfile/repro.yaml", &recipe(sums_name)),
        ("context/SHA256SUMS-amd64", &sums("amd64")),
        ("context/SHA256SUMS-arm64", &sums("arm64")),
    ])
}

/// The source identifiers and HTTP URLs of a definition, and the platform
/// each op carries (architecture, or "" for the worker's own).
fn ops_with_platforms(def: &pb::Definition) -> Vec<(String, String)> {
    decode_ops(def)
        .into_iter()
        .filter_map(|op| {
            let arch = op
                .platform
                .as_ref()
                .map_or(String::new(), |p| p.architecture.clone());
            let what = match &op.op {
                Some(pb::op::Op::Source(s)) => s.identifier.clone(),
                Some(pb::op::Op::Exec(e)) => {
                    format!("exec {}", e.meta.as_ref().unwrap().args.join(" "))
                }
                Some(pb::op::Op::File(_)) => "file".to_string(),
                _ => return None,
            };
            Some((what, arch))
        })
        .collect()
}

#[tokio::test]
async fn two_platforms_return_a_ref_each_with_refs_platforms_and_a_config_each() {
    let fake = two_arch_fake("SHA256SUMS-${TARGETARCH}");
    let ret = build(fake.clone(), vec![SOURCE, BOTH]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let res = ret.result.unwrap();
    let Some(result::Result::Refs(map)) = res.result else {
        panic!("a ref map")
    };
    let mut keys: Vec<&String> = map.refs.keys().collect();
    keys.sort();
    assert_eq!(keys, ["linux/amd64", "linux/arm64"]);
    let listed: serde_json::Value =
        serde_json::from_slice(&res.metadata["refs.platforms"]).unwrap();
    assert_eq!(
        listed,
        serde_json::json!({"Platforms": [
            {"ID": "linux/amd64", "Platform": {"architecture": "amd64", "os": "linux"}},
            {"ID": "linux/arm64", "Platform": {"architecture": "arm64", "os": "linux"}},
        ]})
    );
    for arch in ["amd64", "arm64"] {
        let config: serde_json::Value =
            serde_json::from_slice(&res.metadata[&format!("containerimage.config/linux/{arch}")])
                .unwrap();
        assert_eq!(config["architecture"], arch);
    }
    assert!(!res.metadata.contains_key("containerimage.config"));

    // Each platform's graph: its own lockfile's blob, its base manifest and
    // install exec on its platform; our fetch and normalize steps on the
    // worker's own.
    let st = fake.0.lock().unwrap();
    let solved: Vec<Vec<(String, String)>> = st
        .solved
        .iter()
        .map(ops_with_platforms)
        .filter(|ops| ops.iter().any(|(w, _)| w.contains(" normalize ")))
        .collect();
    // Each image graph is solved twice: for the image, and for the record
    // of removed keys beside it (the same ops).
    let mut solved = solved;
    solved.dedup();
    assert_eq!(solved.len(), 2, "one image graph per platform");
    for (ops, arch) in solved.iter().zip(["amd64", "arm64"]) {
        let text = format!("{ops:?}");
        assert!(text.contains(&format!("hello_2.10-3_{arch}.deb")), "{text}");
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        assert!(!text.contains(&format!("_{other}.deb")), "{text}");
        let base = ops
            .iter()
            .find(|(w, _)| w == &format!("docker-image://{BASE}"))
            .expect("the base image");
        assert_eq!(base.1, arch, "the base's manifest for {arch}");
        let install = ops
            .iter()
            .find(|(w, _)| w.contains(" install "))
            .expect("an install exec");
        assert_eq!(install.1, arch, "{install:?}");
        for (what, on) in ops.iter().filter(|(w, _)| {
            w.contains(" normalize ") || w.contains(" fetch ") || w.contains("repro-frontend:v0")
        }) {
            assert_eq!(on, "", "{what} runs on the worker's own platform");
        }
    }
}

#[tokio::test]
async fn an_sbom_attestation_is_keyed_by_each_platform() {
    let fake = two_arch_fake("SHA256SUMS-${TARGETARCH}");
    let ret = build(fake, vec![SOURCE, BOTH, ("attest:sbom", "")]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let mut keys: Vec<String> = ret.result.unwrap().attestations.into_keys().collect();
    keys.sort();
    assert_eq!(keys, ["linux/amd64", "linux/arm64"]);
}

#[tokio::test]
async fn the_classic_image_store_refuses_a_multi_platform_image_before_solving() {
    let fake = two_arch_fake("SHA256SUMS-${TARGETARCH}");
    fake.0.lock().unwrap().snapshotter = None;
    let ret = build(fake.clone(), vec![SOURCE, BOTH]).await;
    let err = error_of(&ret);
    assert!(
        err.starts_with("this engine cannot keep a multi-platform image (linux/amd64, linux/arm64): its worker is Docker's classic image store"),
        "{err}"
    );
    assert!(err.contains("--platform linux/amd64"), "{err}");
    assert!(fake.0.lock().unwrap().solved.is_empty(), "nothing solved");
}

#[tokio::test]
async fn the_lock_target_writes_each_platforms_lockfile_side_by_side() {
    let fake = two_arch_fake("SHA256SUMS-${TARGETARCH}");
    // Docker 20.10's classic store too: the lockfiles are one plain result.
    fake.0.lock().unwrap().snapshotter = None;
    let ret = build(fake.clone(), vec![SOURCE, BOTH, ("target", "lock")]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let Some(result::Result::Ref(_)) = ret.result.unwrap().result else {
        panic!("one ref")
    };
    let st = fake.0.lock().unwrap();
    let def = st.solved.last().unwrap();
    let ops = decode_ops(def);
    let locks: Vec<String> = ops_with_platforms(def)
        .into_iter()
        .filter(|(w, _)| w.contains(" lock "))
        .map(|(w, arch)| format!("{arch}: {}", w.rsplit(" --out ").next().unwrap()))
        .collect();
    assert_eq!(
        locks,
        [
            "amd64: /out/SHA256SUMS-amd64 hello",
            "arm64: /out/SHA256SUMS-arm64 hello"
        ]
    );
    let copies: Vec<String> = ops
        .iter()
        .filter_map(|o| match &o.op {
            Some(pb::op::Op::File(f)) => Some(f.actions.iter().filter_map(|a| match &a.action {
                Some(pb::file_action::Action::Copy(c)) => Some(c.dest.clone()),
                _ => None,
            })),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(copies, ["/SHA256SUMS-amd64", "/SHA256SUMS-arm64"]);
    assert!(
        def.metadata.values().all(|m| m.ignore_cache),
        "the lock target always resolves again"
    );
}

#[tokio::test]
async fn one_lockfile_name_for_two_platforms_is_refused_with_where_it_is_named() {
    let fake = with_files(&[
        ("dockerfile/repro.yaml", &recipe("SHA256SUMS")),
        ("context/SHA256SUMS", &sums("amd64")),
    ]);
    let ret = build(fake, vec![SOURCE, BOTH, ("target", "lock")]).await;
    assert_eq!(
        error_of(&ret),
        "repro.yaml:4:9: packages.sums names the same lockfile \"SHA256SUMS\" for linux/amd64 and linux/arm64; put ${TARGETARCH} in it (SHA256SUMS-${TARGETARCH}) so each platform has its own"
    );
}

// Regression: the helper image was the `source` tag, resolved again at
// solve time for every op that named it.
#[tokio::test]
async fn every_platforms_helper_steps_run_the_frontend_resolved_once_by_digest() {
    let fake = two_arch_fake("SHA256SUMS-${TARGETARCH}");
    let ret = build(fake.clone(), vec![SOURCE, BOTH]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let st = fake.0.lock().unwrap();
    let asked: Vec<&String> = st
        .resolved
        .iter()
        .filter(|r| r.contains("frontend"))
        .collect();
    assert_eq!(asked, [FRONTEND_TAG], "the frontend resolved once");
    let pinned = format!("docker-image://{FRONTEND_TAG}@{FRONTEND_DIGEST}");
    let images: Vec<String> = st
        .solved
        .iter()
        .flat_map(ops_with_platforms)
        .map(|(what, _)| what)
        .filter(|w| w.starts_with("docker-image://") && w.contains("frontend"))
        .collect();
    assert!(!images.is_empty());
    assert!(images.iter().all(|w| *w == pinned), "{images:?}");
}
