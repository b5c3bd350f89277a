//! End-to-end tests that drive the `ferry` binary live in `tests/`,
//! one file per risk. Run them with `cargo test --workspace` (which also
//! builds the binary).
