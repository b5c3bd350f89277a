//! The store config (format-spec §7): sealed, written once by `store init`.
//!
//! ```text
//! config  = sealed(kind Config, id 0, payload)
//! payload = version u32 (=1) | store id (16) | family id (16)
//!           | chunk min u32 | chunk avg u32 | chunk max u32
//!           | pack target u32 | zstd level i32
//! ```

use crate::chunker::ChunkerParams;
use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::wire::{Reader, Writer};

/// The config version this build reads and writes: the store-wide
/// format version (format-spec §12).
pub const VERSION: u32 = 1;

/// Smallest pack target accepted.
pub const MIN_PACK_TARGET: u32 = 1 << 20;
/// Largest pack target accepted: far below FAT32's 4 GiB file limit.
pub const MAX_PACK_TARGET: u32 = 1 << 30;
/// Default pack target.
pub const DEFAULT_PACK_TARGET: u32 = 16 << 20;

/// Store-wide settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Random per store; names the local index cache.
    pub store_id: [u8; 16],
    /// Derived from the master key; equal across a key family.
    pub family_id: [u8; 16],
    /// Chunking parameters (equal across a key family, or dedup breaks).
    pub chunker: ChunkerParams,
    /// Packs are closed once they reach this many bytes.
    pub pack_target: u32,
    /// zstd level for blocks.
    pub zstd_level: i32,
}

impl Config {
    /// A new config with a random store id.
    pub fn new(keys: &Keys, chunker: ChunkerParams, pack_target: u32) -> Result<Config> {
        let mut store_id = [0u8; 16];
        getrandom::fill(&mut store_id).expect("OS randomness");
        let c = Config { store_id, family_id: keys.family_id(), chunker, pack_target, zstd_level: envelope::ZSTD_LEVEL };
        c.validate()?;
        Ok(c)
    }

    /// Range checks.
    pub fn validate(&self) -> Result<()> {
        self.chunker.validate()?;
        if !(MIN_PACK_TARGET..=MAX_PACK_TARGET).contains(&self.pack_target) {
            return Err(Error::InvalidParameter(format!("pack target {} not in {MIN_PACK_TARGET}..={MAX_PACK_TARGET}", self.pack_target)));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err(Error::InvalidParameter(format!("zstd level {} not in 1..=19", self.zstd_level)));
        }
        Ok(())
    }

    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(VERSION).bytes(&self.store_id).bytes(&self.family_id);
        w.u32(self.chunker.min).u32(self.chunker.avg).u32(self.chunker.max);
        w.u32(self.pack_target).i32(self.zstd_level);
        w.buf
    }

    /// Decodes and validates a payload.
    pub fn decode(payload: &[u8]) -> Result<Config> {
        let mut r = Reader::new(payload, "config");
        let v = r.u32()?;
        if v != VERSION {
            return Err(Error::Unsupported(format!("config version {v}")));
        }
        let c = Config {
            store_id: r.array()?,
            family_id: r.array()?,
            chunker: ChunkerParams { min: r.u32()?, avg: r.u32()?, max: r.u32()? },
            pack_target: r.u32()?,
            zstd_level: r.i32()?,
        };
        r.finish()?;
        c.validate().map_err(|e| Error::damaged("config", e.to_string()))?;
        Ok(c)
    }

    /// Seals for writing.
    pub fn seal(&self, keys: &Keys) -> Vec<u8> {
        envelope::seal(keys, Kind::Config, &[0; 32], &self.encode(), 1)
    }

    /// Opens a sealed config and checks it belongs to this key family.
    pub fn open(keys: &Keys, sealed: &[u8]) -> Result<Config> {
        let c = Self::decode(&envelope::open(keys, Kind::Config, &[0; 32], sealed, 4096, &|| "config".into())?)?;
        if c.family_id != keys.family_id() {
            return Err(Error::damaged("config", "family id does not match the master key"));
        }
        Ok(c)
    }
}
