//! Content-defined chunking: FastCDC 2020 (normalized chunking, level 1,
//! rolling two bytes per step) with a secret gear table (format-spec §6).
//!
//! The public FastCDC gear table would let anyone who can see block sizes
//! (pack sizes, transfer sizes) test whether a known file is stored. Here
//! all 256 gear entries come from the master key ([`crate::Keys::gear`]),
//! so cut points are unpredictable without it. With the public table the
//! cut points equal those of the `fastcdc` crate's `v2020` module, which a
//! test checks.

use std::io::{self, Read};

use crate::error::{Error, Result};

/// FastCDC's spread-bit masks, indexed by the number of one bits (the
/// FastCDC 2020 paper, and the C reference implementation).
pub const MASKS: [u64; 26] = [
    0,
    0,
    0,
    0,
    0,
    0x0000000001804110,
    0x0000000001803110,
    0x0000000018035100,
    0x0000001800035300,
    0x0000019000353000,
    0x0000590003530000,
    0x0000d90003530000,
    0x0000d90103530000,
    0x0000d90303530000,
    0x0000d90313530000,
    0x0000d90f03530000,
    0x0000d90303537000,
    0x0000d90703537000,
    0x0000d90707537000,
    0x0000d91707537000,
    0x0000d91747537000,
    0x0000d91767537000,
    0x0000d93767537000,
    0x0000d93777537000,
    0x0000d93777577000,
    0x0000db3777577000,
];

/// Chunk size parameters, stored in the store config (format-spec §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    /// No chunk (but a file's last) is shorter.
    pub min: u32,
    /// Target average; a power of two.
    pub avg: u32,
    /// No chunk is longer.
    pub max: u32,
}

impl ChunkerParams {
    /// Limits accepted on read: keep sealed blocks small enough to hold in
    /// memory and masks within the table.
    pub const MIN_AVG: u32 = 256;
    /// Largest average chunk size accepted.
    pub const MAX_AVG: u32 = 4 << 20;
    /// Largest maximum chunk size accepted.
    pub const MAX_MAX: u32 = 16 << 20;

    /// The defaults, chosen by the measurement in format-spec §6.3.
    pub const DEFAULT: ChunkerParams = ChunkerParams { min: 64 << 10, avg: 256 << 10, max: 1 << 20 };

    /// Parameters for an average size: min a quarter, max four times.
    pub fn from_avg(avg: u32) -> ChunkerParams {
        ChunkerParams { min: avg / 4, avg, max: avg.saturating_mul(4) }
    }

    /// Checks the parameters are in range and consistent.
    pub fn validate(&self) -> Result<()> {
        let ok = self.avg.is_power_of_two()
            && (Self::MIN_AVG..=Self::MAX_AVG).contains(&self.avg)
            && self.min >= 64
            && self.min < self.avg
            && self.avg < self.max
            && self.max <= Self::MAX_MAX;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidParameter(format!(
                "chunker min/avg/max {}/{}/{}: need 64 <= min < avg < max <= {}, avg a power of two in {}..={}",
                self.min,
                self.avg,
                self.max,
                Self::MAX_MAX,
                Self::MIN_AVG,
                Self::MAX_AVG
            )))
        }
    }
}

/// A FastCDC 2020 cutter with a given gear table and parameters.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    mask_s_ls: u64,
    mask_l_ls: u64,
}

impl Chunker {
    /// A chunker for the gear table and (validated) parameters.
    pub fn new(gear: &[u64; 256], params: ChunkerParams) -> Result<Self> {
        params.validate()?;
        let bits = params.avg.trailing_zeros() as usize;
        let mask_s = MASKS[bits + 1];
        let mask_l = MASKS[bits - 1];
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        Ok(Chunker {
            gear: Box::new(*gear),
            gear_ls,
            min: params.min as usize,
            avg: params.avg as usize,
            max: params.max as usize,
            mask_s,
            mask_l,
            mask_s_ls: mask_s << 1,
            mask_l_ls: mask_l << 1,
        })
    }

