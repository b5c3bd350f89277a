//! Builds every vector file (SPEC.md §13) in memory, deterministically.
//!
//! Positive vectors come from the store crate's public API with fixed
//! master keys, nonces and salts (`seal_with_nonce`, `wrap_with`,
//! `finish_with`); negative vectors are positive ones altered, or objects
//! sealed by [`crate::reference`] around crafted plaintexts.

use ferry_store::envelope::{self, Kind};
use ferry_store::index::{IndexFile, PackRecord};
use ferry_store::pack::{BlobEntry, PackBuilder};
use ferry_store::{
    BlockId, ChunkerParams, Config, INDEX_DIR, KEYS_DIR, KdfParams, KeyFile, Keys, MasterKey, ObjectName, PACKS_DIR, SNAPSHOTS_DIR,
    object_path,
};
use ferry_sync::snapshot::{Snapshot, Summary};
use ferry_sync::tree::{Content, Entry, Tree};
use serde::Serialize;

use crate::model::*;
use crate::reference as r;

/// The command that regenerates the checked-in files.
pub const GENERATOR: &str = "cargo run -p ferry-format-spec --bin gen-vectors";

/// Master key of almost every vector: bytes 00 01 02 … 1f.
pub const MASTER_A: [u8; 32] = {
    let mut k = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        k[i] = i as u8;
        i += 1;
    }
    k
};

/// The "other" master key: bytes ff fe fd … e0.
pub const MASTER_B: [u8; 32] = {
    let mut k = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        k[i] = 0xff - i as u8;
        i += 1;
    }
    k
};

/// Passphrase of the store vector's key file.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// Seed of every chunker input.
pub const CHUNK_SEED: &str = "ferry format-spec chunker input v1";

/// Cheap Argon2id parameters for vectors (never for real key files).
pub const VECTOR_KDF: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };

/// Small chunker parameters: many cuts in little input.
pub const SMALL_CHUNKS: ChunkerParams = ChunkerParams { min: 2048, avg: 8192, max: 32768 };

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

/// Fixed bytes for a label: the BLAKE3 XOF of "ferry-format-spec fixed bytes " || label.
pub fn fixed<const N: usize>(label: &str) -> [u8; N] {
    let mut out = [0u8; N];
    blake3::Hasher::new().update(b"ferry-format-spec fixed bytes ").update(label.as_bytes()).finalize_xof().fill(&mut out);
    out
}

fn keys(master: &[u8; 32]) -> Keys {
    Keys::derive(&MasterKey::from_bytes(*master))
}

/// Compressible text of exactly `len` bytes.
pub fn text(len: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!("line {i}: the quick brown fox jumps over the lazy dog\n"));
        i += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

/// Incompressible bytes of exactly `len` bytes.
pub fn noise(label: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(b"ferry-format-spec noise ").update(label.as_bytes()).finalize_xof().fill(&mut out);
    out
}

fn u64_hex(v: u64) -> String {
    format!("{v:016x}")
}

fn entry_json(e: &BlobEntry) -> EntryJson {
    EntryJson { kind: e.kind as u8, id: e.id.to_hex(), offset: e.offset, length: e.length, raw_len: e.raw_len }
}

fn raw_entry(e: &BlobEntry) -> r::RawEntry {
    r::RawEntry { kind: e.kind as u8, id: e.id.0, offset: e.offset, length: e.length, raw_len: e.raw_len }
}

fn file<T: Serialize>(family: &str, spec: &str, about: &str, vectors: Vec<T>) -> (String, String) {
    let f = VectorFile { family: family.into(), spec: spec.into(), about: about.into(), generator: GENERATOR.into(), vectors };
    (format!("{family}.json"), serde_json::to_string_pretty(&f).expect("serializable") + "\n")
}

/// Every vector file: `(file name, contents)`, in a fixed order.
pub fn generate() -> Vec<(String, String)> {
    let data_pack = build_pack(
        "data-pack",
        &MASTER_A,
        &[(Kind::Data, b"hello, ferry".to_vec()), (Kind::Data, text(4096)), (Kind::Data, noise("pack block", 100))],
    );
    let tree_pack = build_pack("tree-pack", &MASTER_A, &[(Kind::Tree, text(300)), (Kind::Tree, b"a small tree block".to_vec())]);
    let keyfiles = keyfile_vectors();
    let configs = config_vectors();
    let indexes = index_vectors(&data_pack, &tree_pack);
    let store = store_vector(&keyfiles[0], &configs[0], &indexes[0], &data_pack, &tree_pack);
    let trees = tree_vectors();
    let root = trees.last().expect("the root tree is built last");
    let (snapshots, snapshot_structs) = snapshot_vectors(&trees, root.id);
    let mut negative = negative_cases(&data_pack, &keyfiles[0], &configs[0], &store);
    negative.extend(tree_negative_cases());
    negative.extend(snapshot_negative_cases(&snapshot_structs[0]));
    vec![
        file("keys", "SPEC.md §3", "Keys derived from two master keys, and block IDs of fixed inputs.", keys_vectors()),
        file(
            "chunker",
            "SPEC.md §6",
            "Chunk lengths of deterministic inputs (BLAKE3 XOF of `seed`) with master key A's gear table.",
            chunker_vectors(),
        ),
        file("envelope", "SPEC.md §5", "Sealed objects with fixed nonces, both codecs.", envelope_vectors()),
        file(
            "pack",
            "SPEC.md §8",
            "Whole packs: sealed blocks, sealed trailer, footer.",
            vec![data_pack.vector.clone(), tree_pack.vector.clone()],
        ),
        file("keyfile", "SPEC.md §4", "Key files with cheap Argon2id parameters (m=64 KiB).", keyfiles.clone()),
        file("config", "SPEC.md §7", "Sealed store configs.", configs.clone()),
        file("index", "SPEC.md §9", "Sealed index files.", indexes.clone()),
        file(
            "store",
            "SPEC.md §2, §10",
            "A whole store directory: open it with the passphrase, read every block, adopt the unindexed pack.",
            vec![store],
        ),
        file(
            "tree",
            "SPEC.md §14.1, §14.3, §14.4",
            "Tree blocks with master key A: an empty folder, a subfolder, and a root folder holding a file of two blocks, a folder, \
             a symlink and two names of one hard-linked file. The data blocks are small hand-picked plaintexts: the tree format \
             does not depend on how the chunker cut them.",
            trees.iter().map(|t| t.vector.clone()).collect(),
        ),
        file(
            "snapshot",
            "SPEC.md §14.2, §14.5",
            "Snapshot objects of the root tree of tree.json, sealed with fixed nonces: a first backup, a second one naming it as \
             parent, and one with replica and folder ids and two parents.",
            snapshots,
        ),
        file("negative", "SPEC.md §13.2", "Inputs every reader must refuse, with the error class and the failing check.", negative),
        file(
            "exported-key",
            "SPEC.md §18",
            "Exported keys of master keys A and B, and files every reader must refuse (damaged: wrong magic, length, check or \
             family id; unsupported: another version).",
            exported_key_vectors(),
        ),
        file(
            "conflict-name",
            "SPEC.md §16.2 step 3",
            "Names of conflict copies: the replica's label from its snapshot's host (sanitized, cut, or the replica id when \
             nothing is left), the loser's mtime in UTC, and the name with the content suffix T.",
            conflict_name_vectors(),
        ),
        file(
            "protocol",
            "SPEC.md §19",
            "Frames of the ssh protocol (`ferry serve --stdio`): one of each request and reply, and frames a server must refuse.",
            protocol_vectors(),
        ),
    ]
}

