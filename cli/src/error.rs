//! User-facing wording of errors, and the hint for what to do next.
//!
//! The libraries' messages say what is wrong; the advice (which command to
//! run, which option to give) lives here only, one hint function per
//! error type, matched by variant. Hints use the real values the CLI
//! knows: the store location as the user typed it, the paths the error
//! names.

use ferry_mount::Error as MountError;
use ferry_store::Error as StoreError;
use ferry_store::RemoteFailure;
use ferry_sync::Error as SyncError;

use crate::args::{Cli, Command, KeyCmd, StoreCmd};

/// What the CLI knows about the command that failed, for hints that
/// carry real values.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The store location as typed (shell-quoted when needed), or `LOC`.
    loc: String,
    /// The subcommand's name (`push`, `clone`, ...).
    command: &'static str,
    /// `ferry mount DIR`: the store is the one the replica last synced
    /// with, not a location typed.
    mount_replica: bool,
}

impl Context {
    /// The context of a parsed command line.
    pub fn of(cli: &Cli) -> Context {
        let (command, loc): (&'static str, Option<&str>) = match &cli.command {
            Command::Init { like, .. } => ("init", like.as_deref()),
            Command::Push { loc, .. } => ("push", Some(loc)),
            Command::Pull { loc, .. } => ("pull", Some(loc)),
            Command::Clone { loc, .. } => ("clone", Some(loc)),
            Command::Sync { loc, .. } => ("sync", Some(loc)),
            Command::Conflicts => ("conflicts", None),
            Command::Resolve { stores, .. } => ("resolve", stores.first().map(String::as_str)),
            Command::Versions { stores, .. } => ("versions", stores.first().map(String::as_str)),
            Command::Status { .. } => ("status", None),
            Command::Store(StoreCmd::Init(a)) => ("store init", Some(&a.loc)),
            Command::Key(KeyCmd::List { loc } | KeyCmd::Add { loc, .. } | KeyCmd::Export { loc, .. } | KeyCmd::Remove { loc, .. }) => {
                ("key", Some(loc))
            }
            Command::Backup(a) => ("backup", Some(&a.to)),
            Command::Snapshots { loc, .. } => ("snapshots", Some(loc)),
            Command::Ls { loc, .. } => ("ls", Some(loc)),
            Command::Diff { loc, .. } => ("diff", Some(loc)),
            Command::Restore(a) => ("restore", Some(&a.loc)),
            Command::Check(a) => ("check", Some(&a.loc)),
            Command::Forget(a) => ("forget", Some(&a.loc)),
            Command::Gc { loc, .. } => ("gc", Some(loc)),
            Command::Serve(_) => ("serve", None),
            Command::Completions { .. } => ("completions", None),
            Command::Man { .. } => ("man", None),
            Command::Mount(a) => ("mount", Some(&a.loc)),
            Command::Pin { .. } => ("pin", None),
            Command::Unpin { .. } => ("unpin", None),
            Command::Free { .. } => ("free", None),
            Command::Cache(_) => ("cache", None),
            Command::Watch(a) => ("watch", a.locs.first().map(String::as_str)),
            Command::Center(_) => ("center", None),
            Command::Remote(crate::args::RemoteCmd::Add { loc } | crate::args::RemoteCmd::Remove { loc }) => ("remote", Some(loc)),
            Command::Remote(crate::args::RemoteCmd::List) => ("remote", None),
        };
        let mount_replica = matches!(&cli.command, Command::Mount(a) if a.mountpoint.is_none());
        Context { loc: loc.map(shell_word).unwrap_or_else(|| "LOC".into()), command, mount_replica }
    }
}

/// `s` as one shell word: quoted when it holds anything a shell treats specially.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,%~".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn path_word(p: &std::path::Path) -> String {
    shell_word(&p.to_string_lossy())
}

