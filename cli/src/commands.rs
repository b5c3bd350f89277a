//! One function per command: open the store, call the library, print.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use ferry_store::backend::{Backend, Location};
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, Store};
use ferry_sync::backup::{BackupOptions, backup};
use ferry_sync::check::{ReadData, check};
use ferry_sync::filter::FilterOptions;
use ferry_sync::pull::{Action, PullOptions, pull};
use ferry_sync::push::{PushOptions, push};
use ferry_sync::replica::{self, Replica};
use ferry_sync::restore::{RestoreOptions, restore};
use ferry_sync::scan::{LocalChange, StatusReport, status};
use ferry_sync::sync::{SyncOptions, sync};
use ferry_sync::tree::{Content, EntryType};
use ferry_sync::{ChangeKind, PathChange, Progress, Skipped, diff, ls, snapshot};
use serde::Serialize;

use crate::args::*;
use crate::output::{self, Bar, DryRun, size};
use crate::passphrase;

/// Exit code when the run finished but some files were skipped.
const EXIT_SKIPPED: i32 = 3;

/// Runs the command; returns the exit code.
pub fn run(cli: &Cli) -> Result<i32> {
    if let Some(dir) = &cli.global.chdir {
        if ferry_sync::ondemand::is_dead_mount(dir) {
            return Err(ferry_sync::Error::DeadMount { root: dir.clone() }.into());
        }
        std::env::set_current_dir(dir).with_context(|| format!("-C {}", dir.display()))?;
    }
    if let Some(n) = cli.global.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().ok();
    }
    let g = &cli.global;
    match &cli.command {
        Command::Init { dir, chunk_avg_kib, like, name, kdf: k } => {
            cmd_init(g, dir.as_deref(), *chunk_avg_kib, like.as_deref(), name.name.as_deref(), k)
        }
        Command::Push { loc, dry_run, force } => cmd_push(g, loc, *dry_run, *force),
        Command::Pull { loc, dry_run } => cmd_pull(g, loc, *dry_run),
        Command::Clone { loc, dir, folder, on_demand, name, kdf: k } => {
            cmd_clone(g, loc, dir, folder.as_deref(), *on_demand, name.name.as_deref(), k)
        }
        Command::Status { states } => cmd_status(g, *states),
        Command::Sync { loc, dry_run } => cmd_sync(g, loc, *dry_run),
        Command::Conflicts => cmd_conflicts(g),
        Command::Resolve { path, keep, stores } => cmd_resolve(g, path, keep, stores),
        Command::Versions { path, restore, stores } => cmd_versions(g, path, restore.as_deref(), stores),
        Command::Watch(a) => cmd_watch(g, a),
        Command::Remote(c) => cmd_remote(g, c),
        Command::Center(a) => cmd_center(g, a),
        Command::Store(StoreCmd::Init(a)) => store_init(g, a),
        Command::Key(k) => key(g, k),
        Command::Backup(a) => cmd_backup(g, a),
        Command::Snapshots { loc, only } => snapshots(g, loc, only),
        Command::Ls { loc, snap, path, only } => cmd_ls(g, loc, snap, path.as_deref(), only),
        Command::Diff { loc, snap_a, snap_b } => cmd_diff(g, loc, snap_a, snap_b),
        Command::Restore(a) => cmd_restore(g, a),
        Command::Check(a) => cmd_check(g, a),
        Command::Forget(a) => cmd_forget(g, a),
        Command::Gc { loc, dry_run } => cmd_gc(g, loc, *dry_run),
        Command::Serve(a) => serve(a),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "ferry", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { out } => cmd_man(out.as_deref()),
        Command::Mount(a) => cmd_mount(g, a),
        Command::Pin { paths } => cmd_pin(g, paths, true),
        Command::Unpin { paths } => cmd_pin(g, paths, false),
        Command::Free { paths } => cmd_free(g, paths),
        Command::Cache(CacheCmd::Status) => cmd_cache_status(g),
    }
}

/// `ferry serve --stdio`: the library serves; exit 0 when the client hung up.
fn serve(a: &crate::args::ServeArgs) -> Result<i32> {
    let opts = ferry_store::serve::ServeOptions { restrict_to: a.restrict_to_path.clone(), append_only: a.append_only, workers: 0 };
    ferry_store::serve::serve_stdio(&opts)?;
    Ok(0)
}

fn cache_dir(g: &Global) -> Option<PathBuf> {
    g.cache_dir.clone().or_else(|| dirs::cache_dir().map(|d| d.join("ferry")))
}

fn cache(g: &Global) -> CacheLocation {
    cache_dir(g).map(CacheLocation::Dir).unwrap_or_default()
}

/// Every store location the user gives goes through here: a path is a
/// local folder; `ssh://` connects to `ferry serve` (before any prompt);
/// `s3://` and unknown schemes are refused with a clear error before
/// anything is created or asked for.
fn backend(loc: &str) -> Result<Arc<dyn Backend>> {
    Ok(ferry_store::backend::open_backend(loc)?)
}

/// The master key of `--key-file` / `FERRY_KEY_FILE`, if one is given.
fn key_file(g: &Global) -> Result<Option<ferry_store::MasterKey>> {
    match &g.key_file {
        Some(f) => Ok(Some(ferry_store::exported::read(f)?)),
        None => Ok(None),
    }
}

fn open(g: &Global, loc: &str) -> Result<Store> {
    open_on(g, loc, backend(loc)?)
}

fn open_on(g: &Global, loc: &str, backend: Arc<dyn Backend>) -> Result<Store> {
    open_asking(g, loc, backend, None)
}

/// Opens the store at `loc` with the key file, else `pw`, else the
/// passphrase from the environment or a prompt that names the store. A
/// missing store is reported before anything is asked.
fn open_asking(g: &Global, loc: &str, backend: Arc<dyn Backend>, pw: Option<&passphrase::Secret>) -> Result<Store> {
    let opened: Result<Store> = match key_file(g)? {
        Some(master) => Store::open_with_key(backend, &master, cache(g)).map_err(Into::into),
        // A caller that passes `pw` has checked for the store already.
        None => (|| {
            let asked;
            let pw = match pw {
                Some(p) => p,
                None => {
                    Store::require(backend.as_ref())?;
                    asked = passphrase::existing(&format!("store {loc}"))?;
                    &asked
                }
            };
            Ok(Store::open(backend, pw, cache(g))?)
        })(),
    };
    let store = opened.with_context(|| format!("opening store {loc}"))?;
    for (name, why) in store.damaged_indexes() {
        if !g.quiet {
            eprintln!("ferry: warning: index {} is damaged and was skipped ({why}); run `ferry check`", name.short(12));
        }
    }
    Ok(store)
}

/// The host a replica's pushes record: its name, or (a replica made
/// before replicas had names) this machine's host name.
fn replica_host(r: &Replica) -> Result<String> {
    Ok(r.name()?.unwrap_or_else(|| host(&None)))
}

fn host(h: &Option<String>) -> String {
    h.clone().unwrap_or_else(|| hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default())
}

fn kdf(a: &KdfArgs) -> KdfParams {
    KdfParams {
        m_kib: a.kdf_memory_kib.unwrap_or(KdfParams::DEFAULT.m_kib),
        t: a.kdf_iterations.unwrap_or(KdfParams::DEFAULT.t),
        p: KdfParams::DEFAULT.p,
    }
}

fn store_init(g: &Global, a: &StoreInitArgs) -> Result<i32> {
    let mut opts = InitOptions { kdf: kdf(&a.kdf), host: host(&None), ..Default::default() };
    if let Some(avg) = a.chunk_avg_kib {
        opts.chunker = ChunkerParams::from_avg(avg.saturating_mul(1024));
    }
    if let Some(mib) = a.pack_size_mib {
        opts.pack_target = mib.saturating_mul(1 << 20);
    }
    // Parse the location first: a bad one fails before any prompt or write.
    let target = backend(&a.loc)?;
    let new_pw = format!("store {}", a.loc);
    let pw = if let Some(src) = &a.like {
        // SRC is a replica folder (its root) or a store location.
        let replica_root = match Location::parse(src)? {
            Location::Local(p) => replica::find_root(&p).filter(|r| p.canonicalize().is_ok_and(|s| s == *r)),
            _ => None,
        };
        if let Some(root) = replica_root {
            let r = open_replica(g, &root)?;
            opts.master = Some(r.keys().master().clone());
            opts.chunker = r.chunker;
        } else {
            let src_store = open(g, src).with_context(|| format!("--like {src}"))?;
            opts.master = Some(src_store.keys().master().clone());
            opts.chunker = src_store.config().chunker;
        }
        passphrase::new(true, &new_pw)?
    } else {
        passphrase::new(true, &new_pw)?
    };
    // Store::init makes the location (Backend::create), refusing a local
    // folder that holds other files; a failed init removes what it made.
    let made_here = match Location::parse(&a.loc)? {
        Location::Local(p) => (!p.exists()).then_some(p),
        _ => None,
    };
    let store = match Store::init(target, &pw, opts, cache(g)) {
        Ok(s) => s,
        Err(e) => {
            if let Some(p) = made_here {
                let _ = std::fs::remove_dir_all(p);
            }
            return Err(anyhow::Error::new(e).context(format!("creating store {}", a.loc)));
        }
    };
    let c = store.config();
    if g.json {
        #[derive(Serialize)]
        struct Out<'a> {
            store: &'a str,
            store_id: String,
            family_id: String,
            chunk_min: u32,
            chunk_avg: u32,
            chunk_max: u32,
            pack_target: u32,
        }
        output::json(&Out {
            store: &a.loc,
            store_id: hex::encode(c.store_id),
            family_id: hex::encode(c.family_id),
            chunk_min: c.chunker.min,
            chunk_avg: c.chunker.avg,
            chunk_max: c.chunker.max,
            pack_target: c.pack_target,
        });
    } else if !g.quiet {
        println!("created store {} (id {}, family {})", a.loc, hex::encode(&c.store_id[..4]), hex::encode(&c.family_id[..4]));
        println!("keep the passphrase safe: without it the store cannot be read");
    }
    Ok(0)
}

