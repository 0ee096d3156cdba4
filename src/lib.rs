//! repro-frontend: a BuildKit gateway frontend that turns a recipe (a base
//! image pinned by digest, a SHA256SUMS lockfile, build steps) into a
//! reproducible image.
//!
//! The pipeline, one stage per module, pure but for the edges:
//!
//! - `yaml` -> `recipe`: the recipe text into a checked model with spans
//!   (`subst` expands `${NAME}`, `template` renders provider URLs);
//! - `lockfile`: SHA256SUMS into checked entries; `reference`: image names;
//! - `convert`: recipe + lockfile -> LLB (the image, and the lock target's
//!   graph), built with `llb` (our State and content-addressed ops), the
//!   config from `image`, the install command from `install`, default
//!   providers from `sources`;
//! - `gateway`: the only module that talks to BuildKit (LLBBridge over
//!   stdio), with `opts` decoding the frontend's options; `local` runs the
//!   same conversion offline for the `llb` subcommand.
//!
//! Three modules run inside the build, in execs of the frontend's own image,
//! and touch a filesystem: `fetch` (providers tried in order, every blob
//! checked), `normalize` (copy onto scratch, clamp times, prune) and `lock`
//! (apt's answer into a SHA256SUMS).

pub mod convert;
pub mod fetch;
pub mod gateway;
pub mod image;
pub mod install;
pub mod install_step;
pub mod keystore;
pub mod llb;
pub mod local;
pub mod lock;
pub mod lockfile;
pub mod normalize;
pub mod opts;
pub mod recipe;
pub mod reference;
pub mod sources;
pub mod subst;
pub mod template;
pub mod yaml;
