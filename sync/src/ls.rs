//! `ls`: list a snapshot's tree below a path.

use std::path::Path;

use ferry_store::Store;

use crate::error::{Error, Result};
use crate::filter::{display_rel, rel_join};
use crate::load_tree;
use crate::tree::{Content, Entry, MAX_DEPTH, Tree};

/// Finds the tree entry at `path` ("" or "/" for the root).
pub fn find(store: &Store, root: &Tree, path: &str) -> Result<Option<Entry>> {
    let mut tree = root.clone();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let mut found = None;
    for (i, part) in parts.iter().enumerate() {
        let e = tree.entries.iter().find(|e| e.name == part.as_bytes()).cloned().ok_or_else(|| Error::NoSuchPath(path.into()))?;
        if i + 1 < parts.len() {
            match &e.content {
                Content::Dir(id) => tree = load_tree(store, id)?,
                _ => return Err(Error::NoSuchPath(path.into())),
            }
        }
        found = Some(e);
    }
    Ok(found)
}

/// Calls `f(path, entry)` for every entry below `path`, depth first, in name order.
pub fn walk(store: &Store, root: &Tree, path: &str, f: &mut dyn FnMut(&Path, &Entry)) -> Result<()> {
    let start = Path::new(path.trim_matches('/'));
    match find(store, root, path)? {
        None => walk_tree(store, root, Path::new(""), 0, f),
        Some(e) => {
            f(start, &e);
            if let Content::Dir(id) = &e.content { walk_tree(store, &load_tree(store, id)?, start, 1, f) } else { Ok(()) }
        }
    }
}

fn walk_tree(store: &Store, tree: &Tree, rel: &Path, depth: usize, f: &mut dyn FnMut(&Path, &Entry)) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TreeTooDeep { at: display_rel(rel) });
    }
    for e in &tree.entries {
        let p = rel_join(rel, &e.name);
        f(&p, e);
        if let Content::Dir(id) = &e.content {
            walk_tree(store, &load_tree(store, id)?, &p, depth + 1, f)?;
        }
    }
    Ok(())
}