fn key(g: &Global, k: &KeyCmd) -> Result<i32> {
    match k {
        KeyCmd::List { loc } => {
            let store = open(g, loc)?;
            let keys = store.list_keys()?;
            if g.json {
                #[derive(Serialize)]
                struct Kdf {
                    m_kib: u32,
                    t: u32,
                    p: u32,
                }
                #[derive(Serialize)]
                struct Row<'a> {
                    id: String,
                    current: bool,
                    host: &'a str,
                    created: String,
                    kdf: Kdf,
                }
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| Row {
                        id: k.id.to_hex(),
                        current: k.current,
                        host: &k.file.host,
                        created: output::rfc3339((k.file.created as i64).saturating_mul(1_000_000_000)),
                        kdf: Kdf { m_kib: k.file.kdf.m_kib, t: k.file.kdf.t, p: k.file.kdf.p },
                    })
                    .collect();
                output::json(&v);
            } else {
                println!("{:<2}{:<14}{:<21}{:<20}kdf", "", "id", format!("created ({})", output::zone_name()), "host");
                for k in &keys {
                    println!(
                        "{:<2}{:<14}{:<21}{:<20}argon2id m={}KiB t={} p={}",
                        if k.current { "*" } else { "" },
                        k.id.short(12),
                        output::time(k.file.created as i64 * 1_000_000_000),
                        k.file.host,
                        k.file.kdf.m_kib,
                        k.file.kdf.t,
                        k.file.kdf.p
                    );
                }
            }
        }
        KeyCmd::Add { loc, kdf: ka } => {
            let store = open(g, loc)?;
            let pw = passphrase::new(false, &format!("store {loc}"))?;
            let id = store.add_key(&pw, kdf(ka), &host(&None))?;
            if g.json {
                #[derive(Serialize)]
                struct Out {
                    added: ferry_store::ObjectName,
                }
                output::json(&Out { added: id });
            } else if !g.quiet {
                println!("added key {}", id.short(12));
            }
        }
        KeyCmd::Export { loc, file } => {
            let replica_root = match Location::parse(loc)? {
                Location::Local(p) => replica::find_root(&p).filter(|r| p.canonicalize().is_ok_and(|s| s == *r)),
                _ => None,
            };
            let master = match replica_root {
                Some(root) => open_replica(g, &root)?.keys().master().clone(),
                None => open(g, loc)?.keys().master().clone(),
            };
            ferry_store::exported::write(file, &master).with_context(|| format!("exporting the key to {}", file.display()))?;
            if g.json {
                #[derive(Serialize)]
                struct Out {
                    exported: String,
                }
                output::json(&Out { exported: file.to_string_lossy().into_owned() });
            } else if !g.quiet {
                println!("wrote the key of {loc} to {} (mode 0600)", file.display());
                println!(
                    "anyone who can read that file can read and write every store of this key family: keep it as safe as a passphrase"
                );
            }
        }
        KeyCmd::Remove { loc, id } => {
            let store = open(g, loc)?;
            let removed = store.remove_key(id)?;
            if g.json {
                #[derive(Serialize)]
                struct Out {
                    removed: ferry_store::ObjectName,
                }
                output::json(&Out { removed });
            } else if !g.quiet {
                println!("removed key {}", removed.short(12));
            }
        }
    }
    Ok(0)
}

fn print_skipped(g: &Global, s: &[Skipped], verb: &str) {
    if s.is_empty() || g.json {
        return;
    }
    eprintln!("ferry: {} could not be {verb}:", output::count(s.len() as u64, "file"));
    for x in s {
        eprintln!("  {}: {}", x.path, x.reason);
    }
}

/// Says once (stderr, not with --json/-q) which folders were left out
/// because they hold the store.
fn print_left_out(g: &Global, left_out: &[PathBuf]) {
    if g.json || g.quiet {
        return;
    }
    for p in left_out {
        eprintln!("ferry: note: {} holds the store and is left out of the snapshot", p.display());
    }
}

fn cmd_backup(g: &Global, a: &BackupArgs) -> Result<i32> {
    let store = open(g, &a.to)?;
    let opts = BackupOptions {
        filter: FilterOptions {
            excludes: a.filter.exclude.clone(),
            includes: a.filter.include.clone(),
            exclude_if_present: a.exclude_if_present.clone(),
            one_file_system: a.one_file_system,
            ignore_files: !a.no_ignore_files,
        },
        tags: a.tags.clone(),
        host: host(&a.host),
        dry_run: a.dry_run,
        cache_dir: cache_dir(g),
        estimate: Bar::wanted(g),
        list_changes: g.verbose > 0,
        list_read: g.json,
        ..Default::default()
    };
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(g, progress.clone(), "backup");
    let r = backup(&store, &a.dir, &opts, &progress);
    bar.finish();
    let r = r?;
    print_left_out(g, &r.left_out);
    let s = &r.summary;
    if g.json {
        output::json(&DryRun { dry_run: a.dry_run, report: &r });
    } else if !g.quiet {
        if a.dry_run || g.verbose > 0 {
            for c in r.changed.iter() {
                let c = c?;
                println!("{}", output::change(c.kind, &c.path, c.from.as_deref()));
            }
        }
        match r.snapshot {
            Some(id) => println!("snapshot {} saved", id.short(8)),
            None if a.dry_run => println!("dry run: nothing written"),
            None => println!("already up to date: no snapshot written"),
        }
        println!(
            "files: {} new, {} modified, {} unchanged ({} in {}, {})",
            s.new_files,
            s.changed_files,
            s.unchanged_files,
            s.files,
            output::count(s.dirs, "folder"),
            size(s.bytes)
        );
        if a.dry_run {
            println!("would read {} and add {} of new blocks (before compression)", size(r.bytes_read), size(r.new_raw_bytes));
        } else {
            println!("read {}, added {} to the store in {:.2}s", size(r.bytes_read), size(s.added_bytes), r.duration.as_secs_f64());
        }
    }
    if !a.filter.include.is_empty() && s.files == 0 && !g.json {
        eprintln!("ferry: warning: --include {} matched no file in {}", a.filter.include.join(" --include "), a.dir.display());
    }
    print_skipped(g, &r.skipped, "backed up");
    Ok(if r.skipped.is_empty() { 0 } else { EXIT_SKIPPED })
}

fn snapshots(g: &Global, loc: &str, only: &SnapshotFilter) -> Result<i32> {
    let store = open(g, loc)?;
    let (mut all, damaged) = snapshot::list_all(&store)?;
    let filter = only.filter();
    all.retain(|(_, s)| filter.matches(s));
    for (id, e) in &damaged {
        eprintln!("ferry: warning: snapshot {} is unreadable and left out: {e}", id.short(8));
    }
    if g.json {
        #[derive(Serialize)]
        struct Row<'a> {
            id: &'a ferry_store::ObjectName,
            time: String,
            time_ns: i64,
            host: &'a str,
            source: String,
            tags: &'a [String],
            parents: &'a [ferry_store::ObjectName],
            root: &'a ferry_store::BlockId,
            #[serde(flatten)]
            summary: &'a snapshot::Summary,
        }
        let v: Vec<_> = all
            .iter()
            .map(|(id, s)| Row {
                id,
                time: output::rfc3339(s.time_ns),
                time_ns: s.time_ns,
                host: &s.host,
                source: s.source_str().to_string(),
                tags: &s.tags,
                parents: &s.parents,
                root: &s.root,
                summary: &s.summary,
            })
            .collect();
        output::json(&v);
        return Ok(0);
    }
    println!("{:<10}{:<21}{:<16}{:>10}  {:<12}source", "id", format!("time ({})", output::zone_name()), "host", "size", "tags");
    for (id, s) in &all {
        println!(
            "{:<10}{:<21}{:<16}{:>10}  {:<12}{}",
            id.short(8),
            output::time(s.time_ns),
            s.host,
            size(s.summary.bytes),
            s.tags.join(","),
            s.source_str()
        );
    }
    if !g.quiet {
        println!("{}", output::count(all.len() as u64, "snapshot"));
    }
    Ok(0)
}

