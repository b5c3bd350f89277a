//! Store locations are parsed in one place (issue 11): a path is a local
//! folder, `ssh://` is served by `ferry serve` (tests/ssh.rs), `s3://` a
//! bucket (tests/s3.rs runs it against Garage), any other scheme is
//! refused by name. Nothing is
//! created for a location that is refused.

mod common;

use common::Env;

/// Runs ferry with `dir` as the working folder; returns (exit code, stderr).
fn run_in(env: &Env, dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let o = env.cmd().current_dir(dir).args(args).output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn store_init_with_an_unknown_scheme_fails_clearly_and_creates_nothing() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let (code, err) = run_in(&env, &work, &["store", "init", "ftp://x/y", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown scheme \"ftp\""), "{err}");
    assert!(err.contains("ssh://") && err.contains("s3://"), "the message should give the syntax: {err}");
    assert!(entries(&work).is_empty(), "a refused location must create nothing, found {:?}", entries(&work));
}

#[test]
fn s3_without_credentials_fails_clearly_and_creates_nothing() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    for args in [&["store", "init", "s3://bucket/prefix", "--kdf-memory-kib", "64", "--kdf-iterations", "1"][..], &["check", "s3://bucket"]]
    {
        let o = env
            .cmd()
            .current_dir(&work)
            .args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "ferry {args:?}: {err}");
        assert!(err.contains("no credentials") && err.contains("AWS_ACCESS_KEY_ID"), "ferry {args:?}: {err}");
        assert!(entries(&work).is_empty(), "ferry {args:?} created {:?}", entries(&work));
    }
}

#[test]
fn like_accepts_a_store_as_well_as_a_replica_folder() {
    let env = Env::new();
    // A replica's family (--like .), then a store of the same family by --like STORE.
    let first = env.replica_and_store("laptop", "first");
    let second = env.path("second").to_str().unwrap().to_string();
    env.ok(&["store", "init", &second, "--like", &first, "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    let a = env.json(&["snapshots", &first]);
    let b = env.json(&["snapshots", &second]);
    assert_eq!(a, b, "both stores open and are empty");
    // Same family: the replica pushes to the second store with its own key.
    std::fs::write(env.path("laptop/x"), b"x").unwrap();
    env.in_dir_json("laptop", &["push", &second]);
}
