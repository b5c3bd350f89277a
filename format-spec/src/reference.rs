//! A second, deliberately naive implementation of the format, written
//! from SPEC.md rather than from the store crate.
//!
//! It serves two purposes: building vectors the store API cannot produce
//! (sealed objects with crafted plaintexts, such as decompression bombs and
//! unknown codecs), and cross-checking that SPEC.md describes the store crate
//! byte for byte (the tests compare both implementations on every vector).
//! Nothing here is optimized, and none of it is used by ferry itself.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// SPEC.md §3.1: `derive_key` context of the block ID key.
pub const CONTEXT_BLOCK_ID: &str = "ferry 2026-11-21 block id key";
/// SPEC.md §3.1: `derive_key` context of the gear table seed.
pub const CONTEXT_GEAR: &str = "ferry 2026-11-21 chunker gear table";
/// SPEC.md §3.1: `derive_key` context of the object encryption key.
pub const CONTEXT_ENCRYPTION: &str = "ferry 2026-11-21 object encryption key";
/// SPEC.md §3.1: `derive_key` context of the family id.
pub const CONTEXT_FAMILY: &str = "ferry 2026-11-21 family id";

/// SPEC.md §5.2: prefix of every envelope's associated data.
pub const AAD_PREFIX: &[u8; 8] = b"ferry-v1";
/// SPEC.md §8: magic at the end of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"FRYPACK1";
/// SPEC.md §4: magic at the start of every key file.
pub const KEYFILE_MAGIC: &[u8; 8] = b"FERRYKEY";

/// SPEC.md §6.2: the FastCDC spread masks, indexed by their number of one bits.
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

/// Every key derived from a master key (SPEC.md §3).
#[derive(Clone, Debug)]
pub struct Derived {
    /// Key of the keyed BLAKE3 that computes block IDs.
    pub id_key: [u8; 32],
    /// XChaCha20-Poly1305 key of every sealed object.
    pub enc_key: [u8; 32],
    /// Key of the keyed BLAKE3 whose XOF output is the gear table.
    pub gear_seed: [u8; 32],
    /// The 256-entry gear table.
    pub gear: Vec<u64>,
    /// First 16 bytes of the family `derive_key` output.
    pub family_id: [u8; 16],
}

/// Derives every subkey of `master` (SPEC.md §3.1–§3.4).
pub fn derive(master: &[u8; 32]) -> Derived {
    let id_key = blake3::derive_key(CONTEXT_BLOCK_ID, master);
    let enc_key = blake3::derive_key(CONTEXT_ENCRYPTION, master);
    let gear_seed = blake3::derive_key(CONTEXT_GEAR, master);
    let mut raw = [0u8; 2048];
    blake3::Hasher::new_keyed(&gear_seed).finalize_xof().fill(&mut raw);
    let gear = raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let fam = blake3::derive_key(CONTEXT_FAMILY, master);
    let mut family_id = [0u8; 16];
    family_id.copy_from_slice(&fam[..16]);
    Derived { id_key, enc_key, gear_seed, gear, family_id }
}

/// The gear table as the 2048 bytes it was read from (each entry little-endian).
pub fn gear_bytes(gear: &[u64]) -> Vec<u8> {
    gear.iter().flat_map(|g| g.to_le_bytes()).collect()
}

/// Block ID: keyed BLAKE3-256 of the plaintext (SPEC.md §3.2).
pub fn block_id(id_key: &[u8; 32], plaintext: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(id_key, plaintext).as_bytes()
}

/// Object name: unkeyed BLAKE3-256 of the stored bytes (SPEC.md §2.2).
pub fn object_name(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Associated data of a sealed object (SPEC.md §5.2).
pub fn aad(kind: u8, id: &[u8; 32]) -> Vec<u8> {
    let mut a = AAD_PREFIX.to_vec();
    a.push(kind);
    a.extend_from_slice(id);
    a
}

/// Seals an already encoded plaintext (codec byte included).
pub fn seal_plaintext(enc_key: &[u8; 32], kind: u8, id: &[u8; 32], plaintext: &[u8], nonce: &[u8; 24]) -> Vec<u8> {
    let ct = XChaCha20Poly1305::new(enc_key.into())
        .encrypt(XNonce::from_slice(nonce), Payload { msg: plaintext, aad: &aad(kind, id) })
        .expect("in-memory encryption");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Opens a sealed object down to its plaintext (codec byte included);
/// `None` when the tag does not verify or the object is too short.
pub fn open_plaintext(enc_key: &[u8; 32], kind: u8, id: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 24 + 1 + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(24);
    XChaCha20Poly1305::new(enc_key.into()).decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad(kind, id) }).ok()
}