fn type_char(t: EntryType) -> char {
    match t {
        EntryType::File => '-',
        EntryType::Dir => 'd',
        EntryType::Symlink => 'l',
    }
}

fn cmd_ls(g: &Global, loc: &str, snap: &str, path: Option<&str>, only: &SnapshotFilter) -> Result<i32> {
    let store = open(g, loc)?;
    let (_, s) = snapshot::resolve_with(&store, snap, &only.filter())?;
    let root = ferry_sync::load_tree(&store, &s.root)?;
    #[derive(Serialize)]
    struct Row {
        path: String,
        #[serde(rename = "type")]
        kind: &'static str,
        mode: u32,
        size: u64,
        mtime: String,
        mtime_ns: i64,
        target: Option<String>,
    }
    let mut rows = Vec::new();
    ls::walk(&store, &root, path.unwrap_or(""), &mut |p, e| {
        if g.json {
            rows.push(Row {
                path: p.to_string_lossy().into_owned(),
                kind: match e.entry_type() {
                    EntryType::File => "file",
                    EntryType::Dir => "dir",
                    EntryType::Symlink => "symlink",
                },
                mode: e.mode,
                size: e.size,
                mtime: output::rfc3339(e.mtime_ns),
                mtime_ns: e.mtime_ns,
                target: if let Content::Symlink(t) = &e.content { Some(String::from_utf8_lossy(t).into_owned()) } else { None },
            });
        } else {
            let link = if let Content::Symlink(t) = &e.content { format!(" -> {}", String::from_utf8_lossy(t)) } else { String::new() };
            println!("{}{:04o} {:>12} {}  {}{link}", type_char(e.entry_type()), e.mode, e.size, output::time(e.mtime_ns), p.display());
        }
    })?;
    if g.json {
        output::json(&rows);
    }
    Ok(0)
}

fn cmd_diff(g: &Global, loc: &str, a: &str, b: &str) -> Result<i32> {
    let store = open(g, loc)?;
    let (_, sa) = snapshot::resolve(&store, a, None)?;
    let (_, sb) = snapshot::resolve(&store, b, None)?;
    let ta = ferry_sync::load_tree(&store, &sa.root)?;
    let tb = ferry_sync::load_tree(&store, &sb.root)?;
    let changes = diff::diff(&store, &ta, &tb)?;
    if g.json {
        output::json(&changes.iter().map(|(c, p)| PathChange::new(p.to_string_lossy(), *c)).collect::<Vec<_>>());
    } else {
        for (c, p) in &changes {
            println!("{}", output::change(*c, &p.to_string_lossy(), None));
        }
        if !g.quiet {
            let n = |k| changes.iter().filter(|(c, _)| *c == k).count();
            println!(
                "{} new, {} modified, {} deleted, {} renamed, {} metadata",
                n(ChangeKind::New),
                n(ChangeKind::Modified),
                n(ChangeKind::Deleted),
                n(ChangeKind::Renamed),
                n(ChangeKind::Metadata)
            );
        }
    }
    Ok(0)
}

fn cmd_restore(g: &Global, a: &RestoreArgs) -> Result<i32> {
    let store = open(g, &a.loc)?;
    let (id, s) = snapshot::resolve_with(&store, &a.snap, &a.only.filter())?;
    let opts = RestoreOptions {
        filter: FilterOptions { excludes: a.filter.exclude.clone(), includes: a.filter.include.clone(), ..Default::default() },
        dry_run: a.dry_run,
        list_paths: g.json || (!g.quiet && (a.dry_run || g.verbose > 0)),
    };
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(g, progress.clone(), "restore");
    let r = restore(&store, &s, &a.target, &opts, &progress);
    bar.finish();
    let r = r?;
    if g.json {
        #[derive(Serialize)]
        struct Out<'a> {
            snapshot: ferry_store::ObjectName,
            #[serde(flatten)]
            report: DryRun<'a, ferry_sync::restore::RestoreReport>,
        }
        output::json(&Out { snapshot: id, report: DryRun { dry_run: a.dry_run, report: &r } });
    } else if !g.quiet {
        if a.dry_run || g.verbose > 0 {
            // Both lists are sorted: walk them side by side.
            let mut overwritten = r.overwritten.iter().peekable();
            for p in r.written.iter() {
                let p = p?;
                while overwritten.next_if(|o| o.as_ref().is_ok_and(|o| *o < p)).is_some() {}
                if let Some(Err(_)) = overwritten.peek() {
                    overwritten.next().transpose()?;
                }
                if overwritten.next_if(|o| o.as_ref().is_ok_and(|o| *o == p)).is_some() {
                    println!("{}  (replaces the file in the target)", output::change(ChangeKind::Modified, &p, None));
                } else {
                    println!("{}", output::change(ChangeKind::New, &p, None));
                }
            }
        }
        println!(
            "{} {} ({} unchanged), {}, {}; {} from the store, {} reused locally, {:.2}s",
            if a.dry_run { "would restore" } else { "restored" },
            output::count(r.files_written as u64, "file"),
            r.files_unchanged,
            output::count(r.dirs as u64, "folder"),
            output::count(r.symlinks as u64, "symlink"),
            size(r.bytes_from_store),
            size(r.bytes_from_local),
            r.duration.as_secs_f64()
        );
    }
    if !a.filter.include.is_empty() && r.files_written + r.files_unchanged + r.dirs + r.symlinks == 0 && !g.json {
        eprintln!(
            "ferry: warning: --include {} matched nothing in snapshot {}: nothing was restored (`ferry ls {} {}` lists its paths)",
            a.filter.include.join(" --include "),
            id.short(8),
            a.loc,
            id.short(8)
        );
    }
    print_skipped(g, &r.skipped, "restored");
    Ok(if r.skipped.is_empty() { 0 } else { EXIT_SKIPPED })
}

fn cmd_check(g: &Global, a: &CheckArgs) -> Result<i32> {
    let mode = match (a.read_data_subset, a.read_data) {
        (Some(m), _) => m,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let store = open(g, &a.loc)?;
    let r = check(&store, mode)?;
    if g.json {
        #[derive(Serialize)]
        struct Out<'a> {
            ok: bool,
            #[serde(flatten)]
            report: &'a ferry_sync::check::CheckReport,
        }
        output::json(&Out { ok: r.errors.is_empty(), report: &r });
    } else {
        for w in &r.warnings {
            if !g.quiet {
                eprintln!("warning: {w}");
            }
        }
        for p in &r.errors {
            eprintln!("damaged: {}: {}", p.object, p.message);
        }
        if !g.quiet {
            println!(
                "checked {}, {}{}",
                output::count(r.snapshots as u64, "snapshot"),
                output::count(r.trees as u64, "tree"),
                if mode == ReadData::None {
                    String::new()
                } else {
                    format!(", read {} ({})", output::count(r.packs_read as u64, "pack"), output::count(r.blocks_read as u64, "block"))
                }
            );
        }
        if r.errors.is_empty() {
            if !g.quiet {
                println!("no errors found");
            }
        } else {
            eprintln!("ferry: check found {}", output::count(r.errors.len() as u64, "problem"));
        }
    }
    Ok(if r.errors.is_empty() { 0 } else { 1 })
}

fn here_replica(g: &Global) -> Result<Replica> {
    open_replica(g, &here_root()?)
}

/// The root of the replica the command runs in.
fn here_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    Ok(replica::find_root(&cwd).ok_or(ferry_sync::Error::NotAReplica { root: cwd })?)
}

fn open_replica(g: &Global, root: &Path) -> Result<Replica> {
    let r = match key_file(g)? {
        Some(master) => Replica::open_with_key(root, &master),
        None => Replica::open(root, &passphrase::existing(&format!("replica {}", root.display()))?),
    };
    r.with_context(|| format!("opening replica {}", root.display()))
}

fn open_for(g: &Global, r: &Replica, loc: &str) -> Result<Store> {
    open_for_on(g, r, loc, backend(loc)?)
}

fn open_for_on(g: &Global, r: &Replica, loc: &str, backend: Arc<dyn Backend>) -> Result<Store> {
    Store::open_with_key(backend, r.keys().master(), cache(g)).with_context(|| format!("opening store {loc}"))
}

