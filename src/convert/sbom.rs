//! The `sbom` target's graph, pure: the facts the conversion knows written
//! into a small file, and an exec of our own binary (`repro-frontend sbom`)
//! that reads them with the built image's rootfs mounted read-only and
//! writes `/out/sbom.spdx.json` (see `crate::sbom` for the document).

use super::base::{frontend_image, helper_env, tree_mount};
use super::opts::{ConvertError, Converted, FRONTEND_BINARY, OUT_DIR, Opts, TARGET_DIR};
use super::packages;
use crate::llb::{Mount, Network, State};
use crate::lockfile::Lockfile;
use crate::recipe::Recipe;
use crate::recipe::template::Vars;
use crate::sbom::{Blob, Facts, Inputs, split_reference};

/// The name of the document in the sbom target's result.
pub const SBOM_FILE: &str = "sbom.spdx.json";
/// Where the facts file is mounted in the sbom exec.
const FACTS_DIR: &str = "/facts";

/// The facts of a conversion: the lockfile's packages with the first
/// provider's URL for each, the base image, the inputs' hashes, the epoch.
pub fn facts(
    recipe: &Recipe,
    lock: &Lockfile,
    opts: &Opts,
    inputs: &Inputs,
) -> Result<Facts, ConvertError> {
    let first = match &recipe.packages {
        Some(p) if lock.packages().next().is_some() => {
            packages::provider_templates(recipe, p, opts)?
                .into_iter()
                .next()
        }
        _ => None,
    };
    let cids = lock.cids();
    let mut blobs: Vec<Blob> = lock
        .packages()
        .map(|e| Blob {
            name: e.name.clone(),
            sha256: e.sha256.clone(),
            lockfile: e.file.clone(),
            url: first.as_ref().and_then(|t| {
                t.render(Vars {
                    name: &e.name,
                    sha256: &e.sha256,
                    cid: cids.get(e.sha256.as_str()).copied(),
                })
            }),
        })
        .collect();
    blobs.sort();
    let (repository, digest) = split_reference(&opts.base_ref);
    Ok(Facts {
        tool: format!("repro-frontend-{}", env!("CARGO_PKG_VERSION")),
        epoch: opts.epoch,
        base_ref: opts.base_ref.clone(),
        base_repository: repository.to_string(),
        base_digest: digest.to_string(),
        architecture: opts.platform.architecture.clone(),
        frontend: opts.frontend_record(),
        inputs: inputs.clone(),
        blobs,
    })
}

/// The sbom exec on a converted image: its result holds only
/// `sbom.spdx.json`.
pub fn sbom_llb(converted: &Converted, facts: &Facts, opts: &Opts) -> State {
    // A struct of strings and numbers always serializes.
    let json = serde_json::to_vec_pretty(facts).unwrap_or_default();
    let facts_state = State::scratch()
        .file()
        .mkfile("/facts.json", 0o644, json, Some(0))
        .name(format!(
            "sbom facts: {} package(s) from the lockfile, base {}",
            facts.blobs.len(),
            facts.base_ref
        ))
        .build();
    let mut args: Vec<String> = vec![
        FRONTEND_BINARY.into(),
        "sbom".into(),
        "--rootfs".into(),
        TARGET_DIR.into(),
        "--facts".into(),
        format!("{FACTS_DIR}/facts.json"),
    ];
    if converted.secrets {
        args.push("--secrets".into());
    }
    args.push("--out".into());
    args.push(format!("{OUT_DIR}/{SBOM_FILE}"));
    let exec = frontend_image(opts)
        .run(args)
        .network(Network::None)
        .envs(helper_env(opts))
        .mount(Mount::readonly(FACTS_DIR, facts_state))
        .mount(tree_mount(opts, TARGET_DIR, converted.state.clone()));
    exec.name("sbom: list the image's packages as an SPDX 2.3 document".to_string())
        .build_into(OUT_DIR)
}