/// RFC 8878 §3.1.1: the magic number of a Zstandard frame (skippable
/// frames have other magics, and are not accepted, SPEC.md §5.4).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Parses the header of the Zstandard frame at the start of `b` (RFC 8878
/// §3.1.1.1): `(declared content size, header length)`, or `None` when `b`
/// does not start with a frame header.
pub fn zstd_frame_header(b: &[u8]) -> Option<(Option<u64>, usize)> {
    if b.len() < 5 || b[..4] != ZSTD_MAGIC {
        return None;
    }
    let fhd = b[4];
    let (fcs_flag, single_segment, reserved, dict_flag) = (fhd >> 6, fhd & 0x20 != 0, fhd & 0x08 != 0, fhd & 3);
    if reserved {
        return None;
    }
    let mut at = 5 + usize::from(!single_segment) + [0, 1, 2, 4][dict_flag as usize];
    let fcs_len = match fcs_flag {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let f = b.get(at..at + fcs_len)?;
    at += fcs_len;
    let declared = match fcs_len {
        0 => None,
        1 => Some(f[0] as u64),
        2 => Some(u16::from_le_bytes([f[0], f[1]]) as u64 + 256),
        4 => Some(u32::from_le_bytes(f.try_into().ok()?) as u64),
        _ => Some(u64::from_le_bytes(f.try_into().ok()?)),
    };
    Some((declared, at))
}

/// Length of the Zstandard frame at the start of `b`: its header, its
/// blocks up to the one marked last, and the optional 4-byte checksum
/// (RFC 8878 §3.1.1). `None` when the frame is malformed or runs past `b`.
pub fn zstd_frame_len(b: &[u8]) -> Option<usize> {
    let (_, mut at) = zstd_frame_header(b)?;
    loop {
        let h = b.get(at..at + 3)?;
        let h = u32::from_le_bytes([h[0], h[1], h[2], 0]);
        let (last, block_type, size) = (h & 1 != 0, (h >> 1) & 3, (h >> 3) as usize);
        at += 3 + match block_type {
            0 | 2 => size, // raw, compressed
            1 => 1,        // RLE: one byte
            _ => return None,
        };
        if at > b.len() {
            return None;
        }
        if last {
            break;
        }
    }
    if b[4] & 0x04 != 0 {
        at += 4;
    }
    (at <= b.len()).then_some(at)
}

/// Opens a sealed object with limit `limit` as SPEC.md §5.4 says, step by
/// step; on refusal, the §13.2 reason.
pub fn open_payload(enc_key: &[u8; 32], kind: u8, id: &[u8; 32], sealed: &[u8], limit: usize) -> Result<Vec<u8>, &'static str> {
    use std::io::Read;
    if sealed.len() < 41 {
        return Err("too_short");
    }
    let plain = open_plaintext(enc_key, kind, id, sealed).ok_or("authentication")?;
    let body = &plain[1..];
    match plain[0] {
        0 if body.len() > limit => Err("size_limit"),
        0 => Ok(body.to_vec()),
        1 => {
            let (declared, _) = zstd_frame_header(body).ok_or("bad_compression")?;
            if declared.is_some_and(|n| n > limit as u64) {
                return Err("size_limit");
            }
            if zstd_frame_len(body).ok_or("bad_compression")? != body.len() {
                return Err("trailing_bytes");
            }
            let cap = declared.map_or(limit as u64, |n| n);
            let mut out = Vec::new();
            let decoder = zstd::stream::read::Decoder::new(body).map_err(|_| "bad_compression")?;
            decoder.take(cap + 1).read_to_end(&mut out).map_err(|_| "bad_compression")?;
            match declared {
                Some(n) if out.len() as u64 != n => Err("bad_compression"),
                None if out.len() > limit => Err("size_limit"),
                _ => Ok(out),
            }
        }
        _ => Err("unknown_codec"),
    }
}

/// Reads a block given its index entry (SPEC.md §10.5 steps 3–5, with the
/// entry's `raw_len` as the limit); on refusal, the §13.2 reason.
pub fn read_block(d: &Derived, kind: u8, id: &[u8; 32], raw_len: u32, sealed: &[u8]) -> Result<Vec<u8>, &'static str> {
    let payload = open_payload(&d.enc_key, kind, id, sealed, raw_len as usize)?;
    if payload.len() != raw_len as usize {
        return Err("length_mismatch");
    }
    if block_id(&d.id_key, &payload) != *id {
        return Err("block_id_mismatch");
    }
    Ok(payload)
}

