//! End-to-end: `docker build -f <recipe> <context>` through a real engine.

mod clients;
pub mod corpus;
mod cross_engine;
mod distros;
pub mod engine3;
mod errors;
pub mod examples;
mod frontend_image;
mod image;
mod layers;
mod lock;
mod newcomer;
pub mod platforms;
mod provenance;
mod providers;
mod sbom;
mod secrets;
mod targets;
mod verify;

use crate::support::{harness, pool::PoolServer};

/// The build args that point an example at the harness's base image and at
/// the test's package server, plus `--no-cache`.
pub fn example_args(pool: &PoolServer) -> Vec<String> {
    vec![
        "--no-cache".into(),
        "--build-arg".into(),
        format!("BASE={}", harness().base_ref()),
        "--build-arg".into(),
        format!("MIRROR={}", pool.url),
    ]
}

/// Removes an image when the test ends, pass or fail (what this test's
/// builds made of it: see `support::remove_image`).
pub struct ImageGuard(pub Option<String>);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        if let Some(id) = &self.0 {
            crate::support::remove_image(id);
        }
    }
}
