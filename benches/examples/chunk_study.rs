//! Chunk-size study: what the average chunk size costs in blocks, index
//! size, store size, memory, and bytes added by small edits.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo run --release -p ferry-benches --example chunk_study
//! ```
//!
//! Dataset (deterministic, written once to a temp folder, ~256 MiB):
//! - `src/`: Rust-like text files of 1–64 KiB (log-uniform sizes) up to 128 MiB;
//! - `big.bin`: 128 MiB, 1 MiB segments of which 7 in 8 are incompressible
//!   and 1 in 8 is text (a VM image, a media library, an archive).
//!
//! For each average size (min = avg/4, max = avg*4) a child process (so
//! peak RSS is per setting) writes the whole dataset into a fresh store
//! (LocalDir backend, redb index cache on disk), measures `packs/`,
//! `index/` and the cache, then runs one more writer session per edit of
//! `big.bin` and reports that session's `stored_bytes`:
//! (a) 4 KiB overwritten in the middle, (b) one byte inserted at the start,
//! (c) 1 MiB appended.

use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ferry_benches::{SourceGen, dir_size, fill_random, init_store, peak_rss_kib, random_bytes};
use ferry_store::{CacheLocation, ChunkerParams, PACKS_DIR, StoreWriter};
use rayon::prelude::*;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const SRC_TOTAL: u64 = 128 * MIB;
const BIG_LEN: u64 = 128 * MIB;
const EDIT_OFFSET: u64 = BIG_LEN / 2;
const EDIT_SAMPLES: u64 = 16;
const AVGS: [u32; 4] = [64 << 10, 256 << 10, 1 << 20, 2 << 20];

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child" {
        return child(Path::new(&args[2]), args[3].parse()?);
    }
    let data = tempfile::tempdir()?;
    let t = Instant::now();
    let (files, src_bytes) = make_dataset(data.path())?;
    eprintln!(
        "dataset: {files} source files ({:.1} MiB) + big.bin ({} MiB), generated in {:.1}s",
        src_bytes as f64 / MIB as f64,
        BIG_LEN / MIB,
        t.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for avg in AVGS {
        eprintln!("avg {} KiB ...", avg / 1024);
        let out = Command::new(&exe).arg("--child").arg(data.path()).arg(avg.to_string()).output()?;
        if !out.status.success() {
            return Err(format!("child for avg {avg} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        rows.push(Row::parse(&String::from_utf8(out.stdout)?)?);
    }
    print_table(&rows, files, src_bytes + BIG_LEN);
    Ok(())
}

/// Writes `src/` and `big.bin`; returns the number of source files and their bytes.
fn make_dataset(dir: &Path) -> Result<(usize, u64), BoxError> {
    // Source files: log-uniform sizes in 1..=64 KiB, 64 folders.
    let mut sizes = Vec::new();
    let mut rng = ferry_benches::Rng::new(0xf11e5);
    let mut total = 0;
    while total < SRC_TOTAL {
        let exp = rng.below(1 << 16) as f64 / (1 << 16) as f64 * 6.0; // 2^0..2^6 KiB
        let size = ((2f64.powf(exp) * KIB as f64) as u64).min(SRC_TOTAL - total).max(1);
        sizes.push(size);
        total += size;
    }
    sizes.par_iter().enumerate().try_for_each(|(i, &size)| -> Result<(), BoxError> {
        let folder = dir.join("src").join(format!("d{:02}", i % 64));
        std::fs::create_dir_all(&folder)?;
        let mut text = Vec::with_capacity(size as usize + 256);
        SourceGen::new(i as u64).fill_to(&mut text, size as usize);
        std::fs::write(folder.join(format!("f{i:05}.rs")), &text)?;
        Ok(())
    })?;
    // big.bin: 1 MiB segments, 7 in 8 incompressible.
    let mut w = BufWriter::new(File::create(dir.join("big.bin"))?);
    let mut seg = vec![0u8; MIB as usize];
    for k in 0..BIG_LEN / MIB {
        if k % 8 == 3 {
            seg.clear();
            SourceGen::new(1_000_000 + k).fill_to(&mut seg, MIB as usize);
        } else {
            fill_random(format!("big segment {k}").as_bytes(), &mut seg);
        }
        w.write_all(&seg)?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((sizes.len(), total))
}

fn source_files(dir: &Path) -> Result<Vec<PathBuf>, BoxError> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(dir.join("src"))? {
        for f in std::fs::read_dir(d?.path())? {
            out.push(f?.path());
        }
    }
    out.sort();
    Ok(out)
}

fn put_file(w: &StoreWriter<'_>, r: impl Read + Send) -> Result<(), BoxError> {
    w.put_reader(r)?;
    Ok(())
}

/// One setting: writes the dataset, then each edit; prints `key=value` pairs.
fn child(data: &Path, avg: u32) -> Result<(), BoxError> {
    let params = ChunkerParams { min: avg / 4, avg, max: avg * 4 };
    let work = tempfile::tempdir()?;
    let store_dir = work.path().join("store");
    let cache_dir = work.path().join("cache");
    let store = init_store(&store_dir, params, CacheLocation::Dir(cache_dir.clone()))?;
    let big = data.join("big.bin");

    let t = Instant::now();
    let w = store.writer();
    source_files(data)?.par_iter().try_for_each(|p| put_file(&w, File::open(p)?))?;
    let src_blocks = w.stats().blocks;
    put_file(&w, File::open(&big)?)?;
    let s = w.finish()?;
    let secs = t.elapsed().as_secs_f64();

    let mut kv = vec![
        ("avg", avg as u64),
        ("blocks", s.blocks),
        ("new_blocks", s.new_blocks),
        ("big_blocks", s.blocks - src_blocks),
        ("raw", s.new_raw_bytes),
        ("stored", s.stored_bytes),
        ("packs", dir_size(&store_dir.join(PACKS_DIR))),
        ("index", dir_size(&store_dir.join(ferry_store::INDEX_DIR))),
        ("store", dir_size(&store_dir)),
        ("cache", dir_size(&cache_dir)),
        ("write_ms", (secs * 1000.0) as u64),
    ];

    // (a) 4 KiB overwritten in the middle.
    let patch = random_bytes(b"edit a", 4096);
    let mut tail = File::open(&big)?;
    tail.seek(SeekFrom::Start(EDIT_OFFSET + patch.len() as u64))?;
    let a = File::open(&big)?.take(EDIT_OFFSET).chain(Cursor::new(patch)).chain(tail);
    // (b) one byte inserted at the start.
    let b = Cursor::new(vec![b'#']).chain(File::open(&big)?);
    // (c) 1 MiB appended.
    let c = File::open(&big)?.chain(Cursor::new(random_bytes(b"edit c", MIB as usize)));
    let edits: [(&str, Box<dyn Read + Send>); 3] = [("a", Box::new(a)), ("b", Box::new(b)), ("c", Box::new(c))];
    for (name, reader) in edits {
        let w = store.writer();
        let (_, len) = w.put_reader(reader)?;
        let s = w.finish()?;
        kv.push((
            if name == "a" {
                "a_bytes"
            } else if name == "b" {
                "b_bytes"
            } else {
                "c_bytes"
            },
            s.stored_bytes,
        ));
        kv.push((
            if name == "a" {
                "a_new"
            } else if name == "b" {
                "b_new"
            } else {
                "c_new"
            },
            s.new_blocks,
        ));
        kv.push((
            if name == "a" {
                "a_len"
            } else if name == "b" {
                "b_len"
            } else {
                "c_len"
            },
            len,
        ));
    }
    // (a) again at 16 spread-out offsets: one edit's cost depends on the
    // length of the one chunk it hits, so a single sample is noisy.
    let mut sum = 0;
    for k in 0..EDIT_SAMPLES {
        let at = (2 * k + 1) * BIG_LEN / (2 * EDIT_SAMPLES) / 4096 * 4096;
        let patch = random_bytes(format!("edit a{k}").as_bytes(), 4096);
        let mut tail = File::open(&big)?;
        tail.seek(SeekFrom::Start(at + patch.len() as u64))?;
        let w = store.writer();
        w.put_reader(File::open(&big)?.take(at).chain(Cursor::new(patch)).chain(tail))?;
        sum += w.finish()?.stored_bytes;
    }
    kv.push(("a_mean", sum / EDIT_SAMPLES));
    kv.push(("rss_kib", peak_rss_kib().unwrap_or(0)));
    let line: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{}", line.join(" "));
    Ok(())
}

struct Row(Vec<(String, u64)>);

impl Row {
    fn parse(line: &str) -> Result<Row, BoxError> {
        let mut v = Vec::new();
        for kv in line.split_whitespace() {
            let (k, x) = kv.split_once('=').ok_or("bad child output")?;
            v.push((k.to_string(), x.parse()?));
        }
        Ok(Row(v))
    }
    fn get(&self, k: &str) -> u64 {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| *v).unwrap_or(0)
    }
}

fn human(b: u64) -> String {
    let b = b as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if b >= MIB as f64 {
        format!("{:.2} MiB", b / MIB as f64)
    } else if b >= KIB as f64 {
        format!("{:.1} KiB", b / KIB as f64)
    } else {
        format!("{b} B")
    }
}

fn size_label(avg: u64) -> String {
    if avg >= MIB { format!("{} MiB", avg / MIB) } else { format!("{} KiB", avg / KIB) }
}

fn print_table(rows: &[Row], files: usize, dataset: u64) {
    const TB: f64 = 1e12;
    println!(
        "Dataset: {files} text files of 1-64 KiB (128 MiB) + one 128 MiB file (7/8 incompressible) = {} MiB. \
         min = avg/4, max = avg*4; edits are to the 128 MiB file, each its own writer session.\n",
        dataset / MIB
    );
    println!(
        "| avg chunk (min/max) | blocks (128 MiB file) | index/ bytes | packs/ bytes | store bytes | redb cache | index per TB, this mix / large files | (a) 4 KiB overwrite mid-file | (a) mean of 16 offsets | (b) 1-byte insert | (c) 1 MiB append | write MB/s | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let avg = r.get("avg");
        let index = r.get("index");
        let per_tb_mix = index as f64 / dataset as f64 * TB;
        let per_tb_big = (index as f64 / r.get("new_blocks") as f64) * (TB / (BIG_LEN as f64 / r.get("big_blocks") as f64));
        let edit = |k: &str| format!("{} ({} blk)", human(r.get(&format!("{k}_bytes"))), r.get(&format!("{k}_new")));
        println!(
            "| {} ({}/{}) | {} ({}) | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {:.0} | {} |",
            size_label(avg),
            size_label(avg / 4),
            size_label(avg * 4),
            r.get("new_blocks"),
            r.get("big_blocks"),
            index,
            r.get("packs"),
            r.get("store"),
            human(r.get("cache")),
            human(per_tb_mix as u64),
            human(per_tb_big as u64),
            edit("a"),
            human(r.get("a_mean")),
            edit("b"),
            edit("c"),
            dataset as f64 / 1e6 / (r.get("write_ms") as f64 / 1000.0),
            human(r.get("rss_kib") * KIB),
        );
    }
}