/// A zstd frame (RFC 8878, not single-segment) whose header declares
/// `declared` content bytes (4-byte field, 1 KiB window) and whose single
/// RLE block holds `actual` copies of `byte`: a frame whose output does
/// not match its header when the two differ.
pub fn zstd_frame_rle(declared: u32, byte: u8, actual: u32) -> Vec<u8> {
    let mut f = ZSTD_MAGIC.to_vec();
    // Frame_Header_Descriptor: FCS field 4 bytes (flag 2), not single segment, no checksum, no dictionary.
    f.push(0b1000_0000);
    // Window_Descriptor: exponent 0, mantissa 0 → 1 KiB.
    f.push(0);
    f.extend_from_slice(&declared.to_le_bytes());
    let hdr: u32 = 1 | (1 << 1) | (actual << 3);
    f.extend_from_slice(&hdr.to_le_bytes()[..3]);
    f.push(byte);
    f
}

/// A skippable frame (RFC 8878 §3.1.2) with `len` zero bytes of user data.
pub fn zstd_skippable_frame(len: u32) -> Vec<u8> {
    let mut f = vec![0x50, 0x2a, 0x4d, 0x18];
    f.extend_from_slice(&len.to_le_bytes());
    f.extend(std::iter::repeat_n(0u8, len as usize));
    f
}

/// The writer's codec choice (SPEC.md §5.3): zstd when the payload is at
/// least 64 bytes and the frame saves more than `len / 32` bytes.
pub fn encode_payload(payload: &[u8], level: i32) -> Vec<u8> {
    if payload.len() >= 64 {
        let z = zstd::bulk::compress(payload, level).expect("zstd");
        if z.len() + payload.len() / 32 < payload.len() {
            let mut out = vec![1];
            out.extend_from_slice(&z);
            return out;
        }
    }
    let mut out = vec![0];
    out.extend_from_slice(payload);
    out
}

/// Seals a payload with the writer's codec rule.
pub fn seal(enc_key: &[u8; 32], kind: u8, id: &[u8; 32], payload: &[u8], level: i32, nonce: &[u8; 24]) -> Vec<u8> {
    seal_plaintext(enc_key, kind, id, &encode_payload(payload, level), nonce)
}

/// Chunk length at the start of `data`, which is the rest of the input
/// (SPEC.md §6.2, one byte per step).
pub fn cut(gear: &[u64], min: usize, avg: usize, max: usize, data: &[u8]) -> usize {
    let n = data.len();
    if n <= min {
        return n;
    }
    let end = n.min(max);
    let center = n.min(avg);
    let bits = avg.trailing_zeros() as usize;
    let (mask_s, mask_l) = (MASKS[bits + 1], MASKS[bits - 1]);
    let (start, small_end, large_end) = (2 * (min / 2), 2 * (center / 2), 2 * (end / 2));
    let mut h: u64 = 0;
    for (i, &byte) in data.iter().enumerate().take(large_end).skip(start) {
        h = (h << 1).wrapping_add(gear[byte as usize]);
        let mask = if i < small_end { mask_s } else { mask_l };
        if h & mask == 0 {
            return i;
        }
    }
    end
}

/// All chunk lengths of `data`.
pub fn cut_all(gear: &[u64], min: usize, avg: usize, max: usize, mut data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let n = cut(gear, min, avg, max, data);
        out.push(n);
        data = &data[n..];
    }
    out
}

/// The deterministic chunker input of SPEC.md §13: the first `len` bytes
/// of the BLAKE3 XOF of `seed`.
pub fn xof_input(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(seed).finalize_xof().fill(&mut out);
    out
}

/// Argon2id key-encryption key of a key file (SPEC.md §4.2).
pub fn kek(passphrase: &[u8], salt: &[u8; 32], m_kib: u32, t: u32, p: u32) -> [u8; 32] {
    let params = argon2::Params::new(m_kib, t, p, Some(32)).expect("Argon2 parameters");
    let mut out = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, salt, &mut out)
        .expect("Argon2id");
    out
}

/// The fields of a key file (SPEC.md §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFileFields {
    /// Format version (1).
    pub version: u8,
    /// KDF id (1 = Argon2id v0x13).
    pub kdf: u8,
    /// Memory cost, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// Unix seconds.
    pub created: u64,
    /// Host bytes.
    pub host: Vec<u8>,
    /// Argon2id salt.
    pub salt: [u8; 32],
    /// XChaCha20-Poly1305 nonce.
    pub nonce: [u8; 24],
}

