//! Identifiers: block IDs (keyed BLAKE3 of plaintext) and object names
//! (unkeyed BLAKE3 of stored bytes).

use std::fmt;
use std::str::FromStr;

/// A block ID: keyed BLAKE3-256 of the block's plaintext (format-spec §3.2).
///
/// Without the ID key an observer cannot tell which content a block holds,
/// and cannot test a guess.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub [u8; 32]);

/// An object name: unkeyed BLAKE3-256 of the object's stored bytes
/// (format-spec §2). Anyone can verify a copy without the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName(pub [u8; 32]);

macro_rules! hex_id {
    ($t:ty) => {
        impl $t {
            /// Lowercase hex of the 32 bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first `n` hex digits, for display.
            pub fn short(&self, n: usize) -> String {
                let mut s = self.to_hex();
                s.truncate(n);
                s
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self.short(12))
            }
        }
        /// Serializes as lowercase hex (reports, `--json`).
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl FromStr for $t {
            type Err = hex::FromHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut b = [0u8; 32];
                hex::decode_to_slice(s, &mut b)?;
                Ok(Self(b))
            }
        }
    };
}
hex_id!(BlockId);
hex_id!(ObjectName);

impl ObjectName {
    /// The name of the given stored bytes.
    pub fn of(bytes: &[u8]) -> Self {
        ObjectName(*blake3::hash(bytes).as_bytes())
    }
}
