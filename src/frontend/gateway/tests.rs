//! The gateway through the fake LLBBridge: one build's requests and the
//! Return it sends, for single-platform builds, subrequests and failures.
//! Tests only.

use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
    AttestationKind, InTotoSubjectKind, ReturnRequest, result,
};

use super::fake::*;

const SOURCE: (&str, &str) = ("source", "repro-frontend:v0");

fn recipe(body: &str) -> String {
    format!("# syntax=repro-frontend:v0\nbase: {BASE}\n{body}")
}

#[tokio::test]
async fn returns_the_image_with_its_config() {
    let r = recipe("image:\n  cmd: [hello]\n");
    let fake = with_files(&[("dockerfile/repro.yaml", &r)]);
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let result = ret.result.unwrap();
    let Some(result::Result::Ref(r)) = result.result else {
        panic!("no ref")
    };
    assert!(r.id.starts_with("ref-"));
    let config: serde_json::Value =
        serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
    assert_eq!(
        config["created"], "2024-01-01T00:00:00Z",
        "epoch defaults to the base's created time"
    );
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["hello"]));
    // The last solve is the image; its frontend image is pinned by digest.
    let st = fake.0.lock().unwrap();
    let ops = decode_ops(st.solved.last().unwrap());
    let idents: Vec<String> = ops
        .iter()
        .filter_map(|o| match &o.op {
            Some(bollard_buildkit_proto::pb::op::Op::Source(s)) => Some(s.identifier.clone()),
            _ => None,
        })
        .collect();
    assert!(
        idents.contains(&format!("docker-image://{FRONTEND_TAG}@{FRONTEND_DIGEST}")),
        "{idents:?}"
    );
    assert!(
        idents.contains(&format!("docker-image://{BASE}")),
        "{idents:?}"
    );
}

#[tokio::test]
async fn a_local_frontend_tag_is_run_by_tag_with_every_helper_checking_its_binary() {
    let fake = hello_with_a_provider();
    fake.0.lock().unwrap().frontend_local = true;
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let own = std::fs::read("/proc/self/exe").unwrap();
    let want = format!(
        "{}={}",
        crate::convert::FRONTEND_SHA256_ENV,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&own))
    );
    let st = fake.0.lock().unwrap();
    let ops = decode_ops(st.solved.last().unwrap());
    let mut helpers = 0;
    for op in &ops {
        match &op.op {
            Some(bollard_buildkit_proto::pb::op::Op::Source(s))
                if s.identifier.contains("frontend") =>
            {
                assert_eq!(s.identifier, format!("docker-image://{FRONTEND_TAG}"));
            }
            Some(bollard_buildkit_proto::pb::op::Op::Exec(e)) => {
                let meta = e.meta.as_ref().unwrap();
                if meta.args[0].ends_with("/repro-frontend") {
                    helpers += 1;
                    assert!(meta.env.contains(&want), "{:?}: {:?}", meta.args, meta.env);
                }
            }
            _ => {}
        }
    }
    assert!(
        helpers >= 2,
        "fetch, install and normalize run our binary ({helpers})"
    );
}

#[tokio::test]
async fn recipe_errors_come_back_as_the_returned_status() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe("stesp: []\n"))]);
    let ret = build(fake, vec![SOURCE]).await;
    assert!(ret.result.is_none());
    assert!(
        error_of(&ret).starts_with("repro.yaml:3:1: unknown key \"stesp\""),
        "{}",
        error_of(&ret)
    );
}

#[tokio::test]
async fn the_filename_opt_names_the_recipe() {
    let fake = with_files(&[("dockerfile/other.yaml", "base: x\nnope: 1\n")]);
    let ret = build(fake, vec![SOURCE, ("filename", "other.yaml")]).await;
    assert!(
        error_of(&ret).starts_with("other.yaml:2:1:"),
        "{}",
        error_of(&ret)
    );
}

#[tokio::test]
async fn a_missing_recipe_is_reported_by_name() {
    let ret = build(with_files(&[]), vec![SOURCE]).await;
    assert!(
        error_of(&ret).contains("cannot read the recipe repro.yaml"),
        "{}",
        error_of(&ret)
    );
}

