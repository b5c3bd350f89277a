//! `.ferry/watch.json`: what a running `ferry watch` is doing, for
//! `ferry center`'s live view (format-spec §21.2).
//!
//! The watch rewrites the file (temp name, then rename: a reader never
//! sees half of it) at each step: started, a sync beginning with a store,
//! each event; it removes the file when it stops. A watch killed with
//! SIGKILL leaves it behind, so a reader believes it only while the
//! process it names runs ([`WatchState::read`]). It is local state like
//! the rest of `.ferry/`: never synced, never in a store, and the watch
//! ignores its own writes under `.ferry/`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backup::now_ns;
use crate::replica::META_DIR;
use crate::watch::Event;

/// The file's name inside `.ferry/`.
pub const FILE_NAME: &str = "watch.json";
/// How many recent events the file keeps.
const RECENT: usize = 20;

/// A running watch, as its state file says.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WatchState {
    /// The watching process.
    pub pid: u32,
    /// When it started (ns since the epoch).
    pub started_ns: i64,
    /// When the file was last written.
    pub updated_ns: i64,
    /// The store a sync is running with now, if any.
    pub syncing: Option<String>,
    /// Each store it keeps in step.
    pub stores: Vec<StoreWatch>,
    /// The latest events, oldest first (at most 20).
    pub recent: Vec<WatchEvent>,
}

/// One store as the watch sees it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoreWatch {
    /// The store location.
    pub location: String,
    /// Whether its last probe answered; None before the first.
    pub reachable: Option<bool>,
    /// When this watch last synced with it.
    pub last_sync_ns: Option<i64>,
    /// The last failure, until a sync succeeds.
    pub last_error: Option<String>,
}

/// One thing the watch did or met.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WatchEvent {
    /// When (ns since the epoch).
    pub time_ns: i64,
    /// `started`, `sync`, `unreachable`, `reachable`, `busy`, `failed` or
    /// `not_watching` (as `watch --json`'s events).
    pub kind: String,
    /// The store, when the event is about one.
    pub store: Option<String>,
    /// Changes applied to the folder (`sync`).
    pub pulled: usize,
    /// Changes pushed (`sync`).
    pub pushed: usize,
    /// Paths changed on both sides, both versions kept (`sync`).
    pub conflicts: Vec<String>,
    /// Why (`unreachable`, `failed`, `not_watching`).
    pub error: Option<String>,
}

impl WatchState {
    /// The state file of the replica at `root`.
    pub fn path(root: &Path) -> PathBuf {
        root.join(META_DIR).join(FILE_NAME)
    }

    /// The state of the watch running on the replica at `root`: None when
    /// there is no file, it does not parse, or the process it names is
    /// gone (a watch that was killed).
    pub fn read(root: &Path) -> Option<WatchState> {
        let text = std::fs::read(Self::path(root)).ok()?;
        let s: WatchState = serde_json::from_slice(&text).ok()?;
        process_alive(s.pid).then_some(s)
    }
}

/// Whether a process with this id runs (on this machine: `.ferry/` is local).
fn process_alive(pid: u32) -> bool {
    pid != 0 && Path::new("/proc").join(pid.to_string()).exists()
}

/// Keeps the state file of a running watch; removes it when dropped.
pub(crate) struct StateWriter {
    path: PathBuf,
    state: WatchState,
}

impl StateWriter {
    pub(crate) fn new(root: &Path, stores: &[String]) -> StateWriter {
        let now = now_ns();
        let state = WatchState {
            pid: std::process::id(),
            started_ns: now,
            updated_ns: now,
            syncing: None,
            stores: stores.iter().map(|s| StoreWatch { location: s.clone(), ..Default::default() }).collect(),
            recent: Vec::new(),
        };
        let w = StateWriter { path: WatchState::path(root), state };
        w.write();
        w
    }

    /// A sync with `store` begins (Some) or ended (None).
    pub(crate) fn syncing(&mut self, store: Option<&str>) {
        self.state.syncing = store.map(str::to_string);
        self.write();
    }

    /// Records an event.
    pub(crate) fn note(&mut self, e: &Event<'_>) {
        let now = now_ns();
        let mut ev = WatchEvent { time_ns: now, ..Default::default() };
        let store = |s: &mut WatchState, loc: &str| -> Option<usize> { s.stores.iter().position(|x| x.location == loc) };
        match e {
            Event::Started { .. } => ev.kind = "started".into(),
            Event::NotWatching { reason } => {
                ev.kind = "not_watching".into();
                ev.error = Some(reason.clone());
            }
            Event::Synced(out) => {
                self.state.syncing = None;
                if let Some(i) = store(&mut self.state, &out.store) {
                    self.state.stores[i].last_sync_ns = Some(now);
                    self.state.stores[i].reachable = Some(true);
                    self.state.stores[i].last_error = None;
                }
                if !out.did_something() {
                    // A no-op sync is not news; the store's time moved on.
                    self.write();
                    return;
                }
                ev = WatchEvent {
                    kind: "sync".into(),
                    store: Some(out.store.clone()),
                    pulled: out.pulled,
                    pushed: out.pushed,
                    conflicts: out.conflicts.iter().map(|c| c.path.to_string_lossy().into_owned()).collect(),
                    ..ev
                };
            }
            Event::Unreachable { store: loc, error } => {
                self.state.syncing = None;
                if let Some(i) = store(&mut self.state, loc) {
                    self.state.stores[i].reachable = Some(false);
                    self.state.stores[i].last_error = Some(error.to_string());
                }
                ev = WatchEvent { kind: "unreachable".into(), store: Some(loc.to_string()), error: Some(error.to_string()), ..ev };
            }
            Event::Reachable { store: loc } => {
                if let Some(i) = store(&mut self.state, loc) {
                    self.state.stores[i].reachable = Some(true);
                    self.state.stores[i].last_error = None;
                }
                ev = WatchEvent { kind: "reachable".into(), store: Some(loc.to_string()), ..ev };
            }
            Event::Busy { store: loc } => {
                self.state.syncing = None;
                ev = WatchEvent { kind: "busy".into(), store: Some(loc.to_string()), ..ev };
            }
            Event::Failed { store: loc, error } => {
                self.state.syncing = None;
                if let Some(i) = store(&mut self.state, loc) {
                    self.state.stores[i].last_error = Some(error.to_string());
                }
                ev = WatchEvent { kind: "failed".into(), store: Some(loc.to_string()), error: Some(error.to_string()), ..ev };
            }
        }
        self.state.recent.push(ev);
        if self.state.recent.len() > RECENT {
            self.state.recent.remove(0);
        }
        self.write();
    }

    /// Best effort: the watch goes on without its live view when `.ferry/`
    /// cannot be written (it will fail its next sync anyway).
    fn write(&self) {
        let mut state = self.state.clone();
        state.updated_ns = now_ns();
        let tmp = self.path.with_file_name(format!(".{FILE_NAME}.tmp-{}", state.pid));
        let done = serde_json::to_vec(&state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!("watch state {}: {e}", self.path.display());
        }
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
