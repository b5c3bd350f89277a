//! ssh:// stores against a real sshd on 127.0.0.1 (its own host key,
//! user keys and authorized_keys in a temp folder), with the ferry binary
//! under test as the remote `ferry serve`. sshd comes from Debian's
//! openssh-server: `ci/install-test-deps.sh` installs it; the tests fail
//! (never skip) when it is missing.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SSHD: &str = "/usr/sbin/sshd";

/// An sshd on 127.0.0.1 with four user keys:
/// `plain` (any command), `append` (forced `ferry serve --stdio --append-only`),
/// `restrict` (forced `ferry serve --stdio --restrict-to-path <dir>/allowed`)
/// and `wrong` (not authorized).
struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn keygen(path: &Path) {
    let o = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "ferry-test", "-f"]).arg(path).output().unwrap();
    assert!(o.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&o.stderr));
}

impl Sshd {
    fn start(env: &Env) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run ci/install-test-deps.sh (installs Debian's openssh-server) before these tests"
        );
        // sshd insists on its privilege separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = env.path("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(env.path("allowed")).unwrap();
        for k in ["host_key", "plain", "append", "restrict", "wrong"] {
            keygen(&dir.join(k));
        }
        let bin = ferry_bin();
        let bin = bin.to_str().unwrap();
        let pubkey = |k: &str| std::fs::read_to_string(dir.join(format!("{k}.pub"))).unwrap().trim().to_string();
        let auth = format!(
            "{}\ncommand=\"{bin} serve --stdio --append-only\",restrict {}\ncommand=\"{bin} serve --stdio --restrict-to-path {}\",restrict {}\n",
            pubkey("plain"),
            pubkey("append"),
            env.path("allowed").display(),
            pubkey("restrict"),
        );
        std::fs::write(dir.join("authorized_keys"), auth).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nUsePAM no\nLogLevel ERROR\nMaxSessions 100\nMaxStartups 100\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let child = Self::spawn(&dir, port);
        Sshd { child, port, dir }
    }

    /// Starts sshd with the config in `dir` and waits until it listens.
    fn spawn(dir: &Path, port: u16) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "sshd did not start: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// The host goes away: every session's `ferry serve` is killed, then
    /// the listener, so new connections are refused.
    fn go_away(&mut self) {
        for pid in self.descendants_running("serve") {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The host comes back on the same port.
    fn come_back(&mut self) {
        self.child = Self::spawn(&self.dir, self.port);
    }

    /// `ssh://127.0.0.1:PORT/<abs path>`.
    fn loc(&self, path: &Path) -> String {
        format!("ssh://127.0.0.1:{}{}", self.port, path.display())
    }

    /// ferry with the ssh command using `key`.
    fn cmd(&self, env: &Env, key: &str) -> Command {
        let mut c = env.cmd();
        c.env("FERRY_SSH_COMMAND", self.ssh_command(key)).env("FERRY_REMOTE_PATH", ferry_bin());
        c
    }

    /// The ssh command line using `key`.
    fn ssh_command(&self, key: &str) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            self.dir.join(key).display()
        )
    }

    /// A connection to the store at `path` from this process (plain key).
    fn backend(&self, path: &Path) -> ferry_store::backend::SshBackend {
        let t = ferry_store::backend::SshTarget {
            user: None,
            host: "127.0.0.1".into(),
            port: Some(self.port),
            path: path.to_str().unwrap().into(),
        };
        ferry_store::backend::SshBackend::connect_with(&self.loc(path), &t, &self.ssh_command("plain"), ferry_bin().to_str().unwrap(), 8)
            .unwrap()
    }

    fn run(&self, env: &Env, key: &str, args: &[&str]) -> Output {
        self.cmd(env, key).args(args).output().unwrap()
    }

    fn ok(&self, env: &Env, key: &str, args: &[&str]) -> String {
        let o = self.run(env, key, args);
        assert!(
            o.status.success(),
            "ferry {args:?} failed ({:?}): {}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, env: &Env, key: &str, args: &[&str]) -> String {
        let o = self.run(env, key, args);
        assert!(!o.status.success(), "ferry {args:?} succeeded but should fail: {}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Processes descended from this sshd whose command line holds `needle`.
    fn descendants_running(&self, needle: &str) -> Vec<u32> {
        let mut parent = std::collections::HashMap::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
            let ppid: u32 = after.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            parent.insert(pid, ppid);
        }
        let root = self.child.id();
        let mut out = Vec::new();
        for (&pid, _) in parent.iter() {
            let mut p = pid;
            let mut below = false;
            for _ in 0..64 {
                match parent.get(&p) {
                    Some(&pp) if pp == root => {
                        below = true;
                        break;
                    }
                    Some(&pp) if pp > 1 => p = pp,
                    _ => break,
                }
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if below && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
                out.push(pid);
            }
        }
        out
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CHEAP: [&str; 6] = ["--kdf-memory-kib", "64", "--kdf-iterations", "1", "--pack-size-mib", "1"];

fn write_files(root: &Path, seed: u64, n: usize, size: usize) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..n {
        let p = if i % 2 == 0 { root.join(format!("f{i}.bin")) } else { root.join(format!("sub/g{i}.bin")) };
        std::fs::write(p, random_bytes(seed + i as u64, size)).unwrap();
    }
}

/// Object files of a store folder (locks left out: they come and go).
fn store_files(store: &Path) -> Vec<PathBuf> {
    files_under(store).into_iter().filter(|p| !p.starts_with(store.join("locks"))).collect()
}

/// Creates a store at `store` on the server (plain key); returns its location.
fn init_store(env: &Env, sshd: &Sshd, store: &Path) -> String {
    let loc = sshd.loc(store);
    let mut init = vec!["store", "init", &loc];
    init.extend_from_slice(&CHEAP);
    sshd.ok(env, "plain", &init);
    loc
}

#[test]
fn backup_restore_check_forget_gc_over_ssh() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let store = env.path("store");
    let loc = init_store(&env, &sshd, &store);
    assert!(store.join("config").exists(), "the store is created on the server side");

    let data = env.path("data");
    write_files(&data, 1, 6, 300_000);
    std::fs::write(data.join("small.txt"), "hello over ssh\n").unwrap();
    sshd.ok(&env, "plain", &["backup", data.to_str().unwrap(), "--to", &loc]);
    std::fs::write(data.join("small.txt"), "changed\n").unwrap();
    std::fs::remove_file(data.join("f0.bin")).unwrap();
    sshd.ok(&env, "plain", &["backup", data.to_str().unwrap(), "--to", &loc]);

    let snaps: serde_json::Value = serde_json::from_str(&sshd.ok(&env, "plain", &["snapshots", &loc, "--json"])).unwrap();
    let n = snaps.as_array().map(|a| a.len()).or_else(|| snaps["snapshots"].as_array().map(|a| a.len())).unwrap();
    assert_eq!(n, 2, "{snaps}");

    let target = env.path("restored");
    sshd.ok(&env, "plain", &["restore", &loc, "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(target.join("small.txt")).unwrap(), "changed\n");
    assert_eq!(hash_file(&target.join("sub/g1.bin")), hash_file(&data.join("sub/g1.bin")));
    assert!(!target.join("f0.bin").exists());

    sshd.ok(&env, "plain", &["check", &loc, "--read-data"]);
    sshd.ok(&env, "plain", &["forget", &loc, "--keep-last", "1"]);
    sshd.ok(&env, "plain", &["gc", &loc]);
    sshd.ok(&env, "plain", &["check", &loc, "--read-data"]);
    // The same store, opened as a local folder, agrees.
    env.ok(&["check", store.to_str().unwrap(), "--read-data"]);
    let snaps: serde_json::Value = serde_json::from_str(&sshd.ok(&env, "plain", &["snapshots", &loc, "--json"])).unwrap();
    let n = snaps.as_array().map(|a| a.len()).or_else(|| snaps["snapshots"].as_array().map(|a| a.len())).unwrap();
    assert_eq!(n, 1, "{snaps}");
    assert!(!store.join("locks").exists() || files_under(&store.join("locks")).is_empty(), "locks are released");
}

#[test]
fn replicas_push_pull_clone_sync_over_ssh() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let a = env.path("a");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("notes.txt"), "from a\n").unwrap();
    write_files(&a, 7, 3, 100_000);
    env.ok(&["init", a.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    let loc = sshd.loc(&env.path("stick"));
    let mut init = vec!["-C", a.to_str().unwrap(), "store", "init", &loc, "--like", "."];
    init.extend_from_slice(&CHEAP);
    sshd.ok(&env, "plain", &init);
    sshd.ok(&env, "plain", &["-C", a.to_str().unwrap(), "push", &loc]);

    let b = env.path("b");
    sshd.ok(&env, "plain", &["clone", &loc, b.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert_same_replica(&a, &b);

    std::fs::write(b.join("notes.txt"), "edited on b\n").unwrap();
    std::fs::write(b.join("new-on-b.txt"), "b\n").unwrap();
    sshd.ok(&env, "plain", &["-C", b.to_str().unwrap(), "push", &loc]);
    sshd.ok(&env, "plain", &["-C", a.to_str().unwrap(), "pull", &loc]);
    assert_same_replica(&a, &b);

    std::fs::write(a.join("only-a.txt"), "a\n").unwrap();
    std::fs::write(b.join("only-b.txt"), "b\n").unwrap();
    sshd.ok(&env, "plain", &["-C", a.to_str().unwrap(), "sync", &loc]);
    sshd.ok(&env, "plain", &["-C", b.to_str().unwrap(), "sync", &loc]);
    sshd.ok(&env, "plain", &["-C", a.to_str().unwrap(), "sync", &loc]);
    assert_same_replica(&a, &b);
    assert!(a.join("only-b.txt").exists() && b.join("only-a.txt").exists());
    env.ok(&["check", env.path("stick").to_str().unwrap(), "--read-data"]);
}

#[test]
fn append_only_refuses_forget_and_gc_and_deletes_nothing() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let store = env.path("store");
    let loc = init_store(&env, &sshd, &store);
    let data = env.path("data");
    write_files(&data, 3, 4, 200_000);
    sshd.ok(&env, "plain", &["backup", data.to_str().unwrap(), "--to", &loc]);
    std::fs::remove_file(data.join("f0.bin")).unwrap();
    // Backups still work through the append-only key (they only add).
    sshd.ok(&env, "append", &["backup", data.to_str().unwrap(), "--to", &loc]);
    sshd.ok(&env, "append", &["check", &loc]);
    let before = store_files(&store);

    for args in [vec!["forget", loc.as_str(), "--keep-last", "1"], vec!["gc", loc.as_str()]] {
        let e = sshd.fails(&env, "append", &args);
        assert!(e.contains("append-only"), "{args:?}: {e}");
        assert_eq!(store_files(&store), before, "{args:?} changed the store");
    }
    // Dry runs only read.
    sshd.ok(&env, "append", &["gc", &loc, "-n"]);
    assert_eq!(store_files(&store), before);
    // Locks were released even though the server is append-only.
    assert!(files_under(&store.join("locks")).is_empty());
}

#[test]
fn restrict_to_path_refuses_other_paths_dotdot_and_symlinks_out() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let allowed = env.path("allowed");
    let other = env.path("other");
    std::fs::create_dir_all(&other).unwrap();
    std::os::unix::fs::symlink(&other, allowed.join("link")).unwrap();

    let good = sshd.loc(&allowed.join("store"));
    let mut init = vec!["store", "init", &good];
    init.extend_from_slice(&CHEAP);
    sshd.ok(&env, "restrict", &init);
    assert!(allowed.join("store/config").exists());

    for bad in [other.join("store"), allowed.join("../other/store"), allowed.join("link/store"), PathBuf::from("/tmp")] {
        let loc = sshd.loc(&bad);
        let mut init = vec!["store", "init", &loc];
        init.extend_from_slice(&CHEAP);
        let e = sshd.fails(&env, "restrict", &init);
        assert!(e.contains("refuses this store path"), "{bad:?}: {e}");
    }
    assert!(files_under(&other).is_empty(), "nothing was written outside the allowed folder");
}

/// Starts a push of `dir` to `loc` and kills `kill` once the store holds
/// at least `packs` pack files; returns the push's output.
fn push_and_kill(sshd: &Sshd, env: &Env, dir: &Path, loc: &str, store: &Path, packs: usize, kill_server: bool) -> Output {
    let mut child = sshd
        .cmd(env, "plain")
        .args(["-C", dir.to_str().unwrap(), "push", loc])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let n = files_under(&store.join("packs")).len();
        if n >= packs {
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "push made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    if kill_server {
        let pids = sshd.descendants_running("serve --stdio");
        assert!(!pids.is_empty() || child.try_wait().unwrap().is_some(), "no ferry serve process found");
        for pid in pids {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    } else {
        let _ = child.kill();
    }
    child.wait_with_output().unwrap()
}

fn big_replica(env: &Env, sshd: &Sshd, name: &str, store: &Path) -> (PathBuf, String) {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    write_files(&dir, 11, 24, 1_000_000);
    env.ok(&["init", dir.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    let loc = sshd.loc(store);
    let mut init = vec!["-C", dir.to_str().unwrap(), "store", "init", &loc, "--like", "."];
    init.extend_from_slice(&CHEAP);
    sshd.ok(env, "plain", &init);
    (dir, loc)
}

#[test]
fn a_client_killed_mid_push_leaves_a_store_the_next_push_completes() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let store = env.path("store");
    let (dir, loc) = big_replica(&env, &sshd, "r", &store);
    let o = push_and_kill(&sshd, &env, &dir, &loc, &store, 3, false);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(9), "the push finished before it was killed: {o:?}");
    assert!(files_under(&store.join("snapshots")).is_empty(), "killed before its snapshot");
    sshd.ok(&env, "plain", &["check", &loc]);
    sshd.ok(&env, "plain", &["-C", dir.to_str().unwrap(), "push", &loc]);
    sshd.ok(&env, "plain", &["check", &loc, "--read-data"]);
    let c = env.path("clone");
    sshd.ok(&env, "plain", &["clone", &loc, c.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert_same_replica(&dir, &c);
    // The killed client's server went away with it.
    let t0 = Instant::now();
    while !sshd.descendants_running("serve --stdio").is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "a ferry serve outlived its client");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_server_killed_mid_push_is_a_clear_error_and_the_next_push_completes() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let store = env.path("store");
    let (dir, loc) = big_replica(&env, &sshd, "r", &store);
    let o = push_and_kill(&sshd, &env, &dir, &loc, &store, 3, true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the push finished before the server was killed: {err}");
    assert!(err.contains("connection to the server was lost"), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    sshd.ok(&env, "plain", &["-C", dir.to_str().unwrap(), "push", &loc]);
    sshd.ok(&env, "plain", &["check", &loc, "--read-data"]);
}

#[test]
fn a_wrong_key_a_missing_remote_ferry_and_a_closed_port_are_clear_errors() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let loc = sshd.loc(&env.path("store"));
    let e = sshd.fails(&env, "wrong", &["snapshots", &loc]);
    assert!(e.contains("ssh authentication failed") && e.contains("Permission denied"), "{e}");

    let o = sshd.cmd(&env, "plain").env("FERRY_REMOTE_PATH", "/nonexistent/ferry").args(["snapshots", &loc]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("ferry could not be started on the remote host") && e.contains("FERRY_REMOTE_PATH"), "{e}");

    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = sshd.cmd(&env, "plain").args(["snapshots", &format!("ssh://127.0.0.1:{closed}/x")]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("could not connect"), "{e}");

    let o = sshd.cmd(&env, "plain").env("FERRY_SSH_COMMAND", "/nonexistent/ssh").args(["snapshots", &loc]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("FERRY_SSH_COMMAND"), "{e}");

    // No store there yet: exit 10, as for a local folder.
    let o = sshd.run(&env, "plain", &["snapshots", &loc]);
    assert_eq!(o.status.code(), Some(10), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::io::stderr().flush();
}

/// The figure after `label` in a "network: X sent, Y received" line, in bytes.
fn network_figure(stderr: &str, label: &str) -> f64 {
    let line = stderr.lines().find(|l| l.starts_with("network: ")).unwrap_or_else(|| panic!("no network line in: {stderr}"));
    let part = line["network: ".len()..].split(", ").find(|p| p.ends_with(label)).unwrap();
    let mut words = part.split(' ');
    let n: f64 = words.next().unwrap().parse().unwrap();
    let unit = match words.next().unwrap() {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        u => panic!("unit {u}"),
    };
    n * unit
}

#[test]
fn progress_bars_and_reports_count_the_bytes_moved_over_the_network() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let store = env.path("store");
    let loc = init_store(&env, &sshd, &store);
    // 24 MiB of random bytes: they cannot compress, so what is sent is
    // about their size.
    let data = env.path("data");
    write_files(&data, 7, 12, 2 << 20);
    let o = sshd.run(&env, "plain", &["backup", data.to_str().unwrap(), "--to", &loc]);
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    let sent = network_figure(&stderr, "sent");
    assert!((24.0 * 1048576.0..26.0 * 1048576.0).contains(&sent), "24 MiB backed up, {sent} bytes sent: {stderr}");
    let target = env.path("restored");
    let o = sshd.run(&env, "plain", &["restore", &loc, "latest", "--target", target.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let received = network_figure(&stderr, "received");
    assert!((24.0 * 1048576.0..26.0 * 1048576.0).contains(&received), "24 MiB restored, {received} bytes received: {stderr}");
    // --json and -q print no such line; a local store moves nothing over a network.
    let o = sshd.run(&env, "plain", &["snapshots", &loc, "--json"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("network:"));
    let o = env.run(&["snapshots", store.to_str().unwrap()]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("network:"));

    // On a terminal the progress bar counts them as they go: run a second
    // backup of new data under a pseudo-terminal (util-linux `script`).
    write_files(&data.join("more"), 99, 12, 4 << 20);
    let inner = format!("{} backup {} --to {}", ferry_bin().display(), data.display(), loc);
    let mut c = Command::new("script");
    let envs: Vec<(String, String)> = sshd
        .cmd(&env, "plain")
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), v?.to_string_lossy().into_owned())))
        .collect();
    c.envs(envs).args(["-qefc", &inner, "/dev/null"]).env("TERM", "xterm").env("COLUMNS", "200");
    let o = c.output().unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.lines().flat_map(|l| l.split('\r')).any(|l| l.contains(" files, ") && l.contains(" sent, ")),
        "no progress bar line counting network bytes in: {shown}"
    );
}

/// `ferry mount` of an ssh:// store: the same tree, bytes read on demand.
#[test]
fn mount_an_ssh_store() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let store = env.path("store");
    let loc = init_store(&env, &sshd, &store);
    let data = env.path("data");
    write_files(&data, 3, 4, 300_000);
    sshd.ok(&env, "plain", &["backup", data.to_str().unwrap(), "--to", &loc]);
    let mut m = common::fuse::Mounted::start(sshd.cmd(&env, "plain"), &loc, env.path("mnt"), env.path("mnt.log"), &[]);
    assert_eq!(m.n("blocks_fetched"), 0, "nothing read before a file is opened");
    assert_same_tree(&data, &m.mnt.join("latest"));
    assert!(m.n("store_read_bytes") >= 1_200_000, "{}", m.stats());
    m.stop_with("-TERM");
}

/// A mount of an ssh:// store whose host goes away keeps serving what it
/// has cached, fails other reads with EIO at once (no hang, the mount
/// lives on), and reads them once the host is back: the client dials
/// again (issue 13).
#[test]
fn a_mount_of_an_ssh_store_recovers_when_the_host_comes_back() {
    let env = Env::new();
    let mut sshd = Sshd::start(&env);
    let store = env.path("store");
    let loc = init_store(&env, &sshd, &store);
    let data = env.path("data");
    write_files(&data, 11, 3, 300_000);
    sshd.ok(&env, "plain", &["backup", data.to_str().unwrap(), "--to", &loc]);
    let mut m = common::fuse::Mounted::start(sshd.cmd(&env, "plain"), &loc, env.path("mnt"), env.path("mnt.log"), &[]);
    let read = |name: &str| std::fs::read(m.mnt.join("latest").join(name));
    assert_eq!(read("f0.bin").unwrap(), std::fs::read(data.join("f0.bin")).unwrap());

    sshd.go_away();
    let t0 = Instant::now();
    assert_eq!(read("f0.bin").unwrap(), std::fs::read(data.join("f0.bin")).unwrap(), "a cached file reads while the host is away");
    let e = read("sub/g1.bin").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(5), "an uncached file is EIO while the host is away: {e}");
    assert!(t0.elapsed() < Duration::from_secs(30), "reads while the host is away took {:?}", t0.elapsed());
    assert!(common::fuse::mounted(&m.mnt), "the mount lives on");

    sshd.come_back();
    let t1 = Instant::now();
    let back = loop {
        match read("sub/g1.bin") {
            Ok(b) => break b,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(5), "{e}");
                assert!(t1.elapsed() < Duration::from_secs(30), "the mount never read again after the host came back: {}", m.log());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert_eq!(back, std::fs::read(data.join("sub/g1.bin")).unwrap());
    assert!(m.log().contains("connected again"), "the log says the mount dialed again: {}", m.log());
    m.stop_with("-TERM");
}

/// Restore over ssh asks for a few large ranges, several at a time, not
/// one request per block (issue 12), and still verifies every block: a
/// byte flipped in a pack on the server fails the file holding it, with
/// an error naming the block and its pack.
#[test]
fn a_restore_over_ssh_reads_blocks_in_few_requests_and_still_verifies_them() {
    let env = Env::new();
    let sshd = Sshd::start(&env);
    let store = env.path("store");
    let loc = init_store(&env, &sshd, &store);
    let data = env.path("data");
    write_files(&data, 11, 300, 9_000);
    sshd.ok(&env, "plain", &["backup", data.to_str().unwrap(), "--to", &loc]);

    let target = env.path("restored");
    let (r, reads, files) = restore_latest_counted(std::sync::Arc::new(sshd.backend(&store)), &target);
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.files_written, 300);
    assert_eq!(files, 300);
    // 300 blocks (one per file) and 2 trees in 1 MiB packs: a handful of
    // ranged reads.
    assert!(reads <= 12, "{reads} pack reads to restore 300 one-block files");
    assert_same_tree(&data, &target);

    // Flip one byte in the middle of a data pack on the server.
    let mut packs: Vec<PathBuf> = files_under(&store.join("packs"));
    packs.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&packs[0], &bytes).unwrap();
    let pack_name = packs[0].file_name().unwrap().to_string_lossy().into_owned();
    let o = sshd.run(&env, "plain", &["restore", &loc, "latest", "--target", env.path("again").to_str().unwrap(), "--json"]);
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(out.contains(&pack_name), "the damaged pack {pack_name} is not named: {out}");
    assert!(!o.status.success() || out.contains("\"skipped\""), "{out}");
}
