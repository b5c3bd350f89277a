//! `kill -9` of an on-demand replica's mount (`ferry mount DIR`) while
//! files are written through it, then `ferry mount DIR` again: the real
//! binary and a real FUSE mount.
//!
//! What a killed mount may leave (ARCHITECTURE.md, "On-demand replicas"):
//! a file saved the way editors save (temp file, fsync, rename) holds the
//! old or the new content; a placeholder being hydrated by a first write
//! stays a placeholder of the old version unless its content was durable
//! first; a write the mount took is in the backing file, like a write to
//! a local disk; no other file changes. The new mount clears the dead one
//! itself, and commands in between say what happened.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::fuse::Mounted;
use common::write_file as write;
use common::*;

const KDF: [&str; 4] = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"];

/// The content of the editor's save number `k`: 200 KiB, so one save is
/// many FUSE writes.
fn save_content(k: usize) -> Vec<u8> {
    let mut v = format!("save {k:06}\n").into_bytes().repeat(200 * 1024 / 12);
    v.truncate(200 * 1024);
    v
}

/// What `f{i}.bin` holds in the source.
fn original(i: usize) -> Vec<u8> {
    random_bytes(100 + i as u64, 700_000 + i * 1000)
}

#[test]
fn a_killed_mount_leaves_old_or_new_content_and_mounts_again() {
    let env = Env::new();
    let store = env.replica_and_store("src", "store");
    let src = env.path("src");
    for i in 0..12 {
        write(&src.join(format!("f{i}.bin")), &original(i));
    }
    write(&src.join("doc.txt"), &save_content(0));
    env.in_dir_json("src", &["push", &store]);
    let dir = env.path("od");
    env.ok(&[&["clone", &store, dir.to_str().unwrap(), "--on-demand"][..], &KDF].concat());
    let log = dir.with_extension("log");

    // Each round: an editor saves doc.txt again and again, another writer
    // puts a 4 KiB stamp into one placeholder after another (each a first
    // write: the mount hydrates it), and the mount is killed at a
    // different moment.
    let mut saves_seen = vec![0usize];
    for (round, delay_ms) in [30u64, 90, 250].into_iter().enumerate() {
        let mut m = Mounted::start_replica(env.cmd(), dir.clone(), log.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let saves = Arc::new(AtomicUsize::new(0));
        let editor = {
            let (dir, stop, saves) = (dir.clone(), stop.clone(), saves.clone());
            let first = *saves_seen.last().unwrap() + 1;
            std::thread::spawn(move || {
                for k in first.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let tmp = dir.join(".doc.txt.swp");
                    let r = (|| -> std::io::Result<()> {
                        let mut f = std::fs::File::create(&tmp)?;
                        f.write_all(&save_content(k))?;
                        f.sync_all()?;
                        std::fs::rename(&tmp, dir.join("doc.txt"))
                    })();
                    if r.is_err() {
                        break;
                    }
                    saves.store(k, Ordering::Relaxed);
                }
            })
        };
        let stamper = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || -> Vec<usize> {
                let mut stamped = Vec::new();
                for i in (round * 4)..(round * 4 + 4) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = (|| -> std::io::Result<()> {
                        let mut f = std::fs::OpenOptions::new().write(true).open(dir.join(format!("f{i}.bin")))?;
                        f.seek(SeekFrom::Start(4096))?;
                        f.write_all(&[0xAB; 4096])
                    })();
                    if r.is_err() {
                        break;
                    }
                    stamped.push(i);
                }
                stamped
            })
        };
        std::thread::sleep(Duration::from_millis(delay_ms));
        m.kill9();
        stop.store(true, Ordering::Relaxed);
        editor.join().unwrap();
        let stamped = stamper.join().unwrap();
        saves_seen.push(saves.load(Ordering::Relaxed));
        eprintln!("round {round}: killed after {delay_ms} ms: saves up to {}, stamped {stamped:?}", saves_seen.last().unwrap());

        // Dead: commands say so and how to recover, and change nothing.
        let o = env.run(&["-C", dir.to_str().unwrap(), "status"]);
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("process is gone") && err.contains(&format!("ferry mount {}", dir.display())), "{err}");

        // Mounting again clears the dead mount.
        let m2 = Mounted::start_replica(env.cmd(), dir.clone(), log.clone());
        assert!(
            std::fs::read_to_string(&log).unwrap().contains("clearing the mount"),
            "log: {:?} {:?}",
            m2.log(),
            std::fs::read_to_string("/proc/mounts").unwrap().lines().filter(|l| l.contains("fuse")).collect::<Vec<_>>()
        );
        // Once in a fresh-clone CI run doc.txt was not found right after
        // the new mount came up (not reproduced in 14 runs here): wait a
        // little, then say what the view and the backing tree hold.
        let t = std::time::Instant::now();
        while !dir.join("doc.txt").exists() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let doc = std::fs::read(dir.join("doc.txt")).unwrap_or_else(|e| {
            let names = |d: &Path| -> Vec<String> {
                std::fs::read_dir(d)
                    .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                    .unwrap_or_default()
            };
            panic!(
                "round {round}: doc.txt: {e}; the view holds {:?}, the backing tree {:?}; mounts {:?}; log {}",
                names(&dir),
                names(&dir.join(".ferry/files")),
                std::fs::read_to_string("/proc/mounts").unwrap().lines().filter(|l| l.contains("fuse")).collect::<Vec<_>>(),
                m2.log()
            )
        });
        let last = *saves_seen.last().unwrap();
        let prev = saves_seen[saves_seen.len() - 2];
        assert!(
            (prev..=last + 1).any(|k| doc == save_content(k)),
            "round {round}: doc.txt holds neither a whole save from {prev} to {} nor the old content ({} bytes, starts {:?})",
            last + 1,
            doc.len(),
            String::from_utf8_lossy(&doc[..doc.len().min(12)])
        );
        for i in 0..12 {
            let got = std::fs::read(dir.join(format!("f{i}.bin"))).unwrap();
            let mut new = original(i);
            new[4096..8192].fill(0xAB);
            if stamped.contains(&i) {
                assert_eq!(got, new, "round {round}: f{i}.bin was written before the kill");
            } else {
                assert!(got == original(i) || got == new, "round {round}: f{i}.bin holds neither its old nor its new content");
            }
        }
        drop(m2);
    }

    // What survived pushes, and a full clone holds exactly the mount's view.
    let m = Mounted::start_replica(env.cmd(), dir.clone(), log.clone());
    let _ = std::fs::remove_file(dir.join(".doc.txt.swp"));
    env.in_dir_json("od", &["push", &store]);
    let full = env.path("full");
    env.ok(&[&["clone", &store, full.to_str().unwrap()][..], &KDF].concat());
    let names: Vec<PathBuf> = (0..12).map(|i| PathBuf::from(format!("f{i}.bin"))).chain([PathBuf::from("doc.txt")]).collect();
    for n in &names {
        assert_eq!(std::fs::read(full.join(n)).unwrap(), std::fs::read(dir.join(n)).unwrap(), "{}", n.display());
    }
    drop(m);
}
