//! `ferry sync`: one test per merge rule, two replicas meeting through one
//! store, through the binary. After both sync twice they must hold the
//! same tree.

mod common;

use std::fs;
use std::path::Path;

use common::{Env, assert_same_replica};
use filetime::{FileTime, set_file_mtime};

/// Replicas "a" and "b" of one folder holding `files`, synced through "st".
fn pair(env: &Env, files: &[(&str, &str)]) -> String {
    let st = env.replica_and_store("a", "st");
    for (p, c) in files {
        let path = env.path("a").join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, c).unwrap();
    }
    env.in_dir_json("a", &["push", &st]);
    env.clone_to(&st, "b");
    st
}

fn sync(env: &Env, who: &str, st: &str) -> serde_json::Value {
    env.sync_json(who, &[st])
}

/// a syncs, b syncs, a syncs: both hold the merge.
fn meet(env: &Env, st: &str) -> serde_json::Value {
    sync(env, "a", st);
    let r = sync(env, "b", st);
    sync(env, "a", st);
    assert_same_replica(&env.path("a"), &env.path("b"));
    r
}

fn at(env: &Env, who: &str, p: &str) -> std::path::PathBuf {
    env.path(who).join(p)
}

fn write_at(path: &Path, content: &str, secs: i64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    set_file_mtime(path, FileTime::from_unix_time(secs, 0)).unwrap();
}

/// The copies `conflicts --json` lists, over every conflicted file.
fn copy_paths(sets: &serde_json::Value) -> Vec<&str> {
    sets.as_array().unwrap().iter().flat_map(|s| s["copies"].as_array().unwrap()).map(|c| c["path"].as_str().unwrap()).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n != ".ferry").collect();
    v.sort();
    v
}

#[test]
fn different_files_changed_on_each_side_are_both_kept() {
    let env = Env::new();
    let st = pair(&env, &[("x", "x0"), ("y", "y0")]);
    fs::write(at(&env, "a", "x"), "x-a").unwrap();
    fs::write(at(&env, "b", "y"), "y-b").unwrap();
    let r = meet(&env, &st);
    assert_eq!(r["conflicts"].as_array().unwrap().len(), 0);
    assert_eq!(fs::read_to_string(at(&env, "a", "x")).unwrap(), "x-a");
    assert_eq!(fs::read_to_string(at(&env, "a", "y")).unwrap(), "y-b");
}

