//! kill -9 at varying points of backup, push, pull, sync and gc, many
//! times over: the store always passes `check`, a working folder never
//! holds a half-written file (every file there is a version some replica
//! wrote), and the next run completes.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{Env, random_bytes};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Rewrites some files of a replica; remembers every version written.
fn mutate(root: &Path, rng: &mut Rng, versions: &mut HashSet<String>) {
    for _ in 0..4 {
        let i = rng.next() % 12;
        let data = random_bytes(rng.next(), 200_000 + (rng.next() % 1_500_000) as usize);
        versions.insert(blake3::hash(&data).to_hex().to_string());
        fs::write(root.join(format!("f{i:02}")), data).unwrap();
    }
}

/// Every regular file a replica shows is a whole version (temp files are hidden and ignored).
fn assert_no_torn_files(root: &Path, versions: &HashSet<String>) {
    for p in common::files_under(root) {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel.starts_with(".ferry/") || p.file_name().unwrap().to_string_lossy().starts_with(".ferry-tmp") || rel.contains(".conflict-") {
            continue;
        }
        let h = common::hash_file(&p);
        assert!(versions.contains(&h), "{rel} holds bytes no replica ever wrote (half-written?)");
    }
}

fn kill_after(env: &Env, args: &[&str], ms: u64) {
    let mut c = env.cmd().args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let _ = c.kill();
    c.wait().unwrap();
}

#[test]
fn repeated_kill_9_across_commands_never_breaks_the_store_or_a_working_folder() {
    let env = Env::new();
    let st = env.replica_and_store("a", "store");
    let mut rng = Rng(0x5eed_f00d);
    let mut versions = HashSet::new();
    mutate(&env.path("a"), &mut rng, &mut versions);
    for i in 0..12 {
        let p = env.path(&format!("a/f{i:02}"));
        if !p.exists() {
            let d = random_bytes(1000 + i, 100_000);
            versions.insert(blake3::hash(&d).to_hex().to_string());
            fs::write(p, d).unwrap();
        }
    }
    env.in_dir_json("a", &["push", &st]);
    env.clone_to(&st, "b");
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let (a, b) = (env.path("a"), env.path("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for round in 0..10 {
        mutate(&env.path("a"), &mut rng, &mut versions);
        mutate(&src, &mut rng, &mut versions);
        let ms = 2 + rng.next() % 120;
        match round % 5 {
            0 => kill_after(&env, &["backup", src.to_str().unwrap(), "--to", &st], ms),
            1 => kill_after(&env, &["-C", a, "push", &st, "--force"], ms),
            2 => {
                env.in_dir("a", &["push", &st, "--force"]);
                kill_after(&env, &["-C", b, "pull", &st], ms);
            }
            3 => {
                mutate(&env.path("b"), &mut rng, &mut versions);
                kill_after(&env, &["-C", b, "sync", &st], ms);
            }
            _ => {
                env.run(&["forget", &st, "--keep-last", "3"]);
                kill_after(&env, &["gc", &st], ms);
            }
        }
        let check = env.run(&["check", &st]);
        assert!(check.status.success(), "round {round} (kill after {ms} ms): {}", String::from_utf8_lossy(&check.stderr));
        assert_no_torn_files(&env.path("b"), &versions);
        assert_no_torn_files(&env.path("a"), &versions);
    }
    // Every command still completes afterwards, and the replicas meet.
    env.ok(&["backup", src.to_str().unwrap(), "--to", &st]);
    env.ok(&["gc", &st]);
    for who in ["a", "b", "a", "b"] {
        let o = env.in_dir(who, &["sync", &st]);
        assert!(matches!(o.status.code(), Some(0 | 3)), "sync {who}: {}", String::from_utf8_lossy(&o.stderr));
    }
    common::assert_same_replica(&env.path("a"), &env.path("b"));
    let check = env.run(&["check", &st, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
