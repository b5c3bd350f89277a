//! `watch`: keep a replica in step with its stores until told to stop.
//!
//! A person edits, an editor saves through a temp file and a rename, a
//! USB stick comes and goes: `watch` turns that into [`crate::sync::sync`]
//! runs, one store at a time, and nothing else. It decides only *when* to
//! sync and with *which* store:
//!
//! - **Local changes** come from inotify (`notify`, events batched per path
//!   by its mini debouncer). Events under `.ferry/` (and under a local
//!   store kept inside the folder) are ignored. A sync starts once the
//!   whole folder has been quiet for [`WatchOptions::quiet`], so a file
//!   still being written or an editor's temp-file-and-rename save is not
//!   taken half-done (the sync also re-checks every file it reads); a
//!   folder that never settles is synced anyway after
//!   [`WatchOptions::max_wait`]. Without inotify (no watch could be set up)
//!   every interval counts as a local change.
//! - **Remote changes**: every [`WatchOptions::interval`] each store's
//!   snapshot names are listed ([`Store::peek_snapshots`], no lock, no
//!   key); a store syncs when the listing differs from the one its last
//!   sync left (our own snapshots added), so an idle watch holds no lock
//!   and scans no folder.
//! - **Its own writes**: files a sync applies raise events too. They are
//!   taken as changes like any other, which costs at most one more sync
//!   that finds nothing to do and writes nothing, so no loop can start.
//! - **Unreachable stores** (folder gone, ssh down): reported once
//!   ([`Event::Unreachable`]), probed again at each interval, the other
//!   stores go on; when one answers again ([`Event::Reachable`]) it syncs
//!   at once, sending what changed meanwhile.
//! - **The replica lock** is taken for one sync with one store and
//!   released: `status` and a manual `sync` run beside a watch. When
//!   another process holds it, the store is tried again a moment later.
//! - **Stopping**: [`Stopper::stop`] (the CLI calls it on SIGINT/SIGTERM)
//!   ends the loop when it is idle, or after the sync under way.
//!
//! - **Live view**: `.ferry/watch.json` ([`crate::watchstate`]) says what
//!   the watch is doing, for `ferry center`; it goes when the watch ends.
//!
//! The key is given once ([`MasterKey`]): no passphrase is asked or
//! derived per sync.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use ferry_store::backend::{Backend, Location, open_backend};
use ferry_store::{CacheLocation, MasterKey, ObjectName, Store};
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use crate::backup::now_ns;
use crate::error::{Error, Result};
use crate::merge::Conflict;
use crate::progress::{Progress, Skipped};
use crate::replica::{META_DIR, Replica};
use crate::snapshot::Snapshot;
use crate::sync::{SyncOptions, SyncReport, sync};
use crate::tree::Tree;
use crate::watchstate::StateWriter;

/// When and with what to sync.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The store locations, in [`crate::replica::remote_location`] form.
    pub stores: Vec<String>,
    /// How often stores are checked for new snapshots (and unreachable
    /// ones probed).
    pub interval: Duration,
    /// How long the folder must be quiet before local changes are synced.
    pub quiet: Duration,
    /// Local changes are synced after this long even if the folder never
    /// goes quiet.
    pub max_wait: Duration,
    /// Host recorded in snapshots when the replica has no name.
    pub host: String,
    /// Where stores keep their index caches.
    pub cache: CacheLocation,
}

impl WatchOptions {
    /// `max_wait` for a quiet period and an interval: ten quiet periods,
    /// and at least one interval.
    pub fn default_max_wait(quiet: Duration, interval: Duration) -> Duration {
        (quiet * 10).max(interval)
    }
}

/// What one sync with one store did. Serializes as `watch --json`'s
/// `sync` event.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SyncOutcome {
    /// The store.
    pub store: String,
    /// Changes applied to the folder (written, deleted, renamed, ...).
    pub pulled: usize,
    /// Changes the pushed snapshot holds against its parent (0 when
    /// nothing was pushed).
    pub pushed: usize,
    /// The snapshot of local changes pushed, if any.
    pub pushed_snapshot: Option<ObjectName>,
    /// The merge snapshot written, if any.
    pub merged: Option<ObjectName>,
    /// Paths changed on both sides: both versions kept.
    pub conflicts: Vec<Conflict>,
    /// Paths that changed while the sync ran, left for the next one.
    #[serde(serialize_with = "crate::change::path_strs")]
    pub left_for_next: Vec<PathBuf>,
    /// Files that could not be written.
    pub skipped: Vec<Skipped>,
}

