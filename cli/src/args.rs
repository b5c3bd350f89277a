//! Command-line arguments (the CLI contract of the brief).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ferry keeps folders in step across machines, drives and backup targets:
/// encrypted, deduplicated, content-defined blocks in a store.
#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    propagate_version = true,
    before_help = BEFORE_HELP,
    after_help = crate::error::EXIT_CODES,
    help_template = "{about-with-newline}\n{before-help}\n{usage-heading} {usage}\n\n{all-args}{after-help}"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// What `ferry --help` says before the commands: where passphrases and
/// stores come from, and where to read on.
pub const BEFORE_HELP: &str = "\
A store (LOC) is a folder (a disk, USB drive or share), ssh://[user@]host[:port]/abs/path or s3://bucket[/prefix].
A replica is a folder kept in step with stores by push, pull and sync; backup and restore need no replica.

Passphrases never go on the command line. ferry reads, in this order:
  FERRY_KEY_FILE / --key-file   an exported key (`ferry key export`): no passphrase, no key derivation
  FERRY_PASSWORD                the passphrase itself
  FERRY_PASSWORD_FILE           a file holding it
  FERRY_PASSWORD_COMMAND        a command that prints it
  otherwise a prompt on the terminal that names the store or replica it unlocks.
New passphrases (store init, key add) come from FERRY_NEW_PASSWORD[_FILE|_COMMAND], else the current one, else a prompt.
FERRY_STORE is the default LOC; FERRY_SSH_COMMAND and FERRY_REMOTE_PATH set up ssh://; AWS_* set up s3://.

Read on: `ferry COMMAND --help`, `ferry man`, and format-spec/SPEC.md for the store format.";

