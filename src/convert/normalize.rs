//! The normalize exec that ends the image's graph: our binary squashes the
//! built rootfs onto scratch, or writes what differs onto a mount of the
//! base. Pure: builds LLB only (`step::normalize` is what runs in the build).

use crate::llb::{Mount, Network, State};
use crate::recipe::{Layers, Recipe};

use super::base::{frontend_image, helper_env, tree_mount};
use super::opts::{BASE_DIR, DELTA_SNAPSHOTTER, FRONTEND_BINARY, OUT_DIR, Opts, TARGET_DIR};

/// The label of the root after the install step, among the stages.
pub(super) const INSTALL_STAGE: &str = "the install step";

/// Where the stages are mounted in the normalize exec: `/stages/<n>`.
const STAGES_DIR: &str = "/stages";

/// Where the base's census is mounted in the normalize exec (and written
/// by the census exec).
const CENSUS_DIR: &str = "/census";

/// What normalize is told about private keys: the build's stages (the
/// root after the install step, after each step that changes files), in
/// order, and the recipe's `private-keys:`.
pub(super) struct Secrets {
    stages: Vec<(String, State)>,
    remove: Vec<String>,
    keep: Vec<String>,
    recipe: String,
}

impl Secrets {
    pub(super) fn of(recipe: &Recipe, stages: Vec<(String, State)>) -> Secrets {
        let values =
            |l: &[crate::recipe::Spanned<String>]| l.iter().map(|s| s.value.clone()).collect();
        Secrets {
            stages,
            remove: values(&recipe.private_keys.remove),
            keep: values(&recipe.private_keys.keep),
            recipe: recipe.file.clone(),
        }
    }

    /// The normalize exec's flags for these.
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--recipe".to_string(), self.recipe.clone()];
        for (n, (label, _)) in self.stages.iter().enumerate() {
            args.push("--stage".into());
            args.push(format!("{label}={STAGES_DIR}/{n}"));
        }
        for p in &self.remove {
            args.push("--remove-key".into());
            args.push(p.clone());
        }
        for p in &self.keep {
            args.push("--keep-key".into());
            args.push(p.clone());
        }
        args.push("--record".into());
        args
    }
}

/// What the normalize exec makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Normalize {
    /// The whole rootfs on scratch: the image's one layer.
    Squash,
    /// `image.layers: base` on a worker whose snapshotter (named) would not
    /// record the layer deterministically: squashed, and the step's name
    /// says so (Docker 20.10 has no Warn RPC to say it otherwise).
    SquashInstead(String),
    /// The base image, with what differs from it written onto a writable
    /// mount of it: that mount's new snapshot is one layer on the base's.
    Delta,
}

impl Normalize {
    /// What `image.layers` asks for, on a worker with `snapshotter`.
    pub(super) fn choose(layers: Layers, snapshotter: Option<&str>) -> Normalize {
        match (layers, snapshotter) {
            (Layers::Squash, _) => Normalize::Squash,
            (Layers::Base, Some(DELTA_SNAPSHOTTER)) => Normalize::Delta,
            (Layers::Base, Some(other)) => Normalize::SquashInstead(format!("is {other}")),
            (Layers::Base, None) => Normalize::SquashInstead(
                "is Docker's classic image store (the worker names no snapshotter)".to_string(),
            ),
        }
    }
}

/// The normalize exec: our binary, in the frontend image, copies the built
/// rootfs onto scratch with times clamped and build litter removed; for
/// `Delta` it then prunes the copy to what differs from the base (deletions
/// as whiteouts) and applies that onto a writable mount of the base.
/// The image carries the record of what became of the private keys and
/// identities the build made (`convert::SECRETS_RECORD`).
pub(super) fn normalize(
    opts: &Opts,
    base: State,
    built: State,
    mode: Normalize,
    secrets: &Secrets,
) -> State {
    let epoch = opts.epoch.to_string();
    let mut args = vec![
        FRONTEND_BINARY.into(),
        "normalize".into(),
        "--epoch".into(),
        epoch.clone(),
        "--base".into(),
        BASE_DIR.into(),
        "--out".into(),
        OUT_DIR.into(),
    ];
    args.extend(secrets.args());
    let squash =
        format!("normalize: squash onto scratch, clamp times to {epoch}, remove logs and caches");
    let census = (mode == Normalize::Delta).then(|| census(opts, base.clone()));
    let (base_mount, name) = match &mode {
        Normalize::Squash => (tree_mount(opts, BASE_DIR, base), squash),
        Normalize::SquashInstead(snapshotter) => (
            tree_mount(opts, BASE_DIR, base),
            format!(
                "{squash} (warning: image.layers: base needs the {DELTA_SNAPSHOTTER} snapshotter, and this engine's {snapshotter}: the image has one squashed layer)"
            ),
        ),
        Normalize::Delta => {
            args.push("--delta".into());
            args.push("--census".into());
            args.push(format!("{CENSUS_DIR}/{}", crate::step::census::FILE));
            (
                Mount::writable(BASE_DIR, base),
                format!(
                    "normalize: clamp times to {epoch}, remove logs and caches, write what differs onto the base image"
                ),
            )
        }
    };
    args.push(TARGET_DIR.into());
    let mut exec = frontend_image(opts)
        .run(args)
        .network(Network::None)
        .envs(helper_env(opts))
        .mount(base_mount)
        .mount(tree_mount(opts, TARGET_DIR, built));
    if let Some(census) = census {
        exec = exec.mount(Mount::readonly(CENSUS_DIR, census));
    }
    for (n, (_, stage)) in secrets.stages.iter().enumerate() {
        exec = exec.mount(tree_mount(
            opts,
            &format!("{STAGES_DIR}/{n}"),
            stage.clone(),
        ));
    }
    // Writable mounts come back in the order they were added.
    let mut outs = exec.name(name).mount(Mount::scratch(OUT_DIR)).build();
    let Some(out) = outs.mounts.pop() else {
        unreachable!("a scratch mount is writable, so it has an output")
    };
    match mode {
        // The base mount's snapshot: the base's layers and one more. The
        // scratch mount only holds the delta on its way.
        Normalize::Delta => outs.mounts.swap_remove(0),
        // The scratch mount's snapshot is the image's one layer.
        _ => out,
    }
}

/// The census exec (see `step::census`): which of the base's directories
/// hold what normalize would change. It reads only the base and the epoch,
/// so the engine caches it across builds of one base, and it runs beside
/// the install.
fn census(opts: &Opts, base: State) -> State {
    let epoch = opts.epoch.to_string();
    let args = vec![
        FRONTEND_BINARY.to_string(),
        "census".into(),
        "--epoch".into(),
        epoch.clone(),
        "--out".into(),
        CENSUS_DIR.into(),
        BASE_DIR.into(),
    ];
    let mut outs = frontend_image(opts)
        .run(args)
        .network(Network::None)
        .envs(helper_env(opts))
        .mount(tree_mount(opts, BASE_DIR, base))
        .name(format!(
            "census: the base's directories that hold what normalize changes (times after {epoch})"
        ))
        .mount(Mount::scratch(CENSUS_DIR))
        .build();
    let Some(out) = outs.mounts.pop() else {
        unreachable!("a scratch mount is writable, so it has an output")
    };
    out
}
