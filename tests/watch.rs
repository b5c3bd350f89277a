//! `ferry watch`: replicas kept in step continuously through a local
//! folder store, with the real binary and real folders (inotify).
//!
//! Each watch runs with `--interval 1s --quiet-period 300ms --json`, so its
//! stdout is one event per line; tests poll the folders (up to 30 s) and
//! read the events.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::Env;
use serde_json::Value;

/// A running `ferry watch` whose output is collected as it comes.
struct Watcher {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            l.lock().unwrap().push(line);
        }
    });
    lines
}

impl Watcher {
    fn start(env: &Env, dir: &str, extra: &[&str]) -> Watcher {
        let d = env.path(dir);
        let mut args = vec!["-C", d.to_str().unwrap(), "watch", "--interval", "1s", "--quiet-period", "300ms", "--json"];
        args.extend_from_slice(extra);
        let mut child = env.cmd().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let w = Watcher { child, stdout, stderr };
        // Started: the inotify watch is in place before the test edits anything.
        wait_for("the watch to start", || w.events("started").len() == 1);
        w
    }
    /// The JSON events of one kind so far.
    fn events(&self, kind: &str) -> Vec<Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .filter(|v| v["event"] == kind)
            .collect()
    }
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig}");
    }
    /// Sends `sig` and waits for the exit; returns the exit code.
    fn stop(mut self, sig: &str) -> (Option<i32>, Watcher) {
        self.signal(sig);
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s.code(), self);
            }
            assert!(t.elapsed() < Duration::from_secs(20), "watch did not stop after {sig}");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 100 ms for up to 30 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn read(env: &Env, p: &str) -> Option<Vec<u8>> {
    fs::read(env.path(p)).ok()
}

/// A replica `a` with one file pushed to the store `st`, and its clone `b`.
fn two_replicas(env: &Env) -> String {
    let st = env.replica_and_store("a", "st");
    fs::write(env.path("a/notes.txt"), b"first\n").unwrap();
    env.ok(&["-C", env.path("a").to_str().unwrap(), "push", &st]);
    env.clone_to(&st, "b");
    st
}

