//! The checked-in test vectors (SPEC.md §13): (a) they are exactly what
//! the generator produces today, and (b) each one holds when read back
//! through the store crate's public API (and, for trees and snapshots,
//! ferry-sync's decoders), and through the naive reference implementation
//! written from SPEC.md.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::sync::Arc;

use ferry_format_spec::generate::generate;
use ferry_format_spec::model::*;
use ferry_format_spec::reference as r;
use ferry_format_spec::vectors_dir;
use ferry_store::backend::{Backend, LocalDir};
use ferry_store::envelope::{self, Kind};
use ferry_store::index::IndexFile;
use ferry_store::pack::{self, BlobEntry};
use ferry_store::{
    BlockId, CacheLocation, Chunker, ChunkerParams, Config, Error, INDEX_DIR, InitOptions, KdfParams, KeyFile, Keys, MasterKey, ObjectName,
    PACKS_DIR, SNAPSHOTS_DIR, Store, object_path, open_block,
};
use ferry_sync::snapshot::{self, MAX_SNAPSHOT_LEN, Snapshot};
use ferry_sync::tree::{self, Content, Entry, EntryType, Tree};
use serde::de::DeserializeOwned;

const REGENERATE: &str = "run `cargo run -p ferry-format-spec --bin gen-vectors`";

fn load<T: DeserializeOwned>(family: &str) -> Vec<T> {
    let path = vectors_dir().join(format!("{family}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} ({REGENERATE})", path.display()));
    let file: VectorFile<T> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(file.family, family, "{}: wrong family", path.display());
    file.vectors
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:.40}: {e}"))
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap_or_else(|_| panic!("{s} is not {N} bytes"))
}

fn keys(master_hex: &str) -> Keys {
    Keys::derive(&MasterKey::from_bytes(arr(master_hex)))
}

fn kind(k: u8) -> Kind {
    Kind::from_u8(k).unwrap_or_else(|| panic!("unknown kind {k}"))
}

fn entry(e: &EntryJson) -> BlobEntry {
    BlobEntry { kind: kind(e.kind), id: BlockId(arr(&e.id)), offset: e.offset, length: e.length, raw_len: e.raw_len }
}

fn write_store(files: &[StoreFile]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in files {
        let p = dir.path().join(&f.path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, unhex(&f.bytes)).expect("write");
    }
    dir
}

#[test]
fn checked_in_vectors_are_fresh() {
    let dir = vectors_dir();
    let generated = generate();
    let mut stale = Vec::new();
    for (name, contents) in &generated {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(old) if old == *contents => {}
            Ok(old) => {
                let line = old.lines().zip(contents.lines()).position(|(a, b)| a != b).map_or_else(
                    || format!("lengths {} vs {}", old.len(), contents.len()),
                    |i| format!("first difference at line {}", i + 1),
                );
                stale.push(format!("{} is stale ({line})", path.display()));
            }
            Err(e) => stale.push(format!("{} is missing: {e}", path.display())),
        }
    }
    for ent in fs::read_dir(&dir).expect("vectors dir") {
        let name = ent.expect("dir entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !generated.iter().any(|(n, _)| *n == name) {
            stale.push(format!("{} is no longer generated: delete it", dir.join(&name).display()));
        }
    }
    assert!(stale.is_empty(), "stale test vectors: {REGENERATE}\n{}", stale.join("\n"));
}

#[test]
fn generation_is_deterministic() {
    assert!(generate() == generate(), "two runs of the generator differ");
}

#[test]
fn spec_constants_match_the_store_crate() {
    use ferry_store::keys as k;
    assert_eq!(r::CONTEXT_BLOCK_ID, k::CONTEXT_BLOCK_ID);
    assert_eq!(r::CONTEXT_GEAR, k::CONTEXT_GEAR);
    assert_eq!(r::CONTEXT_ENCRYPTION, k::CONTEXT_ENCRYPTION);
    assert_eq!(r::CONTEXT_FAMILY, k::CONTEXT_FAMILY);
    assert_eq!(r::AAD_PREFIX, envelope::AAD_PREFIX);
    assert_eq!(r::PACK_MAGIC, pack::PACK_MAGIC);
    assert_eq!(r::KEYFILE_MAGIC, ferry_store::keyfile::MAGIC);
    assert_eq!(r::MASKS, ferry_store::chunker::MASKS);
    for (i, m) in r::MASKS.iter().enumerate().skip(5) {
        assert_eq!(m.count_ones() as usize, i, "MASKS[{i}] must have {i} one bits");
    }
    assert_eq!((envelope::NONCE_LEN, envelope::TAG_LEN, envelope::OVERHEAD), (24, 16, 41));
    assert_eq!((pack::FOOTER_LEN, pack::ENTRY_LEN), (12, 49));
    let kinds = [
        (Kind::Data, 1),
        (Kind::Tree, 2),
        (Kind::PackTrailer, 16),
        (Kind::Index, 17),
        (Kind::Snapshot, 18),
        (Kind::Config, 19),
        (Kind::Lock, 20),
    ];
    for (k, b) in kinds {
        assert_eq!(k as u8, b);
        assert_eq!(Kind::from_u8(b), Some(k));
        assert_eq!(k.is_block(), b < 16);
    }
    for b in (0..=255u8).filter(|b| !kinds.iter().any(|(_, v)| v == b)) {
        assert_eq!(Kind::from_u8(b), None, "kind {b} must be unknown");
    }
    assert_eq!(KdfParams::DEFAULT, KdfParams { m_kib: 65536, t: 3, p: 1 });
    assert_eq!((KdfParams::MAX_M_KIB, KdfParams::MAX_T, KdfParams::MAX_P), (2 << 20, 64, 16));
    assert_eq!((KdfParams::MIN_WRITE_M_KIB, KdfParams::MIN_WRITE_T), (64, 1), "§4.3 writer floor");
    assert_eq!(KeyFile::MAX_LEN, 390, "§4.4: 135 + a 255-byte host");
    assert_eq!((ferry_store::lock::MAX_LOCK_LEN, ferry_store::lock::MAX_LOCK_OBJECT), (512, 1024), "§17.1");
    assert_eq!((ChunkerParams::MIN_AVG, ChunkerParams::MAX_AVG, ChunkerParams::MAX_MAX), (256, 4 << 20, 16 << 20));
    assert_eq!((ferry_store::config::MIN_PACK_TARGET, ferry_store::config::MAX_PACK_TARGET), (1 << 20, 1 << 30));
    assert_eq!(ferry_store::index::MAX_INDEX_LEN, 512 << 20);
    assert_eq!(ferry_store::CONFIG_PATH, "config");
    assert_eq!((ferry_store::KEYS_DIR, PACKS_DIR, INDEX_DIR, ferry_store::SNAPSHOTS_DIR), ("keys/", "packs/", "index/", "snapshots/"));
}