fn store_hint(e: &StoreError, cx: &Context) -> Option<String> {
    let loc = &cx.loc;
    Some(match e {
        StoreError::Damaged { what, .. } if what.starts_with("key file") => {
            format!("export the key again with `ferry key export {loc} FILE`, or unset FERRY_KEY_FILE to use the passphrase")
        }
        StoreError::Io { op, source, .. } if op.contains("write key file") && source.kind() == std::io::ErrorKind::AlreadyExists => {
            "key export never overwrites a file: pick a new file name (or remove the old file yourself)".into()
        }
        StoreError::Io { op, .. } if op.contains("read key file") => format!(
            "check the path in FERRY_KEY_FILE / --key-file (write one with `ferry key export {loc} FILE`), or unset it to use the passphrase"
        ),
        StoreError::WrongPassphrase { .. } => {
            "check FERRY_PASSWORD / FERRY_PASSWORD_FILE / FERRY_PASSWORD_COMMAND; nothing was written".into()
        }
        StoreError::StorageFull { .. } => {
            "free some space and run the same command again: everything already written is kept and will not be sent twice".into()
        }
        StoreError::NotAStore(_) if loc.starts_with("s3://") => {
            format!("create one with `ferry store init {loc}`, or check the prefix (and AWS_ENDPOINT_URL)")
        }
        // `ferry mount DIR` opens the store the replica last synced with: not the location typed.
        StoreError::NotAStore(p) if cx.mount_replica => format!(
            "this on-demand replica's store is {}: plug in its drive or reach it again, then run `ferry mount` again (it does not start without its store)",
            path_word(p)
        ),
        StoreError::NotAStore(_) => format!("create one with `ferry store init {loc}`, or check the path (is the drive mounted?)"),
        StoreError::AlreadyExists(_) => "use the existing store, or pick an empty folder".into(),
        StoreError::NotEmpty(_) => {
            format!("pick a new or empty folder for the store (for example a subfolder: {}); nothing was written", shell_word(&format!("{}/ferry-store", cx.loc.trim_matches('\''))))
        }
        StoreError::Damaged { .. } if e.is_other_family() => format!(
            "{loc} belongs to another key family than this key: open it with its own passphrase or key file; a replica syncs only with stores made by `ferry store init NEWLOC --like REPLICA`"
        ),
        StoreError::Damaged { .. } => format!("run `ferry check {loc} --read-data` to see everything that is damaged and what it affects"),
        StoreError::LocationIsAFile(_) => {
            "give the store's folder (for a new store, a folder that does not exist yet or is empty); nothing was written".into()
        }
        StoreError::Io { .. } => "check that the store's drive or share is still mounted and writable, then run again".into(),
        StoreError::LastKey => format!("add another key first with `ferry key add {loc}`"),
        StoreError::NotFound(_) => format!(
            "part of the store vanished while ferry ran (another ferry's gc, or the drive was unplugged): run again, then `ferry check {loc}`"
        ),
        StoreError::BadLocation { .. } => {
            "give a folder path (a disk, USB drive or mounted share) ssh://[user@]host[:port]/abs/path or s3://bucket[/prefix]; nothing was created".into()
        }
        StoreError::NoSuchBucket { .. } => {
            "create the bucket first (ferry never creates buckets), or check the bucket name, AWS_ENDPOINT_URL and AWS_REGION".into()
        }
        StoreError::AccessDenied { .. } => {
            "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), and that this key may read and write the bucket".into()
        }
        StoreError::Unreachable { .. } => {
            "check AWS_ENDPOINT_URL and the network, then run the same command again: everything already written is kept and will not be sent twice".into()
        }
        StoreError::NoCredentials { .. } => {
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION, and AWS_ENDPOINT_URL for a service other than AWS)".into()
        }
        StoreError::Locked(_) => "wait for the other ferry process to finish, then run again".into(),
        StoreError::KeyNotFound(_) => format!("`ferry key list {loc}` lists the key IDs"),
        StoreError::AppendOnly { .. } => format!(
            "the server runs `ferry serve --append-only`: run `ferry {}` with a key or login whose server may delete, or on the server host against the store's folder",
            cx.command
        ),
        StoreError::Remote { kind, .. } => match kind {
            RemoteFailure::Start => "set FERRY_SSH_COMMAND to a working ssh command (default: ssh)".into(),
            RemoteFailure::UnknownHost => "check the host name in the ssh:// location (and ~/.ssh/config)".into(),
            RemoteFailure::Connect => "check that the host is up and that sshd listens on that port (ssh://host:PORT/path)".into(),
            RemoteFailure::Auth => {
                "check that `ssh` to this host works without a prompt (ssh-add, or FERRY_SSH_COMMAND=\"ssh -i KEY\")".into()
            }
            RemoteFailure::NoServer => {
                "install ferry on the remote host, or set FERRY_REMOTE_PATH to its full path there".into()
            }
            RemoteFailure::PathRefused => "the server only serves some folders (--restrict-to-path): pick a store path inside them".into(),
            RemoteFailure::Protocol => {
                "the remote ferry may be another version, or a login script prints to stdout; set FERRY_REMOTE_PATH to a matching ferry".into()
            }
            RemoteFailure::Dropped => "run the same command again: everything already written is kept and will not be sent twice".into(),
            _ => return None,
        },
        _ => return None,
    })
}

