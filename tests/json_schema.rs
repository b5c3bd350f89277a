//! Every command's `--json` output matches its documented schema in
//! `cli/json-schema/<command>.json`: each run here, on a small real store
//! and real replicas, is validated with a small validator for the subset
//! of JSON Schema those files use (type, properties, required,
//! additionalProperties: false, items, enum, minimum, `^[0-9a-f]{N}$`
//! patterns, format date-time). Every documented field must be present
//! with its type, and no undocumented field may appear. Each schema file
//! must be exercised by at least one run.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::Env;
use serde_json::Value;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("json-schema")
}

fn load_schema(name: &str) -> Value {
    let p = schema_dir().join(format!("{name}.json"));
    serde_json::from_str(&fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("schema uses unknown type {other}"),
    }
}

/// RFC 3339 date-time with an explicit offset (`Z` or `±hh:mm`).
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' || !digits(8..10) {
        return false;
    }
    if b[10] != b'T' || !digits(11..13) || b[13] != b':' || !digits(14..16) || b[16] != b':' || !digits(17..19) {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &s[i..] {
        "Z" => true,
        off => {
            let o = off.as_bytes();
            o.len() == 6
                && (o[0] == b'+' || o[0] == b'-')
                && o[1..3].iter().all(u8::is_ascii_digit)
                && o[3] == b':'
                && o[4..6].iter().all(u8::is_ascii_digit)
        }
    }
}

/// Validates `v` against schema `s`; pushes "where: what" for each problem.
fn validate(s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let so = s.as_object().expect("a schema is an object");
    for k in so.keys() {
        let known = [
            "$schema",
            "$id",
            "title",
            "description",
            "type",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "enum",
            "minimum",
            "pattern",
            "format",
        ];
        assert!(known.contains(&k.as_str()), "schema keyword {k} at {at} is not supported by this validator");
    }
    if let Some(t) = so.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
            _ => panic!("bad type at {at}"),
        };
        if !ok {
            errs.push(format!("{at}: expected type {t}, got {v}"));
            return;
        }
    }
    if let Some(e) = so.get("enum")
        && !e.as_array().unwrap().contains(v)
    {
        errs.push(format!("{at}: {v} is not one of {e}"));
    }
    if let (Some(m), Some(n)) = (so.get("minimum"), v.as_f64())
        && n < m.as_f64().unwrap()
    {
        errs.push(format!("{at}: {n} < minimum {m}"));
    }
    if let (Some(p), Some(x)) = (so.get("pattern"), v.as_str()) {
        // Only the hex-id patterns `^[0-9a-f]{N}$` are used.
        let p = p.as_str().unwrap();
        let n: usize = p
            .strip_prefix("^[0-9a-f]{")
            .and_then(|r| r.strip_suffix("}$"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unsupported pattern {p} at {at}"));
        if x.len() != n || !x.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
            errs.push(format!("{at}: {x:?} is not {n} lowercase hex digits"));
        }
    }
    if let (Some(f), Some(x)) = (so.get("format"), v.as_str()) {
        assert_eq!(f, "date-time", "unsupported format at {at}");
        if !is_date_time(x) {
            errs.push(format!("{at}: {x:?} is not an RFC 3339 date-time with an offset"));
        }
    }
    if let (Some(items), Some(a)) = (so.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            validate(items, x, &format!("{at}[{i}]"), errs);
        }
    }
    if let Some(o) = v.as_object() {
        let props = so.get("properties").and_then(Value::as_object);
        for r in so.get("required").and_then(Value::as_array).into_iter().flatten() {
            let r = r.as_str().unwrap();
            if !o.contains_key(r) {
                errs.push(format!("{at}: documented field {r:?} is missing"));
            }
        }
        for (k, x) in o {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(ps, x, &format!("{at}.{k}"), errs),
                None if so.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errs.push(format!("{at}: field {k:?} is not documented"))
                }
                None => {}
            }
        }
    }
}

/// Checks the output of one run against `cli/json-schema/<schema>.json`.
struct Checker {
    used: BTreeSet<String>,
}

