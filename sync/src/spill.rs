//! Lists that may grow past what should be held in memory, read back in
//! sorted order: the `--json` reports of backup and restore list every
//! path read or written, which for a first backup of a few hundred
//! thousand files was tens of MiB of a run's peak memory.
//!
//! A [`Spill`] keeps entries in memory up to a bound, then sorts them and
//! writes them as a run to an unnamed temp file ([`tempfile::tempfile`]:
//! gone when closed, even after a crash). [`Spill::finish`] merges the
//! runs into one sorted [`Sorted`] list, which is read from the file as it
//! is printed. When the temp file cannot be written (no room in the temp
//! folder), entries stay in memory: the list is never wrong, only larger.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::change::{ChangeKind, PathChange};

/// Entries held in memory before a run is written (estimated bytes).
pub const MEMORY_BOUND: usize = 1 << 20;
/// Bytes read ahead per run while merging.
const READ_AHEAD: usize = 16 << 10;

/// What a [`Spill`] can hold: encoded and decoded in its temp file, and
/// an estimate of the memory one takes.
pub trait Record: Ord + Sized {
    /// Appends the encoding.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes one from the front of `b`: it and the bytes it took.
    fn decode(b: &[u8]) -> Option<(Self, usize)>;
    /// About how many bytes of memory it holds.
    fn weight(&self) -> usize;
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn get_str(b: &[u8]) -> Option<(String, usize)> {
    let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(b.get(4..4 + len)?).ok()?;
    Some((s.to_string(), 4 + len))
}

impl Record for String {
    fn encode(&self, out: &mut Vec<u8>) {
        put_str(out, self);
    }
    fn decode(b: &[u8]) -> Option<(Self, usize)> {
        get_str(b)
    }
    fn weight(&self) -> usize {
        self.capacity() + std::mem::size_of::<String>()
    }
}

const KINDS: [ChangeKind; 5] = [ChangeKind::New, ChangeKind::Modified, ChangeKind::Deleted, ChangeKind::Renamed, ChangeKind::Metadata];

impl Record for PathChange {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(KINDS.iter().position(|k| *k == self.kind).expect("every kind is listed") as u8);
        put_str(out, &self.path);
        match &self.from {
            None => out.push(0),
            Some(f) => {
                out.push(1);
                put_str(out, f);
            }
        }
    }
    fn decode(b: &[u8]) -> Option<(Self, usize)> {
        let kind = *KINDS.get(*b.first()? as usize)?;
        let (path, n) = get_str(&b[1..])?;
        let mut at = 1 + n;
        let from = match *b.get(at)? {
            0 => None,
            _ => {
                let (f, n) = get_str(&b[at + 1..])?;
                at += n;
                Some(f)
            }
        };
        Some((PathChange { path, kind, from }, at + 1))
    }
    fn weight(&self) -> usize {
        std::mem::size_of::<PathChange>() + self.path.capacity() + self.from.as_ref().map_or(0, String::capacity)
    }
}

/// A list being filled: see the module docs.
#[derive(Debug)]
pub struct Spill<T> {
    memory: Vec<T>,
    weight: usize,
    bound: usize,
    /// The temp file, and the runs written to it (byte ranges).
    file: Option<File>,
    runs: Vec<(u64, u64)>,
    /// The temp file failed once: keep everything in memory from then on.
    in_memory_only: bool,
    len: u64,
}

impl<T: Record> Default for Spill<T> {
    fn default() -> Self {
        Self::with_bound(MEMORY_BOUND)
    }
}

impl<T: Record> Spill<T> {
    /// A list that writes a run whenever its entries in memory weigh
    /// more than `bound` bytes (tests use small ones).
    pub fn with_bound(bound: usize) -> Spill<T> {
        Spill { memory: Vec::new(), weight: 0, bound, file: None, runs: Vec::new(), in_memory_only: false, len: 0 }
    }

    /// Adds an entry.
    pub fn push(&mut self, t: T) {
        self.weight += t.weight();
        self.memory.push(t);
        self.len += 1;
        if self.weight > self.bound && !self.in_memory_only && self.write_run().is_err() {
            self.in_memory_only = true;
        }
    }