/// The replica the command runs in, and the store at `loc` opened with
/// its key. When no prompt can be needed (a key file, or FERRY_PASSWORD*),
/// the store is dialled (ssh's handshake, about 0.4 s on 127.0.0.1 here)
/// while the replica's key is derived (Argon2id, about 0.2 s): the two
/// overlap. With a prompt they run one after the other, so that ssh's own
/// questions never interleave with ferry's.
fn replica_and_store(g: &Global, loc: &str) -> Result<(Replica, Store)> {
    if g.key_file.is_none() && !passphrase::in_environment() {
        let r = here_replica(g)?;
        let store = open_for(g, &r, loc)?;
        return Ok((r, store));
    }
    let dial = {
        let loc = loc.to_string();
        std::thread::spawn(move || backend(&loc))
    };
    let r = here_replica(g);
    let b = dial.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let r = r?;
    let store = open_for_on(g, &r, loc, b?)?;
    Ok((r, store))
}

fn cmd_init(g: &Global, dir: Option<&Path>, avg: Option<u32>, like: Option<&str>, name: Option<&str>, k: &KdfArgs) -> Result<i32> {
    let dir = dir.unwrap_or(Path::new("."));
    let (master, chunker) = match like {
        Some(loc) => {
            let store = open(g, loc)?;
            (Some(store.keys().master().clone()), store.config().chunker)
        }
        None => (None, avg.map(|a| ChunkerParams::from_avg(a.saturating_mul(1024))).unwrap_or(ChunkerParams::DEFAULT)),
    };
    let r = Replica::init(dir, &passphrase::new(true, &format!("replica {}", dir.display()))?, kdf(k), master, None, chunker)?;
    r.set_name(&host(&name.map(str::to_string)))?;
    register(g, &r);
    if g.json {
        #[derive(Serialize)]
        struct Out {
            replica: String,
            replica_id: String,
            folder_id: String,
        }
        output::json(&Out {
            replica: r.root().to_string_lossy().into_owned(),
            replica_id: hex::encode(r.replica_id),
            folder_id: hex::encode(r.folder_id),
        });
    } else if !g.quiet {
        println!("initialised replica {} (folder {})", r.root().display(), hex::encode(&r.folder_id[..4]));
        println!("next: `ferry store init LOC --like {}` and `ferry push LOC`", r.root().display());
    }
    Ok(0)
}

fn cmd_push(g: &Global, loc: &str, dry_run: bool, force: bool) -> Result<i32> {
    let (r, store) = replica_and_store(g, loc)?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(g, progress.clone(), "push");
    let res = push(
        &r,
        &store,
        &PushOptions {
            dry_run,
            force,
            host: replica_host(&r)?,
            estimate: Bar::wanted(g),
            list_changes: g.verbose > 0,
            list_read: g.json || !g.quiet,
        },
        &progress,
    );
    bar.finish();
    let rep = res?;
    if !dry_run {
        remember(g, &r, loc)?;
    }
    print_left_out(g, &rep.left_out);
    let s = &rep.summary;
    if g.json {
        output::json(&DryRun { dry_run, report: &rep });
    } else if !g.quiet {
        for c in rep.changed.iter() {
            let c = c?;
            println!("{}", output::change(c.kind, &c.path, c.from.as_deref()));
        }
        for c in &rep.conflicts {
            println!(
                "conflict {}: no longer ignored, and the store holds a version this folder never had; it is kept as {}",
                c.path.display(),
                c.copy.display()
            );
        }
        match rep.snapshot {
            Some(id) => println!("pushed snapshot {}: wrote {} to {}", id.short(8), size(s.added_bytes), loc),
            None if rep.up_to_date => println!("already up to date: {loc} holds this folder as it is; no snapshot written"),
            None => println!("dry run: would send {} of new blocks (before compression); nothing written", size(rep.new_raw_bytes)),
        }
    }
    print_skipped(g, &rep.skipped, "pushed");
    Ok(if rep.skipped.is_empty() { 0 } else { EXIT_SKIPPED })
}

/// One step of a pull's plan, as the change it makes here; `overwrites`
/// (sorted) says which writes replace a file that is here.
fn action_text(a: &Action, overwrites: &[PathBuf]) -> String {
    use ChangeKind as K;
    let over = |p: &PathBuf| overwrites.binary_search(p).is_ok();
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    match a {
        Action::Mkdir(p) => output::change(K::New, &format!("{}/", s(p)), None),
        Action::Write(p) | Action::Symlink(p) if over(p) => output::change(K::Modified, &s(p), None) + "  (replaces the file here)",
        Action::Write(p) | Action::Symlink(p) => output::change(K::New, &s(p), None),
        Action::Rename(a, b) => output::change(K::Renamed, &s(b), Some(&s(a))),
        Action::Delete(p) => output::change(K::Deleted, &s(p), None),
        Action::Meta(p) => output::change(K::Metadata, &s(p), None),
    }
}

fn cmd_pull(g: &Global, loc: &str, dry_run: bool) -> Result<i32> {
    let (r, store) = replica_and_store(g, loc)?;
    let progress = Arc::new(Progress::default());
    let rep = pull(&r, &store, &PullOptions { dry_run }, &progress)?;
    if !dry_run {
        remember(g, &r, loc)?;
    }
    print_pull(g, &rep, dry_run, loc);
    Ok(if rep.skipped.is_empty() && rep.conflicts.is_empty() { 0 } else { EXIT_SKIPPED })
}

fn print_pull(g: &Global, rep: &ferry_sync::pull::PullReport, dry_run: bool, loc: &str) {
    if g.json {
        output::json(&DryRun { dry_run, report: rep });
        return;
    }
    // A pull that met a conflict applies nothing (format-spec §15.3 step 5).
    let refused = !rep.conflicts.is_empty() && rep.actions.is_empty();
    if !g.quiet {
        for a in &rep.actions {
            println!("{}", action_text(a, &rep.overwrites));
        }
        match (rep.snapshot, rep.up_to_date) {
            (None, _) => println!("the store holds no snapshot of this folder yet"),
            (Some(id), true) => println!("already up to date with snapshot {}", id.short(8)),
            (Some(_), false) if refused => {}
            (Some(id), false) => println!(
                "{} snapshot {}: {}, {} from the store, {} reused locally",
                if dry_run { "would pull" } else { "pulled" },
                id.short(8),
                output::count(rep.actions.len() as u64, "change"),
                size(rep.bytes_from_store),
                size(rep.bytes_from_local)
            ),
        }
    }
    if rep.concurrent > 0 && !g.quiet {
        eprintln!(
            "ferry: the store also holds {} made concurrently with this replica's: run `ferry sync {loc}` to merge them",
            output::count(rep.concurrent as u64, "change")
        );
    }
    if refused {
        eprintln!("ferry: nothing was pulled: {} changed both here and in the store:", output::count(rep.conflicts.len() as u64, "path"));
        for c in &rep.conflicts {
            eprintln!("  {}", c.display());
        }
        eprintln!("run `ferry sync {loc}` to merge (both versions are kept)");
    } else if !rep.conflicts.is_empty() {
        eprintln!(
            "ferry: {} changed both here and in the store {} left as {} here:",
            output::count(rep.conflicts.len() as u64, "path"),
            if rep.conflicts.len() == 1 { "was" } else { "were" },
            if rep.conflicts.len() == 1 { "it is" } else { "they are" }
        );
        for c in &rep.conflicts {
            eprintln!("  {}", c.display());
        }
        eprintln!("run `ferry sync {loc}` to merge them (both versions are kept)");
    }
    print_skipped(g, &rep.skipped, "updated");
}

fn cmd_clone(g: &Global, loc: &str, dir: &Path, folder: Option<&str>, on_demand: bool, name: Option<&str>, k: &KdfArgs) -> Result<i32> {
    let backend = backend(loc)?;
    // One passphrase opens the store and locks the new replica's key
    // file; with a key file, the replica's passphrase is asked as new.
    let (store, pw) = if g.key_file.is_some() {
        // Run again into a replica this clone made: its passphrase is the
        // one it has, not a new one.
        let what = format!("replica {}", dir.display());
        let existing = ferry_sync::replica::find_root(dir).is_some_and(|r| dir.canonicalize().is_ok_and(|d| d == r));
        let pw = if existing { passphrase::existing(&what)? } else { passphrase::new(true, &what)? };
        (open_on(g, loc, backend)?, pw)
    } else {
        Store::require(backend.as_ref()).with_context(|| format!("opening store {loc}"))?;
        let pw = passphrase::existing(&format!("store {loc}"))?;
        (open_asking(g, loc, backend, Some(&pw))?, pw)
    };
    // Without --kdf-* options, the replica keeps a copy of the store key
    // file its passphrase opened: no second Argon2id run.
    let same_key = (k.kdf_memory_kib.is_none() && k.kdf_iterations.is_none()).then(|| store.opened_key_file()).flatten();
    let rename = name.is_some();
    let name = host(&name.map(str::to_string));
    let init = ferry_sync::pull::CloneInit { passphrase: &pw, kdf: kdf(k), folder, name: &name, rename, key_file: same_key };
    let (r, rep) = if on_demand {
        ferry_sync::ondemand::clone(dir, &store, init, &Progress::default())?
    } else {
        ferry_sync::pull::clone(dir, &store, init, &Progress::default())?
    };
    remember(g, &r, loc)?;
    if on_demand {
        if !g.quiet && !g.json {
            println!(
                "on-demand replica {} of {loc}: {} as placeholders (no content downloaded); `ferry mount {}` shows them and fetches each file when it is opened",
                r.root().display(),
                output::count(rep.actions.iter().filter(|a| matches!(a, ferry_sync::pull::Action::Write(_))).count() as u64, "file"),
                r.root().display()
            );
        } else if g.json {
            print_pull(g, &rep, false, loc);
        }
        return Ok(0);
    }
    print_pull(g, &rep, false, loc);
    Ok(if rep.skipped.is_empty() && rep.conflicts.is_empty() { 0 } else { EXIT_SKIPPED })
}

