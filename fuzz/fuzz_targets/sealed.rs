#![no_main]
// Envelope opener (format-spec §5) including the zstd bomb limits.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let keys = ferry_store::Keys::derive(&ferry_store::MasterKey::from_bytes([7; 32]));
    let _ = ferry_store::envelope::open(&keys, ferry_store::Kind::Data, &[0; 32], data, 1 << 20, &|| "fuzz".into());
    // The payload decoder behind the tag, reached directly: seal the input and open it.
    let sealed = ferry_store::envelope::seal_with_nonce(&keys, ferry_store::Kind::Tree, &[1; 32], data, 1, &[0; 24]);
    let opened = ferry_store::envelope::open(&keys, ferry_store::Kind::Tree, &[1; 32], &sealed, data.len(), &|| "fuzz".into()).unwrap();
    assert_eq!(opened, data);
});