#[test]
fn derived_keys() {
    let vectors: Vec<KeysVector> = load("keys");
    assert!(!vectors.is_empty());
    for v in vectors {
        let k = keys(&v.master_key);
        let d = r::derive(&arr(&v.master_key));
        assert_eq!(hex::encode(d.id_key), v.id_key);
        assert_eq!(hex::encode(d.enc_key), v.enc_key);
        assert_eq!(hex::encode(d.gear_seed), v.gear_seed);
        assert_eq!(hex::encode(k.family_id()), v.family_id);
        assert_eq!(hex::encode(d.family_id), v.family_id);
        assert_eq!(&d.gear[..], &k.gear()[..], "reference gear table differs from the store's");
        let first8: Vec<String> = k.gear()[..8].iter().map(|g| format!("{g:016x}")).collect();
        assert_eq!(first8, v.gear_first8);
        assert_eq!(hex::encode(blake3::hash(&r::gear_bytes(k.gear())).as_bytes()), v.gear_table_blake3);
        for b in &v.block_ids {
            let input = unhex(&b.input);
            assert_eq!(k.block_id(&input).to_hex(), b.id, "block ID of {}", b.input);
            assert_eq!(hex::encode(r::block_id(&d.id_key, &input)), b.id);
        }
    }
}

/// A reader that returns at most `step` bytes per call, to exercise the streaming chunker.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn chunker() {
    let vectors: Vec<ChunkerVector> = load("chunker");
    assert!(!vectors.is_empty());
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for v in vectors {
        let longest = inputs.iter().find(|(s, d)| *s == v.seed && d.len() >= v.input_len as usize);
        let input = match longest {
            Some((_, d)) => d[..v.input_len as usize].to_vec(),
            None => {
                let d = r::xof_input(v.seed.as_bytes(), v.input_len as usize);
                inputs.push((v.seed.clone(), d.clone()));
                d
            }
        };
        assert_eq!(hex::encode(blake3::hash(&input).as_bytes()), v.input_blake3, "{}: input", v.name);
        assert_eq!(v.lengths.iter().sum::<u64>(), v.input_len, "{}: lengths must cover the input", v.name);
        let k = keys(&v.master_key);
        let params = ChunkerParams { min: v.min, avg: v.avg, max: v.max };
        let bits = v.avg.trailing_zeros() as usize;
        assert_eq!(format!("{:016x}", r::MASKS[bits + 1]), v.mask_s);
        assert_eq!(format!("{:016x}", r::MASKS[bits - 1]), v.mask_l);
        let c = Chunker::new(k.gear(), params).expect("valid parameters");
        let lengths: Vec<u64> = c.cut_all(&input).into_iter().map(|n| n as u64).collect();
        assert_eq!(lengths, v.lengths, "{}: store chunker", v.name);
        let reference: Vec<u64> =
            r::cut_all(k.gear(), v.min as usize, v.avg as usize, v.max as usize, &input).into_iter().map(|n| n as u64).collect();
        assert_eq!(reference, v.lengths, "{}: reference chunker (SPEC.md §6.2)", v.name);
        if input.len() <= 2 << 20 {
            let streamed: Vec<u64> =
                c.stream(Trickle { data: &input, step: 7001 }).map(|chunk| chunk.expect("in-memory read").len() as u64).collect();
            assert_eq!(streamed, v.lengths, "{}: streaming chunker", v.name);
        }
    }
}

#[test]
fn envelope() {
    let vectors: Vec<EnvelopeVector> = load("envelope");
    assert!(vectors.iter().any(|v| v.codec == 0) && vectors.iter().any(|v| v.codec == 1), "both codecs must be covered");
    for v in vectors {
        let k = keys(&v.master_key);
        let (kd, id, nonce) = (kind(v.kind), arr::<32>(&v.id), arr::<24>(&v.nonce));
        let (payload, sealed, plaintext) = (unhex(&v.payload), unhex(&v.sealed), unhex(&v.plaintext));
        assert_eq!(hex::encode(envelope::aad(kd, &id)), v.aad, "{}: aad", v.name);
        assert_eq!(&sealed[..24], &nonce, "{}: the nonce leads", v.name);
        assert_eq!(sealed.len(), 24 + plaintext.len() + 16, "{}: sealed length", v.name);
        assert_eq!(plaintext[0], v.codec, "{}: codec byte", v.name);
        let opened = envelope::open(&k, kd, &id, &sealed, payload.len(), &|| v.name.clone()).expect("store opens");
        assert_eq!(opened, payload, "{}: store open", v.name);
        if kd.is_block() {
            assert_eq!(id, k.block_id(&payload).0, "{}: a block's AAD id is its block ID", v.name);
            let b = open_block(&k, kd, &BlockId(id), payload.len() as u32, &sealed, &|| v.name.clone()).expect("block opens");
            assert_eq!(b, payload);
        } else {
            assert_eq!(id, [0; 32], "{}: standalone objects use a zero id", v.name);
        }
        let enc = r::derive(&arr(&v.master_key)).enc_key;
        assert_eq!(r::open_plaintext(&enc, v.kind, &id, &sealed).as_deref(), Some(&plaintext[..]), "{}: reference open", v.name);
        match v.codec {
            0 => assert_eq!(&plaintext[1..], &payload[..]),
            1 => assert_eq!(zstd::stream::decode_all(&plaintext[1..]).expect("zstd frame"), payload),
            c => panic!("{}: codec {c}", v.name),
        }
        // The writer rule of §5.3 picks the same codec, and sealing is reproducible.
        assert_eq!(r::encode_payload(&payload, v.zstd_level)[0], v.codec, "{}: codec rule", v.name);
        assert_eq!(envelope::seal_with_nonce(&k, kd, &id, &payload, v.zstd_level, &nonce), sealed, "{}: store re-seal", v.name);
        assert_eq!(r::seal(&enc, v.kind, &id, &payload, v.zstd_level, &nonce), sealed, "{}: reference seal", v.name);
    }
}

