//! The images every graph starts from: the pinned base (with its
//! environment, PATH and SOURCE_DATE_EPOCH for execs) and the frontend's own
//! image, whose binary the fetch, install, normalize, lock, sbom and verify
//! execs run. Pure: builds LLB only.

use crate::llb::{self, Location, State};

use super::opts::{FRONTEND_SHA256_ENV, Opts};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The base image, and a state on it with the base's environment, PATH and
/// SOURCE_DATE_EPOCH, for execs.
pub(super) fn base_states(opts: &Opts, at: Option<Location>) -> (State, State) {
    let mut base_name = format!("base image {}", opts.base_ref);
    if let Some(note) = &opts.base_note {
        base_name.push_str(&format!(" ({note})"));
    }
    let base = llb::image(
        &opts.base_ref,
        opts.resolve_mode,
        Some(base_name),
        Some(opts.platform.to_pb()),
    )
    .at(at);
    let mut root = base.clone();
    for (k, v) in opts.base.env() {
        root = root.with_env(&k, &v);
    }
    if !root.env().iter().any(|(k, _)| k == "PATH") {
        root = root.with_env("PATH", DEFAULT_PATH);
    }
    root = root.with_env("SOURCE_DATE_EPOCH", &opts.epoch.to_string());
    (base, root)
}

pub(crate) fn frontend_image(opts: &Opts) -> State {
    llb::image(
        &opts.frontend_image,
        opts.resolve_mode,
        Some(format!("frontend image {}", opts.frontend_image)),
        // The worker's own platform: the fetch and normalize steps run our
        // binary natively whatever the target platform is.
        None,
    )
}

/// The environment of a helper exec of our binary: when the frontend image
/// is known only by a tag (see `LocalFrontend`), the sha256 its binary must
/// have.
pub(crate) fn helper_env(opts: &Opts) -> Vec<(String, String)> {
    match &opts.frontend_local {
        Some(local) => vec![(FRONTEND_SHA256_ENV.into(), local.binary_sha256.clone())],
        None => Vec::new(),
    }
}

/// A read-only mount of a whole tree (a root filesystem, the fetched
/// packages) for a helper exec, left out of the engine's content hashing
/// where the engine lets us say so (see `Opts::skip_content_hash`).
pub(super) fn tree_mount(opts: &Opts, dest: &str, tree: State) -> llb::Mount {
    let mount = llb::Mount::readonly(dest, tree);
    match opts.skip_content_hash {
        true => mount.without_content_hash(),
        false => mount,
    }
}
