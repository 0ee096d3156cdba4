//! What runs inside the build, in execs of the frontend's own image or of
//! the target rootfs: these modules read and write files and run the
//! distro's tools. Do I/O; `cli::steps` runs them. The conversion uses only
//! their pure parts (the fetch plan's types and `fetch::locate`, the verify
//! step's file names), never their I/O.
//!
//! - `fetch`: providers tried in order, every blob checked;
//! - `install`: the distro's tool on the verified package files, offline;
//! - `normalize`: copy onto scratch, clamp times, prune (with `keystore`);
//! - `census`: the base's directories where normalize would change
//!   something, so that `image.layers: base` can leave the others out
//!   where the build did not touch them;
//! - `inroot`: paths inside a mounted rootfs, its links never followed out;
//! - `delta`: the normalized copy pruned to what differs from the base
//!   image (deletions as OCI whiteouts) and applied onto a writable mount
//!   of the base, whose snapshot is the layer over the base's own;
//! - `lock`: apt's answer turned into a SHA256SUMS;
//! - `verify`: a rebuild compared with a published image, file by file;
//! - `sbom`: the built rootfs's packages into an SPDX document.
//! - `secrets`: the private keys and machine identities the build made,
//!   found and decided on for normalize (removed, emptied, kept or refused).

pub mod census;
pub mod delta;
pub mod fetch;
pub mod inroot;
pub mod install;
pub mod keystore;
pub mod lock;
pub mod normalize;
pub mod sbom;
pub mod secrets;
pub mod verify;
