//! The gateway and the `llb` subcommand give the same Definition and image
//! config for every golden case: the same inputs through the fake LLBBridge
//! and through a local folder. Tests only (reads tests/data).

use std::path::{Path, PathBuf};

use bollard_buildkit_proto::moby::buildkit::v1::frontend::result;
use prost::Message;

use super::gateway::fake::{build, error_of, with_files};
use crate::convert::Platform;
use crate::frontend::local::{self, LocalBuild};
use crate::llb::ResolveMode;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The golden cases: tests/data/recipes/<case>/ (not negative/).
fn golden_cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("repro.yaml").is_file())
        .collect();
    v.sort();
    v
}

fn build_args(case: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(case.join("build-args"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The case's files, by name (recipe, lockfiles, copied sources).
fn case_files(case: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(case)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

const OS_RELEASE: &str = "etc/os-release";

/// The Definition bytes the gateway solved for the image and the config
/// it returned, through the fake bridge.
fn through_gateway(case: &Path, args: &[(String, String)]) -> (Vec<u8>, Vec<u8>) {
    let os_release = std::fs::read_to_string(data().join("base-root").join(OS_RELEASE)).unwrap();
    let mut files: Vec<(String, String)> = case_files(case)
        .into_iter()
        .map(|(name, text)| match name.as_str() {
            "repro.yaml" => ("dockerfile/repro.yaml".to_string(), text),
            _ => (format!("context/{name}"), text),
        })
        .collect();
    // The fake serves the base image's files under "context".
    files.push((format!("context//{OS_RELEASE}"), os_release));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let fake = with_files(&refs);
    fake.0.lock().unwrap().image_config =
        Some(std::fs::read(data().join("recipes/base-config.json")).unwrap());
    let opts: Vec<(String, String)> = [("source".to_string(), "repro-frontend:v0".to_string())]
        .into_iter()
        .chain(
            args.iter()
                .map(|(k, v)| (format!("build-arg:{k}"), v.clone())),
        )
        .collect();
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ret = runtime.block_on(build(fake.clone(), opts));
    assert!(
        ret.error.is_none(),
        "{}: {}",
        case.display(),
        error_of(&ret)
    );
    let result = ret.result.unwrap();
    let config = result.metadata["containerimage.config"].clone();
    // The image's Definition is the returned ref's (the gateway also solves
    // the record of removed keys beside it).
    let Some(result::Result::Ref(image)) = result.result else {
        panic!("{}: no single ref returned", case.display())
    };
    (image.def.unwrap().encode_to_vec(), config)
}

/// The same through the `llb` subcommand's side, from a folder holding
/// the same files.
fn through_llb(case: &Path, args: &[(String, String)]) -> (Vec<u8>, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let context = tmp.path().join("context");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(&context).unwrap();
    for (name, text) in case_files(case) {
        std::fs::write(context.join(name), text).unwrap();
    }
    std::fs::copy(
        data().join("base-root").join(OS_RELEASE),
        root.join(OS_RELEASE),
    )
    .unwrap();
    let config = tmp.path().join("base-config.json");
    std::fs::copy(data().join("recipes/base-config.json"), &config).unwrap();
    let b = LocalBuild {
        recipe: context.join("repro.yaml"),
        context: context.clone(),
        build_args: args.iter().cloned().collect(),
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        base_config: Some(config),
        base_root: Some(root),
        // What the gateway pins the `source` opt to.
        frontend_image: format!(
            "{}@{}",
            crate::frontend::gateway::fake::FRONTEND_TAG,
            crate::frontend::gateway::fake::FRONTEND_DIGEST
        ),
        resolve_mode: ResolveMode::Default,
    };
    let (def, config) =
        local::definition(&b, false).unwrap_or_else(|e| panic!("{}: {e:#}", case.display()));
    (def.encode_to_vec(), config.expect("an image config"))
}

#[test]
fn llb_and_the_gateway_give_the_same_definition_for_every_golden_case() {
    let cases = golden_cases();
    assert!(cases.len() >= 7, "{cases:?}");
    for case in cases {
        let args = build_args(&case);
        let (gw_def, gw_config) = through_gateway(&case, &args);
        let (llb_def, llb_config) = through_llb(&case, &args);
        assert!(
            gw_def == llb_def,
            "{}: the Definitions differ",
            case.display()
        );
        assert_eq!(
            String::from_utf8_lossy(&gw_config),
            String::from_utf8_lossy(&llb_config),
            "{}",
            case.display()
        );
    }
}

// The comparison above must be able to fail: a different build arg on
// one side gives other bytes.
#[test]
fn the_comparison_sees_a_different_build_arg() {
    let case = data().join("recipes/minimal");
    let (gw_def, gw_config) = through_gateway(&case, &[]);
    let other = [("SOURCE_DATE_EPOCH".to_string(), "86400".to_string())];
    let (llb_def, llb_config) = through_llb(&case, &other);
    assert!(gw_def != llb_def);
    assert_ne!(gw_config, llb_config);
}
