//! Writes every test vector file to `format-spec/vectors/` (SPEC.md §13).
//!
//! Usage: `cargo run -p ferry-format-spec --bin gen-vectors [DIR]`.
//! The output is deterministic: running it twice changes nothing.

use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map(Into::into).unwrap_or_else(ferry_format_spec::vectors_dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("gen-vectors: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for (name, contents) in ferry_format_spec::generate::generate() {
        let path = dir.join(&name);
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|old| old == contents);
        if unchanged {
            println!("unchanged {}", path.display());
            continue;
        }
        if let Err(e) = std::fs::write(&path, &contents) {
            eprintln!("gen-vectors: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote     {} ({} bytes)", path.display(), contents.len());
    }
    ExitCode::SUCCESS
}