fn sync_hint(e: &SyncError, cx: &Context) -> Option<String> {
    let loc = &cx.loc;
    Some(match e {
        SyncError::Store(s) => return store_hint(s, cx),
        SyncError::StoreOlder { .. } => format!(
            "this store (or drive) is an older copy: pull from the newer one, or `ferry push {loc}` / `ferry sync {loc}` to bring this store up to date"
        ),
        SyncError::Diverged { .. } => {
            format!("run `ferry sync {loc}` to merge both sides (nothing is lost: conflicting files are kept as copies)")
        }
        SyncError::ChangedLocally { .. } => "run the same command again once the file is no longer being edited".into(),
        SyncError::WrongFamily { .. } => "use the key file exported from a store of this replica's family, or unset FERRY_KEY_FILE".into(),
        SyncError::NoSnapshot(_) => format!("`ferry snapshots {loc}` lists the snapshots"),
        SyncError::AmbiguousSnapshot(_) => format!("give more digits of the snapshot ID (`ferry snapshots {loc}` lists them)"),
        SyncError::NotAFolder { .. } => "give the folder that holds the files to back up".into(),
        SyncError::TargetNotAFolder { path } => {
            format!(
                "give a folder for --target: a new one, or an existing folder (files there that the snapshot also has are replaced), not {}",
                path_word(path)
            )
        }
        SyncError::SourceInStore { .. } => "back up a folder outside the store".into(),
        SyncError::TooDeep { .. } => "leave the deeper folders out (--exclude, or a .ferryignore in a replica), or move them up".into(),
        SyncError::TreeTooDeep { .. } => {
            format!("ferry never writes such a tree: the store is damaged or was not written by ferry; run `ferry check {loc}`")
        }
        SyncError::ChangedWhileReading { .. } => "run again once the file is no longer being written".into(),
        SyncError::Unreadable { path } => format!("check that {} can be read, then run again", path_word(path)),
        SyncError::FolderUnreadable { path } => {
            format!("run as a user who may read {p} (or `chmod u+rx {p}`), or leave it out with --exclude", p = path_word(path))
        }
        SyncError::InTheWay { path, .. } => format!("move {} aside, then run again", path_word(path)),
        SyncError::WrongEntryKind { .. } => "this is a bug in ferry: please report it".into(),
        SyncError::NoPolicy => "give at least one --keep-* option (for example --keep-last 10)".into(),
        SyncError::PolicyKeepsNothing => "give a --keep-* count of at least 1 (for example --keep-last 1), or --keep-tag".into(),
        SyncError::AlreadyAReplica { root } => {
            format!("it is set up already: work in {} (`ferry status`, `ferry sync LOC`)", path_word(root))
        }
        SyncError::NestedReplica { replica, .. } => {
            let r = path_word(replica);
            format!("use a folder outside {r}, or work in {r} itself")
        }
        SyncError::NotAReplica { root } => format!(
            "run inside a replica (or give one with -C DIR), or make {} one with `ferry init` or `ferry clone LOC DIR`",
            path_word(root)
        ),
        SyncError::OnDemandNotMounted { root } => format!(
            "run `ferry mount {}` first (it keeps running; see ARCHITECTURE.md for a systemd user unit), then run this again inside it",
            path_word(root)
        ),
        SyncError::DeadMount { root } => format!(
            "run `ferry mount {r}` again (it clears the dead mount first), or `fusermount3 -u {r}` to leave it unmounted",
            r = path_word(root)
        ),
        SyncError::PlaceholderNotInStore { .. } => {
            "push to the store this replica was cloned from, which holds those blocks (an on-demand replica sends only what it fetched or wrote)".into()
        }
        SyncError::ReplicaBusy { .. } => "wait for the other ferry process to finish, then run again".into(),
        SyncError::CloneIntoReplica { .. } => "clone into a new folder".into(),
        SyncError::NoRemotes { .. } if cx.command == "watch" => {
            "give the stores (`ferry watch LOC...`), or sync once (`ferry sync LOC`) or `ferry remote add LOC`".into()
        }
        SyncError::NoRemotes { .. } => {
            format!(
                "give a store with --store LOC, or sync once (`ferry sync LOC`) or `ferry remote add LOC`; `ferry {}` needs one",
                cx.command
            )
        }
        SyncError::OutsideReplica { root, .. } => format!("give a path inside {}", path_word(root)),
        SyncError::NoConflict { .. } => "`ferry conflicts` lists the files that have conflict copies".into(),
        SyncError::SeveralCopies { copies, .. } => {
            format!("name the copy to keep: --keep {}", copies.first().map(|c| c.display().to_string()).unwrap_or_else(|| "COPY".into()))
        }
        SyncError::ConflictChanged { path } => {
            format!("look at its versions again (`ferry conflicts`), then run resolve again for {}", path_word(path))
        }
        SyncError::NotACopy { .. } => "`ferry conflicts` lists each file's copies".into(),
        SyncError::NotInHistory { path } => format!(
            "keep it by moving {} out of the folder first, or let it be synced (check .ferryignore), then run again",
            path_word(path)
        ),
        SyncError::NoSuchVersion { path, .. } | SyncError::AmbiguousVersion { path, .. } => {
            format!("`ferry versions {}` lists its versions and their ids", path.display())
        }
        SyncError::OtherFamily { root } | SyncError::OtherChunker { root } => {
            format!("use a store of this replica's family, or create one with `ferry store init NEWLOC --like {}`", path_word(root))
        }
        SyncError::UnmergedConflicts { .. } => format!(
            "run `ferry sync {loc}` to merge them, or `ferry push {loc} --force` to publish this replica's version (the other stays in history)"
        ),
        SyncError::PartialPull { .. } => {
            "make room for the paths it skipped (it named them), then run `ferry sync LOC` (or `ferry pull LOC`): it finishes writing them, and your own changes are pushed after".into()
        }
        SyncError::UnseenRemoteChanges { .. } => format!(
            "run `ferry pull {loc}` (or `ferry sync {loc}`) first, or `ferry push {loc} --force` to leave two heads for `ferry sync`"
        ),
        SyncError::NoSyncedFolder => format!("push a folder into it first: `ferry push {loc}` inside a replica"),
        SyncError::NoSuchFolder { .. } => {
            format!("give the first digits of a folder ID, or the folder's source path (`ferry snapshots {loc}` lists them)")
        }
        SyncError::AmbiguousFolder { choices } => {
            let id = choices.first().map(|c| c.id.as_str()).unwrap_or("ID");
            if cx.command == "clone" {
                format!("pick one with --folder: `ferry clone {loc} DIR --folder {id}`")
            } else {
                format!("pick one with --folder (for example --folder {id})")
            }
        }
        SyncError::GcRefused { .. } => {
            format!("run `ferry check {loc}` and repair what it reports; gc deletes nothing until check is clean")
        }
        _ => return None,
    })
}

