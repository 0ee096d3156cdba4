//! The image target's graph: base, packages, the recipe's steps and the
//! normalize exec, with the image config beside it. Pure: builds LLB only.

use crate::lockfile::Lockfile;
use crate::recipe::Recipe;

use super::base::base_states;
use super::image::{self, Provenance};
use super::locator::Locator;
use super::normalize::{INSTALL_STAGE, Normalize, Secrets, normalize};
use super::opts::{ConvertError, Converted, Opts};
use super::packages::{self, Installed};
use super::steps;

/// Converts an expanded recipe (see [`Recipe::expand`]) and its lockfile.
pub fn to_llb(recipe: &Recipe, lock: &Lockfile, opts: &Opts) -> Result<Converted, ConvertError> {
    let at = Locator::new(recipe);
    let (base, mut root) = base_states(opts, at.span(recipe.base.span));
    if let Some(wd) = opts
        .base
        .config
        .get("WorkingDir")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        root = root.with_cwd(wd);
    }
    let mut installed = Installed {
        root,
        blobs: None,
        count: 0,
    };
    if let Some(packages) = &recipe.packages {
        let here = at.span(packages.span);
        installed = packages::install_packages(recipe, packages, lock, opts, installed.root, here)?;
    }
    let mut user = opts
        .base
        .config
        .get("User")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let mut stages = Vec::new();
    if recipe.packages.is_some() {
        stages.push((INSTALL_STAGE.to_string(), installed.root.clone()));
    }
    let built = steps::apply(
        recipe,
        opts,
        installed.root,
        &mut user,
        &|s| at.span(s.span),
        &mut stages,
    )?;
    let mode = Normalize::choose(recipe.image.layers, opts.snapshotter.as_deref());
    let layered = mode == Normalize::Delta;
    let state = normalize(opts, base, built, mode, &Secrets::of(recipe, stages));
    let comment = format!(
        "{} package(s) from the lockfile and {} step(s) on {}",
        installed.count,
        recipe.steps.len(),
        opts.base_ref
    );
    let config = image::config(
        &opts.base,
        &recipe.image,
        &Provenance {
            epoch: opts.epoch,
            architecture: opts.platform.architecture.clone(),
            os: opts.platform.os.clone(),
            variant: opts.platform.variant.clone(),
            comment,
            base_layers: layered,
        },
    );
    Ok(Converted {
        secrets: true,
        state,
        config,
        packages: installed.blobs,
    })
}
