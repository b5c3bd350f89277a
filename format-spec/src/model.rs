//! The JSON shape of every vector file (SPEC.md §13). All byte strings are
//! lowercase hex; integers are JSON numbers; `u64` values that do not fit
//! a double (gear entries, masks) are 16 hex digits, most significant first.

use serde::{Deserialize, Serialize};

/// One vector file: a family of vectors of the same shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorFile<T> {
    /// Name of the family (the file is `<family>.json`).
    pub family: String,
    /// Where the format is specified.
    pub spec: String,
    /// What the vectors check, in one or two sentences.
    pub about: String,
    /// How to regenerate the file.
    pub generator: String,
    /// The vectors.
    pub vectors: Vec<T>,
}

/// `keys.json`: everything derived from a master key (SPEC.md §3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysVector {
    /// The 32-byte master key.
    pub master_key: String,
    /// `derive_key(CONTEXT_BLOCK_ID, master)`.
    pub id_key: String,
    /// `derive_key(CONTEXT_ENCRYPTION, master)`.
    pub enc_key: String,
    /// `derive_key(CONTEXT_GEAR, master)`.
    pub gear_seed: String,
    /// First 16 bytes of `derive_key(CONTEXT_FAMILY, master)`.
    pub family_id: String,
    /// `gear[0..8]`, each as 16 hex digits (the number, most significant digit first).
    pub gear_first8: Vec<String>,
    /// Unkeyed BLAKE3-256 of the 2048-byte table (entries little-endian, in order).
    pub gear_table_blake3: String,
    /// Block IDs of fixed inputs.
    pub block_ids: Vec<BlockIdVector>,
}

/// One block ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockIdVector {
    /// The plaintext.
    pub input: String,
    /// Its block ID.
    pub id: String,
}

/// `chunker.json`: cut points (SPEC.md §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerVector {
    /// Short label.
    pub name: String,
    /// Master key whose gear table is used.
    pub master_key: String,
    /// The input is the first `input_len` bytes of the BLAKE3 XOF of these ASCII bytes.
    pub seed: String,
    /// Input length in bytes.
    pub input_len: u64,
    /// BLAKE3-256 of the input (to check it was generated right).
    pub input_blake3: String,
    /// Minimum chunk size.
    pub min: u32,
    /// Average (a power of two).
    pub avg: u32,
    /// Maximum.
    pub max: u32,
    /// MASK_S, 16 hex digits.
    pub mask_s: String,
    /// MASK_L, 16 hex digits.
    pub mask_l: String,
    /// Chunk lengths in input order; they sum to `input_len`.
    pub lengths: Vec<u64>,
}

/// `envelope.json`: sealed objects (SPEC.md §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeVector {
    /// Short label.
    pub name: String,
    /// Master key (the encryption key is derived from it).
    pub master_key: String,
    /// Kind byte.
    pub kind: u8,
    /// The 32-byte id bound into the AAD (block ID, or zero for standalone objects).
    pub id: String,
    /// The 24-byte nonce.
    pub nonce: String,
    /// zstd level the writer used.
    pub zstd_level: i32,
    /// The payload (for blocks: the block's plaintext).
    pub payload: String,
    /// Codec the writer chose (0 stored, 1 zstd).
    pub codec: u8,
    /// The 41-byte associated data.
    pub aad: String,
    /// The AEAD plaintext: codec byte then body.
    pub plaintext: String,
    /// nonce || ciphertext || tag.
    pub sealed: String,
}

/// A 49-byte entry of a pack trailer or index (SPEC.md §8.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryJson {
    /// Kind byte (1 data, 2 tree).
    pub kind: u8,
    /// Block ID.
    pub id: String,
    /// Offset of the sealed block in the pack.
    pub offset: u64,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

