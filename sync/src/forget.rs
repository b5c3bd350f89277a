//! `forget`: drop snapshots by a retention policy.
//!
//! Snapshots are grouped per backed-up source (host and path) or, for
//! synced folders, per folder; the policy applies to each group, newest
//! first, as restic's does. A head of a synced folder (no other snapshot
//! of the folder names it as a parent) is always kept: dropping it would
//! lose a replica's unmerged work. Only snapshot objects are deleted;
//! `gc` then frees the blocks no snapshot uses.

use std::collections::{BTreeMap, HashSet};

use ferry_store::{ObjectName, Store};

use crate::error::{Error, Result};
use crate::snapshot::{self, Snapshot};

/// How many snapshots to keep of each kind; `None` means the rule is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The newest N.
    pub last: Option<u32>,
    /// The newest in each of the last N hours that have snapshots.
    pub hourly: Option<u32>,
    /// ... days.
    pub daily: Option<u32>,
    /// ... ISO weeks.
    pub weekly: Option<u32>,
    /// ... months.
    pub monthly: Option<u32>,
    /// ... years.
    pub yearly: Option<u32>,
    /// Every snapshot with one of these tags.
    pub tags: Vec<String>,
}

impl Policy {
    /// True when no rule is set (which would drop everything).
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
            && self.hourly.is_none()
            && self.daily.is_none()
            && self.weekly.is_none()
            && self.monthly.is_none()
            && self.yearly.is_none()
            && self.tags.is_empty()
    }

    /// True when no rule can keep anything: every count absent or zero and
    /// no tag (`--keep-last 0` alone would drop every snapshot).
    pub fn keeps_nothing(&self) -> bool {
        [self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly].iter().all(|n| n.unwrap_or(0) == 0)
            && self.tags.is_empty()
    }
}

/// One snapshot's fate (serializes as an entry of `forget --json`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: ObjectName,
    /// Its group (`host:path`, or `folder <id>`).
    pub group: String,
    /// Kept?
    pub keep: bool,
    /// Why it is kept ("last", "daily", "tag x", "head"), empty when dropped.
    pub reasons: Vec<String>,
}

fn group_of(s: &Snapshot) -> String {
    if s.folder != [0; 16] { format!("folder {}", hex::encode(&s.folder[..4])) } else { format!("{}:{}", s.host, s.source_str()) }
}

fn bucket(ns: i64, fmt: &str) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128).map(|t| t.strftime(fmt).to_string()).unwrap_or_default()
}

/// Decides, for every snapshot, whether the policy keeps it.
pub fn plan(snaps: &[(ObjectName, Snapshot)], policy: &Policy) -> Result<Vec<Decision>> {
    let referenced: HashSet<ObjectName> = snaps.iter().flat_map(|(_, s)| s.parents.iter().copied()).collect();
    plan_among(snaps, policy, &referenced)
}

/// [`plan`], with the parents named by any snapshot of the store.
fn plan_among(snaps: &[(ObjectName, Snapshot)], policy: &Policy, referenced: &HashSet<ObjectName>) -> Result<Vec<Decision>> {
    if policy.is_empty() {
        return Err(Error::NoPolicy);
    }
    if policy.keeps_nothing() {
        return Err(Error::PolicyKeepsNothing);
    }
    let mut groups: BTreeMap<String, Vec<&(ObjectName, Snapshot)>> = BTreeMap::new();
    for sn in snaps {
        groups.entry(group_of(&sn.1)).or_default().push(sn);
    }
    let mut out = Vec::new();
    for (group, mut list) in groups {
        list.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(b.0.cmp(&a.0)));
        let rules: [(&str, Option<u32>, &str); 5] = [
            ("hourly", policy.hourly, "%Y-%m-%d %H"),
            ("daily", policy.daily, "%Y-%m-%d"),
            ("weekly", policy.weekly, "%G-%V"),
            ("monthly", policy.monthly, "%Y-%m"),
            ("yearly", policy.yearly, "%Y"),
        ];
        let mut reasons: Vec<Vec<String>> = vec![Vec::new(); list.len()];
        if let Some(n) = policy.last {
            for r in reasons.iter_mut().take(n as usize) {
                r.push("last".into());
            }
        }
        for (name, n, fmt) in rules {
            let Some(n) = n else { continue };
            let mut seen = HashSet::new();
            for (i, (_, s)) in list.iter().map(|x| (x.0, &x.1)).enumerate() {
                if seen.len() >= n as usize {
                    break;
                }
                if seen.insert(bucket(s.time_ns, fmt)) {
                    reasons[i].push(name.into());
                }
            }
        }
        for (i, (id, s)) in list.iter().map(|x| (x.0, &x.1)).enumerate() {
            for t in &policy.tags {
                if s.tags.contains(t) {
                    reasons[i].push(format!("tag {t}"));
                }
            }
            if s.folder != [0; 16] && !referenced.contains(&id) {
                reasons[i].push("head".into());
            }
        }
        for (i, (id, _)) in list.iter().map(|x| (x.0, &x.1)).enumerate() {
            let r = std::mem::take(&mut reasons[i]);
            out.push(Decision { id, group: group.clone(), keep: !r.is_empty(), reasons: r });
        }
    }
    Ok(out)
}

/// Applies the policy to the snapshots that pass `filter` (the others are
/// neither listed nor touched); returns every decision.
pub fn forget(store: &Store, policy: &Policy, filter: &snapshot::Filter, dry_run: bool) -> Result<Vec<Decision>> {
    let all = snapshot::list(store)?;
    // Heads are found among all snapshots: a snapshot the filter hides
    // may be the one that names another as its parent.
    let referenced: HashSet<ObjectName> = all.iter().flat_map(|(_, s)| s.parents.iter().copied()).collect();
    let snaps: Vec<_> = all.into_iter().filter(|(_, s)| filter.matches(s)).collect();
    let decisions = plan_among(&snaps, policy, &referenced)?;
    if !dry_run && decisions.iter().any(|d| !d.keep) {
        store.refuse_if_append_only("forget")?;
        for d in decisions.iter().filter(|d| !d.keep) {
            store.delete_snapshot(&d.id)?;
        }
    }
    Ok(decisions)
}
