//! Exported keys (format-spec §18): `ferry key export` and
//! `FERRY_KEY_FILE` / `--key-file` open stores and replicas with no
//! passphrase; a damaged or foreign key file is a clear error.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Env;

/// A replica `r` holding `a.txt`, pushed to store `st`, and its key
/// exported to `family.key`: (env, store, key file).
fn exported() -> (Env, String, std::path::PathBuf) {
    let env = Env::new();
    std::fs::create_dir(env.path("r")).unwrap();
    std::fs::write(env.path("r/a.txt"), b"hello").unwrap();
    let st = env.replica_and_store("r", "st");
    env.in_dir_json("r", &["push", &st]);
    let key = env.path("family.key");
    env.ok(&["key", "export", &st, key.to_str().unwrap()]);
    (env, st, key)
}

#[test]
fn an_exported_key_opens_stores_and_replicas_without_a_passphrase() {
    let (env, st, key) = exported();
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is private");
    // Never overwritten.
    let again = env.run(&["key", "export", &st, key.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists") && err.contains("never overwrites"), "{err}");
    // A key file that is not there: the hint is about the path, not export.
    let mut c = env.cmd();
    c.env_remove("FERRY_PASSWORD").env("FERRY_KEY_FILE", env.path("nowhere.key")).args(["snapshots", &st]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nowhere.key") && err.contains("check the path in FERRY_KEY_FILE"), "{err}");
    assert!(!err.contains("never overwrites"), "{err}");

    // No passphrase anywhere: the key file alone opens the store and the replica.
    let keyed = |args: &[&str]| {
        let mut c = env.cmd();
        c.env_remove("FERRY_PASSWORD").env("FERRY_KEY_FILE", &key).args(args);
        c.output().unwrap()
    };
    let o = keyed(&["snapshots", &st, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps.as_array().map(|a| a.len()), Some(1), "{snaps}");
    std::fs::write(env.path("r/b.txt"), b"more").unwrap();
    let r = env.path("r");
    let o = keyed(&["-C", r.to_str().unwrap(), "push", &st, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = keyed(&["restore", &st, "latest", "--target", env.path("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(env.path("out/b.txt")).unwrap(), b"more");
    // Without the key file and without a passphrase there is no way in.
    let mut c = env.cmd();
    c.env_remove("FERRY_PASSWORD").args(["snapshots", &st]).stdin(std::process::Stdio::null());
    assert!(!c.output().unwrap().status.success());
}

#[test]
fn a_damaged_or_foreign_key_file_is_refused_with_a_clear_error() {
    let env = Env::new();
    std::fs::create_dir(env.path("r")).unwrap();
    let st = env.replica_and_store("r", "st");
    let other = env.store("other");
    let key = env.path("other.key");
    env.ok(&["key", "export", &other, key.to_str().unwrap()]);
    let run = |k: &std::path::Path, args: &[&str]| {
        let mut c = env.cmd();
        c.env_remove("FERRY_PASSWORD").arg("--key-file").arg(k).args(args);
        c.output().unwrap()
    };
    // Another family's key: neither the store nor the replica opens.
    let o = run(&key, &["snapshots", &st]);
    assert_eq!(o.status.code(), Some(1));
    let r = env.path("r");
    let o = run(&key, &["-C", r.to_str().unwrap(), "status"]);
    assert_eq!(o.status.code(), Some(12), "a key of another family is a wrong key");
    assert!(String::from_utf8_lossy(&o.stderr).contains("key family"), "{}", String::from_utf8_lossy(&o.stderr));
    // A flipped byte is caught by the check bytes and named.
    let mut b = std::fs::read(&key).unwrap();
    b[40] ^= 1;
    let bad = env.path("bad.key");
    std::fs::write(&bad, &b).unwrap();
    let o = run(&bad, &["snapshots", &other]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.key") && err.contains("damaged"), "{err}");
}

/// A clone made with a key file locks the new replica with a new
/// passphrase; run again into that replica, it opens it with the
/// passphrase it has (it asked for a new one, and with
/// `FERRY_NEW_PASSWORD` set, used that one and failed).
#[test]
fn a_clone_with_a_key_file_run_again_opens_the_replica_with_its_passphrase() {
    let (env, st, key) = exported();
    let c = env.path("c");
    let clone = |current: Option<&str>, new: &str| {
        let mut cmd = env.cmd();
        cmd.env_remove("FERRY_PASSWORD").env("FERRY_NEW_PASSWORD", new).arg("--key-file").arg(&key);
        if let Some(p) = current {
            cmd.env("FERRY_PASSWORD", p);
        }
        cmd.args(["clone", &st, c.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]).stdin(std::process::Stdio::null());
        cmd.output().unwrap()
    };
    let o = clone(None, "replica passphrase");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(env.path("r/b.txt"), b"more").unwrap();
    env.in_dir_json("r", &["push", &st]);
    let o = clone(Some("replica passphrase"), "some other passphrase");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(c.join("b.txt")).unwrap(), b"more");
}
