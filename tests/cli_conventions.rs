//! What restic and git users expect of a CLI (issue 17): shell
//! completions, a man page, `FERRY_STORE` as the default store, Ctrl-C
//! ending with 130, prompts that name what they unlock, local times,
//! snapshot filters, `--version`, plain errors. The exact wording of
//! messages is in the golden transcripts (`tests/cmd/*.md`).

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
    for text in ["Exit codes", "12 wrong passphrase", "130 interrupted", "FERRY_PASSWORD_FILE", "FERRY_KEY_FILE"] {
        assert!(page.contains(text), "the man page does not say {text:?}");
    }
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
    assert_eq!(listed.lines().last(), Some("2 snapshots"), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&with_store(&["snapshots", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2, "{json}");
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

/// Runs `ferry args` on a pseudo-terminal (util-linux `script`), typing
/// `typed` (one line each, once a prompt can be up); returns everything
/// the terminal showed and the exit code.
fn on_a_terminal(env: &Env, args: &[&str], typed: &[&str]) -> (String, Option<i32>) {
    use std::io::Write;
    let mut line = common::ferry_bin().to_string_lossy().into_owned();
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("FERRY_PASSWORD")
        .env("FERRY_CACHE_DIR", env.path("cache"))
        .env("XDG_DATA_HOME", env.path("data"))
        .env("FERRY_NEW_PASSWORD", "test passphrase")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    for t in typed {
        std::thread::sleep(Duration::from_millis(700));
        let _ = writeln!(stdin, "{t}");
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    (String::from_utf8_lossy(&o.stdout).replace('\r', ""), o.status.code())
}

/// A store `st` holding one backup of a one-file folder.
fn store_with_one_backup(env: &Env) -> String {
    let st = env.store("st");
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"a").unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    st
}

#[test]
fn prompts_name_what_they_unlock_and_a_missing_store_is_said_first() {
    let env = Env::new();
    let st = store_with_one_backup(&env);

    let (out, code) = on_a_terminal(&env, &["snapshots", &st], &["test passphrase"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("passphrase for store {st}: ")), "{out}");
    assert!(out.contains("1 snapshot\n"), "{out}");

    let (out, code) = on_a_terminal(&env, &["snapshots", &st], &["not it"]);
    assert_eq!(code, Some(12), "{out}");
    assert!(out.contains(&format!("opening store {st}: wrong passphrase")), "{out}");

    // No prompt at all for a store that is not there.
    let nowhere = env.path("nowhere");
    let (out, code) = on_a_terminal(&env, &["snapshots", nowhere.to_str().unwrap()], &["test passphrase"]);
    assert_eq!(code, Some(10), "{out}");
    assert!(!out.contains("passphrase for"), "asked before saying the store is missing: {out}");

    // clone asks once: the store's passphrase also locks the new replica.
    let r = env.path("r");
    let (out, code) = on_a_terminal(&env, &["clone", &st, r.to_str().unwrap()], &["test passphrase", "test passphrase"]);
    assert_eq!(out.matches("passphrase for").count(), 1, "{out}");
    // (the store holds a backup, not a synced folder: clone refuses it after the one prompt)
    assert_ne!(code, Some(0), "{out}");

    // A replica's prompt names the replica (push needs its key).
    let rep = env.path("rep");
    env.replica_and_store("rep", "rst");
    let rst = env.path("rst");
    std::fs::write(rep.join("a.txt"), b"a").unwrap();
    let (out, code) = on_a_terminal(&env, &["-C", rep.to_str().unwrap(), "push", rst.to_str().unwrap()], &["wrong one"]);
    assert_eq!(code, Some(12), "{out}");
    let root = rep.canonicalize().unwrap();
    assert!(out.contains(&format!("passphrase for replica {}: ", root.display())), "{out}");
    assert!(out.contains(&format!("opening replica {}: wrong passphrase", root.display())), "{out}");
}

/// Status answers from stat and the file cache without the key when it
/// can; a file only hashing can tell about (here a rename) makes it ask,
/// and the prompt names that file. Keyed or not, the answer is the same.
#[test]
fn status_asks_for_the_key_only_when_a_file_must_be_hashed() {
    let env = Env::new();
    let st = env.replica_and_store("rep", "st");
    let rep = env.path("rep");
    std::fs::write(rep.join("edited.txt"), b"one").unwrap();
    std::fs::write(rep.join("moved.txt"), b"twelve bytes").unwrap();
    std::fs::write(rep.join("gone.txt"), b"x").unwrap();
    std::fs::write(rep.join("same.txt"), b"kept").unwrap();
    env.ok(&["-C", rep.to_str().unwrap(), "push", &st]);
    let status = |typed: &[&str]| on_a_terminal(&env, &["-C", rep.to_str().unwrap(), "status"], typed);

    let (out, code) = status(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("passphrase"), "asked with nothing changed: {out}");
    assert!(out.contains("no local changes since the last sync"), "{out}");

    // An edit that changes the size, a deletion and a new file of another
    // size than the deleted one: stat answers.
    std::fs::write(rep.join("edited.txt"), b"one more").unwrap();
    std::fs::remove_file(rep.join("gone.txt")).unwrap();
    std::fs::write(rep.join("new.txt"), b"fresh").unwrap();
    let (out, code) = status(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("passphrase"), "asked though stat answers: {out}");
    let expect = "M modified  edited.txt\n- deleted   gone.txt\n+ new       new.txt\n";
    assert!(out.contains(expect), "{out}");
    let keyed = env.in_dir("rep", &["status"]);
    assert_eq!(String::from_utf8_lossy(&keyed.stdout), expect, "with the key at hand the answer is the same");

    // An edit that kept size and mtime (only ctime moved) is hashed too.
    let same = rep.join("same.txt");
    let mtime = std::fs::metadata(&same).unwrap().modified().unwrap();
    std::fs::write(&same, b"KEPT").unwrap();
    std::fs::File::options().write(true).open(&same).unwrap().set_modified(mtime).unwrap();
    let (out, code) = status(&["test passphrase"]);
    assert_eq!(code, Some(0), "{out}");
    let root = rep.canonicalize().unwrap();
    assert!(out.contains(&format!("passphrase for replica {} (status hashes same.txt", root.display())), "{out}");
    assert!(out.contains("M modified  same.txt"), "{out}");

    // A new file as large as a deleted one may be it, moved: hashing tells.
    std::fs::rename(rep.join("moved.txt"), rep.join("there.txt")).unwrap();
    let (out, code) = status(&["test passphrase"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("passphrase for replica {} (status hashes ", root.display())), "{out}");
    assert!(out.contains("R renamed   moved.txt -> there.txt"), "{out}");
    let (out, code) = status(&["wrong one"]);
    assert_eq!(code, Some(12), "{out}");
}

#[test]
fn times_are_local_and_json_times_carry_the_offset() {
    let env = Env::new();
    let st = store_with_one_backup(&env);
    let at = |tz: &str, args: &[&str]| {
        let o = env.cmd().env("TZ", tz).args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let utc: serde_json::Value = serde_json::from_str(&at("UTC", &["snapshots", &st, "--json"])).unwrap();
    let tokyo: serde_json::Value = serde_json::from_str(&at("Asia/Tokyo", &["snapshots", &st, "--json"])).unwrap();
    let (u, t) = (utc[0]["time"].as_str().unwrap(), tokyo[0]["time"].as_str().unwrap());
    assert!(u.ends_with("+00:00") && t.ends_with("+09:00"), "{u} {t}");
    let parse = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    assert_eq!(parse(u), parse(t), "the same instant in two zones");
    // Tables say which zone they use, and show the local hour.
    let table = at("Asia/Tokyo", &["snapshots", &st]);
    assert!(table.lines().next().unwrap().contains("time (JST)"), "{table}");
    let hour = |s: &str| s[11..13].parse::<u32>().unwrap();
    assert!(table.contains(&t[..16].replace('T', " ")), "{table}\n{t}");
    assert_eq!((hour(u) + 9) % 24, hour(t));
    let keys = at("Asia/Tokyo", &["key", "list", &st]);
    assert!(keys.lines().next().unwrap().contains("created (JST)"), "{keys}");
    assert!(!keys.contains("1796") && !keys.contains("17962"), "epoch seconds in: {keys}");
}

#[test]
fn snapshot_filters_narrow_snapshots_latest_restore_and_forget() {
    let env = Env::new();
    let st = env.store("st");
    let (a, b) = (env.path("a"), env.path("b"));
    for (d, f) in [(&a, "a.txt"), (&b, "b.txt")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join(f), f.as_bytes()).unwrap();
    }
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    env.ok(&["backup", a_s, "--to", &st, "--host", "laptop", "--tag", "daily"]);
    env.ok(&["backup", a_s, "--to", &st, "--host", "laptop", "--tag", "weekly"]);
    env.ok(&["backup", b_s, "--to", &st, "--host", "desktop", "--tag", "daily"]);
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["snapshots", st.as_str()];
        a.extend_from_slice(args);
        env.json(&a)
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{}:{}", s["host"].as_str().unwrap(), s["tags"][0].as_str().unwrap()))
            .collect()
    };
    assert_eq!(ids(&[]).len(), 3);
    assert_eq!(ids(&["--host", "laptop"]), ["laptop:daily", "laptop:weekly"]);
    assert_eq!(ids(&["--tag", "daily"]), ["laptop:daily", "desktop:daily"]);
    assert_eq!(ids(&["--folder", b_s]), ["desktop:daily"]);
    assert_eq!(ids(&["--host", "laptop", "--tag", "daily"]), ["laptop:daily"]);
    assert_eq!(ids(&["--host", "laptop", "--host", "desktop", "--tag", "weekly"]), ["laptop:weekly"]);
    assert!(ids(&["--host", "nobody"]).is_empty());
    // `latest` is the newest snapshot that passes.
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap(), "--host", "laptop"]);
    assert!(out.join("a.txt").exists() && !out.join("b.txt").exists());
    let o = env.run(&["restore", &st, "latest", "--target", out.to_str().unwrap(), "--host", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("match the filters"), "{}", String::from_utf8_lossy(&o.stderr));
    // forget sees (and drops) only what passes; the rest is untouched.
    let f = env.json(&["forget", &st, "--keep-last", "1", "--host", "laptop"]);
    assert_eq!(f["snapshots"].as_array().unwrap().len(), 2, "{f}");
    assert_eq!(f["removed"], 1, "{f}");
    assert_eq!(ids(&[]), ["laptop:weekly", "desktop:daily"]);
}

