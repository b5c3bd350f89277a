//! `push`: snapshot the replica's folder into a store, sending only the
//! blocks the store lacks, with the last synced snapshot as parent.

use ferry_store::{ObjectName, Store};

use crate::backup::{BackupOptions, BackupReport, backup};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::progress::Progress;
use crate::replica::{Base, Replica};
use crate::scan::replica_filter;
use crate::snapshot::{self, Snapshot};
use crate::{load_tree, ls};

/// Push settings.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Show what would be sent; write nothing.
    pub dry_run: bool,
    /// Push even when the store holds changes this replica has not seen.
    pub force: bool,
    /// Host name recorded.
    pub host: String,
    /// Count the folder first so a progress bar has totals.
    pub estimate: bool,
}

/// Checks the store belongs to the replica's family and chunker.
pub fn check_compatible(replica: &Replica, store: &Store) -> Result<()> {
    if store.keys().family_id() != replica.keys().family_id() {
        return Err(Error::Invalid("the store belongs to another key family: create it with `ferry store init LOC --like .`".into()));
    }
    if store.config().chunker != replica.chunker {
        return Err(Error::Invalid("the store uses other chunker parameters than this replica's family".into()));
    }
    Ok(())
}

/// Snapshots of this folder in the store, oldest first.
pub fn folder_snapshots(store: &Store, replica: &Replica) -> Result<Vec<(ObjectName, Snapshot)>> {
    Ok(snapshot::list(store)?.into_iter().filter(|(_, s)| s.folder == replica.folder_id).collect())
}

/// Every path of a snapshot's tree with its entry (folders included).
pub fn flatten(store: &Store, root: &ferry_store::BlockId) -> Result<Base> {
    let mut out = Base::new();
    let tree = load_tree(store, root)?;
    ls::walk(store, &tree, "", &mut |p, e| {
        out.insert(p.to_path_buf(), e.clone());
    })?;
    Ok(out)
}

/// Pushes the folder. Refuses (unless forced) when the store holds a
/// snapshot of this folder the replica has not seen: pull first.
pub fn push(replica: &Replica, store: &Store, opts: &PushOptions, progress: &Progress) -> Result<BackupReport> {
    check_compatible(replica, store)?;
    let theirs: Vec<(ObjectName, Snapshot)> = folder_snapshots(store, replica)?;
    let conflicts = replica.conflicts()?;
    if !opts.force && !conflicts.is_empty() {
        return Err(Error::Invalid(format!(
            "{} path(s) changed both here and in the store since the last sync ({}{}): run `ferry sync` to merge them, or push with --force to publish this replica's version (the other stays in history)",
            conflicts.len(),
            conflicts[0].display(),
            if conflicts.len() > 1 { ", ..." } else { "" }
        )));
    }
    if !opts.force {
        for (id, s) in &theirs {
            if !replica.has_seen(id)? {
                return Err(Error::Invalid(format!(
                    "the store has changes this replica has not seen (snapshot {} from {} at {}): run `ferry pull` first, or push with --force to leave two heads for `ferry sync`",
                    id.short(8),
                    s.host,
                    s.time_ns / 1_000_000_000
                )));
            }
        }
    }
    let parents = replica.base_snapshot()?.into_iter().collect();
    let bopts = BackupOptions {
        filter: replica_filter(),
        host: opts.host.clone(),
        dry_run: opts.dry_run,
        cache_file: Some(replica.file_cache()),
        replica: replica.replica_id,
        folder: replica.folder_id,
        parents: Some(parents),
        estimate: opts.estimate,
        skip_if_unchanged: true,
        ..Default::default()
    };
    // Validate the filter once here so a bad .ferryignore fails before any work.
    Filter::new(&bopts.filter)?;
    let report = backup(store, replica.root(), &bopts, progress)?;
    if let Some(id) = report.snapshot {
        let snap = Snapshot::load(store, &id)?;
        let base = flatten(store, &snap.root)?;
        // Only the new snapshot becomes "seen": a forced push leaves the
        // other heads unseen, so the next push still asks for a pull.
        replica.set_base(id, &base, store.config().store_id, &[], &[])?;
    }
    Ok(report)
}

/// Picks the synced folder held in a store: the only one, or the one
/// whose folder id starts with `choice` or whose source path equals it.
pub fn choose_folder(store: &Store, choice: Option<&str>) -> Result<[u8; 16]> {
    let mut folders: Vec<([u8; 16], Snapshot)> = Vec::new();
    for (_, s) in snapshot::list(store)?.into_iter().rev() {
        if s.folder != [0; 16] && !folders.iter().any(|(f, _)| *f == s.folder) {
            folders.push((s.folder, s));
        }
    }
    let picked: Vec<&([u8; 16], Snapshot)> = folders
        .iter()
        .filter(|(f, s)| choice.is_none_or(|c| hex::encode(f).starts_with(&c.to_ascii_lowercase()) || s.source_str() == c))
        .collect();
    match picked.as_slice() {
        [(f, _)] => Ok(*f),
        [] if folders.is_empty() => Err(Error::Invalid("the store holds no synced folder yet: push one from a replica first".into())),
        [] => Err(Error::Invalid(format!("no synced folder matches {:?}", choice.unwrap_or_default()))),
        many => Err(Error::Invalid(format!(
            "the store holds {} synced folders; pick one with --folder:\n{}",
            many.len(),
            many.iter()
                .map(|(f, s)| format!("  {}  {} on {}", hex::encode(&f[..4]), s.source_str(), s.host))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
    }
}
