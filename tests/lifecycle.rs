//! forget and gc through the binary: space comes back, nothing needed is
//! lost, gc and writers exclude each other, gc survives kill -9.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{Env, random_bytes};

fn store_bytes(env: &Env) -> u64 {
    common::files_under(&env.path("store")).iter().map(|p| fs::metadata(p).unwrap().len()).sum()
}

#[test]
fn forget_then_gc_frees_unused_data_and_repacks_partly_used_packs() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Small files share packs: deleting some leaves partly used packs.
    for i in 0..40 {
        fs::write(src.join(format!("f{i:02}")), random_bytes(i, 100_000)).unwrap();
    }
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    for i in (0..40).step_by(2) {
        fs::remove_file(src.join(format!("f{i:02}"))).unwrap();
    }
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    let dry = env.json(&["forget", &st, "--keep-last", "1", "--dry-run"]);
    assert_eq!(dry["removed"], 1);
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 2, "dry run removed a snapshot");
    env.ok(&["forget", &st, "--keep-last", "1"]);
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 1);
    let before = store_bytes(&env);
    let gdry = env.json(&["gc", &st, "--dry-run"]);
    assert_eq!(store_bytes(&env), before, "gc --dry-run changed the store");
    let g = env.json(&["gc", &st]);
    assert!(g["packs_repacked"].as_u64().unwrap() > 0, "{g}");
    let after = store_bytes(&env);
    assert!(after < before - 1_500_000, "gc freed too little: {before} -> {after}");
    assert!(gdry["bytes_freed"].as_i64().unwrap() > 1_500_000, "{gdry}");
    let check = env.run(&["check", &st, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    common::assert_same_tree(&src, &out);
    // A second gc finds nothing to do.
    let again = env.json(&["gc", &st]);
    assert_eq!(again["packs_dropped"], 0);
    assert_eq!(again["packs_repacked"], 0);
}

#[test]
fn gc_racing_a_concurrent_push_never_deletes_what_the_new_snapshot_needs() {
    let env = Env::new();
    let st = env.replica_and_store("r", "store");
    for i in 0..10 {
        fs::write(env.path(&format!("r/old{i}")), random_bytes(200 + i, 1 << 20)).unwrap();
    }
    env.in_dir_json("r", &["push", &st]);
    // Drop the old content from the newest state, keep only the newest snapshot.
    for i in 0..10 {
        fs::remove_file(env.path(&format!("r/old{i}"))).unwrap();
    }
    for i in 0..12 {
        fs::write(env.path(&format!("r/new{i}")), random_bytes(300 + i, 3 << 20)).unwrap();
    }
    // Push (retrying while gc holds the store) while gc runs again and again.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut refused, mut ran, mut pushes_refused) = (0, 0, 0);
    let pushed = loop {
        let mut push = env
            .cmd()
            .args(["-C", env.path("r").to_str().unwrap(), "-q", "push", &st])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        while push.try_wait().unwrap().is_none() && Instant::now() < deadline {
            let o = env.run(&["gc", &st]);
            if o.status.success() {
                ran += 1;
            } else {
                assert!(String::from_utf8_lossy(&o.stderr).contains("in use"), "{}", String::from_utf8_lossy(&o.stderr));
                refused += 1;
            }
        }
        let out = push.wait_with_output().unwrap();
        if out.status.success() {
            break true;
        }
        assert!(String::from_utf8_lossy(&out.stderr).contains("gc is running"), "{}", String::from_utf8_lossy(&out.stderr));
        pushes_refused += 1;
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(pushed, "push never got through ({pushes_refused} refusals)");
    assert!(refused > 0 || ran > 0);
    env.ok(&["forget", &st, "--keep-last", "1"]);
    env.ok(&["gc", &st]);
    let check = env.run(&["check", &st, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    env.clone_to(&st, "clone");
    common::assert_same_replica(&env.path("r"), &env.path("clone"));
}

#[test]
fn gc_killed_at_any_point_leaves_a_store_check_accepts() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let st = env.store("store");
    for round in 0..4u64 {
        for i in 0..20 {
            fs::write(src.join(format!("f{i}")), random_bytes(round * 100 + i, 300_000)).unwrap();
        }
        env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    }
    env.ok(&["forget", &st, "--keep-last", "1"]);
    for delay_ms in [5u64, 20, 60, 150] {
        let mut gc = env.cmd().args(["-q", "gc", &st]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = gc.kill();
        gc.wait().unwrap();
        let check = env.run(&["check", &st, "--read-data"]);
        assert!(check.status.success(), "after kill at {delay_ms} ms: {}", String::from_utf8_lossy(&check.stderr));
    }
    // The killed gc's lock names a dead process on this host: it does not block anyone.
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    env.ok(&["gc", &st]);
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    common::assert_same_tree(&src, &out);
}

#[test]
fn forget_keeps_every_head_of_a_synced_folder() {
    let env = Env::new();
    let st = env.replica_and_store("a", "store");
    fs::write(env.path("a/x"), b"x").unwrap();
    env.in_dir_json("a", &["push", &st]);
    env.clone_to(&st, "b");
    fs::write(env.path("a/x"), b"from a").unwrap();
    fs::write(env.path("b/x"), b"from b").unwrap();
    env.in_dir_json("a", &["push", &st]);
    env.in_dir_json("b", &["push", &st, "--force"]);
    let f = env.json(&["forget", &st, "--keep-last", "1"]);
    let kept: Vec<_> = f["snapshots"].as_array().unwrap().iter().filter(|s| s["keep"] == true).collect();
    assert_eq!(kept.len(), 2, "both heads stay: {f}");
    assert!(kept.iter().any(|s| s["reasons"].as_array().unwrap().iter().any(|r| r == "head")));
}

/// The file cache vouches for its block IDs while the store keeps the
/// index files it recorded: a backup that changed nothing reads nothing.
/// Once gc dropped those blocks (and replaced the indexes that listed
/// them), the next backup must read the files again, or its snapshot
/// would name blocks the store no longer has.
#[test]
fn a_backup_after_gc_dropped_the_cached_blocks_reads_the_files_again() {
    let env = Env::new();
    let src = env.path("src");
    let other = env.path("other");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&other).unwrap();
    for i in 0..5 {
        fs::write(src.join(format!("f{i}")), random_bytes(100 + i, 50_000)).unwrap();
    }
    fs::write(other.join("x"), random_bytes(7, 1000)).unwrap();
    let st = env.store("store");
    let first = env.json(&["backup", src.to_str().unwrap(), "--to", &st, "--tag", "old"]);
    assert_eq!(first["bytes_read"], 250_000, "{first}");
    let again = env.json(&["backup", src.to_str().unwrap(), "--to", &st, "--tag", "old"]);
    assert_eq!(again["bytes_read"], 0, "an unchanged folder was read again: {again}");
    // Only the other folder's snapshot stays; gc drops every block of src.
    env.ok(&["backup", other.to_str().unwrap(), "--to", &st, "--tag", "keep"]);
    env.ok(&["forget", &st, "--keep-tag", "keep"]);
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 1);
    env.ok(&["gc", &st]);
    let after = env.json(&["backup", src.to_str().unwrap(), "--to", &st]);
    assert_eq!(after["bytes_read"], 250_000, "cached IDs of dropped blocks were trusted: {after}");
    let check = env.run(&["check", &st, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    common::assert_same_tree(&src, &out);
}