impl SyncOutcome {
    /// True when the sync moved something or has something to say.
    pub fn did_something(&self) -> bool {
        self.pulled > 0
            || self.pushed_snapshot.is_some()
            || self.merged.is_some()
            || !self.conflicts.is_empty()
            || !self.left_for_next.is_empty()
            || !self.skipped.is_empty()
    }
}

/// What a watch reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// Watching began.
    Started {
        /// The replica's root.
        root: &'a Path,
        /// The stores kept in step.
        stores: &'a [String],
    },
    /// No inotify watch could be set up (e.g. the watch limit): local
    /// changes are looked for at every interval instead.
    NotWatching {
        /// Why.
        reason: String,
    },
    /// One sync finished (whether or not it did anything: see
    /// [`SyncOutcome::did_something`]).
    Synced(&'a SyncOutcome),
    /// A store cannot be reached; said once until it is back.
    Unreachable {
        /// The store.
        store: &'a str,
        /// Why.
        error: &'a Error,
    },
    /// A store that could not be reached answers again.
    Reachable {
        /// The store.
        store: &'a str,
    },
    /// Another process holds the replica (or the store's gc lock): tried
    /// again shortly.
    Busy {
        /// The store.
        store: &'a str,
    },
    /// A sync failed with a reachable store; tried again at the next
    /// interval. Said once per distinct error.
    Failed {
        /// The store.
        store: &'a str,
        /// Why.
        error: &'a Error,
    },
}

enum Msg {
    Changes(DebounceEventResult),
    Stop,
}

/// Ends a running [`Watch`] (from another thread, e.g. a signal handler).
#[derive(Clone, Debug)]
pub struct Stopper(Sender<Msg>);

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Changes(_) => "Changes",
            Msg::Stop => "Stop",
        })
    }
}

impl Stopper {
    /// Asks the watch to stop: at once when idle, else after the sync
    /// under way.
    pub fn stop(&self) {
        let _ = self.0.send(Msg::Stop);
    }
}

/// A watch of one replica; [`Watch::run`] runs it.
pub struct Watch {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
}

impl Default for Watch {
    fn default() -> Self {
        Self::new()
    }
}

/// One store's state in the loop.
struct StoreState {
    loc: String,
    backend: Option<Arc<dyn Backend>>,
    /// None until first probed.
    reachable: Option<bool>,
    /// The snapshot names after our last sync (ours included).
    seen: Option<Vec<ObjectName>>,
    /// Needs a sync whatever the listing says: local changes not synced
    /// there yet, or the last attempt did not finish.
    due: bool,
    /// The last failure reported, so it is said once.
    last_failure: Option<String>,
}

/// How a sync attempt with one store ended.
enum Attempt {
    Done(Box<SyncOutcome>),
    Busy,
    Unreachable(Error),
    Failed(Error),
}

impl Watch {
    /// A watch, not yet running.
    pub fn new() -> Watch {
        let (tx, rx) = channel();
        Watch { tx, rx }
    }

    /// A handle that stops [`Watch::run`].
    pub fn stopper(&self) -> Stopper {
        Stopper(self.tx.clone())
    }

