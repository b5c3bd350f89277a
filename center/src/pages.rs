//! The pages, rendered on the server: the overview (every replica), the
//! live fragment the overview polls, a path's history, errors.

use std::fmt::Write;
use std::path::Path;

use ferry_sync::backup::now_ns;
use ferry_sync::scan::LocalChange;
use ferry_sync::watchstate::{WatchEvent, WatchState};

use crate::error::{Error, Result};
use crate::html::{Tone, count, csrf_field, dot, esc, page, pill, size, time_tag, url_enc};
use crate::server::App;
use crate::view::{Changes, ConflictView, Opened, Reach, ReplicaView, StoreView, gather};

/// How many pending changes a card lists before "and N more".
const CHANGES_SHOWN: usize = 12;

fn machine() -> String {
    hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The replica's overall state, as a colour and a word.
fn replica_tone(v: &ReplicaView) -> (Tone, String) {
    match &v.opened {
        Opened::Missing => return (Tone::Bad, "missing".into()),
        Opened::Failed(_) => return (Tone::Bad, "unreadable".into()),
        Opened::Busy => return (Tone::Warn, "busy: syncing".into()),
        Opened::Ready => {}
    }
    if !v.conflicts.is_empty() {
        return (Tone::Warn, count(v.conflicts.len(), "conflict"));
    }
    if v.stores.iter().any(|s| !matches!(s.reach, Reach::Yes(_))) {
        return (Tone::Bad, "store unreachable".into());
    }
    match &v.changes {
        Changes::Listed(c) if !c.is_empty() => (Tone::Warn, format!("{} not synced", count(c.len(), "change"))),
        _ if v.stores.is_empty() => (Tone::Quiet, "no store yet".into()),
        _ if v.stores.iter().all(|s| s.last_sync_ns.is_none()) => (Tone::Quiet, "never synced".into()),
        Changes::Listed(_) => (Tone::Good, "in sync".into()),
        _ => (Tone::Quiet, "state unknown".into()),
    }
}

/// The overview: a summary, the live panel, one card per replica, the
/// block caches.
pub(crate) fn overview(app: &App, done: Option<&str>) -> Result<String> {
    let views = gather(&app.registry, &app.keys)?;
    let caches = crate::view::caches(app.cache_dir.as_deref());
    let now = now_ns();
    let mut b = String::new();
    if let Some(msg) = done {
        let _ = write!(b, r#"<div class="notice" id="notice">{}</div>"#, esc(msg));
    }
    if !app.keys.available() {
        b.push_str(
            r#"<div class="error">Started without a key (no FERRY_PASSWORD, FERRY_PASSWORD_FILE, FERRY_PASSWORD_COMMAND or key file): state is shown, but resolving, restoring and history need one.</div>"#,
        );
    }
    // Summary pills.
    let conflicts: usize = views.iter().map(|v| v.conflicts.len()).sum();
    let unreachable = views.iter().flat_map(|v| &v.stores).filter(|s| !matches!(s.reach, Reach::Yes(_))).count();
    let missing = views.iter().filter(|v| matches!(v.opened, Opened::Missing)).count();
    b.push_str(r#"<div class="summary">"#);
    b.push_str(&pill(Tone::Quiet, &count(views.len(), "replica")));
    if conflicts > 0 {
        b.push_str(&pill(Tone::Warn, &count(conflicts, "conflict")));
    }
    if unreachable > 0 {
        b.push_str(&pill(Tone::Bad, &format!("{} unreachable", count(unreachable, "store"))));
    }
    if missing > 0 {
        b.push_str(&pill(Tone::Bad, &format!("{} missing", count(missing, "replica"))));
    }
    if conflicts == 0 && unreachable == 0 && missing == 0 && !views.is_empty() {
        b.push_str(&pill(Tone::Good, "all reachable, no conflicts"));
    }
    b.push_str("</div>");
    // Live panel (refreshed by polling /live).
    let _ = write!(b, r#"<section class="card live"><h2>Live</h2><div id="live">{}</div></section>"#, live(app)?);
    if views.is_empty() {
        let _ = write!(
            b,
            r#"<section class="card"><h2>No replicas yet</h2><p class="muted">Replicas appear here once <code>ferry init</code>, <code>ferry clone</code> or a sync registers them (in <code>{}</code>).</p></section>"#,
            esc(&app.registry.path().to_string_lossy())
        );
    }
    for (i, v) in views.iter().enumerate() {
        replica_card(&mut b, app, i, v, now);
    }
    caches_card(&mut b, &caches);
    let sub = format!("{} · {}", esc(&machine()), esc(&count(views.len(), "replica")));
    Ok(page("ferry Sync Center", &sub, &b, &app.guard.nonce, true))
}

fn replica_card(b: &mut String, app: &App, i: usize, v: &ReplicaView, now: i64) {
    let (tone, word) = replica_tone(v);
    let root = v.root.to_string_lossy();
    let title = v.name.clone().unwrap_or_else(|| v.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let _ = write!(
        b,
        r#"<section class="card replica" id="replica-{i}" data-root="{}"><h2>{} {} {}</h2><div class="path muted">{}</div>"#,
        esc(&root),
        dot(tone, &word),
        esc(&title),
        pill(tone, &word),
        esc(&root)
    );
    match &v.opened {
        Opened::Missing => {
            b.push_str(r#"<p class="muted">The folder is gone or is no longer a replica (an unplugged disk shows here until it is back). Nothing was changed.</p></section>"#);
            return;
        }
        Opened::Failed(e) => {
            let _ = write!(b, r#"<p class="error">{}</p>"#, esc(e));
        }
        Opened::Busy => b.push_str(r#"<p class="muted">Another ferry process (a sync) holds this replica right now; reload in a moment for its changes and conflicts.</p>"#),
        Opened::Ready => {}
    }
    // Watch line.
    match &v.watch {
        Some(w) => {
            let what = match &w.syncing {
                Some(s) => format!("syncing with {}", esc(s)),
                None => "idle".into(),
            };
            let _ = write!(b, r#"<p class="watch">{} watched by <code>ferry watch</code> (pid {}) since {} · {}</p>"#, dot(Tone::Good, "watching"), w.pid, time_tag(w.started_ns, now), what);
        }
        None => b.push_str(r#"<p class="watch muted">Not watched: changes sync when <code>ferry sync</code> runs (or start <code>ferry watch</code> here).</p>"#),
    }
    stores_table(b, &v.stores, now);
    changes_list(b, &v.changes);
    conflicts_list(b, app, v, now);
    // A path's history.
    if !v.stores.is_empty() {
        let _ = write!(
            b,
            r#"<h3>History of a path</h3><form class="history" method="get" action="/history"><input type="hidden" name="root" value="{}"><input type="text" name="path" placeholder="path/in/the/folder" size="36" required> <select name="store">"#,
            esc(&root)
        );
        for s in &v.stores {
            let _ = write!(b, r#"<option value="{0}">{0}</option>"#, esc(&s.location));
        }
        b.push_str(r#"</select> <button type="submit">Show versions</button></form>"#);
    }
    b.push_str("</section>");
}

fn stores_table(b: &mut String, stores: &[StoreView], now: i64) {
    b.push_str("<h3>Stores</h3>");
    if stores.is_empty() {
        b.push_str(r#"<p class="muted">None yet: <code>ferry push LOC</code> or <code>ferry sync LOC</code> records one.</p>"#);
        return;
    }
    b.push_str(r#"<table class="stores"><tr><th></th><th>Location</th><th>Last sync</th><th>Reachable</th></tr>"#);
    for s in stores {
        let (tone, reach) = match &s.reach {
            Reach::Yes(n) => (Tone::Good, format!("yes · {}", count(*n, "snapshot"))),
            Reach::No(e) => (Tone::Bad, format!("no · {e}")),
            Reach::Slow => (Tone::Bad, "no answer within 3 s".to_string()),
        };
        let last = match s.last_sync_ns {
            Some(t) if t > 0 => time_tag(t, now),
            _ => r#"<span class="muted">never</span>"#.to_string(),
        };
        let _ = write!(
            b,
            r#"<tr class="store" data-location="{0}"><td>{1}</td><td class="path">{0}</td><td>{2}</td><td>{3}</td></tr>"#,
            esc(&s.location),
            dot(tone, &reach),
            last,
            esc(&reach)
        );
    }
    b.push_str("</table>");
}

fn changes_list(b: &mut String, changes: &Changes) {
    b.push_str("<h3>Local changes not synced</h3>");
    match changes {
        Changes::Unknown => b.push_str(r#"<p class="muted">Not read.</p>"#),
        Changes::Failed(e) => {
            let _ = write!(b, r#"<p class="error">{}</p>"#, esc(e));
        }
        Changes::NeedsKey(p) => {
            let _ = write!(
                b,
                r#"<p class="muted">{} must be hashed to tell an edit from a touch, and the center has no key.</p>"#,
                esc(&p.to_string_lossy())
            );
        }
        Changes::Listed(c) if c.is_empty() => b.push_str(r#"<p class="muted">None.</p>"#),
        Changes::Listed(c) => {
            b.push_str(r#"<ul class="changes">"#);
            for (k, p) in c.iter().take(CHANGES_SHOWN) {
                let (class, letter, extra) = match k {
                    LocalChange::New => ("new", "+", String::new()),
                    LocalChange::Modified => ("mod", "M", String::new()),
                    LocalChange::Deleted => ("del", "-", String::new()),
                    LocalChange::Renamed(from) => {
                        ("ren", "R", format!(" <span class=\"muted\">from {}</span>", esc(&from.to_string_lossy())))
                    }
                    LocalChange::NotPulled => ("del", "!", " <span class=\"muted\">(not pulled yet)</span>".to_string()),
                };
                let _ = write!(
                    b,
                    r#"<li><span class="k {class}">{letter}</span><span class="path">{}</span>{extra}</li>"#,
                    esc(&p.to_string_lossy())
                );
            }
            if c.len() > CHANGES_SHOWN {
                let _ = write!(b, r#"<li class="muted">and {} more</li>"#, c.len() - CHANGES_SHOWN);
            }
            b.push_str("</ul>");
        }
    }
}

fn resolve_button(b: &mut String, app: &App, root: &str, path: &str, keep: &str, label: &str, primary: bool) {
    let _ = write!(
        b,
        r#"<form class="inline resolve" method="post" action="/resolve">{}<input type="hidden" name="root" value="{}"><input type="hidden" name="path" value="{}"><input type="hidden" name="keep" value="{}"><button type="submit" class="{}" data-keep="{}">{}</button></form> "#,
        csrf_field(&app.guard.csrf),
        esc(root),
        esc(path),
        esc(keep),
        if primary { "primary" } else { "" },
        esc(keep),
        esc(label)
    );
}

fn conflicts_list(b: &mut String, app: &App, v: &ReplicaView, now: i64) {
    if v.conflicts.is_empty() {
        return;
    }
    let root = v.root.to_string_lossy();
    b.push_str("<h3>Conflicts</h3>");
    for c in &v.conflicts {
        conflict_box(b, app, &root, c, now);
    }
}

fn conflict_box(b: &mut String, app: &App, root: &str, c: &ConflictView, now: i64) {
    let path = c.path.to_string_lossy();
    let _ = write!(
        b,
        r#"<div class="conflict" data-path="{0}"><div><strong class="path">{0}</strong> <span class="muted">changed on more than one replica; every version is kept until you choose</span></div><table><tr><th>Version</th><th>From</th><th>Modified</th><th>Size</th><th></th></tr>"#,
        esc(&path)
    );
    if let Some(cur) = &c.current {
        let _ = write!(
            b,
            r#"<tr><td class="path">{}</td><td><span class="muted">at the path here</span></td><td>{}</td><td>{}</td><td>"#,
            esc(&cur.path.to_string_lossy()),
            time_tag(cur.mtime_ns, now),
            size(cur.size)
        );
        resolve_button(b, app, root, &path, "mine", "Keep this one", true);
        b.push_str("</td></tr>");
    }
    for copy in &c.copies {
        let p = copy.path.to_string_lossy();
        let _ = write!(
            b,
            r#"<tr><td class="path">{}</td><td>{}</td><td>{}</td><td>{}</td><td>"#,
            esc(&p),
            esc(copy.replica.as_deref().unwrap_or("another replica")),
            time_tag(copy.mtime_ns, now),
            size(copy.size)
        );
        resolve_button(b, app, root, &path, &p, "Keep this one", false);
        b.push_str("</td></tr>");
    }
    b.push_str("</table><div>");
    resolve_button(b, app, root, &path, "both", "Keep both (as separate files)", false);
    b.push_str("</div></div>");
}

fn caches_card(b: &mut String, caches: &[ferry_mount::status::StoreCache]) {
    let shown: Vec<_> = caches.iter().filter(|c| !c.pins.is_empty() || !c.mounts.is_empty()).collect();
    if shown.is_empty() {
        if let Some(total) = caches.iter().map(|c| c.usage.bytes).reduce(|a, b| a + b) {
            let _ = write!(
                b,
                r#"<section class="card"><h2>Block cache</h2><p class="muted">{} cached for {}; nothing pinned, no mount running.</p></section>"#,
                size(total),
                count(caches.len(), "store")
            );
        }
        return;
    }
    b.push_str(r#"<section class="card caches"><h2>Mounts, pins and the block cache</h2>"#);
    for c in shown {
        let u = &c.usage;
        let tone = if u.bytes > u.quota { Tone::Warn } else { Tone::Good };
        let _ = write!(
            b,
            r#"<h3>Store {}</h3><p>{} {} used of {} · {} pinned in {}</p>"#,
            esc(c.store_id.get(..16).unwrap_or(&c.store_id)),
            dot(tone, "cache"),
            size(u.bytes),
            size(u.quota),
            size(u.pinned_bytes),
            count(u.pinned_blocks as usize, "block")
        );
        if !c.mounts.is_empty() || !c.pins.is_empty() {
            b.push_str("<ul>");
            for m in &c.mounts {
                let _ = write!(
                    b,
                    r#"<li>mounted at <span class="path">{}</span> (pid {}): {} read from the store, {} cache hits</li>"#,
                    esc(m["mountpoint"].as_str().unwrap_or("?")),
                    esc(&m["pid"].to_string()),
                    size(m["stats"]["store_read_bytes"].as_u64().unwrap_or(0)),
                    m["stats"]["cache_hits"].as_u64().unwrap_or(0)
                );
            }
            for p in &c.pins {
                let _ = write!(
                    b,
                    r#"<li>pinned <span class="path">{}</span>: {} files, {} (kept while the store is away)</li>"#,
                    esc(p["path"].as_str().unwrap_or("?")),
                    p["files"].as_u64().unwrap_or(0),
                    size(p["bytes"].as_u64().unwrap_or(0))
                );
            }
            b.push_str("</ul>");
        }
    }
    b.push_str("</section>");
}

/// The live panel: each running watch (from `.ferry/watch.json` only: no
/// replica is opened, so polling it costs a few small reads).
pub(crate) fn live(app: &App) -> Result<String> {
    let now = now_ns();
    let mut b = String::new();
    let mut any = false;
    for e in app.registry.list()? {
        let Some(w) = WatchState::read(&e.root) else { continue };
        any = true;
        watch_block(&mut b, &e.root, &w, now);
    }
    if !any {
        b.push_str(r#"<p class="muted">No <code>ferry watch</code> is running. Start one in a replica to keep it in step; its syncs show here as they happen.</p>"#);
    }
    let _ = write!(b, r#"<p class="muted" data-updated="{now}">Updated {}.</p>"#, time_tag(now, now));
    Ok(b)
}

fn watch_block(b: &mut String, root: &Path, w: &WatchState, now: i64) {
    let state = match &w.syncing {
        Some(s) => format!("{} syncing with <span class=\"path\">{}</span>", dot(Tone::Warn, "syncing"), esc(s)),
        None => format!("{} idle", dot(Tone::Good, "idle")),
    };
    let _ =
        write!(b, r#"<div class="watching" data-root="{0}"><strong class="path">{0}</strong> · {state}<ul>"#, esc(&root.to_string_lossy()));
    for s in &w.stores {
        let (tone, word) = match s.reachable {
            Some(true) => (Tone::Good, "reachable"),
            Some(false) => (Tone::Bad, "unreachable"),
            None => (Tone::Quiet, "not probed yet"),
        };
        let last = s.last_sync_ns.map(|t| format!(" · last sync {}", time_tag(t, now))).unwrap_or_default();
        let err = s.last_error.as_deref().map(|e| format!(" · <span class=\"muted\">{}</span>", esc(e))).unwrap_or_default();
        let _ = write!(b, r#"<li>{} <span class="path">{}</span> {word}{last}{err}</li>"#, dot(tone, word), esc(&s.location));
    }
    b.push_str("</ul>");
    let recent: Vec<&WatchEvent> = w.recent.iter().rev().take(5).collect();
    if !recent.is_empty() {
        b.push_str(r#"<ul class="events">"#);
        for e in recent {
            let _ = write!(b, r#"<li class="ev">{} · {}</li>"#, time_tag(e.time_ns, now), esc(&event_text(e)));
        }
        b.push_str("</ul>");
    }
    b.push_str("</div>");
}

fn event_text(e: &WatchEvent) -> String {
    let store = e.store.as_deref().unwrap_or("");
    match e.kind.as_str() {
        "started" => "watch started".into(),
        "sync" => {
            let mut parts = Vec::new();
            if e.pushed > 0 {
                parts.push(format!("sent {}", count(e.pushed, "change")));
            }
            if e.pulled > 0 {
                parts.push(format!("brought in {}", count(e.pulled, "change")));
            }
            if !e.conflicts.is_empty() {
                parts.push(format!("{}: {}", count(e.conflicts.len(), "conflict"), e.conflicts.join(", ")));
            }
            if parts.is_empty() {
                parts.push("in step".into());
            }
            format!("synced with {store}: {}", parts.join(", "))
        }
        "unreachable" => format!("{store} unreachable: {}", e.error.as_deref().unwrap_or("")),
        "reachable" => format!("{store} is back"),
        "busy" => format!("{store}: replica busy, trying again"),
        "failed" => format!("sync with {store} failed: {}", e.error.as_deref().unwrap_or("")),
        "not_watching" => format!("no inotify watch ({}): checking at each interval", e.error.as_deref().unwrap_or("")),
        other => other.to_string(),
    }
}

/// A path's versions in one store, each with "restore this version".
pub(crate) fn history(app: &App, root: &Path, path: &str, store: Option<&str>) -> Result<String> {
    let body = crate::actions::history_body(app, root, path, store)?;
    let sub = format!("history of {}", esc(path));
    Ok(page(&format!("{path} — history"), &sub, &body, &app.guard.nonce, false))
}

/// An error page (with what was left unchanged: the libraries say).
pub(crate) fn error(e: &Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let _ = write!(msg, ": {s}");
        src = s.source();
    }
    let body = format!(r#"<div class="error">{}</div><p><a href="/">Back to the overview</a></p>"#, esc(&msg));
    page("ferry Sync Center: error", "error", &body, "", false)
}

/// A link to a path's history page.
#[allow(dead_code)]
pub(crate) fn history_link(root: &Path, path: &str, store: &str) -> String {
    format!("/history?root={}&path={}&store={}", url_enc(&root.to_string_lossy()), url_enc(path), url_enc(store))
}
