//! Reading many blocks with few requests: restore, pull and clone.
//!
//! A reader that knows which blocks it will want, in which order (the
//! files it is about to write, each a list of block IDs), hands that list
//! to [`Store::prefetch`]. A scheduler thread walks it in order, looks each
//! block up in the index cache and gathers the blocks it has not seen
//! into batches; each batch is grouped by pack, sorted by offset, and
//! blocks of one pack that lie close together (gaps of at most
//! [`MAX_GAP`]) become one ranged read of at most [`MAX_REQUEST`] bytes.
//! Up to [`Backend::concurrency`](crate::backend::Backend::concurrency)
//! such requests are in flight at once, one per I/O thread; each thread
//! opens and verifies the blocks it read (tag, length, block ID: exactly
//! [`open_block`]) and hands them to the consumers, who take the blocks
//! of one unit (a file) in its order through a [`UnitReader`].
//!
//! Memory stays flat: the plaintext of blocks read or being read and not
//! yet taken is at most the window ([`FetchOptions::window`], one block
//! more when a single block is larger); the scheduler waits for room
//! before it asks for more. A block listed several times in the window is
//! read once and handed out as often as it is listed.
//!
//! Failures keep the old precision: a block that does not verify fails
//! for the consumer that takes it, with the error naming the block and
//! its pack; a request that fails as a whole (a pack gone since the index
//! was read, a truncated pack, a lost connection) leaves each of its
//! blocks to be read alone by [`Store::read_block`], which refreshes the
//! index cache and names what is wrong block by block.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::cache::Location;
use crate::envelope::Kind;
use crate::error::{Error, Result};
use crate::id::{BlockId, ObjectName};
use crate::layout::{PACKS_DIR, object_path};
use crate::store::{MAX_TREE_LEN, Store, open_block};

/// Largest run of unwanted bytes between two wanted blocks of one pack
/// that is still read as part of the same request.
pub const MAX_GAP: u64 = 128 << 10;

/// Largest single read request, in sealed bytes (a single larger block
/// goes alone).
pub const MAX_REQUEST: u64 = 8 << 20;

/// Smallest batch a scheduler sends when the window allows more.
const MIN_REQUEST: u64 = 512 << 10;

/// Plaintext bytes held by default from a store far away (ssh, S3): read
/// or being read, not yet taken. Enough requests in flight to hide a
/// round trip.
pub const DEFAULT_WINDOW: u64 = 32 << 20;

/// The same from a local folder, where a read costs no round trip. A
/// quarter of [`DEFAULT_WINDOW`] restored a 512 MiB random file as fast
/// (median of 5, interleaved: 1.24 s both) with 37 instead of 90 MiB
/// peak RSS, and 20,000 small files with 50 instead of 91 MiB. An eighth
/// (4 MiB): 200,000 small files in 4.84-5.18 s instead of 4.66-4.87 s,
/// with 28.6-29.4 instead of 34.4-37.0 MiB; in `rss_growth.sh` restore
/// 26.2 -> 21.1 MiB and pull 38.2 -> 33.6 MiB.
pub const LOCAL_WINDOW: u64 = 4 << 20;

/// Most I/O threads one prefetch starts.
const MAX_IO_THREADS: usize = 32;

/// How a [`Store::prefetch`] reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct FetchOptions {
    /// Plaintext bytes of blocks read (or being read) and not yet taken;
    /// 0: [`LOCAL_WINDOW`] from a local folder, else [`DEFAULT_WINDOW`].
    pub window: u64,
    /// Read requests in flight; 0: the backend's
    /// [`concurrency`](crate::backend::Backend::concurrency).
    pub concurrency: usize,
}

/// What a prefetch did (for tests and reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Distinct blocks read through batched requests.
    pub blocks: u64,
    /// Read requests sent.
    pub requests: u64,
    /// Sealed bytes read (gaps between wanted blocks included).
    pub bytes: u64,
    /// Blocks read alone after their batch failed, or never located.
    pub fallbacks: u64,
    /// Most plaintext bytes held at once (read or being read, not yet taken).
    pub peak_held: u64,
}

