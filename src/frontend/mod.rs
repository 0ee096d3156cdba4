//! The frontend's edge: everything that talks to BuildKit or reads the
//! user's files. May do I/O.
//!
//! - `bridge`: the LLBBridge client over stdio, one build per process;
//! - `errors`: failures as a gRPC status with the recipe lines (pure);
//! - `opts`: the options BuildKit hands over, decoded (pure);
//! - `inputs`: one input pipeline for both (recipe, base image, lockfiles);
//! - `local`: the `llb` subcommand's side, reading local files.

pub mod bridge;
pub mod errors;
pub mod inputs;
pub mod local;
pub mod opts;

/// Several platforms in one build, through the fake LLBBridge.
#[cfg(test)]
mod platform_tests;
/// The verify target through the fake LLBBridge.
#[cfg(test)]
mod verify_tests;
