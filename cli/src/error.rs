//! User-facing wording of errors, and the hint for what to do next.

use ferry_store::Error as StoreError;
use ferry_sync::Error as SyncError;

fn store_hint(e: &StoreError) -> Option<&'static str> {
    Some(match e {
        StoreError::WrongPassphrase { .. } => "check FERRY_PASSWORD / FERRY_PASSWORD_FILE / FERRY_PASSWORD_COMMAND; nothing was written",
        StoreError::StorageFull { .. } => {
            "free some space and run the same command again: everything already written is kept and will not be sent twice"
        }
        StoreError::NotAStore(_) => "create one with `ferry store init LOC`, or check the path (is the drive mounted?)",
        StoreError::AlreadyExists(_) => "use the existing store, or pick an empty folder",
        StoreError::Damaged { .. } => "run `ferry check LOC --read-data` to see everything that is damaged and what it affects",
        StoreError::Io { .. } => "check that the store's drive or share is still mounted and writable, then run again",
        StoreError::LastKey => "add another key first with `ferry key add LOC`",
        StoreError::NotFound(_) => {
            "part of the store vanished while ferry ran (another ferry's gc, or the drive was unplugged): run again, then `ferry check LOC`"
        }
        StoreError::BadLocation { .. } => "give a folder path (a disk, USB drive or mounted share); nothing was created",
        StoreError::Locked(_) => "wait for the other ferry process to finish, then run again",
        _ => return None,
    })
}

fn store_error(e: &anyhow::Error) -> Option<&StoreError> {
    e.chain().find_map(|c| {
        c.downcast_ref::<StoreError>().or_else(|| match c.downcast_ref::<SyncError>() {
            Some(SyncError::Store(s)) => Some(s),
            _ => None,
        })
    })
}

/// The exit code for an error: 2 (usage) for a store location that cannot
/// be used, else 1.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    match store_error(e) {
        Some(StoreError::BadLocation { .. }) => 2,
        _ => 1,
    }
}

/// Prints an error (and a hint) to stderr, or as JSON to stdout.
pub fn report(e: &anyhow::Error, json: bool) {
    let hint = store_error(e).and_then(store_hint);
    let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>();
    // anyhow chains repeat transparent sources; keep distinct lines only.
    let mut lines: Vec<String> = Vec::new();
    for m in msg {
        if !lines.iter().any(|l| l.contains(&m)) {
            lines.push(m);
        }
    }
    if json {
        println!("{}", serde_json::json!({ "error": lines.join(": "), "hint": hint }));
    } else {
        eprintln!("ferry: error: {}", lines.join(": "));
        if let Some(h) = hint {
            eprintln!("hint: {h}");
        }
    }
}
