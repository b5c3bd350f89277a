//! Issue 10, "no version is ever lost": dry runs that tell the truth,
//! refusals of what would destroy or confuse, and private files.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Env, random_bytes};
use serde_json::Value;

/// `(kind, path)` pairs of a backup/push `--json` report's `changed`.
fn changes(v: &Value) -> Vec<(String, String)> {
    v["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap().to_string(), c["path"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, p)| (k.to_string(), p.to_string())).collect()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A folder of a few files in two levels.
fn fill(dir: &Path) {
    fs::create_dir_all(dir.join("sub/deep")).unwrap();
    for (i, name) in ["a", "b", "c", "sub/d", "sub/deep/e"].iter().enumerate() {
        fs::write(dir.join(name), random_bytes(i as u64, 20_000)).unwrap();
    }
}

/// Edits that a dry run must report, and only these.
fn edit(dir: &Path) {
    fs::write(dir.join("b"), random_bytes(99, 20_000)).unwrap();
    fs::write(dir.join("sub/new"), b"new file").unwrap();
    fs::remove_file(dir.join("c")).unwrap();
    fs::remove_dir_all(dir.join("sub/deep")).unwrap();
}

const EDITS: &[(&str, &str)] =
    &[("modified", "b"), ("deleted", "c"), ("deleted", "sub/deep"), ("deleted", "sub/deep/e"), ("new", "sub/new")];

#[test]
fn backup_dry_run_lists_only_what_changed_since_the_parent_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    fill(&src);
    let st = env.store("store");
    let s = src.to_str().unwrap();
    env.ok(&["backup", s, "--to", &st]);
    // Nothing changed: nothing listed, nothing to read.
    let dry = env.json(&["backup", s, "--to", &st, "-n"]);
    assert_eq!(changes(&dry), vec![], "{dry}");
    assert_eq!(dry["bytes_read"], 0, "a dry run read files the cache says are unchanged: {dry}");
    edit(&src);
    let dry = env.json(&["backup", s, "--to", &st, "-n"]);
    assert_eq!(changes(&dry), pairs(EDITS), "{dry}");
    let text = env.ok(&["backup", s, "--to", &st, "-n"]);
    for l in ["M modified  b", "- deleted   c", "- deleted   sub/deep", "+ new       sub/new"] {
        assert!(text.lines().any(|x| x == l), "missing {l:?} in:\n{text}");
    }
    assert!(!text.lines().any(|x| x.ends_with(" a")), "unchanged file listed:\n{text}");
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 1, "a dry run wrote a snapshot");
    // The real run then matches what the dry run said.
    let real = env.json(&["-v", "backup", s, "--to", &st]);
    assert_eq!(changes(&real), pairs(EDITS), "{real}");
    let diff = env.json(&["diff", &st, real["parents"][0].as_str().unwrap(), real["snapshot"].as_str().unwrap()]);
    assert_eq!(diff.as_array().unwrap().len(), EDITS.len(), "{diff}");
}

#[test]
fn push_dry_run_lists_only_what_changed_since_the_last_push() {
    let env = Env::new();
    let st = env.replica_and_store("r", "store");
    fill(&env.path("r"));
    env.in_dir_json("r", &["push", &st]);
    let dry = env.in_dir_json("r", &["push", &st, "-n"]);
    assert_eq!(changes(&dry), vec![], "{dry}");
    assert_eq!(dry["up_to_date"], true, "{dry}");
    edit(&env.path("r"));
    let dry = env.in_dir_json("r", &["push", &st, "-n"]);
    assert_eq!(changes(&dry), pairs(EDITS), "{dry}");
    assert_eq!(dry["snapshot"], Value::Null);
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 1, "a dry run wrote a snapshot");
}

fn dir_bytes(d: &Path) -> u64 {
    common::files_under(d).iter().map(|p| fs::metadata(p).unwrap().len()).sum()
}

#[test]
fn gc_dry_run_predicts_exactly_what_gc_then_does() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Small files share packs: deleting some leaves partly used packs,
    // deleting a run of them leaves packs nothing uses.
    for i in 0..60 {
        fs::write(src.join(format!("f{i:02}")), random_bytes(i, 60_000)).unwrap();
    }
    let st = env.store("store");
    let s = src.to_str().unwrap();
    env.ok(&["backup", s, "--to", &st]);
    for i in 0..60 {
        if i % 3 == 0 || (20..40).contains(&i) {
            fs::remove_file(src.join(format!("f{i:02}"))).unwrap();
        }
    }
    env.ok(&["backup", s, "--to", &st]);
    fs::write(src.join("late"), random_bytes(1000, 50_000)).unwrap();
    env.ok(&["backup", s, "--to", &st]);
    env.ok(&["forget", &st, "--keep-last", "1"]);
    let packs = Path::new(&st).join("packs");
    let before = dir_bytes(&packs);
    let mut dry = env.json(&["gc", &st, "-n"]);
    assert_eq!(dir_bytes(&packs), before, "gc -n changed the store");
    let mut real = env.json(&["gc", &st]);
    assert!(real["packs_dropped"].as_u64().unwrap() > 0 && real["packs_repacked"].as_u64().unwrap() > 0, "{real}");
    assert_eq!(real["bytes_freed"].as_u64().unwrap(), before - dir_bytes(&packs), "gc's freed bytes are not what left the store: {real}");
    dry["dry_run"] = Value::Null;
    real["dry_run"] = Value::Null;
    assert_eq!(dry, real, "gc -n predicted something else than gc did");
    let check = env.run(&["check", &st, "--read-data"]);
    assert!(check.status.success(), "{}", stderr(&check));
    // Nothing left to collect: gc -n and gc agree on zero, and never below.
    let indexes = common::files_under(&Path::new(&st).join("index"));
    let dry = env.ok(&["gc", &st, "-n"]);
    let real = env.ok(&["gc", &st]);
    assert_eq!(dry.replace("dry run", "X").replace("would free", "Y"), real.replace("gc done", "X").replace("freed", "Y"));
    let again = env.json(&["gc", &st]);
    assert_eq!(again["bytes_freed"], 0, "{again}");
    assert_eq!(common::files_under(&Path::new(&st).join("index")), indexes, "a gc with nothing to collect rewrote the index");
}

