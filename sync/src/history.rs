//! A synced folder's history in one store: its snapshots, their heads,
//! their ancestry (completed by what the replica knows, since a parent
//! may live only in another store), and how a store's state relates to
//! the replica's (format-spec §15).

use std::collections::{BTreeSet, HashMap};

use ferry_store::{BlockId, ObjectName, Store};

use crate::error::Result;
use crate::replica::{Known, Replica};
use crate::snapshot::{self, Snapshot};

/// How a store's snapshot relates to the replica's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// It is one of the replica's parents.
    Same,
    /// The replica's state derives from it: the store is behind.
    Older,
    /// It derives from the replica's state: a pull brings it in.
    Newer,
    /// Made concurrently: only a merge (sync) brings it in.
    Concurrent,
}

/// The snapshots of one synced folder in a store.
pub struct History {
    snaps: Vec<(ObjectName, Snapshot)>,
    by_id: HashMap<ObjectName, usize>,
}

impl History {
    /// Lists the store's snapshots of the replica's folder.
    pub fn load(store: &Store, replica: &Replica) -> Result<History> {
        let snaps: Vec<(ObjectName, Snapshot)> =
            snapshot::list(store)?.into_iter().filter(|(_, s)| s.folder == replica.folder_id).collect();
        Ok(History::from_snapshots(snaps))
    }

    /// A history of the given snapshots.
    pub fn from_snapshots(snaps: Vec<(ObjectName, Snapshot)>) -> History {
        let by_id = snaps.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
        History { snaps, by_id }
    }

    /// Adds a snapshot just written to the store (so a command that
    /// writes one need not list the store again).
    pub fn insert(&mut self, id: ObjectName, snap: Snapshot) {
        if self.by_id.contains_key(&id) {
            return;
        }
        self.by_id.insert(id, self.snaps.len());
        self.snaps.push((id, snap));
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> &[(ObjectName, Snapshot)] {
        &self.snaps
    }

    /// The snapshot `id`, if the store holds it.
    pub fn get(&self, id: &ObjectName) -> Option<&Snapshot> {
        self.by_id.get(id).map(|&i| &self.snaps[i].1)
    }

    /// True when the store holds no snapshot of the folder.
    pub fn is_empty(&self) -> bool {
        self.snaps.is_empty()
    }

    /// Snapshots no other snapshot in the store names as parent, sorted.
    pub fn heads(&self) -> Vec<ObjectName> {
        let parents: BTreeSet<ObjectName> = self.snaps.iter().flat_map(|(_, s)| s.parents.iter().copied()).collect();
        let mut h: Vec<ObjectName> = self.snaps.iter().map(|(i, _)| *i).filter(|i| !parents.contains(i)).collect();
        h.sort();
        h
    }

    fn parents_of(&self, replica: &Replica, id: &ObjectName) -> Result<Vec<ObjectName>> {
        if let Some(s) = self.get(id) {
            return Ok(s.parents.clone());
        }
        Ok(replica.known(id)?.map(|k| k.parents).unwrap_or_default())
    }

    /// `id` and every snapshot it descends from.
    pub fn ancestry(&self, replica: &Replica, id: &ObjectName) -> Result<BTreeSet<ObjectName>> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![*id];
        while let Some(i) = todo.pop() {
            if seen.insert(i) {
                todo.extend(self.parents_of(replica, &i)?);
            }
        }
        Ok(seen)
    }

    /// How snapshot `id` relates to a state deriving from `parents`.
    pub fn relation(&self, replica: &Replica, parents: &[ObjectName], id: &ObjectName) -> Result<Relation> {
        if parents.contains(id) {
            return Ok(Relation::Same);
        }
        if replica.is_known(id)? {
            return Ok(Relation::Older);
        }
        let anc = self.ancestry(replica, id)?;
        Ok(if parents.iter().all(|p| anc.contains(p)) { Relation::Newer } else { Relation::Concurrent })
    }

    /// Records for `id` and its whole ancestry, for [`Replica::commit`].
    pub fn known_records(&self, replica: &Replica, id: &ObjectName) -> Result<Vec<Known>> {
        let mut out = Vec::new();
        for i in self.ancestry(replica, id)? {
            if let Some(s) = self.get(&i) {
                out.push(Known { id: i, parents: s.parents.clone(), time_ns: s.time_ns, root: s.root });
            } else if !replica.is_known(&i)? {
                out.push(Known { id: i, parents: Vec::new(), time_ns: 0, root: BlockId([0; 32]) });
            }
        }
        Ok(out)
    }

    /// The root trees of the heads' best common ancestors: the common
    /// ancestors (through the store's snapshots and the replica's known
    /// ones) that no other common ancestor descends from. There are
    /// several after a criss-cross (two replicas each merged the other's
    /// head); the merge then takes a path's base only where they all
    /// agree (format-spec §16.1), so the result does not depend on which
    /// one is picked, and replicas syncing through two stores converge.
    ///
    /// Each tree is read from this store: the snapshot's root when the
    /// store holds it, else its known root when the store holds that block
    /// (a replica that carried a state over from another store pushed the
    /// same tree here). When one cannot be read here, there is no merge
    /// base (`None`: every difference is then a change, and the result is
    /// the same whoever merges): an older, readable ancestor would make the
    /// result depend on the store the merge happens in.
    pub fn merge_base(&self, store: &Store, replica: &Replica, heads: &[ObjectName]) -> Result<Option<Vec<BlockId>>> {
        let mut common: Option<BTreeSet<ObjectName>> = None;
        for h in heads {
            let a = self.ancestry(replica, h)?;
            common = Some(match common {
                None => a,
                Some(c) => c.intersection(&a).copied().collect(),
            });
        }
        let common = common.unwrap_or_default();
        // Common ancestors are closed under ancestry: the ones some other
        // common ancestor descends from are exactly their parents.
        let mut below = BTreeSet::new();
        for id in &common {
            below.extend(self.parents_of(replica, id)?);
        }
        let best: Vec<&ObjectName> = common.difference(&below).collect();
        tracing::debug!(best = ?best.iter().map(|b| b.short(8)).collect::<Vec<_>>(), "best common ancestors");
        let mut roots = Vec::new();
        for id in best {
            let root = match self.get(id) {
                Some(s) => Some(s.root),
                None => match replica.known(id)? {
                    Some(k) if k.root != BlockId([0; 32]) && store.has_block(&k.root)? => Some(k.root),
                    _ => None,
                },
            };
            match root {
                Some(r) => roots.push(r),
                None => return Ok(None),
            }
        }
        if roots.is_empty() {
            return Ok(None);
        }
        roots.sort();
        roots.dedup();
        Ok(Some(roots))
    }
}
