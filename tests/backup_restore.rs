//! The backup-target story end to end: backup, snapshots, ls, diff,
//! restore, check, through the binary.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use common::{Env, assert_same_tree, random_bytes};

/// A tree with every entry type and awkward names.
fn awkward_tree(root: &std::path::Path) {
    fs::create_dir_all(root.join("dir with spaces/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("empty folder")).unwrap();
    fs::write(root.join("empty file"), b"").unwrap();
    fs::write(root.join("-leading-dash"), b"dash").unwrap();
    fs::write(root.join("ünïcödé ✓ 日本語.txt"), "unicode content".repeat(100)).unwrap();
    fs::write(root.join("n".repeat(255)), b"a 255-byte name").unwrap();
    fs::write(root.join("dir with spaces/nested/deeper/file.bin"), random_bytes(1, 700_000)).unwrap();
    fs::write(root.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("script.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(root.join("readonly"), b"ro").unwrap();
    fs::set_permissions(root.join("readonly"), fs::Permissions::from_mode(0o400)).unwrap();
    symlink("script.sh", root.join("relative-link")).unwrap();
    symlink("/nonexistent/target", root.join("dangling-link")).unwrap();
    fs::write(root.join("hardlink-a"), b"shared inode").unwrap();
    fs::hard_link(root.join("hardlink-a"), root.join("dir with spaces/hardlink-b")).unwrap();
    // Old and odd mtimes survive too.
    filetime::set_file_mtime(root.join("-leading-dash"), filetime::FileTime::from_unix_time(1_000_000_000, 123_456_789)).unwrap();
}

#[test]
fn round_trip_of_every_entry_type_and_odd_names() {
    let env = Env::new();
    let src = env.path("src");
    awkward_tree(&src);
    let st = env.store("store");
    let r = env.json(&["backup", src.to_str().unwrap(), "--to", &st]);
    assert_eq!(r["files_new"], 9, "{r}");
    assert_eq!(r["skipped"].as_array().unwrap().len(), 0);
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
    // The restored hard links share an inode again.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(out.join("hardlink-a")).unwrap().ino(), fs::metadata(out.join("dir with spaces/hardlink-b")).unwrap().ino());
    let ls = env.ok(&["ls", &st, "latest"]);
    assert!(
        ls.contains("ünïcödé ✓ 日本語.txt") && ls.contains("-leading-dash") && ls.contains("dangling-link -> /nonexistent/target"),
        "{ls}"
    );
    let check = env.run(&["check", &st, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn an_unchanged_folder_reads_nothing_and_adds_almost_nothing() {
    let env = Env::new();
    let src = env.path("src");
    awkward_tree(&src);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    let again = env.json(&["backup", src.to_str().unwrap(), "--to", &st]);
    assert_eq!(again["bytes_read"], 0, "{again}");
    assert_eq!(again["files_unchanged"], 9);
    assert_eq!(again["bytes_added"], 0, "an unchanged tree must add no blocks: {again}");
    // One changed file: only it is read.
    fs::write(src.join("-leading-dash"), b"changed").unwrap();
    let third = env.json(&["backup", src.to_str().unwrap(), "--to", &st]);
    assert_eq!(third["files_modified"], 1);
    assert_eq!(third["bytes_read"], 7);
    let snaps = env.json(&["snapshots", &st]);
    let ids: Vec<&str> = snaps.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    // The third snapshot's parent is the second.
    assert_eq!(snaps[2]["parents"][0], ids[1]);
    let diff = env.ok(&["diff", &st, &ids[1][..10], &ids[2][..10]]);
    assert!(diff.lines().any(|l| l == "M modified  -leading-dash"), "{diff}");
    assert!(diff.contains("0 new, 1 modified, 0 deleted, 0 renamed, 0 metadata"), "{diff}");
}

#[test]
fn restore_of_part_of_a_snapshot_with_include_and_exclude() {
    let env = Env::new();
    let src = env.path("src");
    awkward_tree(&src);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    let out = env.path("part");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap(), "--include", "dir with spaces/**", "--exclude", "*.bin"]);
    let got: Vec<String> = common::files_under(&out).iter().map(|p| p.strip_prefix(&out).unwrap().display().to_string()).collect();
    assert_eq!(got, vec!["dir with spaces/hardlink-b"]);
}

/// A restore over a tree an earlier restore wrote found its hard links
/// already one file; renaming the temp link onto them did nothing (POSIX
/// rename between two names of one file) and left a `.ferry-tmp-*` file
/// behind on every run.
#[test]
fn a_second_restore_over_hard_links_leaves_no_temp_file() {
    let env = Env::new();
    let src = env.path("src");
    awkward_tree(&src);
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    let out = env.path("out");
    for _ in 0..2 {
        env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    }
    // A stray temp name would be a file only in `out`.
    assert_same_tree(&src, &out);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(out.join("hardlink-a")).unwrap().nlink(), 2, "no third name of the pair");
}

#[test]
fn restore_over_an_existing_folder_rewrites_only_what_differs_and_reuses_local_blocks() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), random_bytes(2, 3_000_000)).unwrap();
    fs::write(src.join("same"), b"unchanged").unwrap();
    let st = env.store_with("store", &["--chunk-avg-kib", "64"]);
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    // Damage the restored copy locally: a small overwrite in the middle.
    let mut big = fs::read(out.join("big")).unwrap();
    big[1_500_000..1_500_100].fill(0xAA);
    fs::write(out.join("big"), &big).unwrap();
    let r = env.json(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(r["files_written"], 1, "{r}");
    assert_eq!(r["files_unchanged"], 1, "{r}");
    let from_store = r["bytes_from_store"].as_u64().unwrap();
    let from_local = r["bytes_from_local"].as_u64().unwrap();
    assert!(from_local > 2_000_000 && from_store < 1_000_000, "store {from_store} local {from_local}");
    assert_same_tree(&src, &out);
}

#[test]
fn dry_runs_write_nothing() {
    let env = Env::new();
    let src = env.path("src");
    awkward_tree(&src);
    let st = env.store("store");
    let before = common::files_under(std::path::Path::new(&st));
    let r = env.json(&["backup", src.to_str().unwrap(), "--to", &st, "--dry-run"]);
    assert_eq!(r["snapshot"], serde_json::Value::Null);
    assert!(r["bytes_new_plain"].as_u64().unwrap() > 700_000);
    // No parent yet: every entry (files, folders, links) would be new.
    let changed = r["changed"].as_array().unwrap();
    assert!(changed.iter().all(|c| c["kind"] == "new"), "{r}");
    assert_eq!(before, common::files_under(std::path::Path::new(&st)));
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    assert_eq!(changed.len(), env.json(&["ls", &st, "latest"]).as_array().unwrap().len());
    let out = env.path("out");
    let r = env.json(&["restore", &st, "latest", "--target", out.to_str().unwrap(), "--dry-run"]);
    assert_eq!(r["files_written"], 9);
    assert!(!out.exists());
}

#[test]
fn a_sparse_file_of_several_gib_round_trips_and_stays_sparse() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let f = fs::File::create(src.join("sparse.img")).unwrap();
    f.set_len(3 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"data in the middle", 1 << 30).unwrap();
    drop(f);
    let st = env.store("store");
    let r = env.json(&["backup", src.to_str().unwrap(), "--to", &st]);
    assert!(r["bytes_added"].as_u64().unwrap() < 1 << 20, "zeros must dedup and compress: {r}");
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(out.join("sparse.img")).unwrap();
    assert_eq!(m.len(), 3 << 30);
    assert!(m.blocks() * 512 < 64 << 20, "restored file is not sparse: {} bytes allocated", m.blocks() * 512);
    let mut buf = [0u8; 18];
    fs::File::open(out.join("sparse.img")).unwrap().read_exact_at(&mut buf, 1 << 30).unwrap();
    assert_eq!(&buf, b"data in the middle");
}

#[test]
fn wrong_passphrase_is_exit_12_with_a_hint_and_changes_nothing() {
    let env = Env::new();
    let st = env.store("store");
    let before = common::files_under(std::path::Path::new(&st));
    let o = env.cmd().env("FERRY_PASSWORD", "nope").args(["snapshots", &st]).output().unwrap();
    assert_eq!(o.status.code(), Some(12));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrong passphrase") && err.contains("hint:"), "{err}");
    // No store at all is exit 10, and says so.
    let o = env.run(&["snapshots", env.path("nothing-here").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(10), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env.run(&["snapshots", env.path("nothing-here").to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["code"], 10, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no ferry store") && v["hint"].is_string(), "{v}");
    assert_eq!(before, common::files_under(std::path::Path::new(&st)));
}

#[test]
fn passphrase_from_file_and_command() {
    let env = Env::new();
    let st = env.store("store");
    fs::write(env.path("pw"), "test passphrase\n").unwrap();
    let o = env.cmd().env_remove("FERRY_PASSWORD").env("FERRY_PASSWORD_FILE", env.path("pw")).args(["snapshots", &st]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env
        .cmd()
        .env_remove("FERRY_PASSWORD")
        .env("FERRY_PASSWORD_COMMAND", "echo 'test passphrase'")
        .args(["snapshots", &st])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env.cmd().env_remove("FERRY_PASSWORD").args(["snapshots", &st]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("FERRY_PASSWORD"));
}

#[test]
fn key_add_list_remove_through_the_binary() {
    let env = Env::new();
    let st = env.store("store");
    env.cmd()
        .env("FERRY_NEW_PASSWORD", "second")
        .args(["key", "add", &st, "--kdf-memory-kib", "64", "--kdf-iterations", "1"])
        .output()
        .unwrap();
    let second = |args: &[&str]| env.cmd().env("FERRY_PASSWORD", "second").args(args).output().unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&second(&["key", "list", &st, "--json"]).stdout).unwrap();
    let keys = keys.as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    let id = |current: bool| keys.iter().find(|k| k["current"] == current).unwrap()["id"].as_str().unwrap()[..10].to_string();
    // Remove the first passphrase's key using the second passphrase.
    assert!(second(&["key", "remove", &st, &id(false)]).status.success());
    assert_eq!(env.run(&["snapshots", &st]).status.code(), Some(12), "the removed passphrase still opens the store");
    // The last key file is never removed.
    let o = second(&["key", "remove", &st, &id(true)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("last key file"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(second(&["snapshots", &st]).status.success());
}

#[test]
fn an_empty_folder_restores_even_when_a_file_of_four_zero_bytes_came_first() {
    // The empty tree encodes to four zero bytes: the same block as such a file.
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("zeros"), [0u8; 4]).unwrap();
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    fs::create_dir(src.join("empty")).unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
    assert!(env.run(&["check", &st, "--read-data"]).status.success());
}

#[test]
fn an_over_long_tag_is_refused_before_anything_is_written() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), random_bytes(3, 100_000)).unwrap();
    let st = env.store("store");
    let before = common::files_under(std::path::Path::new(&st));
    let long = "t".repeat(300);
    let o = env.run(&["backup", src.to_str().unwrap(), "--to", &st, "--tag", &long]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the limit is 256"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(before, common::files_under(std::path::Path::new(&st)));
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st, "--tag", "ok"]);
}

/// The `--json` lists of backup and restore name every file, and restore
/// lists every hard-linked file to link them at the end; past 1 MiB these
/// lists go through a temp file (`ferry_sync::spill`). 12,000 paths of 60
/// bytes, in 6,000 hard-linked pairs, are past it: the lists must still be
/// whole and sorted, every pair linked again, and the same when the temp
/// folder is unusable and they stay in memory.
#[test]
fn json_path_lists_past_the_memory_bound_are_whole_and_sorted() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let src = env.path("src");
    let mut want = Vec::new();
    for d in 0..30 {
        let dir = src.join(format!("folder-{d:02}-with-a-name-long-enough"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..400 {
            let name = format!("file-{f:04}-also-named-at-some-length.txt");
            if d < 15 {
                fs::write(dir.join(&name), format!("{d} {f}")).unwrap();
            } else {
                // The second half: hard links to the first half's files.
                fs::hard_link(src.join(format!("folder-{:02}-with-a-name-long-enough/{name}", d - 15)), dir.join(&name)).unwrap();
            }
            want.push(format!("folder-{d:02}-with-a-name-long-enough/{name}"));
        }
    }
    want.sort();
    let linked = |root: &std::path::Path| {
        for p in &want {
            assert_eq!(fs::metadata(root.join(p)).unwrap().nlink(), 2, "{p} is not one of a linked pair");
        }
    };
    let paths = |v: &serde_json::Value, field: &str, key: Option<&str>| -> Vec<String> {
        v[field]
            .as_array()
            .unwrap_or_else(|| panic!("no {field} in {v}"))
            .iter()
            .map(|e| match key {
                Some(k) => e[k].as_str().unwrap().to_string(),
                None => e.as_str().unwrap().to_string(),
            })
            .collect()
    };
    for (store, tmpdir) in [("spilled", None), ("in-memory", Some("/nonexistent-ferry-tmp"))] {
        let st = env.store(store);
        let run = |args: &[&str]| -> serde_json::Value {
            let mut c = env.cmd();
            if let Some(t) = tmpdir {
                c.env("TMPDIR", t);
            }
            let o = c.args(args).arg("--json").output().unwrap();
            assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
            serde_json::from_slice(&o.stdout).unwrap()
        };
        let b = run(&["backup", src.to_str().unwrap(), "--to", &st]);
        assert_eq!(paths(&b, "changed", Some("path")), want, "backup's list ({store})");
        assert!(b["changed"].as_array().unwrap().iter().all(|c| c["kind"] == "new"));
        let out = env.path(&format!("out-{store}"));
        let r = run(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
        assert_eq!(paths(&r, "written", None), want, "restore's list ({store})");
        assert_eq!(r["overwritten"].as_array().unwrap().len(), 0);
        linked(&out);
        // Over the restored tree with every file changed: all are listed
        // as written and as overwritten.
        for p in &want {
            fs::write(out.join(p), b"changed").unwrap();
        }
        let r = run(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
        assert_eq!(paths(&r, "written", None), want);
        assert_eq!(paths(&r, "overwritten", None), want);
        assert_same_tree(&src, &out);
        linked(&out);
    }
}

/// The walk stats entries through their open folder, but must not keep
/// every folder above it open while it goes deeper: a tree 200 folders
/// deep backs up with 64 file descriptors.
#[test]
fn a_deep_tree_backs_up_with_few_file_descriptors() {
    let env = Env::new();
    let src = env.path("src");
    let mut dir = src.clone();
    for i in 0..200 {
        dir = dir.join("d");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}")), format!("{i}")).unwrap();
    }
    let st = env.store("store");
    // ferry as the tests run it, under a shell that lowers the limit.
    let ferry = env.cmd();
    let mut c = std::process::Command::new("sh");
    c.args(["-c", "ulimit -n 64 && exec \"$@\"", "sh"]).arg(ferry.get_program());
    for (k, v) in ferry.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let o = c.args(["--json", "backup", src.to_str().unwrap(), "--to", &st]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["files"], 200, "{r}");
    assert_eq!(r["skipped"].as_array().unwrap().len(), 0, "{r}");
    let out = env.path("out");
    env.ok(&["restore", &st, "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
}

/// Restore creates each file with its final permission bits and skips
/// the chmod and chown that would change nothing; this checks that what
/// it skips is only ever a no-op: bits the umask strips, setuid, setgid
/// and sticky bits, a mode with no bits at all, and (as root) another
/// owner, come back exactly, into a new folder and over an old one.
#[test]
fn modes_the_umask_strips_special_bits_and_owners_restore_exactly() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("group-dir")).unwrap();
    let modes = [0o664, 0o666, 0o4755, 0o2755, 0o1777, 0o000, 0o640, 0o600, 0o777];
    for m in modes {
        let p = src.join(format!("m{m:o}"));
        fs::write(&p, format!("mode {m:o}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(m)).unwrap();
    }
    fs::set_permissions(src.join("group-dir"), fs::Permissions::from_mode(0o2775)).unwrap();
    let owned = src.join("owned");
    fs::write(&owned, b"someone else's\n").unwrap();
    if common::is_root() {
        std::os::unix::fs::chown(&owned, Some(1234), Some(4321)).unwrap();
    }
    fs::set_permissions(&owned, fs::Permissions::from_mode(0o4750)).unwrap();
    let st = env.store("store");
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    // Under the usual umask, which would strip group and other write bits.
    let restore = |target: &std::path::Path| {
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg("umask 022 && exec \"$@\"").arg("sh").arg(env.cmd().get_program());
        for (k, v) in env.cmd().get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        let o = c.args(["restore", &st, "latest", "--target", target.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let owners = |root: &std::path::Path| -> Vec<(String, u32, u32, u32)> {
        let mut v: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = fs::symlink_metadata(e.path()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), m.mode() & 0o7777, m.uid(), m.gid())
            })
            .collect();
        v.sort();
        v
    };
    let out = env.path("out");
    restore(&out);
    assert_same_tree(&src, &out);
    assert_eq!(owners(&src), owners(&out));
    // Over the old restore with every file changed: written beside and renamed.
    for m in modes {
        let p = out.join(format!("m{m:o}"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&p, b"changed since\n").unwrap();
    }
    fs::write(out.join("owned"), b"changed since, and longer\n").unwrap();
    restore(&out);
    assert_same_tree(&src, &out);
    assert_eq!(owners(&src), owners(&out));
}
