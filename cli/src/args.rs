//! Command-line arguments (the CLI contract of the brief).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ferry keeps folders in step across machines, drives and backup targets:
/// encrypted, deduplicated, content-defined blocks in a store.
#[derive(Parser, Debug)]
#[command(name = "ferry", version, about, propagate_version = true, after_help = crate::error::EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
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
        /// Average chunk size in KiB for the new family (power of two).
        #[arg(long, value_name = "KIB", conflicts_with = "like")]
        chunk_avg_kib: Option<u32>,
        /// Join the key family of this store instead (a new folder in it).
        #[arg(long, value_name = "LOC")]
        like: Option<String>,
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
    /// (In a replica) list the conflict copies still present.
    Conflicts,
    /// (In a replica) local changes since the last sync.
    Status,
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
    },
    /// List a snapshot's tree.
    Ls {
        /// Store location.
        loc: String,
        /// Snapshot: ID, unique prefix, or `latest`.
        snap: String,
        /// Path inside the snapshot.
        path: Option<String>,
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
    /// SIGTERM or `fusermount3 -u MOUNTPOINT`.
    Mount(MountArgs),
    /// Keep files and folders inside a mount available offline, whatever the
    /// cache quota: fetches every block of PATH now.
    Pin {
        /// Paths inside a running `ferry mount`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Release pins made with `ferry pin` (PATH or anything pinned below it).
    Unpin {
        /// Paths inside a running `ferry mount`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The local block cache.
    #[command(subcommand)]
    Cache(CacheCmd),
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// Store location.
    pub loc: String,
    /// An existing empty folder.
    pub mountpoint: PathBuf,
    /// Block cache quota for blocks that are not pinned (e.g. 512MiB, 2GiB, or bytes).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub cache_size: u64,
}

#[derive(Subcommand, Debug)]
pub enum CacheCmd {
    /// Bytes used, the quota, pinned bytes and paths, per store; counters of running mounts.
    Status,
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

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Store location (default: $FERRY_STORE).
    #[arg(env = "FERRY_STORE")]
    pub loc: String,
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
    /// Average chunk size in KiB (power of two); min is a quarter, max four times.
    #[arg(long, value_name = "KIB")]
    pub chunk_avg_kib: Option<u32>,
    /// Target pack size in MiB.
    #[arg(long, value_name = "MIB")]
    pub pack_size_mib: Option<u32>,
    #[command(flatten)]
    pub kdf: KdfArgs,
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
    #[arg(long, value_name = "PCT|N/M")]
    pub read_data_subset: Option<String>,
}