impl KeyFileFields {
    /// The authenticated header: every byte before the ciphertext.
    pub fn header(&self) -> Vec<u8> {
        let mut h = KEYFILE_MAGIC.to_vec();
        h.push(self.version);
        h.push(self.kdf);
        for v in [self.m_kib, self.t, self.p] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&self.created.to_le_bytes());
        h.push(self.host.len() as u8);
        h.extend_from_slice(&self.host);
        h.extend_from_slice(&self.salt);
        h.extend_from_slice(&self.nonce);
        h
    }

    /// A whole key file wrapping `master`.
    pub fn wrap(&self, master: &[u8; 32], passphrase: &[u8]) -> Vec<u8> {
        let header = self.header();
        let kek = kek(passphrase, &self.salt, self.m_kib, self.t, self.p);
        let ct = XChaCha20Poly1305::new((&kek).into())
            .encrypt(XNonce::from_slice(&self.nonce), Payload { msg: master, aad: &header })
            .expect("in-memory encryption");
        let mut out = header;
        out.extend_from_slice(&ct);
        out
    }
}

/// One 49-byte pack or index entry (SPEC.md §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// Kind byte.
    pub kind: u8,
    /// Block ID.
    pub id: [u8; 32],
    /// Offset of the sealed block in its pack.
    pub offset: u64,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

impl RawEntry {
    /// Appends the 49-byte encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }
}

/// A pack trailer payload with an explicit count (which may lie).
pub fn trailer_payload(count: u32, entries: &[RawEntry]) -> Vec<u8> {
    let mut out = count.to_le_bytes().to_vec();
    for e in entries {
        e.encode(&mut out);
    }
    out
}

/// Assembles a pack from its block area and sealed trailer (SPEC.md §8.1).
pub fn assemble_pack(block_area: &[u8], sealed_trailer: &[u8]) -> Vec<u8> {
    let mut out = block_area.to_vec();
    out.extend_from_slice(sealed_trailer);
    out.extend_from_slice(&(sealed_trailer.len() as u32).to_le_bytes());
    out.extend_from_slice(PACK_MAGIC);
    out
}

/// A zstd frame (RFC 8878) whose header claims `claimed` content bytes but
/// whose single RLE block holds one byte: a reader must refuse it from the
/// header alone.
pub fn zstd_frame_claiming(claimed: u64) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame_Header_Descriptor: FCS field 8 bytes (flag 3), Single_Segment, no checksum, no dictionary.
    f.push(0b1110_0000);
    f.extend_from_slice(&claimed.to_le_bytes());
    // Last RLE block of 1 byte: Last_Block=1, Block_Type=1 (RLE), Block_Size=1.
    let hdr: u32 = 1 | (1 << 1) | (1 << 3);
    f.extend_from_slice(&hdr.to_le_bytes()[..3]);
    f.push(b'A');
    f
}

/// A valid zstd frame without a content size that expands to
/// `blocks × 128 KiB` bytes of `b'B'` (RLE blocks, 128 KiB window).
pub fn zstd_frame_unsized(blocks: u32) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame_Header_Descriptor 0: no FCS, not single segment: a window descriptor follows.
    f.push(0);
    // Window_Descriptor: exponent 7, mantissa 0 → window 2^(10+7) = 128 KiB.
    f.push(7 << 3);
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let hdr: u32 = last | (1 << 1) | ((128 << 10) << 3);
        f.extend_from_slice(&hdr.to_le_bytes()[..3]);
        f.push(b'B');
    }
    f
}

/// SPEC.md §14.1: entry type of a regular file.
pub const ENTRY_FILE: u8 = 1;
/// SPEC.md §14.1: entry type of a folder.
pub const ENTRY_DIR: u8 = 2;
/// SPEC.md §14.1: entry type of a symbolic link.
pub const ENTRY_SYMLINK: u8 = 3;
/// SPEC.md §14.3: longest entry name.
pub const MAX_NAME: usize = 1024;
/// SPEC.md §14.1: longest symlink target.
pub const MAX_TARGET: usize = 4096;
/// SPEC.md §14.6: deepest tree below the root.
pub const MAX_DEPTH: usize = 256;
/// SPEC.md §14.1: largest tree payload.
pub const MAX_TREE_LEN: usize = 64 << 20;
/// SPEC.md §14.2: largest snapshot payload.
pub const MAX_SNAPSHOT_LEN: usize = 1 << 20;
/// SPEC.md §14.2: longest host, source and tag.
pub const MAX_HOST: usize = 256;
/// See [`MAX_HOST`].
pub const MAX_SOURCE: usize = 4096;
/// See [`MAX_HOST`].
pub const MAX_TAG: usize = 256;

