//! The `ferry` command: parses arguments, calls `ferry-store` and
//! `ferry-sync`, prints. No logic of its own beyond wording.

mod args;
mod commands;
mod error;
mod interrupt;
mod output;
mod passphrase;

fn main() {
    one_malloc_arena();
    // `ferry ... | head` closes stdout early: end quietly, as other tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    // `--version` names the format versions too (clap keeps &'static str;
    // this string lives as long as the process anyway).
    let long_version: &'static str = Box::leak(output::long_version().into_boxed_str());
    let matches = <args::Cli as clap::CommandFactory>::command().long_version(long_version).get_matches();
    let cli = <args::Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Diagnostics on stderr, only when asked: FERRY_LOG=ferry_sync=debug.
    // A mount has no other way to say why a read failed (EIO): its log
    // lines show by default.
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").ok().or_else(|| {
        matches!(cli.command, args::Command::Mount(_))
            .then(|| tracing_subscriber::EnvFilter::new("ferry_mount=info,ferry_store=warn,ferry_store::backend::ssh=info"))
    });
    if let Some(filter) = filter {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .without_time()
            .init();
    }
    // A mount handles its own signals (it unmounts); everything else ends
    // with 130 and released locks (`interrupt`).
    if !matches!(cli.command, args::Command::Mount(_)) {
        interrupt::install();
    }
    let code = match commands::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            error::report(&e, cli.global.json, &error::Context::of(&cli));
            error::exit_code(&e)
        }
    };
    output::print_traffic(&cli.global);
    std::process::exit(code);
}

/// glibc gives each thread that finds the allocator busy an arena of its
/// own (up to 8 per core) and keeps what was freed in each: the block
/// buffers of restore's and pull's writer and fetch threads then stay
/// resident once per arena. Capped at 8 per core, restoring 151 MB in
/// 4000 files peaked at 43 MB, against 27 MB with one arena (issue 15;
/// ARCHITECTURE.md, "Memory"). Two arenas: with one, every thread queues
/// on its lock (a first backup of 200,000 small files spent 6% of its CPU
/// in futex calls, most from that lock); with two it took 5.07-5.28 s
/// instead of 5.79-5.84 s, for 0.5-2.6 MiB more peak RSS in
/// `benches/compare/rss_growth.sh`.
///
/// glibc also raises its mmap threshold each time a large buffer is freed
/// (up to 32 MiB), after which block and pack buffers come from the heap,
/// whose freed holes stay resident. A fixed threshold (its starting value,
/// 128 KiB) keeps them in mappings returned on free: a first backup of
/// 200,000 small files peaked at 32.1-32.3 MiB instead of 37.0-38.3 MiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn one_malloc_arena() {
    // SAFETY: mallopt sets an allocator parameter and touches no memory
    // of ours; it runs first in main, before any thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}
