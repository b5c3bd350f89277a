//! What the page's buttons do: resolve a conflict, restore a version,
//! and the history they choose from. Each opens the registered replica
//! with its key, and its stores, for that one request only.

use std::path::Path;

use crate::error::{Error, Result};
use crate::server::App;

/// `POST /resolve`: settles the conflict at `path` keeping `keep`
/// (`mine`, `theirs`, `both` or a copy's path). Returns what was done.
pub(crate) fn resolve(app: &App, root: &Path, path: &str, keep: &str) -> Result<String> {
    let _r = crate::view::open_for_action(&app.registry, &app.keys, root)?;
    let _ = (path, keep);
    Err(Error::BadRequest("resolving from the page needs ferry_sync::resolve (not in this build yet)".into()))
}

/// `POST /restore`: brings version `vid` of `path` from `store` back into
/// the folder (the current file is kept as a version). Returns what was done.
pub(crate) fn restore(app: &App, root: &Path, store: &str, path: &str, vid: &str) -> Result<String> {
    let _r = crate::view::open_for_action(&app.registry, &app.keys, root)?;
    let _ = (store, path, vid);
    Err(Error::BadRequest("restoring from the page needs ferry_sync::versions (not in this build yet)".into()))
}

/// The body of a path's history page.
pub(crate) fn history_body(app: &App, root: &Path, path: &str, store: Option<&str>) -> Result<String> {
    let _r = crate::view::open_for_action(&app.registry, &app.keys, root)?;
    let _ = (path, store);
    Err(Error::BadRequest("a path's history needs ferry_sync::versions (not in this build yet)".into()))
}
