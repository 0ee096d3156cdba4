//! What differs between distros, as plain data and text parsing: the
//! package tools (`install`), the package sources a base image is set up
//! with (`sources`), and the architecture a package name says (`arch`).
//! Pure: no I/O.

pub mod arch;
pub mod install;
pub mod sources;