/// One block of a pack vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackBlock {
    /// Kind byte.
    pub kind: u8,
    /// Block ID.
    pub id: String,
    /// Nonce of its envelope.
    pub nonce: String,
    /// Plaintext.
    pub plaintext: String,
    /// The sealed block as it appears in the pack.
    pub sealed: String,
}

/// `pack.json`: whole packs (SPEC.md §8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackVector {
    /// Short label.
    pub name: String,
    /// Master key.
    pub master_key: String,
    /// The blocks in pack order.
    pub blocks: Vec<PackBlock>,
    /// Nonce of the trailer's envelope.
    pub trailer_nonce: String,
    /// The trailer payload (before sealing).
    pub trailer_payload: String,
    /// The sealed trailer.
    pub trailer_sealed: String,
    /// The entries the trailer lists.
    pub entries: Vec<EntryJson>,
    /// The whole pack file.
    pub pack: String,
    /// Its object name.
    pub object_name: String,
    /// Its path in a store.
    pub path: String,
}

/// `keyfile.json`: passphrase-wrapped master keys (SPEC.md §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFileVector {
    /// Short label.
    pub name: String,
    /// The wrapped master key.
    pub master_key: String,
    /// Passphrase as text (its UTF-8 bytes are the Argon2id password).
    pub passphrase: String,
    /// The same, hex.
    pub passphrase_hex: String,
    /// Argon2id memory, KiB.
    pub m_kib: u32,
    /// Argon2id passes.
    pub t: u32,
    /// Argon2id lanes.
    pub p: u32,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Host.
    pub host: String,
    /// Argon2id salt.
    pub salt: String,
    /// Nonce.
    pub nonce: String,
    /// Argon2id output (the key-encryption key).
    pub kek: String,
    /// Length of the authenticated header.
    pub header_len: u64,
    /// The whole key file.
    pub bytes: String,
    /// Its object name.
    pub object_name: String,
    /// Its path in a store.
    pub path: String,
}

/// `config.json`: store configs (SPEC.md §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVector {
    /// Short label.
    pub name: String,
    /// Master key.
    pub master_key: String,
    /// Nonce.
    pub nonce: String,
    /// Store id.
    pub store_id: String,
    /// Family id (must match the master key's).
    pub family_id: String,
    /// Chunker minimum.
    pub chunk_min: u32,
    /// Chunker average.
    pub chunk_avg: u32,
    /// Chunker maximum.
    pub chunk_max: u32,
    /// Pack target size.
    pub pack_target: u32,
    /// zstd level.
    pub zstd_level: i32,
    /// The 56-byte payload.
    pub payload: String,
    /// The sealed config (the file `config`).
    pub sealed: String,
}

/// The blocks of one pack in an index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRecordJson {
    /// Pack object name.
    pub pack: String,
    /// Its entries.
    pub entries: Vec<EntryJson>,
}

/// `index.json`: index files (SPEC.md §9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexVector {
    /// Short label.
    pub name: String,
    /// Master key.
    pub master_key: String,
    /// Nonce.
    pub nonce: String,
    /// Names of superseded index files.
    pub supersedes: Vec<String>,
    /// Packs listed.
    pub packs: Vec<PackRecordJson>,
    /// The payload before sealing.
    pub payload: String,
    /// The sealed index file.
    pub sealed: String,
    /// Its object name.
    pub object_name: String,
    /// Its path in a store.
    pub path: String,
}

/// A file of a store tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFile {
    /// Path relative to the store root, `/`-separated.
    pub path: String,
    /// Contents.
    pub bytes: String,
}

/// A block a store vector must yield.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreBlock {
    /// Kind byte.
    pub kind: u8,
    /// Block ID.
    pub id: String,
    /// Plaintext.
    pub plaintext: String,
}

/// A pack no index lists, and what its trailer says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnindexedPack {
    /// Object name.
    pub pack: String,
    /// Size in bytes.
    pub size: u64,
    /// Its blocks (readable once adopted).
    pub blocks: Vec<StoreBlock>,
}

