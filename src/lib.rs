//! repro-frontend: a BuildKit gateway frontend that turns a recipe (a base
//! image pinned by digest, a SHA256SUMS lockfile, build steps) into a
//! reproducible image.
//!
//! The pipeline, pure but for the edges:
//!
//! - `recipe`: the recipe text into a checked model with spans (with
//!   `recipe::yaml`, `recipe::args` for `${NAME}`, `recipe::template` for
//!   provider URLs, `recipe::reference` for image names);
//! - `lockfile`: SHA256SUMS into checked entries (with `lockfile::header`
//!   for the lock target's header and `lockfile::apt` for apt's answer);
//! - `digest`: the hex form of a sha256, checked once for every layer;
//! - `distro`: package tools and package sources per distro;
//! - `convert`: recipe + lockfile -> LLB (the image, and the lock target's
//!   graph), built with `llb` (our State and content-addressed ops), and the
//!   image config (`convert::image`);
//! - `sbom`: the image's SPDX SBOM from the conversion's facts and the
//!   rootfs's package database (pure; `step::sbom` reads the files);
//! - `located`: an error at a file's line and column, carried as data so
//!   the frontend can send the file's lines with the failure;
//! - `frontend`: the only place that talks to BuildKit or reads the user's
//!   files: `frontend::opts` parses the options once (pure),
//!   `frontend::inputs` reads the inputs once through its `Inputs` trait and
//!   prepares the conversion's inputs, `frontend::gateway` is the LLBBridge
//!   client over stdio and one build's orchestration and result, and
//!   `frontend::local` the `llb` subcommand's side on local files;
//! - `cli`: the subcommands' bodies under `main.rs`'s argument parsing
//!   (`cli::steps` for the steps that run inside the build).
//!
//! `step` holds what runs inside the build, in execs of the frontend's own
//! image or the target rootfs: fetch, install, normalize, lock, sbom,
//! verify. Those, `cli` and `frontend` (but for `opts` and `errors`) do
//! I/O; every other module is pure.

pub mod cli;
pub mod convert;
pub mod digest;
pub mod distro;
pub mod frontend;
pub mod llb;
pub mod located;
pub mod lockfile;
pub mod recipe;
pub mod sbom;
pub mod step;