#[tokio::test]
async fn an_unpinned_base_gets_the_digest_to_paste() {
    let r = "base: 127.0.0.1:5000/repro/debian:bookworm\n";
    let ret = build(with_files(&[("dockerfile/repro.yaml", r)]), vec![SOURCE]).await;
    let want = format!("127.0.0.1:5000/repro/debian:bookworm@{DIGEST}");
    assert!(error_of(&ret).contains(&want), "{}", error_of(&ret));
    // Docker 20.10 resolves from its local store without a digest; the
    // frontend asks the registry for the digest to paste.
    let ret = build(
        with_files(&[("dockerfile/repro.yaml", r)]),
        vec![SOURCE, ("image-resolve-mode", "local")],
    )
    .await;
    assert!(error_of(&ret).contains(&want), "{}", error_of(&ret));
    // With the opt-out the build goes on, pinned to what was resolved.
    let r = "base: 127.0.0.1:5000/repro/debian:bookworm\nallow-unpinned-base: true\n";
    let fake = with_files(&[("dockerfile/repro.yaml", r)]);
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let st = fake.0.lock().unwrap();
    let def = st.solved.last().unwrap();
    let names: String = def
        .metadata
        .values()
        .filter_map(|m| m.description.get("llb.customname").cloned())
        .collect();
    assert!(names.contains("WARNING"), "{names}");
}

#[tokio::test]
async fn without_providers_the_base_images_sources_are_used() {
    let sums = format!(
        "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
        "a".repeat(64)
    );
    let r = recipe("packages:\n  sums: SHA256SUMS\n");
    let fake = with_files(&[
        ("dockerfile/repro.yaml", &r),
        ("context/SHA256SUMS", &sums),
        // The fake serves the base image's files under "context".
        (
            "context//etc/apt/sources.list",
            "deb http://m.example/debian bookworm main\n",
        ),
    ]);
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let st = fake.0.lock().unwrap();
    let ops = decode_ops(st.solved.last().unwrap());
    assert!(
        ops.iter().any(|o| matches!(&o.op,
        Some(bollard_buildkit_proto::pb::op::Op::Source(s))
            if s.identifier == "http://m.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"))
    );
}

/// A recipe with one http provider and a lockfile of hello.
fn hello_with_a_provider() -> Fake {
    let sums = format!(
        "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
        "a".repeat(64)
    );
    let r =
        recipe("packages:\n  sums: SHA256SUMS\n  providers: [\"http://m.example/{{.Name}}\"]\n");
    with_files(&[("dockerfile/repro.yaml", &r), ("context/SHA256SUMS", &sums)])
}

#[tokio::test]
async fn the_base_is_resolved_while_the_lockfile_is_read() {
    let fake = hello_with_a_provider();
    fake.0.lock().unwrap().resolve_waits_for_read = Some("SHA256SUMS".into());
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let st = fake.0.lock().unwrap();
    assert_eq!(st.reads[..2], ["repro.yaml", "SHA256SUMS"]);
    assert!(st.resolved.iter().any(|r| r == BASE), "{:?}", st.resolved);
}

#[tokio::test]
async fn a_missing_lockfile_is_reported_at_its_line_after_the_base_resolves() {
    let r =
        recipe("packages:\n  sums: SHA256SUMS\n  providers: [\"http://m.example/{{.Name}}\"]\n");
    let fake = with_files(&[("dockerfile/repro.yaml", &r)]);
    let ret = build(fake.clone(), vec![SOURCE]).await;
    let error = error_of(&ret);
    assert!(
        error.contains("cannot read the lockfile \"SHA256SUMS\" from the build context"),
        "{error}"
    );
    assert!(fake.0.lock().unwrap().resolved.iter().any(|r| r == BASE));
}

#[tokio::test]
async fn the_packages_target_returns_the_verified_blobs_without_an_image() {
    let fake = hello_with_a_provider();
    let ret = build(fake.clone(), vec![SOURCE, ("target", "packages")]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let result = ret.result.unwrap();
    assert!(!result.metadata.contains_key("containerimage.config"));
    let st = fake.0.lock().unwrap();
    let ops = decode_ops(st.solved.last().unwrap());
    let http = ops.iter().find_map(|o| match &o.op {
        Some(bollard_buildkit_proto::pb::op::Op::Source(s)) if s.identifier.starts_with("http") => {
            Some(s.clone())
        }
        _ => None,
    });
    let http = http.expect("an http source");
    assert_eq!(
        http.attrs["http.checksum"],
        format!("sha256:{}", "a".repeat(64))
    );
    assert!(
        !ops.iter()
            .any(|o| matches!(&o.op, Some(bollard_buildkit_proto::pb::op::Op::Exec(_)))),
        "the packages target installs nothing"
    );
}

#[tokio::test]
async fn the_packages_target_without_packages_is_an_error() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
    let ret = build(fake, vec![SOURCE, ("target", "packages")]).await;
    assert_eq!(
        error_of(&ret),
        "repro.yaml: the packages target needs packages in the recipe and the lockfile"
    );
}