/// `u32` length, then the bytes (SPEC.md §14.1 "blob").
pub fn blob(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// SPEC.md §14.3: true when a tree entry name is acceptable.
pub fn name_is_valid(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0) && name.len() <= MAX_NAME
}

/// One tree entry with its fields as stored (SPEC.md §14.1). `content` is
/// the already encoded content, so invalid entries can be built too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawTreeEntry {
    /// Name bytes.
    pub name: Vec<u8>,
    /// Type byte.
    pub entry_type: u8,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// Size.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard-link group.
    pub link_group: u64,
    /// Encoded content (see [`file_content`], [`dir_content`], [`symlink_content`]).
    pub content: Vec<u8>,
}

impl RawTreeEntry {
    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        blob(out, &self.name);
        out.push(self.entry_type);
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        out.extend_from_slice(&self.link_group.to_le_bytes());
        out.extend_from_slice(&self.content);
    }
}

/// Content of a file entry: `block_count` then the IDs.
pub fn file_content(ids: &[[u8; 32]]) -> Vec<u8> {
    let mut out = (ids.len() as u32).to_le_bytes().to_vec();
    for id in ids {
        out.extend_from_slice(id);
    }
    out
}

/// Content of a folder entry: the subtree's block ID.
pub fn dir_content(id: &[u8; 32]) -> Vec<u8> {
    id.to_vec()
}

/// Content of a symlink entry: the target as a blob.
pub fn symlink_content(target: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    blob(&mut out, target);
    out
}

/// A tree payload with an explicit count (which may lie).
pub fn tree_payload(count: u32, entries: &[RawTreeEntry]) -> Vec<u8> {
    let mut out = count.to_le_bytes().to_vec();
    for e in entries {
        e.encode(&mut out);
    }
    out
}

/// The fields of a snapshot payload (SPEC.md §14.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSnapshot {
    /// Payload version.
    pub version: u32,
    /// ns since the Unix epoch.
    pub time_ns: i64,
    /// Root tree block ID.
    pub root: [u8; 32],
    /// Parent snapshot IDs.
    pub parents: Vec<[u8; 32]>,
    /// Host bytes.
    pub host: Vec<u8>,
    /// Source path bytes.
    pub source: Vec<u8>,
    /// Tag bytes.
    pub tags: Vec<Vec<u8>>,
    /// Replica id.
    pub replica: [u8; 16],
    /// Synced folder id.
    pub folder: [u8; 16],
    /// files, dirs, bytes, new_files, changed_files, unchanged_files, added_bytes.
    pub counts: [u64; 7],
}

impl RawSnapshot {
    /// The payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.version.to_le_bytes().to_vec();
        out.extend_from_slice(&self.time_ns.to_le_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&(self.parents.len() as u32).to_le_bytes());
        for p in &self.parents {
            out.extend_from_slice(p);
        }
        blob(&mut out, &self.host);
        blob(&mut out, &self.source);
        out.extend_from_slice(&(self.tags.len() as u32).to_le_bytes());
        for t in &self.tags {
            blob(&mut out, t);
        }
        out.extend_from_slice(&self.replica);
        out.extend_from_slice(&self.folder);
        for c in self.counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }
}

/// §18: the master key of an exported key file, or why it is refused
/// (`"damaged"` or `"unsupported"`).
pub fn exported_key(b: &[u8]) -> Result<[u8; 32], &'static str> {
    if b.len() < 9 || &b[..8] != b"FERRYKEX" {
        return Err("damaged");
    }
    if b[8] != 1 {
        return Err("unsupported");
    }
    if b.len() != 73 || blake3::hash(&b[..57]).as_bytes()[..16] != b[57..] {
        return Err("damaged");
    }
    let master: [u8; 32] = b[25..57].try_into().expect("32 bytes");
    if derive(&master).family_id[..] != b[9..25] {
        return Err("damaged");
    }
    Ok(master)
}

