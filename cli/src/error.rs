//! User-facing wording of errors, and the hint for what to do next.

use ferry_store::Error as StoreError;
use ferry_sync::Error as SyncError;

fn store_hint(e: &StoreError) -> Option<&'static str> {
    Some(match e {
        StoreError::Damaged { what, .. } if what.starts_with("key file") => {
            "export the key again with `ferry key export LOC FILE`, or unset FERRY_KEY_FILE to use the passphrase"
        }
        StoreError::Io { op, .. } if op.contains("key file") => {
            "key export never overwrites a file: pick a new file name (or remove the old file yourself)"
        }
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
        StoreError::NotFound(_) => {
            "part of the store vanished while ferry ran (another ferry's gc, or the drive was unplugged): run again, then `ferry check LOC`"
        }
        StoreError::BadLocation { .. } => "give a folder path (a disk, USB drive or mounted share); nothing was created",
        StoreError::Locked(_) => "wait for the other ferry process to finish, then run again",
        _ => return None,
    })
}

fn sync_hint(e: &SyncError) -> Option<&'static str> {
    Some(match e {
        SyncError::Store(s) => return store_hint(s),
        SyncError::StoreOlder { .. } => {
            "this store (or drive) is an older copy: pull from the newer one, or push / sync to bring this store up to date"
        }
        SyncError::Diverged { .. } => {
            "run `ferry sync` with this store to merge both sides (nothing is lost: conflicting files are kept as copies)"
        }
        SyncError::ChangedLocally { .. } => "run the same command again once the file is no longer being edited",
        SyncError::WrongFamily { .. } => "use the key file exported from a store of this replica's family, or unset FERRY_KEY_FILE",
        _ => return None,
    })
}

/// Exit codes (restic's): 0 ok, 1 error, 2 usage error, 3 finished but
/// some files were skipped, 10 no store at LOC, 11 the store lock could
/// not be taken, 12 wrong passphrase or key, 130 interrupted.
pub const EXIT_CODES: &str = "Exit codes: 0 success, 1 error, 2 usage error, 3 finished but some files were skipped (listed), \
10 no store at LOC, 11 store lock not obtainable, 12 wrong passphrase or key file, 130 interrupted.";

/// The exit code for an error.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for c in e.chain() {
        let store = c.downcast_ref::<StoreError>().or_else(|| match c.downcast_ref::<SyncError>() {
            Some(SyncError::Store(s)) => Some(s),
            _ => None,
        });
        match store {
            Some(StoreError::BadLocation { .. }) => return 2,
            Some(StoreError::NotAStore(_)) => return 10,
            Some(StoreError::Locked(_)) => return 11,
            Some(StoreError::WrongPassphrase { .. }) => return 12,
            _ => {}
        }
        if let Some(SyncError::WrongFamily { .. }) = c.downcast_ref::<SyncError>() {
            return 12;
        }
    }
    1
}

/// Prints an error (and a hint) to stderr, or as JSON to stdout.
pub fn report(e: &anyhow::Error, json: bool) {
    let hint = e.chain().find_map(|c| match (c.downcast_ref::<StoreError>(), c.downcast_ref::<SyncError>()) {
        (Some(s), _) => store_hint(s),
        (_, Some(s)) => sync_hint(s),
        _ => None,
    });
    let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>();
    // anyhow chains repeat transparent sources; keep distinct lines only.
    let mut lines: Vec<String> = Vec::new();
    for m in msg {
        if !lines.iter().any(|l| l.contains(&m)) {
            lines.push(m);
        }
    }
    if json {
        println!("{}", serde_json::json!({ "error": lines.join(": "), "hint": hint, "code": exit_code(e) }));
    } else {
        eprintln!("ferry: error: {}", lines.join(": "));
        if let Some(h) = hint {
            eprintln!("hint: {h}");
        }
    }
}
