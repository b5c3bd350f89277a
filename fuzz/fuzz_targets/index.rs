#![no_main]
// Index payload decoder (format-spec §9): decode then encode is identity.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = ferry_store::index::IndexFile::decode(data, "fuzz") {
        assert_eq!(idx.encode(), data);
    }
});