#[test]
fn packs() {
    let vectors: Vec<PackVector> = load("pack");
    assert!(!vectors.is_empty());
    for v in vectors {
        let k = keys(&v.master_key);
        let p = unhex(&v.pack);
        let name = ObjectName::of(&p);
        assert_eq!(name.to_hex(), v.object_name, "{}: object name", v.name);
        assert_eq!(object_path(PACKS_DIR, &name), v.path);
        assert_eq!(v.path, format!("packs/{}/{}", &v.object_name[..2], v.object_name));
        let entries = pack::read_pack_entries(&k, &p, &v.name).expect("pack parses");
        let want: Vec<BlobEntry> = v.entries.iter().map(entry).collect();
        assert_eq!(entries, want, "{}: trailer entries", v.name);
        // Footer and trailer.
        assert_eq!(&p[p.len() - 8..], b"FRYPACK1");
        let tlen = u32::from_le_bytes(p[p.len() - 12..p.len() - 8].try_into().expect("4 bytes")) as usize;
        let trailer = unhex(&v.trailer_sealed);
        assert_eq!(tlen, trailer.len());
        let area = p.len() - 12 - tlen;
        assert_eq!(&p[area..p.len() - 12], &trailer[..]);
        assert_eq!(&trailer[..24], &arr::<24>(&v.trailer_nonce));
        let payload = envelope::open(&k, Kind::PackTrailer, &[0; 32], &trailer, 1 << 20, &|| v.name.clone()).expect("trailer opens");
        assert_eq!(hex::encode(&payload), v.trailer_payload);
        let raw: Vec<r::RawEntry> = want
            .iter()
            .map(|e| r::RawEntry { kind: e.kind as u8, id: e.id.0, offset: e.offset, length: e.length, raw_len: e.raw_len })
            .collect();
        assert_eq!(r::trailer_payload(raw.len() as u32, &raw), payload, "{}: reference trailer encoding", v.name);
        // Blocks: back to back from offset 0, in entry order, each opens by offset and length.
        let mut next = 0u64;
        assert_eq!(v.blocks.len(), entries.len());
        for (e, b) in entries.iter().zip(&v.blocks) {
            assert_eq!(e.offset, next, "{}: blocks are contiguous", v.name);
            next += e.length as u64;
            let sealed = &p[e.offset as usize..(e.offset + e.length as u64) as usize];
            assert_eq!(hex::encode(sealed), b.sealed);
            assert_eq!(hex::encode(&sealed[..24]), b.nonce);
            assert_eq!(e.id.to_hex(), b.id);
            let plain = open_block(&k, e.kind, &e.id, e.raw_len, sealed, &|| v.name.clone()).expect("block opens");
            assert_eq!(hex::encode(&plain), b.plaintext);
        }
        assert_eq!(next as usize, area, "{}: the block area is exactly the blocks", v.name);
        assert_eq!(r::assemble_pack(&p[..area], &trailer), p, "{}: reference assembly", v.name);
    }
}

#[test]
fn key_files() {
    let vectors: Vec<KeyFileVector> = load("keyfile");
    assert!(!vectors.is_empty());
    for v in vectors {
        let bytes = unhex(&v.bytes);
        assert_eq!(hex::encode(v.passphrase.as_bytes()), v.passphrase_hex);
        let kf = KeyFile::parse(&bytes, &v.name).expect("key file parses");
        assert_eq!(kf.kdf, KdfParams { m_kib: v.m_kib, t: v.t, p: v.p });
        assert_eq!((kf.created, kf.host.as_str()), (v.created, v.host.as_str()));
        let master = kf.unwrap_key(v.passphrase.as_bytes()).expect("Argon2id runs").expect("passphrase opens the key file");
        assert_eq!(hex::encode(master.expose()), v.master_key);
        let (salt, nonce) = (arr::<32>(&v.salt), arr::<24>(&v.nonce));
        let again = KeyFile::wrap_with(&master, v.passphrase.as_bytes(), kf.kdf, v.created, &v.host, salt, nonce).expect("wrap");
        assert_eq!(again.to_bytes(), &bytes[..], "{}: store re-wrap", v.name);
        assert_eq!(hex::encode(r::kek(v.passphrase.as_bytes(), &salt, v.m_kib, v.t, v.p)), v.kek, "{}: Argon2id output", v.name);
        let fields = r::KeyFileFields {
            version: 1,
            kdf: 1,
            m_kib: v.m_kib,
            t: v.t,
            p: v.p,
            created: v.created,
            host: v.host.as_bytes().to_vec(),
            salt,
            nonce,
        };
        assert_eq!(fields.header().len() as u64, v.header_len);
        assert_eq!(bytes.len() as u64, v.header_len + 48);
        assert_eq!(fields.wrap(&arr(&v.master_key), v.passphrase.as_bytes()), bytes, "{}: reference wrap", v.name);
        assert_eq!(ObjectName::of(&bytes).to_hex(), v.object_name);
        assert_eq!(v.path, format!("keys/{}", v.object_name));
    }
}

#[test]
fn configs() {
    let vectors: Vec<ConfigVector> = load("config");
    assert!(!vectors.is_empty());
    for v in vectors {
        let k = keys(&v.master_key);
        let sealed = unhex(&v.sealed);
        let c = Config::open(&k, &sealed).expect("config opens");
        let want = Config {
            store_id: arr(&v.store_id),
            family_id: arr(&v.family_id),
            chunker: ChunkerParams { min: v.chunk_min, avg: v.chunk_avg, max: v.chunk_max },
            pack_target: v.pack_target,
            zstd_level: v.zstd_level,
        };
        assert_eq!(c, want, "{}", v.name);
        assert_eq!(hex::encode(c.encode()), v.payload);
        assert_eq!(unhex(&v.payload).len(), 56);
        assert_eq!(&sealed[..24], &arr::<24>(&v.nonce));
        let enc = r::derive(&arr(&v.master_key)).enc_key;
        let plain = r::open_plaintext(&enc, Kind::Config as u8, &[0; 32], &sealed).expect("reference opens the config");
        assert_eq!(plain[0], 0, "a 56-byte payload is always stored (codec 0)");
        assert_eq!(&plain[1..], &unhex(&v.payload)[..]);
    }
}

#[test]
fn indexes() {
    let vectors: Vec<IndexVector> = load("index");
    assert!(!vectors.is_empty());
    for v in vectors {
        let k = keys(&v.master_key);
        let sealed = unhex(&v.sealed);
        let idx = IndexFile::open(&k, &sealed, &v.name).expect("index opens");
        let sup: Vec<String> = idx.supersedes.iter().map(|n| n.to_hex()).collect();
        assert_eq!(sup, v.supersedes, "{}: supersedes", v.name);
        assert_eq!(idx.packs.len(), v.packs.len());
        for (got, want) in idx.packs.iter().zip(&v.packs) {
            assert_eq!(got.pack.to_hex(), want.pack);
            assert_eq!(got.entries, want.entries.iter().map(entry).collect::<Vec<_>>());
        }
        assert_eq!(hex::encode(idx.encode()), v.payload);
        let name = ObjectName::of(&sealed);
        assert_eq!(name.to_hex(), v.object_name);
        assert_eq!(object_path(INDEX_DIR, &name), v.path);
        let enc = r::derive(&arr(&v.master_key)).enc_key;
        assert!(r::open_plaintext(&enc, Kind::Index as u8, &[0; 32], &sealed).is_some(), "{}: reference opens", v.name);
    }
}

