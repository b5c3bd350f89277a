//! `s3://bucket[/prefix]` stores against a real S3 server: Garage, one
//! node on 127.0.0.1, started in a temp folder for each test and killed on
//! drop (issue 12). Garage must be installed (`ci/install-garage.sh`); a
//! missing Garage fails the tests, it never skips them.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Env, assert_same_replica, assert_same_tree, random_bytes};
use ferry_store::backend::{Backend, S3, S3Config};

/// The Garage binary: `GARAGE_BIN`, `garage` on PATH, or `~/.cargo/bin/garage`.
fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GARAGE_BIN") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("garage");
            if p.is_file() {
                return p;
            }
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let p = home.join(".cargo/bin/garage");
    assert!(p.is_file(), "Garage is not installed (no `garage` on PATH, in ~/.cargo/bin or in GARAGE_BIN): run ci/install-garage.sh");
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One Garage node on 127.0.0.1 with a bucket and a read-write key.
struct Garage {
    dir: tempfile::TempDir,
    conf: PathBuf,
    child: Option<Child>,
    port: u16,
    key_id: String,
    secret: String,
    bucket: String,
}

impl Garage {
    fn start() -> Garage {
        let bin = garage_bin();
        let dir = tempfile::tempdir().unwrap();
        let (port, rpc) = (free_port(), free_port());
        let conf = dir.path().join("garage.toml");
        let secret = blake3::hash(dir.path().to_string_lossy().as_bytes()).to_hex().to_string();
        std::fs::write(
            &conf,
            format!(
                "metadata_dir = \"{0}/meta\"\ndata_dir = \"{0}/data\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{port}\"\nroot_domain = \".s3.garage.localhost\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut g = Garage { dir, conf, child: None, port, key_id: String::new(), secret: String::new(), bucket: "ferry".into() };
        assert!(bin.is_file(), "{} is missing: run ci/install-garage.sh", bin.display());
        g.run_server();
        let id = g.cli(&["node", "id", "-q"]);
        let id = id.trim().split('@').next().unwrap().to_string();
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        g.cli(&["layout", "apply", "--version", "1"]);
        let key = g.cli(&["key", "create", "ferry-test"]);
        g.key_id = field(&key, "Key ID");
        g.secret = field(&key, "Secret key");
        g.cli(&["bucket", "create", &g.bucket.clone()]);
        g.cli(&["bucket", "allow", "--read", "--write", "--owner", &g.bucket.clone(), "--key", "ferry-test"]);
        // The S3 API answers once the layout is applied.
        let b = g.backend("probe");
        let t0 = Instant::now();
        while let Err(e) = b.create() {
            assert!(t0.elapsed() < Duration::from_secs(30), "Garage's S3 API did not come up: {e}");
            std::thread::sleep(Duration::from_millis(200));
        }
        g
    }

    /// Starts the server (again) and waits until its CLI answers.
    fn run_server(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("garage.log")).unwrap();
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.conf)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            let o = self.cli_output(&["status"]);
            if o.status.success() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "Garage did not start: {}\nlog: {}",
                String::from_utf8_lossy(&o.stderr),
                std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the server (as a crash or a power cut would).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again and waits for its S3 API.
    fn restart(&mut self) {
        self.run_server();
        let b = self.backend("probe");
        let t0 = Instant::now();
        while let Err(e) = b.create() {
            assert!(t0.elapsed() < Duration::from_secs(30), "Garage's S3 API did not come back: {e}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn cli_output(&self, args: &[&str]) -> Output {
        Command::new(garage_bin()).arg("-c").arg(&self.conf).args(args).env("RUST_LOG", "warn").output().unwrap()
    }

    fn cli(&self, args: &[&str]) -> String {
        let o = self.cli_output(args);
        assert!(o.status.success(), "garage {args:?}: {}{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn config(&self, prefix: &str) -> S3Config {
        S3Config {
            bucket: self.bucket.clone(),
            prefix: prefix.into(),
            region: "garage".into(),
            endpoint: Some(self.endpoint()),
            access_key_id: self.key_id.clone(),
            secret_access_key: self.secret.clone(),
            ..Default::default()
        }
    }

    /// A backend on `s3://ferry/prefix`, in this process.
    fn backend(&self, prefix: &str) -> S3 {
        S3::new(self.config(prefix)).unwrap()
    }

    /// `s3://ferry/prefix`.
    fn loc(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Name: value` in Garage's CLI output.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(name).and_then(|r| r.trim_start().strip_prefix(':')).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {name:?} in garage output:\n{out}"))
}

/// A scratch area plus a Garage, with ferry run under the AWS variables.
struct S3Env {
    env: Env,
    garage: Garage,
}

const CHEAP: [&str; 4] = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"];

impl S3Env {
    fn new() -> S3Env {
        S3Env { env: Env::new(), garage: Garage::start() }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.env.path(p)
    }
    fn cmd(&self) -> Command {
        let mut c = self.env.cmd();
        c.env("AWS_ACCESS_KEY_ID", &self.garage.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.garage.secret)
            .env("AWS_REGION", "garage")
            .env("AWS_ENDPOINT_URL", self.garage.endpoint())
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_ENDPOINT_URL_S3");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "ferry {args:?} failed ({:?}): {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
    fn in_dir(&self, dir: &str, args: &[&str]) -> String {
        let d = self.path(dir);
        let mut a = vec!["-C", d.to_str().unwrap()];
        a.extend_from_slice(args);
        self.ok(&a)
    }
    fn store_init(&self, loc: &str, extra: &[&str]) {
        let mut a = vec!["store", "init", loc, "--pack-size-mib", "1"];
        a.extend_from_slice(&CHEAP);
        a.extend_from_slice(extra);
        self.ok(&a);
    }
}

/// A folder with a few files of `kib` KiB each (random, so nothing dedups), nested.
fn make_tree(root: &Path, seed: u64, files: usize, kib: usize) {
    for i in 0..files {
        let p = root.join(format!("d{}/f{i}.bin", i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, random_bytes(seed * 1000 + i as u64, kib * 1024)).unwrap();
    }
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("small.txt"), b"hello s3\n").unwrap();
}

fn snapshot_count(e: &S3Env, loc: &str) -> usize {
    let v = e.json(&["snapshots", loc]);
    v.as_array().or_else(|| v["snapshots"].as_array()).map(|a| a.len()).unwrap_or_else(|| panic!("snapshots --json: {v}"))
}

#[test]
fn backup_restore_check_forget_gc_over_s3() {
    let e = S3Env::new();
    let loc = e.garage.loc("backups/nightly");
    e.store_init(&loc, &[]);
    // A second init on the same prefix is refused.
    let o = e.run(&["store", "init", &loc, "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"), "{}", String::from_utf8_lossy(&o.stderr));

    let src = e.path("src");
    make_tree(&src, 1, 9, 300);
    e.ok(&["backup", src.to_str().unwrap(), "--to", &loc]);
    std::fs::write(src.join("small.txt"), b"changed\n").unwrap();
    std::fs::write(src.join("d1/new.bin"), random_bytes(77, 200_000)).unwrap();
    e.ok(&["backup", src.to_str().unwrap(), "--to", &loc]);
    assert_eq!(snapshot_count(&e, &loc), 2);

    let out = e.path("restored");
    let o = e.run(&["restore", &loc, "latest", "--target", out.to_str().unwrap()]);
    assert!(o.status.success());
    // What came over the network is reported: at least the restored bytes
    // (9 files of 300 KiB, random).
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr.lines().find(|l| l.starts_with("network: ")).unwrap_or_else(|| panic!("no network line: {stderr}"));
    assert!(line.contains(" MiB received"), "{line}");
    assert_same_tree(&src, &out);
    e.ok(&["check", &loc, "--read-data"]);

    // Everything lives under the prefix, nothing else in the bucket.
    let all = e.garage.backend("").list("").unwrap();
    assert!(!all.is_empty());
    for o in &all {
        assert!(o.path.starts_with("backups/nightly/") || o.path.starts_with("probe/"), "object outside the prefix: {}", o.path);
    }
    // Object stores write whole objects: no temp files, no locks left.
    let b = e.garage.backend("backups/nightly");
    assert!(b.list("locks/").unwrap().is_empty());
    assert!(b.list_strays("").unwrap().is_empty());

    e.ok(&["forget", &loc, "--keep-last", "1"]);
    assert_eq!(snapshot_count(&e, &loc), 1);
    let before = b.list("").unwrap().len();
    e.ok(&["gc", &loc]);
    let after = b.list("").unwrap().len();
    assert!(after < before, "gc deleted nothing ({before} objects before, {after} after)");
    e.ok(&["check", &loc, "--read-data"]);
    let out2 = e.path("restored2");
    e.ok(&["restore", &loc, "latest", "--target", out2.to_str().unwrap()]);
    assert_same_tree(&src, &out2);
}

#[test]
fn backend_lists_in_pages_and_reads_ranges() {
    let g = Garage::start();
    let b = std::sync::Arc::new(g.backend("pages").with_list_page(7));
    // More than S3's own page of 1000 as well as many small pages.
    let n = 1010;
    std::thread::scope(|s| {
        for t in 0..8 {
            let b = b.clone();
            s.spawn(move || {
                for i in (t..n).step_by(8) {
                    b.write(&format!("packs/{:02x}/obj{i:05}", i % 256), format!("object {i}").as_bytes()).unwrap();
                }
            });
        }
    });
    b.write("locks/s-1", b"lock").unwrap();
    let packs = b.list("packs/").unwrap();
    assert_eq!(packs.len(), n);
    assert!(packs.windows(2).all(|w| w[0].path < w[1].path), "listing is sorted");
    assert_eq!(b.list("").unwrap().len(), n + 1);
    assert_eq!(b.list("packs/0a/").unwrap().len(), n / 256 + usize::from(n % 256 > 10));
    // The default page (S3's 1000) continues too.
    assert_eq!(g.backend("pages").list("packs/").unwrap().len(), n);

    b.write("data/x", b"0123456789").unwrap();
    assert_eq!(b.read("data/x").unwrap(), b"0123456789");
    assert_eq!(b.read_range("data/x", 3, 4).unwrap(), b"3456");
    assert_eq!(b.read_ranges("data/x", &[(8, 2), (0, 1), (4, 3)]).unwrap(), vec![b"89".to_vec(), b"0".to_vec(), b"456".to_vec()]);
    let e = b.read_range("data/x", 8, 5).unwrap_err();
    assert!(e.is_damage(), "a range past the end is damage: {e}");
    assert!(matches!(b.read("data/missing"), Err(ferry_store::Error::NotFound(p)) if p == "data/missing"));
    assert!(b.exists("data/x").unwrap());
    assert!(!b.exists("data/missing").unwrap());
    b.delete("data/x").unwrap();
    b.delete("data/x").unwrap();
    assert!(!b.exists("data/x").unwrap());
    assert_eq!(b.concurrency(), ferry_store::backend::S3_CONCURRENCY);
}

/// Clones the store into `desktop` and checks it matches `laptop`.
fn clone_matches(e: &S3Env, loc: &str, laptop: &Path) {
    let desktop = e.path("desktop");
    let mut a = vec!["clone", loc, desktop.to_str().unwrap()];
    a.extend_from_slice(&CHEAP);
    e.ok(&a);
    assert_same_replica(laptop, &desktop);
}

/// A replica folder `laptop` and a store for it under `prefix` of the
/// test bucket (1 MiB packs, cheap KDF); returns (folder, location).
fn laptop_replica_with_store(e: &S3Env, prefix: &str) -> (PathBuf, String) {
    let loc = e.garage.loc(prefix);
    let laptop = e.path("laptop");
    let mut a = vec!["init", laptop.to_str().unwrap()];
    a.extend_from_slice(&CHEAP);
    e.ok(&a);
    e.in_dir("laptop", &["store", "init", &loc, "--like", ".", "--pack-size-mib", "1", CHEAP[0], CHEAP[1], CHEAP[2], CHEAP[3]]);
    (laptop, loc)
}

#[test]
fn replicas_push_pull_clone_and_sync_through_s3() {
    let e = S3Env::new();
    let (laptop, loc) = laptop_replica_with_store(&e, "family");
    make_tree(&laptop, 2, 6, 200);
    e.in_dir("laptop", &["push", &loc]);

    clone_matches(&e, &loc, &laptop);
    let desktop = e.path("desktop");

    // Desktop edits and pushes; laptop pulls.
    std::fs::write(desktop.join("small.txt"), b"from the desktop\n").unwrap();
    std::fs::write(desktop.join("d0/desk.bin"), random_bytes(5, 150_000)).unwrap();
    e.in_dir("desktop", &["push", &loc]);
    e.in_dir("laptop", &["pull", &loc]);
    assert_same_replica(&laptop, &desktop);

    // Both edit different files offline, then sync: they converge.
    std::fs::write(laptop.join("d1/lap.txt"), b"laptop only\n").unwrap();
    std::fs::remove_file(desktop.join("d2/f2.bin")).unwrap();
    e.in_dir("laptop", &["sync", &loc]);
    e.in_dir("desktop", &["sync", &loc]);
    e.in_dir("laptop", &["sync", &loc]);
    assert_same_replica(&laptop, &desktop);
    assert!(laptop.join("d1/lap.txt").exists() && !laptop.join("d2/f2.bin").exists());
    e.ok(&["check", &loc, "--read-data"]);
}

/// Starts `ferry args` in the background and waits until the store under
/// `prefix` holds at least `packs` pack objects (or the command ends).
fn start_and_wait_for_packs(e: &S3Env, dir: &str, args: &[&str], prefix: &str, packs: usize) -> Child {
    let d = e.path(dir);
    let mut child = e.cmd().arg("-C").arg(&d).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let b = e.garage.backend(prefix);
    let t0 = Instant::now();
    loop {
        if b.list("packs/").map(|l| l.len()).unwrap_or(0) >= packs {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("ferry {args:?} ended ({st}) before {packs} packs were written: make the data bigger");
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no packs after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn push_killed_with_sigkill_resumes_and_checks_clean() {
    let e = S3Env::new();
    let (laptop, loc) = laptop_replica_with_store(&e, "killed");
    make_tree(&laptop, 3, 40, 1024);
    let mut child = start_and_wait_for_packs(&e, "laptop", &["push", &loc], "killed", 3);
    child.kill().unwrap(); // SIGKILL
    let st = child.wait().unwrap();
    assert!(!st.success(), "push was to be killed mid-way");
    let b = e.garage.backend("killed");
    let packs_before = b.list("packs/").unwrap().len();
    // The killed process's lock is left behind; the next run on this host
    // sees its process is gone.
    e.in_dir("laptop", &["push", &loc]);
    e.ok(&["check", &loc, "--read-data"]);
    let packs_after = b.list("packs/").unwrap().len();
    assert!(packs_after >= packs_before);
    clone_matches(&e, &loc, &laptop);
}

#[test]
fn garage_stopped_mid_push_is_a_clear_error_and_the_push_resumes_after_restart() {
    let mut e = S3Env::new();
    let (laptop, loc) = laptop_replica_with_store(&e, "outage");
    make_tree(&laptop, 4, 40, 1024);
    let mut child = start_and_wait_for_packs(&e, "laptop", &["push", &loc], "outage", 3);
    e.garage.stop();
    let t0 = Instant::now();
    let st = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    eprintln!("push while Garage is down, after {:?}:\n{err}", t0.elapsed());
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach") && err.contains(&e.garage.endpoint()), "{err}");
    assert!(err.contains("hint:") && err.contains("AWS_ENDPOINT_URL"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(90), "giving up took {:?}", t0.elapsed());

    e.garage.restart();
    e.in_dir("laptop", &["push", &loc]);
    e.ok(&["check", &loc, "--read-data"]);
    clone_matches(&e, &loc, &laptop);
}

#[test]
fn wrong_credentials_missing_bucket_and_dead_endpoint_are_named() {
    let e = S3Env::new();
    let init = |cmd: &mut Command, loc: &str| {
        let o = cmd.args(["store", "init", loc]).args(CHEAP).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let loc = e.garage.loc("creds");

    let (code, err) = init(e.cmd().env("AWS_SECRET_ACCESS_KEY", "0".repeat(64)), &loc);
    assert_eq!(code, Some(1), "{err}");
    eprintln!("wrong secret:\n{err}");
    assert!(err.contains("access denied") && err.contains("s3://ferry/creds"), "wrong secret: {err}");
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "the hint names the variables: {err}");

    let (code, err) = init(e.cmd().env("AWS_ACCESS_KEY_ID", "GK0000000000000000000000ff"), &loc);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("access denied"), "unknown key id: {err}");

    let (code, err) = init(&mut e.cmd(), "s3://no-such-bucket/x");
    assert_eq!(code, Some(10), "{err}");
    assert!(err.contains("bucket no-such-bucket does not exist at http://127.0.0.1:"), "{err}");
    assert!(err.contains("create the bucket first"), "{err}");
    let o = e.run(&["snapshots", "s3://no-such-bucket"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(10), "{err}");
    assert!(err.contains("bucket no-such-bucket does not exist"), "opening, not only creating, names the bucket: {err}");

    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, err) = init(e.cmd().env("AWS_ENDPOINT_URL", &dead), &loc);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("cannot reach {dead}")), "{err}");

    // Opening a store where there is none, and a prefix holding other objects.
    let o = e.run(&["snapshots", &e.garage.loc("nothing-here")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(10), "{err}");
    assert!(err.contains("no ferry store at s3://ferry/nothing-here") && err.contains("check the prefix"), "{err}");
    e.garage.backend("busy").write("someone-elses-file", b"x").unwrap();
    let (code, err) = init(&mut e.cmd(), &e.garage.loc("busy"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not empty"), "{err}");
    // Nothing was written by any refused init.
    assert!(e.garage.backend("creds").list("").unwrap().is_empty());
    assert_eq!(e.garage.backend("busy").list("").unwrap().len(), 1);
}

/// `ferry mount` of an s3:// store: the same tree, bytes read on demand.
#[test]
fn mount_an_s3_store() {
    let e = S3Env::new();
    let loc = e.garage.loc("mounted");
    e.store_init(&loc, &[]);
    let src = e.path("src");
    make_tree(&src, 4, 6, 300);
    e.ok(&["backup", src.to_str().unwrap(), "--to", &loc]);
    let mut m = common::fuse::Mounted::start(e.cmd(), &loc, e.path("mnt"), e.path("mnt.log"), &[]);
    assert_eq!(m.n("blocks_fetched"), 0, "nothing read before a file is opened");
    assert_same_tree(&src, &m.mnt.join("latest"));
    assert!(m.n("store_read_bytes") >= 6 * 300 * 1024, "{}", m.stats());
    m.stop_with("-TERM");
}

/// Restore over S3 asks for a few large ranged GETs, several at a time,
/// not one GET per block (issue 12: 4212 GETs for 4205 blocks), and every
/// block is still verified: a byte flipped in a pack object fails the
/// file holding it, with an error naming the block's pack.
#[test]
fn a_restore_over_s3_reads_blocks_in_few_requests_and_still_verifies_them() {
    let e = S3Env::new();
    let prefix = "batched";
    let loc = e.garage.loc(prefix);
    e.store_init(&loc, &[]);
    let src = e.path("src");
    for i in 0..300 {
        let p = src.join(format!("d{}/f{i}.bin", i % 4));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, random_bytes(500 + i, 9_000)).unwrap();
    }
    e.ok(&["backup", src.to_str().unwrap(), "--to", &loc]);

    let target = e.path("restored");
    let (r, reads, files) = common::restore_latest_counted(std::sync::Arc::new(e.garage.backend(prefix)), &target);
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!((r.files_written, files), (300, 300));
    assert!(reads <= 16, "{reads} ranged GETs of packs to restore 300 one-block files");
    assert_same_tree(&src, &target);

    // Flip one byte in the middle of the largest pack object.
    let b = e.garage.backend(prefix);
    let pack = b.list("packs/").unwrap().into_iter().max_by_key(|o| o.size).unwrap();
    let mut bytes = b.read(&pack.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    b.write(&pack.path, &bytes).unwrap();
    let o = e.run(&["restore", &loc, "latest", "--target", e.path("again").to_str().unwrap(), "--json"]);
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(out.contains(&pack.path), "the damaged pack {} is not named: {out}", pack.path);
}
