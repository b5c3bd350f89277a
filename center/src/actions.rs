//! What the page's buttons do: resolve a conflict, restore a version,
//! and the history they choose from. Each opens the registered replica
//! with its key, and its stores, for that one request only, and drops
//! them before answering.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use ferry_store::Store;
use ferry_sync::Progress;
use ferry_sync::backup::now_ns;
use ferry_sync::replica::Replica;
use ferry_sync::resolve::Keep;

use crate::error::{Error, Result};
use crate::html::{count, csrf_field, esc, size, time_tag};
use crate::server::App;
use crate::view::{open_for_action, open_store};

/// The host a replica's snapshots record: its name, else this machine's.
fn host_of(app: &App, r: &Replica) -> Result<String> {
    Ok(r.name()?.unwrap_or_else(|| app.host.clone()))
}

/// Every store the replica syncs with, opened with its key: a choice is
/// recorded in all of them (as `ferry resolve` without LOC does).
fn all_stores(app: &App, r: &Replica) -> Result<Vec<(String, Store)>> {
    let locs: Vec<String> = r.remotes()?.into_iter().map(|m| m.location).collect();
    if locs.is_empty() {
        return Err(ferry_sync::Error::NoRemotes { root: r.root().to_path_buf() }.into());
    }
    locs.into_iter().map(|l| Ok((l.clone(), open_store(r, &l, &app.cache)?))).collect()
}

/// A relative path from a form: no absolute path, no `..`.
fn relative(p: &str) -> Result<PathBuf> {
    let path = PathBuf::from(p.trim_start_matches("./"));
    if p.is_empty() || path.is_absolute() || path.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(Error::BadRequest(format!("{p:?} is not a path inside the replica")));
    }
    Ok(path)
}

/// `POST /resolve`: settles the conflict at `path` keeping `keep`
/// (`mine`, `theirs`, `both` or a copy's path). Returns what was done.
pub(crate) fn resolve(app: &App, root: &Path, path: &str, keep: &str) -> Result<String> {
    let r = open_for_action(&app.registry, &app.keys, root)?;
    let rel = relative(path)?;
    let keep = match keep.parse::<Keep>().expect("infallible") {
        Keep::Copy(c) => Keep::Copy(relative(&c.to_string_lossy())?),
        k => k,
    };
    let stores = all_stores(app, &r)?;
    let refs: Vec<(String, &Store)> = stores.iter().map(|(l, s)| (l.clone(), s)).collect();
    let done = ferry_sync::resolve::resolve(&r, &rel, &keep, &refs, &host_of(app, &r)?, &Progress::default())?;
    for (l, _) in &stores {
        r.record_remote(l, now_ns())?;
    }
    let what = match (&done.kept, done.renamed.is_empty()) {
        (Some(k), _) => format!("{} now holds the version of {}", done.path.display(), k.display()),
        (None, false) => format!("kept every version of {}: {}", done.path.display(), {
            done.renamed.iter().map(|x| x.to.display().to_string()).collect::<Vec<_>>().join(", ")
        }),
        (None, true) => format!("kept {} as it is", done.path.display()),
    };
    Ok(format!(
        "Resolved {}: {what}; {} removed; recorded in {}. The other versions stay in the history.",
        done.path.display(),
        count(done.removed.len(), "copy"),
        count(done.snapshots.len(), "store")
    ))
}

/// `POST /restore`: brings version `vid` of `path` from `store` back into
/// the folder (the current file stays in the history). Returns what was done.
pub(crate) fn restore(app: &App, root: &Path, store: &str, path: &str, vid: &str) -> Result<String> {
    let r = open_for_action(&app.registry, &app.keys, root)?;
    let rel = relative(path)?;
    let stores = all_stores(app, &r)?;
    let from = stores
        .iter()
        .position(|(l, _)| l == store)
        .ok_or_else(|| Error::NotARemote { root: root.to_path_buf(), store: store.to_string() })?;
    let refs: Vec<(String, &Store)> = stores.iter().map(|(l, s)| (l.clone(), s)).collect();
    let done = ferry_sync::versions::restore_version(&r, &stores[from].1, &refs, &rel, vid, &host_of(app, &r)?, &Progress::default())?;
    if !done.written {
        return Ok(format!("{} already holds version {}", done.path.display(), done.version.id));
    }
    for (l, _) in &stores {
        r.record_remote(l, now_ns())?;
    }
    Ok(format!(
        "Restored version {} of {} ({}); the version it replaced stays in the history.",
        done.version.id,
        done.path.display(),
        size(done.version.size)
    ))
}

/// The body of a path's history page: its versions in one store, newest
/// first, each with "restore this version".
pub(crate) fn history_body(app: &App, root: &Path, path: &str, store: Option<&str>) -> Result<String> {
    let r = open_for_action(&app.registry, &app.keys, root)?;
    let rel = relative(path)?;
    let store = match store {
        Some(s) => s.to_string(),
        None => r
            .remotes()?
            .into_iter()
            .next()
            .map(|m| m.location)
            .ok_or_else(|| Error::Sync(ferry_sync::Error::NoRemotes { root: root.to_path_buf() }))?,
    };
    let st = open_store(&r, &store, &app.cache)?;
    let mut list = ferry_sync::versions::versions(&r, &st, &rel)?;
    drop((st, r));
    list.reverse();
    let now = now_ns();
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<section class="card history" data-root="{}" data-path="{}"><h2>History of <span class="path">{}</span></h2><p class="muted">In <span class="path">{}</span> · replica <span class="path">{}</span> · {} · newest first. Restoring writes that version at the path and records it in every store; the version there now stays in the history.</p>"#,
        esc(&root.to_string_lossy()),
        esc(path),
        esc(path),
        esc(&store),
        esc(&root.to_string_lossy()),
        esc(&count(list.len(), "version"))
    );
    if list.is_empty() {
        b.push_str(r#"<p class="muted">No snapshot in this store holds this path.</p>"#);
    } else {
        b.push_str(r#"<table><tr><th>Version</th><th>Kind</th><th>Size</th><th>Modified</th><th>First saved</th><th>By</th><th>Snapshots</th><th></th></tr>"#);
        for v in &list {
            let _ = write!(
                b,
                r#"<tr class="version" data-version="{id}" data-size="{size_bytes}" data-current="{current}"><td><code>{id}</code>{at}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>"#,
                esc(v.kind),
                size(v.size),
                time_tag(v.mtime_ns, now),
                time_tag(v.first_time_ns, now),
                esc(&v.host),
                v.snapshots,
                id = esc(&v.id),
                size_bytes = v.size,
                current = v.current,
                at = if v.path.as_path() != rel.as_path() {
                    format!(r#" <span class="muted">as {}</span>"#, esc(&v.path.to_string_lossy()))
                } else {
                    String::new()
                }
            );
            if v.current {
                b.push_str(r#"<span class="pill good">current</span>"#);
            } else {
                let _ = write!(
                    b,
                    r#"<form class="inline restore" method="post" action="/restore">{}<input type="hidden" name="root" value="{}"><input type="hidden" name="store" value="{}"><input type="hidden" name="path" value="{}"><input type="hidden" name="version" value="{}"><button type="submit" data-version="{}">Restore this version</button></form>"#,
                    csrf_field(&app.guard.csrf),
                    esc(&root.to_string_lossy()),
                    esc(&store),
                    esc(path),
                    esc(&v.id),
                    esc(&v.id)
                );
            }
            b.push_str("</td></tr>");
        }
        b.push_str("</table>");
    }
    b.push_str(r#"<p><a href="/">Back to the overview</a></p></section>"#);
    Ok(b)
}