#[test]
fn stores() {
    let vectors: Vec<StoreVector> = load("store");
    assert!(!vectors.is_empty());
    for v in vectors {
        let dir = write_store(&v.files);
        let backend = Arc::new(LocalDir::new(dir.path()));
        let store = Store::open(backend.clone(), v.passphrase.as_bytes(), CacheLocation::Memory).expect("store opens");
        assert_eq!(hex::encode(store.keys().master().expose()), v.master_key);
        for b in &v.blocks {
            let id: BlockId = b.id.parse().expect("block id");
            assert_eq!(hex::encode(store.read_block(&id).expect("indexed block reads")), b.plaintext);
            assert_eq!(store.lookup(&id).expect("lookup").map(|l| l.kind as u8), Some(b.kind));
        }
        // Temp files are invisible to listings and reported as strays.
        let strays = backend.list_strays("").expect("strays");
        for ig in &v.ignored {
            assert!(strays.contains(ig), "{ig} must be a stray, got {strays:?}");
            assert!(!backend.list("").expect("list").iter().any(|o| o.path == *ig), "{ig} must not be listed");
        }
        // Unindexed packs: found, their trailers read, then adopted (§10.4).
        let mut found = store.unindexed_packs().expect("unindexed");
        found.sort();
        let mut want: Vec<(ObjectName, u64)> = v.unindexed.iter().map(|u| (u.pack.parse().expect("name"), u.size)).collect();
        want.sort();
        assert_eq!(found, want);
        for u in &v.unindexed {
            let entries = store.read_pack_trailer(&u.pack.parse().expect("name"), u.size).expect("trailer");
            let ids: Vec<String> = entries.iter().map(|e| e.id.to_hex()).collect();
            assert_eq!(ids, u.blocks.iter().map(|b| b.id.clone()).collect::<Vec<_>>());
            for b in &u.blocks {
                assert!(!store.has_block(&b.id.parse().expect("id")).expect("lookup"), "not readable before adoption");
            }
        }
        let writer = store.writer();
        assert_eq!(writer.adopt_unindexed().expect("adopt"), v.unindexed.len());
        writer.finish().expect("finish");
        for b in v.unindexed.iter().flat_map(|u| &u.blocks) {
            assert_eq!(hex::encode(store.read_block(&b.id.parse().expect("id")).expect("adopted block reads")), b.plaintext);
        }
        assert!(store.unindexed_packs().expect("unindexed").is_empty());
    }
}

/// What reading a negative input produced.
enum Outcome {
    Accepted,
    WrongPassphrase,
    /// Error class (`damaged`, `unsupported`, ...) and message.
    Failed(&'static str, String),
}

fn class(e: &Error) -> &'static str {
    match e {
        Error::Damaged { .. } => "damaged",
        Error::Unsupported(_) => "unsupported",
        Error::InvalidParameter(_) => "invalid_parameter",
        Error::BlockNotFound(_) => "missing",
        Error::Io { .. } => "io",
        _ => "other",
    }
}

fn outcome<T>(r: Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Accepted,
        Err(Error::WrongPassphrase { .. }) => Outcome::WrongPassphrase,
        Err(e) => Outcome::Failed(class(&e), e.to_string()),
    }
}

fn read_negative(c: &NegativeCase) -> Outcome {
    let k = keys(&c.master_key);
    match &c.input {
        NegativeInput::Block { kind: kd, id, raw_len, sealed } => {
            outcome(open_block(&k, kind(*kd), &BlockId(arr(id)), *raw_len, &unhex(sealed), &|| c.name.clone()))
        }
        NegativeInput::Pack { pack: p } => outcome(pack::read_pack_entries(&k, &unhex(p), &c.name)),
        NegativeInput::KeyFile { bytes, passphrase } => match KeyFile::parse(&unhex(bytes), &c.name) {
            Err(e) => outcome::<()>(Err(e)),
            Ok(kf) => match kf.unwrap_key(passphrase.as_bytes()) {
                Ok(Some(_)) => Outcome::Accepted,
                Ok(None) => Outcome::WrongPassphrase,
                Err(e) => outcome::<()>(Err(e)),
            },
        },
        NegativeInput::Config { sealed } => outcome(Config::open(&k, &unhex(sealed))),
        NegativeInput::Index { sealed } => outcome(IndexFile::open(&k, &unhex(sealed), &c.name)),
        NegativeInput::Tree { payload } => outcome(Tree::decode(&unhex(payload), &c.name)),
        NegativeInput::Snapshot { sealed } => {
            match envelope::open(&k, Kind::Snapshot, &[0; 32], &unhex(sealed), MAX_SNAPSHOT_LEN, &|| c.name.clone()) {
                Ok(payload) => outcome(Snapshot::decode(&payload, &c.name)),
                Err(e) => outcome::<()>(Err(e)),
            }
        }
        NegativeInput::Store { passphrase, files, read } => {
            let dir = write_store(files);
            let s = match Store::open(Arc::new(LocalDir::new(dir.path())), passphrase.as_bytes(), CacheLocation::Memory) {
                Ok(s) => s,
                Err(e) => return outcome::<()>(Err(e)),
            };
            // A damaged index file does not stop the store from opening
            // (§9.3): it is set aside and reported.
            if let Some((name, reason)) = s.damaged_indexes().into_iter().next() {
                return Outcome::Failed("damaged", format!("index {name}: {reason}"));
            }
            for id in read {
                if let Err(e) = s.read_block(&id.parse().expect("block id")) {
                    return outcome::<()>(Err(e));
                }
            }
            Outcome::Accepted
        }
    }
}

/// The texts a store error must contain (one of them) for each `reason` of SPEC.md §13.2.
fn reason_texts(reason: &str) -> &'static [&'static str] {
    match reason {
        "authentication" => &["authentication failed"],
        "too_short" => &["short"],
        "unknown_codec" => &["unknown codec"],
        "size_limit" => &["limit"],
        "bad_compression" => &["zstd payload"],
        "length_mismatch" => &["the index says"],
        "block_id_mismatch" => &["does not hash to its block ID"],
        "bad_magic" => &["bad magic"],
        "trailer_length" => &["does not fit"],
        "out_of_bounds" => &["outside the"],
        "bad_kind" => &["not a block kind"],
        "count_overflow" => &["bytes left"],
        "trailing_bytes" => &["trailing bytes"],
        "truncated" => &["truncated"],
        "version" => &["version"],
        "unknown_kdf" => &["key derivation function"],
        "kdf_params" => &["Argon2id"],
        "family_mismatch" => &["family id does not match"],
        "bad_params" => &["invalid parameter"],
        "name_mismatch" => &["do not hash to the object's name"],
        "wrong_family" => &["key family"],
        "bad_name" => &["empty name", "is not allowed", "contains '/' or NUL"],
        "not_sorted" => &["not strictly sorted"],
        "unknown_entry_type" => &["unknown entry type"],
        "bad_mode" => &["bits outside"],
        "block_not_found" => &["is not in the store's index"],
        other => panic!("negative.json uses reason {other:?}, which SPEC.md §13.2 does not define"),
    }
}

/// True when a non-block case fails after its envelope opened, for a
/// reason that envelopes share with payloads (sizes of fields, trailing
/// bytes after the last field).
fn payload_reason(c: &NegativeCase) -> bool {
    matches!(c.reason.as_str(), "size_limit" | "trailing_bytes")
}

