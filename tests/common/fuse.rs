//! A running `ferry mount` for tests: started from a prepared ferry
//! command (any store location), its counters read with `ferry cache
//! status --json`, stopped and checked to unmount.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ferry_bin;

/// A running `ferry mount`, stopped (and checked to unmount) on drop.
pub struct Mounted {
    child: Option<Child>,
    pub mnt: PathBuf,
    log: PathBuf,
    cache: PathBuf,
}

/// True when `mnt` is in the mount table.
pub fn mounted(mnt: &Path) -> bool {
    let want = std::fs::canonicalize(mnt).unwrap_or_else(|_| mnt.to_path_buf());
    std::fs::read_to_string("/proc/mounts").unwrap().lines().any(|l| l.split(' ').nth(1) == Some(want.to_str().unwrap()))
}

impl Mounted {
    /// Starts `cmd` (a ferry command with its environment) as `ferry mount
    /// STORE MNT EXTRA...` and waits for the mount to show.
    pub fn start(mut cmd: Command, store: &str, mnt: PathBuf, log: PathBuf, extra: &[&str]) -> Mounted {
        assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing: these tests need FUSE");
        std::fs::create_dir_all(&mnt).unwrap();
        let cache = cmd.get_envs().find(|(k, _)| *k == "FERRY_CACHE_DIR").and_then(|(_, v)| v).map(PathBuf::from).expect("FERRY_CACHE_DIR");
        let child = cmd
            .arg("mount")
            .arg(store)
            .arg(&mnt)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let m = Mounted { child: Some(child), mnt, log, cache };
        let t = Instant::now();
        while !m.mnt.join("snapshots").exists() {
            assert!(t.elapsed() < Duration::from_secs(30), "mount did not come up: {}", m.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
    /// This mount's counters, from `ferry cache status --json`.
    pub fn stats(&self) -> Value {
        let o = Command::new(ferry_bin()).env("FERRY_CACHE_DIR", &self.cache).args(["cache", "status", "--json"]).output().unwrap();
        assert!(o.status.success(), "cache status: {}", String::from_utf8_lossy(&o.stderr));
        let st: Value = serde_json::from_slice(&o.stdout).unwrap();
        for c in st.as_array().unwrap() {
            for m in c["mounts"].as_array().unwrap() {
                if m["pid"].as_u64() == Some(self.pid() as u64) {
                    return m["stats"].clone();
                }
            }
        }
        panic!("mount {} not in cache status: {st}", self.pid());
    }
    pub fn n(&self, counter: &str) -> u64 {
        self.stats()[counter].as_u64().unwrap()
    }
    /// Stops the mount with a signal; asserts it exits 0 and unmounts.
    pub fn stop_with(&mut self, sig: &str) {
        let pid = self.pid().to_string();
        assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
        self.wait_exit(Duration::from_secs(15));
    }
    /// `kill -9`: the process dies without unmounting; the kernel keeps
    /// a dead mount there (every access fails with ENOTCONN).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
    pub fn wait_exit(&mut self, limit: Duration) {
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > limit {
                let _ = child.kill();
                panic!("ferry mount did not exit within {limit:?}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "ferry mount exited with {status}: {}", self.log());
        assert!(!mounted(&self.mnt), "{} is still mounted", self.mnt.display());
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let t = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::process::Command::new("fusermount3").args(["-u", "-z"]).arg(&self.mnt).stderr(Stdio::null()).status();
        }
    }
}

impl Mounted {
    /// Starts `cmd` as `ferry mount DIR` (an on-demand replica mounted
    /// over itself) and waits for the mount to show.
    pub fn start_replica(mut cmd: Command, dir: PathBuf, log: PathBuf) -> Mounted {
        assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing: these tests need FUSE");
        let cache = cmd.get_envs().find(|(k, _)| *k == "FERRY_CACHE_DIR").and_then(|(_, v)| v).map(PathBuf::from).expect("FERRY_CACHE_DIR");
        let child = cmd.arg("mount").arg(&dir).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
        let mut m = Mounted { child: Some(child), mnt: dir, log, cache };
        let t = Instant::now();
        // Served, not only in the mount table: a mount whose process was
        // killed stays listed there (and answers ENOTCONN) until cleared.
        while !mounted(&m.mnt) || ferry_sync::ondemand::is_dead_mount(&m.mnt) {
            if let Some(s) = m.child.as_mut().unwrap().try_wait().unwrap() {
                m.child = None;
                panic!("ferry mount exited with {s}: {}", m.log());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "mount did not come up: {}", m.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }
}

impl Mounted {
    /// Like [`Mounted::start_replica`], with options after `ferry mount DIR`
    /// (e.g. `--cache-size`).
    pub fn start_replica_with(mut cmd: Command, dir: PathBuf, log: PathBuf, extra: &[&str]) -> Mounted {
        assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing: these tests need FUSE");
        let cache = cmd.get_envs().find(|(k, _)| *k == "FERRY_CACHE_DIR").and_then(|(_, v)| v).map(PathBuf::from).expect("FERRY_CACHE_DIR");
        let child =
            cmd.arg("mount").arg(&dir).args(extra).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
        let mut m = Mounted { child: Some(child), mnt: dir, log, cache };
        let t = Instant::now();
        while !mounted(&m.mnt) {
            if let Some(s) = m.child.as_mut().unwrap().try_wait().unwrap() {
                m.child = None;
                panic!("ferry mount exited with {s}: {}", m.log());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "mount did not come up: {}", m.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }
}
