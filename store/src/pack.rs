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
    /// Blocks so far.
    pub fn blocks(&self) -> usize {
        self.entries.len()
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
        // The trailer is small: reserve exactly, never double a full pack.
        self.buf.reserve_exact(4 + self.entries.len() * ENTRY_LEN + crate::envelope::OVERHEAD + 64 + FOOTER_LEN);
        let sealed = seal(&trailer_payload(&self.entries));
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(PACK_MAGIC);
        FinishedPack { name: ObjectName::of(&self.buf), bytes: self.buf, entries: self.entries }
    }
}

/// A pack streamed to a temp file of a local store as its blocks come
/// (format as [`PackBuilder`]'s), so a pack being filled costs no memory;
/// [`PackFile::finish`] appends the trailer, fsyncs, and names it.
pub(crate) struct PackFile {
    /// `None` once flushed by [`StreamedPack::place`].
    out: Option<std::io::BufWriter<std::fs::File>>,
    /// The temp file; `None` once renamed to its object path. A pack
    /// dropped while it has one (an error anywhere, a writer dropped, a
    /// send to a stopped I/O thread) removes it.
    tmp: Option<std::path::PathBuf>,
    hasher: blake3::Hasher,
    len: usize,
    entries: Vec<BlobEntry>,
    /// The first write that failed (reported by `finish`).
    error: Option<std::io::Error>,
}

/// A [`PackFile`] with its trailer written (buffered), named, not yet
/// durable nor at its object path.
pub(crate) struct StreamedPack {
    /// Object name (BLAKE3 of the file's bytes).
    pub name: ObjectName,
    /// Its blocks.
    pub entries: Vec<BlobEntry>,
    /// Its size in bytes.
    pub len: usize,
    file: PackFile,
}

impl PackFile {
    /// A pack writing to `file` (a new temp file at `tmp`).
    pub(crate) fn new(file: std::fs::File, tmp: std::path::PathBuf) -> PackFile {
        PackFile {
            out: Some(std::io::BufWriter::with_capacity(256 << 10, file)),
            tmp: Some(tmp),
            hasher: blake3::Hasher::new(),
            len: 0,
            entries: Vec::new(),
            error: None,
        }
    }
    /// Bytes so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
    /// True when no block was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Blocks so far.
    pub(crate) fn blocks(&self) -> usize {
        self.entries.len()
    }
    fn put(&mut self, bytes: &[u8]) {
        use std::io::Write;
        if self.error.is_none()
            && let Some(out) = self.out.as_mut()
            && let Err(e) = out.write_all(bytes)
        {
            self.error = Some(e);
        }
        self.hasher.update(bytes);
        self.len += bytes.len();
    }
    /// Appends one sealed block.
    pub(crate) fn add(&mut self, kind: Kind, id: BlockId, raw_len: u32, sealed: &[u8]) {
        self.entries.push(BlobEntry { kind, id, offset: self.len as u64, length: sealed.len() as u32, raw_len });
        self.put(sealed);
    }
    /// Seals the trailer and writes it and the footer (buffered), and
    /// names the pack; [`StreamedPack::place`] makes it durable and gives
    /// it its name.
    pub(crate) fn finish(mut self, keys: &Keys) -> StreamedPack {
        let sealed = envelope::seal(keys, Kind::PackTrailer, &[0; 32], &trailer_payload(&self.entries), envelope::ZSTD_LEVEL);
        self.put(&sealed);
        self.put(&(sealed.len() as u32).to_le_bytes());
        self.put(PACK_MAGIC);
        let entries = std::mem::take(&mut self.entries);
        StreamedPack { name: ObjectName(*self.hasher.finalize().as_bytes()), len: self.len, entries, file: self }
    }

    /// Removes the temp file of a pack that will not be finished.
    pub(crate) fn discard(self) {
        drop(self);
    }
}

impl Drop for PackFile {
    fn drop(&mut self) {
        drop(self.out.take());
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl StreamedPack {
    /// Flushes and fsyncs the file, then renames it to `path` in the
    /// local store at `root`; returns its entries. On failure the temp
    /// file is removed.
    pub(crate) fn place(self, root: &std::path::Path, path: &str) -> std::io::Result<Vec<BlobEntry>> {
        let mut file = self.file;
        let out = file.out.take().expect("a pack is placed once");
        match file.error.take() {
            Some(e) => return Err(e), // the drop removes the temp file
            None => out.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all())?,
        }
        let tmp = file.tmp.take().expect("a pack is placed once");
        // place_temp removes the temp file itself when it fails.
        crate::backend::local::place_temp(root, path, &tmp)?;
        Ok(self.entries)
    }
}

fn trailer_payload(entries: &[BlobEntry]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(entries.len() as u32);
    for e in entries {
        e.encode(&mut w);
    }
    w.buf
}

/// Predicts, without the blocks' bytes, the exact size of the pack a
/// [`PackBuilder`] fed the same blocks would [`finish`](PackBuilder::finish)
/// (what `gc --dry-run` reports): the blocks, the sealed trailer (its
/// compressed size depends only on the entries) and the footer.
#[derive(Debug, Default)]
pub struct PackSizer {
    len: usize,
    entries: Vec<BlobEntry>,
}

impl PackSizer {
    /// Counts one sealed block of `length` bytes.
    pub fn add(&mut self, kind: Kind, id: BlockId, raw_len: u32, length: u32) {
        self.entries.push(BlobEntry { kind, id, offset: self.len as u64, length, raw_len });
        self.len += length as usize;
    }
    /// Block bytes so far (as [`PackBuilder::len`]).
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when no block was counted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The size of the finished pack.
    pub fn finished_len(&self) -> u64 {
        let payload = envelope::encode_payload(&trailer_payload(&self.entries), envelope::ZSTD_LEVEL);
        (self.len + envelope::NONCE_LEN + payload.len() + envelope::TAG_LEN + FOOTER_LEN) as u64
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    #[test]
    fn pack_sizer_predicts_the_finished_pack_size_exactly() {
        let keys = Keys::derive(&MasterKey::generate());
        for n in [1usize, 2, 7, 300] {
            let (mut b, mut s) = (PackBuilder::new(), PackSizer::default());
            for i in 0..n {
                let plain = vec![i as u8; 100 + i * 37];
                let id = keys.block_id(&plain);
                let sealed = envelope::seal(&keys, Kind::Data, &id.0, &plain, envelope::ZSTD_LEVEL);
                b.add(Kind::Data, id, plain.len() as u32, &sealed);
                s.add(Kind::Data, id, plain.len() as u32, sealed.len() as u32);
            }
            assert_eq!(s.len(), b.len());
            assert_eq!(s.finished_len(), b.finish(&keys).bytes.len() as u64, "{n} blocks");
        }
    }
}
