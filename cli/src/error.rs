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
        StoreError::NotEmpty(_) => {
            "pick a new or empty folder for the store (for example a subfolder: LOC/ferry-store); nothing was written"
        }
        StoreError::Damaged { .. } => "run `ferry check LOC --read-data` to see everything that is damaged and what it affects",
        StoreError::Io { .. } => "check that the store's drive or share is still mounted and writable, then run again",
        StoreError::LastKey => "add another key first with `ferry key add LOC`",
        StoreError::Locked(_) => "wait for the other ferry process to finish, then run again",
        _ => return None,
    })
}

/// Prints an error (and a hint) to stderr, or as JSON to stdout.
pub fn report(e: &anyhow::Error, json: bool) {
    let hint = e
        .chain()
        .find_map(|c| {
            c.downcast_ref::<StoreError>().or_else(|| match c.downcast_ref::<SyncError>() {
                Some(SyncError::Store(s)) => Some(s),
                _ => None,
            })
        })
        .and_then(store_hint);
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