    /// The largest chunk this chunker produces.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the chunk starting at `data[0]`. `data` must hold at least
    /// `max` bytes unless it is the end of the input.
    pub fn cut(&self, data: &[u8]) -> usize {
        let mut remaining = data.len();
        if remaining <= self.min {
            return remaining;
        }
        let mut center = self.avg;
        if remaining > self.max {
            remaining = self.max;
        } else if remaining < center {
            center = remaining;
        }
        let mut index = self.min / 2;
        let mut hash: u64 = 0;
        while index < center / 2 {
            let a = index * 2;
            hash = (hash << 2).wrapping_add(self.gear_ls[data[a] as usize]);
            if hash & self.mask_s_ls == 0 {
                return a;
            }
            hash = hash.wrapping_add(self.gear[data[a + 1] as usize]);
            if hash & self.mask_s == 0 {
                return a + 1;
            }
            index += 1;
        }
        while index < remaining / 2 {
            let a = index * 2;
            hash = (hash << 2).wrapping_add(self.gear_ls[data[a] as usize]);
            if hash & self.mask_l_ls == 0 {
                return a;
            }
            hash = hash.wrapping_add(self.gear[data[a + 1] as usize]);
            if hash & self.mask_l == 0 {
                return a + 1;
            }
            index += 1;
        }
        remaining
    }

    /// All chunk lengths of an in-memory input, in order.
    pub fn cut_all(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.cut(data);
            out.push(n);
            data = &data[n..];
        }
        out
    }

    /// Chunks a reader without holding more than about two maximum chunks.
    pub fn stream<R: Read>(&self, reader: R) -> StreamChunker<'_, R> {
        self.stream_sized(reader, None)
    }

    /// [`stream`](Self::stream) of a reader expected to hold `size` bytes:
    /// the buffer starts large enough for all of it (up to a maximum
    /// chunk and one byte), so a small file is read with one read and one
    /// that finds its end, instead of a probe and a growing buffer.
    pub fn stream_sized<R: Read>(&self, reader: R, size: Option<u64>) -> StreamChunker<'_, R> {
        let cap = size.map_or(0, |s| s.saturating_add(1).min(self.max as u64 + 1) as usize);
        StreamChunker { chunker: self, reader, buf: Vec::with_capacity(cap), start: 0, eof: false }
    }
}

/// Streaming chunker over a reader; yields owned chunks. Cut points equal
/// those of [`Chunker::cut_all`] on the whole input, whatever sizes the
/// reader returns.
pub struct StreamChunker<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
}

impl<R: Read> StreamChunker<'_, R> {
    fn fill(&mut self) -> io::Result<()> {
        let want = self.chunker.max;
        // Move the unread tail down only once a whole `max` has been
        // consumed: each input byte is then moved at most about once.
        if self.start >= want {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let have = self.buf.len() - self.start;
        if !self.eof && have < want {
            // read_to_end grows the buffer as data arrives: a small file
            // costs a small buffer, not a zeroed maximum-size one.
            let need = (want - have) as u64;
            let got = (&mut self.reader).take(need).read_to_end(&mut self.buf)?;
            if (got as u64) < need {
                self.eof = true;
            }
        }
        Ok(())
    }

    /// The next chunk, `None` at the end of the input.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        self.fill()?;
        let avail = &self.buf[self.start..];
        if avail.is_empty() {
            return Ok(None);
        }
        let n = self.chunker.cut(avail);
        if self.eof && self.start == 0 && n == self.buf.len() {
            // The whole input is one chunk (a small file): hand over the
            // buffer instead of copying it.
            return Ok(Some(std::mem::take(&mut self.buf)));
        }
        let chunk = avail[..n].to_vec();
        self.start += n;
        Ok(Some(chunk))
    }
}

impl<R: Read> Iterator for StreamChunker<'_, R> {
    type Item = io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}
