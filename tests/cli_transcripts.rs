//! Golden transcripts of the CLI (issue 17): `tests/cmd/*.md` hold
//! commands, their exact output and exit codes; a changed message shows
//! up in review as a changed transcript.
//!
//! Each file runs in a fresh copy of its `NAME.in/` folder (commands of
//! one file share it, in order). Passphrases come from
//! `FERRY_PASSWORD_FILE=pw.txt`, relative to the folder a command runs
//! in, so `ferry -C elsewhere ...` meets the passphrase in
//! `elsewhere/pw.txt` (the wrong-passphrase cases). IDs, times and
//! durations are elided with `[..]`; paths under the sandbox read
//! `[CWD]`. To review every change after editing messages:
//! `TRYCMD=overwrite cargo test --test cli_transcripts`, then `git diff tests/cmd`.

#[test]
fn cli_transcripts() {
    let cache = tempfile::tempdir().expect("temp dir");
    trycmd::TestCases::new()
        .register_bin("ferry", std::path::Path::new(env!("CARGO_BIN_EXE_ferry")))
        .register_bin("ls", std::path::Path::new("/bin/ls"))
        .register_bin("touch", std::path::Path::new("/bin/touch"))
        .register_bin("cp", std::path::Path::new("/bin/cp"))
        .env("FERRY_PASSWORD_FILE", "pw.txt")
        // Not FERRY_CACHE_DIR: clap would show an option set from the
        // environment in every usage line.
        .env("XDG_CACHE_HOME", cache.path().to_string_lossy())
        // Replicas the transcripts make register here, not in the user's registry.
        .env("XDG_DATA_HOME", cache.path().join("data").to_string_lossy())
        .env("TZ", "UTC")
        .env("COLUMNS", "100")
        .case("../tests/cmd/*.md");
}
