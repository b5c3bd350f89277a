//! `ferry conflicts`, `ferry resolve PATH --keep mine|theirs|both|COPY` and
//! `ferry versions PATH [--restore ID]`, through the binary, with three
//! replicas of one folder meeting through one store. Each choice must
//! converge on every replica and leave the losing version in the history,
//! where `versions --restore` brings it back byte for byte.

mod common;

use std::fs;
use std::path::Path;

use common::{Env, assert_same_replica};
use filetime::{FileTime, set_file_mtime};

const KDF: [&str; 4] = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"];

/// Replicas "a", "b" and "c" (named so), of a folder holding notes.txt,
/// synced through "st".
fn trio(env: &Env) -> String {
    let a = env.path("a");
    env.ok(&[&["init", a.to_str().unwrap(), "--name", "a"][..], &KDF].concat());
    let st = env.path("st").to_str().unwrap().to_string();
    env.ok(&[&["-C", a.to_str().unwrap(), "store", "init", &st, "--like", "."][..], &KDF].concat());
    fs::write(a.join("notes.txt"), "v0").unwrap();
    env.in_dir_json("a", &["push", &st]);
    for who in ["b", "c"] {
        env.ok(&[&["clone", &st, env.path(who).to_str().unwrap(), "--name", who][..], &KDF].concat());
    }
    st
}

fn write_at(path: &Path, content: &str, secs: i64) {
    fs::write(path, content).unwrap();
    set_file_mtime(path, FileTime::from_unix_time(secs, 0)).unwrap();
}

fn sync(env: &Env, who: &str, st: &str) {
    env.sync_json(who, &[st]);
}

/// Every replica syncs twice, in turn: they then hold the same tree.
fn converge(env: &Env, st: &str) {
    for _ in 0..2 {
        for who in ["a", "b", "c"] {
            sync(env, who, st);
        }
    }
    assert_same_replica(&env.path("a"), &env.path("b"));
    assert_same_replica(&env.path("a"), &env.path("c"));
}

/// Conflicting edits of notes.txt: each `(replica, content, mtime)` is
/// written, then every replica syncs until all agree. The newest mtime
/// wins the path; the others become conflict copies everywhere.
fn conflict(env: &Env, st: &str, edits: &[(&str, &str, i64)]) {
    for (who, content, secs) in edits {
        write_at(&env.path(who).join("notes.txt"), content, *secs);
    }
    converge(env, st);
}

fn read(env: &Env, who: &str, p: &str) -> String {
    fs::read_to_string(env.path(who).join(p)).unwrap()
}

fn conflicts(env: &Env, who: &str) -> serde_json::Value {
    env.in_dir_json(who, &["conflicts"])
}

/// The copies `conflicts --json` lists for notes.txt.
fn copies(env: &Env, who: &str) -> Vec<String> {
    let sets = conflicts(env, who);
    sets.as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["copies"].as_array().unwrap().clone())
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

fn resolve(env: &Env, who: &str, keep: &str) -> serde_json::Value {
    env.in_dir_json(who, &["resolve", "notes.txt", "--keep", keep])
}

