#![no_main]
// Tree decoder (format-spec §14.1): names safe, encoding canonical.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = ferry_sync::tree::Tree::decode(data, "fuzz") {
        for e in &t.entries {
            assert!(ferry_sync::tree::validate_name(&e.name).is_ok());
        }
        assert_eq!(t.encode(), data);
    }
});