#[test]
fn forget_with_a_policy_that_keeps_nothing_is_refused_and_deletes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    fill(&src);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    for args in [&["--keep-last", "0"][..], &["--keep-last", "0", "--keep-daily", "0"], &[]] {
        let mut a = vec!["forget", st.as_str()];
        a.extend_from_slice(args);
        let o = env.run(&a);
        assert_eq!(o.status.code(), Some(2), "forget {args:?} was not refused as a usage error");
        assert!(stderr(&o).contains("keep"), "{}", stderr(&o));
        assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 1, "forget {args:?} deleted a snapshot");
    }
}

#[test]
fn push_with_no_change_makes_no_snapshot_and_says_up_to_date() {
    let env = Env::new();
    let st = env.replica_and_store("r", "store");
    fill(&env.path("r"));
    let first = env.in_dir_json("r", &["push", &st]);
    assert!(first["snapshot"].is_string());
    let again = env.in_dir_json("r", &["push", &st]);
    assert_eq!(again["snapshot"], Value::Null, "{again}");
    assert_eq!(again["up_to_date"], true, "{again}");
    let o = env.in_dir("r", &["push", &st]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("already up to date"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 1, "a push with no change wrote a snapshot");
    // A change is pushed as before.
    fs::write(env.path("r/a"), b"changed").unwrap();
    let changed = env.in_dir_json("r", &["push", &st]);
    assert!(changed["snapshot"].is_string(), "{changed}");
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 2);
}

