//! The `lock` target's graph: apt in the pinned base resolves the recipe's
//! package names and our binary writes the lockfile. Pure: builds LLB only
//! (`step::lock` is what runs in the build).

use crate::llb::{Mount, State};
use crate::recipe::yaml::Span;
use crate::recipe::{Packages, Recipe};

use super::base::{base_states, frontend_image, helper_env};
use super::locator::Locator;
use super::opts::{ConvertError, FRONTEND_BINARY, OUT_DIR, Opts, err_at};

/// The lockfile the lock target writes: the basename of the recipe's first
/// `sums` entry (expanded for the platform), and where the recipe names it,
/// with the packages section it belongs to.
pub fn lock_file(recipe: &Recipe) -> Result<(&Packages, String, Span), ConvertError> {
    let Some(packages) = &recipe.packages else {
        return Err(ConvertError {
            file: recipe.file.clone(),
            line: recipe.base.span.line,
            col: recipe.base.span.col,
            message: "the lock target needs a packages: section with install: and sums:".into(),
        });
    };
    if packages.install.is_empty() {
        return Err(err_at(
            &recipe.file,
            &packages.sums[0],
            "the lock target needs packages.install (the package names to resolve)",
        ));
    }
    let sums = &packages.sums[0];
    let file = crate::recipe::template::basename(&sums.value).to_string();
    Ok((packages, file, sums.span))
}

/// The `lock` target: apt, in the pinned base, resolves `packages.install`
/// (the closure minus what the base has) and the frontend's own binary,
/// mounted from its image, writes the lockfile named like the recipe's first
/// `sums` file. The result holds only that file, for `--output type=local`.
pub fn lock_llb(recipe: &Recipe, opts: &Opts) -> Result<State, ConvertError> {
    let (packages, file, _) = lock_file(recipe)?;
    let at = Locator::new(recipe);
    let (_, root) = base_states(opts, at.span(recipe.base.span));
    let mut argv: Vec<String> = vec![
        format!("/repro{FRONTEND_BINARY}"),
        "lock".into(),
        "--base".into(),
        opts.base_ref.clone(),
        "--out".into(),
        format!("{OUT_DIR}/{file}"),
    ];
    argv.extend(packages.install.iter().map(|p| p.value.clone()));
    let names: Vec<&str> = packages.install.iter().map(|p| p.value.as_str()).collect();
    Ok(root
        .with_user("0:0")
        .run(argv)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .envs(helper_env(opts))
        .network(opts.network)
        .mount(Mount::readonly("/repro", frontend_image(opts)))
        .name(format!(
            "lock {} with apt in {}",
            names.join(" "),
            opts.base_ref
        ))
        .at(at.span(packages.span))
        .build_into(OUT_DIR))
}