/// Local changes, asking for the key only when stat and the file cache
/// cannot answer (the prompt says which file needs hashing).
fn cmd_status(g: &Global, list_states: bool) -> Result<i32> {
    let root = here_root()?;
    let opening = || format!("opening replica {}", root.display());
    let mut r = Replica::open_without_key(&root).with_context(opening)?;
    // A key file costs no key derivation: used (and so checked) at once.
    // A passphrase is asked for, or derived, only when a file must be hashed.
    if let Some(master) = key_file(g)? {
        r.unlock_with_key(master).with_context(opening)?;
    }
    let changes = match status(&r) {
        Err(ferry_sync::Error::NeedsKey { path }) => {
            let why = format!("status hashes {} to tell an edit or a rename from a touch", path.display());
            r.unlock(&passphrase::existing(&format!("replica {} ({why})", root.display()))?).with_context(opening)?;
            status(&r)?
        }
        other => other?,
    };
    let states = if r.is_on_demand()? { Some(ferry_sync::ondemand::path_states(&r)?) } else { None };
    if g.json {
        let mut report = StatusReport::new(&changes);
        report.on_demand = states;
        output::json(&report);
    } else {
        for (c, p) in &changes {
            match c {
                LocalChange::New => println!("{}", output::change(ChangeKind::New, &p.to_string_lossy(), None)),
                LocalChange::Modified => println!("{}", output::change(ChangeKind::Modified, &p.to_string_lossy(), None)),
                LocalChange::Deleted => println!("{}", output::change(ChangeKind::Deleted, &p.to_string_lossy(), None)),
                LocalChange::Renamed(from) => {
                    println!("{}", output::change(ChangeKind::Renamed, &p.to_string_lossy(), Some(&from.to_string_lossy())))
                }
                LocalChange::NotPulled => println!("! not pulled {} (the last pull could not write it: run the pull again)", p.display()),
            }
        }
        if !g.quiet && changes.is_empty() {
            println!("no local changes since the last sync");
        }
        if let Some(st) = &states {
            if !g.quiet {
                let counts: Vec<String> = st.counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                println!("on-demand files: {}", if counts.is_empty() { "none".to_string() } else { counts.join(", ") });
                for f in &st.fetching {
                    println!(
                        "fetching {}: {} of {}",
                        f.path,
                        ferry_sync::progress::human_size(f.done),
                        ferry_sync::progress::human_size(f.total)
                    );
                }
            }
            if list_states {
                for s in &st.paths {
                    println!("{:<11} {}", s.state.as_str(), s.path.display());
                }
            }
        }
    }
    Ok(0)
}

fn cmd_sync(g: &Global, loc: &str, dry_run: bool) -> Result<i32> {
    let (r, store) = replica_and_store(g, loc)?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(g, progress.clone(), "sync");
    let res = sync(&r, &store, &SyncOptions { dry_run, host: replica_host(&r)? }, &progress);
    bar.finish();
    let rep = res?;
    if !dry_run {
        remember(g, &r, loc)?;
    }
    if g.json {
        output::json(&DryRun { dry_run, report: &rep });
    } else if !g.quiet {
        if let Some(p) = rep.pushed {
            println!("pushed local changes as snapshot {}", p.short(8));
        }
        for c in &rep.conflicts {
            println!("conflict {}: both changed; the other version is kept as {}", c.path.display(), c.copy.display());
        }
        for a in &rep.apply.actions {
            println!("{}", action_text(a, &rep.apply.overwrites));
        }
        match (rep.merged, rep.heads.len()) {
            (Some(m), n) => println!("merged {} into snapshot {}", output::count(n as u64, "head"), m.short(8)),
            (None, n) if n > 1 => println!("dry run: would merge {n} heads"),
            _ if rep.push_pending => println!("dry run: would push local changes first"),
            _ if dry_run && !rep.apply.actions.is_empty() => println!("dry run: would bring in the store's changes"),
            _ if !rep.apply.conflicts.is_empty() || !rep.apply.skipped.is_empty() => {
                println!("partly in sync: some paths were left for the next sync")
            }
            _ if !rep.conflicts.is_empty() => println!("in sync; both versions are kept where a path changed on both sides"),
            _ => println!("in sync"),
        }
    }
    if dry_run && !rep.apply.conflicts.is_empty() && !g.json {
        // A real run keeps both versions of a changed file (the store's
        // under its conflict name); only folders are left alone.
        eprintln!(
            "ferry: {} changed here too: a sync would keep both versions (the store's beside this one):",
            output::count(rep.apply.conflicts.len() as u64, "path")
        );
        for c in &rep.apply.conflicts {
            eprintln!("  {}", c.display());
        }
    } else if !rep.apply.conflicts.is_empty() && !g.json {
        eprintln!(
            "ferry: {} changed during the sync {} left alone for the next sync:",
            output::count(rep.apply.conflicts.len() as u64, "path"),
            if rep.apply.conflicts.len() == 1 { "was" } else { "were" }
        );
        for c in &rep.apply.conflicts {
            eprintln!("  {}", c.display());
        }
    }
    print_skipped(g, &rep.apply.skipped, "updated");
    // As pull's: a run that leaves conflicts for a person to look at
    // (copies made here, or paths left for the next sync) exits 3.
    let clean = rep.apply.skipped.is_empty() && rep.conflicts.is_empty() && rep.apply.conflicts.is_empty();
    Ok(if clean { 0 } else { EXIT_SKIPPED })
}

/// Records `loc` as a store this replica syncs with (`remote list`,
/// `watch`), and the replica in this machine's registry (`ferry center`):
/// replicas made before the registry existed appear after their next sync.
fn remember(g: &Global, r: &Replica, loc: &str) -> Result<()> {
    r.record_remote(&replica::remote_location(loc)?, ferry_sync::backup::now_ns())?;
    register(g, r);
    Ok(())
}

/// Adds the replica to this machine's registry. A registry that cannot be
/// written costs only the Sync Center's listing: said, never fatal.
fn register(g: &Global, r: &Replica) {
    let Some(reg) = ferry_sync::registry::Registry::user() else { return };
    if let Err(e) = reg.register(r.root())
        && !g.quiet
    {
        eprintln!("ferry: warning: {} not added to {}: {e}", r.root().display(), reg.path().display());
    }
}

/// `ferry center`: binds (loopback only), prints the URL with its token,
/// serves until Ctrl-C / SIGTERM (exit 0).
fn cmd_center(g: &Global, a: &CenterArgs) -> Result<i32> {
    let registry = ferry_sync::registry::Registry::user().context("no data folder for the replica registry: set XDG_DATA_HOME or HOME")?;
    // Keys for the page's actions, never a prompt: a key file, else a
    // passphrase from the environment, else state only.
    let keys = match key_file(g)? {
        Some(master) => ferry_center::KeySource::MasterKey(master),
        None if passphrase::in_environment() => ferry_center::KeySource::Passphrase(passphrase::existing("the Sync Center")?),
        None => ferry_center::KeySource::None,
    };
    let opts = ferry_center::CenterOptions {
        listen: a.listen.clone(),
        registry,
        cache: cache(g),
        cache_dir: cache_dir(g),
        keys,
        host: host(&None),
    };
    let center = ferry_center::Center::bind(opts)?;
    let url = center.url();
    if g.json {
        #[derive(Serialize)]
        struct Out<'a> {
            url: &'a str,
            listen: String,
        }
        output::json_line(&Out { url: &url, listen: center.addr().to_string() });
    } else {
        println!("Sync Center: {url}");
        if !g.quiet {
            println!("open that URL (it carries the access token); Ctrl-C stops the center");
        }
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    let stopper = center.stopper();
    crate::interrupt::stop_with(move || stopper.stop());
    center.run()?;
    Ok(0)
}

