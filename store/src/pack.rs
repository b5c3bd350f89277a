//! Packs (format-spec §8): many sealed blocks in one file, then a sealed
//! trailer listing them.
//!
//! ```text
//! pack    = block* || sealed trailer || trailer_len u32 || "FRYPACK1"
//! trailer = count u32 || count × entry
//! entry   = kind u8 | block id (32) | offset u64 | length u32 | raw_len u32   (49 bytes)
//! ```
//! Each block is sealed on its own, so one can be read by offset and
//! length without touching the rest of the pack.

use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::id::{BlockId, ObjectName};
use crate::keys::Keys;
use crate::wire::{Reader, Writer};

/// Magic at the very end of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"FRYPACK1";
/// Footer after the sealed trailer: its length and the magic.
pub const FOOTER_LEN: usize = 12;
/// Encoded size of one [`BlobEntry`].
pub const ENTRY_LEN: usize = 49;

/// Where one sealed block lives inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// Data or tree.
    pub kind: Kind,
    /// Block ID (keyed hash of the plaintext).
    pub id: BlockId,
    /// Offset of the sealed block in the pack.
    pub offset: u64,
    /// Length of the sealed block.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

impl BlobEntry {
    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u8(self.kind as u8).bytes(&self.id.0).u64(self.offset).u32(self.length).u32(self.raw_len);
    }
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<BlobEntry> {
        let k = r.u8()?;
        let kind = Kind::from_u8(k).filter(|k| k.is_block()).ok_or_else(|| r.fail(format!("entry kind {k} is not a block kind")))?;
        Ok(BlobEntry { kind, id: BlockId(r.array()?), offset: r.u64()?, length: r.u32()?, raw_len: r.u32()? })
    }
}

/// Accumulates sealed blocks of one kind into a pack in memory.
#[derive(Debug)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
}

/// A finished pack: its name, bytes and the blocks it holds.
#[derive(Debug)]
pub struct FinishedPack {
    /// Object name (BLAKE3 of `bytes`).
    pub name: ObjectName,
    /// The whole pack file.
    pub bytes: Vec<u8>,
    /// Its blocks.
    pub entries: Vec<BlobEntry>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    /// An empty pack.
    pub fn new() -> Self {
        PackBuilder { buf: Vec::new(), entries: Vec::new() }
    }
    /// An empty pack with room for `bytes` (the pack target plus one block),
    /// so the buffer never doubles past the target.
    pub fn with_capacity(bytes: usize) -> Self {
        PackBuilder { buf: Vec::with_capacity(bytes), entries: Vec::new() }
    }
    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// True when no block was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Appends one sealed block.
    pub fn add(&mut self, kind: Kind, id: BlockId, raw_len: u32, sealed: &[u8]) {
        self.entries.push(BlobEntry { kind, id, offset: self.buf.len() as u64, length: sealed.len() as u32, raw_len });
        self.buf.extend_from_slice(sealed);
    }
    /// Seals the trailer and names the pack.
    pub fn finish(self, keys: &Keys) -> FinishedPack {
        self.finish_with(|payload| envelope::seal(keys, Kind::PackTrailer, &[0; 32], payload, envelope::ZSTD_LEVEL))
    }
    /// Like [`PackBuilder::finish`] with a caller-supplied sealer (test vectors).
    pub fn finish_with(mut self, seal: impl FnOnce(&[u8]) -> Vec<u8>) -> FinishedPack {
        let mut w = Writer::default();
        // The trailer is small: reserve exactly, never double a full pack.
        self.buf.reserve_exact(4 + self.entries.len() * ENTRY_LEN + crate::envelope::OVERHEAD + 64 + FOOTER_LEN);
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            e.encode(&mut w);
        }
        let sealed = seal(&w.buf);
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(PACK_MAGIC);
        FinishedPack { name: ObjectName::of(&self.buf), bytes: self.buf, entries: self.entries }
    }
}

/// Reads the sealed trailer's length from a pack's last 12 bytes, checking
/// it fits in a pack of `pack_len` bytes.
pub fn parse_footer(footer: &[u8], pack_len: u64, what: &str) -> Result<u32> {
    if footer.len() != FOOTER_LEN || pack_len < FOOTER_LEN as u64 {
        return Err(Error::damaged(what, format!("pack of {pack_len} bytes is too short for its footer")));
    }
    if &footer[4..] != PACK_MAGIC {
        return Err(Error::damaged(what, "not a ferry pack (bad magic at the end: truncated?)"));
    }
    let len = u32::from_le_bytes(footer[..4].try_into().expect("4 bytes"));
    if len as u64 + FOOTER_LEN as u64 > pack_len || (len as usize) < envelope::OVERHEAD {
        return Err(Error::damaged(what, format!("trailer length {len} does not fit a {pack_len}-byte pack")));
    }
    Ok(len)
}

/// Opens a pack's sealed trailer and checks every entry lies inside the
/// block area of a `pack_len`-byte pack.
pub fn open_trailer(keys: &Keys, sealed: &[u8], pack_len: u64, what: &str) -> Result<Vec<BlobEntry>> {
    let area = pack_len
        .checked_sub(FOOTER_LEN as u64 + sealed.len() as u64)
        .ok_or_else(|| Error::damaged(what, format!("trailer of {} bytes does not fit a {pack_len}-byte pack", sealed.len())))?;
    let max = (area as usize / envelope::OVERHEAD + 1) * ENTRY_LEN + 4;
    let plain = envelope::open(keys, Kind::PackTrailer, &[0; 32], sealed, max, &|| format!("{what} trailer"))?;
    let what_t = format!("{what} trailer");
    let mut r = Reader::new(&plain, &what_t);
    let n = r.count(ENTRY_LEN)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let e = BlobEntry::decode(&mut r)?;
        if e.offset.checked_add(e.length as u64).is_none_or(|end| end > area) || (e.length as usize) < envelope::OVERHEAD {
            return Err(Error::damaged(
                &what_t,
                format!("block {} at {}+{} lies outside the {area}-byte block area", e.id, e.offset, e.length),
            ));
        }
        entries.push(e);
    }
    r.finish()?;
    Ok(entries)
}

/// Parses a whole pack held in memory: footer, then trailer.
pub fn read_pack_entries(keys: &Keys, pack: &[u8], what: &str) -> Result<Vec<BlobEntry>> {
    let pack_len = pack.len() as u64;
    let footer = &pack[pack.len().saturating_sub(FOOTER_LEN)..];
    let tlen = parse_footer(footer, pack_len, what)? as usize;
    let end = pack.len() - FOOTER_LEN;
    open_trailer(keys, &pack[end - tlen..end], pack_len, what)
}
