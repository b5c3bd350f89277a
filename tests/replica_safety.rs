//! Issue 10, "no version is ever lost": one regression test per known way
//! a concurrent edit could vanish, through the binary. A version survives
//! when it is on every replica, at its path or as a conflict copy (a file
//! whose name contains `.conflict-`). Every version written here carries
//! a unique token, so it can be recognised wherever it ends up.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Env, assert_same_replica, random_bytes, resize, tmpfs};
use filetime::{FileTime, set_file_mtime};

/// Replicas "a" and "b" of one folder holding `files`, through store "st".
fn pair(env: &Env, files: &[(&str, &str)]) -> String {
    let st = env.replica_and_store("a", "st");
    for (p, c) in files {
        put(&env.path("a").join(p), c);
    }
    env.in_dir_json("a", &["push", &st]);
    env.clone_to(&st, "b");
    st
}

fn put(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn text(o: &Output) -> String {
    format!("exit {:?}\nstdout: {}\nstderr: {}", o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs a command in a replica and asserts it succeeded (exit 0).
fn ok_in(env: &Env, who: &str, args: &[&str]) -> Output {
    let o = env.in_dir(who, args);
    // A sync that left conflicts (and says so) exits 3, as a pull does.
    let conflicted = args[0] == "sync" && o.status.code() == Some(3) && text(&o).contains("conflict");
    assert!(o.status.success() || conflicted, "ferry {args:?} in {who}: {}", text(&o));
    o
}

/// Every file of a replica (`.ferry/` and `.ferry-tmp-*` left out): relative path → bytes.
fn files_of(root: &Path) -> Vec<(String, Vec<u8>)> {
    common::files_under(root)
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".ferry/") || p.file_name().unwrap().to_string_lossy().starts_with(".ferry-tmp-") {
                return None;
            }
            if fs::symlink_metadata(&p).unwrap().file_type().is_symlink() {
                return None;
            }
            Some((rel, fs::read(&p).unwrap()))
        })
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Where the version carrying `token` is on a replica (paths of files holding it).
fn where_is(root: &Path, token: &str) -> Vec<String> {
    files_of(root).into_iter().filter(|(_, c)| contains(c, token)).map(|(p, _)| p).collect()
}

/// Asserts the version carrying `token` is on the replica, at `path` or in a conflict copy of it.
fn assert_kept(root: &Path, path: &str, token: &str) {
    let at = where_is(root, token);
    let name = Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
    let stem = name.split('.').next().unwrap().to_string();
    let ok = at
        .iter()
        .any(|p| p == path || (p.contains(".conflict-") && Path::new(p).file_name().unwrap().to_string_lossy().starts_with(&stem)));
    assert!(
        ok,
        "version {token:?} of {path} is lost on {} (found at {at:?}); files there: {:?}",
        root.display(),
        files_of(root).iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
    );
}

fn conflict_copies(root: &Path) -> Vec<String> {
    files_of(root).into_iter().map(|(p, _)| p).filter(|p| p.contains(".conflict-")).collect()
}

fn tmp_files(root: &Path) -> Vec<PathBuf> {
    common::files_under(root).into_iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".ferry-tmp-")).collect()
}

