//! Key files (format-spec §4): the master key wrapped by a passphrase.
//!
//! ```text
//! magic "FERRYKEY" (8) | version 1 (1) | kdf 1 = Argon2id v0x13 (1)
//! m_cost KiB u32 | t_cost u32 | p_cost u32 | created unix secs u64
//! host_len u8 | host (host_len) | salt (32) | nonce (24)
//! ciphertext = XChaCha20-Poly1305(kek, nonce, master key (32), aad = every byte before it) || tag (16)
//! ```
//! kek = Argon2id(passphrase, salt, m, t, p) → 32 bytes. The KDF
//! parameters are read from the file but capped ([`KdfParams::MAX_M_KIB`]
//! and friends), so a hostile key file cannot make a reader allocate
//! gigabytes or spin for hours.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::MasterKey;
use crate::wire::{Reader, Writer};

/// Magic bytes at the start of a key file.
pub const MAGIC: &[u8; 8] = b"FERRYKEY";
/// The key file version this build reads and writes (format-spec §4).
pub const VERSION: u8 = 1;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// Default: 64 MiB, 3 passes, 1 lane (about a quarter second here).
    pub const DEFAULT: KdfParams = KdfParams { m_kib: 64 * 1024, t: 3, p: 1 };
    /// Largest memory cost accepted on read (2 GiB).
    pub const MAX_M_KIB: u32 = 2 * 1024 * 1024;
    /// Largest iteration count accepted on read.
    pub const MAX_T: u32 = 64;
    /// Largest lane count accepted on read.
    pub const MAX_P: u32 = 16;
    /// Smallest memory cost a writer may use (format-spec §4.3): a floor
    /// for tests, which gives no real protection; use [`KdfParams::DEFAULT`].
    pub const MIN_WRITE_M_KIB: u32 = 64;
    /// Smallest iteration count a writer may use.
    pub const MIN_WRITE_T: u32 = 1;

    /// Checks the parameters are within the caps and Argon2's own limits.
    pub fn validate(&self) -> Result<()> {
        if self.p == 0
            || self.p > Self::MAX_P
            || self.t == 0
            || self.t > Self::MAX_T
            || self.m_kib < 8 * self.p
            || self.m_kib > Self::MAX_M_KIB
        {
            return Err(Error::InvalidParameter(format!(
                "Argon2id m={} KiB t={} p={}: need 1 <= p <= {}, 1 <= t <= {}, 8*p <= m <= {} KiB",
                self.m_kib,
                self.t,
                self.p,
                Self::MAX_P,
                Self::MAX_T,
                Self::MAX_M_KIB
            )));
        }
        Ok(())
    }

    /// Checks the parameters may be used to write a key file: within the
    /// read caps ([`KdfParams::validate`]) and at least
    /// [`KdfParams::MIN_WRITE_M_KIB`] KiB and [`KdfParams::MIN_WRITE_T`] passes.
    pub fn validate_for_writing(&self) -> Result<()> {
        self.validate()?;
        if self.m_kib < Self::MIN_WRITE_M_KIB || self.t < Self::MIN_WRITE_T {
            return Err(Error::InvalidParameter(format!(
                "Argon2id m={} KiB t={}: a key file needs at least m={} KiB and t={} (the default is m={} KiB, t={})",
                self.m_kib,
                self.t,
                Self::MIN_WRITE_M_KIB,
                Self::MIN_WRITE_T,
                Self::DEFAULT.m_kib,
                Self::DEFAULT.t
            )));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        self.validate()?;
        let params = Params::new(self.m_kib, self.t, self.p, Some(32)).map_err(|e| Error::InvalidParameter(format!("Argon2id: {e}")))?;
        let mut kek = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, &mut *kek)
            .map_err(|e| Error::InvalidParameter(format!("Argon2id: {e}")))?;
        Ok(kek)
    }
}

/// A parsed key file; [`KeyFile::unwrap_key`] needs the passphrase.
#[derive(Clone, Debug)]
pub struct KeyFile {
    /// KDF parameters.
    pub kdf: KdfParams,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Host that created it (informational, not secret).
    pub host: String,
    salt: [u8; 32],
    nonce: [u8; 24],
    ciphertext: Vec<u8>,
    header_len: usize,
    bytes: Vec<u8>,
}