impl Checker {
    fn check(&mut self, schema: &str, out: &[u8]) -> Value {
        let text = String::from_utf8_lossy(out);
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{schema}: not JSON ({e}): {text}"));
        let mut errs = Vec::new();
        validate(&load_schema(schema), &v, schema, &mut errs);
        assert!(errs.is_empty(), "{schema}: output does not match cli/json-schema/{schema}.json:\n  {}\n{text}", errs.join("\n  "));
        self.used.insert(schema.to_string());
        v
    }
}

const KDF: [&str; 4] = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"];

/// Runs ferry (optionally in `dir`) with `--json`, asserts the exit code.
fn run(env: &Env, dir: Option<&Path>, args: &[&str], code: i32) -> Vec<u8> {
    let mut c = env.cmd();
    if let Some(d) = dir {
        c.arg("-C").arg(d);
    }
    let o = c.args(args).arg("--json").output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(code),
        "ferry {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    o.stdout
}

#[test]
fn every_command_json_matches_its_documented_schema() {
    let env = Env::new();
    let mut ck = Checker { used: BTreeSet::new() };
    let s = |p: &str| env.path(p).to_str().unwrap().to_string();
    let (r1, r2, st) = (env.path("r1"), env.path("r2"), s("st"));

    // Replicas: init, store init --like, push, clone, status, pull, sync, conflicts.
    ck.check("init", &run(&env, None, &[&["init", r1.to_str().unwrap()][..], &KDF].concat(), 0));
    ck.check("store-init", &run(&env, Some(&r1), &[&["store", "init", &st, "--like", "."][..], &KDF].concat(), 0));
    fs::create_dir_all(r1.join("docs/deep")).unwrap();
    fs::write(r1.join("docs/a.txt"), b"alpha").unwrap();
    fs::write(r1.join("docs/deep/b.bin"), common::random_bytes(1, 50_000)).unwrap();
    fs::write(r1.join("f"), b"v0").unwrap();
    std::os::unix::fs::symlink("docs/a.txt", r1.join("link")).unwrap();
    let p = ck.check("push", &run(&env, Some(&r1), &["push", &st], 0));
    assert!(!p["changed"].as_array().unwrap().is_empty(), "{p}");
    ck.check("clone", &run(&env, None, &[&["clone", &st, r2.to_str().unwrap()][..], &KDF].concat(), 0));
    fs::rename(r1.join("docs/deep/b.bin"), r1.join("docs/b.bin")).unwrap();
    fs::write(r1.join("docs/new.txt"), b"new").unwrap();
    fs::remove_file(r1.join("docs/a.txt")).unwrap();
    let status = ck.check("status", &run(&env, Some(&r1), &["status"], 0));
    assert!(status["changes"].as_array().unwrap().iter().any(|c| c["kind"] == "renamed"), "{status}");
    ck.check("push", &run(&env, Some(&r1), &["push", &st, "--dry-run"], 0));
    ck.check("push", &run(&env, Some(&r1), &["push", &st], 0));
    let pull = ck.check("pull", &run(&env, Some(&r2), &["pull", &st, "--dry-run"], 0));
    assert!(!pull["actions"].as_array().unwrap().is_empty(), "{pull}");
    ck.check("pull", &run(&env, Some(&r2), &["pull", &st], 0));
    // Both edit f: the sync keeps both versions.
    fs::write(r1.join("f"), b"from r1").unwrap();
    ck.check("push", &run(&env, Some(&r1), &["push", &st], 0));
    fs::write(r2.join("f"), b"from r2, later").unwrap();
    // Conflicts (shown, or kept as copies) exit 3, as a pull that meets them does.
    ck.check("sync", &run(&env, Some(&r2), &["sync", &st, "--dry-run"], 3));
    let sync = ck.check("sync", &run(&env, Some(&r2), &["sync", &st], 3));
    assert!(!sync["conflicts"].as_array().unwrap().is_empty(), "{sync}");
    let copies = ck.check("conflicts", &run(&env, Some(&r2), &["conflicts"], 0));
    assert!(!copies.as_array().unwrap().is_empty(), "{copies}");
    let versions = ck.check("versions", &run(&env, Some(&r2), &["versions", "f"], 0));
    assert!(versions.as_array().unwrap().len() >= 2, "{versions}");
    let resolved = ck.check("resolve", &run(&env, Some(&r2), &["resolve", "f", "--keep", "both"], 0));
    assert_eq!(resolved["renamed"].as_array().unwrap().len(), 1, "{resolved}");
    let oldest = versions[0]["id"].as_str().unwrap().to_string();
    let restored = ck.check("versions-restore", &run(&env, Some(&r2), &["versions", "f", "--restore", &oldest], 0));
    assert_eq!(restored["written"], true, "{restored}");

    // Backups: store init, backup, snapshots, ls, diff, restore.
    let (src, bst) = (env.path("src"), s("bst"));
    ck.check("store-init", &run(&env, None, &[&["store", "init", &bst][..], &KDF].concat(), 0));
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/x"), b"x").unwrap();
    fs::write(src.join("y"), b"y").unwrap();
    std::os::unix::fs::symlink("y", src.join("ly")).unwrap();
    ck.check("backup", &run(&env, None, &["backup", src.to_str().unwrap(), "--to", &bst, "--tag", "t"], 0));
    fs::write(src.join("y"), b"y changed").unwrap();
    fs::write(src.join("z"), b"z").unwrap();
    ck.check("backup", &run(&env, None, &["backup", src.to_str().unwrap(), "--to", &bst, "--dry-run"], 0));
    let b = ck.check("backup", &run(&env, None, &["backup", src.to_str().unwrap(), "--to", &bst], 0));
    assert!(b["changed"].as_array().unwrap().iter().any(|c| c["kind"] == "modified"), "{b}");
    let snaps = ck.check("snapshots", &run(&env, None, &["snapshots", &bst], 0));
    let (first, second) = (snaps[0]["id"].as_str().unwrap(), snaps[1]["id"].as_str().unwrap());
    ck.check("ls", &run(&env, None, &["ls", &bst, "latest"], 0));
    let d = ck.check("diff", &run(&env, None, &["diff", &bst, first, second], 0));
    assert!(!d.as_array().unwrap().is_empty(), "{d}");
    let target = s("restored");
    ck.check("restore", &run(&env, None, &["restore", &bst, "latest", "--target", &target, "--dry-run"], 0));
    ck.check("restore", &run(&env, None, &["restore", &bst, "latest", "--target", &target], 0));

    // A mount: pin, cache status (with the mount's counters), unpin.
    {
        let m = common::fuse::Mounted::start(env.cmd(), &bst, env.path("mnt"), env.path("mnt.log"), &[]);
        let sub = m.mnt.join("latest/sub");
        let p = ck.check("pin", &run(&env, None, &["pin", sub.to_str().unwrap()], 0));
        assert_eq!(p[0]["files"], 1, "{p}");
        let st = ck.check("cache-status", &run(&env, None, &["cache", "status"], 0));
        assert_eq!(st[0]["pins"].as_array().unwrap().len(), 1, "{st}");
        assert_eq!(st[0]["mounts"].as_array().unwrap().len(), 1, "{st}");
        let u = ck.check("unpin", &run(&env, None, &["unpin", sub.to_str().unwrap()], 0));
        assert_eq!(u[0]["unpinned"].as_array().unwrap().len(), 1, "{u}");
    }

    // A mounted on-demand replica: pin, cache status (its hydrated files), unpin, free.
    {
        let od = env.path("od");
        ck.check("clone", &run(&env, None, &[&["clone", &st, od.to_str().unwrap(), "--on-demand"][..], &KDF].concat(), 0));
        let _m = common::fuse::Mounted::start_replica(env.cmd(), od.clone(), env.path("od.log"));
        let docs = od.join("docs");
        let p = ck.check("pin", &run(&env, None, &["pin", docs.to_str().unwrap()], 0));
        assert!(p[0]["snapshot"].is_null() && p[0]["fetched_bytes"].as_u64() > Some(0), "{p}");
        let st = ck.check("cache-status", &run(&env, None, &["cache", "status"], 0));
        let m = st.as_array().unwrap().iter().flat_map(|c| c["mounts"].as_array().unwrap()).find(|m| m["on_demand"] == true).cloned();
        assert!(m.is_some_and(|m| m["stats"]["hydrated"]["files"].as_u64() > Some(0)), "{st}");
        ck.check("unpin", &run(&env, None, &["unpin", docs.to_str().unwrap()], 0));
        let f = ck.check("free", &run(&env, None, &["free", docs.to_str().unwrap()], 0));
        assert!(!f[0]["freed"].as_array().unwrap().is_empty(), "{f}");
    }

    // Maintenance: check, forget, gc.
    ck.check("check", &run(&env, None, &["check", &bst], 0));
    ck.check("check", &run(&env, None, &["check", &bst, "--read-data"], 0));
    ck.check("forget", &run(&env, None, &["forget", &bst, "--keep-last", "1", "--dry-run"], 0));
    ck.check("forget", &run(&env, None, &["forget", &bst, "--keep-last", "1"], 0));
    ck.check("gc", &run(&env, None, &["gc", &bst, "--dry-run"], 0));
    ck.check("gc", &run(&env, None, &["gc", &bst], 0));

    // Keys.
    let mut c = env.cmd();
    let o = c.env("FERRY_NEW_PASSWORD", "second").args(["key", "add", &bst, "--json"]).args(KDF).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let added = ck.check("key-add", &o.stdout);
    ck.check("key-list", &run(&env, None, &["key", "list", &bst], 0));
    ck.check("key-remove", &run(&env, None, &["key", "remove", &bst, added["added"].as_str().unwrap()], 0));
    ck.check("key-export", &run(&env, None, &["key", "export", &bst, &s("exported.key")], 0));

    // Remotes: the push and the clone recorded the store.
    let remotes = ck.check("remote-list", &run(&env, Some(&r1), &["remote", "list"], 0));
    assert_eq!(remotes.as_array().unwrap().len(), 1, "{remotes}");
    ck.check("remote-add", &run(&env, Some(&r1), &["remote", "add", &bst], 0));
    ck.check("remote-remove", &run(&env, Some(&r1), &["remote", "remove", &bst], 0));

    // watch: one event per line; a local change makes a sync event.
    let mut child = env
        .cmd()
        .arg("-C")
        .arg(&r1)
        .args(["watch", &st, "--interval", "1s", "--quiet-period", "200ms", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufRead::lines(std::io::BufReader::new(out)) {
            let Ok(l) = l else { break };
            let _ = tx.send(l);
        }
    });
    let next = || rx.recv_timeout(std::time::Duration::from_secs(30)).expect("a watch event within 30 s");
    let started: Value = serde_json::from_str(&next()).unwrap();
    assert_eq!(started["event"], "started", "{started}");
    fs::write(r1.join("watched.txt"), b"seen by watch").unwrap();
    // The first sync may only bring in r2's merge; the change follows.
    loop {
        let line = next();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "sync", "{v}");
        if ck.check("watch-sync", line.as_bytes())["pushed"].as_u64().unwrap() >= 1 {
            break;
        }
    }
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // center: one line once it listens, then it serves until SIGINT.
    let mut child = env.cmd().args(["center", "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let c = ck.check("center", line.as_bytes());
    assert!(c["url"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{c}");
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(0));

    // Errors.
    let e = ck.check("error", &run(&env, None, &["snapshots", &s("nowhere")], 10));
    assert_eq!(e["code"], 10, "{e}");

    // Every schema file was exercised.
    let files: BTreeSet<String> = fs::read_dir(schema_dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        .collect();
    assert_eq!(files, ck.used, "schema files without a run here (or runs without a schema file)");
}

#[test]
fn the_validator_rejects_missing_undocumented_and_mistyped_fields() {
    let schema = load_schema("status");
    let mut errs = Vec::new();
    validate(&schema, &serde_json::json!({"changes": [], "not_pulled": []}), "status", &mut errs);
    assert!(errs.is_empty(), "{errs:?}");
    for bad in [
        serde_json::json!({"changes": []}),
        serde_json::json!({"changes": [], "not_pulled": [], "extra": 1}),
        serde_json::json!({"changes": null, "not_pulled": []}),
        serde_json::json!({"changes": [{"path": "a", "kind": "changed", "from": null}], "not_pulled": []}),
    ] {
        let mut errs = Vec::new();
        validate(&schema, &bad, "status", &mut errs);
        assert!(!errs.is_empty(), "accepted {bad}");
    }
    assert!(is_date_time("2026-01-02T03:04:05.123+00:00") && is_date_time("2026-01-02T03:04:05Z"));
    assert!(!is_date_time("2026-01-02 03:04:05") && !is_date_time("2026-01-02T03:04:05"));
}