    /// How many entries were added.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when none were.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn write_run(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile()?),
        };
        self.memory.sort();
        let mut buf = Vec::with_capacity(self.weight);
        for t in &self.memory {
            t.encode(&mut buf);
        }
        let start = self.runs.last().map_or(0, |r| r.1);
        file.write_all_at(&buf, start)?;
        self.runs.push((start, start + buf.len() as u64));
        self.memory = Vec::new();
        self.weight = 0;
        Ok(())
    }

    /// The whole list in order. Runs on disk are merged into one, written
    /// after them in the same file (the file then holds the list twice,
    /// which is still far less than memory would have).
    pub fn finish(mut self) -> Sorted<T>
    where
        T: Clone,
    {
        self.memory.sort();
        let len = self.len;
        let Some(file) = self.file.take().filter(|_| !self.runs.is_empty()) else {
            return Sorted { memory: self.memory, file: None, broken: None, len };
        };
        match merge(&file, &self.runs, &self.memory) {
            Ok(range) => Sorted { memory: Vec::new(), file: Some((Arc::new(file), range)), broken: None, len },
            // The merged run could not be written: read the runs back into
            // memory instead (what holding the list all along would cost).
            Err(_) => {
                let mut all = std::mem::take(&mut self.memory);
                for &(at, end) in &self.runs {
                    let mut r = RunReader { file: &file, at, end, buf: Vec::new(), pos: 0 };
                    loop {
                        match r.next() {
                            Ok(Some(t)) => all.push(t),
                            Ok(None) => break,
                            Err(e) => return Sorted { memory: Vec::new(), file: None, broken: Some(e.to_string()), len },
                        }
                    }
                }
                all.sort();
                Sorted { memory: all, file: None, broken: None, len }
            }
        }
    }
}

/// Reads one run ahead a block at a time.
struct RunReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl RunReader<'_> {
    fn next<T: Record>(&mut self) -> io::Result<Option<T>> {
        loop {
            if let Some((t, n)) = T::decode(&self.buf[self.pos..]) {
                self.pos += n;
                return Ok(Some(t));
            }
            if self.at >= self.end {
                if self.pos < self.buf.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "a list's temp file ends inside an entry"));
                }
                return Ok(None);
            }
            // Keep the unread tail, read more after it.
            self.buf.drain(..self.pos);
            self.pos = 0;
            let want = (self.end - self.at).min(READ_AHEAD.max(self.buf.len() * 2) as u64) as usize;
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            self.file.read_exact_at(&mut self.buf[old..], self.at)?;
            self.at += want as u64;
        }
    }
}

/// Merges the runs and the sorted entries still in memory into one run
/// written after them; its byte range.
fn merge<T: Record + Clone>(file: &File, runs: &[(u64, u64)], memory: &[T]) -> io::Result<(u64, u64)> {
    let mut readers: Vec<RunReader> = runs.iter().map(|&(at, end)| RunReader { file, at, end, buf: Vec::new(), pos: 0 }).collect();
    let mut memory = memory.iter();
    // Sources: the runs, then memory (index `runs.len()`).
    let mut pull = |i: usize| -> io::Result<Option<T>> {
        match readers.get_mut(i) {
            Some(r) => r.next(),
            None => Ok(memory.next().cloned()),
        }
    };
    let mut heap = BinaryHeap::new();
    for i in 0..=runs.len() {
        if let Some(t) = pull(i)? {
            heap.push(Reverse((t, i)));
        }
    }
    let start = runs.last().map_or(0, |r| r.1);
    let mut at = start;
    let mut out = Vec::with_capacity(4 * READ_AHEAD);
    while let Some(Reverse((t, i))) = heap.pop() {
        t.encode(&mut out);
        if out.len() >= 4 * READ_AHEAD {
            file.write_all_at(&out, at)?;
            at += out.len() as u64;
            out.clear();
        }
        if let Some(t) = pull(i)? {
            heap.push(Reverse((t, i)));
        }
    }
    file.write_all_at(&out, at)?;
    Ok((start, at + out.len() as u64))
}

/// A finished list, in order; cheap to clone (the temp file is shared).
#[derive(Clone, Debug)]
pub struct Sorted<T> {
    memory: Vec<T>,
    file: Option<(Arc<File>, (u64, u64))>,
    /// The list was lost: its temp file could neither take the merged run
    /// nor be read back. Reading the list gives this error.
    broken: Option<String>,
    len: u64,
}

impl<T> Default for Sorted<T> {
    fn default() -> Self {
        Sorted { memory: Vec::new(), file: None, broken: None, len: 0 }
    }
}

