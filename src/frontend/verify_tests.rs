//! The verify target through the fake LLBBridge: the REPRO_VERIFY checks
//! come before any solve, and the solved graph runs our verify step on the
//! rebuild and the published image. Tests only; no I/O beyond the fake.

use bollard_buildkit_proto::pb;

use super::gateway::fake::*;

const SOURCE: (&str, &str) = ("source", "repro-frontend:v0");
const PUBLISHED: &str = "127.0.0.1:5000/repro/debian-published@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn recipe() -> String {
    format!("base: {BASE}\nimage:\n  cmd: [hello]\n")
}

#[tokio::test]
async fn a_missing_or_unpinned_repro_verify_fails_before_anything_is_solved() {
    for (args, want) in [
        (vec![], "the verify target needs --build-arg REPRO_VERIFY="),
        (
            vec![("build-arg:REPRO_VERIFY", "127.0.0.1:5000/repro/x:latest")],
            "build arg REPRO_VERIFY=\"127.0.0.1:5000/repro/x:latest\" is not pinned by digest",
        ),
    ] {
        let fake = with_files(&[("dockerfile/repro.yaml", &recipe())]);
        let mut opts = vec![SOURCE, ("target", "verify")];
        opts.extend(args);
        let ret = build(fake.clone(), opts).await;
        assert!(error_of(&ret).starts_with(want), "{}", error_of(&ret));
        assert!(fake.0.lock().unwrap().solved.is_empty(), "nothing solved");
    }
}

#[tokio::test]
async fn the_verify_target_runs_our_step_on_the_rebuild_and_the_published_image() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe())]);
    let ret = build(
        fake.clone(),
        vec![
            SOURCE,
            ("target", "verify"),
            ("build-arg:REPRO_VERIFY", PUBLISHED),
        ],
    )
    .await;
    assert!(ret.error.is_none(), "{}", error_of(&ret));
    let result = ret.result.unwrap();
    assert!(!result.metadata.contains_key("containerimage.config"));
    let st = fake.0.lock().unwrap();
    let ops = decode_ops(st.solved.last().unwrap());
    let sources: Vec<&str> = ops
        .iter()
        .filter_map(|o| match &o.op {
            Some(pb::op::Op::Source(s)) => Some(s.identifier.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        sources.contains(&format!("docker-image://{PUBLISHED}").as_str()),
        "{sources:?}"
    );
    let verify = ops
        .iter()
        .find_map(|o| match &o.op {
            Some(pb::op::Op::Exec(e)) if e.meta.as_ref().unwrap().args[1] == "verify" => {
                Some(e.clone())
            }
            _ => None,
        })
        .expect("a verify exec");
    let dests: Vec<(&str, bool)> = verify
        .mounts
        .iter()
        .map(|m| (m.dest.as_str(), m.readonly))
        .collect();
    for dir in ["/ours", "/theirs", "/facts"] {
        assert!(dests.contains(&(dir, true)), "{dests:?}");
    }
    assert!(dests.contains(&("/out", false)), "{dests:?}");
    // The facts name the recipe's bytes and the published image.
    let facts = ops
        .iter()
        .find_map(|o| match &o.op {
            Some(pb::op::Op::File(f)) => f.actions.iter().find_map(|a| match &a.action {
                Some(pb::file_action::Action::Mkfile(m)) if m.path == "/facts.json" => {
                    Some(m.data.clone())
                }
                _ => None,
            }),
            _ => None,
        })
        .expect("the facts file");
    let facts: serde_json::Value = serde_json::from_slice(&facts).unwrap();
    assert_eq!(facts["image"], PUBLISHED);
    assert_eq!(facts["base"], BASE);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(recipe().as_bytes()));
    assert_eq!(facts["recipe"]["sha256"], sha);
}

#[tokio::test]
async fn a_report_fails_the_build_with_its_summary_unless_asked_to_export_it() {
    let report = "the rebuild differs from x@sha256:1: 1 difference(s): extra 1\nextra /changed: rebuilt nothing, published file\n";
    for (on_diff, fails) in [(None, true), (Some("fail"), true), (Some("report"), false)] {
        let fake = with_files(&[
            ("dockerfile/repro.yaml", &recipe()),
            ("context/verify-report.txt", report),
        ]);
        let mut opts = vec![
            SOURCE,
            ("target", "verify"),
            ("build-arg:REPRO_VERIFY", PUBLISHED),
        ];
        opts.extend(on_diff.map(|v| ("build-arg:REPRO_VERIFY_ON_DIFF", v)));
        let ret = build(fake, opts).await;
        if fails {
            let err = error_of(&ret);
            assert!(
                err.starts_with("not reproduced: the rebuild differs from x@sha256:1: 1 difference(s): extra 1\n  extra /changed: rebuilt nothing, published file\n"),
                "{err}"
            );
            assert!(err.ends_with("--build-arg REPRO_VERIFY_ON_DIFF=report writes it to the output instead of failing"), "{err}");
        } else {
            assert!(ret.error.is_none(), "{}", error_of(&ret));
            assert!(ret.result.is_some());
        }
    }
}

#[tokio::test]
async fn an_unknown_on_diff_value_fails_before_anything_is_solved() {
    let fake = with_files(&[("dockerfile/repro.yaml", &recipe())]);
    let opts = vec![
        SOURCE,
        ("target", "verify"),
        ("build-arg:REPRO_VERIFY", PUBLISHED),
        ("build-arg:REPRO_VERIFY_ON_DIFF", "warn"),
    ];
    let ret = build(fake.clone(), opts).await;
    assert_eq!(
        error_of(&ret),
        "build arg REPRO_VERIFY_ON_DIFF=\"warn\": expected fail or report"
    );
    assert!(fake.0.lock().unwrap().solved.is_empty(), "nothing solved");
}
