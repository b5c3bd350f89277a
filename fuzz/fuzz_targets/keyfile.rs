#![no_main]
// Key file header parser (format-spec §4): never panics, caps KDF costs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = ferry_store::KeyFile::parse(data, "fuzz") {
        assert!(kf.kdf.validate().is_ok());
        assert_eq!(kf.to_bytes(), data);
    }
});
