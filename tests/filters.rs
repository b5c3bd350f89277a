//! Exclude rules: --exclude, --include, .ferryignore, --exclude-if-present.

mod common;

use std::fs;

use common::Env;

fn tree(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    for d in ["a/build", "a/src", "cache-me", "b"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in ["a/build/out.o", "a/src/main.rs", "a/src/main.o", "a/notes.txt", "cache-me/blob", "b/keep.o", "b/x.log", "top.txt"] {
        fs::write(src.join(f), f.as_bytes()).unwrap();
    }
    fs::write(src.join("cache-me/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55").unwrap();
    // gitignore semantics, nested: a/.ferryignore applies below a/ only; negation re-includes.
    fs::write(src.join(".ferryignore"), "*.log\n").unwrap();
    fs::write(src.join("a/.ferryignore"), "build/\n*.o\n").unwrap();
    fs::write(src.join("b/.ferryignore"), "!keep.o\n").unwrap();
    src
}

fn listed(env: &Env, st: &str) -> Vec<String> {
    let v = env.json(&["ls", st, "latest"]);
    let mut out: Vec<String> =
        v.as_array().unwrap().iter().filter(|e| e["type"] == "file").map(|e| e["path"].as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

#[test]
fn ferryignore_exclude_and_exclude_if_present() {
    let env = Env::new();
    let src = tree(&env);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st, "--exclude", "notes.txt", "--exclude-if-present", "CACHEDIR.TAG"]);
    assert_eq!(listed(&env, &st), vec![".ferryignore", "a/.ferryignore", "a/src/main.rs", "b/.ferryignore", "b/keep.o", "top.txt"]);
}

#[test]
fn include_takes_only_matching_files() {
    let env = Env::new();
    let src = tree(&env);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st, "--include", "*.rs", "--include", "/top.txt"]);
    assert_eq!(listed(&env, &st), vec!["a/src/main.rs", "top.txt"]);
    // Folders with nothing taken are left out entirely.
    let all = env.json(&["ls", &st, "latest"]);
    assert!(!all.as_array().unwrap().iter().any(|e| e["path"] == "b"), "{all}");
}

#[test]
fn no_ignore_files_takes_everything_but_excludes() {
    let env = Env::new();
    let src = tree(&env);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st, "--no-ignore-files", "--exclude", "cache-me"]);
    assert_eq!(listed(&env, &st).len(), 10);
}

#[test]
fn a_bad_pattern_is_a_clear_error() {
    let env = Env::new();
    let src = tree(&env);
    let st = env.store("store");
    let o = env.run(&["backup", src.to_str().unwrap(), "--to", &st, "--exclude", "a/**/[z-a]"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad pattern"), "{}", String::from_utf8_lossy(&o.stderr));
}