fn init_store(env: &Env, loc: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = vec!["store", "init", loc.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"];
    a.extend_from_slice(extra);
    env.run(&a)
}

#[test]
fn store_init_into_a_folder_holding_other_files_is_refused() {
    let env = Env::new();
    let docs = env.path("docs");
    fs::create_dir_all(&docs).unwrap();
    fs::write(docs.join("letter.txt"), b"mine").unwrap();
    let o = init_store(&env, &docs, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(common::files_under(&docs), vec![docs.join("letter.txt")], "store init wrote into a folder of other files");
    // An empty folder and a missing one are fine.
    let empty = env.path("empty");
    fs::create_dir_all(&empty).unwrap();
    assert!(init_store(&env, &empty, &[]).status.success());
    assert!(init_store(&env, &env.path("missing/deeper"), &[]).status.success());
    // An existing store is still reported as one.
    let o = init_store(&env, &empty, &[]);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn store_init_that_fails_leaves_no_folder_it_created() {
    let env = Env::new();
    let loc = env.path("new-store");
    let o = init_store(&env, &loc, &["--pack-size-mib", "100000"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!loc.exists(), "a failed store init left {} behind", loc.display());
    // A folder that existed before stays.
    let empty = env.path("empty");
    fs::create_dir_all(&empty).unwrap();
    assert_eq!(init_store(&env, &empty, &["--pack-size-mib", "100000"]).status.code(), Some(1));
    assert!(empty.is_dir());
}

#[test]
fn backup_into_a_store_inside_the_folder_leaves_the_store_out() {
    let env = Env::new();
    let src = env.path("src");
    fill(&src);
    let st = src.join("sub/store");
    assert!(init_store(&env, &st, &[]).status.success());
    let (s, stp) = (src.to_str().unwrap(), st.to_str().unwrap());
    let o = env.run(&["backup", s, "--to", stp]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("left out").count(), 1, "expected one note on stderr:\n{err}");
    let listed = env.json(&["ls", stp, "latest"]);
    let paths: Vec<&str> = listed.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"sub/d") && !paths.iter().any(|p| p.starts_with("sub/store")), "{paths:?}");
    // No note with --json or -q.
    let o = env.run(&["backup", s, "--to", stp, "--json"]);
    assert!(o.status.success() && !stderr(&o).contains("left out"), "{}", stderr(&o));
    let o = env.run(&["-q", "backup", s, "--to", stp]);
    assert!(o.status.success() && stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn backup_of_the_store_folder_itself_is_refused() {
    let env = Env::new();
    let st = env.store("store");
    for dir in [st.clone(), format!("{st}/keys")] {
        let o = env.run(&["backup", &dir, "--to", &st]);
        assert_eq!(o.status.code(), Some(1), "backup of {dir} into its own store was not refused");
        assert!(stderr(&o).contains("the store itself or inside it"), "{}", stderr(&o));
    }
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 0);
}

#[test]
fn push_to_a_store_inside_the_replica_leaves_the_store_out() {
    let env = Env::new();
    let r = env.path("r");
    env.ok(&["init", r.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    fill(&r);
    let o = env.in_dir("r", &["store", "init", "stick", "--like", ".", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st = r.join("stick");
    let o = env.in_dir("r", &["push", "stick"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("left out"), "{}", stderr(&o));
    let listed = env.json(&["ls", st.to_str().unwrap(), "latest"]);
    let paths: Vec<&str> = listed.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"a") && !paths.iter().any(|p| p.starts_with("stick")), "{paths:?}");
    // And the store does not count as a local change: the next push has none.
    let again = env.in_dir_json("r", &["push", "stick"]);
    assert_eq!(again["up_to_date"], true, "{again}");
}

#[test]
fn init_inside_an_existing_replica_is_refused() {
    let env = Env::new();
    let r = env.path("r");
    let init = |d: &Path| env.run(&["init", d.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert!(init(&r).status.success());
    fs::create_dir_all(r.join("sub")).unwrap();
    for d in [r.clone(), r.join("sub"), r.join("sub/not-yet")] {
        let o = init(&d);
        assert_eq!(o.status.code(), Some(1), "init {} was not refused", d.display());
        assert!(stderr(&o).contains("replica"), "{}", stderr(&o));
    }
    assert!(!r.join("sub/not-yet").exists(), "a refused init created its folder");
    assert!(!r.join("sub/.ferry").exists());
    // Beside it is fine.
    assert!(init(&env.path("other")).status.success());
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file and folder below `root` (folders included) and their modes.
fn assert_private(root: &Path, what: &str) {
    let mut todo = vec![root.to_path_buf()];
    let mut n = 0;
    while let Some(d) = todo.pop() {
        assert_eq!(mode(&d), 0o700, "{what}: folder {} is not 0700", d.display());
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                assert_eq!(mode(&p), 0o600, "{what}: {} is not 0600", p.display());
                n += 1;
            }
        }
    }
    assert!(n > 0, "{what}: no files under {}", root.display());
}

#[test]
fn store_files_and_local_caches_are_created_private() {
    let env = Env::new();
    // With the usual umask 022, default modes would be 0644 and 0755.
    let src = env.path("src");
    fill(&src);
    let st = env.path("store");
    let o = env.cmd().args(["store", "init", st.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]).output().unwrap();
    assert!(o.status.success());
    env.ok(&["backup", src.to_str().unwrap(), "--to", st.to_str().unwrap()]);
    assert_private(&st, "store after backup");
    assert_private(&env.path("cache"), "cache after backup");
    // A replica's .ferry/ and what a push creates.
    let st2 = env.replica_and_store("r", "store2");
    fill(&env.path("r"));
    env.in_dir_json("r", &["push", &st2]);
    assert_private(Path::new(&st2), "store after push");
    assert_private(&env.path("r/.ferry"), "replica metadata");
    assert_private(&env.path("cache"), "cache after push");
}

/// Model test, seed 4: the local snapshot cache outlives snapshots a store
/// lost (a drive restored from an older copy). A sync after that must
/// still push the replica's state, not take the cached copy of its parent
/// for proof that the store holds it.
#[test]
fn sync_to_a_rolled_back_store_pushes_again_though_the_cache_knows_the_lost_snapshot() {
    let env = Env::new();
    let st = env.replica_and_store("r", "store");
    fill(&env.path("r"));
    env.in_dir_json("r", &["push", &st]);
    let old = env.path("store-old");
    assert!(std::process::Command::new("cp").arg("-a").arg(env.path("store")).arg(&old).status().unwrap().success());
    fs::write(env.path("r/a"), b"the only copy of this version").unwrap();
    let pushed = env.in_dir_json("r", &["push", &st]);
    assert!(pushed["snapshot"].is_string(), "{pushed}");
    // `snapshots` lists (and caches) both; then the store goes back.
    assert_eq!(env.json(&["snapshots", &st]).as_array().unwrap().len(), 2);
    fs::remove_dir_all(env.path("store")).unwrap();
    fs::rename(&old, env.path("store")).unwrap();
    let o = env.in_dir("r", &["sync", &st]);
    assert!(o.status.success(), "{}", stderr(&o));
    let snaps = env.json(&["snapshots", &st]);
    assert_eq!(snaps.as_array().unwrap().len(), 2, "the sync pushed the replica's state again: {snaps}");
    let latest = env.path("latest");
    env.ok(&["restore", &st, "latest", "--target", latest.to_str().unwrap()]);
    assert_eq!(fs::read(latest.join("a")).unwrap(), b"the only copy of this version");
}
