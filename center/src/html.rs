//! HTML building blocks: escaping, relative times, sizes, the page shell
//! with its inline style and its one small script (the live view).

use std::fmt::Write;

/// `s` safe inside HTML text and double-quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one query-string value (RFC 3986 unreserved kept, the rest %XX).
pub(crate) fn url_enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Bytes in binary units, one decimal (`1.5 MiB`), as the CLI prints them.
pub(crate) fn size(n: u64) -> String {
    ferry_sync::progress::human_size(n)
}

/// How long ago `ns` (since the epoch) was, relative to `now_ns`: "just
/// now", "3 minutes ago", "yesterday", "5 days ago", else the date.
pub(crate) fn ago(ns: i64, now_ns: i64) -> String {
    let secs = (now_ns - ns) / 1_000_000_000;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match secs {
        s if s < -60 => format!("in the future ({})", local_time(ns)),
        s if s < 10 => "just now".into(),
        s if s < 60 => plural(s, "second"),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 86_400 => plural(s / 3600, "hour"),
        s if s < 2 * 86_400 => "yesterday".into(),
        s if s < 30 * 86_400 => plural(s / 86_400, "day"),
        _ => local_time(ns).get(..10).unwrap_or_default().to_string(),
    }
}

/// A timestamp as local time (`2026-12-03 07:15:00 CET`), for tooltips.
pub(crate) fn local_time(ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(ns as i128) {
        Ok(t) => t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        Err(_) => format!("@{ns}ns"),
    }
}

/// `<time>` with the relative time shown and the exact one on hover.
pub(crate) fn time_tag(ns: i64, now_ns: i64) -> String {
    format!(r#"<time title="{}">{}</time>"#, esc(&local_time(ns)), esc(&ago(ns, now_ns)))
}

/// `n unit` with the right plural.
pub(crate) fn count(n: usize, unit: &str) -> String {
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A status colour: a dot and a pill use these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tone {
    /// In step, reachable.
    Good,
    /// Needs a look: local changes, conflicts, busy.
    Warn,
    /// Missing, unreachable, failed.
    Bad,
    /// Not known (never synced, not probed).
    Quiet,
}

impl Tone {
    pub(crate) fn class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
            Tone::Quiet => "quiet",
        }
    }
}