#[test]
fn stores_are_recorded_and_listed_by_remote() {
    let env = Env::new();
    let st = two_replicas(&env);
    // The push recorded the store in a, the clone in b: absolute paths.
    for dir in ["a", "b"] {
        let v = env.in_dir_json(dir, &["remote", "list"]);
        assert_eq!(v.as_array().unwrap().len(), 1, "{dir}: {v}");
        assert_eq!(v[0]["location"], st.as_str(), "{dir}: {v}");
        assert!(v[0]["last_sync"].is_string(), "{dir}: {v}");
    }
    // A relative path is recorded absolute; remove forgets it.
    let other = env.store("other");
    let o = env.in_dir("a", &["remote", "add", "../other"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = env.in_dir_json("a", &["remote", "list"]);
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    let added = v.as_array().unwrap().iter().find(|r| r["location"] == other.as_str()).unwrap_or_else(|| panic!("{v}"));
    assert!(added["last_sync"].is_null(), "{v}");
    assert!(env.in_dir("a", &["remote", "remove", &other]).status.success());
    assert_eq!(env.in_dir_json("a", &["remote", "list"]).as_array().unwrap().len(), 1);
    // A dry run records nothing.
    let third = env.store("third");
    env.in_dir("a", &["sync", "-n", &third]);
    assert_eq!(env.in_dir_json("a", &["remote", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn edits_on_either_side_reach_the_other() {
    let env = Env::new();
    two_replicas(&env);
    // No LOC: both watch the store they synced with.
    let wa = Watcher::start(&env, "a", &[]);
    let wb = Watcher::start(&env, "b", &[]);
    fs::write(env.path("a/notes.txt"), b"edited in a\n").unwrap();
    wait_for("a's edit in b", || read(&env, "b/notes.txt").as_deref() == Some(&b"edited in a\n"[..]));
    fs::create_dir(env.path("b/sub")).unwrap();
    fs::write(env.path("b/sub/new.txt"), b"made in b\n").unwrap();
    wait_for("b's new file in a", || read(&env, "a/sub/new.txt").as_deref() == Some(&b"made in b\n"[..]));
    // A deletion travels too.
    fs::remove_file(env.path("a/notes.txt")).unwrap();
    wait_for("a's deletion in b", || !env.path("b/notes.txt").exists());
    // One sync event per sync that moved something, saying what moved.
    let pushed: usize = wa.events("sync").iter().map(|e| e["pushed"].as_u64().unwrap() as usize).sum();
    let pulled: usize = wa.events("sync").iter().map(|e| e["pulled"].as_u64().unwrap() as usize).sum();
    assert!(pushed >= 2 && pulled >= 2, "a: pushed {pushed}, pulled {pulled}: {:?}", wa.stdout.lock().unwrap());
    assert!(wb.events("sync").iter().any(|e| e["pulled"].as_u64().unwrap() >= 1));
    // No sync loop: once in step, no more syncs that move anything.
    thread::sleep(Duration::from_secs(3));
    let (na, nb) = (wa.events("sync").len(), wb.events("sync").len());
    thread::sleep(Duration::from_secs(3));
    assert_eq!((na, nb), (wa.events("sync").len(), wb.events("sync").len()), "syncs went on with nothing changed");
    common::assert_same_replica(&env.path("a"), &env.path("b"));
}

#[test]
fn a_conflict_keeps_both_versions_and_is_reported() {
    let env = Env::new();
    two_replicas(&env);
    // b edits while its watch is not running; a's edit goes out first.
    fs::write(env.path("b/notes.txt"), b"b's version\n").unwrap();
    let wa = Watcher::start(&env, "a", &[]);
    fs::write(env.path("a/notes.txt"), b"a's version\n").unwrap();
    wait_for("a's push", || wa.events("sync").iter().any(|e| e["pushed"].as_u64().unwrap() >= 1));
    // b's watch starts with a change of its own: the first sync merges.
    let wb = Watcher::start(&env, "b", &[]);
    wait_for("b's conflict", || wb.events("sync").iter().any(|e| !e["conflicts"].as_array().unwrap().is_empty()));
    let ev = wb.events("sync").into_iter().find(|e| !e["conflicts"].as_array().unwrap().is_empty()).unwrap();
    assert_eq!(ev["conflicts"][0]["path"], "notes.txt", "{ev}");
    let copy = ev["conflicts"][0]["copy"].as_str().unwrap().to_string();
    // Both versions survive, on both replicas.
    wait_for("the copy in a", || env.path("a").join(&copy).exists());
    wait_for("the same folder on both sides", || common::describe_replica(&env.path("a")) == common::describe_replica(&env.path("b")));
    let mut versions = vec![read(&env, "a/notes.txt").unwrap(), fs::read(env.path("a").join(&copy)).unwrap()];
    versions.sort();
    assert_eq!(versions, vec![b"a's version\n".to_vec(), b"b's version\n".to_vec()]);
}

#[test]
fn an_editor_save_arrives_whole() {
    let env = Env::new();
    let st = two_replicas(&env);
    let _wa = Watcher::start(&env, "a", &[]);
    let _wb = Watcher::start(&env, "b", &[]);
    // An editor writes a temp file in pieces (each gap shorter than the
    // quiet period), then renames it over the original.
    let body: Vec<u8> = (0..5).flat_map(|i| format!("part {i} of the new version\n").into_bytes()).collect();
    {
        use std::io::Write;
        let mut f = fs::File::create(env.path("a/.notes.txt.swp")).unwrap();
        for line in body.split_inclusive(|&b| b == b'\n') {
            f.write_all(line).unwrap();
            f.flush().unwrap();
            thread::sleep(Duration::from_millis(150));
        }
    }
    fs::rename(env.path("a/.notes.txt.swp"), env.path("a/notes.txt")).unwrap();
    wait_for("the saved file in b", || read(&env, "b/notes.txt").as_deref() == Some(&body[..]));
    assert!(!env.path("b/.notes.txt.swp").exists());
    // No snapshot ever held the half-written temp file.
    let snaps = env.json(&["snapshots", &st]);
    for s in snaps.as_array().unwrap() {
        let ls = env.json(&["ls", &st, s["id"].as_str().unwrap()]);
        assert!(ls.as_array().unwrap().iter().all(|e| e["path"] != ".notes.txt.swp"), "a snapshot holds the temp file: {ls}");
    }
}

#[test]
fn a_store_that_goes_away_and_comes_back_gets_the_changes_made_meanwhile() {
    let env = Env::new();
    let st = two_replicas(&env);
    let wa = Watcher::start(&env, "a", &[]);
    let wb = Watcher::start(&env, "b", &[]);
    // The stick is pulled: both say so once, however many intervals pass.
    fs::rename(&st, env.path("st-away")).unwrap();
    wait_for("a to see the store gone", || wa.events("unreachable").len() == 1);
    fs::write(env.path("a/notes.txt"), b"written while the store was away\n").unwrap();
    thread::sleep(Duration::from_secs(4));
    assert_eq!(wa.events("unreachable").len(), 1, "{:?}", wa.stdout.lock().unwrap());
    assert!(wb.events("unreachable").len() <= 1);
    assert_eq!(read(&env, "b/notes.txt").as_deref(), Some(&b"first\n"[..]));
    // Plugged in again: the change made meanwhile goes out and arrives.
    fs::rename(env.path("st-away"), &st).unwrap();
    wait_for("the change in b", || read(&env, "b/notes.txt").as_deref() == Some(&b"written while the store was away\n"[..]));
    assert_eq!(wa.events("reachable").len(), 1, "{:?}", wa.stdout.lock().unwrap());
    assert_eq!(wa.events("unreachable").len(), 1);
    assert!(wa.events("sync").iter().any(|e| e["pushed"].as_u64().unwrap() >= 1));
    // Without --json, the same once-only line on stderr.
    drop(wa);
    let d = env.path("a");
    let mut child = env
        .cmd()
        .args(["-C", d.to_str().unwrap(), "watch", "--interval", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect(child.stderr.take().unwrap());
    let w = Watcher { child, stdout: Arc::default(), stderr: err };
    wait_for("the watch to start", || w.stderr().contains("watching"));
    fs::rename(&st, env.path("st-away")).unwrap();
    wait_for("the unreachable line", || w.stderr().contains("cannot be reached"));
    thread::sleep(Duration::from_secs(3));
    assert_eq!(w.stderr().matches("cannot be reached").count(), 1, "{}", w.stderr());
}

#[test]
fn a_replica_watching_two_stores_carries_changes_between_them() {
    let env = Env::new();
    two_replicas(&env);
    // a also syncs with a second store (say a NAS), which c was cloned from.
    let a = env.path("a");
    let nas = env.path("nas").to_string_lossy().into_owned();
    let kdf = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"];
    env.ok(&[&["-C", a.to_str().unwrap(), "store", "init", &nas, "--like", "."][..], &kdf].concat());
    env.ok(&["-C", a.to_str().unwrap(), "push", &nas]);
    env.clone_to(&nas, "c");
    // a watches both (no LOC: the push recorded the second store too).
    let wa = Watcher::start(&env, "a", &[]);
    assert_eq!(wa.events("started")[0]["stores"].as_array().unwrap().len(), 2);
    let _wb = Watcher::start(&env, "b", &[]);
    let _wc = Watcher::start(&env, "c", &[]);
    // b's edit goes to st, a brings it in and sends it on to nas, c gets it.
    fs::write(env.path("b/notes.txt"), b"from b\n").unwrap();
    wait_for("b's edit in c", || read(&env, "c/notes.txt").as_deref() == Some(&b"from b\n"[..]));
    // And back: c's edit reaches b through a.
    fs::write(env.path("c/other.txt"), b"from c\n").unwrap();
    wait_for("c's file in b", || read(&env, "b/other.txt").as_deref() == Some(&b"from c\n"[..]));
}

#[test]
fn sigint_and_sigterm_stop_it_with_exit_0() {
    let env = Env::new();
    two_replicas(&env);
    for sig in ["-INT", "-TERM"] {
        let w = Watcher::start(&env, "a", &[]);
        let (code, w) = w.stop(sig);
        assert_eq!(code, Some(0), "{sig}: {}", w.stderr());
        wait_for("the stopped event", || w.events("stopped").len() == 1);
        // Not the interrupted-command message (exit 130) of other commands.
        assert!(!w.stderr().contains("interrupted"), "{}", w.stderr());
    }
    // Stopped while changes are pending: they are synced by the next watch
    // (or sync), nothing is lost or half-done.
    let w = Watcher::start(&env, "a", &[]);
    fs::write(env.path("a/notes.txt"), b"just before the stop\n").unwrap();
    let (code, _) = w.stop("-INT");
    assert_eq!(code, Some(0));
    let st = env.path("st").to_string_lossy().into_owned();
    env.sync_json("a", &[&st]);
    env.sync_json("b", &[&st]);
    assert_eq!(read(&env, "b/notes.txt").as_deref(), Some(&b"just before the stop\n"[..]));
}

#[test]
fn status_and_a_manual_sync_work_beside_it() {
    let env = Env::new();
    let st = two_replicas(&env);
    // -v: every sync is reported, also those that moved nothing, and waits
    // for the replica lock.
    let wa = Watcher::start(&env, "a", &["-v"]);
    wait_for("the first sync", || !wa.events("sync").is_empty());
    // Idle, it holds no lock: status and sync run at once, several times.
    for _ in 0..5 {
        let o = env.in_dir("a", &["status"]);
        assert!(o.status.success(), "status beside watch: {:?} {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
        env.sync_json("a", &[&st]);
        thread::sleep(Duration::from_millis(200));
    }
    // A status that holds the replica a while (it must hash a file whose
    // ctime moved, and its passphrase command takes 3 s) while the change
    // wakes the watch: the watch waits for the lock, then syncs.
    let p = env.path("a/notes.txt");
    let mode = fs::metadata(&p).unwrap().permissions();
    fs::set_permissions(&p, mode).unwrap();
    let status = env
        .cmd()
        .args(["-C", env.path("a").to_str().unwrap(), "status"])
        .env_remove("FERRY_PASSWORD")
        .env("FERRY_PASSWORD_COMMAND", "sleep 3; echo 'test passphrase'")
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    wait_for("a busy event", || !wa.events("busy").is_empty());
    let syncs = wa.events("sync").len();
    wait_for("a sync after the lock was freed", || wa.events("sync").len() > syncs);
    // And it still carries edits.
    fs::write(env.path("a/notes.txt"), b"after the manual syncs\n").unwrap();
    wait_for("the edit in the store", || {
        env.sync_json("b", &[&st]);
        read(&env, "b/notes.txt").as_deref() == Some(&b"after the manual syncs\n"[..])
    });
    assert!(wa.events("failed").is_empty(), "{:?}", wa.stdout.lock().unwrap());
}

#[test]
fn without_stores_it_says_what_to_do() {
    let env = Env::new();
    env.ok(&["init", env.path("lone").to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    let o = env.in_dir("lone", &["watch"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no store to keep in step") && err.contains("ferry remote add"), "{err}");
    let o = env.in_dir("lone", &["watch", "--interval", "0s"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}