#[derive(Args, Debug)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail (every file written or read).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// Folder for local caches (index, file cache).
    #[arg(long, global = true, env = "FERRY_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, global = true, env = "FERRY_THREADS")]
    pub threads: Option<usize>,
    /// Open stores and replicas with an exported key (`ferry key export`):
    /// no passphrase, no key derivation. The file is as secret as a
    /// passphrase kept in a file.
    #[arg(long, global = true, env = "FERRY_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Make DIR (default .) a replica with a new key family.
    Init {
        /// Folder to make a replica.
        dir: Option<PathBuf>,
        /// Average chunk size in KiB for the new family (a power of two, 1 to 4096).
        #[arg(long, value_name = "KIB", conflicts_with = "like", value_parser = parse_chunk_avg_kib)]
        chunk_avg_kib: Option<u32>,
        /// Join the key family of this store instead (a new folder in it).
        #[arg(long, value_name = "LOC")]
        like: Option<String>,
        #[command(flatten)]
        name: NameArg,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// (In a replica) snapshot the folder and send what LOC lacks.
    Push {
        /// Store location (default: $FERRY_STORE).
        #[arg(env = "FERRY_STORE")]
        loc: String,
        /// Show what would be sent; write nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Push even when LOC has changes this replica has not seen.
        #[arg(long)]
        force: bool,
    },
    /// (In a replica) bring in LOC's newer state.
    Pull {
        /// Store location (default: $FERRY_STORE).
        #[arg(env = "FERRY_STORE")]
        loc: String,
        /// Show the plan; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Make DIR a new replica of the folder held in LOC.
    Clone {
        /// Store location.
        loc: String,
        /// New replica folder.
        dir: PathBuf,
        /// Which folder, when LOC holds several (ID prefix, or source path).
        #[arg(long)]
        folder: Option<String>,
        /// Make DIR an on-demand replica: every file a placeholder (no
        /// content downloaded) until opened through `ferry mount DIR`.
        #[arg(long)]
        on_demand: bool,
        #[command(flatten)]
        name: NameArg,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// (In a replica) pull + merge + push: converge with LOC.
    Sync {
        /// Store location (default: $FERRY_STORE).
        #[arg(env = "FERRY_STORE")]
        loc: String,
        /// Show the merge plan with every conflict; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// (In a replica) sync continuously: when the folder settles after a
    /// change, every interval, and when a store comes back.
    ///
    /// Runs until Ctrl-C or SIGTERM (exit 0; a second one ends it at once).
    /// The replica is locked only during each sync, so `status` and a manual
    /// `sync` work beside it. A store that cannot be reached is reported
    /// once and tried again every interval; the others go on meanwhile.
    /// Prints one line per sync that moved something (`--json`: one event
    /// per line).
    Watch(WatchArgs),
    /// The Sync Center: a local web page showing every replica on this
    /// machine (stores, last syncs, local changes, conflicts, running
    /// watches) with buttons to resolve conflicts and restore versions.
    ///
    /// Prints the page's URL, which carries a random access token; the
    /// page refuses requests without it. It listens on loopback only.
    /// Replicas appear once `init`, `clone` or a sync registered them.
    /// Actions need the replicas' key: FERRY_PASSWORD* or a key file (no
    /// prompt); without one the page shows state only. Runs until Ctrl-C
    /// or SIGTERM (exit 0).
    Center(CenterArgs),
    /// (In a replica) the stores it syncs with: recorded by every push,
    /// pull, sync and clone, and kept in step by `watch` without LOC.
    #[command(subcommand)]
    Remote(RemoteCmd),
    /// (In a replica) list each conflicted file with its versions: the one
    /// at the path and each conflict copy, with the replica, time and size.
    Conflicts,
    /// (In a replica) settle a conflict: which version stays at PATH.
    ///
    /// Syncs with the stores first, so every version is in a snapshot,
    /// then changes the folder, then syncs again, so the choice is a
    /// snapshot the other replicas follow. The losing versions stay in
    /// the history (`ferry versions PATH`).
    Resolve {
        /// The conflicted file, or one of its conflict copies (with
        /// `--keep theirs`: that copy is the one kept).
        path: PathBuf,
        /// mine: the file at PATH stays, its copies go. theirs: the one
        /// copy replaces it. both: the copies get plain names. COPY: that
        /// copy replaces it, the others go.
        #[arg(long, value_name = "mine|theirs|both|COPY")]
        keep: String,
        /// Store to sync the choice with (repeatable; default: every store
        /// this replica syncs with, see `remote list`).
        #[arg(long = "store", value_name = "LOC")]
        stores: Vec<String>,
    },
    /// (In a replica) a path's versions across a store's history, the
    /// conflict copies of it included.
    ///
    /// With --restore ID, brings that version back at PATH: the version
    /// there now is synced first (it stays in the history), and the
    /// change is synced to the stores.
    Versions {
        /// A path in the replica.
        path: PathBuf,
        /// Bring this version (its id, or a unique prefix) back at PATH.
        #[arg(long, value_name = "ID")]
        restore: Option<String>,
        /// Store whose history to read, then to sync with (repeatable;
        /// default: every store this replica syncs with; the history
        /// comes from the first).
        #[arg(long = "store", value_name = "LOC")]
        stores: Vec<String>,
    },
    /// (In a replica) local changes since the last sync.
    ///
    /// Answers from stat and the file cache without the replica's key when
    /// it can; it asks for the key only to hash a file that kept its size
    /// and mtime while its ctime or inode moved, or a new file as large as
    /// a deleted one (a possible rename), and says which.
    ///
    /// In a mounted on-demand replica it also counts files per state
    /// (placeholder, partial, hydrated, pinned, modified, conflict, local);
    /// `--json` lists every file that is not a plain placeholder.
    Status {
        /// On-demand replica: also list each file that is not a plain
        /// placeholder with its state.
        #[arg(long)]
        states: bool,
    },
    /// Create or inspect stores.
    #[command(subcommand)]
    Store(StoreCmd),
    /// Manage a store's key files (passphrases).
    #[command(subcommand)]
    Key(KeyCmd),
    /// Snapshot DIR into a store.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots {
        /// Store location (default: $FERRY_STORE).
        #[arg(env = "FERRY_STORE")]
        loc: String,
        #[command(flatten)]
        only: SnapshotFilter,
    },
    /// List a snapshot's tree.
    Ls {
        /// Store location.
        loc: String,
        /// Snapshot: ID, unique prefix, or `latest`.
        snap: String,
        /// Path inside the snapshot.
        path: Option<String>,
        #[command(flatten)]
        only: SnapshotFilter,
    },
    /// What changed between two snapshots.
    Diff {
        /// Store location.
        loc: String,
        /// First snapshot.
        snap_a: String,
        /// Second snapshot.
        snap_b: String,
    },
    /// Write a snapshot (or part of it) out.
    Restore(RestoreArgs),
    /// Verify the store's structure and, optionally, its data.
    Check(CheckArgs),
    /// Drop snapshots by policy (per source, or per synced folder).
    Forget(ForgetArgs),
    /// Delete what no snapshot needs.
    Gc {
        /// Store location (default: $FERRY_STORE).
        #[arg(env = "FERRY_STORE")]
        loc: String,
        /// Show what would be freed; delete nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command to DIR.
    Man {
        /// Write ferry.1 and ferry-COMMAND.1 files into DIR instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Serve a store over stdin/stdout: the far end of ssh:// locations
    /// (the store path comes from the client, so this works as an
    /// authorized_keys forced command).
    Serve(ServeArgs),
    /// Show every snapshot of LOC under MOUNTPOINT (read-only, FUSE):
    /// MOUNTPOINT/latest/ and `MOUNTPOINT/snapshots/<time>-<id>/`. Blocks are
    /// fetched when read, through a local block cache. Runs until Ctrl-C,
    /// SIGTERM or `fusermount3 -u MOUNTPOINT`. `ferry mount DIR` serves the
    /// on-demand replica DIR over itself (read-write; placeholders are
    /// fetched when opened).
    Mount(MountArgs),
    /// Keep files and folders inside a mount available offline, whatever the
    /// cache quota: fetches every block of PATH now. In a mounted on-demand
    /// replica the files are hydrated (written to disk) and stay so; files
    /// that arrive later in a pinned folder are fetched too.
    Pin {
        /// Paths inside a running `ferry mount` (a snapshot mount or a mounted on-demand replica).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Release pins made with `ferry pin` (PATH or anything pinned below it).
    /// Files stay on disk until freed or taken back by the quota.
    Unpin {
        /// Paths inside a running `ferry mount` (a snapshot mount or a mounted on-demand replica).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Give back the disk space of files in a mounted on-demand replica:
    /// hydrated, unchanged files (or all such files under a folder) become
    /// placeholders again, fetched again when opened. Pins at or under PATH
    /// are removed first. A file changed or made here is freed only once
    /// pushed (its content is the last synced version); a file open through
    /// the mount is not freed.
    Free {
        /// Files or folders inside a mounted on-demand replica (`ferry mount DIR`).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The local block cache.
    #[command(subcommand)]
    Cache(CacheCmd),
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Stores to keep in step (default: those this replica has synced with; see `ferry remote list`).
    #[arg(value_name = "LOC")]
    pub locs: Vec<String>,
    /// How often to look for new snapshots in the stores, and to try unreachable ones again (500ms, 1s, 30s, 5m).
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// How long the folder must stay unchanged after a change before it is synced.
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    pub quiet_period: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct CenterArgs {
    /// Address to listen on: a loopback IP and port (port 0 picks a free one).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    pub listen: String,
}

#[derive(Subcommand, Debug)]
pub enum RemoteCmd {
    /// List the stores, with the time of the last sync with each.
    List,
    /// Add a store (a local path is recorded absolute).
    Add {
        /// Store location.
        loc: String,
    },
    /// Forget a store (the store itself is not touched).
    Remove {
        /// Store location, as `remote list` shows it (or as given to `add`).
        loc: String,
    },
}

/// A duration: `500ms`, `1s`, `30s`, `5m`, `1h`, `2m30s`; more than zero.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 500ms, 1s, 30s, 5m)");
    let d: jiff::SignedDuration = s.trim().parse().map_err(|_| bad())?;
    let d = std::time::Duration::try_from(d).map_err(|_| bad())?;
    if d.is_zero() {
        return Err(format!("{s:?}: a duration must be more than zero"));
    }
    Ok(d)
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// Store location; or, given alone, an on-demand replica (`clone
    /// --on-demand`) to mount over itself.
    pub loc: String,
    /// An existing empty folder (not given: LOC is an on-demand replica).
    pub mountpoint: Option<PathBuf>,
    /// Block cache quota for blocks that are not pinned (e.g. 512MiB, 2GiB, or
    /// bytes). For an on-demand replica also the bound on the bytes of
    /// hydrated files: past it, the least recently used ones that are not
    /// pinned, changed or open become placeholders again.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub cache_size: u64,
}

#[derive(Subcommand, Debug)]
pub enum CacheCmd {
    /// Bytes used, the quota, pinned bytes and paths, per store; counters of running mounts.
    Status,
}

/// `--chunk-avg-kib`: a power of two the chunker accepts, so that a bad
/// value is a usage error (exit 2) before anything is asked or written.
fn parse_chunk_avg_kib(s: &str) -> Result<u32, String> {
    let n: u32 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of KiB (e.g. 1024)"))?;
    let (lo, hi) = (ferry_store::ChunkerParams::MIN_AVG / 1024, ferry_store::ChunkerParams::MAX_AVG / 1024);
    if !n.is_power_of_two() || !(lo.max(1)..=hi).contains(&n) {
        return Err(format!("{n} KiB: the average chunk size must be a power of two from {} to {hi} KiB", lo.max(1)));
    }
    Ok(n)
}

/// `--read-data-subset`: `10%` or `2/5`.
fn parse_subset(s: &str) -> Result<ferry_sync::check::ReadData, String> {
    use ferry_sync::check::ReadData;
    if let Some(p) = s.strip_suffix('%') {
        let v: f64 = p.trim().parse().map_err(|_| format!("{s:?} is not a percentage (e.g. 10%)"))?;
        if !(0.0..=100.0).contains(&v) {
            return Err(format!("{s}: a percentage must be between 0% and 100%"));
        }
        return Ok(ReadData::Percent(v));
    }
    if let Some((n, m)) = s.split_once('/') {
        let parsed = (n.trim().parse::<u32>(), m.trim().parse::<u32>());
        return match parsed {
            (Ok(n), Ok(m)) if n >= 1 && n <= m => Ok(ReadData::Part(n, m)),
            _ => Err(format!("{s}: a part is N/M with 1 <= N <= M (e.g. 2/5)")),
        };
    }
    Err(format!("{s:?}: give a percentage like 10% or a part like 2/5"))
}

/// `123`, `64KiB`, `512MiB`, `1GiB`, `2TiB` (also `K`/`M`/`G`/`T`, `KB`..., all powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 512MiB, 1GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        u => return Err(format!("unknown size unit {u:?} (use KiB, MiB, GiB or TiB)")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Talk the ferry serve protocol on stdin/stdout (required).
    #[arg(long, required = true)]
    pub stdio: bool,
    /// Serve only stores inside DIR (after resolving `..` and symlinks); repeatable.
    #[arg(long = "restrict-to-path", value_name = "DIR")]
    pub restrict_to_path: Vec<PathBuf>,
    /// Refuse deletes (forget, gc); lock objects may still be released.
    #[arg(long)]
    pub append_only: bool,
}

/// Which snapshots `latest`, snapshots, forget and restore look at.
#[derive(Args, Debug, Default)]
pub struct SnapshotFilter {
    /// Only snapshots made on host H (repeatable: any of them).
    #[arg(long = "host", value_name = "H")]
    pub hosts: Vec<String>,
    /// Only snapshots of folder F: a synced folder's ID prefix, or a
    /// backed-up source path as recorded (repeatable: any of them).
    #[arg(long = "folder", value_name = "F")]
    pub folders: Vec<String>,
    /// Only snapshots tagged T (repeatable: any of them).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
}

impl SnapshotFilter {
    /// The library's filter.
    pub fn filter(&self) -> ferry_sync::snapshot::Filter {
        ferry_sync::snapshot::Filter { hosts: self.hosts.clone(), folders: self.folders.clone(), tags: self.tags.clone() }
    }
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Store location (default: $FERRY_STORE).
    #[arg(env = "FERRY_STORE")]
    pub loc: String,
    #[command(flatten)]
    pub only: SnapshotFilter,
    /// Keep the newest N snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// ... days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// ... weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// ... months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// ... years.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long, value_name = "T")]
    pub keep_tag: Vec<String>,
    /// List what would go; delete nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Create an encrypted store at LOC.
    Init(StoreInitArgs),
}

#[derive(Args, Debug)]
pub struct StoreInitArgs {
    /// Where to create it (a folder on a disk, USB drive or share).
    pub loc: String,
    /// Join SRC's key family (a store, or a replica folder): same master key, chunker and block IDs.
    #[arg(long, value_name = "SRC")]
    pub like: Option<String>,
    /// Average chunk size in KiB (a power of two, 1 to 4096); min is a quarter, max four times.
    #[arg(long, value_name = "KIB", value_parser = parse_chunk_avg_kib, conflicts_with = "like")]
    pub chunk_avg_kib: Option<u32>,
    /// Target pack size in MiB.
    #[arg(long, value_name = "MIB")]
    pub pack_size_mib: Option<u32>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// Name of this replica, in its conflict copies' names and as its pushes' host (default: the host name).
    #[arg(long, value_name = "NAME", value_parser = parse_replica_name)]
    pub name: Option<String>,
}

/// A replica name: not empty, one line, at most 64 bytes.
fn parse_replica_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("a replica name must not be empty".into());
    }
    if s.len() > 64 || s.chars().any(char::is_control) {
        return Err("a replica name is one line of at most 64 bytes".into());
    }
    Ok(s.to_string())
}

#[derive(Args, Debug)]
pub struct KdfArgs {
    /// Argon2id memory in KiB for the new key file (default 65536; at least 64, a floor for tests only).
    #[arg(long, value_name = "KIB")]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id passes for the new key file (default 3; at least 1).
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// List the key files.
    List {
        /// Store location.
        loc: String,
    },
    /// Add a passphrase (FERRY_NEW_PASSWORD / FERRY_NEW_PASSWORD_FILE, or a prompt).
    Add {
        /// Store location.
        loc: String,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Write the key family's master key to FILE (created 0600, never
    /// overwritten), for FERRY_KEY_FILE / --key-file: scripts and watch
    /// mode then open the store with no passphrase and no key derivation.
    /// Anyone who reads FILE can read and write every store of the family.
    Export {
        /// Store location (or a replica folder).
        loc: String,
        /// The file to create.
        file: PathBuf,
    },
    /// Remove a key file by ID prefix (never the last one).
    Remove {
        /// Store location.
        loc: String,
        /// Key ID or unique prefix.
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct FilterArgs {
    /// Leave out paths matching P (gitignore syntax; repeatable).
    #[arg(long = "exclude", value_name = "P")]
    pub exclude: Vec<String>,
    /// Take only paths matching P (gitignore syntax; repeatable).
    #[arg(long = "include", value_name = "P")]
    pub include: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Folder to back up.
    pub dir: PathBuf,
    /// Store location (default: $FERRY_STORE).
    #[arg(long, env = "FERRY_STORE", value_name = "LOC")]
    pub to: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Leave out folders containing a file named NAME (repeatable).
    #[arg(long, value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Do not descend into other filesystems.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Do not read .ferryignore files.
    #[arg(long)]
    pub no_ignore_files: bool,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Read and hash, show what would be added; write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Store location.
    pub loc: String,
    /// Snapshot: ID, unique prefix, or `latest`.
    pub snap: String,
    /// Folder to restore into (created if missing).
    #[arg(long)]
    pub target: PathBuf,
    #[command(flatten)]
    pub only: SnapshotFilter,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would be written; write nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Store location (default: $FERRY_STORE).
    #[arg(env = "FERRY_STORE")]
    pub loc: String,
    /// Read and verify every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read a subset of packs: a percentage ("10%") or a part ("2/5").
    #[arg(long, value_name = "PCT|N/M", value_parser = parse_subset)]
    pub read_data_subset: Option<ferry_sync::check::ReadData>,
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_as_written() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2m30s"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10").is_err());
    }
}