#[tokio::test]
async fn without_providers_or_sources_the_error_says_what_to_add() {
    let sums = format!(
        "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
        "a".repeat(64)
    );
    let r = recipe("packages:\n  sums: SHA256SUMS\n");
    let fake = with_files(&[("dockerfile/repro.yaml", &r), ("context/SHA256SUMS", &sums)]);
    let ret = build(fake, vec![SOURCE]).await;
    assert!(
        error_of(&ret).contains("repro.yaml:4:9: packages has no providers"),
        "{}",
        error_of(&ret)
    );
}

#[tokio::test]
async fn the_install_tool_follows_the_base_images_os_release() {
    let sums = format!("{}  v3.16/main/x86_64/bash-5.1.16-r2.apk\n", "a".repeat(64));
    let r = recipe(
        "packages:\n  sums: SHA256SUMS\n  providers: [\"http://m.example/alpine/{{.Name}}\"]\n",
    );
    let fake = with_files(&[
        ("dockerfile/repro.yaml", &r),
        ("context/SHA256SUMS", &sums),
        (
            "context//etc/os-release",
            "NAME=\"Alpine Linux\"\nID=alpine\n",
        ),
    ]);
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let st = fake.0.lock().unwrap();
    assert_eq!(
        install_args(st.solved.last().unwrap()),
        [
            "/tmp/repro-tool/repro-frontend",
            "install",
            "--tool",
            "apk",
            "/tmp/repro-packages"
        ]
    );
}

/// The install exec's arguments in a solved definition.
fn install_args(def: &bollard_buildkit_proto::pb::Definition) -> Vec<String> {
    decode_ops(def)
        .iter()
        .find_map(|o| match &o.op {
            Some(bollard_buildkit_proto::pb::op::Op::Exec(e)) => {
                let args = &e.meta.as_ref()?.args;
                (args.get(1)? == "install").then(|| args.clone())
            }
            _ => None,
        })
        .expect("an install exec")
}

// Issue 25: with providers, a lockfile of one package kind names the tool,
// so the base is not opened before the build's definition goes out (the
// recipe's and the lockfile's locals are the only solves before it). A base
// without that tool fails the install step, saying so (`step::install`).
#[tokio::test]
async fn a_lockfile_of_one_kind_names_the_tool_and_the_base_is_not_opened() {
    let sums = format!(
        "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
        "a".repeat(64)
    );
    let r =
        recipe("packages:\n  sums: SHA256SUMS\n  providers: [\"http://m.example/{{.Name}}\"]\n");
    let fake = with_files(&[
        ("dockerfile/repro.yaml", &r),
        ("context/SHA256SUMS", &sums),
        ("context//etc/os-release", "ID=fedora\n"),
    ]);
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let st = fake.0.lock().unwrap();
    assert_eq!(st.solved.len(), 3, "{:?}", st.solved.len());
    assert_eq!(
        install_args(st.solved.last().unwrap())[1..4],
        ["install", "--tool", "dpkg"]
    );
}