/// `ferry watch`: the key is opened once; the library decides when to sync
/// and reports each step, printed here.
fn cmd_watch(g: &Global, a: &WatchArgs) -> Result<i32> {
    let root = here_root()?;
    let (master, stores) = {
        let r = open_replica(g, &root)?;
        register(g, &r);
        let stores = if a.locs.is_empty() {
            r.remotes()?.into_iter().map(|r| r.location).collect()
        } else {
            a.locs.iter().map(|l| replica::remote_location(l)).collect::<Result<Vec<_>, _>>()?
        };
        (r.keys().master().clone(), stores)
        // The replica (and its lock) is released here: each sync takes it anew.
    };
    let opts = ferry_sync::watch::WatchOptions {
        stores,
        interval: a.interval,
        quiet: a.quiet_period,
        max_wait: ferry_sync::watch::WatchOptions::default_max_wait(a.quiet_period, a.interval),
        host: host(&None),
        cache: cache(g),
    };
    let w = ferry_sync::watch::Watch::new();
    let stopper = w.stopper();
    crate::interrupt::stop_with(move || stopper.stop());
    w.run(&root, &master, &opts, &mut |e| print_watch_event(g, a, e))?;
    if g.json {
        output::json_line(&serde_json::json!({ "event": "stopped" }));
    } else if !g.quiet {
        eprintln!("ferry: watch stopped");
    }
    Ok(0)
}

fn print_watch_event(g: &Global, a: &WatchArgs, e: ferry_sync::watch::Event<'_>) {
    use ferry_sync::watch::Event;
    use serde_json::json;
    let now = || output::rfc3339(ferry_sync::backup::now_ns());
    let stamp = || output::time(ferry_sync::backup::now_ns());
    match e {
        Event::Started { root, stores } => {
            if g.json {
                output::json_line(&json!({ "event": "started", "time": now(), "replica": root.to_string_lossy(), "stores": stores }));
            } else if !g.quiet {
                eprintln!(
                    "ferry: watching {} with {} ({}); syncing when changes settle for {}, and every {}; Ctrl-C stops",
                    root.display(),
                    output::count(stores.len() as u64, "store"),
                    stores.join(", "),
                    jiff::SignedDuration::try_from(a.quiet_period).map(|d| format!("{d:#}")).unwrap_or_default(),
                    jiff::SignedDuration::try_from(a.interval).map(|d| format!("{d:#}")).unwrap_or_default(),
                );
            }
        }
        Event::NotWatching { reason } => {
            if g.json {
                output::json_line(&json!({ "event": "not_watching", "time": now(), "reason": reason }));
            } else {
                eprintln!("ferry: warning: cannot watch the folder for changes ({reason}); looking for them every interval instead");
            }
        }
        Event::Synced(o) => {
            if !o.did_something() && g.verbose == 0 {
                return;
            }
            if g.json {
                let mut v = serde_json::to_value(o).expect("JSON");
                v["event"] = json!("sync");
                v["time"] = json!(now());
                output::json_line(&v);
                return;
            }
            if g.quiet {
                return;
            }
            let mut moved = Vec::new();
            if o.pulled > 0 || o.pushed == 0 {
                moved.push(format!("pulled {}", output::count(o.pulled as u64, "change")));
            }
            if o.pushed > 0 {
                moved.push(format!("pushed {}", output::count(o.pushed as u64, "change")));
            }
            let mut line = format!("{} {}: {}", stamp(), o.store, moved.join(", "));
            if let Some(m) = o.merged {
                line += &format!(", merged as snapshot {}", m.short(8));
            }
            if !o.conflicts.is_empty() {
                let c: Vec<String> =
                    o.conflicts.iter().map(|c| format!("{} (other version kept as {})", c.path.display(), c.copy.display())).collect();
                line += &format!("; conflicts: {}", c.join(", "));
            }
            if !o.left_for_next.is_empty() {
                let c: Vec<String> = o.left_for_next.iter().map(|p| p.display().to_string()).collect();
                line += &format!("; changed during the sync, left for the next: {}", c.join(", "));
            }
            if !o.skipped.is_empty() {
                let c: Vec<String> = o.skipped.iter().map(|s| format!("{} ({})", s.path, s.reason)).collect();
                line += &format!("; not written: {}", c.join(", "));
            }
            println!("{line}");
        }
        Event::Unreachable { store, error } => {
            if g.json {
                output::json_line(&json!({ "event": "unreachable", "time": now(), "store": store, "error": error.to_string() }));
            } else if !g.quiet {
                eprintln!("ferry: {} {store} cannot be reached ({error}); trying again every interval", stamp());
            }
        }
        Event::Reachable { store } => {
            if g.json {
                output::json_line(&json!({ "event": "reachable", "time": now(), "store": store }));
            } else if !g.quiet {
                eprintln!("ferry: {} {store} is back", stamp());
            }
        }
        Event::Busy { store } => {
            if g.verbose == 0 {
                return;
            }
            if g.json {
                output::json_line(&json!({ "event": "busy", "time": now(), "store": store }));
            } else {
                eprintln!("ferry: {} another ferry process has the replica (or {store}) in use; trying again shortly", stamp());
            }
        }
        Event::Failed { store, error } => {
            if g.json {
                output::json_line(&json!({ "event": "failed", "time": now(), "store": store, "error": error.to_string() }));
            } else {
                eprintln!("ferry: {} sync with {store} failed: {error}; trying again every interval", stamp());
            }
        }
    }
}

/// `ferry remote list|add|remove`: the replica's record of its stores
/// (opened without its key: nothing here needs it).
fn cmd_remote(g: &Global, c: &RemoteCmd) -> Result<i32> {
    let root = here_root()?;
    let r = Replica::open_without_key(&root).with_context(|| format!("opening replica {}", root.display()))?;
    match c {
        RemoteCmd::List => {
            let remotes = r.remotes()?;
            if g.json {
                #[derive(Serialize)]
                struct Row<'a> {
                    location: &'a str,
                    last_sync: Option<String>,
                }
                let rows: Vec<_> =
                    remotes.iter().map(|m| Row { location: &m.location, last_sync: m.last_sync_ns.map(output::rfc3339) }).collect();
                output::json(&rows);
            } else {
                for m in &remotes {
                    match m.last_sync_ns {
                        Some(ns) => println!("{}  (last sync {})", m.location, output::time(ns)),
                        None => println!("{}  (not synced yet)", m.location),
                    }
                }
                if remotes.is_empty() && !g.quiet {
                    println!("no stores yet: a push, pull, sync or clone records its store");
                }
            }
        }
        RemoteCmd::Add { loc } => {
            let l = replica::remote_location(loc)?;
            let added = r.add_remote(&l)?;
            if g.json {
                output::json(&serde_json::json!({ "location": l, "added": added }));
            } else if !g.quiet {
                println!("{} {l}", if added { "added" } else { "already a remote:" });
            }
        }
        RemoteCmd::Remove { loc } => {
            // As recorded, or as given (a relative path).
            let removed = r.remove_remote(loc)? || r.remove_remote(&replica::remote_location(loc)?)?;
            if !removed {
                anyhow::bail!("{loc} is not a remote of this replica (`ferry remote list` shows them)");
            }
            if g.json {
                output::json(&serde_json::json!({ "removed": loc }));
            } else if !g.quiet {
                println!("removed {loc}");
            }
        }
    }
    Ok(0)
}

/// A conflict's version as `conflicts --json` prints it.
#[derive(Serialize)]
struct VersionRow {
    path: String,
    replica: String,
    time: String,
    size: u64,
}

impl From<&ferry_sync::resolve::Version> for VersionRow {
    fn from(v: &ferry_sync::resolve::Version) -> Self {
        VersionRow {
            path: v.path.to_string_lossy().into_owned(),
            replica: v.replica.clone(),
            time: output::rfc3339(v.mtime_ns),
            size: v.size,
        }
    }
}

fn cmd_conflicts(g: &Global) -> Result<i32> {
    let r = here_replica(g)?;
    let sets = ferry_sync::resolve::list(&r)?;
    if g.json {
        #[derive(Serialize)]
        struct Row {
            path: String,
            current: Option<VersionRow>,
            copies: Vec<VersionRow>,
        }
        let rows: Vec<Row> = sets
            .iter()
            .map(|s| Row {
                path: s.path.to_string_lossy().into_owned(),
                current: s.current.as_ref().map(Into::into),
                copies: s.copies.iter().map(Into::into).collect(),
            })
            .collect();
        output::json(&rows);
        return Ok(0);
    }
    let line = |v: &ferry_sync::resolve::Version, what: &str| {
        println!("  {what:<6} {:<12} {}  {:>9}  {}", v.replica, output::time(v.mtime_ns), size(v.size), v.path.display())
    };
    for s in &sets {
        println!("{}", s.path.display());
        match &s.current {
            Some(v) => line(v, "mine"),
            None => println!("  mine   (deleted here)"),
        }
        for c in &s.copies {
            line(c, "copy");
        }
    }
    if !g.quiet {
        if sets.is_empty() {
            println!("no conflicts");
        } else {
            println!("settle one with `ferry resolve PATH --keep mine|theirs|both|COPY`");
        }
    }
    Ok(0)
}