/// A coloured status pill.
pub(crate) fn pill(tone: Tone, text: &str) -> String {
    format!(r#"<span class="pill {}">{}</span>"#, tone.class(), esc(text))
}

/// A coloured dot with a text alternative.
pub(crate) fn dot(tone: Tone, label: &str) -> String {
    format!(r#"<span class="dot {}" role="img" aria-label="{}" title="{}"></span>"#, tone.class(), esc(label), esc(label))
}

/// A hidden CSRF field for a form.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(csrf))
}

const STYLE: &str = r#"
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2430;--muted:#667085;--line:#e4e7ec;--good:#12a150;--warn:#d98a00;--bad:#d92d20;--quiet:#98a2b3;--accent:#2f6fdb}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--card:#1a1f26;--ink:#e6e9ee;--muted:#98a2b3;--line:#2a313b;--accent:#6ea2ff}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,sans-serif}
header{display:flex;align-items:baseline;gap:1rem;padding:1rem 2rem;border-bottom:1px solid var(--line);background:var(--card)}
header h1{font-size:1.25rem;margin:0}header .sub{color:var(--muted)}header nav{margin-left:auto}
main{max-width:72rem;margin:0 auto;padding:1.25rem 2rem 3rem}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.summary{display:flex;gap:.75rem;flex-wrap:wrap;margin-bottom:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1rem 1.25rem;margin-bottom:1rem;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.card h2{font-size:1.1rem;margin:0;display:flex;align-items:center;gap:.6rem}
.card h3{font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin:1rem 0 .4rem}
.path,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
.muted{color:var(--muted)}
.pill{display:inline-block;padding:.1rem .55rem;border-radius:999px;font-size:.8rem;font-weight:600;color:#fff}
.pill.good{background:var(--good)}.pill.warn{background:var(--warn)}.pill.bad{background:var(--bad)}.pill.quiet{background:var(--quiet)}
.dot{display:inline-block;width:.65rem;height:.65rem;border-radius:50%;vertical-align:middle}
.dot.good{background:var(--good)}.dot.warn{background:var(--warn)}.dot.bad{background:var(--bad)}.dot.quiet{background:var(--quiet)}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.35rem .5rem;border-top:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.8rem;border-top:none}
.changes{list-style:none;margin:0;padding:0}.changes li{padding:.1rem 0}
.k{display:inline-block;width:1.4rem;font-weight:700;font-family:ui-monospace,monospace}
.k.new{color:var(--good)}.k.mod{color:var(--warn)}.k.del{color:var(--bad)}.k.ren{color:var(--accent)}
.conflict{border:1px solid var(--line);border-left:4px solid var(--warn);border-radius:8px;padding:.6rem .8rem;margin:.5rem 0}
form.inline{display:inline}
button{font:inherit;font-size:.85rem;padding:.25rem .7rem;border-radius:6px;border:1px solid var(--line);background:var(--card);color:var(--ink);cursor:pointer}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button:hover{filter:brightness(.95)}
input[type=text],select{font:inherit;font-size:.88rem;padding:.25rem .45rem;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--ink)}
.notice{background:#e8f5ee;border:1px solid var(--good);color:#0b5e31;padding:.6rem 1rem;border-radius:8px;margin-bottom:1rem}
.error{background:#fdecea;border:1px solid var(--bad);color:#8a1c13;padding:.6rem 1rem;border-radius:8px;margin-bottom:1rem}
.live{font-size:.9rem}.live .ev{color:var(--muted)}
footer{color:var(--muted);font-size:.8rem;text-align:center;padding:1rem}
"#;

/// The whole page: `body` inside the shell. `live` adds the script that
/// refreshes `#live` every two seconds from `/live` (polling: one small
/// request that reads only `.ferry/watch.json` files).
pub(crate) fn page(title: &str, header_sub: &str, body: &str, nonce: &str, live: bool) -> String {
    let script = if live {
        format!(
            r#"<script nonce="{}">setInterval(()=>fetch("/live").then(r=>r.ok?r.text():null).then(t=>{{if(t!==null)document.getElementById("live").innerHTML=t}}).catch(()=>{{}}),2000)</script>"#,
            esc(nonce)
        )
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{STYLE}</style></head>
<body><header><h1>ferry Sync Center</h1><span class="sub">{header_sub}</span><nav><a href="/">Overview</a> · <a href="/">Refresh</a></nav></header>
<main>{body}</main>
<footer>ferry {version} · this page listens on loopback only and needs the token <code>ferry center</code> printed</footer>
{script}</body></html>"#,
        title = esc(title),
        version = env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formats() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url_enc("/a b/ü?&"), "/a%20b/%C3%BC%3F%26");
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 << 30), "5.0 GiB");
        let s = 1_000_000_000i64;
        let now = 1_800_000_000 * s;
        assert_eq!(ago(now - 3 * s, now), "just now");
        assert_eq!(ago(now - 42 * s, now), "42 seconds ago");
        assert_eq!(ago(now - 60 * s, now), "1 minute ago");
        assert_eq!(ago(now - 180 * s, now), "3 minutes ago");
        assert_eq!(ago(now - 7200 * s, now), "2 hours ago");
        assert_eq!(ago(now - 90_000 * s, now), "yesterday");
        assert_eq!(ago(now - 5 * 86_400 * s, now), "5 days ago");
        assert_eq!(ago(now - 400 * 86_400 * s, now).len(), 10, "a date");
        assert_eq!(count(1, "conflict"), "1 conflict");
        assert_eq!(count(2, "conflict"), "2 conflicts");
    }
}