/// `store.json`: a whole store directory (SPEC.md §2, §10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreVector {
    /// Short label.
    pub name: String,
    /// Master key.
    pub master_key: String,
    /// Passphrase of the key file.
    pub passphrase: String,
    /// Every file of the store.
    pub files: Vec<StoreFile>,
    /// Paths of files readers must ignore.
    pub ignored: Vec<String>,
    /// Blocks readable through the index.
    pub blocks: Vec<StoreBlock>,
    /// Packs present but not indexed (to be adopted, SPEC.md §10.4).
    pub unindexed: Vec<UnindexedPack>,
}

/// One entry of a tree vector (SPEC.md §14.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntryJson {
    /// The name as text (for reading the file; `name_hex` is authoritative).
    pub name: String,
    /// The name bytes.
    pub name_hex: String,
    /// Entry type: 1 file, 2 folder, 3 symlink.
    #[serde(rename = "type")]
    pub entry_type: u8,
    /// Permission bits.
    pub mode: u32,
    /// Modification time in ns since the Unix epoch: 16 hex digits of the i64's two's complement.
    pub mtime_ns: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard-link group, 16 hex digits (0: not hard-linked).
    pub link_group: String,
    /// Type 1: the data block IDs in file order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<String>>,
    /// Type 2: the subtree's block ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<String>,
    /// Type 3: the link target bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A data block a tree vector refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataBlockJson {
    /// Block ID.
    pub id: String,
    /// Plaintext.
    pub plaintext: String,
}

/// `tree.json`: tree blocks (SPEC.md §14.1, §14.3, §14.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeVector {
    /// Short label.
    pub name: String,
    /// Master key (the block ID and the sealing key derive from it).
    pub master_key: String,
    /// The entries, in payload order.
    pub entries: Vec<TreeEntryJson>,
    /// The data blocks the file entries list (plaintexts, so sizes can be checked).
    pub data_blocks: Vec<DataBlockJson>,
    /// The encoded tree (the block's plaintext).
    pub payload: String,
    /// Its block ID (SPEC.md §3.2).
    pub block_id: String,
    /// Nonce of the sealed block.
    pub nonce: String,
    /// The sealed tree block (kind 2, AAD id = block ID), as it appears in a pack.
    pub sealed: String,
}

/// `snapshot.json`: snapshot objects (SPEC.md §14.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotVector {
    /// Short label.
    pub name: String,
    /// Master key.
    pub master_key: String,
    /// Payload version (1).
    pub version: u32,
    /// When it was taken, ns since the Unix epoch: 16 hex digits of the i64's two's complement.
    pub time_ns: String,
    /// Block ID of the root tree.
    pub root: String,
    /// Parent snapshot IDs.
    pub parents: Vec<String>,
    /// Host name.
    pub host: String,
    /// Source folder as text (`source_hex` is authoritative).
    pub source: String,
    /// Source folder bytes.
    pub source_hex: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Replica id (zero for plain backups).
    pub replica: String,
    /// Synced folder id (zero for plain backups).
    pub folder: String,
    /// Summary: files.
    pub files: u64,
    /// Summary: folders.
    pub dirs: u64,
    /// Summary: bytes of file content.
    pub bytes: u64,
    /// Summary: new files.
    pub new_files: u64,
    /// Summary: changed files.
    pub changed_files: u64,
    /// Summary: unchanged files.
    pub unchanged_files: u64,
    /// Summary: bytes added to the store.
    pub added_bytes: u64,
    /// The encoded payload.
    pub payload: String,
    /// Nonce of the envelope.
    pub nonce: String,
    /// zstd level the writer used.
    pub zstd_level: i32,
    /// The sealed snapshot (kind 18, zero id): the whole object.
    pub sealed: String,
    /// Its object name, which is the snapshot ID.
    pub object_name: String,
    /// Its path in a store.
    pub path: String,
}