/// The stores a replica command syncs with: those given, else the
/// recorded ones. Each is opened with the replica's key.
fn stores_for(g: &Global, r: &Replica, given: &[String]) -> Result<Vec<(String, Store)>> {
    let locs: Vec<String> = if given.is_empty() { r.remotes()?.into_iter().map(|m| m.location).collect() } else { given.to_vec() };
    if locs.is_empty() {
        return Err(ferry_sync::Error::NoRemotes { root: r.root().to_path_buf() }.into());
    }
    locs.into_iter().map(|l| Ok((l.clone(), open_for(g, r, &l)?))).collect()
}

fn cmd_resolve(g: &Global, path: &Path, keep: &str, given: &[String]) -> Result<i32> {
    let r = here_replica(g)?;
    let rel = r.relative(path)?;
    let keep: ferry_sync::resolve::Keep = keep.parse().expect("infallible");
    let keep = match keep {
        ferry_sync::resolve::Keep::Copy(c) => ferry_sync::resolve::Keep::Copy(r.relative(&c)?),
        k => k,
    };
    let stores = stores_for(g, &r, given)?;
    let refs: Vec<(String, &Store)> = stores.iter().map(|(l, s)| (l.clone(), s)).collect();
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(g, progress.clone(), "resolve");
    let res = ferry_sync::resolve::resolve(&r, &rel, &keep, &refs, &replica_host(&r)?, &progress);
    bar.finish();
    let done = res?;
    for (l, _) in &stores {
        remember(g, &r, l)?;
    }
    if g.json {
        output::json(&done);
    } else if !g.quiet {
        match &done.kept {
            Some(k) => println!("{} now holds the version of {}", done.path.display(), k.display()),
            None => println!("kept {} as it is", done.path.display()),
        }
        for p in &done.removed {
            println!("removed {}", p.display());
        }
        for r in &done.renamed {
            println!("renamed {} -> {}", r.from.display(), r.to.display());
        }
        for rec in &done.snapshots {
            match &rec.snapshot {
                Some(id) => println!("recorded in {} as snapshot {}", rec.store, &id[..8]),
                None => println!("{} already held this state", rec.store),
            }
        }
        println!("the other versions stay in the history: `ferry versions {}`", done.path.display());
    }
    Ok(0)
}

/// A path's version as `versions --json` prints it.
#[derive(Serialize)]
struct PathVersionRow<'a> {
    id: &'a str,
    path: String,
    kind: &'a str,
    size: u64,
    mtime: String,
    first_snapshot: &'a str,
    first_time: String,
    host: &'a str,
    snapshots: usize,
    current: bool,
}

impl<'a> From<&'a ferry_sync::versions::PathVersion> for PathVersionRow<'a> {
    fn from(v: &'a ferry_sync::versions::PathVersion) -> Self {
        PathVersionRow {
            id: &v.id,
            path: v.path.to_string_lossy().into_owned(),
            kind: v.kind,
            size: v.size,
            mtime: output::rfc3339(v.mtime_ns),
            first_snapshot: &v.first_snapshot,
            first_time: output::rfc3339(v.first_time_ns),
            host: &v.host,
            snapshots: v.snapshots,
            current: v.current,
        }
    }
}

fn cmd_versions(g: &Global, path: &Path, restore: Option<&str>, given: &[String]) -> Result<i32> {
    let r = here_replica(g)?;
    let rel = r.relative(path)?;
    let stores = stores_for(g, &r, given)?;
    let (from_loc, from) = (&stores[0].0, &stores[0].1);
    if let Some(vid) = restore {
        let refs: Vec<(String, &Store)> = stores.iter().map(|(l, s)| (l.clone(), s)).collect();
        let progress = Arc::new(Progress::default());
        let bar = Bar::start(g, progress.clone(), "restore");
        let res = ferry_sync::versions::restore_version(&r, from, &refs, &rel, vid, &replica_host(&r)?, &progress);
        bar.finish();
        let done = res?;
        if done.written {
            for (l, _) in &stores {
                remember(g, &r, l)?;
            }
        }
        if g.json {
            output::json(&serde_json::json!({
                "path": done.path,
                "version": PathVersionRow::from(&done.version),
                "written": done.written,
                "snapshots": done.snapshots,
            }));
        } else if !g.quiet {
            if done.written {
                println!(
                    "restored version {} of {} ({}, {})",
                    done.version.id,
                    done.path.display(),
                    size(done.version.size),
                    output::time(done.version.mtime_ns)
                );
                for rec in &done.snapshots {
                    if let Some(id) = &rec.snapshot {
                        println!("recorded in {} as snapshot {}", rec.store, &id[..8]);
                    }
                }
            } else {
                println!("{} already holds version {}", done.path.display(), done.version.id);
            }
        }
        return Ok(0);
    }
    let list = ferry_sync::versions::versions(&r, from, &rel)?;
    if g.json {
        let rows: Vec<PathVersionRow> = list.iter().map(Into::into).collect();
        output::json(&rows);
        return Ok(0);
    }
    if list.is_empty() {
        if !g.quiet {
            println!("{} is in no snapshot of {from_loc}", rel.display());
        }
        return Ok(0);
    }
    println!(
        "{:<12}  {:<19}  {:>9}  {:<19}  {:<12}  path",
        "id",
        format!("modified ({})", output::zone_name()),
        "size",
        "first saved",
        "by"
    );
    for v in &list {
        println!(
            "{:<12}  {:<19}  {:>9}  {:<19}  {:<12}  {}{}",
            v.id,
            output::time(v.mtime_ns),
            if v.kind == "file" { size(v.size) } else { v.kind.to_string() },
            output::time(v.first_time_ns),
            v.host,
            v.path.display(),
            if v.current { "  (current)" } else { "" }
        );
    }
    if !g.quiet {
        println!("bring one back with `ferry versions {} --restore ID`", path.display());
    }
    Ok(0)
}

fn cmd_forget(g: &Global, a: &ForgetArgs) -> Result<i32> {
    let store = open(g, &a.loc)?;
    let policy = ferry_sync::forget::Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        tags: a.keep_tag.clone(),
    };
    let decisions = ferry_sync::forget::forget(&store, &policy, &a.only.filter(), a.dry_run)?;
    let gone = decisions.iter().filter(|d| !d.keep).count();
    if g.json {
        #[derive(Serialize)]
        struct Out<'a> {
            dry_run: bool,
            snapshots: &'a [ferry_sync::forget::Decision],
            removed: usize,
        }
        output::json(&Out { dry_run: a.dry_run, snapshots: &decisions, removed: gone });
    } else if !g.quiet {
        for d in &decisions {
            let what = if d.keep {
                format!("keep   ({})", d.reasons.join(", "))
            } else {
                (if a.dry_run { "would remove" } else { "remove" }).to_string()
            };
            println!("{}  {:<30} {what}", d.id.short(8), d.group);
        }
        println!(
            "{gone} of {} {}; run `ferry gc {}` to free their space",
            output::count(decisions.len() as u64, "snapshot"),
            match (a.dry_run, gone == 1) {
                (true, _) => "would be removed",
                (false, true) => "was removed",
                (false, false) => "were removed",
            },
            a.loc
        );
    }
    Ok(0)
}

fn cmd_gc(g: &Global, loc: &str, dry_run: bool) -> Result<i32> {
    let store = open(g, loc)?;
    let r = ferry_sync::gc::gc(&store, &ferry_sync::gc::GcOptions { dry_run, host: host(&None) })?;
    if g.json {
        output::json(&DryRun { dry_run, report: &r });
    } else if !g.quiet {
        println!(
            "{}: {} of {} dropped, {} repacked into {}; {} {}",
            if dry_run { "dry run" } else { "gc done" },
            r.packs_dropped,
            output::count(r.packs_before as u64, "pack"),
            r.packs_repacked,
            r.packs_written,
            if dry_run { "would free" } else { "freed" },
            size(r.bytes_freed)
        );
    }
    Ok(0)
}

