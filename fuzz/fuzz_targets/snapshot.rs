#![no_main]
// Snapshot decoder (format-spec §14.2).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = ferry_sync::snapshot::Snapshot::decode(data, "fuzz") {
        assert_eq!(s.encode(), data);
    }
});
