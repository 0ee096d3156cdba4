//! Recipe + lockfile -> LLB: the heart of the frontend.
//!
//! The graph, in order:
//! 1. the base image, by digest;
//! 2. the lockfile's blobs gathered into one read-only directory: one HTTP
//!    source per blob, verified by BuildKit against its sha256, when the
//!    recipe has a single http(s) provider and the lockfile no sizes;
//!    otherwise fetch execs of our own binary that try the providers in
//!    order and stop at each blob's size and deadline (see `step::fetch`);
//! 3. one install exec of the whole set (dpkg, rpm, apk or pacman) with no
//!    network;
//! 4. the recipe's steps, each with `SOURCE_DATE_EPOCH` set;
//! 5. the normalize exec: our own static binary, from our own image, reads
//!    the target mounted read-only at /target and writes the normalized copy
//!    to a scratch mount at /out (see `step::normalize`); that mount is the
//!    result: one layer, no whiteouts.
//!
//! The files, by role: `opts` (the inputs, outputs and shared paths),
//! `epoch`, `base` (the base and frontend images), `locator` (recipe lines
//! for ops), `image_llb` (the image target: `to_llb`), `packages`, `steps`,
//! `normalize`, `image` (the config), `lock`, `sbom` and `verify` (the other
//! targets), `provenance` (the SLSA attestation), `platform`. All pure; the children import from each other,
//! never from this file.

mod base;
mod epoch;
pub mod image;
mod image_llb;
mod locator;
mod lock;
mod normalize;
mod opts;
mod packages;
pub mod platform;
pub mod provenance;
pub mod sbom;
mod steps;
#[cfg(test)]
mod tests;
pub mod verify;

pub use epoch::{EpochError, choose_epoch};
pub use image_llb::to_llb;
pub use lock::{lock_file, lock_llb};
pub use opts::{
    BASE_DIR, ConvertError, Converted, DELTA_SNAPSHOTTER, FRONTEND_BINARY, FRONTEND_SHA256_ENV,
    LocalFrontend, OUT_DIR, Opts, PACKAGES_DIR, PROVIDERS_ARG, SECRETS_RECORD, TARGET_DIR,
    TOOL_DIR, extra_providers,
};
pub use platform::Platform;