/// Exit codes (restic's): 0 ok, 1 error, 2 usage error, 3 finished but
/// some files were skipped, 10 no store at LOC, 11 the store lock could
/// not be taken, 12 wrong passphrase or key, 130 interrupted.
pub const EXIT_CODES: &str = "Exit codes: 0 success, 1 error, 2 usage error, 3 finished but some files were skipped or left in conflict (listed; pull and sync alike), \
10 no store at LOC, 11 store lock not obtainable or replica in use, 12 wrong passphrase or key file, 130 interrupted.";

/// The exit code for an error.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for c in e.chain() {
        let store = c
            .downcast_ref::<StoreError>()
            .or_else(|| match c.downcast_ref::<SyncError>() {
                Some(SyncError::Store(s)) => Some(s),
                _ => None,
            })
            .or_else(|| match c.downcast_ref::<MountError>() {
                Some(MountError::Store(s)) => Some(s),
                _ => None,
            });
        match store {
            Some(StoreError::BadLocation { .. }) => return 2,
            Some(StoreError::NotAStore(_) | StoreError::LocationIsAFile(_) | StoreError::NoSuchBucket { .. }) => return 10,
            Some(StoreError::Locked(_)) => return 11,
            Some(StoreError::WrongPassphrase { .. }) => return 12,
            _ => {}
        }
        if let Some(ferry_center::Error::BadListen { .. } | ferry_center::Error::NotLoopback { .. }) =
            c.downcast_ref::<ferry_center::Error>()
        {
            return 2;
        }
        match c.downcast_ref::<SyncError>() {
            // Options that cannot work together are usage errors, as clap's.
            Some(SyncError::NoPolicy | SyncError::PolicyKeepsNothing) => return 2,
            Some(SyncError::ReplicaBusy { .. }) => return 11,
            Some(SyncError::WrongFamily { .. }) => return 12,
            _ => {}
        }
    }
    1
}