/// Waits (up to 60 s) until `cond` holds or the child exits; true when it held.
fn wait_for(child: &mut std::process::Child, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return cond();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn spawn_in(env: &Env, who: &str, args: &[&str]) -> std::process::Child {
    let d = env.path(who);
    env.cmd().arg("-C").arg(d).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// After a pull left both versions alone, the puller syncs, then the other side syncs:
/// both replicas end up equal and holding every version in `expect` (path, token).
fn sync_both_and_expect(env: &Env, st: &str, first: &str, second: &str, expect: &[(&str, &str)]) {
    ok_in(env, first, &["sync", st]);
    for (p, t) in expect {
        assert_kept(&env.path(first), p, t);
    }
    ok_in(env, second, &["sync", st]);
    ok_in(env, first, &["sync", st]);
    for who in [first, second] {
        for (p, t) in expect {
            assert_kept(&env.path(who), p, t);
        }
    }
    assert_same_replica(&env.path(first), &env.path(second));
}

/// B's pull must leave B's version of `path` alone and say so (exit 3).
fn pull_leaves_alone(env: &Env, who: &str, st: &str, path: &str) {
    let o = env.in_dir(who, &["pull", st, "--json"]);
    assert_eq!(code(&o), Some(3), "pull over a local change must exit 3: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(path), "pull must report {path}: {}", text(&o));
}

// ---------------------------------------------------------------- 1. pull then sync

#[test]
fn pull_then_sync_drops_the_other_sides_edit() {
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v0 base")]);
    fs::write(env.path("a/f.txt"), "edit-from-A tokA1").unwrap();
    ok_in(&env, "a", &["push", &st]);
    fs::write(env.path("b/f.txt"), "edit-from-B tokB1 longer").unwrap();
    pull_leaves_alone(&env, "b", &st, "f.txt");
    assert_eq!(fs::read_to_string(env.path("b/f.txt")).unwrap(), "edit-from-B tokB1 longer");
    sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokA1"), ("f.txt", "tokB1")]);
}

#[test]
fn pull_then_sync_drops_an_edit_beaten_by_a_local_delete() {
    // A edits and pushes; B deletes; B pulls (left alone), then syncs: the edit must survive.
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v0 base"), ("other", "o")]);
    fs::write(env.path("a/f.txt"), "edit-from-A tokA2").unwrap();
    ok_in(&env, "a", &["push", &st]);
    fs::remove_file(env.path("b/f.txt")).unwrap();
    pull_leaves_alone(&env, "b", &st, "f.txt");
    sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokA2")]);
}

#[test]
fn pull_then_sync_drops_a_local_edit_beaten_by_a_remote_delete() {
    // A deletes and pushes; B edits; B pulls (left alone), then syncs: the edit must survive.
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v0 base"), ("other", "o")]);
    fs::remove_file(env.path("a/f.txt")).unwrap();
    ok_in(&env, "a", &["push", &st]);
    fs::write(env.path("b/f.txt"), "edit-from-B tokB3").unwrap();
    pull_leaves_alone(&env, "b", &st, "f.txt");
    sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokB3")]);
}

#[test]
fn pull_then_sync_drops_an_edit_inside_a_folder_the_other_side_replaced_by_a_file() {
    let env = Env::new();
    let st = pair(&env, &[("d/x.txt", "x0 base"), ("other", "o")]);
    fs::write(env.path("a/d/x.txt"), "edit-from-A tokA4").unwrap();
    ok_in(&env, "a", &["push", &st]);
    fs::remove_dir_all(env.path("b/d")).unwrap();
    fs::write(env.path("b/d"), "file-from-B tokB4").unwrap();
    let o = env.in_dir("b", &["pull", &st, "--json"]);
    assert_eq!(code(&o), Some(3), "{}", text(&o));
    assert_eq!(fs::read_to_string(env.path("b/d")).unwrap(), "file-from-B tokB4", "pull replaced B's file");
    ok_in(&env, "b", &["sync", &st]);
    ok_in(&env, "a", &["sync", &st]);
    ok_in(&env, "b", &["sync", &st]);
    for who in ["a", "b"] {
        let root = env.path(who);
        assert!(
            !where_is(&root, "tokA4").is_empty(),
            "A's edit of d/x.txt is lost on {who}: {:?}",
            files_of(&root).iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
        assert!(!where_is(&root, "tokB4").is_empty(), "B's file d is lost on {who}: {:?}", files_of(&root));
    }
    assert_same_replica(&env.path("a"), &env.path("b"));
}

#[test]
fn pull_then_sync_with_three_replicas_drops_the_middle_version() {
    // A pushes vA; B pulls it, edits (vB, seen vA) and pushes; C edited from v0 (vC),
    // pulls (left alone) and syncs. vB was seen by no later edit: it must survive everywhere.
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v0 base")]);
    env.clone_to(&st, "c");
    fs::write(env.path("a/f.txt"), "edit-from-A tokA5").unwrap();
    ok_in(&env, "a", &["push", &st]);
    ok_in(&env, "b", &["pull", &st]);
    fs::write(env.path("b/f.txt"), "edit-from-B tokB5 (on top of A)").unwrap();
    ok_in(&env, "b", &["push", &st]);
    fs::write(env.path("c/f.txt"), "edit-from-C tokC5").unwrap();
    pull_leaves_alone(&env, "c", &st, "f.txt");
    ok_in(&env, "c", &["sync", &st]);
    for who in ["a", "b", "c", "a", "b"] {
        ok_in(&env, who, &["sync", &st]);
    }
    for who in ["a", "b", "c"] {
        assert_kept(&env.path(who), "f.txt", "tokB5");
        assert_kept(&env.path(who), "f.txt", "tokC5");
    }
    assert_same_replica(&env.path("a"), &env.path("b"));
    assert_same_replica(&env.path("a"), &env.path("c"));
}

#[test]
fn pull_then_sync_drops_one_of_two_files_created_at_the_same_path() {
    let env = Env::new();
    let st = pair(&env, &[("other", "o")]);
    put(&env.path("a/new.txt"), "created-by-A tokA6");
    ok_in(&env, "a", &["push", &st]);
    put(&env.path("b/new.txt"), "created-by-B tokB6 differs");
    pull_leaves_alone(&env, "b", &st, "new.txt");
    sync_both_and_expect(&env, &st, "b", "a", &[("new.txt", "tokA6"), ("new.txt", "tokB6")]);
}

#[test]
fn pull_then_sync_drops_a_file_created_where_the_other_side_renamed_a_file() {
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "renamed content tokF7"), ("other", "o")]);
    put(&env.path("a/g.txt"), "created-by-A tokA7");
    ok_in(&env, "a", &["push", &st]);
    fs::rename(env.path("b/f.txt"), env.path("b/g.txt")).unwrap();
    pull_leaves_alone(&env, "b", &st, "g.txt");
    ok_in(&env, "b", &["sync", &st]);
    ok_in(&env, "a", &["sync", &st]);
    ok_in(&env, "b", &["sync", &st]);
    for who in ["a", "b"] {
        let root = env.path(who);
        assert_kept(&root, "g.txt", "tokA7");
        assert!(!where_is(&root, "tokF7").is_empty(), "the renamed file is lost on {who}: {:?}", files_of(&root));
    }
    assert_same_replica(&env.path("a"), &env.path("b"));
}

#[test]
fn pull_then_sync_drops_the_other_sides_edit_when_the_file_is_edited_while_the_pull_runs() {
    // The pull writes "big.bin" first (path order), then "f.txt": f.txt is edited on B
    // once the pull is busy with big.bin, after its scan. Both edits must survive.
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v0 base")]);
    fs::write(env.path("a/big.bin"), random_bytes(77, 48 << 20)).unwrap();
    fs::write(env.path("a/f.txt"), "edit-from-A tokA8").unwrap();
    ok_in(&env, "a", &["push", &st]);
    let mut child = spawn_in(&env, "b", &["pull", &st, "--json"]);
    let b = env.path("b");
    let busy = wait_for(&mut child, || !tmp_files(&b).is_empty());
    // If a (fixed) pull wrote f.txt first, B's edit saw A's version and may replace it.
    let a_was_there = fs::read_to_string(env.path("b/f.txt")).unwrap().contains("tokA8");
    fs::write(env.path("b/f.txt"), "edit-from-B during the pull tokB8").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(busy, "the pull finished before a temp file was seen; use a bigger file");
    assert!(matches!(code(&o), Some(0) | Some(3)), "{}", text(&o));
    assert_kept(&b, "f.txt", "tokB8");
    if a_was_there {
        eprintln!("note: the pull wrote f.txt before big.bin; only B's edit is checked");
        sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokB8")]);
    } else {
        sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokA8"), ("f.txt", "tokB8")]);
    }
}

// ---------------------------------------------------------------- 2. clone over old copies

#[test]
fn clone_into_a_folder_holding_an_older_copy_reports_it_and_sync_keeps_both() {
    let env = Env::new();
    let st = env.replica_and_store("a", "st");
    let new_at = |p: &Path, c: &str, secs: i64| {
        put(p, c);
        set_file_mtime(p, FileTime::from_unix_time(secs, 0)).unwrap();
    };
    new_at(&env.path("a/f.txt"), "newest version tokNEW", 1_700_000_500);
    new_at(&env.path("a/same.txt"), "identical", 1_700_000_000);
    ok_in(&env, "a", &["push", &st]);
    // The destination already holds an older copy of f.txt (and an identical same.txt).
    new_at(&env.path("b/f.txt"), "older version tokOLD", 1_700_000_100);
    new_at(&env.path("b/same.txt"), "identical", 1_700_000_000);
    let o = env.run(&["clone", &st, env.path("b").to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1", "--json"]);
    assert_eq!(code(&o), Some(3), "clone over existing files must not exit 0 silently: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("f.txt"), "the kept path must be reported: {}", text(&o));
    assert_eq!(fs::read_to_string(env.path("b/f.txt")).unwrap(), "older version tokOLD", "clone overwrote a local file");
    ok_in(&env, "b", &["sync", &st]);
    ok_in(&env, "a", &["sync", &st]);
    ok_in(&env, "b", &["sync", &st]);
    for who in ["a", "b"] {
        let root = env.path(who);
        assert_eq!(
            fs::read_to_string(root.join("f.txt")).unwrap(),
            "newest version tokNEW",
            "{who}: the newest version must be at the path"
        );
        let copies = conflict_copies(&root);
        assert!(
            copies.iter().any(|c| where_is(&root, "tokOLD").contains(c)),
            "{who}: the older version must be a conflict copy: {copies:?}"
        );
    }
    assert_same_replica(&env.path("a"), &env.path("b"));
}

// ---------------------------------------------------------------- 3. a store that went back in time

fn snapshot_object(st: &str, id: &str) -> PathBuf {
    Path::new(st).join("snapshots").join(&id[..2]).join(id)
}

/// What is wrong with a pull from a store older than what `who` has seen (empty: refused, nothing changed).
fn older_store_problems(env: &Env, who: &str, loc: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let before = common::describe_replica(&env.path(who));
    let o = env.in_dir(who, &["pull", loc]);
    if o.status.success() {
        problems.push(format!("pull from a store older than what {who} has seen must fail: {}", text(&o)));
    }
    if !String::from_utf8_lossy(&o.stderr).to_lowercase().contains("older") {
        problems.push(format!("the message must say the store is older than what this replica has seen: {}", text(&o)));
    }
    let after = common::describe_replica(&env.path(who));
    if before != after {
        let changed: std::collections::BTreeSet<_> =
            before.keys().chain(after.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
        problems.push(format!("the pull from the older store changed {changed:?}"));
    }
    problems
}

#[test]
fn a_pull_from_a_store_copy_older_than_what_the_replica_has_seen_is_refused() {
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v1 tokV1")]);
    let old = env.path("st-old");
    assert!(Command::new("cp").arg("-a").arg(&st).arg(&old).status().unwrap().success());
    fs::write(env.path("a/f.txt"), "v2 tokV2").unwrap();
    put(&env.path("a/added.txt"), "added in v2");
    ok_in(&env, "a", &["push", &st]);
    ok_in(&env, "b", &["pull", &st]);
    assert_eq!(fs::read_to_string(env.path("b/f.txt")).unwrap(), "v2 tokV2");
    let mut problems = older_store_problems(&env, "b", old.to_str().unwrap());
    // The author can still push to the old copy (it gains the newer snapshot).
    let o = env.in_dir("a", &["push", old.to_str().unwrap()]);
    if !o.status.success() {
        problems.push(format!("a push to an older copy of a store must succeed: {}", text(&o)));
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn a_pull_from_a_store_that_lost_its_newest_snapshot_is_refused() {
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v1 tokV1")]);
    fs::write(env.path("a/f.txt"), "v2 tokV2").unwrap();
    let v2 = env.in_dir_json("a", &["push", &st]);
    let v2 = v2["snapshot"].as_str().unwrap().to_string();
    ok_in(&env, "b", &["pull", &st]);
    let obj = snapshot_object(&st, &v2);
    assert!(obj.is_file(), "snapshot layout: {} missing", obj.display());
    fs::remove_file(&obj).unwrap();
    let mut problems = older_store_problems(&env, "b", &st);
    let o = env.in_dir("a", &["push", &st]);
    if !o.status.success() {
        problems.push(format!("a push to a store that lost its newest snapshot must succeed: {}", text(&o)));
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------- 4. a full disk during a pull

#[test]
fn a_pull_that_filled_the_disk_is_not_taken_for_complete() {
    if !common::is_root() {
        eprintln!("not root: tmpfs test skipped");
        return;
    }
    let env = Env::new();
    let st = env.replica_and_store("a", "st");
    put(&env.path("a/small.txt"), "small");
    ok_in(&env, "a", &["push", &st]);
    let m = tmpfs(&env.path("mnt"), "6m");
    env.clone_to(&st, "mnt/b");
    for i in 0..10u64 {
        fs::write(env.path(&format!("a/big{i:02}.bin")), random_bytes(500 + i, 1 << 20)).unwrap();
    }
    ok_in(&env, "a", &["push", &st]);
    let authors = files_of(&env.path("a"));
    // Every claim is checked; all that fail are reported together.
    let mut problems: Vec<String> = Vec::new();
    let o = env.in_dir("mnt/b", &["pull", &st, "--json"]);
    assert!(matches!(code(&o), Some(1) | Some(3)), "a pull onto a full disk must fail: {}", text(&o));
    // A second pull must not claim to be up to date.
    let o2 = env.in_dir("mnt/b", &["pull", &st, "--json"]);
    if serde_json::from_slice::<serde_json::Value>(&o2.stdout).is_ok_and(|v| v["up_to_date"] == serde_json::json!(true)) {
        problems.push(format!("after a failed pull, the next pull says up to date: {}", text(&o2)));
    }
    if o2.status.success() {
        problems.push(format!("the disk is still full, yet the second pull exits 0: {}", text(&o2)));
    }
    // status must not claim a clean replica in step with the store.
    let s = env.in_dir("mnt/b", &["status"]);
    if String::from_utf8_lossy(&s.stdout).trim() == "no local changes since the last sync" {
        problems.push(format!("status claims a half-pulled replica is clean: {}", text(&s)));
    }
    let sj = env.in_dir("mnt/b", &["status", "--json"]);
    let sv: serde_json::Value = serde_json::from_slice(&sj.stdout).unwrap_or_default();
    if sv["changes"].as_array().is_some_and(|c| c.is_empty()) && sv["not_pulled"].as_array().is_some_and(|c| c.is_empty()) {
        problems.push(format!("status --json is empty for a half-pulled replica: {}", text(&sj)));
    }
    // A push from here must not delete the author's files.
    let pushed = env.in_dir("mnt/b", &["push", &st]);
    let _ = env.in_dir("a", &["pull", &st]);
    for (p, c) in &authors {
        if fs::read(env.path("a").join(p)).ok().as_ref() != Some(c) {
            problems.push(format!("a push from the half-pulled replica ({}) deleted or changed {p} on the author's side", text(&pushed)));
        }
    }
    // With space, the pull completes and the replica equals the store.
    resize(&m, "64m");
    let o = env.in_dir("mnt/b", &["pull", &st]);
    if !o.status.success() {
        problems.push(format!("the pull after freeing space failed: {}", text(&o)));
    }
    let out = env.path("restored");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    let (want, got) = (common::describe_replica(&out), common::describe_replica(&env.path("mnt/b")));
    if want != got {
        let missing: Vec<_> = want.keys().filter(|k| got.get(*k) != want.get(*k)).collect();
        problems.push(format!("after space was freed and pull rerun, the replica differs from the store's latest at {missing:?}"));
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------- 5. equal size and mtime

#[test]
fn equal_size_and_mtime_with_different_content_keeps_both_versions() {
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v0 base")]);
    let t = FileTime::from_unix_time(1_700_000_300, 0);
    fs::write(env.path("a/f.txt"), "AAAA tokA9 AAAA").unwrap();
    set_file_mtime(env.path("a/f.txt"), t).unwrap();
    fs::write(env.path("b/f.txt"), "BBBB tokB9 BBBB").unwrap();
    set_file_mtime(env.path("b/f.txt"), t).unwrap();
    ok_in(&env, "a", &["push", &st]);
    let o = env.in_dir("b", &["pull", &st]);
    assert!(matches!(code(&o), Some(0) | Some(3)), "{}", text(&o));
    assert_kept(&env.path("b"), "f.txt", "tokB9");
    sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokA9"), ("f.txt", "tokB9")]);
}

#[test]
fn equal_size_and_mtime_with_different_content_keeps_both_versions_through_syncs() {
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v0 base")]);
    let t = FileTime::from_unix_time(1_700_000_300, 0);
    fs::write(env.path("a/f.txt"), "AAAA tokA10 AAA").unwrap();
    set_file_mtime(env.path("a/f.txt"), t).unwrap();
    fs::write(env.path("b/f.txt"), "BBBB tokB10 BBB").unwrap();
    set_file_mtime(env.path("b/f.txt"), t).unwrap();
    ok_in(&env, "a", &["sync", &st]);
    sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokA10"), ("f.txt", "tokB10")]);
}

#[test]
fn an_edit_that_keeps_size_and_mtime_is_not_overwritten_by_a_pull() {
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "base v0 content tokV0")]);
    // B edits in place, same size, and puts the old mtime back.
    let f = env.path("b/f.txt");
    let old = fs::metadata(&f).unwrap();
    fs::write(&f, "B edit same sz tokB11").unwrap();
    assert_eq!(fs::metadata(&f).unwrap().len(), old.len());
    filetime::set_file_mtime(&f, FileTime::from_last_modification_time(&old)).unwrap();
    fs::write(env.path("a/f.txt"), "A's edit tokA11").unwrap();
    ok_in(&env, "a", &["push", &st]);
    let o = env.in_dir("b", &["pull", &st]);
    assert!(matches!(code(&o), Some(0) | Some(3)), "{}", text(&o));
    assert_kept(&env.path("b"), "f.txt", "tokB11");
    sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokA11"), ("f.txt", "tokB11")]);
}

// ---------------------------------------------------------------- 6. a file created while a pull writes its path

#[test]
fn a_file_created_during_a_pull_at_the_path_being_written_is_not_renamed_over() {
    let env = Env::new();
    let st = pair(&env, &[("other", "o")]);
    fs::write(env.path("a/big.bin"), random_bytes(66, 64 << 20)).unwrap();
    ok_in(&env, "a", &["push", &st]);
    let mut child = spawn_in(&env, "b", &["pull", &st]);
    let b = env.path("b");
    let busy = wait_for(&mut child, || !tmp_files(&b).is_empty());
    fs::write(env.path("b/big.bin"), "local file created during the pull tokL12").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(busy, "the pull finished before its temp file was seen");
    assert!(matches!(code(&o), Some(0) | Some(3)), "{}", text(&o));
    assert!(
        !where_is(&b, "tokL12").is_empty(),
        "the local file was renamed over: {:?}",
        files_of(&b).iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------- 7. a pull of a head that does not descend from our push

#[test]
fn a_pull_of_a_sibling_head_does_not_revert_this_replicas_pushed_edit() {
    let env = Env::new();
    let st = pair(&env, &[("f.txt", "v0 base")]);
    fs::write(env.path("b/f.txt"), "edit-from-B tokB13").unwrap();
    ok_in(&env, "b", &["push", &st]);
    fs::write(env.path("a/f.txt"), "edit-from-A tokA13").unwrap();
    ok_in(&env, "a", &["push", &st, "--force"]);
    // The store's newest snapshot was made concurrently with B's: pull
    // refuses it and points at sync (a merge), changing nothing.
    let o = env.in_dir("b", &["pull", &st]);
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ferry sync"), "{}", text(&o));
    assert_kept(&env.path("b"), "f.txt", "tokB13");
    sync_both_and_expect(&env, &st, "b", "a", &[("f.txt", "tokA13"), ("f.txt", "tokB13")]);
}

// ---------------------------------------------------------------- 8. .ferryignore added on one side

#[test]
fn a_ferryignore_added_on_one_replica_does_not_delete_the_ignored_files_elsewhere() {
    let env = Env::new();
    let st = pair(&env, &[("keep.log", "log content tokLOG"), ("a.txt", "a")]);
    fs::write(env.path("a/.ferryignore"), "*.log\n").unwrap();
    ok_in(&env, "a", &["push", &st]);
    let o = env.in_dir("b", &["pull", &st]);
    assert!(matches!(code(&o), Some(0) | Some(3)), "{}", text(&o));
    assert!(env.path("b/.ferryignore").is_file(), "the ignore file did not arrive");
    assert_eq!(fs::read_to_string(env.path("b/keep.log")).ok().as_deref(), Some("log content tokLOG"), "pull deleted an ignored file");
    ok_in(&env, "b", &["sync", &st]);
    ok_in(&env, "a", &["sync", &st]);
    for who in ["a", "b"] {
        assert_eq!(fs::read_to_string(env.path(who).join("keep.log")).ok().as_deref(), Some("log content tokLOG"), "{who} lost keep.log");
    }
}

#[test]
fn a_ferryignore_added_here_does_not_make_this_replicas_sync_delete_the_ignored_files() {
    // keep.log was synced before; A starts ignoring it and syncs (its own push no longer
    // holds keep.log): A's file must stay, and so must B's after B syncs.
    let env = Env::new();
    let st = pair(&env, &[("keep.log", "log content tokLOG2"), ("a.txt", "a")]);
    fs::write(env.path("a/.ferryignore"), "*.log\n").unwrap();
    ok_in(&env, "a", &["sync", &st]);
    assert_eq!(
        fs::read_to_string(env.path("a/keep.log")).ok().as_deref(),
        Some("log content tokLOG2"),
        "A's own sync deleted a file A ignores"
    );
    ok_in(&env, "b", &["sync", &st]);
    assert_eq!(fs::read_to_string(env.path("b/keep.log")).ok().as_deref(), Some("log content tokLOG2"), "B's sync deleted keep.log");
}

/// Model test, seed 901896: a replica that joined after a `.ferryignore`
/// rule left a file out of every snapshot never held that file; when it
/// dropped the rule, its push presented the file's absence as a deletion,
/// and the replicas that held the file deleted their copy.
#[test]
fn a_replica_that_joined_while_a_file_was_ignored_does_not_delete_it_when_the_rule_goes() {
    let env = Env::new();
    let st = pair(&env, &[("keep.log", "log content tokLOG3"), ("a.txt", "a")]);
    fs::write(env.path("a/.ferryignore"), "*.log\n").unwrap();
    ok_in(&env, "a", &["sync", &st]);
    let c = env.path("c");
    let o = env.run(&["clone", &st, c.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert!(matches!(code(&o), Some(0) | Some(3)), "{}", text(&o));
    assert!(!c.join("keep.log").exists(), "the clone wrote a file its rules exclude");
    fs::remove_file(c.join(".ferryignore")).unwrap();
    // A sync that applies the rule's removal may leave the files it
    // un-ignores for the next sync (exit 3): two rounds converge.
    for _ in 0..2 {
        for who in ["c", "b", "a"] {
            let o = env.in_dir(who, &["sync", &st]);
            assert!(matches!(code(&o), Some(0) | Some(3)), "{who}: {}", text(&o));
        }
    }
    for who in ["a", "b", "c"] {
        assert_eq!(fs::read_to_string(env.path(who).join("keep.log")).ok().as_deref(), Some("log content tokLOG3"), "{who} lost keep.log");
    }
}

/// Model test, seed 1000519: a sync that brought in the removal of a
/// `.ferryignore` rule left alone the `*.log` file the rule had kept from
/// the scan here (never synced), so the replica's parents stayed behind
/// while the rule's removal was applied. Its next push presented that
/// removal as its own deletion; with two stores, two replicas then took
/// turns adding and deleting the rule and never agreed. Now the sync keeps
/// both versions (the incoming one at its conflict name) and the replica's
/// parents move on to the snapshot it applied.
#[test]
fn a_sync_that_drops_an_ignore_rule_keeps_the_file_it_had_hidden_beside_the_incoming_version() {
    let env = Env::new();
    let st = pair(&env, &[("a.txt", "a")]);
    fs::write(env.path("a/.ferryignore"), "*.log\n").unwrap();
    ok_in(&env, "a", &["sync", &st]);
    ok_in(&env, "b", &["sync", &st]);
    assert!(env.path("b/.ferryignore").exists());
    // b drops the rule and syncs a log of its own; a writes one while the rule still holds here.
    fs::remove_file(env.path("b/.ferryignore")).unwrap();
    fs::write(env.path("b/x.log"), "b's log tokB").unwrap();
    ok_in(&env, "b", &["sync", &st]);
    fs::write(env.path("a/x.log"), "a's log tokA").unwrap();
    let o = env.in_dir("a", &["sync", &st]);
    assert_eq!(code(&o), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("conflict x.log: both changed; the other version is kept as x.conflict-"), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("left alone"), "{}", text(&o));
    // Both versions are here: a's at the path, b's beside it.
    let a = env.path("a");
    assert_eq!(fs::read_to_string(a.join("x.log")).unwrap(), "a's log tokA");
    assert_eq!(where_is(&a, "tokB").len(), 1, "b's log is not kept beside a's: {:?}", files_of(&a));
    assert!(!a.join(".ferryignore").exists());
    // a's parents moved on to what it applied: status lists only the
    // file that is a's own (its log) and the copy, not the rule's removal.
    let s = env.in_dir_json("a", &["status"]);
    let changed: Vec<&str> = s["changes"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert!(!changed.contains(&".ferryignore"), "the rule's removal is listed as a's own change: {s}");
    assert!(changed.contains(&"x.log"), "{s}");
    // Two rounds: both replicas hold both versions, and nothing changes any more.
    for _ in 0..2 {
        for who in ["a", "b"] {
            let o = env.in_dir(who, &["sync", &st]);
            assert!(matches!(code(&o), Some(0) | Some(3)), "{who}: {}", text(&o));
        }
    }
    assert_same_replica(&env.path("a"), &env.path("b"));
    assert_eq!(where_is(&env.path("b"), "tokA").len(), 1);
    assert_eq!(where_is(&env.path("b"), "tokB").len(), 1);
    for who in ["a", "b"] {
        let o = ok_in(&env, who, &["sync", &st]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("in sync"), "{who} did not settle: {}", text(&o));
    }
}

/// The same through a merge (a changed something else too, so its sync
/// pushes first and merges two heads).
#[test]
fn a_merge_that_drops_an_ignore_rule_keeps_the_hidden_file_beside_the_merged_version() {
    let env = Env::new();
    let st = pair(&env, &[("a.txt", "a"), ("b.txt", "b")]);
    fs::write(env.path("a/.ferryignore"), "*.log\n").unwrap();
    ok_in(&env, "a", &["sync", &st]);
    ok_in(&env, "b", &["sync", &st]);
    fs::remove_file(env.path("b/.ferryignore")).unwrap();
    fs::write(env.path("b/x.log"), "b's log tokB").unwrap();
    ok_in(&env, "b", &["sync", &st]);
    fs::write(env.path("a/x.log"), "a's log tokA").unwrap();
    fs::write(env.path("a/a.txt"), "a edited").unwrap();
    let o = env.in_dir("a", &["sync", &st]);
    assert_eq!(code(&o), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("merged 2 heads"), "{}", text(&o));
    assert!(out.contains("conflict x.log: both changed; the other version is kept as x.conflict-"), "{}", text(&o));
    let a = env.path("a");
    assert_eq!(fs::read_to_string(a.join("x.log")).unwrap(), "a's log tokA");
    assert_eq!(where_is(&a, "tokB").len(), 1, "{:?}", files_of(&a));
    for _ in 0..2 {
        for who in ["a", "b"] {
            let o = env.in_dir(who, &["sync", &st]);
            assert!(matches!(code(&o), Some(0) | Some(3)), "{who}: {}", text(&o));
        }
    }
    assert_same_replica(&a, &env.path("b"));
    assert_eq!(where_is(&env.path("b"), "tokA").len(), 1);
}

/// Review of the fix for seed 1000519: a file a rule hid here, holding
/// the very content the incoming snapshot has, got a byte-identical
/// conflict copy on every replica. Equal content is one version.
#[test]
fn a_sync_that_drops_an_ignore_rule_makes_no_copy_of_a_hidden_file_that_already_holds_the_version() {
    let env = Env::new();
    let st = pair(&env, &[("x.log", "the log tokX"), ("a.txt", "a")]);
    fs::write(env.path("a/.ferryignore"), "*.log\n").unwrap();
    ok_in(&env, "a", &["sync", &st]);
    ok_in(&env, "b", &["sync", &st]);
    fs::remove_file(env.path("b/.ferryignore")).unwrap();
    ok_in(&env, "b", &["sync", &st]);
    let o = ok_in(&env, "a", &["sync", &st]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("conflict"), "{}", text(&o));
    for _ in 0..2 {
        for who in ["a", "b"] {
            ok_in(&env, who, &["sync", &st]);
        }
    }
    for who in ["a", "b"] {
        assert_eq!(conflict_copies(&env.path(who)), Vec::<String>::new(), "{who}");
        assert_eq!(fs::read_to_string(env.path(who).join("x.log")).unwrap(), "the log tokX");
    }
    assert_same_replica(&env.path("a"), &env.path("b"));
}

/// `sync -n` merges the unpushed local state in memory; it must see that
/// state as the merge sees the pushed snapshot: with the versions its
/// parents agree on at paths its rules exclude (format-spec §15.6).
/// Before, the dry run left them out and predicted a different merge
/// than the sync then made.
#[test]
fn sync_dry_run_predicts_the_conflicts_the_sync_makes_with_an_ignore_rule() {
    let env = Env::new();
    let st = pair(&env, &[("keep.log", "v1 tokV1"), ("a.txt", "a")]);
    fs::write(env.path("a/.ferryignore"), "*.log\n").unwrap();
    ok_in(&env, "a", &["sync", &st]);
    // c joins while the rule holds: it never held keep.log.
    env.clone_to(&st, "c");
    assert!(!env.path("c/keep.log").exists());
    // a drops the rule and edits the log; c edits another file.
    fs::remove_file(env.path("a/.ferryignore")).unwrap();
    fs::write(env.path("a/keep.log"), "v2 tokV2").unwrap();
    ok_in(&env, "a", &["sync", &st]);
    fs::write(env.path("c/a.txt"), "a from c").unwrap();
    let conflicts = |v: &serde_json::Value| -> Vec<String> {
        v["conflicts"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap().to_string()).collect()
    };
    let o = env.in_dir("c", &["sync", "-n", "--json", &st]);
    assert!(matches!(code(&o), Some(0) | Some(3)), "{}", text(&o));
    let predicted: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = env.in_dir("c", &["sync", "--json", &st]);
    assert!(matches!(code(&o), Some(0) | Some(3)), "{}", text(&o));
    let done: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(conflicts(&predicted), conflicts(&done), "dry run: {predicted}\nsync: {done}");
    // And nothing is lost: v2 is on c.
    assert_eq!(where_is(&env.path("c"), "tokV2").len(), 1, "{:?}", files_of(&env.path("c")));
}

// ---------------------------------------------------------------- 9. kills, symlinks

#[test]
fn status_after_a_killed_pull_does_not_list_arrived_files_as_new() {
    let env = Env::new();
    let st = pair(&env, &[("other", "o")]);
    for i in 0..24u64 {
        fs::write(env.path(&format!("a/f{i:02}.bin")), random_bytes(900 + i, 2 << 20)).unwrap();
    }
    ok_in(&env, "a", &["push", &st]);
    let mut child = spawn_in(&env, "b", &["pull", &st]);
    let b = env.path("b");
    let arrived = wait_for(&mut child, || (0..24).filter(|i| b.join(format!("f{i:02}.bin")).exists()).count() >= 3);
    let _ = child.kill();
    child.wait().unwrap();
    assert!(arrived, "the pull finished before it could be killed");
    let s = env.in_dir_json("b", &["status"]);
    let authors = files_of(&env.path("a"));
    for c in s["changes"].as_array().unwrap() {
        let p = c["path"].as_str().unwrap();
        if c["kind"] == "new"
            && let Some((_, content)) = authors.iter().find(|(q, _)| q == p)
            && fs::read(b.join(p)).ok().as_ref() == Some(content)
        {
            panic!("status lists {p}, which a killed pull brought in unchanged, as a local new file: {s}");
        }
    }
    ok_in(&env, "b", &["pull", &st]);
    assert_same_replica(&env.path("a"), &b);
    assert_eq!(env.in_dir_json("b", &["status"]), serde_json::json!({"changes": [], "not_pulled": []}));
}

#[test]
fn pull_keeps_symlink_mtimes() {
    let env = Env::new();
    let st = pair(&env, &[("target.txt", "t")]);
    let l = env.path("a/link");
    std::os::unix::fs::symlink("target.txt", &l).unwrap();
    let t = FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_symlink_file_times(&l, t, t).unwrap();
    ok_in(&env, "a", &["push", &st]);
    ok_in(&env, "b", &["pull", &st]);
    let (ma, mb) = (fs::symlink_metadata(&l).unwrap(), fs::symlink_metadata(env.path("b/link")).unwrap());
    assert!(mb.file_type().is_symlink());
    assert_eq!(
        FileTime::from_last_modification_time(&mb),
        FileTime::from_last_modification_time(&ma),
        "a pulled symlink must keep its mtime"
    );
    // And through clone.
    env.clone_to(&st, "c");
    let mc = fs::symlink_metadata(env.path("c/link")).unwrap();
    assert_eq!(FileTime::from_last_modification_time(&mc), t, "a cloned symlink must keep its mtime");
}

#[test]
fn a_killed_restore_leaves_no_temp_files_after_the_rerun() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..16u64 {
        let dir = if i % 2 == 0 { src.clone() } else { src.join("sub") };
        fs::write(dir.join(format!("f{i:02}.bin")), random_bytes(300 + i, 2 << 20)).unwrap();
    }
    let st = env.store("st");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    // Folders that already exist: restore writes there through temp files
    // (in folders it makes itself it writes in place, see
    // crash_consistency.rs, a_restore_killed_mid_run_...).
    let target = env.path("target");
    fs::create_dir_all(target.join("sub")).unwrap();
    let mut child = env
        .cmd()
        .args(["restore", &st, "latest", "--target", target.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mid = wait_for(&mut child, || !tmp_files(&target).is_empty());
    let _ = child.kill();
    child.wait().unwrap();
    assert!(mid, "the restore finished before it could be killed mid-file");
    env.ok(&["restore", &st, "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(tmp_files(&target), Vec::<PathBuf>::new(), "temp files left behind by the killed restore");
    common::assert_same_tree(&src, &target);
}

#[test]
fn a_killed_clone_can_be_rerun_into_the_same_folder() {
    let env = Env::new();
    let st = env.replica_and_store("a", "st");
    for i in 0..16u64 {
        fs::write(env.path(&format!("a/f{i:02}.bin")), random_bytes(700 + i, 2 << 20)).unwrap();
    }
    ok_in(&env, "a", &["push", &st]);
    let c = env.path("c");
    let mut child = env
        .cmd()
        .args(["clone", &st, c.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `wait_for` also answers true once the clone has exited: only a
    // clone still running when the files were seen is killed mid-run.
    let mid = wait_for(&mut child, || (0..16).any(|i| c.join(format!("f{i:02}.bin")).exists())) && child.try_wait().unwrap().is_none();
    let _ = child.kill();
    child.wait().unwrap();
    assert!(mid, "the clone finished before it could be killed");
    let o = env.run(&["clone", &st, c.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert!(o.status.success(), "rerunning a killed clone into the same folder must work: {}", text(&o));
    assert_same_replica(&env.path("a"), &c);
    assert!(tmp_files(&c).is_empty());
}

/// CI run of stop 23: a clone killed only after it had recorded its state
/// was refused when run again ("already a replica"). A clone run again
/// after it finished is a pull: it brings the folder up to date.
#[test]
fn a_finished_clone_run_again_into_the_same_folder_brings_it_up_to_date() {
    let env = Env::new();
    let st = env.replica_and_store("a", "st");
    fs::write(env.path("a/one.txt"), "one").unwrap();
    ok_in(&env, "a", &["push", &st]);
    let c = env.path("c");
    let clone = ["clone", &st, c.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"];
    let o = env.run(&clone);
    assert!(o.status.success(), "{}", text(&o));
    fs::write(env.path("a/two.txt"), "two").unwrap();
    ok_in(&env, "a", &["push", &st]);
    let o = env.run(&clone);
    assert!(o.status.success(), "a clone run again must bring the folder up to date: {}", text(&o));
    assert_same_replica(&env.path("a"), &c);
    let o = env.run(&clone);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("up to date"), "{}", text(&o));
}

/// A folder that is a replica of another folder is not cloned into, and
/// nothing in it changes.
#[test]
fn clone_into_a_replica_of_another_folder_is_refused_and_changes_nothing() {
    let env = Env::new();
    let st = env.replica_and_store("a", "st");
    fs::write(env.path("a/one.txt"), "one").unwrap();
    ok_in(&env, "a", &["push", &st]);
    let st2 = env.replica_and_store("b", "st2");
    fs::write(env.path("b/mine.txt"), "mine").unwrap();
    ok_in(&env, "b", &["push", &st2]);
    let b = env.path("b");
    let o = env.run(&["clone", &st, b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already a replica of another folder"), "{}", text(&o));
    assert!(!b.join("one.txt").exists());
    assert_eq!(fs::read_to_string(b.join("mine.txt")).unwrap(), "mine");
}