impl<T: Record + Clone> Sorted<T> {
    /// How many entries it has.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when it has none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in order. Reading the temp file back can fail (it was
    /// damaged or its disk went away): that error ends the iteration.
    pub fn iter(&self) -> impl Iterator<Item = io::Result<T>> + '_ {
        let mut reader = self.file.as_ref().map(|(f, (at, end))| RunReader { file: f, at: *at, end: *end, buf: Vec::new(), pos: 0 });
        let mut memory = self.memory.iter();
        let mut broken = self.broken.clone();
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            if let Some(e) = broken.take() {
                done = true;
                return Some(Err(io::Error::other(format!("the list was lost: {e}"))));
            }
            let next = match &mut reader {
                Some(r) => r.next().transpose(),
                None => memory.next().cloned().map(Ok),
            };
            done = matches!(next, None | Some(Err(_)));
            next
        })
    }

    /// All entries in a `Vec` (tests, small lists).
    pub fn to_vec(&self) -> io::Result<Vec<T>> {
        self.iter().collect()
    }
}

impl<T: Record + Clone + serde::Serialize> serde::Serialize for Sorted<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.len as usize))?;
        for t in self.iter() {
            seq.serialize_element(&t.map_err(|e| S::Error::custom(format!("reading back a list from its temp file: {e}")))?)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn change() -> impl Strategy<Value = PathChange> {
        ("[a-c/é]{0,12}", 0..5usize, proptest::option::of("[a-b/]{0,6}")).prop_map(|(path, k, from)| PathChange {
            path,
            kind: KINDS[k],
            from,
        })
    }

    /// When the merged run cannot be written (here: the temp file is
    /// swapped for a read-only handle on the same file once the runs are
    /// in it), `finish` reads the runs back into memory: the list is
    /// whole and sorted, only held in memory.
    #[test]
    fn a_merge_that_cannot_write_falls_back_to_memory() {
        use std::os::fd::AsRawFd;
        let items: Vec<String> = (0..5000u32).map(|i| format!("d{:03}/f{:05}", i.wrapping_mul(7919) % 997, i)).collect();
        let mut l = Spill::with_bound(4096);
        for s in &items {
            l.push(s.clone());
        }
        assert!(l.runs.len() > 1, "the test needs several runs on disk");
        let fd = l.file.as_ref().expect("a temp file").as_raw_fd();
        let read_only = File::open(format!("/proc/self/fd/{fd}")).expect("reopen the temp file read-only");
        l.file = Some(read_only);
        let sorted = l.finish();
        assert!(sorted.file.is_none() && sorted.broken.is_none(), "the merge was expected to fail and fall back");
        let mut want = items;
        want.sort();
        assert_eq!(sorted.len(), want.len() as u64);
        assert_eq!(sorted.to_vec().unwrap(), want);
    }

    proptest! {
        #[test]
        fn a_spilled_list_reads_back_sorted_and_whole(items in proptest::collection::vec(change(), 0..400), bound in 0usize..3000) {
            let mut l = Spill::with_bound(bound);
            for c in &items {
                l.push(c.clone());
            }
            let spilled = !l.runs.is_empty();
            prop_assert_eq!(spilled, bound < items.iter().map(Record::weight).sum::<usize>() && !items.is_empty());
            let sorted = l.finish();
            let mut want = items.clone();
            want.sort();
            prop_assert_eq!(sorted.len(), want.len() as u64);
            prop_assert_eq!(sorted.to_vec().unwrap(), want.clone());
            // A clone reads the same; JSON is the same as a Vec's.
            prop_assert_eq!(serde_json::to_string(&sorted.clone()).unwrap(), serde_json::to_string(&want).unwrap());
        }
    }

    #[test]
    fn strings_spill_past_the_bound_and_memory_holds_less_than_it() {
        let mut l: Spill<String> = Spill::with_bound(10_000);
        for i in (0..50_000u32).rev() {
            l.push(format!("dir{}/file{i:06}", i % 7));
            assert!(l.weight <= 10_000 + 100, "the bound holds while filling");
        }
        assert!(l.runs.len() > 100, "{} runs", l.runs.len());
        let s = l.finish();
        assert!(s.memory.is_empty(), "a spilled list is read from its file");
        let got = s.to_vec().unwrap();
        assert_eq!(got.len(), 50_000);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(got[0], "dir0/file000000");
    }

    #[test]
    fn a_record_cut_short_is_an_error_not_a_shorter_list() {
        let file = tempfile::tempfile().unwrap();
        let mut buf = Vec::new();
        "abc".to_string().encode(&mut buf);
        "abd".to_string().encode(&mut buf);
        file.write_all_at(&buf, 0).unwrap();
        let s: Sorted<String> =
            Sorted { memory: Vec::new(), file: Some((Arc::new(file), (0, buf.len() as u64 - 1))), broken: None, len: 2 };
        let got: Vec<io::Result<String>> = s.iter().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap(), "abc");
        assert!(got[1].is_err());
        assert!(serde_json::to_string(&s).is_err());
    }
}