/// Brings back, in replica `who`, the version of notes.txt whose content
/// is `content` (found by its size among `versions --json`, then
/// checked byte for byte), and returns to the newest afterwards.
fn assert_in_history(env: &Env, who: &str, content: &str) {
    let list = env.in_dir_json(who, &["versions", "notes.txt"]);
    let list = list.as_array().unwrap();
    let current = list.iter().find(|v| v["current"] == true).unwrap_or_else(|| panic!("no current version: {list:?}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let candidates: Vec<String> =
        list.iter().filter(|v| v["size"] == content.len() as u64).map(|v| v["id"].as_str().unwrap().to_string()).collect();
    for id in &candidates {
        env.in_dir_json(who, &["versions", "notes.txt", "--restore", id]);
        if read(env, who, "notes.txt") == content {
            env.in_dir_json(who, &["versions", "notes.txt", "--restore", &current]);
            return;
        }
    }
    panic!("{content:?} is not among the versions of notes.txt: {list:?}");
}

#[test]
fn keep_mine_removes_the_copies_on_every_replica_and_the_loser_stays_in_history() {
    let env = Env::new();
    let st = trio(&env);
    conflict(&env, &st, &[("a", "from a", 1_700_000_000), ("b", "from b, newer", 1_700_000_100)]);
    assert_eq!(copies(&env, "c"), vec!["notes.conflict-a-20231114-221320.txt"]);
    let sets = conflicts(&env, "b");
    assert_eq!(sets[0]["current"]["replica"], "b");
    assert_eq!(sets[0]["copies"][0]["replica"], "a");
    let r = resolve(&env, "b", "mine");
    assert_eq!(r["removed"], serde_json::json!(["notes.conflict-a-20231114-221320.txt"]), "{r}");
    assert!(r["snapshots"][0]["snapshot"].is_string(), "the choice is a snapshot: {r}");
    converge(&env, &st);
    for who in ["a", "b", "c"] {
        assert_eq!(read(&env, who, "notes.txt"), "from b, newer", "{who}");
        assert_eq!(copies(&env, who), Vec::<String>::new(), "{who}");
    }
    assert_in_history(&env, "c", "from a");
    converge(&env, &st);
    assert_eq!(read(&env, "a", "notes.txt"), "from b, newer");
}

#[test]
fn keep_theirs_from_a_third_replica_puts_the_copy_in_place_everywhere() {
    let env = Env::new();
    let st = trio(&env);
    conflict(&env, &st, &[("a", "from a", 1_700_000_000), ("b", "from b, newer", 1_700_000_100)]);
    // Resolved by given path of the copy, from c, which wrote neither.
    let r = env.in_dir_json("c", &["resolve", "notes.conflict-a-20231114-221320.txt", "--keep", "theirs"]);
    assert_eq!(r["kept"], "notes.conflict-a-20231114-221320.txt", "{r}");
    assert_eq!(r["replaced"], "notes.txt", "{r}");
    converge(&env, &st);
    for who in ["a", "b", "c"] {
        assert_eq!(read(&env, who, "notes.txt"), "from a", "{who}");
        assert_eq!(copies(&env, who), Vec::<String>::new(), "{who}");
    }
    assert_in_history(&env, "a", "from b, newer");
}

#[test]
fn keep_both_gives_the_copies_plain_names_everywhere() {
    let env = Env::new();
    let st = trio(&env);
    conflict(&env, &st, &[("a", "from a", 1_700_000_000), ("b", "from b, newer", 1_700_000_100)]);
    let r = resolve(&env, "a", "both");
    assert_eq!(r["renamed"][0]["to"], "notes.a-20231114-221320.txt", "{r}");
    converge(&env, &st);
    for who in ["a", "b", "c"] {
        assert_eq!(read(&env, who, "notes.txt"), "from b, newer", "{who}");
        assert_eq!(read(&env, who, "notes.a-20231114-221320.txt"), "from a", "{who}");
        assert_eq!(copies(&env, who), Vec::<String>::new(), "{who}");
    }
}

#[test]
fn keep_a_named_copy_among_several_and_theirs_is_refused_as_ambiguous() {
    let env = Env::new();
    let st = trio(&env);
    conflict(&env, &st, &[("a", "from a", 1_700_000_000), ("b", "from b, newest", 1_700_000_200), ("c", "from c", 1_700_000_100)]);
    let mut all = copies(&env, "a");
    all.sort();
    assert_eq!(all, vec!["notes.conflict-a-20231114-221320.txt", "notes.conflict-c-20231114-221500.txt"]);
    // theirs cannot choose between two copies: exit 1, the copies named, nothing changed.
    let before = common::describe_replica(&env.path("a"));
    let o = env.in_dir("a", &["resolve", "notes.txt", "--keep", "theirs"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("notes.conflict-a-20231114-221320.txt") && err.contains("notes.conflict-c-20231114-221500.txt"), "{err}");
    assert!(err.contains("--keep notes.conflict-"), "the hint names the way out: {err}");
    assert_eq!(common::describe_replica(&env.path("a")), before);
    // A name that is no copy of it: exit 1, nothing changed.
    let o = env.in_dir("a", &["resolve", "notes.txt", "--keep", "other.txt"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(common::describe_replica(&env.path("a")), before);
    // Naming a copy with theirs means that copy.
    let r = env.in_dir_json("a", &["resolve", "notes.conflict-c-20231114-221500.txt", "--keep", "theirs"]);
    assert_eq!(r["removed"], serde_json::json!(["notes.conflict-a-20231114-221320.txt"]), "{r}");
    converge(&env, &st);
    for who in ["a", "b", "c"] {
        assert_eq!(read(&env, who, "notes.txt"), "from c", "{who}");
        assert_eq!(copies(&env, who), Vec::<String>::new(), "{who}");
    }
    assert_in_history(&env, "b", "from a");
    assert_in_history(&env, "b", "from b, newest");
}

/// An edit made after the conflict, not synced yet, is what `--keep
/// theirs` overwrites: resolve syncs it first, so it is in the history.
#[test]
fn an_unsynced_edit_that_resolve_replaces_is_synced_first() {
    let env = Env::new();
    let st = trio(&env);
    conflict(&env, &st, &[("a", "from a", 1_700_000_000), ("b", "from b, newer", 1_700_000_100)]);
    fs::write(env.path("b").join("notes.txt"), "edited after the conflict").unwrap();
    resolve(&env, "b", "theirs");
    assert_eq!(read(&env, "b", "notes.txt"), "from a");
    assert_in_history(&env, "a", "edited after the conflict");
}

/// A copy no snapshot holds (its `.ferryignore` rules exclude it) would
/// be lost by resolving: refused, nothing changed.
#[test]
fn resolve_refuses_to_delete_a_copy_that_is_in_no_snapshot() {
    let env = Env::new();
    let st = trio(&env);
    let b = env.path("b");
    fs::write(b.join(".ferryignore"), "*.conflict-x-*\n").unwrap();
    sync(&env, "b", &st);
    write_at(&b.join("notes.conflict-x-20240101-000000.txt"), "only here", 1_704_067_200);
    let before = common::describe(&b);
    let o = env.in_dir("b", &["resolve", "notes.txt", "--keep", "mine"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("notes.conflict-x-20240101-000000.txt") && err.contains("not in any snapshot"), "{err}");
    assert_eq!(fs::read_to_string(b.join("notes.conflict-x-20240101-000000.txt")).unwrap(), "only here");
    let after = common::describe(&b);
    assert_eq!(before.get("notes.conflict-x-20240101-000000.txt"), after.get("notes.conflict-x-20240101-000000.txt"));
    // No conflict at all: exit 1 with a clear message.
    let o = env.in_dir("c", &["resolve", "notes.txt", "--keep", "mine"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no conflict copies"));
}

#[test]
fn versions_lists_every_version_and_restore_brings_one_back_on_every_replica() {
    let env = Env::new();
    let st = trio(&env);
    let a = env.path("a");
    write_at(&a.join("notes.txt"), "second", 1_700_000_000);
    sync(&env, "a", &st);
    write_at(&a.join("notes.txt"), "third, longer", 1_700_000_100);
    sync(&env, "a", &st);
    // From a subfolder, with the path relative to it.
    fs::create_dir(a.join("sub")).unwrap();
    let o = env.run(&["-C", a.join("sub").to_str().unwrap(), "versions", "../notes.txt", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sizes: Vec<u64> = list.as_array().unwrap().iter().map(|v| v["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, vec![2, 6, 13], "oldest first: {list}");
    let current: Vec<bool> = list.as_array().unwrap().iter().map(|v| v["current"].as_bool().unwrap()).collect();
    assert_eq!(current, vec![false, false, true]);
    assert_eq!(list[0]["host"], "a");
    let text = String::from_utf8(env.in_dir("a", &["versions", "notes.txt"]).stdout).unwrap();
    assert!(text.contains("(current)") && text.contains(list[1]["id"].as_str().unwrap()), "{text}");
    // Bring back the second by a prefix of its id.
    let id = list[1]["id"].as_str().unwrap();
    let r = env.in_dir_json("a", &["versions", "notes.txt", "--restore", &id[..6]]);
    assert_eq!(r["written"], true, "{r}");
    assert_eq!(read(&env, "a", "notes.txt"), "second");
    let mtime = fs::metadata(a.join("notes.txt")).unwrap().modified().unwrap();
    assert_eq!(mtime, std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
    converge(&env, &st);
    assert_eq!(read(&env, "c", "notes.txt"), "second");
    // Again: nothing to do. The third is still there to bring back.
    let r = env.in_dir_json("a", &["versions", "notes.txt", "--restore", id]);
    assert_eq!(r["written"], false, "{r}");
    assert_in_history(&env, "b", "third, longer");
    // An unknown id: exit 1, nothing changed.
    let o = env.in_dir("a", &["versions", "notes.txt", "--restore", "ffffffffffff"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no version"));
    assert_eq!(read(&env, "a", "notes.txt"), "second");
    // A path outside the replica.
    let o = env.in_dir("a", &["versions", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a path inside the replica"));
}

/// A folder of the replica replaced by a symlink to somewhere else: a
/// version of a file that was in it is not written through the link
/// (review of the Sync Center: its paths reached the library unchecked).
#[test]
fn restore_never_writes_through_a_symlinked_folder() {
    let env = Env::new();
    let st = trio(&env);
    let a = env.path("a");
    fs::create_dir(a.join("docs")).unwrap();
    fs::write(a.join("docs/keys"), "kept in the replica").unwrap();
    sync(&env, "a", &st);
    let list = env.in_dir_json("a", &["versions", "docs/keys"]);
    let id = list[0]["id"].as_str().unwrap().to_string();
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::remove_dir_all(a.join("docs")).unwrap();
    std::os::unix::fs::symlink(&outside, a.join("docs")).unwrap();
    let o = env.in_dir("a", &["versions", "docs/keys", "--restore", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a path inside the replica"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!outside.join("keys").exists(), "written through the symlink");
    let o = env.in_dir("a", &["resolve", "docs/keys", "--keep", "mine"]);
    assert_eq!(o.status.code(), Some(1));
    let o = env.in_dir("a", &["versions", ".ferry/replica.redb"]);
    assert_eq!(o.status.code(), Some(1));
}

/// A copy that has copies of its own (a conflict copy edited on two
/// replicas) is a conflicted file itself: resolving it settles its own
/// conflict, not its original's (model seed 1700367).
#[test]
fn resolving_a_copy_of_a_copy_settles_that_copy_s_conflict() {
    let env = Env::new();
    let st = trio(&env);
    let a = env.path("a");
    let copy = "notes.conflict-b-20231114-221320.txt";
    let nested = "notes.conflict-b-20231114-221320.conflict-c-20231114-221500.txt";
    write_at(&a.join(copy), "b's version", 1_700_000_000);
    write_at(&a.join(nested), "c's edit of b's version", 1_700_000_100);
    sync(&env, "a", &st);
    let sets = conflicts(&env, "a");
    let paths: Vec<&str> = sets.as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap()).collect();
    assert_eq!(paths, vec![copy, "notes.txt"], "{sets}");
    let r = env.in_dir_json("a", &["resolve", copy, "--keep", "mine"]);
    assert_eq!(r["path"], copy, "{r}");
    assert_eq!(r["removed"], serde_json::json!([nested]), "{r}");
    assert_eq!(read(&env, "a", copy), "b's version");
    assert_eq!(read(&env, "a", "notes.txt"), "v0");
}

/// Model seed 1901661: while resolve's first sync ran, it brought a newer
/// version of the conflicted file written elsewhere with the same size
/// and mtime. The versions looked unchanged (they were compared by size
/// and mtime), and `--keep COPY` replaced the one nobody had looked at.
/// Now resolve refuses, and the newer version stays.
#[test]
fn resolve_refuses_when_its_sync_brought_a_same_size_same_mtime_version() {
    let env = Env::new();
    let st = trio(&env);
    conflict(&env, &st, &[("a", "from a", 1_700_000_000), ("b", "from b", 1_700_000_100)]);
    // c rewrites the winner keeping its size and mtime, and syncs.
    write_at(&env.path("c").join("notes.txt"), "edit c", 1_700_000_100);
    sync(&env, "c", &st);
    // a saw "from b" against a's copy, and keeps its copy.
    assert_eq!(read(&env, "a", "notes.txt"), "from b");
    let copy = copies(&env, "a").pop().unwrap();
    let o = env.in_dir("a", &["resolve", "notes.txt", "--keep", &copy, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("changed during the sync"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(read(&env, "a", "notes.txt"), "edit c", "the sync brought c's version, and it stayed");
    assert!(env.path("a").join(&copy).exists());
    // Looking again, the user can settle it.
    resolve(&env, "a", "mine");
    converge(&env, &st);
    for who in ["a", "b", "c"] {
        assert_eq!(read(&env, who, "notes.txt"), "edit c", "{who}");
    }
}