fn protocol_vectors() -> Vec<ProtocolVector> {
    use ferry_store::protocol::{Code, FLAG_APPEND_ONLY, MAX_FRAME, Reply, Request, encode_reply, encode_request, msg};
    let framed = |body: &[u8]| {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        h(&f)
    };
    let pack = format!("packs/{0}/{0}{1}", "ab", "cd".repeat(31));
    let lock = "locks/s-00112233445566778899aabbccddeeff".to_string();
    let req = |name: &str, id: u32, r: Request| ProtocolVector {
        name: name.into(),
        direction: "request".into(),
        message: format!("id {id}: {r:?}"),
        frame: framed(&encode_request(id, &r)),
        error: None,
    };
    let rep = |name: &str, id: u32, r: Reply| ProtocolVector {
        name: name.into(),
        direction: "reply".into(),
        message: format!("id {id}: {r:?}"),
        frame: framed(&encode_reply(id, &r)),
        error: None,
    };
    let bad = |name: &str, message: &str, frame: String, error: &str| ProtocolVector {
        name: name.into(),
        direction: "request".into(),
        message: message.into(),
        frame,
        error: Some(error.into()),
    };
    let mut long_path = vec![msg::LIST];
    long_path.extend_from_slice(&9u32.to_le_bytes());
    long_path.extend_from_slice(&1025u16.to_le_bytes());
    long_path.extend_from_slice(&[b'a'; 1025]);
    let mut many_ranges = vec![msg::READ_RANGES];
    many_ranges.extend_from_slice(&10u32.to_le_bytes());
    many_ranges.extend_from_slice(&6u16.to_le_bytes());
    many_ranges.extend_from_slice(b"config");
    many_ranges.extend_from_slice(&1000u32.to_le_bytes());
    many_ranges.extend_from_slice(&[0; 16]);
    let mut wrong_magic = encode_request(0, &Request::Hello { version: 1, path: "/srv/store".into() });
    wrong_magic[5] = b'F';
    let mut trailing = encode_request(11, &Request::Exists("config".into()));
    trailing.push(0);
    let mut not_utf8 = vec![msg::READ];
    not_utf8.extend_from_slice(&12u32.to_le_bytes());
    not_utf8.extend_from_slice(&2u16.to_le_bytes());
    not_utf8.extend_from_slice(&[0xff, 0xfe]);
    vec![
        req("hello", 0, Request::Hello { version: 1, path: "/srv/ferry/store".into() }),
        req("create", 1, Request::Create),
        req("list", 2, Request::List("packs/".into())),
        req("list-strays", 3, Request::ListStrays(String::new())),
        req("read", 4, Request::Read("config".into())),
        req("read-ranges", 5, Request::ReadRanges(pack.clone(), vec![(0, 4), (9, 3)])),
        req("write", 6, Request::Write(lock.clone(), b"lock".to_vec())),
        req("exists", 7, Request::Exists("config".into())),
        req("delete", 8, Request::Delete(lock.clone())),
        rep("hello-ok", 0, Reply::HelloOk { version: 1, flags: 0 }),
        rep("hello-ok-append-only", 0, Reply::HelloOk { version: 1, flags: FLAG_APPEND_ONLY }),
        rep("ok", 1, Reply::Ok),
        rep("listing", 2, Reply::Listing(vec![(pack.clone(), 1 << 20)])),
        rep("strays", 3, Reply::Strays(vec![".tmp-0011223344556677".into()])),
        rep("data", 4, Reply::Data(b"config bytes".to_vec())),
        rep("ranges", 5, Reply::Ranges(vec![b"abcd".to_vec(), b"xyz".to_vec()])),
        rep("bool", 7, Reply::Bool(true)),
        rep("error-append-only", 8, Reply::Error(Code::AppendOnly, format!("deleting {pack}"))),
        rep("error-not-found", 4, Reply::Error(Code::NotFound, "config: not found".into())),
        bad("frame-too-long", "a length of MAX_FRAME + 1 (no body follows)", h(&(MAX_FRAME + 1).to_le_bytes()), "frame-too-long"),
        bad("unknown-type", "type 0x0a", framed(&[0x0a, 13, 0, 0, 0]), "bad-request"),
        bad("hello-wrong-magic", "hello whose magic starts with 'F'", framed(&wrong_magic), "bad-request"),
        bad("path-too-long", "list of a 1025-byte prefix", framed(&long_path), "bad-request"),
        bad("too-many-ranges", "read-ranges claiming 1000 ranges with one present", framed(&many_ranges), "bad-request"),
        bad("trailing-byte", "exists with a byte after the path", framed(&trailing), "bad-request"),
        bad("path-not-utf8", "read of the bytes ff fe", framed(&not_utf8), "bad-request"),
    ]
}

fn exported_key_vectors() -> Vec<ExportedKeyVector> {
    let valid = |name: &str, m: &[u8; 32]| {
        let b = ferry_store::exported::encode(&ferry_store::MasterKey::from_bytes(*m));
        ExportedKeyVector { name: name.into(), bytes: h(&b), master_key: Some(h(m)), error: None }
    };
    let refused = |name: &str, b: Vec<u8>, error: &str| ExportedKeyVector {
        name: name.into(),
        bytes: h(&b),
        master_key: None,
        error: Some(error.into()),
    };
    let good = ferry_store::exported::encode(&ferry_store::MasterKey::from_bytes(MASTER_A)).to_vec();
    let rechecked = |mut b: Vec<u8>| {
        let c = blake3::hash(&b[..57]);
        b[57..].copy_from_slice(&c.as_bytes()[..16]);
        b
    };
    let mut magic = good.clone();
    magic[0] = b'X';
    let mut version = good.clone();
    version[8] = 2;
    let mut family = good.clone();
    family[9] ^= 1;
    let mut check = good.clone();
    check[72] ^= 0x80;
    let mut key = good.clone();
    key[30] ^= 1;
    vec![
        valid("exported-key-a", &MASTER_A),
        valid("exported-key-b", &MASTER_B),
        refused("exported-key-wrong-magic", magic, "damaged"),
        refused("exported-key-version-2", rechecked(version), "unsupported"),
        refused("exported-key-truncated", good[..72].to_vec(), "damaged"),
        refused("exported-key-trailing-byte", [good.clone(), vec![0]].concat(), "damaged"),
        refused("exported-key-bad-check", check, "damaged"),
        refused("exported-key-flipped-key-bit", key, "damaged"),
        refused("exported-key-family-mismatch", rechecked(family), "damaged"),
    ]
}

fn keys_vectors() -> Vec<KeysVector> {
    let inputs: Vec<Vec<u8>> =
        vec![Vec::new(), b"ferry".to_vec(), vec![0], b"hello, ferry".to_vec(), (0..1025u32).map(|i| (i % 251) as u8).collect()];
    [MASTER_A, MASTER_B]
        .iter()
        .map(|m| {
            let k = keys(m);
            let d = r::derive(m);
            KeysVector {
                master_key: h(m),
                id_key: h(&d.id_key),
                enc_key: h(&d.enc_key),
                gear_seed: h(&d.gear_seed),
                family_id: h(&k.family_id()),
                gear_first8: k.gear()[..8].iter().map(|g| u64_hex(*g)).collect(),
                gear_table_blake3: h(blake3::hash(&r::gear_bytes(k.gear())).as_bytes()),
                block_ids: inputs.iter().map(|i| BlockIdVector { input: h(i), id: k.block_id(i).to_hex() }).collect(),
            }
        })
        .collect()
}

fn chunker_vectors() -> Vec<ChunkerVector> {
    let k = keys(&MASTER_A);
    let mut cases: Vec<(String, ChunkerParams, usize)> = vec![
        ("small-2MiB".into(), SMALL_CHUNKS, 2 << 20),
        ("default-16MiB".into(), ChunkerParams::DEFAULT, 16 << 20),
        ("odd-max".into(), ChunkerParams { min: 64, avg: 4096, max: 5001 }, 256 << 10),
        ("odd-min".into(), ChunkerParams { min: 2049, avg: 8192, max: 32768 }, 512 << 10),
    ];
    for len in [0usize, 1, 2048, 2049, 8191, 8193, 32768, 32769, 40000] {
        cases.push((format!("tail-{len}"), SMALL_CHUNKS, len));
    }
    let longest = cases.iter().map(|c| c.2).max().unwrap_or(0);
    let input = r::xof_input(CHUNK_SEED.as_bytes(), longest);
    cases
        .into_iter()
        .map(|(name, p, len)| {
            let data = &input[..len];
            let chunker = ferry_store::Chunker::new(k.gear(), p).expect("valid chunker parameters");
            let bits = p.avg.trailing_zeros() as usize;
            ChunkerVector {
                name,
                master_key: h(&MASTER_A),
                seed: CHUNK_SEED.into(),
                input_len: len as u64,
                input_blake3: h(blake3::hash(data).as_bytes()),
                min: p.min,
                avg: p.avg,
                max: p.max,
                mask_s: u64_hex(r::MASKS[bits + 1]),
                mask_l: u64_hex(r::MASKS[bits - 1]),
                lengths: chunker.cut_all(data).into_iter().map(|n| n as u64).collect(),
            }
        })
        .collect()
}

fn envelope_vector(name: &str, kind: Kind, payload: Vec<u8>) -> EnvelopeVector {
    let k = keys(&MASTER_A);
    let id: [u8; 32] = if kind.is_block() { k.block_id(&payload).0 } else { [0; 32] };
    let nonce: [u8; 24] = fixed(&format!("envelope {name}"));
    let level = envelope::ZSTD_LEVEL;
    let sealed = envelope::seal_with_nonce(&k, kind, &id, &payload, level, &nonce);
    let plaintext =
        r::open_plaintext(&r::derive(&MASTER_A).enc_key, kind as u8, &id, &sealed).expect("reference opens the store's envelope");
    EnvelopeVector {
        name: name.into(),
        master_key: h(&MASTER_A),
        kind: kind as u8,
        id: h(&id),
        nonce: h(&nonce),
        zstd_level: level,
        payload: h(&payload),
        codec: plaintext[0],
        aad: h(&envelope::aad(kind, &id)),
        plaintext: h(&plaintext),
        sealed: h(&sealed),
    }
}

fn envelope_vectors() -> Vec<EnvelopeVector> {
    vec![
        envelope_vector("data-hello", Kind::Data, b"hello, ferry".to_vec()),
        envelope_vector("data-empty", Kind::Data, Vec::new()),
        envelope_vector("data-63-zeros", Kind::Data, vec![0; 63]),
        envelope_vector("data-64-zeros", Kind::Data, vec![0; 64]),
        envelope_vector("data-noise-4096", Kind::Data, noise("envelope", 4096)),
        envelope_vector("data-text-4096", Kind::Data, text(4096)),
        envelope_vector("tree-text-1000", Kind::Tree, text(1000)),
        envelope_vector("snapshot-standalone", Kind::Snapshot, b"a standalone object: id is all zero".to_vec()),
    ]
}

/// A pack vector and the parts other vectors reuse.
#[derive(Clone, Debug)]
pub struct BuiltPack {
    /// The JSON vector.
    pub vector: PackVector,
    /// Object name.
    pub name: ObjectName,
    /// Whole pack.
    pub bytes: Vec<u8>,
    /// Its entries.
    pub entries: Vec<BlobEntry>,
    /// Plaintexts in entry order.
    pub plaintexts: Vec<Vec<u8>>,
}

