//! What restic and git users expect of a CLI (issue 17, in part): shell
//! completions, a man page, `FERRY_STORE` as the default store, and
//! Ctrl-C ending with 130, a short message and no stale lock.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Env, random_bytes};

#[test]
fn completions_for_every_shell_name_the_commands() {
    let env = Env::new();
    for (shell, marker) in [
        ("bash", "_ferry()"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
        ("elvish", "edit:completion"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = env.ok(&["completions", shell]);
        assert!(out.contains(marker), "{shell}: no {marker:?} in the script");
        for sub in ["backup", "restore", "sync", "snapshots"] {
            assert!(out.contains(sub), "{shell}: {sub} missing");
        }
    }
    let o = env.run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn man_prints_roff_and_writes_a_page_per_command() {
    let env = Env::new();
    let page = env.ok(&["man"]);
    assert!(page.contains(".TH ferry") && page.contains(".SH NAME") && page.contains("backup"), "{}", &page[..page.len().min(400)]);
    let dir = env.path("man");
    env.ok(&["man", "--out", dir.to_str().unwrap()]);
    for name in ["ferry.1", "ferry-backup.1", "ferry-sync.1", "ferry-store-init.1", "ferry-key-export.1"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".SH NAME"), "{name}");
    }
}

#[test]
fn ferry_store_is_the_default_store() {
    let env = Env::new();
    let st = env.replica_and_store("r", "st");
    std::fs::write(env.path("r/a.txt"), b"a").unwrap();
    let with_store = |args: &[&str]| {
        let o = env.cmd().env("FERRY_STORE", &st).arg("-C").arg(env.path("r")).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    with_store(&["push"]);
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("b.txt"), b"b").unwrap();
    with_store(&["backup", data.to_str().unwrap()]);
    let listed = with_store(&["snapshots"]);
    assert!(listed.contains("2 snapshots") || listed.lines().count() >= 3, "{listed}");
    with_store(&["check"]);
    // Without it, the location is required (a usage error).
    let o = env.cmd().env_remove("FERRY_STORE").args(["snapshots"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

fn lock_files(store: &Path) -> usize {
    std::fs::read_dir(store.join("locks")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn ctrl_c_exits_130_says_so_and_leaves_no_lock() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..48 {
        std::fs::write(src.join(format!("f{i:02}")), random_bytes(i, 4 << 20)).unwrap();
    }
    let st = env.path("st");
    env.ok(&["store", "init", st.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1", "--pack-size-mib", "1"]);
    let child = env
        .cmd()
        .args(["backup", src.to_str().unwrap(), "--to", st.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the backup holds its lock and has written some packs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(lock_files(&st) > 0 && common::files_under(&st.join("packs")).len() >= 3) {
        assert!(Instant::now() < deadline, "the backup never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && err.contains("run the same command again"), "{err}");
    assert_eq!(lock_files(&st), 0, "a lock was left behind");
    env.ok(&["check", st.to_str().unwrap()]);
    // The rerun completes and restores the whole folder.
    env.ok(&["backup", src.to_str().unwrap(), "--to", st.to_str().unwrap()]);
    let out = env.path("out");
    env.ok(&["restore", st.to_str().unwrap(), "latest", "--target", out.to_str().unwrap()]);
    common::assert_same_tree(&src, &out);
}
