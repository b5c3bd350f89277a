//! # ferry-format-spec
//!
//! Test vectors for ferry's on-disk format ([`SPEC.md`](../SPEC.md)) and the
//! code that generates them.
//!
//! - [`generate`] builds every vector file in memory, deterministically:
//!   fixed master keys, nonces and salts, no randomness anywhere. The
//!   `gen-vectors` binary writes them to `format-spec/vectors/`; the
//!   `vectors` test fails when the checked-in files are stale.
//! - [`model`] is the JSON shape of the files (SPEC.md §13).
//! - [`mod@reference`] is a second, naive implementation written from the
//!   spec, used to craft invalid objects and to check the spec against the
//!   store crate.

pub mod generate;
pub mod model;
pub mod reference;

use std::path::PathBuf;

/// The folder holding the checked-in vector files.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}