enum Data {
    /// Asked for (or about to be); not arrived.
    Pending,
    Ready(Vec<u8>),
    /// Did not verify: the first consumer gets this error.
    Failed(Error),
    /// Read alone by the consumer ([`Store::read_block`]).
    Alone,
}

struct Slot {
    /// Uses scheduled and not yet taken or released.
    uses: u32,
    raw_len: u64,
    data: Data,
}

/// One ranged read: blocks of one pack between `start` and `end`.
struct Run {
    pack: ObjectName,
    start: u64,
    end: u64,
    blocks: Vec<(BlockId, Location)>,
}

struct State {
    slots: HashMap<BlockId, Slot>,
    /// Plaintext bytes of the slots.
    held: u64,
    /// The next (unit, position) the scheduler looks at; everything before
    /// it is scheduled (or skipped: a closed unit).
    cursor: (usize, usize),
    /// Units their consumer is done with: the scheduler skips what is left.
    closed: Vec<bool>,
    queue: VecDeque<Run>,
    scheduling_done: bool,
    stop: bool,
    stats: FetchStats,
}

/// A running prefetch over a list of units (see the module docs).
pub struct Prefetch<'a> {
    store: &'a Store,
    units: &'a [Vec<BlockId>],
    window: u64,
    target: u64,
    state: Mutex<State>,
    /// Consumers: a block arrived or the scheduler moved on.
    ready: Condvar,
    /// The scheduler: room in the window.
    room: Condvar,
    /// I/O threads: a request is queued.
    work: Condvar,
}

