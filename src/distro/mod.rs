//! What differs between distros, as plain data and text parsing: the
//! package tools (`install`) and the package sources a base image is set up
//! with (`sources`). Pure: no I/O.

pub mod install;
pub mod sources;
