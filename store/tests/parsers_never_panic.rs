//! Every parser of store objects on arbitrary and mutated bytes: errors,
//! never panics, and what parses re-encodes to the same bytes. (The
//! cargo-fuzz targets in fuzz/ check the same with coverage guidance.)

use ferry_store::envelope::{self, Kind};
use ferry_store::index::IndexFile;
use ferry_store::{Config, KeyFile, Keys, MasterKey, pack};
use proptest::prelude::*;

fn keys() -> Keys {
    Keys::derive(&MasterKey::from_bytes([7; 32]))
}

/// A valid pack to mutate.
fn sample_pack() -> Vec<u8> {
    let k = keys();
    let mut b = pack::PackBuilder::new();
    for i in 0..3u8 {
        let data = vec![i; 100 + i as usize];
        let id = k.block_id(&data);
        b.add(Kind::Data, id, data.len() as u32, &envelope::seal(&k, Kind::Data, &id.0, &data, 3));
    }
    b.finish(&k).bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let k = keys();
        if let Ok(kf) = KeyFile::parse(&data, "x") { prop_assert_eq!(kf.to_bytes(), &data[..]); }
        let _ = envelope::open(&k, Kind::Data, &[0; 32], &data, 1 << 16, &|| "x".into());
        if let Ok(e) = pack::read_pack_entries(&k, &data, "x") {
            for e in e { prop_assert!(e.offset + e.length as u64 <= data.len() as u64); }
        }
        if let Ok(i) = IndexFile::decode(&data, "x") { prop_assert_eq!(i.encode(), data.clone()); }
        if let Ok(c) = Config::decode(&data) { prop_assert_eq!(c.encode(), data.clone()); }
    }

    #[test]
    fn mutated_packs_fail_cleanly(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let k = keys();
        let mut p = sample_pack();
        for (pos, x) in flips {
            let i = pos % p.len();
            p[i] ^= x | 1;
        }
        let _ = pack::read_pack_entries(&k, &p, "x");
        let n = cut % (p.len() + 1);
        let _ = pack::read_pack_entries(&k, &p[..n], "x");
    }

    #[test]
    fn index_records_with_huge_counts_are_refused(n in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..100)) {
        let mut data = 0u32.to_le_bytes().to_vec();
        data.extend_from_slice(&n.to_le_bytes());
        data.extend_from_slice(&tail);
        // Must not try to allocate n records.
        let _ = IndexFile::decode(&data, "x");
    }
}