#[test]
fn version_names_the_format_versions() {
    let env = Env::new();
    let v = env.ok(&["--version"]);
    assert!(v.starts_with("ferry "), "{v}");
    for text in ["store format 1", "key files 1", "snapshots 1", "serve protocol 1", "exported key files 1"] {
        assert!(v.contains(text), "--version does not say {text:?}: {v}");
    }
    let short = env.ok(&["-V"]);
    assert_eq!(short.lines().count(), 1, "{short}");
}

#[test]
fn an_unreadable_folder_is_named_as_such() {
    let env = Env::new();
    let st = env.store("st");
    let src = env.path("src");
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::write(src.join("ok.txt"), b"fine").unwrap();
    std::fs::write(src.join("locked/in.txt"), b"hidden").unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [env.tmp.path().to_path_buf(), src.clone(), env.path("cache")] {
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let _ = std::process::Command::new("chmod").args(["-R", "a+rwX", &st]).status();
    let run = |dir: &Path| {
        let mut cmd = if common::is_root() {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(common::ferry_bin());
            c
        } else {
            std::process::Command::new(common::ferry_bin())
        };
        cmd.env("FERRY_PASSWORD", "test passphrase")
            .env("FERRY_CACHE_DIR", env.path("cache"))
            .args(["backup", dir.to_str().unwrap(), "--to", &st])
            .output()
            .unwrap()
    };
    // The folder given cannot be opened: the error names it, not a file inside.
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = run(&src);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot open the folder {}: permission denied", src.display())), "{err}");
    assert!(!err.contains(".ferryignore"), "{err}");
    assert!(err.contains("hint: run as a user who may read"), "{err}");
    // A folder inside it: skipped and named, the rest is backed up (exit 3).
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = run(&src);
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("locked") && !err.contains(".ferryignore"), "{err}");
}

