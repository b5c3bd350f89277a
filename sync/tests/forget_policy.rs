//! Retention policy table tests: which snapshots each rule keeps.

use ferry_store::{BlockId, ObjectName};
use ferry_sync::forget::{Policy, plan};
use ferry_sync::snapshot::Snapshot;

const DAY: i64 = 86_400_000_000_000;
const HOUR: i64 = 3_600_000_000_000;
/// 2026-01-05 00:00 UTC (a Monday).
const T0: i64 = 1_767_571_200_000_000_000;

fn snap(i: u8, time_ns: i64, tags: &[&str], folder: u8, parents: Vec<ObjectName>) -> (ObjectName, Snapshot) {
    let mut s = Snapshot::empty();
    s.time_ns = time_ns;
    s.root = BlockId([i; 32]);
    s.host = "h".into();
    s.source = b"/data".to_vec();
    s.tags = tags.iter().map(|t| t.to_string()).collect();
    s.folder = [folder; 16];
    s.parents = parents;
    (ObjectName([i; 32]), s)
}

fn kept(snaps: &[(ObjectName, Snapshot)], p: &Policy) -> Vec<u8> {
    let mut k: Vec<u8> = plan(snaps, p).unwrap().into_iter().filter(|d| d.keep).map(|d| d.id.0[0]).collect();
    k.sort();
    k
}

/// Two snapshots a day (09:00 and 18:00) for 40 days: ids 1..=80, oldest first.
fn daily_history() -> Vec<(ObjectName, Snapshot)> {
    (0..80u8).map(|i| snap(i + 1, T0 + (i as i64 / 2) * DAY + if i % 2 == 0 { 9 * HOUR } else { 18 * HOUR }, &[], 0, vec![])).collect()
}

#[test]
fn policy_table() {
    let h = daily_history();
    let p = |f: fn(&mut Policy)| {
        let mut p = Policy::default();
        f(&mut p);
        p
    };
    let cases: Vec<(&str, Policy, Vec<u8>)> = vec![
        ("last 3", p(|p| p.last = Some(3)), vec![78, 79, 80]),
        ("daily 3: the newest of each of the last 3 days", p(|p| p.daily = Some(3)), vec![76, 78, 80]),
        ("hourly 2: two different hours", p(|p| p.hourly = Some(2)), vec![79, 80]),
        // Days 0..39 from Monday 2026-01-05: the newest per ISO week.
        ("weekly 2", p(|p| p.weekly = Some(2)), vec![70, 80]),
        ("monthly 2: January and February", p(|p| p.monthly = Some(2)), vec![54, 80]),
        ("yearly 5: only 2026 exists", p(|p| p.yearly = Some(5)), vec![80]),
        (
            "last 1 + daily 2 overlap",
            p(|p| {
                p.last = Some(1);
                p.daily = Some(2);
            }),
            vec![78, 80],
        ),
    ];
    for (name, policy, want) in cases {
        assert_eq!(kept(&h, &policy), want, "{name}");
    }
}

#[test]
fn tags_keep_and_groups_are_separate() {
    let mut h = vec![snap(1, T0, &["release"], 0, vec![]), snap(2, T0 + DAY, &[], 0, vec![]), snap(3, T0 + 2 * DAY, &[], 0, vec![])];
    let mut other = snap(4, T0, &[], 0, vec![]);
    other.1.source = b"/other".to_vec();
    h.push(other);
    let p = Policy { last: Some(1), tags: vec!["release".into()], ..Default::default() };
    // /data keeps its newest and the tagged one; /other keeps its only one.
    assert_eq!(kept(&h, &p), vec![1, 3, 4]);
}

#[test]
fn heads_of_synced_folders_are_never_dropped() {
    // Folder 9: 1 <- 2 <- 3, and 4 (a second head, child of 1).
    let a = ObjectName([1; 32]);
    let b = ObjectName([2; 32]);
    let h = vec![
        snap(1, T0, &[], 9, vec![]),
        snap(2, T0 + DAY, &[], 9, vec![a]),
        snap(3, T0 + 2 * DAY, &[], 9, vec![b]),
        snap(4, T0 + HOUR, &[], 9, vec![a]),
    ];
    let p = Policy { last: Some(1), ..Default::default() };
    assert_eq!(kept(&h, &p), vec![3, 4], "the older head (4) must stay");
}

#[test]
fn an_empty_policy_is_refused() {
    assert!(plan(&daily_history(), &Policy::default()).is_err());
}