#[tokio::test]
async fn the_targets_subrequest_lists_image_lock_and_packages() {
    let fake = with_files(&[]);
    let ret = build(fake, vec![SOURCE, ("requestid", "frontend.targets")]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let meta = ret.result.unwrap().metadata;
    let list: serde_json::Value = serde_json::from_slice(&meta["result.json"]).unwrap();
    let names: Vec<&str> = list["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["image", "lock", "packages", "sbom", "provenance", "verify"]
    );
    assert_eq!(list["targets"][0]["default"], true);
    let txt = String::from_utf8(meta["result.txt"].clone()).unwrap();
    assert!(txt.contains("lock\twrite the lockfile"), "{txt}");
    assert!(txt.contains("verify\trebuild and compare"), "{txt}");
    let fake = with_files(&[]);
    let ret = build(
        fake,
        vec![SOURCE, ("requestid", "frontend.subrequests.describe")],
    )
    .await;
    let meta = ret.result.unwrap().metadata;
    let list: serde_json::Value = serde_json::from_slice(&meta["result.json"]).unwrap();
    assert_eq!(list[1]["name"], "frontend.targets");
    let ret = build(
        with_files(&[]),
        vec![SOURCE, ("requestid", "frontend.lint")],
    )
    .await;
    assert!(error_of(&ret).contains("unsupported subrequest \"frontend.lint\""));
}

#[tokio::test]
async fn an_sbom_attestation_only_when_asked() {
    let plain = build(hello_with_a_provider(), vec![SOURCE]).await;
    let plain = plain.result.unwrap();
    assert!(plain.attestations.is_empty());
    let ret = build(hello_with_a_provider(), vec![SOURCE, ("attest:sbom", "")]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let result = ret.result.unwrap();
    // The image is returned as without the opt.
    assert_eq!(result.result, plain.result);
    assert_eq!(result.metadata, plain.metadata);
    let atts = &result.attestations["linux/amd64"].attestation;
    assert_eq!(atts.len(), 1);
    let a = &atts[0];
    assert_eq!(a.kind, AttestationKind::InToto as i32);
    assert_eq!(a.path, "/sbom.spdx.json");
    assert_eq!(a.in_toto_predicate_type, "https://spdx.dev/Document");
    assert_eq!(a.in_toto_subjects.len(), 1);
    assert_eq!(a.in_toto_subjects[0].kind, InTotoSubjectKind::Self_ as i32);
    let sbom_def = a.r#ref.as_ref().unwrap().def.as_ref().unwrap();
    let ops = decode_ops(sbom_def);
    assert!(ops.iter().any(|o| matches!(&o.op,
        Some(bollard_buildkit_proto::pb::op::Op::Exec(e)) if e.meta.as_ref().unwrap().args[1] == "sbom")));
}

// An imported cache (buildctl --import-cache, buildx --cache-from) was
// never consulted: the solves did not carry it, so every op ran again.
#[tokio::test]
async fn every_solve_carries_the_clients_cache_imports() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
    let imports = r#"[{"Type":"registry","Attrs":{"ref":"127.0.0.1:5000/cache:hello"}}]"#;
    let ret = build(fake.clone(), vec![SOURCE, ("cache-imports", imports)]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let st = fake.0.lock().unwrap();
    assert!(st.cache_imports.len() >= 2, "{}", st.cache_imports.len());
    for imports in &st.cache_imports {
        assert_eq!(imports.len(), 1);
        assert_eq!(imports[0].r#type, "registry");
        assert_eq!(imports[0].attrs["ref"], "127.0.0.1:5000/cache:hello");
    }
}

#[tokio::test]
async fn no_cache_marks_every_solved_op() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
    let ret = build(fake.clone(), vec![SOURCE, ("no-cache", "")]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    {
        let st = fake.0.lock().unwrap();
        let image = st.solved.last().unwrap();
        assert!(!image.metadata.is_empty());
        assert!(image.metadata.values().all(|m| m.ignore_cache));
    }
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none());
    let st = fake.0.lock().unwrap();
    assert!(
        st.solved
            .last()
            .unwrap()
            .metadata
            .values()
            .all(|m| !m.ignore_cache)
    );
}

#[tokio::test]
async fn a_missing_llb_cap_fails_early_and_names_it() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
    fake.0
        .lock()
        .unwrap()
        .llb_caps
        .retain(|c| c != "exec.meta.network");
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(
        error_of(&ret).contains("exec.meta.network"),
        "{}",
        error_of(&ret)
    );
    assert_eq!(
        fake.0.lock().unwrap().solved.len(),
        1,
        "only the recipe was loaded"
    );
}

#[tokio::test]
async fn a_failed_solve_comes_back_as_the_returned_status() {
    let sums = format!(
        "{}  pool/main/h/hello/hello_2.10-3_amd64.deb\n",
        "a".repeat(64)
    );
    let r =
        recipe("packages:\n  sums: SHA256SUMS\n  providers: [\"http://127.0.0.1:9/{{.Name}}\"]\n");
    let fake = with_files(&[("dockerfile/repro.yaml", &r), ("context/SHA256SUMS", &sums)]);
    let msg = format!(
        "digest mismatch sha256:{}: sha256:{}",
        "b".repeat(64),
        "a".repeat(64)
    );
    fake.0.lock().unwrap().fail_solve = Some(("http://127.0.0.1:9/".into(), msg.clone()));
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.result.is_none());
    assert_eq!(error_of(&ret), msg);
}

