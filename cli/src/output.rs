//! Terminal output: sizes, progress bars (only on a terminal, never with
//! --json or -q), and JSON.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_sync::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::Global;

/// `ferry --version`: the release, and the version of every format it
/// reads and writes.
pub fn long_version() -> String {
    format!(
        "{}\nstore format {} (config {}, key files {}, snapshots {}): reads and writes exactly these\n\
         exported key files {}\nserve protocol {} (ssh://)",
        env!("CARGO_PKG_VERSION"),
        ferry_store::config::VERSION,
        ferry_store::config::VERSION,
        ferry_store::keyfile::VERSION,
        ferry_sync::snapshot::VERSION,
        ferry_store::exported::VERSION,
        ferry_store::protocol::VERSION,
    )
}

/// One changed path, in the words and symbols every command uses
/// (backup, push, pull, sync, restore, status, diff):
/// `+ new`, `M modified`, `- deleted`, `R renamed`, `U metadata`.
pub fn change(kind: ferry_sync::ChangeKind, path: &str, from: Option<&str>) -> String {
    match from {
        Some(f) => format!("{} {:<9} {f} -> {path}", kind.marker(), kind.as_str()),
        None => format!("{} {:<9} {path}", kind.marker(), kind.as_str()),
    }
}

/// Bytes as KiB/MiB/GiB.
pub fn size(n: u64) -> String {
    ferry_sync::progress::human_size(n)
}

/// Draws a progress bar from counters on a background thread.
pub struct Bar {
    bar: Option<ProgressBar>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bar {
    /// True when a bar would be drawn: stderr is a terminal, output is for people.
    pub fn wanted(g: &Global) -> bool {
        !(g.json || g.quiet) && std::io::stderr().is_terminal()
    }

    /// Starts a bar when [`Bar::wanted`].
    pub fn start(g: &Global, progress: Arc<Progress>, verb: &'static str) -> Bar {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !Self::wanted(g) {
            return Bar { bar: None, stop, thread: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(5));
        bar.set_style(
            ProgressStyle::with_template("{prefix} {msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(verb);
        let b2 = bar.clone();
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let (files, bytes, tf, tb) = progress.snapshot();
                b2.set_length(tb.max(bytes));
                b2.set_position(bytes);
                let files = if tf > 0 { format!("{files}/{tf} files") } else { format!("{files} files") };
                b2.set_message(match traffic_text() {
                    Some(t) => format!("{files}, {t}"),
                    None => files,
                });
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Bar { bar: Some(bar), stop, thread: Some(thread) }
    }

    /// Stops and clears the bar.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// What this run moved to and from a remote store (ssh, S3), as text;
/// `None` when nothing crossed a network.
fn traffic_text() -> Option<String> {
    let (sent, received) = ferry_store::backend::traffic().get();
    (sent + received > 0).then(|| format!("{} sent, {} received", size(sent), size(received)))
}

/// After a command that used a remote store: one line on stderr with the
/// bytes it moved (not with --json or -q).
pub fn print_traffic(g: &Global) {
    if g.json || g.quiet {
        return;
    }
    if let Some(t) = traffic_text() {
        eprintln!("network: {t}");
    }
}

/// Prints a value as JSON on stdout (the `--json` output; its shapes
/// are documented in `cli/json-schema/`).
///
/// Streamed to stdout: a report that lists every changed path can be
/// tens of MB as text, and building it as one string first was the
/// largest part of a big backup's peak memory under `--json`.
pub fn json<T: serde::Serialize + ?Sized>(v: &T) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, v).map_err(std::io::Error::from).and_then(|()| {
        out.write_all(b"\n")?;
        out.flush()
    });
    if let Err(e) = written {
        eprintln!("ferry: error: writing the JSON report to stdout: {e}");
        std::process::exit(1);
    }
}

/// Prints a value as one line of JSON on stdout (a stream of events: `watch --json`).
pub fn json_line<T: serde::Serialize + ?Sized>(v: &T) {
    println!("{}", serde_json::to_string(v).expect("JSON"));
}

/// A report with the `dry_run` flag the command was given.
#[derive(serde::Serialize)]
pub struct DryRun<'a, T: serde::Serialize> {
    /// `--dry-run` was given: nothing was written.
    pub dry_run: bool,
    /// The library's report, its fields inline.
    #[serde(flatten)]
    pub report: &'a T,
}

/// `n` and the noun, singular or plural: `1 snapshot`, `2 snapshots`,
/// `3 copies` (nouns ending in a consonant and `y` take `ies`).
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        return format!("1 {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{n} {stem}ies"),
        _ if noun.ends_with("sh") || noun.ends_with('s') => format!("{n} {noun}es"),
        _ => format!("{n} {noun}s"),
    }
}

/// The zone times are shown in: `TZ` when set, else the system's.
fn zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::system()
}

/// A timestamp in ns as RFC 3339 with the local offset
/// (`2026-12-03T07:15:00.123456789+01:00`), for JSON.
pub fn rfc3339(ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(ns as i128) {
        Ok(t) => t.to_zoned(zone()).strftime("%Y-%m-%dT%H:%M:%S%.f%:z").to_string(),
        Err(_) => String::new(),
    }
}

/// A timestamp in ns as local time for people (`2026-12-03 07:15:00`).
pub fn time(ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(ns as i128) {
        Ok(t) => t.to_zoned(zone()).strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => format!("@{ns}ns"),
    }
}

/// The local zone's abbreviation now (`UTC`, `CET`), for column headings.
pub fn zone_name() -> String {
    jiff::Timestamp::now().to_zoned(zone()).strftime("%Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_take_the_right_plural() {
        assert_eq!(count(1u64, "snapshot"), "1 snapshot");
        assert_eq!(count(0u64, "snapshot"), "0 snapshots");
        assert_eq!(count(2u64, "copy"), "2 copies");
        assert_eq!(count(2u64, "key"), "2 keys");
        assert_eq!(count(3u64, "pass"), "3 passes");
    }
}
