//! Replicas and sneakernet: init, store init --like, push, clone, pull,
//! status, across two replicas and one store, through the binary.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{Env, assert_same_replica, random_bytes};

fn laptop(env: &Env) -> String {
    let st = env.replica_and_store("laptop", "stick");
    let l = env.path("laptop");
    fs::create_dir_all(l.join("src/deep")).unwrap();
    fs::write(l.join("README"), b"hello").unwrap();
    fs::write(l.join("src/main.rs"), b"fn main() {}\n").unwrap();
    fs::write(l.join("src/deep/data.bin"), random_bytes(1, 3 << 20)).unwrap();
    std::os::unix::fs::symlink("src/main.rs", l.join("link")).unwrap();
    st
}

#[test]
fn push_clone_edit_push_pull_converge() {
    let env = Env::new();
    let st = laptop(&env);
    let r = env.in_dir_json("laptop", &["push", &st]);
    assert!(r["snapshot"].is_string());
    env.clone_to(&st, "desktop");
    assert_same_replica(&env.path("laptop"), &env.path("desktop"));
    // The first push after a clone reads nothing: pull seeded the file cache.
    let again = env.in_dir_json("desktop", &["push", &st]);
    assert_eq!(again["bytes_read"], 0, "{again}");
    // Laptop edits, pushes; desktop pulls.
    fs::write(env.path("laptop/README"), b"hello again").unwrap();
    fs::remove_file(env.path("laptop/link")).unwrap();
    fs::create_dir(env.path("laptop/new dir")).unwrap();
    fs::write(env.path("laptop/new dir/n.txt"), b"new").unwrap();
    let status = env.in_dir_json("laptop", &["status"]);
    let mut changes: Vec<String> = status["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["kind"].as_str().unwrap(), c["path"].as_str().unwrap()))
        .collect();
    changes.sort();
    assert_eq!(changes, ["deleted link", "modified README", "new new dir", "new new dir/n.txt"]);
    // The desktop pushed a snapshot the laptop has not seen: pull first.
    let o = env.in_dir("laptop", &["push", &st]);
    assert_eq!(o.status.code(), Some(1));
    env.in_dir_json("laptop", &["pull", &st]);
    env.in_dir_json("laptop", &["push", &st]);
    let p = env.in_dir_json("desktop", &["pull", &st]);
    assert_eq!(p["conflicts"].as_array().unwrap().len(), 0, "{p}");
    assert_same_replica(&env.path("laptop"), &env.path("desktop"));
    let s = env.in_dir_json("desktop", &["status"]);
    assert_eq!(s, serde_json::json!({"changes": [], "not_pulled": []}), "clean after pull: {s}");
    assert!(env.run(&["check", &st, "--read-data"]).status.success());
}

#[test]
fn a_rename_travels_as_a_rename_and_reads_nothing_from_the_store() {
    let env = Env::new();
    let st = laptop(&env);
    env.in_dir_json("laptop", &["push", &st]);
    env.clone_to(&st, "desktop");
    fs::create_dir(env.path("laptop/moved")).unwrap();
    fs::rename(env.path("laptop/src/deep/data.bin"), env.path("laptop/moved/data.bin")).unwrap();
    let status = env.in_dir_json("laptop", &["status"]);
    assert!(status["changes"].as_array().unwrap().iter().any(|c| c["kind"] == "renamed" && c["from"] == "src/deep/data.bin"), "{status}");
    let push = env.in_dir_json("laptop", &["push", &st]);
    assert!(push["bytes_added"].as_u64().unwrap() < 4096, "a rename must cost no block data: {push}");
    let pull = env.in_dir_json("desktop", &["pull", &st]);
    assert!(pull["actions"].as_array().unwrap().iter().any(|a| a["action"] == "rename"), "{pull}");
    assert_eq!(pull["bytes_from_store"], 0, "{pull}");
    assert_same_replica(&env.path("laptop"), &env.path("desktop"));
}

#[test]
fn small_edits_and_editor_saves_send_little() {
    let env = Env::new();
    let st = env.replica_and_store("laptop", "stick");
    let big = env.path("laptop/big.bin");
    let mut data = random_bytes(7, 24 << 20);
    fs::write(&big, &data).unwrap();
    env.in_dir_json("laptop", &["push", &st]);
    env.clone_to(&st, "desktop");
    // (a) 4 KiB overwrite in the middle.
    data[12 << 20..(12 << 20) + 4096].fill(0x55);
    fs::write(&big, &data).unwrap();
    let a = env.in_dir_json("laptop", &["push", &st])["bytes_added"].as_u64().unwrap();
    // (b) one byte inserted at the start.
    data.insert(0, b'!');
    fs::write(&big, &data).unwrap();
    let b = env.in_dir_json("laptop", &["push", &st])["bytes_added"].as_u64().unwrap();
    // (d) an editor-style save: write a temp file, rename it over the original.
    fs::write(env.path("laptop/.big.bin.swp"), &data).unwrap();
    fs::rename(env.path("laptop/.big.bin.swp"), &big).unwrap();
    let d = env.in_dir_json("laptop", &["push", &st])["bytes_added"].as_u64().unwrap();
    // Default chunks average 1 MiB: an edit costs a few blocks, not the 24 MiB file.
    for (what, n) in [("4 KiB overwrite", a), ("1-byte insert", b)] {
        assert!(n < 6 << 20, "{what} wrote {n} bytes");
    }
    assert!(d < 16 << 10, "an editor save of unchanged content wrote {d} bytes");
    let pull = env.in_dir_json("desktop", &["pull", &st]);
    assert!(pull["bytes_from_local"].as_u64().unwrap() > 10 << 20, "unchanged blocks come from the local file: {pull}");
    assert_same_replica(&env.path("laptop"), &env.path("desktop"));
}

#[test]
fn pull_with_a_conflict_changes_nothing_and_push_then_asks_for_a_merge() {
    let env = Env::new();
    let st = laptop(&env);
    env.in_dir_json("laptop", &["push", &st]);
    env.clone_to(&st, "desktop");
    fs::write(env.path("laptop/README"), b"laptop version").unwrap();
    fs::write(env.path("laptop/src/main.rs"), b"fn main() { laptop() }\n").unwrap();
    env.in_dir_json("laptop", &["push", &st]);
    fs::write(env.path("desktop/README"), b"desktop version").unwrap();
    let o = env.in_dir("desktop", &["pull", &st, "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["conflicts"], serde_json::json!(["README"]));
    assert_eq!(fs::read(env.path("desktop/README")).unwrap(), b"desktop version");
    // Like `git pull` over a conflicting local change, nothing was applied:
    // a half-applied snapshot would make its changes look like this
    // replica's own to the next push (model test, seed 61233).
    assert_ne!(fs::read(env.path("desktop/src/main.rs")).unwrap(), b"fn main() { laptop() }\n");
    assert!(r["actions"].as_array().unwrap().is_empty(), "{r}");
    let o = env.in_dir("desktop", &["push", &st]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ferry sync"), "{}", String::from_utf8_lossy(&o.stderr));
    // A plain pull without local changes on top of the laptop's push is refused for the laptop until it pulls.
    fs::write(env.path("desktop/other"), b"x").unwrap();
    env.in_dir_json("desktop", &["push", &st, "--force"]);
    let o = env.in_dir("laptop", &["push", &st]);
    assert_eq!(o.status.code(), Some(1), "laptop must pull before pushing over desktop's snapshot");
    assert!(String::from_utf8_lossy(&o.stderr).contains("ferry pull"));
}

#[test]
fn ferryignore_paths_are_never_touched() {
    let env = Env::new();
    let st = laptop(&env);
    fs::write(env.path("laptop/.ferryignore"), "*.tmp\n").unwrap();
    fs::write(env.path("laptop/scratch.tmp"), b"laptop scratch").unwrap();
    env.in_dir_json("laptop", &["push", &st]);
    env.clone_to(&st, "desktop");
    assert!(!env.path("desktop/scratch.tmp").exists(), "ignored file travelled");
    fs::write(env.path("desktop/scratch.tmp"), b"desktop scratch").unwrap();
    fs::write(env.path("laptop/README"), b"changed").unwrap();
    env.in_dir_json("laptop", &["push", &st]);
    env.in_dir_json("desktop", &["pull", &st]);
    assert_eq!(fs::read(env.path("desktop/scratch.tmp")).unwrap(), b"desktop scratch");
    assert_eq!(fs::read(env.path("desktop/README")).unwrap(), b"changed");
}

#[test]
fn dry_runs_change_nothing() {
    let env = Env::new();
    let st = laptop(&env);
    let r = env.in_dir_json("laptop", &["push", &st, "--dry-run"]);
    assert_eq!(r["snapshot"], serde_json::Value::Null);
    assert!(r["bytes_new_plain"].as_u64().unwrap() >= 3 << 20);
    assert!(common::files_under(&env.path("stick/snapshots")).is_empty());
    env.in_dir_json("laptop", &["push", &st]);
    env.clone_to(&st, "desktop");
    fs::write(env.path("laptop/README"), b"changed").unwrap();
    env.in_dir_json("laptop", &["push", &st]);
    let p = env.in_dir_json("desktop", &["pull", &st, "--dry-run"]);
    assert_eq!(p["actions"], serde_json::json!([{"action": "write", "path": "README", "from": null}]));
    assert_eq!(fs::read(env.path("desktop/README")).unwrap(), b"hello");
    // And the real pull still happens afterwards.
    env.in_dir_json("desktop", &["pull", &st]);
    assert_eq!(fs::read(env.path("desktop/README")).unwrap(), b"changed");
}

#[test]
fn clone_picks_the_folder_or_asks() {
    let env = Env::new();
    let st = laptop(&env);
    env.in_dir_json("laptop", &["push", &st]);
    // A second folder of the same family, pushed to the same store.
    let photos = env.path("photos");
    env.ok(&["init", photos.to_str().unwrap(), "--like", &st, "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    fs::write(photos.join("cat.jpg"), random_bytes(9, 10_000)).unwrap();
    env.in_dir_json("photos", &["push", &st]);
    // A replica of another family cannot push here.
    let other = env.path("other");
    env.ok(&["init", other.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    let o = env.in_dir("other", &["push", &st]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not open with this key family"), "{}", String::from_utf8_lossy(&o.stderr));
    // Two folders: clone asks which.
    let o = env.run(&["clone", &st, env.path("c").to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 synced folders") && err.contains("--folder") && err.contains("photos"), "{err}");
    let o = env.run(&[
        "clone",
        &st,
        env.path("c").to_str().unwrap(),
        "--folder",
        photos.canonicalize().unwrap().to_str().unwrap(),
        "--kdf-memory-kib",
        "64",
        "--kdf-iterations",
        "1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_replica(&photos, &env.path("c"));
}

#[test]
fn push_killed_at_several_points_resumes_and_clones_identically() {
    let env = Env::new();
    let st = env.replica_and_store("laptop", "stick");
    for i in 0..12 {
        fs::write(env.path(&format!("laptop/f{i:02}")), random_bytes(50 + i, 4 << 20)).unwrap();
    }
    for wait_packs in [2usize, 9, 20] {
        let mut child =
            env.cmd().args(["-C", env.path("laptop").to_str().unwrap(), "push", &st]).stdout(std::process::Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while common::files_under(&env.path("stick/packs")).len() < wait_packs && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().ok();
        child.wait().unwrap();
        let check = env.run(&["check", &st]);
        assert!(check.status.success(), "after kill at {wait_packs} packs: {}", String::from_utf8_lossy(&check.stderr));
    }
    env.in_dir_json("laptop", &["push", &st]);
    env.clone_to(&st, "desktop");
    assert_same_replica(&env.path("laptop"), &env.path("desktop"));
    assert!(env.run(&["check", &st, "--read-data"]).status.success());
}

#[test]
fn two_replicas_pushing_to_one_store_at_once_never_corrupt_it() {
    let env = Env::new();
    let st = laptop(&env);
    env.in_dir_json("laptop", &["push", &st]);
    env.clone_to(&st, "desktop");
    for (i, who) in ["laptop", "desktop"].iter().enumerate() {
        for j in 0..4 {
            fs::write(env.path(&format!("{who}/{who}-{j}")), random_bytes(100 + (i * 10 + j) as u64, 2 << 20)).unwrap();
        }
    }
    let a = env.cmd().args(["-C", env.path("laptop").to_str().unwrap(), "-q", "push", &st, "--force"]).spawn().unwrap();
    let b = env.cmd().args(["-C", env.path("desktop").to_str().unwrap(), "-q", "push", &st, "--force"]).spawn().unwrap();
    assert!(a.wait_with_output().unwrap().status.success());
    assert!(b.wait_with_output().unwrap().status.success());
    let check = env.run(&["check", &st, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    // Both heads are there and each restores whole.
    let snaps = env.json(&["snapshots", &st]);
    let n = snaps.as_array().unwrap().len();
    for s in snaps.as_array().unwrap()[n - 2..].iter() {
        let out = env.path(&format!("restore-{}", &s["id"].as_str().unwrap()[..8]));
        env.ok(&["restore", &st, s["id"].as_str().unwrap(), "--target", out.to_str().unwrap()]);
        assert!(common::files_under(&out).len() >= 8);
    }
}

#[test]
fn the_replica_is_locked_while_in_use() {
    let env = Env::new();
    let st = env.replica_and_store("laptop", "stick");
    for i in 0..8 {
        fs::write(env.path(&format!("laptop/f{i}")), random_bytes(i, 4 << 20)).unwrap();
    }
    let mut child = env.cmd().args(["-C", env.path("laptop").to_str().unwrap(), "push", &st]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let o = env.in_dir("laptop", &["status"]);
    let first_done = child.try_wait().unwrap().is_some();
    child.wait().unwrap();
    if !first_done {
        assert_eq!(o.status.code(), Some(11));
        assert!(String::from_utf8_lossy(&o.stderr).contains("in use by another ferry process"), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(env.in_dir("laptop", &["status"]).status.success());
}

/// The push file cache vouches for block IDs by the index files of the
/// store they were pushed to. A push to another store of the family must
/// not take that as "the blocks are there": every block goes, and the
/// second store checks whole and clones the same folder.
#[test]
fn a_push_to_a_second_store_sends_every_block_the_first_one_vouched_for() {
    let env = Env::new();
    let stick = laptop(&env);
    env.in_dir_json("laptop", &["push", &stick]);
    // The next push to the same store reads and looks up nothing new.
    let again = env.in_dir_json("laptop", &["push", &stick]);
    assert_eq!(again["bytes_read"], 0, "{again}");
    let disk = env.path("disk").to_str().unwrap().to_string();
    env.in_dir("laptop", &["store", "init", &disk, "--like", ".", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    let p = env.in_dir_json("laptop", &["push", &disk]);
    assert!(p["bytes_added"].as_u64().unwrap() > 3 << 20, "the blocks of data.bin did not reach the second store: {p}");
    let check = env.run(&["check", &disk, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    env.clone_to(&disk, "desktop");
    assert_same_replica(&env.path("laptop"), &env.path("desktop"));
    // Back to the first store (which now lacks the second one's snapshot
    // and tree blocks): still whole.
    env.in_dir_json("laptop", &["push", &stick]);
    let check = env.run(&["check", &stick, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
