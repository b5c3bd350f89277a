//! On-demand replicas (`ferry clone LOC DIR --on-demand`, `ferry mount
//! DIR`): the real binary, a real FUSE mount over the replica's own folder,
//! and the mount's own counters of what it read from the store.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::fuse::{Mounted, mounted};
use common::write_file as write;
use common::*;

/// A replica `src` with `n` small files in 20 folders, a 3 MiB file, a
/// symlink and an executable, pushed to a new store; returns the store.
fn source(env: &Env, n: usize) -> String {
    let store = env.replica_and_store("src", "store");
    let src = env.path("src");
    for i in 0..n {
        write(&src.join(format!("d{:02}/f{i:04}.txt", i % 20)), format!("file {i}\n").repeat(1 + i % 50).as_bytes());
    }
    write(&src.join("big.bin"), &random_bytes(7, 3 << 20));
    write(&src.join("tool.sh"), b"#!/bin/sh\necho hi\n");
    std::fs::set_permissions(src.join("tool.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("big.bin", src.join("link")).unwrap();
    filetime::set_file_mtime(src.join("tool.sh"), filetime::FileTime::from_unix_time(1_500_000_000, 123_456_789)).unwrap();
    let o = env.in_dir("src", &["push", &store, "-q"]);
    assert!(o.status.success(), "push: {}", String::from_utf8_lossy(&o.stderr));
    store
}

fn mount(env: &Env, dir: &Path) -> Mounted {
    Mounted::start_replica(env.cmd(), dir.to_path_buf(), dir.with_extension("log"))
}

/// Bytes of disk the regular files under `dir` use (st_blocks × 512), and how many there are.
fn disk_use(dir: &Path) -> (u64, usize) {
    let (mut bytes, mut n) = (0, 0);
    for p in files_under(dir) {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_file() {
            bytes += m.blocks() * 512;
            n += 1;
        }
    }
    (bytes, n)
}

/// Name, kind, size, mode and mtime of everything under `root` (no content).
fn shape(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in files_under(root) {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel.starts_with(".ferry") {
            continue;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        let size = if m.is_file() { m.size() } else { 0 };
        out.push(format!("{rel} {:?} {size} {:o} {}.{}", m.file_type(), m.mode() & 0o7777, m.mtime(), m.mtime_nsec()));
    }
    out.sort();
    out
}

fn state(p: &Path) -> Option<String> {
    ferry_sync::ondemand::get_xattr(p, ferry_sync::ondemand::XATTR_STATE).unwrap().map(|v| String::from_utf8(v).unwrap())
}

/// A clone of 2000 files writes placeholders only; the mount lists them
/// with their real names, sizes, modes and mtimes and reads nothing from
/// the store; opening a file fetches only the blocks it reads, and
/// reading never puts content on disk.
#[test]
fn clone_on_demand_lists_without_data_and_reads_only_what_is_opened() {
    let env = Env::new();
    let store = source(&env, 2000);
    let od = clone_on_demand(&env, &store, "od");

    // Nothing is downloaded: a placeholder's data is a hole; what it uses
    // is at most one attribute block (ext4 with 256-byte inodes cannot keep
    // the two attributes inside the inode), whatever the file's size.
    let (bytes, files) = disk_use(&od.join(".ferry/files"));
    assert_eq!(files, 2002, "every file is there as a placeholder");
    assert!(bytes <= files as u64 * 4096, "placeholders use {bytes} bytes for {files} files");
    eprintln!("disk use of {files} placeholders: {bytes} bytes ({} per file)", bytes / files as u64);
    let big = std::fs::symlink_metadata(od.join(".ferry/files/big.bin")).unwrap();
    assert!(big.blocks() * 512 <= 4096, "the 3 MiB placeholder uses {} bytes", big.blocks() * 512);
    assert!(!od.join("big.bin").exists(), "unmounted, DIR shows nothing but .ferry");
    assert_eq!(state(&od.join(".ferry/files/big.bin")).as_deref(), Some("placeholder"));

    let m = mount(&env, &od);
    // Opening the store read its config.
    let opened = m.n("store_read_bytes");
    // `ls -lR` sees the whole tree and reads no data.
    let o = Command::new("ls").arg("-lR").arg(&od).output().unwrap();
    assert!(o.status.success());
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(listing.lines().filter(|l| l.contains(".txt")).count() >= 2000, "{}", &listing[..listing.len().min(2000)]);
    assert_eq!(shape(&od), shape(&env.path("src")), "names, kinds, sizes, modes and mtimes as in the source");
    assert_eq!(std::fs::read_link(od.join("link")).unwrap(), Path::new("big.bin"));
    let s = m.stats();
    assert_eq!(s["blocks_fetched"].as_u64(), Some(0), "listing fetched blocks: {s}");
    assert_eq!(s["store_read_bytes"].as_u64(), Some(opened), "listing read the store: {s}");
    let seen: u64 = files_under(&od)
        .iter()
        .filter(|p| !p.starts_with(od.join(".ferry")))
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks() * 512)
        .sum();
    assert_eq!(seen, bytes, "the mount reports the disk placeholders really use");
    assert_eq!(state(&od.join("big.bin")).as_deref(), Some("placeholder"), "the state is visible through the mount");

    // A 4 KiB read in the middle of the 3 MiB file fetches one or two blocks.
    let mut f = std::fs::File::open(od.join("big.bin")).unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact(&mut buf).unwrap();
    let want = random_bytes(7, 3 << 20);
    assert_eq!(buf, want[1 << 20..(1 << 20) + 4096]);
    drop(f);
    let fetched = m.n("blocks_fetched");
    assert!((1..=2).contains(&fetched), "a 4 KiB read fetched {fetched} blocks");
    let read = m.n("store_read_bytes") - opened;
    assert!(read < 3 << 20, "a 4 KiB read read {read} bytes of a 3 MiB file");

    // Opening one small file fetches its one block; the content is exact.
    let before = m.n("blocks_fetched");
    assert_eq!(std::fs::read(od.join("d07/f0007.txt")).unwrap(), "file 7\n".repeat(8).as_bytes());
    assert_eq!(m.n("blocks_fetched"), before + 1);
    // Reading the whole big file reads about its size, and leaves it a placeholder.
    assert_eq!(std::fs::read(od.join("big.bin")).unwrap(), want);
    let read = m.n("store_read_bytes") - opened;
    assert!(read < (3 << 20) + (256 << 10), "the whole 3 MiB file read {read} bytes");
    assert_eq!(state(&od.join("big.bin")).as_deref(), Some("partial"), "read: its blocks are in the block cache, not in the file");
    drop(m);
    assert!(!mounted(&od));
    assert_eq!(disk_use(&od.join(".ferry/files")).0, bytes, "reads do not hydrate: still no content on disk");
}

/// Edits through the mount (new file, in-place write, append, truncate,
/// delete, rename, mkdir, symlink, chmod, an editor's temp-file-and-rename
/// save) are pushed from the mounted replica; a full replica pulls them
/// byte for byte. The push reads no placeholder.
#[test]
fn edits_through_the_mount_reach_another_replica() {
    let env = Env::new();
    let store = source(&env, 200);
    let od = clone_on_demand(&env, &store, "od");
    let m = mount(&env, &od);

    write(&od.join("new/deep/hello.txt"), b"made through the mount\n");
    {
        // In place, in the middle of a placeholder: it is hydrated first.
        let mut f = std::fs::OpenOptions::new().write(true).open(od.join("big.bin")).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"PATCHED").unwrap();
    }
    assert_eq!(state(&od.join("big.bin")).as_deref(), Some("modified"));
    let mut big = random_bytes(7, 3 << 20);
    big[1 << 20..(1 << 20) + 7].copy_from_slice(b"PATCHED");
    assert_eq!(std::fs::read(od.join("big.bin")).unwrap(), big);
    std::fs::OpenOptions::new().append(true).open(od.join("d01/f0001.txt")).unwrap().write_all(b"appended\n").unwrap();
    std::fs::OpenOptions::new().write(true).open(od.join("d02/f0002.txt")).unwrap().set_len(3).unwrap();
    std::fs::remove_file(od.join("d03/f0003.txt")).unwrap();
    std::fs::rename(od.join("d04/f0004.txt"), od.join("d05/renamed.txt")).unwrap();
    std::fs::create_dir(od.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink("d05/renamed.txt", od.join("to-renamed")).unwrap();
    std::fs::set_permissions(od.join("d06/f0006.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // An editor's save: write a temp file, then rename it over the original.
    write(&od.join("d08/.f0008.txt.swp"), b"saved by the editor\n");
    std::fs::rename(od.join("d08/.f0008.txt.swp"), od.join("d08/f0008.txt")).unwrap();
    assert_eq!(std::fs::read(od.join("d08/f0008.txt")).unwrap(), b"saved by the editor\n");
    assert_eq!(state(&od.join("d08/f0008.txt")), None, "a file made here is an ordinary file");
    // Overwriting a placeholder (open with O_TRUNC) never fetches its old content.
    let before = m.n("blocks_fetched");
    std::fs::write(od.join("d09/f0009.txt"), b"overwritten\n").unwrap();
    assert_eq!(m.n("blocks_fetched"), before, "an overwrite fetched the old content");
    assert_eq!(state(&od.join("d09/f0009.txt")).as_deref(), Some("modified"));

    let fetched = m.n("blocks_fetched");
    let o = env.in_dir("od", &["status"]);
    assert!(o.status.success(), "status: {}", String::from_utf8_lossy(&o.stderr));
    let status = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(status.contains("new/deep/hello.txt") && status.contains("big.bin"), "{status}");
    assert!(!status.contains("f0010.txt"), "an untouched placeholder is unchanged: {status}");
    let o = env.in_dir("od", &["push", &store]);
    assert!(o.status.success(), "push: {}\n{}", String::from_utf8_lossy(&o.stderr), m.log());
    let pushed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(pushed.contains("M modified  big.bin") && pushed.contains("+ new       new/deep/hello.txt"), "{pushed}");
    assert_eq!(m.n("blocks_fetched"), fetched, "status and push read no placeholder");

    let o = env.in_dir("src", &["pull", &store]);
    assert!(o.status.success(), "pull: {}", String::from_utf8_lossy(&o.stderr));
    let src = env.path("src");
    assert_eq!(std::fs::read(src.join("big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(src.join("d01/f0001.txt")).unwrap(), format!("{}appended\n", "file 1\n".repeat(2)).as_bytes());
    assert_eq!(std::fs::read(src.join("d02/f0002.txt")).unwrap(), b"fil");
    assert!(!src.join("d03/f0003.txt").exists());
    assert!(!src.join("d04/f0004.txt").exists());
    assert_eq!(std::fs::read(src.join("d05/renamed.txt")).unwrap(), "file 4\n".repeat(5).as_bytes());
    assert!(src.join("empty-dir").is_dir());
    assert_eq!(std::fs::read_link(src.join("to-renamed")).unwrap(), Path::new("d05/renamed.txt"));
    assert_eq!(std::fs::metadata(src.join("d06/f0006.txt")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(src.join("d08/f0008.txt")).unwrap(), b"saved by the editor\n");
    assert_eq!(std::fs::read(src.join("d09/f0009.txt")).unwrap(), b"overwritten\n");
    // The whole tree, byte for byte (reading the mount fetches the rest).
    assert_same_replica(&src, &od);

    // A pull into the mounted replica writes a changed file as a
    // placeholder of its new version; untouched placeholders stay.
    write(&src.join("d10/f0010.txt"), b"changed on the full replica\n");
    assert!(env.in_dir("src", &["push", &store]).status.success());
    let o = env.in_dir("od", &["pull", &store]);
    assert!(o.status.success(), "pull into the mount: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(state(&od.join("d10/f0010.txt")).as_deref(), Some("placeholder"));
    assert_eq!(std::fs::read(od.join("d10/f0010.txt")).unwrap(), b"changed on the full replica\n");
    // Untouched: still not fetched (its block is in the block cache since
    // the comparison above read it).
    // (Once seen as "placeholder" in CI, not reproduced: the message
    // carries what is needed to tell an eviction from a lost write.)
    let d11 = state(&od.join("d11/f0011.txt"));
    assert_eq!(
        d11.as_deref(),
        Some("partial"),
        "d11/f0011.txt: blocks fetched {}, cache hits {}; mount log:\n{}",
        m.n("blocks_fetched"),
        m.n("cache_hits"),
        m.log()
    );
    assert_same_replica(&src, &od);
    drop(m);
}

/// Unmounted, an on-demand replica's folder holds only `.ferry/`: every
/// command that needs its files refuses (nothing is pushed as deleted),
/// and works once it is mounted.
#[test]
fn an_unmounted_on_demand_replica_is_refused_not_taken_for_empty() {
    let env = Env::new();
    let store = source(&env, 20);
    let od = clone_on_demand(&env, &store, "od");
    let snaps = env.json(&["snapshots", &store]).as_array().unwrap().len();
    for args in [vec!["push", store.as_str()], vec!["pull", store.as_str()], vec!["sync", store.as_str()], vec!["status"]] {
        let o = env.in_dir("od", &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("on-demand replica and is not mounted"), "{args:?}: {err}");
        assert!(err.contains(&format!("ferry mount {}", od.display())), "{args:?}: the hint names the command: {err}");
    }
    assert_eq!(env.json(&["snapshots", &store]).as_array().unwrap().len(), snaps, "nothing was pushed");
    // A second mount of the same replica is refused while one runs.
    let m = mount(&env, &od);
    let o = env.run(&["mount", od.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already mounted"));
    let o = env.in_dir("od", &["status"]);
    assert!(o.status.success(), "status when mounted: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no local changes"), "{}", String::from_utf8_lossy(&o.stdout));
    let o = env.in_dir("od", &["push", &store]);
    assert!(o.status.success(), "push when mounted: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already up to date"), "{}", String::from_utf8_lossy(&o.stdout));
    drop(m);
    // `ferry mount` on a full replica is refused with a clear message.
    let o = env.run(&["mount", env.path("src").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an on-demand replica"), "{}", String::from_utf8_lossy(&o.stderr));

    // With its store away, `ferry mount DIR` of a replica never mounted
    // (so with no record of its store: see
    // `on_demand_pins.rs::the_mount_starts_while_its_store_is_away`)
    // says which store it needs, not how to make a store at the replica's path.
    let od2 = clone_on_demand(&env, &store, "od2");
    std::fs::rename(&store, env.path("store.away")).unwrap();
    let o = env.run(&["mount", od2.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("this on-demand replica's store is {store}")), "{err}");
    assert!(!err.contains("store init"), "{err}");
    // A record of the store that does not open is no record: the same
    // error, not a damaged config.
    std::fs::write(od2.join(".ferry/mount-store"), format!("FMS1\n{store}\n{}\n", "ab".repeat(80))).unwrap();
    let o = env.run(&["mount", od2.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(10), "{err}");
    assert!(err.contains(&format!("this on-demand replica's store is {store}")), "{err}");
}

/// Versions the snapshot's `.ferryignore` excludes, carried over from
/// ancestors (format-spec §15.6), are left out of an on-demand clone as
/// out of a full one (model test, seed 2401116: the on-demand clone wrote
/// `d1/y.log`, whose folder was deleted since, and failed on it).
#[test]
fn an_on_demand_clone_leaves_out_what_the_rules_exclude_as_a_full_clone_does() {
    let env = Env::new();
    let store = env.replica_and_store("src", "store");
    let src = env.path("src");
    write(&src.join("d1/y.log"), b"y\n");
    write(&src.join("a.txt"), b"a\n");
    env.in_dir_json("src", &["push", &store]);
    write(&src.join(".ferryignore"), b"*.log\n");
    std::fs::remove_dir_all(src.join("d1")).unwrap();
    env.in_dir_json("src", &["push", &store]);
    let full = env.path("full");
    env.ok(&["clone", &store, full.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    let od = clone_on_demand(&env, &store, "od");
    let names = |root: &Path| -> Vec<String> {
        files_under(root)
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .filter(|r| !r.starts_with(".ferry/"))
            .collect()
    };
    let backing = od.join(".ferry/files");
    assert_eq!(names(&backing), vec![".ferryignore".to_string(), "a.txt".into()]);
    assert_eq!(names(&backing), names(&full));
    assert!(!backing.join("d1").exists(), "the excluded version's folder");
}

fn set_xattr(p: &Path, name: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, name, v, rustix::fs::XattrFlags::empty()).unwrap_or_else(|e| panic!("setting {name} on {}: {e}", p.display()));
}

/// Pins a file the way `ferry pin` does (format-spec §22 "Pins"): the
/// attribute on the backing file, set while the replica is not mounted.
fn pin_backing(od: &Path, rel: &str) {
    set_xattr(&od.join(".ferry/files").join(rel), ferry_sync::ondemand::XATTR_PINNED, b"1");
}

/// Bytes of disk a file uses (st_blocks × 512); through the mount, the backing file's.
fn disk(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().blocks() * 512
}

/// Pushes from `src` after `change` ran there.
fn push_change(env: &Env, store: &str, change: impl FnOnce(&Path)) {
    change(&env.path("src"));
    let o = env.in_dir("src", &["push", store, "-q"]);
    assert!(o.status.success(), "push: {}", String::from_utf8_lossy(&o.stderr));
}

/// A pull into a mounted on-demand replica writes new and changed files
/// as placeholders: no data block is read (neither by the pull nor by
/// the mount), the backing files hold no data, untouched placeholders
/// keep their inode; the content read through the mount is the new one.
#[test]
fn pull_writes_new_and_changed_files_as_placeholders_and_fetches_nothing() {
    let env = Env::new();
    let store = source(&env, 20);
    let od = clone_on_demand(&env, &store, "od");
    let m = mount(&env, &od);
    let untouched_ino = std::fs::symlink_metadata(od.join("d02/f0002.txt")).unwrap().ino();
    let new_big = random_bytes(9, 2 << 20);
    push_change(&env, &store, |src| {
        write(&src.join("d01/f0001.txt"), b"changed elsewhere\n");
        write(&src.join("new/arrived.bin"), &new_big);
        write(&src.join("big.bin"), &random_bytes(8, 3 << 20));
    });
    // A reader that has the old version open keeps it, as on any folder.
    let mut old_reader = std::fs::File::open(od.join("d01/f0001.txt")).unwrap();
    let (fetched, read) = (m.n("blocks_fetched"), m.n("store_read_bytes"));

    let r = env.in_dir_json("od", &["pull", &store]);
    assert_eq!(r["bytes_from_store"].as_u64(), Some(0), "the pull read data blocks: {r}");
    assert_eq!(r["complete"].as_bool(), Some(true), "{r}");
    assert_eq!(m.n("blocks_fetched"), fetched, "the mount fetched blocks during the pull");
    assert_eq!(m.n("store_read_bytes"), read, "the mount read the store during the pull");
    for rel in ["d01/f0001.txt", "new/arrived.bin", "big.bin"] {
        assert_eq!(state(&od.join(rel)).as_deref(), Some("placeholder"), "{rel}");
        assert!(disk(&od.join(rel)) <= 4096, "{rel} uses {} bytes: content was written", disk(&od.join(rel)));
    }
    assert_eq!(std::fs::metadata(od.join("new/arrived.bin")).unwrap().len(), 2 << 20);
    assert_eq!(std::fs::symlink_metadata(od.join("d02/f0002.txt")).unwrap().ino(), untouched_ino, "an unchanged placeholder was rewritten");
    assert_eq!(state(&od.join("d02/f0002.txt")).as_deref(), Some("placeholder"));
    // The push file cache and the scan trust them: nothing to push, nothing read.
    let o = env.in_dir("od", &["status"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no local changes"), "{}", String::from_utf8_lossy(&o.stdout));
    let o = env.in_dir("od", &["push", &store]);
    let pushed = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && !pushed.contains(" new ") && !pushed.contains(" modified "), "{pushed}");
    assert_eq!(m.n("blocks_fetched"), fetched, "status or push read a placeholder");
    let mut was = Vec::new();
    old_reader.read_to_end(&mut was).unwrap();
    assert_eq!(was, "file 1\n".repeat(2).as_bytes(), "an open handle reads the version it opened");
    drop(old_reader);
    // Opened, each serves its new version.
    assert_eq!(std::fs::read(od.join("d01/f0001.txt")).unwrap(), b"changed elsewhere\n");
    assert_eq!(std::fs::read(od.join("new/arrived.bin")).unwrap(), new_big);
    assert_same_replica(&env.path("src"), &od);
    drop(m);
}

/// A file fetched here and not changed goes back to a placeholder of the
/// new version when it changes elsewhere; a pinned one is fetched again,
/// with the new content on disk.
#[test]
fn a_hydrated_file_changed_elsewhere_becomes_a_placeholder_unless_pinned() {
    let env = Env::new();
    let store = source(&env, 20);
    let od = clone_on_demand(&env, &store, "od");
    pin_backing(&od, "d03/f0003.txt");
    pin_backing(&od, "d04");
    let m = mount(&env, &od);
    // Fetched: by an open for writing that writes nothing, and by the
    // mount's own request (what a pull does for a pinned file).
    drop(std::fs::OpenOptions::new().write(true).open(od.join("d01/f0001.txt")).unwrap());
    set_xattr(&od.join("d03/f0003.txt"), "user.ferry.state", b"hydrated");
    assert_eq!(state(&od.join("d01/f0001.txt")).as_deref(), Some("hydrated"));
    assert_eq!(state(&od.join("d03/f0003.txt")).as_deref(), Some("pinned"), "a pinned hydrated file shows as pinned");
    // d04/f0004.txt, under a folder pinned before the mount, may already
    // have been fetched by the mount's sweep (tests/on_demand_pins.rs).
    assert!(disk(&od.join("d01/f0001.txt")) > 0);

    let big_pinned = random_bytes(11, 1 << 20);
    push_change(&env, &store, |src| {
        write(&src.join("d01/f0001.txt"), b"new version of one\n");
        write(&src.join("d03/f0003.txt"), &big_pinned);
        write(&src.join("d04/arrived.txt"), b"arrived in a pinned folder\n");
    });
    let fetched = m.n("blocks_fetched");
    let r = env.in_dir_json("od", &["pull", &store]);
    assert_eq!(r["complete"].as_bool(), Some(true), "{r}");
    assert_eq!(r["bytes_from_store"].as_u64(), Some(0), "{r}");

    assert_eq!(state(&od.join("d01/f0001.txt")).as_deref(), Some("placeholder"), "hydrated and unchanged: back to a placeholder");
    assert!(disk(&od.join("d01/f0001.txt")) <= 4096);
    assert_eq!(state(&od.join("d03/f0003.txt")).as_deref(), Some("pinned"), "a pinned file is fetched again");
    assert_eq!(state(&od.join("d04/arrived.txt")).as_deref(), Some("pinned"), "a file arriving in a pinned folder is fetched");
    assert!(m.n("blocks_fetched") > fetched, "the pinned file's new blocks were fetched");
    // On disk: the backing files hold the new content (not served from blocks).
    let backing = od.join(".ferry/files");
    assert_eq!(std::fs::read(backing.join("d03/f0003.txt")).unwrap(), big_pinned);
    assert!(disk(&backing.join("d03/f0003.txt")) >= 1 << 20, "the pinned file's content is on disk");
    assert_eq!(std::fs::read(backing.join("d04/arrived.txt")).unwrap(), b"arrived in a pinned folder\n");
    assert_eq!(std::fs::read(od.join("d01/f0001.txt")).unwrap(), b"new version of one\n");
    let o = env.in_dir("od", &["status"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no local changes"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_same_replica(&env.path("src"), &od);
    drop(m);
}

/// A file written here and changed elsewhere follows a full replica's
/// rules: pull leaves it alone, sync keeps both (the later edit at the
/// path, the other as a conflict copy), pushes both, and both reach the
/// other replica; status shows the path as a conflict.
#[test]
fn a_file_modified_here_and_changed_elsewhere_keeps_both_versions() {
    let env = Env::new();
    let store = source(&env, 20);
    let od = clone_on_demand(&env, &store, "od");
    let m = mount(&env, &od);
    std::fs::OpenOptions::new().append(true).open(od.join("d01/f0001.txt")).unwrap().write_all(b"edited on od\n").unwrap();
    let mine = std::fs::read(od.join("d01/f0001.txt")).unwrap();
    assert_eq!(state(&od.join("d01/f0001.txt")).as_deref(), Some("modified"));
    push_change(&env, &store, |src| write(&src.join("d01/f0001.txt"), b"edited on src\n"));

    let o = env.in_dir("od", &["pull", &store]);
    assert_eq!(o.status.code(), Some(3), "a pull with a conflict: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(od.join("d01/f0001.txt")).unwrap(), mine, "the local edit stays");

    let r = env.sync_json("od", &[&store]);
    let copies = r["conflicts"].as_array().unwrap();
    assert_eq!(copies.len(), 1, "{r}");
    let copy = copies[0]["copy"].as_str().unwrap().to_string();
    // As on a full replica: the winner (the later edit; ties broken the
    // same way everywhere) at the path, the other beside it; both
    // readable through the mount.
    let theirs = b"edited on src\n".to_vec();
    // Written from the store, the copy is a placeholder (nothing downloaded);
    // the path holds the local edit or a placeholder of the store's.
    assert_eq!(state(&od.join(&copy)).as_deref(), Some("placeholder"), "{copy}");
    let path_state = state(&od.join("d01/f0001.txt"));
    assert!(matches!(path_state.as_deref(), Some("modified" | "placeholder")), "{path_state:?}");
    let at_path = std::fs::read(od.join("d01/f0001.txt")).unwrap();
    let at_copy = std::fs::read(od.join(&copy)).unwrap();
    let mut both = vec![at_path.clone(), at_copy.clone()];
    both.sort();
    let mut want = vec![mine.clone(), theirs.clone()];
    want.sort();
    assert_eq!(both, want, "both versions are kept");
    assert_eq!(path_state.as_deref() == Some("modified"), at_path == mine, "the local edit stays as it is where it stays");
    let st = env.in_dir_json("od", &["status"]);
    let paths = st["on_demand"]["paths"].as_array().unwrap();
    assert!(paths.iter().any(|p| p["path"] == "d01/f0001.txt" && p["state"] == "conflict"), "{st}");
    assert_eq!(st["on_demand"]["counts"]["conflict"].as_u64(), Some(1), "{st}");

    // Both versions reach the full replica.
    let r = env.sync_json("src", &[&store]);
    assert!(r["conflicts"].as_array().is_none_or(|c| c.is_empty()), "{r}");
    let src = env.path("src");
    assert_eq!(std::fs::read(src.join("d01/f0001.txt")).unwrap(), at_path);
    assert_eq!(std::fs::read(src.join(&copy)).unwrap(), at_copy);
    assert_same_replica(&src, &od);
    drop(m);
}

/// `ferry status` counts an on-demand replica's files per state and
/// lists those that are not plain placeholders (`--states`, `--json`);
/// `user.ferry.state` through the mount shows the same word.
#[test]
fn status_shows_each_files_state() {
    let env = Env::new();
    let store = source(&env, 20);
    let od = clone_on_demand(&env, &store, "od");
    pin_backing(&od, "d03/f0003.txt");
    let m = mount(&env, &od);
    // partial: one 4 KiB read of the 3 MiB file puts a block in the cache.
    let mut f = std::fs::File::open(od.join("big.bin")).unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.read_exact(&mut [0u8; 4096]).unwrap();
    drop(f);
    drop(std::fs::OpenOptions::new().write(true).open(od.join("d01/f0001.txt")).unwrap()); // hydrated
    set_xattr(&od.join("d03/f0003.txt"), "user.ferry.state", b"hydrated"); // pinned
    std::fs::OpenOptions::new().append(true).open(od.join("d02/f0002.txt")).unwrap().write_all(b"more\n").unwrap(); // modified
    write(&od.join("made-here.txt"), b"local\n"); // local
    let want = [
        ("big.bin", "partial"),
        ("d01/f0001.txt", "hydrated"),
        ("d02/f0002.txt", "modified"),
        ("d03/f0003.txt", "pinned"),
        ("made-here.txt", "local"),
    ];
    for (p, s) in &want[..4] {
        assert_eq!(state(&od.join(p)).as_deref(), Some(*s), "{p} through the mount");
    }
    assert_eq!(state(&od.join("made-here.txt")), None);

    let st = env.in_dir_json("od", &["status"]);
    let got: Vec<(String, String)> = st["on_demand"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap().to_string(), p["state"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, want.iter().map(|(p, s)| (p.to_string(), s.to_string())).collect::<Vec<_>>(), "{st}");
    let counts = &st["on_demand"]["counts"];
    // 20 small files, big.bin and tool.sh, plus one made here.
    assert_eq!(counts["placeholder"].as_u64(), Some(22 - 4), "{st}");
    for s in ["partial", "hydrated", "pinned", "modified", "local"] {
        assert_eq!(counts[s].as_u64(), Some(1), "{s}: {st}");
    }
    let o = env.in_dir("od", &["status", "--states"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("on-demand files: 1 hydrated, 1 local, 1 modified, 1 partial, 1 pinned, 18 placeholder"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("pinned") && l.ends_with("d03/f0003.txt")), "{text}");
    assert!(!text.contains("d05/f0005.txt"), "plain placeholders are counted, not listed: {text}");
    let o = env.in_dir("od", &["status"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("d03/f0003.txt"), "the list needs --states");
    drop(m);
}

/// The compare-and-swap of the workdir writer holds for placeholders: a
/// file edited through the mount after the pull's scan, just before its
/// placeholder would replace it, is left as it is (the pull reports it
/// skipped and exits 3); the next sync keeps both versions.
///
/// The edit is made while the pull waits for the mount to fetch a pinned
/// file it wrote just before (plan order: `d00/` before `d05/`). That
/// fetch is held for as long as the test needs: the packs holding the
/// pinned file's data are named pipes until the edit is done, so opening
/// one blocks. The mount keeps answering meanwhile (the fetch is on a
/// thread of its own), so the edit completes while the pull is held.
#[test]
fn an_edit_made_while_a_pull_runs_is_never_replaced_by_a_placeholder() {
    use std::os::unix::fs::FileExt;
    const EDIT: &[u8] = b"edited while the pull ran, longer than the line it replaces\n";
    let env = Env::new();
    let store = source(&env, 20);
    let od = clone_on_demand(&env, &store, "od");
    pin_backing(&od, "d00");
    let m = mount(&env, &od);
    let target = od.join("d05/f0005.txt");
    let h = std::fs::OpenOptions::new().write(true).open(&target).unwrap();
    assert_eq!(state(&target).as_deref(), Some("hydrated"));
    let big = random_bytes(12, 32 << 20);
    let packs_before = files_under(&Path::new(&store).join("packs"));
    push_change(&env, &store, |src| {
        write(&src.join("d00/big.bin"), &big);
        write(&src.join("d05/f0005.txt"), b"changed elsewhere\n");
    });
    // The new data packs (trees go to small packs of their own, which the
    // pull reads) become pipes; the real packs wait beside them.
    let held = env.path("held");
    std::fs::create_dir_all(&held).unwrap();
    let mut swapped = Vec::new();
    for (k, p) in files_under(&Path::new(&store).join("packs")).into_iter().enumerate() {
        if packs_before.contains(&p) || std::fs::metadata(&p).unwrap().len() < (1 << 20) {
            continue;
        }
        let (real, fifo) = (held.join(format!("pack{k}")), held.join(format!("fifo{k}")));
        std::fs::rename(&p, &real).unwrap();
        assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        std::fs::hard_link(&fifo, &p).unwrap();
        swapped.push((p, real, fifo));
    }
    assert!(!swapped.is_empty(), "the 32 MiB file's packs");

    let pull = env.cmd().args(["-C", od.to_str().unwrap(), "pull", &store, "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let t = std::time::Instant::now();
    while !m.log().contains("hydrating d00/big.bin") {
        assert!(t.elapsed() < std::time::Duration::from_secs(60), "the pinned file was never fetched: {}", m.log());
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // The fetch cannot finish, so the pull has not reached d05/ yet.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(pull_is_running(&pull), "the pull went on while its pinned fetch was held");
    // One WRITE request, on a handle opened before the pull (no name lookup to race).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = h.write_all_at(EDIT, 0);
        drop(h);
        let _ = tx.send(r);
    });
    let edited = rx.recv_timeout(std::time::Duration::from_secs(30));
    // Let the fetch go: the real packs back, then the pipes' readers woken
    // (their reads fail; the fetch is tried again or left to `pin` below).
    for (p, real, fifo) in &swapped {
        std::fs::rename(real, p).unwrap();
        let _ = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo);
    }
    edited.expect("the mount did not answer an edit while a pull's fetch was held").unwrap();
    let o = pull.wait_with_output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(3), "a file left alone: exit 3: {r}");
    let skipped = r["skipped"].as_array().unwrap();
    assert!(skipped.iter().any(|s| s["path"] == "d05/f0005.txt"), "{r}");
    assert_eq!(std::fs::read(&target).unwrap(), EDIT, "the edit was replaced");
    assert_eq!(state(&target).as_deref(), Some("modified"));
    // The pinned file is there once its packs are (`pin` fetches what the
    // held fetch could not).
    let o = env.in_dir("od", &["pin", "d00"]);
    assert!(o.status.success(), "pin: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(state(&od.join("d00/big.bin")).as_deref(), Some("pinned"));
    assert!(std::fs::read(od.join(".ferry/files/d00/big.bin")).unwrap() == big, "the pinned file's content is on disk");

    // The next sync keeps both versions, and says so (its report once
    // left out the copies made while it finished the partial pull).
    let r = env.sync_json("od", &[&store]);
    let copies = r["conflicts"].as_array().unwrap();
    assert_eq!(copies.len(), 1, "{r}");
    let copy = copies[0]["copy"].as_str().unwrap();
    let mut both = vec![std::fs::read(&target).unwrap(), std::fs::read(od.join(copy)).unwrap()];
    both.sort();
    let mut want = vec![b"changed elsewhere\n".to_vec(), EDIT.to_vec()];
    want.sort();
    assert_eq!(both, want, "both versions are kept");

    drop(m);
}

/// True while `child` has not exited (it is not reaped).
fn pull_is_running(child: &std::process::Child) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    // The state follows the command's closing parenthesis; Z is a zombie (exited).
    stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'))
}

/// A file opened for writing is fetched on a thread of its own: while it
/// comes in, the mount answers other requests, and `ferry status` shows
/// the fetch and its progress (`user.ferry.fetching` on the root); the
/// mount's log says when it starts and ends.
#[test]
fn a_fetch_shows_its_progress_in_status_while_the_mount_keeps_answering() {
    let env = Env::new();
    let store = env.replica_and_store("src", "store");
    let src = env.path("src");
    let big = random_bytes(21, 192 << 20);
    write(&src.join("big.bin"), &big);
    write(&src.join("small.txt"), b"small\n");
    env.in_dir_json("src", &["push", &store]);
    drop(big);
    let od = clone_on_demand(&env, &store, "od");
    let m = mount(&env, &od);

    let writer = {
        let p = od.join("big.bin");
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            (t.elapsed(), f)
        })
    };
    let mut seen = None;
    let mut answered_meanwhile = 0;
    while !writer.is_finished() {
        let r = env.in_dir_json("od", &["status"]);
        // Another placeholder reads while the fetch runs.
        assert_eq!(std::fs::read(od.join("small.txt")).unwrap(), b"small\n");
        if writer.is_finished() {
            break;
        }
        answered_meanwhile += 1;
        if let Some(f) = r["on_demand"]["fetching"].as_array().and_then(|a| a.first())
            && seen.is_none()
        {
            seen = Some(f.clone());
        }
    }
    let (took, _f) = writer.join().unwrap();
    let f = seen.unwrap_or_else(|| panic!("status never showed the fetch ({answered_meanwhile} answers in {took:?}): {}", m.log()));
    assert_eq!(f["path"], "big.bin", "{f}");
    assert_eq!(f["total"].as_u64(), Some(192 << 20), "{f}");
    assert!(f["done"].as_u64().unwrap() <= 192 << 20, "{f}");
    assert!(answered_meanwhile > 0);
    let log = m.log();
    assert!(log.contains("hydrating big.bin") && log.contains("hydrated big.bin"), "{log}");
    assert_eq!(state(&od.join("big.bin")).as_deref(), Some("hydrated"));
    assert_eq!(std::fs::read(od.join("big.bin")).unwrap(), random_bytes(21, 192 << 20));
    let r = env.in_dir_json("od", &["status"]);
    assert_eq!(r["on_demand"]["fetching"], serde_json::json!([]), "{r}");
    drop(m);
}