/// `negative.json`: one input that a reader must refuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegativeCase {
    /// Short label.
    pub name: String,
    /// What is wrong with the input.
    pub description: String,
    /// The key the reader holds.
    pub master_key: String,
    /// The input and how it is read.
    pub input: NegativeInput,
    /// Expected error class: `damaged`, `unsupported` or `wrong_passphrase`.
    pub error: String,
    /// Which check fails (SPEC.md §13.2).
    pub reason: String,
}

/// How a negative input is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum NegativeInput {
    /// A sealed block read as an index entry says (§5, §10.5).
    Block {
        /// Kind byte from the entry.
        kind: u8,
        /// Block ID from the entry.
        id: String,
        /// raw_len from the entry.
        raw_len: u32,
        /// The bytes at offset..offset+length.
        sealed: String,
    },
    /// A whole pack file (§8).
    Pack {
        /// The pack bytes.
        pack: String,
    },
    /// A key file and a passphrase (§4).
    KeyFile {
        /// The key file bytes.
        bytes: String,
        /// The passphrase tried.
        passphrase: String,
    },
    /// A sealed config (§7).
    Config {
        /// The file `config`.
        sealed: String,
    },
    /// A sealed index file (§9).
    Index {
        /// The index file bytes.
        sealed: String,
    },
    /// A tree block's payload, decoded (§14.1); sealing is not involved.
    Tree {
        /// The payload bytes.
        payload: String,
    },
    /// A sealed snapshot (§14.2): opened with limit 1 MiB, then decoded (the name is not involved).
    Snapshot {
        /// The snapshot object's bytes.
        sealed: String,
    },
    /// A whole store opened with a passphrase (§2, §10).
    Store {
        /// The passphrase.
        passphrase: String,
        /// Every file of the store.
        files: Vec<StoreFile>,
        /// Blocks to read after opening, in order (the error may come from one of them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        read: Vec<String>,
    },
}

/// `exported-key.json`: exported keys (SPEC.md §18), valid and refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedKeyVector {
    /// Short label.
    pub name: String,
    /// The file's bytes, hex.
    pub bytes: String,
    /// The master key a reader gets (valid vectors), hex.
    pub master_key: Option<String>,
    /// Why a reader refuses it (`damaged` or `unsupported`), for invalid vectors.
    pub error: Option<String>,
}

/// `protocol.json`: frames of the ssh protocol (SPEC.md §19), valid and refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolVector {
    /// Short label.
    pub name: String,
    /// `request` (client to server) or `reply` (server to client).
    pub direction: String,
    /// The message in words (type, id, fields), for readers of this file.
    pub message: String,
    /// The whole frame: the u32 length, then the body; hex.
    pub frame: String,
    /// Why a reader refuses it (`bad-request`, or `frame-too-long` for a
    /// length over the limit), for invalid frames.
    pub error: Option<String>,
}

/// `conflict-name.json`: names of conflict copies (SPEC.md §16.2 step 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictNameVector {
    /// Short label.
    pub name: String,
    /// Path of the losing version (`/`-separated, relative).
    pub path: String,
    /// `host` of the snapshot of the head holding it (the replica's name).
    pub host: String,
    /// `replica` of that snapshot, 16 bytes.
    pub replica: String,
    /// The loser's mtime, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// The loser (a file): its block IDs, for the content key.
    pub blocks: Vec<String>,
    /// Its mode, for the content key.
    pub mode: u32,
    /// R: the label of the replica.
    pub label: String,
    /// The conflict name.
    pub copy: String,
    /// The name used when `copy` is taken by other content (`-<T>` added).
    pub copy_with_suffix: String,
    /// The visible name (§16.2 step 3) used when the merged rules exclude
    /// `copy`: the whole name as STEM, no EXT.
    pub whole: String,
    /// `whole` with `-<T>` added.
    pub whole_with_suffix: String,
    /// The name every one of the four reads back to (§16.3): the file
    /// name of `path`.
    pub original: String,
}
