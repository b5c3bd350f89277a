//! Faults on real filesystems: a full store, a full restore target, a
//! read-only store. Needs root to mount a size-limited tmpfs and a
//! read-only bind mount (CI runs as root); elsewhere these tests say so
//! and pass without checking.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::{Env, Mount, random_bytes, resize, tmpfs};

fn can_mount() -> bool {
    if !common::is_root() {
        eprintln!("not root: mount-based fault tests skipped");
        return false;
    }
    true
}

fn source(env: &Env, mib: usize) -> PathBuf {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..mib {
        fs::write(src.join(format!("f{i:02}")), random_bytes(i as u64, 1 << 20)).unwrap();
    }
    src
}

#[test]
fn a_full_store_gives_a_clear_error_stays_valid_and_the_next_run_completes() {
    if !can_mount() {
        return;
    }
    let env = Env::new();
    let src = source(&env, 8);
    let m = tmpfs(&env.path("stick"), "3m");
    let st = env.path("stick/store");
    let st = st.to_str().unwrap();
    env.ok(&["store", "init", st, "--kdf-memory-kib", "64", "--kdf-iterations", "1", "--pack-size-mib", "1"]);
    let o = env.run(&["backup", src.to_str().unwrap(), "--to", st]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no space left") && err.contains("free some space"), "{err}");
    assert!(env.run(&["check", st]).status.success(), "a full disk left an invalid store");
    resize(&m, "64m");
    let r = env.json(&["backup", src.to_str().unwrap(), "--to", st]);
    // What arrived before the disk filled is not sent again.
    assert!(r["bytes_added"].as_u64().unwrap() < 7 << 20, "{r}");
    let out = env.path("out");
    env.ok(&["restore", st, "latest", "--target", out.to_str().unwrap()]);
    common::assert_same_tree(&src, &out);
    assert!(env.run(&["check", st, "--read-data"]).status.success());
}

#[test]
fn a_full_restore_target_skips_and_names_files_and_leaves_no_temp_files() {
    if !can_mount() {
        return;
    }
    let env = Env::new();
    let src = source(&env, 6);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    let m = tmpfs(&env.path("target"), "3m");
    let o = env.run(&["restore", &st, "latest", "--target", env.path("target").to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let skipped = r["skipped"].as_array().unwrap();
    assert!(!skipped.is_empty() && skipped.iter().all(|s| s["error"].as_str().unwrap().contains("No space left")), "{r}");
    assert!(fs::read_dir(env.path("target")).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with(".ferry-tmp")));
    resize(&m, "64m");
    env.ok(&["restore", &st, "latest", "--target", env.path("target").to_str().unwrap()]);
    common::assert_same_tree(&src, &env.path("target"));
}

#[test]
fn a_read_only_store_can_be_read_but_not_written_and_says_why() {
    if !can_mount() {
        return;
    }
    let env = Env::new();
    let src = source(&env, 2);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    let ro = env.path("ro");
    fs::create_dir_all(&ro).unwrap();
    assert!(Command::new("mount").arg("--bind").arg(&st).arg(&ro).status().unwrap().success());
    let _m = Mount(ro.clone());
    assert!(Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&ro).status().unwrap().success());
    let ro_s = ro.to_str().unwrap();
    fs::write(src.join("new"), b"new").unwrap();
    let o = env.run(&["backup", src.to_str().unwrap(), "--to", ro_s]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    // Reading still works.
    env.ok(&["snapshots", ro_s]);
    let out = env.path("out");
    env.ok(&["restore", ro_s, "latest", "--target", out.to_str().unwrap()]);
    assert!(env.run(&["check", ro_s, "--read-data"]).status.success());
}