impl BuiltPack {
    /// Bytes before the sealed trailer.
    pub fn block_area(&self) -> &[u8] {
        let end = self.entries.last().map(|e| e.offset as usize + e.length as usize).unwrap_or(0);
        &self.bytes[..end]
    }
    fn store_blocks(&self) -> Vec<StoreBlock> {
        self.entries
            .iter()
            .zip(&self.plaintexts)
            .map(|(e, p)| StoreBlock { kind: e.kind as u8, id: e.id.to_hex(), plaintext: h(p) })
            .collect()
    }
}

fn build_pack(name: &str, master: &[u8; 32], blocks: &[(Kind, Vec<u8>)]) -> BuiltPack {
    let k = keys(master);
    let mut builder = PackBuilder::new();
    let mut pblocks = Vec::new();
    for (i, (kind, data)) in blocks.iter().enumerate() {
        let id = k.block_id(data);
        let nonce: [u8; 24] = fixed(&format!("{name} block {i}"));
        let sealed = envelope::seal_with_nonce(&k, *kind, &id.0, data, envelope::ZSTD_LEVEL, &nonce);
        builder.add(*kind, id, data.len() as u32, &sealed);
        pblocks.push(PackBlock { kind: *kind as u8, id: id.to_hex(), nonce: h(&nonce), plaintext: h(data), sealed: h(&sealed) });
    }
    let tnonce: [u8; 24] = fixed(&format!("{name} trailer"));
    let mut payload = Vec::new();
    let fin = builder.finish_with(|p| {
        payload = p.to_vec();
        envelope::seal_with_nonce(&k, Kind::PackTrailer, &[0; 32], p, envelope::ZSTD_LEVEL, &tnonce)
    });
    let area = fin.entries.iter().map(|e| e.length as usize).sum::<usize>();
    let trailer = &fin.bytes[area..fin.bytes.len() - ferry_store::pack::FOOTER_LEN];
    let vector = PackVector {
        name: name.into(),
        master_key: h(master),
        blocks: pblocks,
        trailer_nonce: h(&tnonce),
        trailer_payload: h(&payload),
        trailer_sealed: h(trailer),
        entries: fin.entries.iter().map(entry_json).collect(),
        pack: h(&fin.bytes),
        object_name: fin.name.to_hex(),
        path: object_path(PACKS_DIR, &fin.name),
    };
    BuiltPack { vector, name: fin.name, bytes: fin.bytes, entries: fin.entries, plaintexts: blocks.iter().map(|b| b.1.clone()).collect() }
}

fn keyfile_vector(name: &str, passphrase: &str, kdf: KdfParams, created: u64, host: &str) -> KeyFileVector {
    let salt: [u8; 32] = fixed(&format!("keyfile {name} salt"));
    let nonce: [u8; 24] = fixed(&format!("keyfile {name} nonce"));
    let kf = KeyFile::wrap_with(&MasterKey::from_bytes(MASTER_A), passphrase.as_bytes(), kdf, created, host, salt, nonce)
        .expect("valid key file parameters");
    let bytes = kf.to_bytes();
    let oname = ObjectName::of(bytes);
    KeyFileVector {
        name: name.into(),
        master_key: h(&MASTER_A),
        passphrase: passphrase.into(),
        passphrase_hex: h(passphrase.as_bytes()),
        m_kib: kdf.m_kib,
        t: kdf.t,
        p: kdf.p,
        created,
        host: host.into(),
        salt: h(&salt),
        nonce: h(&nonce),
        kek: h(&r::kek(passphrase.as_bytes(), &salt, kdf.m_kib, kdf.t, kdf.p)),
        header_len: (bytes.len() - 48) as u64,
        bytes: h(bytes),
        object_name: oname.to_hex(),
        path: format!("{KEYS_DIR}{}", oname.to_hex()),
    }
}

fn keyfile_vectors() -> Vec<KeyFileVector> {
    vec![
        keyfile_vector("basic", PASSPHRASE, VECTOR_KDF, 1_795_219_200, "vector-host"),
        keyfile_vector("unicode-no-host", "pässwörd ☃ 🔑", KdfParams { m_kib: 64, t: 2, p: 2 }, 0, ""),
    ]
}

fn config_vector(name: &str, master: &[u8; 32], chunker: ChunkerParams, pack_target: u32, zstd_level: i32) -> ConfigVector {
    let k = keys(master);
    let store_id: [u8; 16] = fixed(&format!("config {name} store id"));
    let nonce: [u8; 24] = fixed(&format!("config {name} nonce"));
    let c = Config { store_id, family_id: k.family_id(), chunker, pack_target, zstd_level };
    c.validate().expect("valid config");
    let payload = c.encode();
    let sealed = envelope::seal_with_nonce(&k, Kind::Config, &[0; 32], &payload, 1, &nonce);
    ConfigVector {
        name: name.into(),
        master_key: h(master),
        nonce: h(&nonce),
        store_id: h(&store_id),
        family_id: h(&k.family_id()),
        chunk_min: chunker.min,
        chunk_avg: chunker.avg,
        chunk_max: chunker.max,
        pack_target,
        zstd_level,
        payload: h(&payload),
        sealed: h(&sealed),
    }
}

fn config_vectors() -> Vec<ConfigVector> {
    vec![
        config_vector("small-chunks", &MASTER_A, SMALL_CHUNKS, 1 << 20, 3),
        config_vector("defaults", &MASTER_B, ChunkerParams::DEFAULT, ferry_store::config::DEFAULT_PACK_TARGET, envelope::ZSTD_LEVEL),
    ]
}

fn index_vector(name: &str, supersedes: Vec<ObjectName>, packs: &[&BuiltPack]) -> IndexVector {
    let k = keys(&MASTER_A);
    let idx = IndexFile { supersedes, packs: packs.iter().map(|p| PackRecord { pack: p.name, entries: p.entries.clone() }).collect() };
    let nonce: [u8; 24] = fixed(&format!("index {name} nonce"));
    let payload = idx.encode();
    let sealed = envelope::seal_with_nonce(&k, Kind::Index, &[0; 32], &payload, envelope::ZSTD_LEVEL, &nonce);
    let oname = ObjectName::of(&sealed);
    IndexVector {
        name: name.into(),
        master_key: h(&MASTER_A),
        nonce: h(&nonce),
        supersedes: idx.supersedes.iter().map(|n| n.to_hex()).collect(),
        packs: idx
            .packs
            .iter()
            .map(|p| PackRecordJson { pack: p.pack.to_hex(), entries: p.entries.iter().map(entry_json).collect() })
            .collect(),
        payload: h(&payload),
        sealed: h(&sealed),
        object_name: oname.to_hex(),
        path: object_path(INDEX_DIR, &oname),
    }
}

fn index_vectors(data: &BuiltPack, tree: &BuiltPack) -> Vec<IndexVector> {
    let old = |l: &str| ObjectName(fixed(&format!("superseded index {l}")));
    vec![
        index_vector("one-pack", Vec::new(), &[data]),
        index_vector("compacted", vec![old("a"), old("b")], &[data, tree]),
        index_vector("empty", Vec::new(), &[]),
    ]
}

fn store_vector(kf: &KeyFileVector, config: &ConfigVector, index: &IndexVector, data: &BuiltPack, tree: &BuiltPack) -> StoreVector {
    let unhex = |s: &str| hex::decode(s).expect("hex");
    let shard = &data.name.to_hex()[..2];
    let ignored = vec![format!("{INDEX_DIR}.tmp-0011223344556677"), format!("{PACKS_DIR}{shard}/.tmp-8899aabbccddeeff")];
    let mut files = vec![
        StoreFile { path: ferry_store::CONFIG_PATH.into(), bytes: config.sealed.clone() },
        StoreFile { path: kf.path.clone(), bytes: kf.bytes.clone() },
        StoreFile { path: data.vector.path.clone(), bytes: h(&data.bytes) },
        StoreFile { path: tree.vector.path.clone(), bytes: h(&tree.bytes) },
        StoreFile { path: index.path.clone(), bytes: index.sealed.clone() },
    ];
    // A half-written index and pack from an interrupted writer.
    files.push(StoreFile { path: ignored[0].clone(), bytes: h(&unhex(&index.sealed)[..20]) });
    files.push(StoreFile { path: ignored[1].clone(), bytes: h(&tree.bytes[..tree.bytes.len() / 2]) });
    StoreVector {
        name: "small-store".into(),
        master_key: h(&MASTER_A),
        passphrase: kf.passphrase.clone(),
        files,
        ignored,
        blocks: data.store_blocks(),
        unindexed: vec![UnindexedPack { pack: tree.name.to_hex(), size: tree.bytes.len() as u64, blocks: tree.store_blocks() }],
    }
}

/// Modification times of the tree vectors: 2026-11-21 00:00:00.123456789 UTC, and later.
pub const T0: i64 = 1_795_219_200_123_456_789;

/// Link group of the hard-linked file of the root tree vector (any non-zero value will do).
pub const LINK_GROUP: u64 = 0x9e37_79b9_7f4a_7c15;

/// A tree vector and the parts other vectors reuse.
#[derive(Clone, Debug)]
pub struct BuiltTree {
    /// The JSON vector.
    pub vector: TreeVector,
    /// Its block ID.
    pub id: BlockId,
    /// The tree.
    pub tree: Tree,
}

fn i64_hex(v: i64) -> String {
    u64_hex(v as u64)
}

