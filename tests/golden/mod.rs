//! Golden recipe folders: tests/data/recipes/<case>/ must convert, and give
//! the progress names in `ops.txt`; tests/data/recipes/negative/<case>/ must
//! fail with the text in `error.txt`. A case may carry `SHA256SUMS-amd64` and
//! `build-args` (KEY=VALUE lines). Set REPRO_BLESS=1 to rewrite ops.txt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bollard_buildkit_proto::pb;
use prost::Message;
use repro_frontend::convert::{self, Platform};
use repro_frontend::frontend::local::{self, LocalBuild};
use repro_frontend::llb::ResolveMode;

use crate::support::repo;

/// The offline pipeline (the `llb` subcommand's): parse, apply args, read
/// the lockfile, convert.
fn convert_case(dir: &Path) -> Result<convert::Converted, String> {
    let build_args: BTreeMap<String, String> = std::fs::read_to_string(dir.join("build-args"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    local::convert(&LocalBuild {
        recipe: dir.join("repro.yaml"),
        context: dir.to_path_buf(),
        build_args,
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        base_config: Some(repo().join("tests/data/recipes/base-config.json")),
        // The cases' base is Debian: its os-release names dpkg.
        base_root: Some(repo().join("tests/data/base-root")),
        frontend_image: "repro-frontend:v0".into(),
        resolve_mode: ResolveMode::Default,
    })
    .map_err(|e| format!("{e:#}"))
}

/// Progress names of the ops, in Definition order.
fn op_names(c: &convert::Converted) -> String {
    let def = c.state.marshal();
    let mut out = String::new();
    for bytes in &def.def {
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
        );
        let op = pb::Op::decode(bytes.as_slice()).expect("decode op");
        if op.op.is_none() {
            continue;
        }
        let name = def
            .metadata
            .get(&digest)
            .and_then(|m| m.description.get("llb.customname").cloned())
            .unwrap_or_else(|| "(unnamed)".into());
        out.push_str(&name);
        out.push('\n');
    }
    out
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read cases")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("repro.yaml").is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn positive_cases_convert_to_the_recorded_ops() {
    let dir = repo().join("tests/data/recipes");
    let all = cases(&dir);
    assert!(all.len() >= 3, "expected golden cases in {}", dir.display());
    let bless = std::env::var_os("REPRO_BLESS").is_some();
    for case in all {
        let converted = convert_case(&case).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let names = op_names(&converted);
        let expected_path = case.join("ops.txt");
        if bless {
            std::fs::write(&expected_path, &names).expect("write ops.txt");
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        assert_eq!(names, expected, "{}", case.display());
        // Converting again gives the same bytes.
        let again = convert_case(&case).expect("second conversion");
        assert_eq!(
            converted.state.marshal().encode_to_vec(),
            again.state.marshal().encode_to_vec(),
            "{}",
            case.display()
        );
        assert_eq!(converted.config, again.config);
    }
}

#[test]
fn negative_cases_fail_with_the_recorded_error() {
    let dir = repo().join("tests/data/recipes/negative");
    let all = cases(&dir);
    assert!(
        all.len() >= 8,
        "expected negative cases in {}",
        dir.display()
    );
    for case in all {
        let expected = std::fs::read_to_string(case.join("error.txt")).expect("error.txt");
        match convert_case(&case) {
            Ok(_) => panic!(
                "{}: converted, but should fail with {expected}",
                case.display()
            ),
            Err(e) => assert_eq!(e, expected.trim_end(), "{}", case.display()),
        }
    }
}

#[test]
fn caps_read_from_the_definition_are_the_ones_the_builder_recorded() {
    use repro_frontend::llb::{Constraints, caps};
    let dir = repo().join("tests/data/recipes");
    for case in cases(&dir) {
        let converted = convert_case(&case).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let states = std::iter::once(&converted.state).chain(&converted.packages);
        for state in states {
            for ignore_cache in [false, true] {
                let def = state.marshal_with(Constraints { ignore_cache });
                let from_bytes: std::collections::BTreeSet<String> = caps::required(&def)
                    .unwrap_or_else(|e| panic!("{}: {e}", case.display()))
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                // What the builder recorded is what the old State::caps gave.
                assert_eq!(from_bytes, caps::declared(&def), "{}", case.display());
            }
        }
    }
}
