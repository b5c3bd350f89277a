//! Exported keys (format-spec §18): a key family's master key in a file,
//! for scripts, cron jobs and watch mode (`FERRY_KEY_FILE`, `--key-file`).
//! Opening a store or replica with it costs no key derivation at all.
//!
//! ```text
//! magic "FERRYKEX" (8) | version 1 (1) | family id (16) | master key (32) | check (16)
//! check = the first 16 bytes of BLAKE3(every byte before it)
//! ```
//!
//! **The file is the secret**: anyone who reads it can read and write
//! every store of the family, as with a passphrase kept in a file. It is
//! written 0600 and never overwrites an existing file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{Keys, MasterKey};

/// Magic bytes at the start of an exported key.
pub const MAGIC: &[u8; 8] = b"FERRYKEX";
/// The only version.
pub const VERSION: u8 = 1;
/// Total length in bytes.
pub const LEN: usize = 8 + 1 + 16 + 32 + 16;

/// The exported form of `master`.
pub fn encode(master: &MasterKey) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(LEN));
    v.extend_from_slice(MAGIC);
    v.push(VERSION);
    v.extend_from_slice(&Keys::derive(master).family_id());
    v.extend_from_slice(master.expose());
    let check = blake3::hash(&v);
    v.extend_from_slice(&check.as_bytes()[..16]);
    v
}

/// Reads an exported key. `what` names it in errors.
pub fn decode(bytes: &[u8], what: &str) -> Result<MasterKey> {
    let bad = |reason: &str| Error::Damaged { what: what.to_string(), reason: reason.to_string() };
    if bytes.len() < 9 || &bytes[..8] != MAGIC {
        return Err(bad("not a ferry key file (it does not start with FERRYKEX)"));
    }
    if bytes[8] != VERSION {
        return Err(Error::Unsupported(format!("{what}: key file version {}", bytes[8])));
    }
    if bytes.len() != LEN {
        return Err(bad(&format!("{} bytes, expected {LEN}", bytes.len())));
    }
    if blake3::hash(&bytes[..LEN - 16]).as_bytes()[..16] != bytes[LEN - 16..] {
        return Err(bad("its check bytes do not match (the file is damaged or truncated)"));
    }
    let master = MasterKey::from_bytes(bytes[25..57].try_into().expect("32 bytes"));
    if Keys::derive(&master).family_id()[..] != bytes[9..25] {
        return Err(bad("its family id does not match its key"));
    }
    Ok(master)
}

/// Reads an exported key from `path`.
pub fn read(path: &Path) -> Result<MasterKey> {
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| Error::Io { op: "read key file", path: path.display().to_string(), source: e })?);
    decode(&bytes, &format!("key file {}", path.display()))
}

/// Writes `master` to a new file at `path`, mode 0600; refuses to replace one.
pub fn write(path: &Path, master: &MasterKey) -> Result<()> {
    let io = |e| Error::Io { op: "write key file", path: path.display().to_string(), source: e };
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    f.write_all(&encode(master)).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let m = MasterKey::from_bytes([7; 32]);
        let b = encode(&m);
        assert_eq!(b.len(), LEN);
        assert_eq!(decode(&b, "k").unwrap().expose(), m.expose());
        for i in 0..LEN {
            let mut x = b.to_vec();
            x[i] ^= 1;
            assert!(decode(&x, "k").is_err(), "flip at {i} accepted");
        }
        assert!(decode(&b[..LEN - 1], "k").is_err());
    }
}
