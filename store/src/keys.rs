//! The key hierarchy (format-spec §3).
//!
//! One random 32-byte master key per key family. Every other key is
//! derived from it with BLAKE3 `derive_key` and a fixed context string, so
//! all stores and replicas of a family agree on block IDs and chunk
//! boundaries. Security rule: these contexts are for 32-byte uniformly
//! random key material only; passphrases go through Argon2id first
//! ([`crate::keyfile`]), never straight into `derive_key`.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::id::BlockId;

/// `derive_key` context for the block ID key.
pub const CONTEXT_BLOCK_ID: &str = "ferry 2026-11-21 block id key";
/// `derive_key` context for the chunker gear table seed.
pub const CONTEXT_GEAR: &str = "ferry 2026-11-21 chunker gear table";
/// `derive_key` context for the object encryption key.
pub const CONTEXT_ENCRYPTION: &str = "ferry 2026-11-21 object encryption key";
/// `derive_key` context for the public family identifier.
pub const CONTEXT_FAMILY: &str = "ferry 2026-11-21 family id";

/// The 32-byte master key of a key family. Zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).expect("OS randomness");
        MasterKey(k)
    }
    /// Wraps existing key bytes (from a key file or a test vector).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }
    /// The raw key bytes. Handle with care: whoever has them can read the store.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The keys derived from a master key.
#[derive(Clone, ZeroizeOnDrop)]
pub struct Keys {
    master: MasterKey,
    id_key: [u8; 32],
    enc_key: [u8; 32],
    #[zeroize(skip)]
    gear: Box<[u64; 256]>,
    #[zeroize(skip)]
    family: [u8; 16],
}

impl Keys {
    /// Derives every subkey from the master key.
    pub fn derive(master: &MasterKey) -> Self {
        let id_key = blake3::derive_key(CONTEXT_BLOCK_ID, &master.0);
        let enc_key = blake3::derive_key(CONTEXT_ENCRYPTION, &master.0);
        let mut gear_seed = blake3::derive_key(CONTEXT_GEAR, &master.0);
        let mut raw = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(&gear_seed).finalize_xof().fill(&mut raw);
        gear_seed.zeroize();
        let mut gear = Box::new([0u64; 256]);
        for (g, b) in gear.iter_mut().zip(raw.chunks_exact(8)) {
            *g = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
        raw.zeroize();
        let fam = blake3::derive_key(CONTEXT_FAMILY, &master.0);
        let mut family = [0u8; 16];
        family.copy_from_slice(&fam[..16]);
        Keys { master: master.clone(), id_key, enc_key, gear, family }
    }

    /// The master key these were derived from.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }
    /// The block ID of a plaintext: keyed BLAKE3 (format-spec §3.2).
    pub fn block_id(&self, plaintext: &[u8]) -> BlockId {
        BlockId(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }
    /// The secret gear table of the chunker (format-spec §6).
    pub fn gear(&self) -> &[u64; 256] {
        &self.gear
    }
    pub(crate) fn enc_key(&self) -> &[u8; 32] {
        &self.enc_key
    }
    /// A public, non-secret identifier of the key family: equal for all
    /// stores and replicas sharing the master key.
    pub fn family_id(&self) -> [u8; 16] {
        self.family
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys(family {})", hex::encode(self.family))
    }
}
