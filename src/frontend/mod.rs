//! The frontend's edge: everything that talks to BuildKit or reads the
//! user's files. The pipeline goes one way: options parsed once (`opts`),
//! inputs read once through the `inputs::Inputs` trait (the gateway's or the
//! local folder's side), converted purely, then solved and returned.
//!
//! - `opts`: the options BuildKit hands over, typed, target included (pure);
//! - `inputs`: the `Inputs` trait and the pipeline from the recipe, the base
//!   image and the lockfiles to the conversion's inputs (I/O only through
//!   the trait);
//! - `gateway`: the LLBBridge client over stdio and one build per process
//!   (I/O);
//! - `local`: the `llb` subcommand's side, reading local files (I/O);
//! - `errors`: failures as a gRPC status with the recipe lines (pure).

pub mod errors;
pub mod gateway;
pub mod inputs;
pub mod local;
pub mod opts;

/// The gateway and `llb` give the same Definition for every golden case.
#[cfg(test)]
mod parity_tests;
/// Several platforms in one build, through the fake LLBBridge.
#[cfg(test)]
mod platform_tests;
/// The verify target through the fake LLBBridge.
#[cfg(test)]
mod verify_tests;