impl KeyFile {
    /// Largest valid key file: 135 bytes plus a 255-byte host (format-spec §4.4).
    pub const MAX_LEN: usize = 135 + 255;

    /// Wraps `master` under `passphrase` with fresh salt and nonce.
    pub fn wrap(master: &MasterKey, passphrase: &[u8], kdf: KdfParams, created: u64, host: &str) -> Result<KeyFile> {
        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut salt).expect("OS randomness");
        getrandom::fill(&mut nonce).expect("OS randomness");
        Self::wrap_with(master, passphrase, kdf, created, host, salt, nonce)
    }

    /// Wraps with caller-chosen salt and nonce (test vectors only).
    pub fn wrap_with(
        master: &MasterKey,
        passphrase: &[u8],
        kdf: KdfParams,
        created: u64,
        host: &str,
        salt: [u8; 32],
        nonce: [u8; 24],
    ) -> Result<KeyFile> {
        // At most 255 bytes (the length is one byte), cut at a char boundary.
        let mut end = host.len().min(255);
        while !host.is_char_boundary(end) {
            end -= 1;
        }
        let host = &host[..end];
        kdf.validate_for_writing()?;
        let mut w = Writer::default();
        w.bytes(MAGIC).u8(VERSION).u8(1).u32(kdf.m_kib).u32(kdf.t).u32(kdf.p).u64(created);
        w.u8(host.len() as u8).bytes(host.as_bytes()).bytes(&salt).bytes(&nonce);
        let header_len = w.buf.len();
        let kek = kdf.derive(passphrase, &salt)?;
        let ct = XChaCha20Poly1305::new((&*kek).into())
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: master.expose(), aad: &w.buf })
            .expect("in-memory encryption");
        w.bytes(&ct);
        Ok(KeyFile { kdf, created, host: host.to_string(), salt, nonce, ciphertext: ct, header_len, bytes: w.buf })
    }

    /// Parses a key file's bytes (no passphrase needed).
    pub fn parse(bytes: &[u8], what: &str) -> Result<KeyFile> {
        let mut r = Reader::new(bytes, what);
        if &r.array::<8>()? != MAGIC {
            return Err(r.fail("not a ferry key file (bad magic)"));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::Unsupported(format!("{what}: key file version {version}")));
        }
        let kdf_id = r.u8()?;
        if kdf_id != 1 {
            return Err(Error::Unsupported(format!("{what}: key derivation function {kdf_id}")));
        }
        let kdf = KdfParams { m_kib: r.u32()?, t: r.u32()?, p: r.u32()? };
        kdf.validate().map_err(|e| Error::damaged(what, e.to_string()))?;
        let created = r.u64()?;
        let host_len = r.u8()? as usize;
        let host = String::from_utf8_lossy(r.take(host_len)?).into_owned();
        let salt = r.array()?;
        let nonce = r.array()?;
        let header_len = bytes.len() - r.remaining();
        let ciphertext = r.take(48)?.to_vec();
        r.finish()?;
        Ok(KeyFile { kdf, created, host, salt, nonce, ciphertext, header_len, bytes: bytes.to_vec() })
    }

    /// Unwraps the master key; `None` when the passphrase is wrong (or the
    /// file was altered: the two cannot be told apart, by design).
    pub fn unwrap_key(&self, passphrase: &[u8]) -> Result<Option<MasterKey>> {
        let kek = self.kdf.derive(passphrase, &self.salt)?;
        let plain = XChaCha20Poly1305::new((&*kek).into())
            .decrypt(XNonce::from_slice(&self.nonce), Payload { msg: &self.ciphertext, aad: &self.bytes[..self.header_len] });
        Ok(plain.ok().map(|p| {
            let p = Zeroizing::new(p);
            MasterKey::from_bytes(p[..].try_into().expect("32-byte key"))
        }))
    }

    /// The encoded bytes.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }
}