impl Store {
    /// Reads the blocks of `units` (each unit a list of block IDs in the
    /// order its consumer takes them; units are scheduled in order) ahead
    /// of `consume`, in batched ranged reads, several in flight; see the
    /// module docs of `fetch`. Consumers take blocks through
    /// [`Prefetch::unit`], typically several threads each claiming the
    /// next unit in order. Returns what `consume` returns and what the
    /// prefetch did.
    pub fn prefetch<T>(&self, units: &[Vec<BlockId>], opts: FetchOptions, consume: impl FnOnce(&Prefetch<'_>) -> T) -> (T, FetchStats) {
        let concurrency = if opts.concurrency == 0 { self.concurrency() } else { opts.concurrency }.clamp(1, MAX_IO_THREADS);
        let window = match opts.window {
            0 if self.backend().local_root().is_some() => LOCAL_WINDOW,
            0 => DEFAULT_WINDOW,
            w => w,
        };
        let target = (window / (2 * concurrency as u64)).clamp(MIN_REQUEST.min(window), MAX_REQUEST);
        let pf = Prefetch {
            store: self,
            units,
            window,
            target,
            state: Mutex::new(State {
                slots: HashMap::new(),
                held: 0,
                cursor: (0, 0),
                closed: vec![false; units.len()],
                queue: VecDeque::new(),
                scheduling_done: false,
                stop: false,
                stats: FetchStats::default(),
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            work: Condvar::new(),
        };
        let out = std::thread::scope(|s| {
            let pf = &pf;
            s.spawn(move || pf.schedule());
            for _ in 0..concurrency {
                s.spawn(move || pf.io());
            }
            let out = consume(pf);
            let mut st = pf.lock();
            st.stop = true;
            drop(st);
            pf.ready.notify_all();
            pf.room.notify_all();
            pf.work.notify_all();
            out
        });
        let stats = pf.lock().stats;
        (out, stats)
    }

    /// Reads every block of `ids` with batched, concurrent requests
    /// ([`Store::prefetch`]); the results are in the order of `ids`. The
    /// caller bounds the memory by the number of blocks it asks for.
    pub fn read_blocks(&self, ids: &[BlockId]) -> Vec<Result<Vec<u8>>> {
        let units = [ids.to_vec()];
        self.prefetch(&units, FetchOptions::default(), |pf| {
            let mut r = pf.unit(0);
            ids.iter().map(|id| r.take(id)).collect()
        })
        .0
    }
}

impl<'a> Prefetch<'a> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many units there are.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// True when there are no units.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The reader of unit `k`. Dropping it releases the blocks of the unit
    /// it did not take, so a consumer that gives up on a unit (a failed
    /// write) does not hold the window.
    pub fn unit(&self, k: usize) -> UnitReader<'_, 'a> {
        UnitReader { pf: self, unit: k, pos: 0 }
    }

    /// Frees one scheduled use of `id`; the slot goes when none is left
    /// and its data has arrived.
    fn release(&self, st: &mut State, id: &BlockId) {
        if let Some(slot) = st.slots.get_mut(id) {
            slot.uses = slot.uses.saturating_sub(1);
            if slot.uses == 0 && !matches!(slot.data, Data::Pending) {
                let n = slot.raw_len;
                st.slots.remove(id);
                st.held -= n;
            }
        }
    }

    /// The scheduler: walks the units in order (see the module docs).
    fn schedule(&self) {
        let mut unsent: Vec<(BlockId, Location)> = Vec::new();
        let mut unsent_bytes = 0u64;
        'units: for (k, ids) in self.units.iter().enumerate() {
            for (j, id) in ids.iter().enumerate() {
                {
                    let mut st = self.lock();
                    if st.stop {
                        break 'units;
                    }
                    if st.closed[k] {
                        st.cursor = (k + 1, 0);
                        continue 'units;
                    }
                    if let Some(slot) = st.slots.get_mut(id) {
                        slot.uses += 1;
                        st.cursor = (k, j + 1);
                        continue;
                    }
                }
                // A block the cache does not know (or with an absurd
                // length) is read alone by its consumer: `read_block`
                // refreshes the cache and names the problem.
                let loc = match self.store.locate(id) {
                    Ok(Some(loc)) if loc.raw_len <= limit(self.store, loc.kind) => Some(loc),
                    _ => None,
                };
                let raw = loc.map_or(0, |l| l.raw_len as u64);
                let mut st = self.lock();
                if st.held > 0 && st.held + raw > self.window {
                    // Full: send what is gathered, then wait for room for
                    // a whole batch (or an empty window), so requests stay
                    // large once consumers start taking blocks.
                    self.flush(&mut st, &mut unsent, &mut unsent_bytes);
                    let want = self.window.saturating_sub(self.target).max(1);
                    while !st.stop && st.held > 0 && (st.held + raw > self.window || st.held > want) {
                        st = self.room.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                }
                if st.stop {
                    break 'units;
                }
                st.cursor = (k, j + 1);
                if st.closed[k] {
                    st.cursor = (k + 1, 0);
                    continue 'units;
                }
                if let Some(slot) = st.slots.get_mut(id) {
                    // Scheduled by now after all (a duplicate).
                    slot.uses += 1;
                    continue;
                }
                match loc {
                    Some(loc) => {
                        st.slots.insert(*id, Slot { uses: 1, raw_len: raw, data: Data::Pending });
                        st.held += raw;
                        st.stats.peak_held = st.stats.peak_held.max(st.held);
                        unsent.push((*id, loc));
                        unsent_bytes += loc.length as u64;
                        if unsent_bytes >= self.target {
                            self.flush(&mut st, &mut unsent, &mut unsent_bytes);
                        }
                    }
                    None => {
                        st.stats.fallbacks += 1;
                        st.slots.insert(*id, Slot { uses: 1, raw_len: 0, data: Data::Alone });
                        drop(st);
                        self.ready.notify_all();
                    }
                }
            }
            let mut st = self.lock();
            if st.cursor.0 == k {
                st.cursor = (k + 1, 0);
            }
        }
        let mut st = self.lock();
        self.flush(&mut st, &mut unsent, &mut unsent_bytes);
        st.cursor = (self.units.len(), 0);
        st.scheduling_done = true;
        drop(st);
        self.ready.notify_all();
        self.work.notify_all();
    }

    /// Turns the gathered blocks into requests and queues them.
    fn flush(&self, st: &mut State, unsent: &mut Vec<(BlockId, Location)>, unsent_bytes: &mut u64) {
        if !unsent.is_empty() {
            st.queue.extend(plan_runs(std::mem::take(unsent)));
            self.work.notify_all();
        }
        *unsent_bytes = 0;
        // Consumers waiting for the cursor to pass their block.
        self.ready.notify_all();
    }

    /// An I/O thread: runs queued requests until the scheduler is done
    /// and the queue is empty.
    fn io(&self) {
        loop {
            let run = {
                let mut st = self.lock();
                loop {
                    if st.stop {
                        return;
                    }
                    if let Some(r) = st.queue.pop_front() {
                        break r;
                    }
                    if st.scheduling_done {
                        return;
                    }
                    st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            };
            let path = object_path(PACKS_DIR, &run.pack);
            let got = self.store.backend().read_range(&path, run.start, run.end - run.start);
            let results: Vec<(BlockId, Data)> = match got {
                Ok(bytes) if bytes.len() as u64 == run.end - run.start => run
                    .blocks
                    .iter()
                    .map(|(id, loc)| {
                        let at = (loc.offset - run.start) as usize;
                        let sealed = &bytes[at..at + loc.length as usize];
                        let what = || Store::block_what(id, loc);
                        match open_block(self.store.keys(), loc.kind, id, loc.raw_len, sealed, &what) {
                            Ok(plain) => (*id, Data::Ready(plain)),
                            Err(e) => (*id, Data::Failed(e)),
                        }
                    })
                    .collect(),
                // The whole request failed: each block is read alone by
                // its consumer, which names what went wrong precisely.
                _ => run.blocks.iter().map(|(id, _)| (*id, Data::Alone)).collect(),
            };
            let mut guard = self.lock();
            let st = &mut *guard;
            st.stats.requests += 1;
            st.stats.bytes += run.end - run.start;
            for (id, data) in results {
                if matches!(data, Data::Alone) {
                    st.stats.fallbacks += 1;
                } else {
                    st.stats.blocks += 1;
                }
                let Some(slot) = st.slots.get_mut(&id) else { continue };
                if slot.uses == 0 {
                    // Released before it arrived.
                    let n = slot.raw_len;
                    st.slots.remove(&id);
                    st.held -= n;
                    continue;
                }
                if matches!(data, Data::Alone) {
                    // Nothing is held for it any more.
                    st.held -= slot.raw_len;
                    slot.raw_len = 0;
                }
                slot.data = data;
            }
            drop(guard);
            self.ready.notify_all();
            self.room.notify_all();
        }
    }
}

/// The plaintext limit of a block of `kind` (larger index entries are damage).
fn limit(store: &Store, kind: Kind) -> u32 {
    if kind == Kind::Data { store.config().chunker.max } else { MAX_TREE_LEN }
}

/// Groups blocks by pack, sorts them by offset and cuts them into runs:
/// neighbours at most [`MAX_GAP`] apart share a run of at most
/// [`MAX_REQUEST`] bytes.
fn plan_runs(mut blocks: Vec<(BlockId, Location)>) -> Vec<Run> {
    blocks.sort_by_key(|a| (a.1.pack, a.1.offset));
    let mut runs: Vec<Run> = Vec::new();
    for (id, loc) in blocks {
        let end = loc.offset + loc.length as u64;
        if let Some(r) = runs.last_mut()
            && r.pack == loc.pack
            && loc.offset >= r.start
            && loc.offset <= r.end.saturating_add(MAX_GAP)
            && end.max(r.end) - r.start <= MAX_REQUEST
        {
            r.end = r.end.max(end);
            r.blocks.push((id, loc));
            continue;
        }
        runs.push(Run { pack: loc.pack, start: loc.offset, end, blocks: vec![(id, loc)] });
    }
    runs
}

/// Takes the blocks of one unit, in its order; see [`Prefetch::unit`].
pub struct UnitReader<'p, 'a> {
    pf: &'p Prefetch<'a>,
    unit: usize,
    /// Blocks of the unit taken so far.
    pos: usize,
}

impl UnitReader<'_, '_> {
    /// The plaintext of `id`, verified. The unit's next block comes from
    /// the prefetch (waiting for it if needed); any other block (one the
    /// caller found elsewhere did not verify, say) is read alone.
    pub fn take(&mut self, id: &BlockId) -> Result<Vec<u8>> {
        let pf = self.pf;
        let planned = pf.units.get(self.unit).and_then(|u| u.get(self.pos));
        if planned != Some(id) {
            return pf.store.read_block(id);
        }
        let me = (self.unit, self.pos);
        self.pos += 1;
        let mut st = pf.lock();
        loop {
            if st.stop {
                drop(st);
                return pf.store.read_block(id);
            }
            if st.cursor > me || st.scheduling_done {
                break;
            }
            st = pf.ready.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        loop {
            let Some(slot) = st.slots.get_mut(id) else {
                // Not scheduled after all (the prefetch stopped early).
                drop(st);
                return pf.store.read_block(id);
            };
            match &mut slot.data {
                Data::Pending => {
                    if st.stop {
                        drop(st);
                        return pf.store.read_block(id);
                    }
                    st = pf.ready.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                Data::Ready(d) => {
                    let out = if slot.uses == 1 { std::mem::take(d) } else { d.clone() };
                    pf.release(&mut st, id);
                    drop(st);
                    pf.room.notify_all();
                    return Ok(out);
                }
                Data::Failed(_) => {
                    // The first taker gets the error; later ones read alone.
                    let Data::Failed(e) = std::mem::replace(&mut slot.data, Data::Alone) else { unreachable!() };
                    pf.release(&mut st, id);
                    drop(st);
                    pf.room.notify_all();
                    return Err(e);
                }
                Data::Alone => {
                    pf.release(&mut st, id);
                    drop(st);
                    pf.room.notify_all();
                    return pf.store.read_block(id);
                }
            }
        }
    }
}

impl Drop for UnitReader<'_, '_> {
    fn drop(&mut self) {
        let pf = self.pf;
        let Some(ids) = pf.units.get(self.unit) else { return };
        let mut st = pf.lock();
        if self.unit < st.closed.len() {
            st.closed[self.unit] = true;
        }
        let scheduled_end = match st.cursor {
            (u, _) if u > self.unit => ids.len(),
            (u, p) if u == self.unit => p,
            _ => 0,
        };
        for id in ids.iter().take(scheduled_end).skip(self.pos) {
            pf.release(&mut st, id);
        }
        drop(st);
        pf.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Kind;

    fn loc(pack: u8, offset: u64, length: u32) -> Location {
        Location { pack: ObjectName([pack; 32]), offset, length, raw_len: length, kind: Kind::Data }
    }

    #[test]
    fn close_blocks_of_a_pack_share_a_run_and_far_ones_do_not() {
        let b = |i: u8| BlockId([i; 32]);
        let runs = plan_runs(vec![
            (b(1), loc(1, 1000, 100)),
            (b(2), loc(2, 0, 50)),
            (b(3), loc(1, 0, 1000)),
            (b(4), loc(1, 1100 + MAX_GAP, 10)),
            (b(5), loc(1, 1100 + MAX_GAP + 11 + MAX_GAP, 10)),
        ]);
        let shape: Vec<(u8, u64, u64, usize)> = runs.iter().map(|r| (r.pack.0[0], r.start, r.end, r.blocks.len())).collect();
        assert_eq!(shape, vec![(1, 0, 1110 + MAX_GAP, 3), (1, 1111 + 2 * MAX_GAP, 1121 + 2 * MAX_GAP, 1), (2, 0, 50, 1)]);
        // A run never grows past MAX_REQUEST.
        let big = (MAX_REQUEST / 4) as u32;
        let runs = plan_runs((0..8u8).map(|i| (b(i), loc(1, i as u64 * big as u64, big))).collect());
        assert!(runs.iter().all(|r| r.end - r.start <= MAX_REQUEST));
        assert_eq!(runs.len(), 2);
    }
}
