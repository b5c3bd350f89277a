#![no_main]
// Pack footer and trailer (format-spec §8): entries always inside the pack.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let keys = ferry_store::Keys::derive(&ferry_store::MasterKey::from_bytes([7; 32]));
    if let Ok(entries) = ferry_store::pack::read_pack_entries(&keys, data, "fuzz") {
        for e in entries {
            assert!(e.offset + e.length as u64 <= data.len() as u64);
        }
    }
});
