//! The integration tests: one binary, a module per area.
//!
//! `golden` runs the recipe folders under tests/data/recipes through the
//! parser and the converter. `e2e` drives a real Docker Engine exactly as a
//! user would; it needs the harness (`scripts/setup.sh`, which
//! `scripts/test.sh` runs first) and fails loudly without it.

mod cli;
mod docs;
mod e2e;
mod golden;
mod scripts;
mod support;