/// Random edits of a synced replica (size-changing and same-size edits,
/// rewrites of the same bytes, touches, renames, deletions, new files,
/// mode changes): whenever status
/// answers without the key, its answer is the one it gives with the key,
/// and it asks exactly when a file needed hashing.
#[test]
fn keyless_status_agrees_with_keyed_status_on_random_edits() {
    use std::os::unix::fs::PermissionsExt;
    let (mut keyless, mut asked) = (0, 0);
    for seed in 0..24u64 {
        let env = Env::new();
        let st = env.replica_and_store("rep", "st");
        let rep = env.path("rep");
        let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = |n: u64| {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        for i in 0..6 {
            std::fs::write(rep.join(format!("f{i}")), random_bytes(seed * 10 + i, 1 + next(3) as usize * 7)).unwrap();
        }
        env.ok(&["-C", rep.to_str().unwrap(), "push", &st]);
        for _ in 0..1 + next(3) {
            let f = rep.join(format!("f{}", next(6)));
            if !f.exists() {
                continue;
            }
            match next(8) {
                0 => std::fs::write(&f, random_bytes(next(1000), 50)).unwrap(),
                1 => {
                    // Same size, same mtime: only ctime tells.
                    let m = std::fs::metadata(&f).unwrap();
                    std::fs::write(&f, random_bytes(next(1000), m.len() as usize)).unwrap();
                    std::fs::File::options().write(true).open(&f).unwrap().set_modified(m.modified().unwrap()).unwrap();
                }
                2 => std::fs::File::options().write(true).open(&f).unwrap().set_modified(std::time::SystemTime::now()).unwrap(),
                7 => {
                    // The same bytes written again, mtime kept: no change,
                    // though ctime moved (hashing tells).
                    let (m, bytes) = (std::fs::metadata(&f).unwrap(), std::fs::read(&f).unwrap());
                    std::fs::write(&f, bytes).unwrap();
                    std::fs::File::options().write(true).open(&f).unwrap().set_modified(m.modified().unwrap()).unwrap();
                }
                3 => std::fs::rename(&f, rep.join(format!("moved{}", next(100)))).unwrap(),
                4 => std::fs::remove_file(&f).unwrap(),
                5 => std::fs::write(rep.join(format!("new{}", next(100))), random_bytes(next(1000), 1 + next(3) as usize * 7)).unwrap(),
                _ => std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap(),
            }
        }
        // The answer with the key, from the library (the CLI itself tries
        // without the key first).
        let keyed = {
            let r = ferry_sync::replica::Replica::open(&rep, b"test passphrase").unwrap();
            serde_json::to_value(ferry_sync::scan::StatusReport::new(&ferry_sync::scan::status(&r).unwrap())).unwrap()
        };
        let bare = env
            .cmd()
            .env_remove("FERRY_PASSWORD")
            .args(["-C", rep.to_str().unwrap(), "status", "--json"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        if bare.status.success() {
            keyless += 1;
            let got: serde_json::Value = serde_json::from_slice(&bare.stdout).unwrap();
            assert_eq!(got, keyed, "seed {seed}");
        } else {
            asked += 1;
            // With --json the error is JSON on stdout.
            let err: serde_json::Value = serde_json::from_slice(&bare.stdout).unwrap();
            assert!(err["error"].as_str().unwrap().contains("(status hashes "), "seed {seed}: {err}");
        }
    }
    eprintln!("{keyless} answered without the key, {asked} asked for it");
    assert!(keyless > 0 && asked > 0, "{keyless} keyless, {asked} asked: the cases do not cover both");
}
