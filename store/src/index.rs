//! Index files (format-spec §9): make packs visible. Immutable, written
//! after the packs they list, merged in any order (a block listed twice is
//! readable from either place).
//!
//! ```text
//! index      = sealed(kind Index, id 0, payload)
//! payload    = supersedes_count u32 || supersedes × name (32)
//!              || pack_count u32 || pack_count × pack_record
//! pack_record = pack name (32) || entry_count u32 || entry_count × entry (49, as in the pack trailer)
//! ```
//! `supersedes` lists index files whose content this one includes (written
//! by gc when it compacts indexes; empty otherwise).

use crate::envelope::{self, Kind};
use crate::error::Result;
use crate::id::ObjectName;
use crate::keys::Keys;
use crate::pack::{BlobEntry, ENTRY_LEN};
use crate::wire::{Reader, Writer};

/// Largest index payload accepted on read.
pub const MAX_INDEX_LEN: usize = 512 << 20;

/// The blocks of one pack, as listed in an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackRecord {
    /// The pack's object name.
    pub pack: ObjectName,
    /// Its blocks.
    pub entries: Vec<BlobEntry>,
}

/// A decoded index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files this one replaces.
    pub supersedes: Vec<ObjectName>,
    /// Packs it makes visible.
    pub packs: Vec<PackRecord>,
}

impl IndexFile {
    /// Encodes the payload (before sealing).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.supersedes.len() as u32);
        for s in &self.supersedes {
            w.bytes(&s.0);
        }
        w.u32(self.packs.len() as u32);
        for p in &self.packs {
            w.bytes(&p.pack.0).u32(p.entries.len() as u32);
            for e in &p.entries {
                e.encode(&mut w);
            }
        }
        w.buf
    }

    /// Decodes a payload.
    pub fn decode(payload: &[u8], what: &str) -> Result<IndexFile> {
        let mut r = Reader::new(payload, what);
        let ns = r.count(32)?;
        let mut supersedes = Vec::with_capacity(ns);
        for _ in 0..ns {
            supersedes.push(ObjectName(r.array()?));
        }
        let np = r.count(36)?;
        let mut packs = Vec::with_capacity(np);
        for _ in 0..np {
            let pack = ObjectName(r.array()?);
            let ne = r.count(ENTRY_LEN)?;
            let mut entries = Vec::with_capacity(ne);
            for _ in 0..ne {
                entries.push(BlobEntry::decode(&mut r)?);
            }
            packs.push(PackRecord { pack, entries });
        }
        r.finish()?;
        Ok(IndexFile { supersedes, packs })
    }

    /// Seals the index for writing.
    pub fn seal(&self, keys: &Keys) -> Vec<u8> {
        envelope::seal(keys, Kind::Index, &[0; 32], &self.encode(), envelope::ZSTD_LEVEL)
    }

    /// Opens and decodes a sealed index.
    pub fn open(keys: &Keys, sealed: &[u8], what: &str) -> Result<IndexFile> {
        let payload = envelope::open(keys, Kind::Index, &[0; 32], sealed, MAX_INDEX_LEN, &|| what.to_string())?;
        Self::decode(&payload, what)
    }
}