/// Conflict copies name the replica that held the losing version: its
/// `--name` from init or clone (issue 17), as Syncthing's name the device.
/// Its pushes record that name as their host.
#[test]
fn conflict_copies_name_the_replica_that_held_the_loser() {
    let env = Env::new();
    let a = env.path("a");
    env.ok(&["init", a.to_str().unwrap(), "--name", "Anna's laptop", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    let st = env.path("st").to_str().unwrap().to_string();
    env.ok(&["-C", a.to_str().unwrap(), "store", "init", &st, "--like", ".", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    fs::write(a.join("notes.txt"), "v0").unwrap();
    env.in_dir_json("a", &["push", &st]);
    let b = env.path("b");
    env.ok(&["clone", &st, b.to_str().unwrap(), "--name", "desk", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    write_at(&a.join("notes.txt"), "from a (older)", 1_700_000_000);
    write_at(&b.join("notes.txt"), "from b (newer)", 1_700_000_100);
    meet(&env, &st);
    let sets = env.in_dir_json("b", &["conflicts"]);
    let copies = copy_paths(&sets);
    assert_eq!(copies, vec!["notes.conflict-Anna-s-laptop-20231114-221320.txt"]);
    // Each version with the replica that held it, its time and size.
    assert_eq!(sets[0]["path"], "notes.txt");
    assert_eq!(sets[0]["current"]["replica"], "desk");
    assert_eq!(sets[0]["current"]["size"], 14);
    assert_eq!(sets[0]["copies"][0]["replica"], "Anna-s-laptop");
    assert_eq!(sets[0]["copies"][0]["size"], 14);
    assert!(sets[0]["copies"][0]["time"].as_str().unwrap().starts_with("2023-11-1"), "{sets}");
    assert_eq!(fs::read_to_string(b.join(copies[0])).unwrap(), "from a (older)");
    let hosts: std::collections::BTreeSet<String> =
        env.json(&["snapshots", &st]).as_array().unwrap().iter().map(|s| s["host"].as_str().unwrap().to_string()).collect();
    assert_eq!(hosts, ["Anna's laptop".to_string(), "desk".to_string()].into_iter().collect());
    // A clone run again into a replica keeps its name, unless it is given one.
    let newest_host = || env.json(&["snapshots", &st]).as_array().unwrap().last().unwrap()["host"].as_str().unwrap().to_string();
    env.ok(&["clone", &st, a.to_str().unwrap()]);
    fs::write(a.join("more.txt"), "more").unwrap();
    env.in_dir_json("a", &["push", &st]);
    assert_eq!(newest_host(), "Anna's laptop");
    env.ok(&["clone", &st, a.to_str().unwrap(), "--name", "other"]);
    fs::write(a.join("more.txt"), "more again").unwrap();
    env.in_dir_json("a", &["push", &st]);
    assert_eq!(newest_host(), "other");
    // An empty name is a usage error; nothing is made.
    let c = env.path("c");
    let o = env.run(&["clone", &st, c.to_str().unwrap(), "--name", ""]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("must not be empty"));
    let o = env.run(&["clone", &st, c.to_str().unwrap(), "--name", &"n".repeat(65)]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at most 64 bytes"));
    assert!(!c.exists());
}

#[test]
fn same_file_changed_on_both_sides_later_wins_and_the_loser_is_kept_and_in_history() {
    let env = Env::new();
    let st = pair(&env, &[("notes.txt", "v0")]);
    write_at(&at(&env, "a", "notes.txt"), "from a (older)", 1_700_000_000);
    write_at(&at(&env, "b", "notes.txt"), "from b (newer)", 1_700_000_100);
    let r = meet(&env, &st);
    assert_eq!(fs::read_to_string(at(&env, "a", "notes.txt")).unwrap(), "from b (newer)");
    let sets = env.in_dir_json("a", &["conflicts"]);
    let copies = copy_paths(&sets);
    assert_eq!(copies.len(), 1, "{copies:?}");
    // NAME.conflict-<replica name>-<yyyymmdd-hhmmss>.EXT, with the loser's mtime.
    assert!(copies[0].starts_with("notes.conflict-") && copies[0].ends_with("-20231114-221320.txt"), "{copies:?}");
    assert_eq!(fs::read_to_string(at(&env, "a", copies[0])).unwrap(), "from a (older)");
    assert!(r["conflicts"].as_array().unwrap().len() + sync(&env, "a", &st)["conflicts"].as_array().unwrap().len() <= 1);
    // Both versions are in the store's history.
    let snaps = env.json(&["snapshots", &st]);
    let mut seen = std::collections::HashSet::new();
    for s in snaps.as_array().unwrap() {
        let out = env.path(&format!("h-{}", &s["id"].as_str().unwrap()[..8]));
        env.ok(&["restore", &st, s["id"].as_str().unwrap(), "--target", out.to_str().unwrap(), "--include", "/notes.txt"]);
        if let Ok(c) = fs::read_to_string(out.join("notes.txt")) {
            seen.insert(c);
        }
    }
    assert!(seen.contains("from a (older)") && seen.contains("from b (newer)"), "{seen:?}");
}

#[test]
fn a_tie_in_mtime_is_broken_the_same_way_on_every_replica() {
    let env = Env::new();
    let st = pair(&env, &[("t", "v0")]);
    write_at(&at(&env, "a", "t"), "aaa", 1_700_000_000);
    write_at(&at(&env, "b", "t"), "bbb", 1_700_000_000);
    meet(&env, &st);
    assert_eq!(names(&env.path("a")).len(), 2, "{:?}", names(&env.path("a")));
}

#[test]
fn changed_on_one_side_deleted_on_the_other_the_change_wins() {
    let env = Env::new();
    let st = pair(&env, &[("doc", "v0"), ("other", "o")]);
    fs::write(at(&env, "a", "doc"), "edited").unwrap();
    fs::remove_file(at(&env, "b", "doc")).unwrap();
    meet(&env, &st);
    assert_eq!(fs::read_to_string(at(&env, "b", "doc")).unwrap(), "edited");
}

#[test]
fn a_deletion_against_no_change_deletes() {
    let env = Env::new();
    let st = pair(&env, &[("doc", "v0"), ("other", "o")]);
    fs::remove_file(at(&env, "b", "doc")).unwrap();
    meet(&env, &st);
    assert!(!at(&env, "a", "doc").exists());
}

#[test]
fn a_new_file_in_a_folder_the_other_side_deleted_brings_the_folder_back() {
    let env = Env::new();
    let st = pair(&env, &[("dir/old", "o"), ("keep", "k")]);
    fs::remove_dir_all(at(&env, "a", "dir")).unwrap();
    fs::write(at(&env, "b", "dir/new"), "n").unwrap();
    meet(&env, &st);
    assert_eq!(fs::read_to_string(at(&env, "a", "dir/new")).unwrap(), "n");
    assert!(!at(&env, "a", "dir/old").exists());
}

#[test]
fn both_created_the_same_path_identical_is_one_file_different_later_wins() {
    let env = Env::new();
    let st = pair(&env, &[("keep", "k")]);
    write_at(&at(&env, "a", "same"), "identical", 1_700_000_000);
    write_at(&at(&env, "b", "same"), "identical", 1_700_000_000);
    write_at(&at(&env, "a", "diff"), "a's", 1_700_000_200);
    write_at(&at(&env, "b", "diff"), "b's", 1_700_000_100);
    meet(&env, &st);
    assert_eq!(fs::read_to_string(at(&env, "a", "same")).unwrap(), "identical");
    assert_eq!(fs::read_to_string(at(&env, "b", "diff")).unwrap(), "a's");
    let n = names(&env.path("b"));
    assert_eq!(n.iter().filter(|x| x.starts_with("same")).count(), 1, "{n:?}");
    assert_eq!(n.iter().filter(|x| x.starts_with("diff.conflict-")).count(), 1, "{n:?}");
}

#[test]
fn both_created_a_folder_with_the_same_name_contents_are_merged() {
    let env = Env::new();
    let st = pair(&env, &[("keep", "k")]);
    fs::create_dir(at(&env, "a", "shared")).unwrap();
    fs::write(at(&env, "a", "shared/from-a"), "a").unwrap();
    fs::create_dir(at(&env, "b", "shared")).unwrap();
    fs::write(at(&env, "b", "shared/from-b"), "b").unwrap();
    meet(&env, &st);
    assert_eq!(names(&at(&env, "a", "shared")), ["from-a", "from-b"]);
}

#[test]
fn renamed_on_one_side_edited_on_the_other_the_edit_lands_at_the_new_name() {
    let env = Env::new();
    let st = pair(&env, &[("draft.md", "first draft, long enough to be a real file\n")]);
    fs::rename(at(&env, "a", "draft.md"), at(&env, "a", "final.md")).unwrap();
    fs::write(at(&env, "b", "draft.md"), "second draft\n").unwrap();
    meet(&env, &st);
    assert!(!at(&env, "a", "draft.md").exists(), "{:?}", names(&env.path("a")));
    assert_eq!(fs::read_to_string(at(&env, "a", "final.md")).unwrap(), "second draft\n");
    assert_eq!(names(&env.path("a")), ["final.md"]);
}

#[test]
fn a_folder_beats_a_file_at_the_same_path_and_the_file_is_kept_aside() {
    let env = Env::new();
    let st = pair(&env, &[("keep", "k")]);
    fs::write(at(&env, "a", "thing"), "a file").unwrap();
    fs::create_dir(at(&env, "b", "thing")).unwrap();
    fs::write(at(&env, "b", "thing/inside"), "i").unwrap();
    meet(&env, &st);
    assert!(at(&env, "a", "thing").is_dir());
    assert_eq!(fs::read_to_string(at(&env, "a", "thing/inside")).unwrap(), "i");
    let n = names(&env.path("a"));
    let copy = n.iter().find(|x| x.starts_with("thing.conflict-")).expect("file kept as a conflict copy");
    assert_eq!(fs::read_to_string(at(&env, "a", copy)).unwrap(), "a file");
}

#[test]
fn a_mode_change_and_a_content_change_combine() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let st = pair(&env, &[("run.sh", "echo 1\n")]);
    fs::set_permissions(at(&env, "a", "run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(at(&env, "b", "run.sh"), "echo 2\n").unwrap();
    meet(&env, &st);
    assert_eq!(fs::read_to_string(at(&env, "a", "run.sh")).unwrap(), "echo 2\n");
    assert_eq!(fs::metadata(at(&env, "a", "run.sh")).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(names(&env.path("a")), ["run.sh"]);
}

#[test]
fn sync_dry_run_shows_the_plan_and_conflicts_and_changes_nothing() {
    let env = Env::new();
    let st = pair(&env, &[("f", "v0")]);
    write_at(&at(&env, "a", "f"), "a", 1_700_000_000);
    sync(&env, "a", &st);
    write_at(&at(&env, "b", "f"), "b", 1_600_000_000);
    let before = common::describe_replica(&env.path("b"));
    let snaps = env.json(&["snapshots", &st]).as_array().unwrap().len();
    let r = env.sync_json("b", &[&st, "--dry-run"]);
    assert_eq!(r["conflicts"][0]["path"], "f", "{r}");
    assert!(r["apply"]["actions"].as_array().unwrap().iter().any(|a| a["action"] == "write" && a["path"] == "f"), "{r}");
    assert_eq!(before, common::describe_replica(&env.path("b")));
    assert_eq!(snaps, env.json(&["snapshots", &st]).as_array().unwrap().len());
}

#[test]
fn replicas_syncing_through_two_stores_converge() {
    let env = Env::new();
    let st = pair(&env, &[("f", "v0")]);
    // A second store of the same family: the "share".
    let share = env.path("share").to_str().unwrap().to_string();
    env.in_dir("a", &["store", "init", &share, "--like", ".", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    env.clone_to(&st, "c");
    fs::write(at(&env, "a", "from-a"), "a").unwrap();
    fs::write(at(&env, "b", "from-b"), "b").unwrap();
    fs::write(at(&env, "c", "from-c"), "c").unwrap();
    // a meets b on the stick, a meets c on the share, b meets c on the stick...
    for (who, store) in
        [("a", &st), ("b", &st), ("a", &share), ("c", &share), ("c", &st), ("b", &st), ("a", &st), ("a", &share), ("c", &share)]
    {
        sync(&env, who, store);
    }
    assert_same_replica(&env.path("a"), &env.path("b"));
    assert_same_replica(&env.path("a"), &env.path("c"));
    assert_eq!(names(&env.path("a")), ["f", "from-a", "from-b", "from-c"]);
}