    /// Runs until stopped. Opens the replica at `root` with `master` for
    /// each sync only. Fails when the replica cannot be opened for a
    /// reason other than another process holding it, or when there is no
    /// store to watch.
    pub fn run(self, root: &Path, master: &MasterKey, opts: &WatchOptions, on_event: &mut dyn FnMut(Event<'_>)) -> Result<()> {
        let root = root.canonicalize().map_err(|e| Error::io("open", root, e))?;
        if opts.stores.is_empty() {
            return Err(Error::NoRemotes { root });
        }
        // The replica must open with this key now, not at the first sync
        // (another process may hold it: that is for the first sync to wait out).
        match open_replica(&root, master) {
            Ok(_) | Err(Error::ReplicaBusy { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut stores: Vec<StoreState> = opts
            .stores
            .iter()
            .map(|s| StoreState { loc: s.clone(), backend: None, reachable: None, seen: None, due: true, last_failure: None })
            .collect();

        // Paths whose events are not local changes: ferry's own metadata,
        // and local stores kept inside the folder.
        let mut ignored = vec![root.join(META_DIR)];
        for s in &opts.stores {
            if let Ok(Location::Local(p)) = Location::parse(s)
                && p.starts_with(&root)
            {
                ignored.push(p);
            }
        }
        // What `ferry center` shows while this runs (`.ferry/watch.json`,
        // removed when the watch ends): every event passes through it.
        let state = std::cell::RefCell::new(StateWriter::new(&root, &opts.stores));
        let outer = on_event;
        let mut noting = |e: Event<'_>| {
            state.borrow_mut().note(&e);
            outer(e)
        };
        let on_event: &mut dyn FnMut(Event<'_>) = &mut noting;
        // Started once the inotify watch is in place: a change made after
        // it is seen (one made before is found by the first round anyway).
        let watcher = self.watch_folder(&root, opts.quiet);
        on_event(Event::Started { root: &root, stores: &opts.stores });
        let watching = match watcher {
            Ok(w) => Some(w),
            Err(reason) => {
                on_event(Event::NotWatching { reason });
                None
            }
        };

        let retry_delay = opts.interval.min(Duration::from_secs(1));
        let mut next_tick = Instant::now();
        let mut retry_at: Option<Instant> = None;
        // First and last local change not yet handed to the stores.
        let mut changes: Option<(Instant, Instant)> = None;
        loop {
            let settle = changes.map(|(first, last)| (last + opts.quiet).min(first + opts.max_wait));
            let wake = [Some(next_tick), settle, retry_at].into_iter().flatten().min().expect("next_tick");
            match self.rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Msg::Stop) => return Ok(()),
                Ok(Msg::Changes(ev)) => {
                    note_changes(&ev, &ignored, &mut changes);
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if settle.is_some_and(|s| now >= s) {
                changes = None;
                stores.iter_mut().for_each(|s| s.due = true);
            }
            let tick = now >= next_tick;
            if tick {
                next_tick = now + opts.interval;
                if watching.is_none() {
                    stores.iter_mut().for_each(|s| s.due = true);
                }
            }
            retry_at = None;
            for st in stores.iter_mut() {
                // Between two syncs: a stop is obeyed, changes are noted.
                while let Ok(m) = self.rx.try_recv() {
                    match m {
                        Msg::Stop => return Ok(()),
                        Msg::Changes(ev) => note_changes(&ev, &ignored, &mut changes),
                    }
                }
                if !tick && !st.due {
                    continue;
                }
                let Some(listing) = probe(st, on_event) else { continue };
                if !st.due && st.seen.as_ref() == Some(&listing) {
                    continue;
                }
                // Changes made from here on raise events that make it due again.
                st.due = false;
                state.borrow_mut().syncing(Some(&st.loc));
                let attempted = attempt(&root, master, st, opts);
                state.borrow_mut().syncing(None);
                match attempted {
                    Attempt::Done(out) => {
                        let mut seen = listing;
                        seen.extend(out.pushed_snapshot.iter().chain(out.merged.iter()).copied());
                        seen.sort();
                        seen.dedup();
                        st.seen = Some(seen);
                        st.last_failure = None;
                        // Paths left for the next sync: try again at the next interval.
                        st.due = !out.left_for_next.is_empty();
                        on_event(Event::Synced(&out));
                    }
                    Attempt::Busy => {
                        st.due = true;
                        retry_at = Some(Instant::now() + retry_delay);
                        on_event(Event::Busy { store: &st.loc });
                    }
                    Attempt::Unreachable(e) => {
                        st.due = true;
                        st.backend = None;
                        st.reachable = Some(false);
                        on_event(Event::Unreachable { store: &st.loc, error: &e });
                    }
                    Attempt::Failed(e @ Error::ReplicaGone { .. }) => return Err(e),
                    Attempt::Failed(e) => {
                        st.due = true;
                        st.backend = None;
                        let msg = e.to_string();
                        if st.last_failure.as_deref() != Some(msg.as_str()) {
                            on_event(Event::Failed { store: &st.loc, error: &e });
                            st.last_failure = Some(msg);
                        }
                    }
                }
            }
        }
    }

    /// Starts the inotify watch of the folder; events go to the loop.
    fn watch_folder(&self, root: &Path, quiet: Duration) -> std::result::Result<Debouncer<RecommendedWatcher>, String> {
        let tx = self.tx.clone();
        // Per-path batching only: the loop itself waits for the whole
        // folder to be quiet.
        let batch = (quiet / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
        let mut d = new_debouncer(batch, move |ev: DebounceEventResult| {
            let _ = tx.send(Msg::Changes(ev));
        })
        .map_err(|e| e.to_string())?;
        d.watcher().watch(root, RecursiveMode::Recursive).map_err(|e| format!("{}: {e}", root.display()))?;
        Ok(d)
    }
}

/// Notes a batch of events: anything outside the ignored paths (or an
/// error, such as a dropped event queue) is a local change.
fn note_changes(ev: &DebounceEventResult, ignored: &[PathBuf], changes: &mut Option<(Instant, Instant)>) {
    let relevant = match ev {
        Ok(events) => events.iter().any(|e| !ignored.iter().any(|i| e.path.starts_with(i))),
        Err(_) => true,
    };
    if relevant {
        let now = Instant::now();
        *changes = Some((changes.map_or(now, |(first, _)| first), now));
    }
}

/// Opens the replica with the key; another process holding it is
/// [`Error::ReplicaBusy`], a replica that is gone [`Error::ReplicaGone`].
fn open_replica(root: &Path, master: &MasterKey) -> Result<Replica> {
    match Replica::open_with_key(root, master) {
        Err(Error::NotAReplica { root }) => Err(Error::ReplicaGone { root }),
        Err(Error::Io { path, .. }) if !root.exists() => Err(Error::ReplicaGone { root: path }),
        other => other,
    }
}

/// Lists the store's snapshots (reconnecting first when needed); reports
/// the store going away or coming back. None when it cannot be reached.
fn probe(st: &mut StoreState, on_event: &mut dyn FnMut(Event<'_>)) -> Option<Vec<ObjectName>> {
    let listed = (|| -> Result<Vec<ObjectName>> {
        let backend = match &st.backend {
            Some(b) => b.clone(),
            None => {
                let b = open_backend(&st.loc)?;
                st.backend = Some(b.clone());
                b
            }
        };
        let mut names = Store::peek_snapshots(backend.as_ref())?;
        names.sort();
        Ok(names)
    })();
    match listed {
        Ok(names) => {
            if st.reachable == Some(false) {
                on_event(Event::Reachable { store: &st.loc });
                // What changed meanwhile goes out now.
                st.due = true;
            }
            st.reachable = Some(true);
            Some(names)
        }
        Err(e) => {
            st.backend = None;
            if st.reachable != Some(false) {
                on_event(Event::Unreachable { store: &st.loc, error: &e });
            }
            st.reachable = Some(false);
            None
        }
    }
}

/// One sync with one store: the replica and the store are open for this
/// sync only.
fn attempt(root: &Path, master: &MasterKey, st: &StoreState, opts: &WatchOptions) -> Attempt {
    let replica = match open_replica(root, master) {
        Ok(r) => r,
        Err(Error::ReplicaBusy { .. }) => return Attempt::Busy,
        Err(e) => return Attempt::Failed(e),
    };
    let Some(backend) = st.backend.clone() else { return Attempt::Unreachable(Error::Store(ferry_store::Error::NotFound(st.loc.clone()))) };
    let run = || -> Result<SyncOutcome> {
        let store = Store::open_with_key(backend.clone(), master, opts.cache.clone())?;
        let host = replica.name()?.unwrap_or_else(|| opts.host.clone());
        let rep = sync(&replica, &store, &SyncOptions { dry_run: false, host }, &Progress::default())?;
        replica.record_remote(&st.loc, now_ns())?;
        let pushed = match rep.pushed {
            Some(id) => pushed_changes(&store, &id)?,
            None => 0,
        };
        Ok(outcome(&st.loc, rep, pushed))
    };
    match run() {
        Ok(out) => Attempt::Done(Box::new(out)),
        Err(Error::Store(ferry_store::Error::Locked(_))) => Attempt::Busy,
        // A store error is the store going away unless the store still answers.
        Err(e @ Error::Store(_)) if ferry_store::Store::require(backend.as_ref()).is_err() => Attempt::Unreachable(e),
        Err(e) => Attempt::Failed(e),
    }
}

/// How many changes the pushed snapshot holds against its first parent.
fn pushed_changes(store: &Store, id: &ObjectName) -> Result<usize> {
    let s = Snapshot::load_listed(store, id)?;
    let before = match s.parents.first() {
        Some(p) => crate::load_tree(store, &Snapshot::load_listed(store, p)?.root)?,
        None => Tree::default(),
    };
    Ok(crate::diff::diff(store, &before, &crate::load_tree(store, &s.root)?)?.len())
}

fn outcome(store: &str, rep: SyncReport, pushed: usize) -> SyncOutcome {
    SyncOutcome {
        store: store.to_string(),
        pulled: rep.apply.actions.len(),
        pushed,
        pushed_snapshot: rep.pushed,
        merged: rep.merged,
        conflicts: rep.conflicts,
        left_for_next: rep.apply.conflicts,
        skipped: rep.apply.skipped,
    }
}