fn tree_entry_json(e: &Entry) -> TreeEntryJson {
    let (blocks, subtree, target) = match &e.content {
        Content::File(ids) => (Some(ids.iter().map(|i| i.to_hex()).collect()), None, None),
        Content::Dir(id) => (None, Some(id.to_hex()), None),
        Content::Symlink(t) => (None, None, Some(h(t))),
    };
    TreeEntryJson {
        name: e.name_str(),
        name_hex: h(&e.name),
        entry_type: e.entry_type() as u8,
        mode: e.mode,
        mtime_ns: i64_hex(e.mtime_ns),
        size: e.size,
        uid: e.uid,
        gid: e.gid,
        link_group: u64_hex(e.link_group),
        blocks,
        subtree,
        target,
    }
}

fn tree_vector(name: &str, tree: Tree, data: &[&[u8]]) -> BuiltTree {
    let k = keys(&MASTER_A);
    let payload = tree.encode();
    // The vectors must be what a writer produces: sorted, and accepted by the reader.
    assert_eq!(Tree::decode(&payload, name).expect("a valid tree"), tree, "{name}: the tree must round-trip");
    let id = k.block_id(&payload);
    let nonce: [u8; 24] = fixed(&format!("tree {name} nonce"));
    let sealed = envelope::seal_with_nonce(&k, Kind::Tree, &id.0, &payload, envelope::ZSTD_LEVEL, &nonce);
    let mut data_blocks: Vec<DataBlockJson> = Vec::new();
    for d in data {
        let id = k.block_id(d).to_hex();
        if !data_blocks.iter().any(|b| b.id == id) {
            data_blocks.push(DataBlockJson { id, plaintext: h(d) });
        }
    }
    let vector = TreeVector {
        name: name.into(),
        master_key: h(&MASTER_A),
        entries: tree.entries.iter().map(tree_entry_json).collect(),
        data_blocks,
        payload: h(&payload),
        block_id: id.to_hex(),
        nonce: h(&nonce),
        sealed: h(&sealed),
    };
    BuiltTree { vector, id, tree }
}

/// The tree vectors, children before parents: the root tree is last.
fn tree_vectors() -> Vec<BuiltTree> {
    let k = keys(&MASTER_A);
    let base = |name: &[u8], mode: u32, mtime_ns: i64, content: Content| Entry {
        name: name.to_vec(),
        mode,
        mtime_ns,
        size: 0,
        uid: 1000,
        gid: 1000,
        link_group: 0,
        content,
    };
    let file = |name: &[u8], mode: u32, mtime_ns: i64, link_group: u64, blocks: &[&[u8]]| {
        let mut e = base(name, mode, mtime_ns, Content::File(blocks.iter().map(|b| k.block_id(b)).collect()));
        e.size = blocks.iter().map(|b| b.len() as u64).sum();
        e.link_group = link_group;
        e
    };
    let empty = tree_vector("empty", Tree::default(), &[]);

    let notes: &[u8] = b"notes\n";
    let sub = Tree { entries: vec![file(b"empty-file", 0o600, T0 + 1, 0, &[]), file(b"readme", 0o644, T0 + 2, 0, &[notes])] };
    let sub = tree_vector("subfolder", sub, &[notes]);

    let readme: &[u8] = b"Read me first.\n";
    let linked: &[u8] = b"one file, two names\n";
    let first = text(200);
    let second: &[u8] = b"the end\n";
    let mut owned_by_root = file(b"README", 0o644, T0 + 10, 0, &[readme]);
    owned_by_root.uid = 0;
    owned_by_root.gid = 0;
    let mut sticky = base("\u{e9}t\u{e9}".as_bytes(), 0o1777, T0 + 16, Content::Dir(empty.id));
    sticky.gid = 100;
    let root = Tree {
        entries: vec![
            owned_by_root,
            base(b"a-dir", 0o755, T0 + 11, Content::Dir(sub.id)),
            file(b"hard-1", 0o640, T0 + 12, LINK_GROUP, &[linked]),
            file(b"hard-2", 0o640, T0 + 12, LINK_GROUP, &[linked]),
            // A symlink older than 1970: mtime_ns is signed.
            base(b"link", 0o777, -1_500_000_000, Content::Symlink(b"a-dir/readme".to_vec())),
            file(b"two-blocks.txt", 0o644, T0 + 15, 0, &[&first, second]),
            sticky,
        ],
    };
    let root = tree_vector("root", root, &[readme, linked, &first, second]);
    vec![empty, sub, root]
}

fn snapshot_vector(name: &str, snap: &Snapshot) -> SnapshotVector {
    let k = keys(&MASTER_A);
    let payload = snap.encode();
    assert_eq!(&Snapshot::decode(&payload, name).expect("a valid snapshot"), snap, "{name}: the snapshot must round-trip");
    let nonce: [u8; 24] = fixed(&format!("snapshot {name} nonce"));
    let sealed = envelope::seal_with_nonce(&k, Kind::Snapshot, &[0; 32], &payload, envelope::ZSTD_LEVEL, &nonce);
    let oname = ObjectName::of(&sealed);
    let s = &snap.summary;
    SnapshotVector {
        name: name.into(),
        master_key: h(&MASTER_A),
        version: 1,
        time_ns: i64_hex(snap.time_ns),
        root: snap.root.to_hex(),
        parents: snap.parents.iter().map(|p| p.to_hex()).collect(),
        host: snap.host.clone(),
        source: snap.source_str(),
        source_hex: h(&snap.source),
        tags: snap.tags.clone(),
        replica: h(&snap.replica),
        folder: h(&snap.folder),
        files: s.files,
        dirs: s.dirs,
        bytes: s.bytes,
        new_files: s.new_files,
        changed_files: s.changed_files,
        unchanged_files: s.unchanged_files,
        added_bytes: s.added_bytes,
        payload: h(&payload),
        nonce: h(&nonce),
        zstd_level: envelope::ZSTD_LEVEL,
        sealed: h(&sealed),
        object_name: oname.to_hex(),
        path: object_path(SNAPSHOTS_DIR, &oname),
    }
}

/// Snapshot vectors of the tree vectors' root, and the snapshots themselves.
fn snapshot_vectors(trees: &[BuiltTree], root: BlockId) -> (Vec<SnapshotVector>, Vec<Snapshot>) {
    // The counts a backup of these trees records: each tree vector is the
    // listing of exactly one folder (root, "a-dir", "été"). added_bytes is
    // informational and merely plausible.
    let files = trees.iter().flat_map(|t| &t.tree.entries).filter(|e| matches!(e.content, Content::File(_)));
    let (nfiles, bytes) = files.fold((0, 0), |(n, b), e| (n + 1, b + e.size));
    let dirs = trees.len() as u64;
    let day: i64 = 86_400 * 1_000_000_000;
    let first = Snapshot {
        time_ns: T0 + 60_000_000_000,
        root,
        parents: Vec::new(),
        host: "vector-host".into(),
        source: b"/home/vector/docs".to_vec(),
        tags: Vec::new(),
        replica: [0; 16],
        folder: [0; 16],
        summary: Summary { files: nfiles, dirs, bytes, new_files: nfiles, changed_files: 0, unchanged_files: 0, added_bytes: 3797 },
    };
    let v1 = snapshot_vector("first-backup", &first);
    let second = Snapshot {
        time_ns: first.time_ns + day,
        parents: vec![v1.object_name.parse().expect("object name")],
        tags: vec!["daily".into(), "gr\u{f6}\u{df}e \u{2603}".into()],
        summary: Summary { new_files: 0, unchanged_files: nfiles, added_bytes: 0, ..first.summary },
        ..first.clone()
    };
    let v2 = snapshot_vector("second-backup-tagged", &second);
    let synced = Snapshot {
        time_ns: second.time_ns + day,
        parents: vec![v2.object_name.parse().expect("object name"), v1.object_name.parse().expect("object name")],
        host: "other-host".into(),
        source: b"/srv/sync/docs".to_vec(),
        replica: fixed("snapshot replica id"),
        folder: fixed("snapshot folder id"),
        ..second.clone()
    };
    let v3 = snapshot_vector("replica-two-parents", &synced);
    (vec![v1, v2, v3], vec![first, second, synced])
}

struct Neg {
    cases: Vec<NegativeCase>,
}

impl Neg {
    fn add(&mut self, name: &str, description: &str, master: &[u8; 32], input: NegativeInput, error: &str, reason: &str) {
        self.cases.push(NegativeCase {
            name: name.into(),
            description: description.into(),
            master_key: h(master),
            input,
            error: error.into(),
            reason: reason.into(),
        });
    }
    /// `input` is the index entry's kind, id and raw_len, and the sealed bytes.
    fn block(&mut self, name: &str, description: &str, master: &[u8; 32], input: (u8, &[u8; 32], u32, &[u8]), reason: &str) {
        let (kind, id, raw_len, sealed) = input;
        let input = NegativeInput::Block { kind, id: h(id), raw_len, sealed: h(sealed) };
        self.add(name, description, master, input, "damaged", reason);
    }
    fn pack(&mut self, name: &str, description: &str, master: &[u8; 32], pack: &[u8], reason: &str) {
        self.add(name, description, master, NegativeInput::Pack { pack: h(pack) }, "damaged", reason);
    }
    fn keyfile(&mut self, name: &str, description: &str, bytes: &[u8], passphrase: &str, error: &str, reason: &str) {
        let input = NegativeInput::KeyFile { bytes: h(bytes), passphrase: passphrase.into() };
        self.add(name, description, &MASTER_A, input, error, reason);
    }
    fn config(&mut self, name: &str, description: &str, master: &[u8; 32], sealed: &[u8], error: &str, reason: &str) {
        self.add(name, description, master, NegativeInput::Config { sealed: h(sealed) }, error, reason);
    }
    fn index(&mut self, name: &str, description: &str, sealed: &[u8], reason: &str) {
        self.add(name, description, &MASTER_A, NegativeInput::Index { sealed: h(sealed) }, "damaged", reason);
    }
    fn tree(&mut self, name: &str, description: &str, payload: &[u8], reason: &str) {
        self.add(name, description, &MASTER_A, NegativeInput::Tree { payload: h(payload) }, "damaged", reason);
    }
    fn snapshot(&mut self, name: &str, description: &str, sealed: &[u8], error: &str, reason: &str) {
        self.add(name, description, &MASTER_A, NegativeInput::Snapshot { sealed: h(sealed) }, error, reason);
    }
}