#[tokio::test]
async fn a_lockfile_error_names_the_lockfile_line() {
    let r = recipe("packages:\n  sums: SHA256SUMS\n  providers: [\"http://m/{{.Name}}\"]\n");
    let sums = format!("# x\n{}  ../etc/passwd\n", "a".repeat(64));
    let ret = build(
        with_files(&[("dockerfile/repro.yaml", &r), ("context/SHA256SUMS", &sums)]),
        vec![SOURCE],
    )
    .await;
    assert!(
        error_of(&ret).starts_with("SHA256SUMS:2:67: name \"../etc/passwd\""),
        "{}",
        error_of(&ret)
    );
}

/// The file and line of the errdefs.Source detail a failure went back with.
fn source_of(r: &ReturnRequest) -> Option<(String, i32)> {
    use crate::frontend::errors::ErrorSource;
    use prost::Message;
    let detail = r.error.as_ref()?.details.first()?;
    let source = ErrorSource::decode(detail.value.as_slice()).ok()?;
    let line = source.ranges.first()?.start?.line;
    Some((source.info?.filename, line))
}

// The place went back as text parsed out of the message; it is data now,
// from the parser (a lockfile line) or the pipeline (the recipe's base).
#[tokio::test]
async fn a_failures_place_goes_back_as_its_files_lines() {
    let r = recipe("packages:\n  sums: SHA256SUMS\n  providers: [\"http://m/{{.Name}}\"]\n");
    let sums = format!("# x\n{}  ../etc/passwd\n", "a".repeat(64));
    let files = [
        ("dockerfile/repro.yaml", r.as_str()),
        ("context/SHA256SUMS", &sums),
    ];
    let ret = build(with_files(&files), vec![SOURCE]).await;
    assert_eq!(source_of(&ret), Some(("SHA256SUMS".into(), 2)));
    let r = "# syntax=x\nbase: 127.0.0.1:5000/repro/debian:bookworm\n";
    let ret = build(with_files(&[("dockerfile/repro.yaml", r)]), vec![SOURCE]).await;
    assert_eq!(source_of(&ret), Some(("repro.yaml".into(), 2)));
    let ret = build(with_files(&[]), vec![SOURCE]).await;
    assert_eq!(source_of(&ret), None, "{}", error_of(&ret));
}

#[tokio::test]
async fn source_date_epoch_wins_and_a_bad_one_is_an_error() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe("epoch: 5\n"))]);
    let ret = build(fake, vec![SOURCE, ("build-arg:SOURCE_DATE_EPOCH", "86400")]).await;
    let config: serde_json::Value =
        serde_json::from_slice(&ret.result.unwrap().metadata["containerimage.config"]).unwrap();
    assert_eq!(config["created"], "1970-01-02T00:00:00Z");
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
    let ret = build(
        fake,
        vec![SOURCE, ("build-arg:SOURCE_DATE_EPOCH", "yesterday")],
    )
    .await;
    assert!(
        error_of(&ret).contains("SOURCE_DATE_EPOCH=\"yesterday\""),
        "{}",
        error_of(&ret)
    );
}

// Issue 24: reading the record of removed keys builds the image; a failing
// step must still reach the user as the engine's own error (with the
// recipe lines BuildKit attaches), so the frontend returns its result and
// lets the exporter fail, instead of returning the read's error as its own.
#[tokio::test]
async fn a_failed_read_of_the_record_returns_the_result_for_the_exporter_to_fail() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe(""))]);
    fake.0.lock().unwrap().fail_read = Some((
        crate::convert::SECRETS_RECORD.into(),
        "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3".into(),
    ));
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let result = ret.result.expect("a result");
    assert!(result.metadata.contains_key("containerimage.config"));
    assert!(!result.metadata.keys().any(|k| k.starts_with("annotation")));
}

#[tokio::test]
async fn the_record_of_removed_keys_becomes_the_images_annotations() {
    let record = r#"[{"path": "/etc/machine-id", "action": "emptied", "what": "machine identity", "madeBy": "package systemd"}]"#;
    let fake = with_files(&[
        ("dockerfile/repro.yaml", &recipe("")),
        // Every solved ref reads as the context local in the fake.
        (
            "context//usr/share/repro-frontend/private-keys.json",
            record,
        ),
    ]);
    let ret = build(fake.clone(), vec![SOURCE]).await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let result = ret.result.expect("a result");
    assert_eq!(
        result.metadata["annotation-manifest.repro-frontend.secrets.emptied"],
        b"/etc/machine-id"
    );
}
