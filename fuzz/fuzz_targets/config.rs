#![no_main]
// Config payload decoder (format-spec §7).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(c) = ferry_store::Config::decode(data) {
        assert_eq!(c.encode(), data);
    }
});