fn mount_hint(e: &MountError) -> Option<String> {
    match e {
        MountError::NotInMount { .. } => {
            Some("pin and unpin work on paths inside a running `ferry mount LOC MOUNTPOINT` or a mounted on-demand replica (`ferry mount DIR`); free on the latter only".into())
        }
        MountError::NotOnDemand { .. } => {
            Some("`ferry mount DIR` serves on-demand replicas; a store is mounted with `ferry mount LOC MOUNTPOINT`".into())
        }
        MountError::AlreadyMounted { path } => Some(format!("work in {} (`fusermount3 -u {0}` unmounts it)", path_word(path))),
        MountError::MountGone { .. } => Some("the `ferry mount` process serving it has ended; start it again".into()),
        MountError::Mount { .. } => {
            Some("FUSE needs /dev/fuse and Debian's fuse3 (fusermount3); the mount point must be an existing empty folder".into())
        }
        _ => None,
    }
}

fn center_hint(e: &ferry_center::Error) -> Option<String> {
    match e {
        ferry_center::Error::NotLoopback { addr } => Some(format!(
            "other machines must not reach the page: use `--listen 127.0.0.1:{}` (an ssh tunnel reaches it from elsewhere: ssh -L {0}:127.0.0.1:{0} HOST)",
            addr.port()
        )),
        ferry_center::Error::BadListen { .. } => {
            Some("give an address and port: `--listen 127.0.0.1:8385` (port 0 picks a free one)".into())
        }
        ferry_center::Error::Bind { addr, .. } => {
            Some(format!("another program may use port {}: pick another, or `--listen 127.0.0.1:0` for a free one", addr.port()))
        }
        _ => None,
    }
}

/// Prints an error (and a hint) to stderr, or as JSON to stdout.
pub fn report(e: &anyhow::Error, json: bool, cx: &Context) {
    let hint = e.chain().find_map(|c| match (c.downcast_ref::<StoreError>(), c.downcast_ref::<SyncError>()) {
        (Some(s), _) => store_hint(s, cx),
        (_, Some(s)) => sync_hint(s, cx),
        _ => match c.downcast_ref::<MountError>() {
            Some(MountError::Store(s)) => store_hint(s, cx),
            Some(m) => mount_hint(m),
            None => c.downcast_ref::<ferry_center::Error>().and_then(center_hint),
        },
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