/// §16.2 step 3: the label R of a replica from its snapshot's host and id.
pub fn conflict_label(host: &str, replica: &[u8; 16]) -> String {
    let mut l = String::new();
    for &b in host.as_bytes().iter().take(32) {
        l.push(if b.is_ascii_alphanumeric() { b as char } else { '-' });
    }
    let l = l.trim_matches('-');
    if l.is_empty() { replica[..4].iter().map(|b| format!("{b:02x}")).collect() } else { l.to_string() }
}

/// Proleptic Gregorian date of a day count from 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// §16.2 step 3: `dir/STEM.conflict-<label>-<yyyymmdd>-<hhmmss>.EXT`, with
/// the `-<T>` content suffix after the time when `suffix` is given.
pub fn conflict_name(path: &str, label: &str, mtime_ns: i64, suffix: Option<&str>) -> String {
    let (dir, name) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let secs = mtime_ns.div_euclid(1_000_000_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let t = suffix.map(|t| format!("-{t}")).unwrap_or_default();
    format!("{dir}{stem}.conflict-{label}-{y:04}{mo:02}{d:02}-{:02}{:02}{:02}{t}{ext}", s / 3600, s / 60 % 60, s % 60)
}

/// §16.2 step 2/3: T, the first 3 bytes of BLAKE3 of a file's content key
/// (type 1, its block IDs, its mode big-endian), in hex.
pub fn content_suffix(blocks: &[[u8; 32]], mode: u32) -> String {
    let mut k = vec![1u8];
    blocks.iter().for_each(|b| k.extend_from_slice(b));
    k.extend_from_slice(&mode.to_be_bytes());
    blake3::hash(&k).as_bytes()[..3].iter().map(|b| format!("{b:02x}")).collect()
}

/// §16.2 step 3, visible names: `dir/NAME.conflict-<label>-<yyyymmdd>-<hhmmss>`,
/// the whole name as STEM, with `-<T>` when `suffix` is given.
pub fn whole_conflict_name(path: &str, label: &str, mtime_ns: i64, suffix: Option<&str>) -> String {
    // The whole name has no extension: give conflict_name a name without
    // a dot to split at, then put the name back.
    let (dir, name) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let marked = conflict_name("x", label, mtime_ns, suffix);
    format!("{dir}{name}{}", &marked[1..])
}

/// §16.3: the name of the file a conflict copy is a version of; `None`
/// for a name that is no copy's.
pub fn original_name(name: &str) -> Option<String> {
    if !is_conflict_copy(name) {
        return None;
    }
    // The last `.conflict-` followed by a valid marker (a copy of a copy
    // has two); its label is 1 to 32 bytes, the first j where the time follows.
    let (i, j) = name.match_indices(".conflict-").map(|(i, _)| i).collect::<Vec<_>>().into_iter().rev().find_map(|i| {
        let rest = &name.as_bytes()[i + ".conflict-".len()..];
        (1..=32.min(rest.len()))
            .take_while(|&j| rest[..j].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-'))
            .find(|&j| {
                rest.len() >= j + 16
                    && rest[j] == b'-'
                    && rest[j + 1..j + 9].iter().all(u8::is_ascii_digit)
                    && rest[j + 9] == b'-'
                    && rest[j + 10..j + 16].iter().all(u8::is_ascii_digit)
                    && matches!(rest.get(j + 16), None | Some(b'.') | Some(b'-'))
            })
            .map(|j| (i, j))
    })?;
    let mut tail = &name[i + ".conflict-".len() + j + 16..];
    if let Some(t) = tail.strip_prefix('-')
        && t.len() >= 6
        && t.as_bytes()[..6].iter().all(u8::is_ascii_hexdigit)
        && matches!(t.as_bytes().get(6), None | Some(b'.'))
    {
        tail = &t[6..];
    }
    Some(format!("{}{tail}", &name[..i]))
}

/// §16.2 step 3: whether a file name is a conflict copy's.
pub fn is_conflict_copy(name: &str) -> bool {
    let Some(i) = name.find(".conflict-") else { return false };
    let rest = &name.as_bytes()[i + ".conflict-".len()..];
    let time_at = |j: usize| {
        let digits = |a: usize, b: usize| rest.len() >= b && rest[a..b].iter().all(u8::is_ascii_digit);
        rest.get(j) == Some(&b'-')
            && digits(j + 1, j + 9)
            && rest.get(j + 9) == Some(&b'-')
            && digits(j + 10, j + 16)
            && matches!(rest.get(j + 16), None | Some(b'.') | Some(b'-'))
    };
    (1..=32.min(rest.len())).any(|j| rest[..j].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') && time_at(j))
}