fn flip(bytes: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= mask;
    b
}

fn negative_cases(data: &BuiltPack, kf: &KeyFileVector, config: &ConfigVector, store: &StoreVector) -> Vec<NegativeCase> {
    let ka = keys(&MASTER_A);
    let enc = r::derive(&MASTER_A).enc_key;
    let mut n = Neg { cases: Vec::new() };
    let nonce = |l: &str| -> [u8; 24] { fixed(&format!("negative {l}")) };

    // --- Blocks (§5, §10.5) ---
    let payload = b"hello, ferry";
    let id = ka.block_id(payload).0;
    let len = payload.len() as u32;
    let sealed = envelope::seal_with_nonce(&ka, Kind::Data, &id, payload, 3, &nonce("block"));
    let last = sealed.len() - 1;
    n.block(
        "block-tampered-tag",
        "the last byte of the tag is flipped",
        &MASTER_A,
        (1, &id, len, &flip(&sealed, last, 1)),
        "authentication",
    );
    n.block(
        "block-tampered-ciphertext",
        "the encrypted codec byte is flipped",
        &MASTER_A,
        (1, &id, len, &flip(&sealed, 24, 0x80)),
        "authentication",
    );
    n.block("block-tampered-nonce", "the first nonce byte is flipped", &MASTER_A, (1, &id, len, &flip(&sealed, 0, 1)), "authentication");
    n.block(
        "block-wrong-kind",
        "a data block read as a tree block: the AAD kind differs",
        &MASTER_A,
        (2, &id, len, &sealed),
        "authentication",
    );
    let other = ka.block_id(b"another block").0;
    n.block("block-wrong-id", "read under another block ID: the AAD id differs", &MASTER_A, (1, &other, len, &sealed), "authentication");
    n.block("block-wrong-key", "read with another family's master key", &MASTER_B, (1, &id, len, &sealed), "authentication");
    n.block("block-too-short", "40 bytes: shorter than nonce + codec + tag", &MASTER_A, (1, &id, len, &sealed[..40]), "too_short");
    n.block(
        "block-raw-len-larger",
        "the entry's raw_len is one more than the plaintext",
        &MASTER_A,
        (1, &id, len + 1, &sealed),
        "length_mismatch",
    );
    n.block(
        "block-raw-len-smaller",
        "the entry's raw_len is one less: the stored payload exceeds the limit",
        &MASTER_A,
        (1, &id, len - 1, &sealed),
        "size_limit",
    );
    let liar = envelope::seal_with_nonce(&ka, Kind::Data, &other, payload, 3, &nonce("liar"));
    n.block(
        "block-id-mismatch",
        "authentic, but sealed under an ID that is not the keyed hash of its plaintext",
        &MASTER_A,
        (1, &other, len, &liar),
        "block_id_mismatch",
    );
    let mut pt = vec![2];
    pt.extend_from_slice(payload);
    let bad_codec = r::seal_plaintext(&enc, 1, &id, &pt, &nonce("codec"));
    n.block("block-unknown-codec", "authentic plaintext with codec byte 2", &MASTER_A, (1, &id, len, &bad_codec), "unknown_codec");
    let bomb_id = ka.block_id(b"bomb").0;
    let mut pt = vec![1];
    pt.extend_from_slice(&r::zstd_frame_claiming(1 << 40));
    let bomb = r::seal_plaintext(&enc, 1, &bomb_id, &pt, &nonce("bomb"));
    n.block(
        "block-zstd-claims-1TiB",
        "a zstd frame whose header claims 2^40 bytes; raw_len is 4096: refuse before decompressing",
        &MASTER_A,
        (1, &bomb_id, 4096, &bomb),
        "size_limit",
    );
    let mut pt = vec![1];
    pt.extend_from_slice(&r::zstd_frame_unsized(2));
    let bomb2 = r::seal_plaintext(&enc, 1, &bomb_id, &pt, &nonce("bomb2"));
    n.block(
        "block-zstd-unsized-expands",
        "a valid zstd frame without content size that expands to 256 KiB; raw_len is 4096: stop at the limit",
        &MASTER_A,
        (1, &bomb_id, 4096, &bomb2),
        "size_limit",
    );
    let mut pt = vec![1];
    pt.extend_from_slice(b"this is not a zstd frame");
    let garbage = r::seal_plaintext(&enc, 1, &bomb_id, &pt, &nonce("garbage"));
    n.block(
        "block-zstd-garbage",
        "codec 1 with a body that is not a zstd frame",
        &MASTER_A,
        (1, &bomb_id, 4096, &garbage),
        "bad_compression",
    );

    // §5.4 step 5: a codec 1 body is exactly one Zstandard frame, and its
    // output is exactly its declared size.
    let text_payload = text(1000);
    let text_id = ka.block_id(&text_payload).0;
    let frame = zstd::bulk::compress(&text_payload, 3).expect("zstd");
    let empty_frame = zstd::bulk::compress(b"", 3).expect("zstd");
    let zblock = |label: &str, id: &[u8; 32], body: &[u8]| -> Vec<u8> {
        let mut pt = vec![1];
        pt.extend_from_slice(body);
        r::seal_plaintext(&enc, 1, id, &pt, &nonce(label))
    };
    let tl = text_payload.len() as u32;
    n.block(
        "block-zstd-second-frame",
        "a valid frame of the payload followed by a second, empty frame: a body is exactly one frame",
        &MASTER_A,
        (1, &text_id, tl, &zblock("zstd two", &text_id, &[&frame[..], &empty_frame].concat())),
        "trailing_bytes",
    );
    n.block(
        "block-zstd-skippable-after",
        "a valid frame of the payload followed by an 8-byte skippable frame",
        &MASTER_A,
        (1, &text_id, tl, &zblock("zstd skip", &text_id, &[&frame[..], &r::zstd_skippable_frame(0)].concat())),
        "trailing_bytes",
    );
    n.block(
        "block-zstd-byte-after",
        "a valid frame of the payload followed by one zero byte",
        &MASTER_A,
        (1, &text_id, tl, &zblock("zstd byte", &text_id, &[&frame[..], &[0]].concat())),
        "trailing_bytes",
    );
    let empty_id = ka.block_id(b"").0;
    n.block(
        "block-zstd-skippable-only",
        "the empty block, with a body that is only a skippable frame (libzstd would return 0 bytes): not a Zstandard frame",
        &MASTER_A,
        (1, &empty_id, 0, &zblock("zstd skip only", &empty_id, &r::zstd_skippable_frame(0))),
        "bad_compression",
    );
    let ten = ka.block_id(&[b'A'; 10]).0;
    n.block(
        "block-zstd-output-below-declared",
        "a frame declaring 10 bytes whose one RLE block holds 5; raw_len 10",
        &MASTER_A,
        (1, &ten, 10, &zblock("zstd short", &ten, &r::zstd_frame_rle(10, b'A', 5))),
        "bad_compression",
    );
    let five = ka.block_id(&[b'A'; 5]).0;
    n.block(
        "block-zstd-output-above-declared",
        "a frame declaring 3 bytes whose one RLE block holds 5; raw_len 5, so the limit is not what fails",
        &MASTER_A,
        (1, &five, 5, &zblock("zstd long", &five, &r::zstd_frame_rle(3, b'A', 5))),
        "bad_compression",
    );

    // --- Packs (§8) ---
    let pack = &data.bytes;
    let plen = pack.len();
    let area = data.block_area().len();
    let tlen = plen - 12 - area;
    n.pack("pack-truncated", "the last 3 bytes are missing (interrupted copy)", &MASTER_A, &pack[..plen - 3], "bad_magic");
    n.pack("pack-too-short", "8 bytes: shorter than the 12-byte footer", &MASTER_A, b"FRYPACK1", "too_short");
    n.pack("pack-bad-magic", "magic FRYPACK2", &MASTER_A, &flip(pack, plen - 1, b'1' ^ b'2'), "bad_magic");
    let mut p = pack.clone();
    p[plen - 12..plen - 8].copy_from_slice(&((plen - 11) as u32).to_le_bytes());
    n.pack("pack-trailer-length-too-large", "trailer_len + 12 exceeds the pack length", &MASTER_A, &p, "trailer_length");
    let mut p = pack.clone();
    p[plen - 12..plen - 8].copy_from_slice(&40u32.to_le_bytes());
    n.pack("pack-trailer-length-too-small", "trailer_len 40 is below the 41-byte envelope minimum", &MASTER_A, &p, "trailer_length");
    let mut p = pack[..area + tlen - 1].to_vec();
    p.extend_from_slice(&pack[plen - 12..]);
    n.pack(
        "pack-trailer-truncated",
        "the last byte of the sealed trailer is missing; the footer is intact, so the trailer read starts one byte early",
        &MASTER_A,
        &p,
        "authentication",
    );
    n.pack("pack-wrong-key", "read with another family's master key", &MASTER_B, pack, "authentication");
    let entries: Vec<r::RawEntry> = data.entries.iter().map(raw_entry).collect();
    let crafted = |label: &str, kind: Kind, payload: &[u8]| -> Vec<u8> {
        let t = envelope::seal_with_nonce(&ka, kind, &[0; 32], payload, 3, &nonce(label));
        r::assemble_pack(data.block_area(), &t)
    };
    n.pack(
        "pack-trailer-count-overflow",
        "the trailer's count is 1000 but it holds 3 entries",
        &MASTER_A,
        &crafted("count", Kind::PackTrailer, &r::trailer_payload(1000, &entries)),
        "count_overflow",
    );
    let mut e = entries.clone();
    e[2].length += 1;
    n.pack(
        "pack-entry-past-area",
        "the last entry ends one byte past the block area",
        &MASTER_A,
        &crafted("past", Kind::PackTrailer, &r::trailer_payload(3, &e)),
        "out_of_bounds",
    );
    let mut e = entries.clone();
    e[1].offset = u64::MAX - 10;
    n.pack(
        "pack-entry-offset-overflow",
        "offset + length overflows 64 bits",
        &MASTER_A,
        &crafted("overflow", Kind::PackTrailer, &r::trailer_payload(3, &e)),
        "out_of_bounds",
    );
    let mut e = entries.clone();
    e[0].length = 40;
    n.pack(
        "pack-entry-too-short",
        "an entry's sealed length 40 is below the envelope minimum",
        &MASTER_A,
        &crafted("short", Kind::PackTrailer, &r::trailer_payload(3, &e)),
        "out_of_bounds",
    );
    let mut e = entries.clone();
    e[0].kind = Kind::PackTrailer as u8;
    n.pack(
        "pack-entry-bad-kind",
        "an entry of kind 16, which is not a block kind",
        &MASTER_A,
        &crafted("kind", Kind::PackTrailer, &r::trailer_payload(3, &e)),
        "bad_kind",
    );
    let mut e = entries.clone();
    e[1].kind = 3;
    n.pack(
        "pack-entry-kind-3",
        "an entry of kind 3: in the block range 1-15, but not one of v1's two block kinds",
        &MASTER_A,
        &crafted("kind3", Kind::PackTrailer, &r::trailer_payload(3, &e)),
        "bad_kind",
    );
    let mut t = r::trailer_payload(3, &entries);
    t.push(0);
    n.pack(
        "pack-trailer-trailing-bytes",
        "one byte after the last entry",
        &MASTER_A,
        &crafted("trailing", Kind::PackTrailer, &t),
        "trailing_bytes",
    );
    n.pack(
        "pack-trailer-wrong-kind",
        "the trailer is sealed with kind 17 (index)",
        &MASTER_A,
        &crafted("tkind", Kind::Index, &r::trailer_payload(3, &entries)),
        "authentication",
    );

    // --- Key files (§4) ---
    let kb = hex::decode(&kf.bytes).expect("hex");
    let pass = kf.passphrase.as_str();
    n.keyfile(
        "keyfile-wrong-passphrase",
        "a passphrase that is not the key file's",
        &kb,
        "Correct horse battery staple",
        "wrong_passphrase",
        "authentication",
    );
    n.keyfile(
        "keyfile-tampered-host",
        "one host byte changed: the header is authenticated, so this looks like a wrong passphrase",
        &flip(&kb, 31, 0x20),
        pass,
        "wrong_passphrase",
        "authentication",
    );
    n.keyfile(
        "keyfile-tampered-created",
        "the creation time changed by one second",
        &flip(&kb, 22, 1),
        pass,
        "wrong_passphrase",
        "authentication",
    );
    n.keyfile("keyfile-bad-magic", "magic FERRYKEZ", &flip(&kb, 7, b'Y' ^ b'Z'), pass, "damaged", "bad_magic");
    n.keyfile("keyfile-version-2", "version byte 2", &flip(&kb, 8, 1 ^ 2), pass, "unsupported", "version");
    n.keyfile("keyfile-kdf-2", "KDF id 2 (unknown)", &flip(&kb, 9, 1 ^ 2), pass, "unsupported", "unknown_kdf");
    let mut b = kb.clone();
    b[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
    n.keyfile("keyfile-memory-over-cap", "m_cost 4 TiB: refuse before running Argon2id", &b, pass, "damaged", "kdf_params");
    let mut b = kb.clone();
    b[14..18].copy_from_slice(&65u32.to_le_bytes());
    n.keyfile("keyfile-passes-over-cap", "t_cost 65 is over the cap of 64", &b, pass, "damaged", "kdf_params");
    let mut b = kb.clone();
    b[18..22].copy_from_slice(&0u32.to_le_bytes());
    n.keyfile("keyfile-zero-lanes", "p_cost 0", &b, pass, "damaged", "kdf_params");
    n.keyfile("keyfile-truncated", "the last byte of the tag is missing", &kb[..kb.len() - 1], pass, "damaged", "truncated");
    let mut b = kb.clone();
    b.push(0);
    n.keyfile("keyfile-trailing-bytes", "one byte after the tag", &b, pass, "damaged", "trailing_bytes");
    n.keyfile(
        "keyfile-host-len-too-large",
        "host_len 255 runs past the end of the file",
        &flip(&kb, 30, kb[30] ^ 255),
        pass,
        "damaged",
        "truncated",
    );

    // --- Config (§7) ---
    let csealed = hex::decode(&config.sealed).expect("hex");
    let cpayload = hex::decode(&config.payload).expect("hex");
    let cfg = |label: &str, master: &[u8; 32], kind: Kind, payload: &[u8]| -> Vec<u8> {
        envelope::seal_with_nonce(&keys(master), kind, &[0; 32], payload, 1, &nonce(label))
    };
    let patch = |at: usize, bytes: &[u8]| -> Vec<u8> {
        let mut p = cpayload.clone();
        p[at..at + bytes.len()].copy_from_slice(bytes);
        p
    };
    n.config("config-wrong-key", "a config of family A read with master key B", &MASTER_B, &csealed, "damaged", "authentication");
    n.config(
        "config-version-2",
        "version 2",
        &MASTER_A,
        &cfg("cv2", &MASTER_A, Kind::Config, &patch(0, &2u32.to_le_bytes())),
        "unsupported",
        "version",
    );
    n.config(
        "config-family-mismatch",
        "sealed with key A but naming family B",
        &MASTER_A,
        &cfg("cfam", &MASTER_A, Kind::Config, &patch(20, &keys(&MASTER_B).family_id())),
        "damaged",
        "family_mismatch",
    );
    n.config(
        "config-avg-not-power-of-two",
        "chunk avg 3000",
        &MASTER_A,
        &cfg("cavg", &MASTER_A, Kind::Config, &patch(40, &3000u32.to_le_bytes())),
        "damaged",
        "bad_params",
    );
    n.config(
        "config-max-over-cap",
        "chunk max 32 MiB, over the 16 MiB cap",
        &MASTER_A,
        &cfg("cmax", &MASTER_A, Kind::Config, &patch(44, &(32u32 << 20).to_le_bytes())),
        "damaged",
        "bad_params",
    );
    n.config(
        "config-pack-target-over-cap",
        "pack target 2 GiB",
        &MASTER_A,
        &cfg("cpack", &MASTER_A, Kind::Config, &patch(48, &(2u32 << 30).to_le_bytes())),
        "damaged",
        "bad_params",
    );
    n.config(
        "config-zstd-level-0",
        "zstd level 0",
        &MASTER_A,
        &cfg("clevel", &MASTER_A, Kind::Config, &patch(52, &0i32.to_le_bytes())),
        "damaged",
        "bad_params",
    );
    let mut p = cpayload.clone();
    p.push(0);
    n.config(
        "config-trailing-bytes",
        "57-byte payload",
        &MASTER_A,
        &cfg("ctrail", &MASTER_A, Kind::Config, &p),
        "damaged",
        "trailing_bytes",
    );
    n.config(
        "config-truncated",
        "52-byte payload (no zstd level)",
        &MASTER_A,
        &cfg("ctrunc", &MASTER_A, Kind::Config, &cpayload[..52]),
        "damaged",
        "truncated",
    );
    n.config(
        "config-wrong-kind",
        "the config payload sealed with kind 17 (index)",
        &MASTER_A,
        &cfg("ckind", &MASTER_A, Kind::Index, &cpayload),
        "damaged",
        "authentication",
    );

    // --- Index files (§9) ---
    let idx = |label: &str, kind: Kind, id: &[u8; 32], payload: &[u8]| -> Vec<u8> {
        envelope::seal_with_nonce(&ka, kind, id, payload, 3, &nonce(label))
    };
    let one_pack = |count: u32, es: &[r::RawEntry], extra: &[u8]| -> Vec<u8> {
        let mut p = 0u32.to_le_bytes().to_vec();
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&data.name.0);
        p.extend_from_slice(&r::trailer_payload(count, es));
        p.extend_from_slice(extra);
        p
    };
    n.index(
        "index-supersedes-count-overflow",
        "supersedes_count 0x7fffffff in an 8-byte payload",
        &idx("isup", Kind::Index, &[0; 32], &[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]),
        "count_overflow",
    );
    n.index(
        "index-pack-count-overflow",
        "pack_count 0xffffffff with no records",
        &idx("ipack", Kind::Index, &[0; 32], &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        "count_overflow",
    );
    n.index(
        "index-entry-count-overflow",
        "a pack record claiming 4 entries holding 3",
        &idx("ientry", Kind::Index, &[0; 32], &one_pack(4, &entries, &[])),
        "count_overflow",
    );
    let mut e = entries.clone();
    e[2].kind = Kind::Index as u8;
    n.index("index-entry-bad-kind", "an entry of kind 17", &idx("ikind", Kind::Index, &[0; 32], &one_pack(3, &e, &[])), "bad_kind");
    let mut e = entries.clone();
    e[0].kind = 3;
    n.index(
        "index-entry-kind-3",
        "an entry of kind 3 (reserved)",
        &idx("ikind3", Kind::Index, &[0; 32], &one_pack(3, &e, &[])),
        "bad_kind",
    );
    n.index(
        "index-trailing-bytes",
        "one byte after the last record",
        &idx("itrail", Kind::Index, &[0; 32], &one_pack(3, &entries, &[0])),
        "trailing_bytes",
    );
    n.index(
        "index-wrong-kind",
        "an index payload sealed with kind 18 (snapshot)",
        &idx("iwk", Kind::Snapshot, &[0; 32], &one_pack(3, &entries, &[])),
        "authentication",
    );
    n.index(
        "index-nonzero-id",
        "sealed with a non-zero AAD id (standalone objects use 32 zero bytes)",
        &idx("iid", Kind::Index, &[1; 32], &one_pack(3, &entries, &[])),
        "authentication",
    );
    let mut pt = vec![1];
    pt.extend_from_slice(&r::zstd_frame_claiming(1 << 30));
    n.index(
        "index-zstd-claims-1GiB",
        "a zstd frame claiming 1 GiB, over the 512 MiB index limit",
        &r::seal_plaintext(&enc, Kind::Index as u8, &[0; 32], &pt, &nonce("ibomb")),
        "size_limit",
    );

    // --- Whole stores (§2, §10) ---
    let mut files = store.files.clone();
    let ipos = files.iter().position(|f| f.path.starts_with(INDEX_DIR) && !f.path.contains("/.")).expect("an index file");
    let wrong = ObjectName(fixed("not the index's hash"));
    files[ipos].path = object_path(INDEX_DIR, &wrong);
    n.add(
        "store-index-name-mismatch",
        "the index file is stored under a name that is not the BLAKE3 of its bytes",
        &MASTER_A,
        NegativeInput::Store { passphrase: store.passphrase.clone(), files, read: Vec::new() },
        "damaged",
        "name_mismatch",
    );
    n.add(
        "store-wrong-passphrase",
        "no key file opens with the passphrase",
        &MASTER_A,
        NegativeInput::Store { passphrase: "wrong".into(), files: store.files.clone(), read: Vec::new() },
        "wrong_passphrase",
        "authentication",
    );
    let mut files = store.files.clone();
    let other = config_vector("other-family", &MASTER_B, SMALL_CHUNKS, 1 << 20, 3);
    files[0] = StoreFile { path: ferry_store::CONFIG_PATH.into(), bytes: other.sealed };
    n.add(
        "store-config-other-family",
        "the key file opens, but the config belongs to another key family",
        &MASTER_A,
        NegativeInput::Store { passphrase: store.passphrase.clone(), files, read: Vec::new() },
        "damaged",
        "wrong_family",
    );
    // §4.5, §4.6: key file names, and which error wins.
    let mut files = store.files.clone();
    files[1].path = format!("{KEYS_DIR}mykey.bin");
    n.add(
        "store-keyfile-name-not-hex",
        "the only key file is stored as keys/mykey.bin: not a key file name, so it is ignored and no key file is tried",
        &MASTER_A,
        NegativeInput::Store { passphrase: store.passphrase.clone(), files, read: Vec::new() },
        "wrong_passphrase",
        "authentication",
    );
    let mut files = store.files.clone();
    files[1].path = format!("{KEYS_DIR}{}", ObjectName(fixed("not the key file's hash")).to_hex());
    n.add(
        "store-keyfile-name-mismatch",
        "the only key file is stored under 64 hex digits that are not the BLAKE3 of its bytes, and the passphrase unwraps it: refused",
        &MASTER_A,
        NegativeInput::Store { passphrase: store.passphrase.clone(), files, read: Vec::new() },
        "damaged",
        "name_mismatch",
    );
    let other_key = KeyFile::wrap_with(
        &MasterKey::from_bytes(MASTER_B),
        store.passphrase.as_bytes(),
        VECTOR_KDF,
        0,
        "other-family",
        fixed("negative other family key salt"),
        fixed("negative other family key nonce"),
    )
    .expect("key file");
    let other_key_file =
        StoreFile { path: format!("{KEYS_DIR}{}", ObjectName::of(other_key.to_bytes()).to_hex()), bytes: h(other_key.to_bytes()) };
    let mut files = store.files.clone();
    files[0].bytes = h(&cfg("cprec", &MASTER_A, Kind::Config, &patch(52, &0i32.to_le_bytes())));
    files.push(other_key_file.clone());
    n.add(
        "store-config-error-beats-other-family",
        "the passphrase unwraps two key files: one of family B, with whose key the config does not authenticate, and the store's own, \
         with whose key it authenticates but has zstd level 0: the config's own error wins, in whatever order the key files are tried",
        &MASTER_A,
        NegativeInput::Store { passphrase: store.passphrase.clone(), files, read: Vec::new() },
        "damaged",
        "bad_params",
    );
    let mut files = store.files.clone();
    files[1] = other_key_file;
    n.add(
        "store-only-other-family-key",
        "the only key file that unwraps is of family B: the config does not authenticate with its master key",
        &MASTER_A,
        NegativeInput::Store { passphrase: store.passphrase.clone(), files, read: Vec::new() },
        "damaged",
        "wrong_family",
    );
    n.add(
        "store-block-not-found",
        "read a block ID that no index file lists",
        &MASTER_A,
        NegativeInput::Store {
            passphrase: store.passphrase.clone(),
            files: store.files.clone(),
            read: vec![ka.block_id(b"not in this store").to_hex()],
        },
        "missing",
        "block_not_found",
    );
    let mut es = data.entries.clone();
    es[1].raw_len = config.chunk_max + 1;
    let lying = IndexFile { supersedes: Vec::new(), packs: vec![PackRecord { pack: data.name, entries: es }] };
    let sealed = envelope::seal_with_nonce(&ka, Kind::Index, &[0; 32], &lying.encode(), 3, &nonce("raw_len index"));
    let mut files = store.files.clone();
    files[ipos] = StoreFile { path: object_path(INDEX_DIR, &ObjectName::of(&sealed)), bytes: h(&sealed) };
    n.add(
        "store-raw-len-over-chunk-max",
        "an authentic index whose entry claims a data block of chunk_max + 1 plaintext bytes: refused before reading",
        &MASTER_A,
        NegativeInput::Store { passphrase: store.passphrase.clone(), files, read: vec![data.entries[1].id.to_hex()] },
        "damaged",
        "size_limit",
    );
    n.cases
}

/// Tree payloads that `Tree::decode` must refuse (SPEC.md §14.1, §14.3).
fn tree_negative_cases() -> Vec<NegativeCase> {
    let mut n = Neg { cases: Vec::new() };
    let link = |name: &[u8]| r::RawTreeEntry {
        name: name.to_vec(),
        entry_type: r::ENTRY_SYMLINK,
        mode: 0o777,
        mtime_ns: T0,
        size: 0,
        uid: 1000,
        gid: 1000,
        link_group: 0,
        content: r::symlink_content(b"target"),
    };
    let one = |e: r::RawTreeEntry| r::tree_payload(1, &[e]);
    n.tree("tree-name-dotdot", "an entry named \"..\"", &one(link(b"..")), "bad_name");
    n.tree("tree-name-dot", "an entry named \".\"", &one(link(b".")), "bad_name");
    n.tree("tree-name-slash", "an entry named \"a/b\"", &one(link(b"a/b")), "bad_name");
    n.tree("tree-name-nul", "an entry named \"a\", NUL, \"b\"", &one(link(b"a\0b")), "bad_name");
    n.tree("tree-name-empty", "an entry with an empty name", &one(link(b"")), "bad_name");
    n.tree(
        "tree-name-too-long",
        "a name of 1025 bytes: refused from its length, before it is read",
        &one(link(&[b'x'; r::MAX_NAME + 1])),
        "size_limit",
    );
    n.tree("tree-unsorted", "entries \"b\" then \"a\"", &r::tree_payload(2, &[link(b"b"), link(b"a")]), "not_sorted");
    n.tree(
        "tree-unsorted-prefix",
        "entries \"ab\" then \"a\": a name sorts after its prefixes",
        &r::tree_payload(2, &[link(b"ab"), link(b"a")]),
        "not_sorted",
    );
    n.tree("tree-duplicate-names", "two entries named \"a\"", &r::tree_payload(2, &[link(b"a"), link(b"a")]), "not_sorted");
    n.tree(
        "tree-unknown-type",
        "entry type 4 (followed by a symlink's content)",
        &one(r::RawTreeEntry { entry_type: 4, ..link(b"a") }),
        "unknown_entry_type",
    );
    n.tree(
        "tree-mode-high-bits",
        "a symlink entry with mode 0o120777: the file type bits of st_mode above the permission bits",
        &one(r::RawTreeEntry { mode: 0o120777, ..link(b"a") }),
        "bad_mode",
    );
    n.tree("tree-type-zero", "entry type 0", &one(r::RawTreeEntry { entry_type: 0, ..link(b"a") }), "unknown_entry_type");
    n.tree(
        "tree-count-overflow",
        "count 1000 with one entry: 1000 × 45 bytes cannot fit in what is left",
        &r::tree_payload(1000, &[link(b"a")]),
        "count_overflow",
    );
    let long = r::tree_payload(2, &[r::RawTreeEntry { content: r::symlink_content(&[b't'; 100]), ..link(b"a") }]);
    n.tree(
        "tree-count-one-too-many",
        &format!("count 2 with one entry of {} bytes: the count passes the 45-byte bound, the second entry is missing", long.len() - 4),
        &long,
        "truncated",
    );
    let id = keys(&MASTER_A).block_id(b"hello, ferry").0;
    let mut content = r::file_content(&[id]);
    content[..4].copy_from_slice(&3u32.to_le_bytes());
    n.tree(
        "tree-block-count-overflow",
        "a file entry whose block_count is 3 but which holds one block ID",
        &one(r::RawTreeEntry { entry_type: r::ENTRY_FILE, mode: 0o644, size: 12, content, ..link(b"f") }),
        "count_overflow",
    );
    n.tree(
        "tree-target-too-long",
        "a symlink target of 4097 bytes",
        &one(r::RawTreeEntry { content: r::symlink_content(&[b't'; r::MAX_TARGET + 1]), ..link(b"a") }),
        "size_limit",
    );
    let mut p = one(link(b"a"));
    p.push(0);
    n.tree("tree-trailing-bytes", "one byte after the last entry", &p, "trailing_bytes");
    let p = one(link(b"a"));
    n.tree("tree-truncated", "the last byte of the symlink target is missing", &p[..p.len() - 1], "truncated");
    n.cases
}

fn raw_snapshot(s: &Snapshot) -> r::RawSnapshot {
    let m = &s.summary;
    r::RawSnapshot {
        version: 1,
        time_ns: s.time_ns,
        root: s.root.0,
        parents: s.parents.iter().map(|p| p.0).collect(),
        host: s.host.as_bytes().to_vec(),
        source: s.source.clone(),
        tags: s.tags.iter().map(|t| t.as_bytes().to_vec()).collect(),
        replica: s.replica,
        folder: s.folder,
        counts: [m.files, m.dirs, m.bytes, m.new_files, m.changed_files, m.unchanged_files, m.added_bytes],
    }
}

/// Sealed snapshots that a reader must refuse (SPEC.md §14.2).
fn snapshot_negative_cases(snap: &Snapshot) -> Vec<NegativeCase> {
    let ka = keys(&MASTER_A);
    let mut n = Neg { cases: Vec::new() };
    let seal = |label: &str, kind: Kind, payload: &[u8]| {
        envelope::seal_with_nonce(&ka, kind, &[0; 32], payload, 3, &fixed(&format!("negative snapshot {label}")))
    };
    let base = raw_snapshot(snap);
    let with = |f: &dyn Fn(&mut r::RawSnapshot)| {
        let mut s = base.clone();
        f(&mut s);
        s.encode()
    };
    n.snapshot(
        "snapshot-version-2",
        "payload version 2",
        &seal("version", Kind::Snapshot, &with(&|s| s.version = 2)),
        "unsupported",
        "version",
    );
    n.snapshot(
        "snapshot-host-too-long",
        "a host of 257 bytes",
        &seal("host", Kind::Snapshot, &with(&|s| s.host = vec![b'h'; r::MAX_HOST + 1])),
        "damaged",
        "size_limit",
    );
    n.snapshot(
        "snapshot-source-too-long",
        "a source of 4097 bytes",
        &seal("source", Kind::Snapshot, &with(&|s| s.source = vec![b's'; r::MAX_SOURCE + 1])),
        "damaged",
        "size_limit",
    );
    n.snapshot(
        "snapshot-tag-too-long",
        "a tag of 257 bytes",
        &seal("tag", Kind::Snapshot, &with(&|s| s.tags = vec![vec![b't'; r::MAX_TAG + 1]])),
        "damaged",
        "size_limit",
    );
    // parent_count sits right after version, time_ns and root.
    let mut p = base.encode();
    p[44..48].copy_from_slice(&1_000_000u32.to_le_bytes());
    n.snapshot(
        "snapshot-parent-count-overflow",
        "parent_count 1000000 in a payload of a few hundred bytes",
        &seal("parents", Kind::Snapshot, &p),
        "damaged",
        "count_overflow",
    );
    let mut p = with(&|s| s.tags.clear());
    let at = p.len() - 32 - 56 - 4;
    p[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
    n.snapshot(
        "snapshot-tag-count-overflow",
        "tag_count 100 with 88 bytes left: 100 × 4 cannot fit",
        &seal("tags", Kind::Snapshot, &p),
        "damaged",
        "count_overflow",
    );
    let mut p = base.encode();
    p.push(0);
    n.snapshot("snapshot-trailing-bytes", "one byte after added_bytes", &seal("trailing", Kind::Snapshot, &p), "damaged", "trailing_bytes");
    let p = base.encode();
    n.snapshot(
        "snapshot-truncated",
        "the last byte of added_bytes is missing",
        &seal("truncated", Kind::Snapshot, &p[..p.len() - 1]),
        "damaged",
        "truncated",
    );
    n.snapshot(
        "snapshot-wrong-kind",
        "a snapshot payload sealed with kind 17 (index)",
        &seal("kind", Kind::Index, &base.encode()),
        "damaged",
        "authentication",
    );
    let mut pt = vec![1];
    pt.extend_from_slice(&r::zstd_frame_claiming(2 << 20));
    n.snapshot(
        "snapshot-zstd-claims-2MiB",
        "a zstd frame claiming 2 MiB, over the 1 MiB snapshot limit",
        &r::seal_plaintext(&r::derive(&MASTER_A).enc_key, Kind::Snapshot as u8, &[0; 32], &pt, &fixed("negative snapshot bomb")),
        "damaged",
        "size_limit",
    );
    n.cases
}

fn conflict_name_vector(name: &str, path: &str, host: &str, replica: [u8; 16], mtime_ns: i64, mode: u32) -> ConflictNameVector {
    use ferry_sync::merge;
    let blocks: Vec<[u8; 32]> = vec![fixed(&format!("{name} block 1")), fixed(&format!("{name} block 2"))];
    let label = merge::conflict_label(host, &replica);
    let copy = merge::conflict_name(std::path::Path::new(path), &label, mtime_ns);
    let e = Entry {
        name: copy.file_name().expect("a name").as_encoded_bytes().to_vec(),
        mode,
        mtime_ns,
        size: 1,
        uid: 0,
        gid: 0,
        link_group: 0,
        content: Content::File(blocks.iter().map(|b| BlockId(*b)).collect()),
    };
    let suffixed = merge::with_content_suffix(&copy, &e);
    // The visible name: rules that exclude the usual conflict name (its
    // extension) but not the whole-name form.
    let mut rules = ferry_sync::filter::IgnoreRules::default();
    let file = path.rsplit('/').next().expect("a name");
    if let Some(i) = file.rfind('.').filter(|&i| i > 0) {
        rules.add(std::path::Path::new(""), &format!("*{}", &file[i..])).expect("a rule");
    }
    let whole = merge::visible_conflict_name(std::path::Path::new(path), &label, mtime_ns, &rules);
    let whole_suffixed = merge::with_content_suffix(&whole, &e);
    let original = file.to_string();
    ConflictNameVector {
        name: name.into(),
        path: path.into(),
        host: host.into(),
        replica: h(&replica),
        mtime_ns,
        blocks: blocks.iter().map(|b| h(b)).collect(),
        mode,
        label,
        copy: copy.to_str().expect("UTF-8").into(),
        copy_with_suffix: suffixed.to_str().expect("UTF-8").into(),
        whole: whole.to_str().expect("UTF-8").into(),
        whole_with_suffix: whole_suffixed.to_str().expect("UTF-8").into(),
        original,
    }
}

fn conflict_name_vectors() -> Vec<ConflictNameVector> {
    let t = 1_700_000_000_000_000_000; // 2023-11-14 22:13:20 UTC
    let rep: [u8; 16] = fixed("conflict replica");
    vec![
        conflict_name_vector("punctuated-host", "docs/notes.txt", "Anna's MacBook.local", rep, t, 0o644),
        conflict_name_vector("empty-host", "Makefile", "", rep, t + 59_999_999_999, 0o755),
        conflict_name_vector("long-host", "a/b/archive.tar.gz", "a-very-long-host-name-that-goes-past-32-bytes.example.org", rep, t, 0o600),
        conflict_name_vector("non-ascii-host", "photo.JPG", "Zo\u{eb}'s PC", rep, t, 0o644),
        conflict_name_vector("dot-file-and-dashes", ".bashrc", "-dash-", rep, t, 0o644),
        conflict_name_vector("before-1970", "old", "h", rep, -1, 0o644),
        conflict_name_vector("no-replica", "d2", "", [0; 16], t, 0o644),
        conflict_name_vector("copy-of-a-copy", "notes.conflict-desk-20231114-221320.txt", "laptop", rep, t + 3_600_000_000_000, 0o644),
    ]
}