/// `ferry man`: the manual page of ferry on stdout, or one page per
/// command (`ferry.1`, `ferry-backup.1`, `ferry-store-init.1`, ...) in DIR.
fn cmd_man(out: Option<&Path>) -> Result<i32> {
    // The man page's last section holds what `--help` says before and
    // after the commands: locations, passphrase sources, exit codes.
    let extra: &'static str = Box::leak(format!("{}\n\n{}", crate::args::BEFORE_HELP, crate::error::EXIT_CODES).into_boxed_str());
    let cmd = <Cli as clap::CommandFactory>::command().after_help(extra);
    let Some(dir) = out else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(0);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fn write_pages(cmd: clap::Command, name: &str, dir: &Path) -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut f = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
        // clap names are &'static str; this runs once per page of a short-lived command.
        let title: &'static str = Box::leak(name.to_string().into_boxed_str());
        clap_mangen::Man::new(cmd.clone().name(title)).render(&mut f)?;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            write_pages(sub.clone(), &format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    write_pages(cmd, "ferry", dir)?;
    Ok(0)
}

/// `ferry mount`: the store's backend counts what it reads (reported by
/// `ferry cache status --json`); the library serves until unmounted.
fn cmd_mount(g: &Global, a: &MountArgs) -> Result<i32> {
    let Some(mountpoint) = &a.mountpoint else { return cmd_mount_replica(g, Path::new(&a.loc), a.cache_size) };
    let counters = Arc::new(ferry_mount::Counters::default());
    let counting = ferry_mount::counting::Counting::new(backend(&a.loc)?, counters.store.clone());
    let store = open_on(g, &a.loc, Arc::new(counting))?;
    let cache_dir = cache_dir(g).context("no cache folder: set FERRY_CACHE_DIR or --cache-dir")?;
    let opts = ferry_mount::MountOptions { mountpoint: mountpoint.clone(), cache_dir, quota: a.cache_size, location: a.loc.clone() };
    let quiet = g.quiet || g.json;
    ferry_mount::mount(store, counters, &opts, |m| {
        if !quiet {
            eprintln!(
                "ferry: {} of {} mounted at {} (block cache {}, quota {}); Ctrl-C or `fusermount3 -u {}` unmounts",
                output::count(m.snapshots as u64, "snapshot"),
                a.loc,
                mountpoint.display(),
                m.cache.display(),
                size(a.cache_size),
                mountpoint.display()
            );
        }
    })?;
    Ok(0)
}

/// `ferry mount DIR`: the on-demand replica DIR served over itself, its
/// store the one it last synced with.
fn cmd_mount_replica(g: &Global, dir: &Path, quota: u64) -> Result<i32> {
    let opening = || format!("opening replica {}", dir.display());
    // A mount whose process was killed is in the way of a new one.
    ferry_mount::clear_dead_mount(dir);
    let mut r = Replica::open_unserved(dir).with_context(opening)?;
    let root = r.root().to_path_buf();
    if !r.is_on_demand()? {
        return Err(ferry_mount::Error::NotOnDemand { path: root }.into());
    }
    if ferry_sync::ondemand::is_served(&root, &r.replica_id) {
        return Err(ferry_mount::Error::AlreadyMounted { path: root }.into());
    }
    match key_file(g)? {
        Some(master) => r.unlock_with_key(master),
        None => r.unlock(&passphrase::existing(&format!("replica {}", root.display()))?),
    }
    .with_context(opening)?;
    let loc = r
        .remotes()?
        .into_iter()
        .max_by_key(|x| x.last_sync_ns.unwrap_or(0))
        .map(|x| x.location)
        .ok_or(ferry_sync::Error::NoRemotes { root: root.clone() })?;
    let counters = Arc::new(ferry_mount::Counters::default());
    let counting = ferry_mount::counting::Counting::new(backend(&loc)?, counters.store.clone());
    let (store, online) = ferry_mount::ondemand::open_store(&root, &loc, Arc::new(counting), r.keys().master(), cache(g))
        .with_context(|| format!("opening store {loc}"))?;
    if !online && !g.quiet {
        eprintln!("ferry: store {loc} is away: pinned and hydrated files work; opening a placeholder fails (EIO) until the store is back");
    }
    let opts = ferry_mount::ondemand::OnDemandOptions {
        dir: root.clone(),
        replica_id: r.replica_id,
        cache_dir: cache_dir(g).context("no cache folder: set FERRY_CACHE_DIR or --cache-dir")?,
        quota,
        location: loc.clone(),
    };
    // The replica (and its lock) is let go: commands run inside the mount open it.
    drop(r);
    let quiet = g.quiet || g.json;
    ferry_mount::ondemand::mount(store, counters, &opts, |m| {
        if !quiet {
            eprintln!(
                "ferry: on-demand replica {} mounted (store {loc}, block cache {}, quota {}); Ctrl-C or `fusermount3 -u {}` unmounts",
                root.display(),
                m.cache.display(),
                size(quota),
                root.display()
            );
        }
    })?;
    Ok(0)
}

/// `ferry pin` / `ferry unpin`: the running mount does the work.
fn cmd_pin(g: &Global, paths: &[PathBuf], pin: bool) -> Result<i32> {
    let mut out = Vec::new();
    for p in paths {
        let progress = Arc::new(Progress::default());
        let bar = if pin { Some(Bar::start(g, progress.clone(), "pin")) } else { None };
        let r = ferry_mount::control::request(p, if pin { "pin" } else { "unpin" }, &|done, total| {
            progress.total_bytes.store(total, std::sync::atomic::Ordering::Relaxed);
            progress.bytes.store(done, std::sync::atomic::Ordering::Relaxed);
        });
        if let Some(b) = bar {
            b.finish();
        }
        let v = r?;
        if !g.json && !g.quiet {
            if pin {
                println!(
                    "pinned {}: {} files, {} ({} fetched from the store)",
                    p.display(),
                    v["files"],
                    size(v["bytes"].as_u64().unwrap_or(0)),
                    size(v["fetched_bytes"].as_u64().unwrap_or(0))
                );
            } else {
                for u in v["unpinned"].as_array().into_iter().flatten() {
                    println!("unpinned {}", u.as_str().unwrap_or(""));
                }
            }
        }
        out.push(v);
    }
    if g.json {
        output::json(&out);
    }
    Ok(0)
}

/// `ferry free`: the running mount of the on-demand replica does the work;
/// files it refused are listed (exit 3 when others were freed, else 1).
fn cmd_free(g: &Global, paths: &[PathBuf]) -> Result<i32> {
    let (mut out, mut freed, mut refused) = (Vec::new(), 0usize, 0usize);
    for p in paths {
        let v = ferry_mount::control::request(p, "free", &|_, _| {})?;
        let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
        freed += list("freed").len();
        refused += list("refused").len();
        if !g.json {
            for u in list("unpinned") {
                if !g.quiet {
                    println!("unpinned {}", u.as_str().unwrap_or(""));
                }
            }
            if !g.quiet {
                println!(
                    "freed {}: {}, {} given back",
                    p.display(),
                    output::count(list("freed").len() as u64, "file"),
                    size(v["freed_bytes"].as_u64().unwrap_or(0))
                );
            }
            for r in list("refused") {
                eprintln!("ferry: not freed: {}: {}", r["path"].as_str().unwrap_or(""), r["reason"].as_str().unwrap_or(""));
            }
        }
        out.push(v);
    }
    if g.json {
        output::json(&out);
    }
    Ok(match (refused, freed) {
        (0, _) => 0,
        (_, 0) => 1,
        _ => 3,
    })
}

fn cmd_cache_status(g: &Global) -> Result<i32> {
    let dir = cache_dir(g).context("no cache folder: set FERRY_CACHE_DIR or --cache-dir")?;
    let caches = ferry_mount::status::status(&dir)?;
    if g.json {
        output::json(&caches);
        return Ok(0);
    }
    if caches.is_empty() {
        println!("no block cache under {}", dir.display());
    }
    for c in &caches {
        let u = &c.usage;
        println!("store {} ({})", &c.store_id[..16], c.dir.display());
        println!(
            "  used {} in {} blocks, quota {}, pinned {} in {} blocks",
            size(u.bytes),
            u.blocks,
            size(u.quota),
            size(u.pinned_bytes),
            u.pinned_blocks
        );
        for p in &c.pins {
            println!("  pinned {} ({} files, {})", p["path"].as_str().unwrap_or("?"), p["files"], size(p["bytes"].as_u64().unwrap_or(0)));
        }
        for m in &c.mounts {
            println!(
                "  mounted at {} by pid {}: {} read from the store",
                m["mountpoint"].as_str().unwrap_or("?"),
                m["pid"],
                size(m["stats"]["store_read_bytes"].as_u64().unwrap_or(0))
            );
            let h = &m["stats"]["hydrated"];
            if let Some(b) = h["bytes"].as_u64() {
                println!(
                    "    hydrated files {} of quota {} ({} files); {} files given back by the quota",
                    size(b),
                    size(h["quota"].as_u64().unwrap_or(0)),
                    h["files"],
                    h["evicted_files"]
                );
            }
        }
    }
    Ok(0)
}
