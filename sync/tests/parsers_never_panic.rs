//! Tree and snapshot decoders on arbitrary bytes: errors, never panics;
//! what parses has safe names and re-encodes to the same bytes.

use ferry_sync::snapshot::Snapshot;
use ferry_sync::tree::{Tree, validate_name};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(t) = Tree::decode(&data, "x") {
            for e in &t.entries { prop_assert!(validate_name(&e.name).is_ok()); }
            prop_assert_eq!(t.encode(), data.clone());
        }
        if let Ok(s) = Snapshot::decode(&data, "x") { prop_assert_eq!(s.encode(), data.clone()); }
    }

    #[test]
    fn tree_like_bytes(n in 0u32..4, name in proptest::collection::vec(any::<u8>(), 0..8), rest in proptest::collection::vec(any::<u8>(), 0..120)) {
        // Plausible prefixes reach deeper into the decoder than random bytes.
        let mut d = n.to_le_bytes().to_vec();
        d.extend_from_slice(&(name.len() as u32).to_le_bytes());
        d.extend_from_slice(&name);
        d.extend_from_slice(&rest);
        if let Ok(t) = Tree::decode(&d, "x") {
            for e in &t.entries { prop_assert!(validate_name(&e.name).is_ok()); }
            prop_assert_eq!(t.encode(), d);
        }
    }
}