#[test]
fn negative_cases() {
    let cases: Vec<NegativeCase> = load("negative");
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for c in &cases {
        let got = read_negative(c);
        let ok = match &got {
            Outcome::WrongPassphrase => c.error == "wrong_passphrase",
            Outcome::Failed(class, message) => *class == c.error && reason_texts(&c.reason).iter().any(|t| message.contains(t)),
            Outcome::Accepted => false,
        };
        if !ok {
            let got = match got {
                Outcome::Accepted => "accepted".to_string(),
                Outcome::WrongPassphrase => "wrong passphrase".to_string(),
                Outcome::Failed(class, message) => format!("{class}: {message}"),
            };
            failures.push(format!("{}: want {} ({}), got {got}", c.name, c.error, c.reason));
        }
        // The reference reader (written from SPEC.md) refuses every block
        // for the same reason, and every other sealed object at the
        // envelope (§5.4) exactly when the reason is an envelope reason.
        let d = r::derive(&arr(&c.master_key));
        let envelope_reasons = ["authentication", "too_short", "unknown_codec", "bad_compression", "size_limit", "trailing_bytes"];
        let (reference, limit_checked) = match &c.input {
            NegativeInput::Block { kind, id, raw_len, sealed } => {
                (Some(r::read_block(&d, *kind, &arr(id), *raw_len, &unhex(sealed))), true)
            }
            NegativeInput::Config { sealed } => {
                (Some(r::open_payload(&d.enc_key, Kind::Config as u8, &[0; 32], &unhex(sealed), 4096)), false)
            }
            NegativeInput::Index { sealed } => {
                (Some(r::open_payload(&d.enc_key, Kind::Index as u8, &[0; 32], &unhex(sealed), ferry_store::index::MAX_INDEX_LEN)), false)
            }
            NegativeInput::Snapshot { sealed } => {
                (Some(r::open_payload(&d.enc_key, Kind::Snapshot as u8, &[0; 32], &unhex(sealed), r::MAX_SNAPSHOT_LEN)), false)
            }
            _ => (None, false),
        };
        match reference {
            Some(Err(reason)) if reason != c.reason => failures.push(format!("{}: the reference reader refuses it for {reason}", c.name)),
            Some(Ok(_)) if limit_checked || envelope_reasons.contains(&c.reason.as_str()) && !payload_reason(c) => {
                failures.push(format!("{}: the reference reader accepts it", c.name))
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{} of {} negative vectors misbehave:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn zstd_bombs_are_real() {
    // The unsized frame of negative.json is valid zstd: refusing it is the
    // limit's doing, not a parse error.
    let frame = r::zstd_frame_unsized(2);
    assert_eq!(zstd::stream::decode_all(&frame[..]).expect("valid frame").len(), 256 << 10);
    assert!(matches!(zstd::zstd_safe::get_frame_content_size(&frame), Ok(None)));
    assert!(matches!(zstd::zstd_safe::get_frame_content_size(&r::zstd_frame_claiming(1 << 40)), Ok(Some(n)) if n == 1 << 40));
}

#[test]
fn spec_constants_match_the_sync_crate() {
    assert_eq!((tree::MAX_NAME, tree::MAX_TARGET, tree::MAX_DEPTH), (r::MAX_NAME, r::MAX_TARGET, r::MAX_DEPTH));
    assert_eq!(ferry_store::MAX_TREE_LEN as usize, r::MAX_TREE_LEN);
    assert_eq!(MAX_SNAPSHOT_LEN, r::MAX_SNAPSHOT_LEN);
    assert_eq!((EntryType::File as u8, EntryType::Dir as u8, EntryType::Symlink as u8), (r::ENTRY_FILE, r::ENTRY_DIR, r::ENTRY_SYMLINK));
    let long = vec![b'n'; r::MAX_NAME];
    let longer = vec![b'n'; r::MAX_NAME + 1];
    let names: [&[u8]; 14] =
        [b"a", b".", b"..", b"...", b".hidden", b"", b"a/b", b"/", b"a\0", b"\\", b"\xff\xfe", "\u{e9}".as_bytes(), &long, &longer];
    for n in names {
        assert_eq!(tree::validate_name(n).is_ok(), r::name_is_valid(n), "name {:?}: SPEC.md §14.3 and ferry-sync disagree", n);
    }
}

fn tree_entry(e: &TreeEntryJson) -> Entry {
    let content = match e.entry_type {
        1 => Content::File(e.blocks.as_ref().expect("a file lists blocks").iter().map(|b| BlockId(arr(b))).collect()),
        2 => Content::Dir(BlockId(arr(e.subtree.as_ref().expect("a folder names its subtree")))),
        3 => Content::Symlink(unhex(e.target.as_ref().expect("a symlink has a target"))),
        t => panic!("entry type {t}"),
    };
    Entry {
        name: unhex(&e.name_hex),
        mode: e.mode,
        mtime_ns: u64::from_str_radix(&e.mtime_ns, 16).expect("16 hex digits") as i64,
        size: e.size,
        uid: e.uid,
        gid: e.gid,
        link_group: u64::from_str_radix(&e.link_group, 16).expect("16 hex digits"),
        content,
    }
}

fn raw_tree_entry(e: &Entry) -> r::RawTreeEntry {
    let (entry_type, content) = match &e.content {
        Content::File(ids) => (r::ENTRY_FILE, r::file_content(&ids.iter().map(|i| i.0).collect::<Vec<_>>())),
        Content::Dir(id) => (r::ENTRY_DIR, r::dir_content(&id.0)),
        Content::Symlink(t) => (r::ENTRY_SYMLINK, r::symlink_content(t)),
    };
    r::RawTreeEntry {
        name: e.name.clone(),
        entry_type,
        mode: e.mode,
        mtime_ns: e.mtime_ns,
        size: e.size,
        uid: e.uid,
        gid: e.gid,
        link_group: e.link_group,
        content,
    }
}

#[test]
fn trees() {
    let vectors: Vec<TreeVector> = load("tree");
    let mut seen_ids: Vec<String> = Vec::new();
    let (mut types, mut two_blocks, mut linked) = (HashSet::new(), false, false);
    for v in &vectors {
        let k = keys(&v.master_key);
        let payload = unhex(&v.payload);
        assert!(payload.len() <= r::MAX_TREE_LEN);
        let t = Tree::decode(&payload, &v.name).expect("tree decodes");
        let want: Vec<Entry> = v.entries.iter().map(tree_entry).collect();
        assert_eq!(t.entries, want, "{}: decoded entries", v.name);
        assert_eq!(t.encode(), payload, "{}: a decoded tree re-encodes to the same bytes", v.name);
        let raw: Vec<r::RawTreeEntry> = want.iter().map(raw_tree_entry).collect();
        assert_eq!(r::tree_payload(raw.len() as u32, &raw), payload, "{}: reference encoding (SPEC.md §14.1)", v.name);
        for w in t.entries.windows(2) {
            assert!(w[0].name < w[1].name, "{}: names strictly increasing", v.name);
        }
        // Block ID and the sealed block (§3.2, §5).
        assert_eq!(k.block_id(&payload).to_hex(), v.block_id, "{}: block ID", v.name);
        let id = BlockId(arr(&v.block_id));
        let sealed = unhex(&v.sealed);
        assert_eq!(&sealed[..24], &arr::<24>(&v.nonce));
        let opened = open_block(&k, Kind::Tree, &id, payload.len() as u32, &sealed, &|| v.name.clone()).expect("tree block opens");
        assert_eq!(opened, payload);
        assert_eq!(envelope::seal_with_nonce(&k, Kind::Tree, &id.0, &payload, 3, &arr(&v.nonce)), sealed, "{}: re-seal", v.name);
        // Contents.
        let data: HashMap<BlockId, Vec<u8>> = v
            .data_blocks
            .iter()
            .map(|d| {
                let p = unhex(&d.plaintext);
                assert_eq!(k.block_id(&p).to_hex(), d.id, "{}: data block ID", v.name);
                (BlockId(arr(&d.id)), p)
            })
            .collect();
        let mut groups: HashMap<u64, Vec<&Entry>> = HashMap::new();
        for (e, j) in t.entries.iter().zip(&v.entries) {
            assert_eq!(e.name_str(), j.name);
            assert!(r::name_is_valid(&e.name), "{}: {:?}", v.name, j.name);
            assert_eq!(e.mode & !0o7777, 0, "{}: mode is permission bits only", v.name);
            types.insert(e.entry_type() as u8);
            match &e.content {
                Content::File(ids) => {
                    let sum: u64 = ids.iter().map(|i| data.get(i).expect("every data block is in data_blocks").len() as u64).sum();
                    assert_eq!(sum, e.size, "{}: {}: a file's size is the sum of its blocks", v.name, j.name);
                    two_blocks |= ids.len() == 2;
                    if e.link_group != 0 {
                        groups.entry(e.link_group).or_default().push(e);
                    }
                }
                Content::Dir(sub) => {
                    assert!(seen_ids.contains(&sub.to_hex()), "{}: {}: the subtree is an earlier vector", v.name, j.name);
                    assert_eq!((e.size, e.link_group), (0, 0));
                }
                Content::Symlink(target) => {
                    assert!(target.len() <= r::MAX_TARGET);
                    assert_eq!((e.size, e.link_group), (0, 0));
                }
            }
        }
        for members in groups.values() {
            linked |= members.len() > 1;
            for m in members {
                assert_eq!((&m.content, m.size), (&members[0].content, members[0].size), "{}: one link group, one content", v.name);
            }
        }
        seen_ids.push(v.block_id.clone());
    }
    assert_eq!(types, HashSet::from([1, 2, 3]), "every entry type is covered");
    assert!(two_blocks && linked, "a file of two blocks and a hard-linked file are covered");
    assert!(vectors.iter().any(|v| v.entries.is_empty() && v.payload == "00000000"), "the empty tree is covered");
}

fn snapshot_from(v: &SnapshotVector) -> Snapshot {
    Snapshot {
        time_ns: u64::from_str_radix(&v.time_ns, 16).expect("16 hex digits") as i64,
        root: BlockId(arr(&v.root)),
        parents: v.parents.iter().map(|p| ObjectName(arr(p))).collect(),
        host: v.host.clone(),
        source: unhex(&v.source_hex),
        tags: v.tags.clone(),
        replica: arr(&v.replica),
        folder: arr(&v.folder),
        summary: snapshot::Summary {
            files: v.files,
            dirs: v.dirs,
            bytes: v.bytes,
            new_files: v.new_files,
            changed_files: v.changed_files,
            unchanged_files: v.unchanged_files,
            added_bytes: v.added_bytes,
        },
    }
}

#[test]
fn snapshots() {
    let vectors: Vec<SnapshotVector> = load("snapshot");
    let trees: Vec<TreeVector> = load("tree");
    let mut earlier: Vec<String> = Vec::new();
    for v in &vectors {
        let k = keys(&v.master_key);
        let (payload, sealed, nonce) = (unhex(&v.payload), unhex(&v.sealed), arr::<24>(&v.nonce));
        assert!(payload.len() <= MAX_SNAPSHOT_LEN);
        let opened = envelope::open(&k, Kind::Snapshot, &[0; 32], &sealed, MAX_SNAPSHOT_LEN, &|| v.name.clone()).expect("snapshot opens");
        assert_eq!(opened, payload, "{}: payload", v.name);
        let s = Snapshot::decode(&payload, &v.name).expect("snapshot decodes");
        let want = snapshot_from(v);
        assert_eq!(s, want, "{}: decoded fields", v.name);
        assert_eq!(s.source_str(), v.source);
        assert_eq!(v.version, 1);
        assert_eq!(s.encode(), payload, "{}: re-encode", v.name);
        let raw = r::RawSnapshot {
            version: v.version,
            time_ns: s.time_ns,
            root: s.root.0,
            parents: s.parents.iter().map(|p| p.0).collect(),
            host: v.host.as_bytes().to_vec(),
            source: s.source.clone(),
            tags: v.tags.iter().map(|t| t.as_bytes().to_vec()).collect(),
            replica: s.replica,
            folder: s.folder,
            counts: [v.files, v.dirs, v.bytes, v.new_files, v.changed_files, v.unchanged_files, v.added_bytes],
        };
        assert_eq!(raw.encode(), payload, "{}: reference encoding (SPEC.md §14.2)", v.name);
        // Sealing, the object name (= the snapshot ID) and the path.
        assert_eq!(&sealed[..24], &nonce);
        assert_eq!(envelope::seal_with_nonce(&k, Kind::Snapshot, &[0; 32], &payload, v.zstd_level, &nonce), sealed, "{}: re-seal", v.name);
        let enc = r::derive(&arr(&v.master_key)).enc_key;
        assert_eq!(r::seal(&enc, Kind::Snapshot as u8, &[0; 32], &payload, v.zstd_level, &nonce), sealed, "{}: reference seal", v.name);
        let name = ObjectName::of(&sealed);
        assert_eq!(name.to_hex(), v.object_name);
        assert_eq!(object_path(SNAPSHOTS_DIR, &name), v.path);
        assert_eq!(v.path, format!("snapshots/{}/{}", &v.object_name[..2], v.object_name));
        // References: the root is a tree vector, parents are earlier snapshots.
        assert!(trees.iter().any(|t| t.block_id == v.root), "{}: root is a tree vector", v.name);
        for p in &v.parents {
            assert!(earlier.contains(p), "{}: parent {p} is an earlier vector", v.name);
        }
        earlier.push(v.object_name.clone());
    }
    assert!(vectors.iter().any(|v| v.parents.is_empty() && v.replica == "00".repeat(16) && v.folder == "00".repeat(16)));
    assert!(vectors.iter().any(|v| v.parents.len() > 1 && v.replica != "00".repeat(16)));
}

/// A store of family A holding every tree and data block of tree.json and
/// every snapshot of snapshot.json.
fn vector_store(dir: &std::path::Path) -> Store {
    let opts = InitOptions {
        kdf: KdfParams { m_kib: 64, t: 1, p: 1 },
        master: Some(MasterKey::from_bytes(ferry_format_spec::generate::MASTER_A)),
        ..Default::default()
    };
    let store = Store::init(Arc::new(LocalDir::new(dir)), b"vectors", opts, CacheLocation::Memory).expect("store init");
    let w = store.writer();
    for t in load::<TreeVector>("tree") {
        for d in &t.data_blocks {
            assert_eq!(w.put(Kind::Data, &unhex(&d.plaintext)).expect("put").to_hex(), d.id);
        }
        assert_eq!(w.put(Kind::Tree, &unhex(&t.payload)).expect("put").to_hex(), t.block_id);
    }
    w.finish().expect("finish");
    for s in load::<SnapshotVector>("snapshot") {
        LocalDir::new(dir).write(&s.path, &unhex(&s.sealed)).expect("write snapshot");
    }
    store
}

#[test]
fn trees_and_snapshots_through_a_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = vector_store(&dir.path().join("store"));
    let trees: Vec<TreeVector> = load("tree");
    for t in &trees {
        let got = ferry_sync::load_tree(&store, &BlockId(arr(&t.block_id))).expect("load_tree");
        assert_eq!(got.entries, t.entries.iter().map(tree_entry).collect::<Vec<_>>(), "{}", t.name);
    }
    // Listing order and `latest` (SPEC.md §14.5): the vectors are in time order.
    let vectors: Vec<SnapshotVector> = load("snapshot");
    let listed: Vec<String> = snapshot::list(&store).expect("list").iter().map(|(id, _)| id.to_hex()).collect();
    assert_eq!(listed, vectors.iter().map(|v| v.object_name.clone()).collect::<Vec<_>>());
    let resolve = |spec: &str, source: Option<&[u8]>| snapshot::resolve(&store, spec, source).map(|(id, _)| id.to_hex());
    let last = vectors.last().expect("vectors");
    assert_eq!(resolve("latest", None).expect("latest"), last.object_name);
    let docs = unhex(&vectors[0].source_hex);
    let latest_docs = vectors.iter().rfind(|v| v.source_hex == vectors[0].source_hex).expect("a vector");
    assert_eq!(resolve("latest", Some(&docs)).expect("latest of a source"), latest_docs.object_name);
    assert!(matches!(snapshot::resolve(&store, "latest", Some(b"/nowhere")), Err(ferry_sync::Error::NoSnapshot(_))));
    for v in &vectors {
        assert_eq!(resolve(&v.object_name, None).expect("full ID"), v.object_name);
        assert_eq!(resolve(&v.object_name[..8], None).expect("prefix"), v.object_name);
        assert_eq!(resolve(&v.object_name[..8].to_ascii_uppercase(), None).expect("upper-case prefix"), v.object_name);
        let (_, s) = snapshot::resolve(&store, &v.object_name, None).expect("load");
        assert_eq!(s, snapshot_from(v));
    }
    for bad in ["", "LATEST", "xyz", "0x12", &format!("{}0", last.object_name)] {
        assert!(matches!(snapshot::resolve(&store, bad, None), Err(ferry_sync::Error::NoSnapshot(_))), "{bad:?} must match nothing");
    }
    // Two IDs sharing a first digit make that digit ambiguous (true of today's vectors).
    let firsts: Vec<&str> = vectors.iter().map(|v| &v.object_name[..1]).collect();
    if let Some(d) = firsts.iter().find(|d| firsts.iter().filter(|e| e == d).count() > 1) {
        assert!(matches!(snapshot::resolve(&store, d, None), Err(ferry_sync::Error::AmbiguousSnapshot(_))));
    }
}

#[test]
fn restoring_the_vectors() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = vector_store(&dir.path().join("store"));
    let (_, snap) = snapshot::resolve(&store, "latest", None).expect("latest");
    let out = dir.path().join("out");
    let opts = ferry_sync::restore::RestoreOptions::default();
    let rep = ferry_sync::restore::restore(&store, &snap, &out, &opts, &ferry_sync::Progress::default()).expect("restore");
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
    let meta = |p: &str| fs::symlink_metadata(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    // §14.4: equal non-zero link groups come back as one inode.
    assert_eq!(meta("hard-1").ino(), meta("hard-2").ino());
    assert_eq!(meta("hard-1").nlink(), 2);
    assert_ne!(meta("README").ino(), meta("hard-1").ino());
    assert_eq!(fs::read_link(out.join("link")).expect("a symlink"), std::path::Path::new("a-dir/readme"));
    assert_eq!(meta("link").mtime(), -2, "mtime -1.5 s is second -2, nanosecond 500000000");
    assert_eq!(meta("\u{e9}t\u{e9}").mode() & 0o7777, 0o1777);
    assert_eq!(meta("two-blocks.txt").len(), 208);
    assert_eq!(fs::read(out.join("a-dir/readme")).expect("read"), b"notes\n");
    assert_eq!(meta("a-dir/empty-file").len(), 0);
}

#[test]
fn exported_keys() {
    let vectors: Vec<ExportedKeyVector> = load("exported-key");
    assert!(vectors.iter().any(|v| v.error.is_some()) && vectors.iter().any(|v| v.error.is_none()));
    for v in vectors {
        let bytes = unhex(&v.bytes);
        let ours = ferry_store::exported::decode(&bytes, &v.name);
        let reference = r::exported_key(&bytes);
        match (&v.master_key, &v.error) {
            (Some(m), None) => {
                assert_eq!(hex::encode(ours.expect("store reads it").expose()), *m, "{}", v.name);
                assert_eq!(hex::encode(reference.expect("reference reads it")), *m, "{}", v.name);
            }
            (None, Some(e)) => {
                let class = match ours {
                    Err(ferry_store::Error::Unsupported(_)) => "unsupported",
                    Err(ferry_store::Error::Damaged { .. }) => "damaged",
                    other => panic!("{}: store gave {:?}", v.name, other.map(|k| hex::encode(k.expose()))),
                };
                assert_eq!(class, e, "{}: store", v.name);
                assert_eq!(reference, Err(e.as_str()), "{}: reference", v.name);
            }
            _ => panic!("{}: a vector is valid or refused", v.name),
        }
    }
}

/// Frames of §19 built by hand from the text of the spec (not through
/// `ferry_store::protocol`): type, id, then the fields of the tables.
fn spec_frame(direction: &str, id: u32, msg: &str, fields: &[&[u8]]) -> Vec<u8> {
    let t: u8 = match (direction, msg) {
        ("request", "hello") => 0x01,
        ("request", "create") => 0x02,
        ("request", "list") => 0x03,
        ("request", "list-strays") => 0x04,
        ("request", "read") => 0x05,
        ("request", "read-ranges") => 0x06,
        ("request", "write") => 0x07,
        ("request", "exists") => 0x08,
        ("request", "delete") => 0x09,
        ("reply", "ok") => 0x80,
        ("reply", "hello-ok") => 0x81,
        ("reply", "listing") => 0x82,
        ("reply", "strays") => 0x83,
        ("reply", "data") => 0x84,
        ("reply", "ranges") => 0x85,
        ("reply", "bool") => 0x86,
        ("reply", "error") => 0xff,
        other => panic!("no such message {other:?}"),
    };
    let mut body = vec![t];
    body.extend_from_slice(&id.to_le_bytes());
    for f in fields {
        body.extend_from_slice(f);
    }
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn s16(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

#[test]
fn protocol_frames() {
    use ferry_store::protocol::{Code, Reply, Request, decode_reply, decode_request, encode_reply, encode_request, read_frame};
    let vectors: Vec<ProtocolVector> = load("protocol");
    let mut seen = HashSet::new();
    for v in &vectors {
        let frame = unhex(&v.frame);
        let mut rd = &frame[..];
        let body = match read_frame(&mut rd) {
            Ok(Some(b)) => b,
            Ok(None) => panic!("{}: empty", v.name),
            Err(e) => {
                assert_eq!(v.error.as_deref(), Some("frame-too-long"), "{}: {e}", v.name);
                continue;
            }
        };
        assert!(rd.is_empty(), "{}: bytes after the frame", v.name);
        match (v.direction.as_str(), &v.error) {
            ("request", Some(e)) => {
                assert_eq!(e, "bad-request", "{}", v.name);
                assert!(decode_request(&body).is_err(), "{}: accepted", v.name);
            }
            ("request", None) => {
                let (id, req) = decode_request(&body).unwrap_or_else(|e| panic!("{}: {e}", v.name));
                assert_eq!(encode_request(id, &req), body, "{}", v.name);
                let (name, fields): (&str, Vec<Vec<u8>>) = match &req {
                    Request::Hello { version, path } => ("hello", vec![b"ferry-serve".to_vec(), version.to_le_bytes().to_vec(), s16(path)]),
                    Request::Create => ("create", vec![]),
                    Request::List(p) => ("list", vec![s16(p)]),
                    Request::ListStrays(p) => ("list-strays", vec![s16(p)]),
                    Request::Read(p) => ("read", vec![s16(p)]),
                    Request::ReadRanges(p, r) => {
                        let mut f = vec![s16(p), (r.len() as u32).to_le_bytes().to_vec()];
                        for (o, l) in r {
                            f.push(o.to_le_bytes().to_vec());
                            f.push(l.to_le_bytes().to_vec());
                        }
                        ("read-ranges", f)
                    }
                    Request::Write(p, b) => ("write", vec![s16(p), b.clone()]),
                    Request::Exists(p) => ("exists", vec![s16(p)]),
                    Request::Delete(p) => ("delete", vec![s16(p)]),
                };
                let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
                assert_eq!(hex::encode(spec_frame("request", id, name, &refs)), v.frame, "{}: spec layout", v.name);
                seen.insert(name);
            }
            ("reply", None) => {
                let (id, rep) = decode_reply(&body).unwrap_or_else(|e| panic!("{}: {e}", v.name));
                assert_eq!(encode_reply(id, &rep), body, "{}", v.name);
                let (name, fields): (&str, Vec<Vec<u8>>) = match &rep {
                    Reply::Ok => ("ok", vec![]),
                    Reply::HelloOk { version, flags } => {
                        ("hello-ok", vec![b"ferry-serve".to_vec(), version.to_le_bytes().to_vec(), vec![*flags]])
                    }
                    Reply::Listing(items) => {
                        let mut f = vec![(items.len() as u32).to_le_bytes().to_vec()];
                        for (p, s) in items {
                            f.push(s16(p));
                            f.push(s.to_le_bytes().to_vec());
                        }
                        ("listing", f)
                    }
                    Reply::Strays(items) => {
                        let mut f = vec![(items.len() as u32).to_le_bytes().to_vec()];
                        f.extend(items.iter().map(|p| s16(p)));
                        ("strays", f)
                    }
                    Reply::Data(d) => ("data", vec![d.clone()]),
                    Reply::Ranges(parts) => {
                        let mut f = vec![(parts.len() as u32).to_le_bytes().to_vec()];
                        for p in parts {
                            f.push((p.len() as u64).to_le_bytes().to_vec());
                            f.push(p.clone());
                        }
                        ("ranges", f)
                    }
                    Reply::Bool(b) => ("bool", vec![vec![*b as u8]]),
                    Reply::Error(code, text) => ("error", vec![vec![*code as u8], s16(text)]),
                };
                let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
                assert_eq!(hex::encode(spec_frame("reply", id, name, &refs)), v.frame, "{}: spec layout", v.name);
                if let Reply::Error(code, _) = rep {
                    assert!(matches!(code, Code::AppendOnly | Code::NotFound), "{}", v.name);
                }
                seen.insert(name);
            }
            other => panic!("{}: {other:?}", v.name),
        }
    }
    assert_eq!(seen.len(), 17, "one vector of every message: {seen:?}");
}

/// §16.2 step 3: the crate and the reference give each vector's label,
/// name and suffixed name; both tell the same names for copies.
#[test]
fn conflict_names() {
    use ferry_sync::merge;
    for v in load::<ConflictNameVector>("conflict-name") {
        let replica: [u8; 16] = arr(&v.replica);
        let blocks: Vec<[u8; 32]> = v.blocks.iter().map(|b| arr(b)).collect();
        assert_eq!(r::conflict_label(&v.host, &replica), v.label, "{}: reference label", v.name);
        assert_eq!(merge::conflict_label(&v.host, &replica), v.label, "{}: crate label", v.name);
        assert_eq!(r::conflict_name(&v.path, &v.label, v.mtime_ns, None), v.copy, "{}: reference name", v.name);
        let t = r::content_suffix(&blocks, v.mode);
        assert_eq!(r::conflict_name(&v.path, &v.label, v.mtime_ns, Some(&t)), v.copy_with_suffix, "{}: reference suffixed", v.name);
        assert_eq!(r::whole_conflict_name(&v.path, &v.label, v.mtime_ns, None), v.whole, "{}: reference whole name", v.name);
        assert_eq!(
            r::whole_conflict_name(&v.path, &v.label, v.mtime_ns, Some(&t)),
            v.whole_with_suffix,
            "{}: reference whole suffixed",
            v.name
        );
        for n in [&v.copy, &v.copy_with_suffix, &v.whole, &v.whole_with_suffix] {
            let file = n.rsplit('/').next().expect("a name");
            assert!(r::is_conflict_copy(file) && merge::is_conflict_copy(file), "{}: {file} is a copy", v.name);
            assert_eq!(r::original_name(file).as_deref(), Some(v.original.as_str()), "{}: reference reads {file} back", v.name);
            let parsed = merge::parse_conflict_name(file).map(|c| c.original);
            assert_eq!(parsed.as_deref(), Some(v.original.as_str()), "{}: crate reads {file} back", v.name);
        }
    }
    let names = [
        "a.conflict-0a1b2c3d-20231114-221320.txt",
        "a.conflict-vm-20231114-221320-abc123.txt",
        "Makefile.conflict-host-1-20231114-221320",
        "a.conflict-.txt",
        "a.conflict--20231114-221320.txt",
        "a.conflict-vm-2023111-221320.txt",
        "a.conflict-v.m-20231114-221320.txt",
        "a.conflict-vm-20231114-221320x",
        "a.conflict-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-20231114-221320",
        "a.conflict-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-20231114-221320",
        "a.txt",
    ];
    for n in names {
        assert_eq!(r::is_conflict_copy(n), merge::is_conflict_copy(n), "{n}: SPEC.md §16.2 and ferry-sync disagree");
    }
    assert_eq!(names.iter().filter(|n| r::is_conflict_copy(n)).count(), 4);
}
