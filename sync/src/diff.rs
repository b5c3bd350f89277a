//! `diff`: what changed between two snapshots. Subtrees with equal IDs
//! are skipped without being read.

use std::path::{Path, PathBuf};

use ferry_store::Store;

use crate::error::{Error, Result};
use crate::filter::{display_rel, rel_join};
use crate::load_tree;
use crate::tree::{Content, Entry, MAX_DEPTH, Tree};

/// The kind of a change: the shared vocabulary ([`crate::ChangeKind`]); a diff
/// yields `new`, `deleted`, `modified` and `metadata`.
pub use crate::change::ChangeKind as Change;

/// Lists changes from `a` to `b`, in path order.
pub fn diff(store: &Store, a: &Tree, b: &Tree) -> Result<Vec<(Change, PathBuf)>> {
    let mut out = Vec::new();
    diff_trees(store, a, b, Path::new(""), 0, &mut out)?;
    Ok(out)
}

fn all_below(store: &Store, e: &Entry, p: &Path, change: Change, depth: usize, out: &mut Vec<(Change, PathBuf)>) -> Result<()> {
    out.push((change, p.to_path_buf()));
    if let Content::Dir(id) = &e.content {
        if depth > MAX_DEPTH {
            return Err(Error::TreeTooDeep { at: display_rel(p) });
        }
        for c in load_tree(store, id)?.entries {
            all_below(store, &c, &rel_join(p, &c.name), change, depth + 1, out)?;
        }
    }
    Ok(())
}

fn diff_trees(store: &Store, a: &Tree, b: &Tree, rel: &Path, depth: usize, out: &mut Vec<(Change, PathBuf)>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TreeTooDeep { at: display_rel(rel) });
    }
    let (mut i, mut j) = (0, 0);
    while i < a.entries.len() || j < b.entries.len() {
        let ea = a.entries.get(i);
        let eb = b.entries.get(j);
        match (ea, eb) {
            (Some(x), Some(y)) if x.name == y.name => {
                let p = rel_join(rel, &x.name);
                match (&x.content, &y.content) {
                    (Content::Dir(ia), Content::Dir(ib)) => {
                        if ia != ib {
                            diff_trees(store, &load_tree(store, ia)?, &load_tree(store, ib)?, &p, depth + 1, out)?;
                        }
                        if x.mode != y.mode || x.uid != y.uid || x.gid != y.gid {
                            out.push((Change::Metadata, p));
                        }
                    }
                    (ca, cb) if std::mem::discriminant(ca) != std::mem::discriminant(cb) => {
                        all_below(store, x, &p, Change::Deleted, depth + 1, out)?;
                        all_below(store, y, &p, Change::New, depth + 1, out)?;
                    }
                    (ca, cb) if ca != cb || x.size != y.size => out.push((Change::Modified, p)),
                    _ if x != y => out.push((Change::Metadata, p)),
                    _ => {}
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.name < y.name => {
                all_below(store, x, &rel_join(rel, &x.name), Change::Deleted, depth + 1, out)?;
                i += 1;
            }
            (Some(x), None) => {
                all_below(store, x, &rel_join(rel, &x.name), Change::Deleted, depth + 1, out)?;
                i += 1;
            }
            (_, Some(y)) => {
                all_below(store, y, &rel_join(rel, &y.name), Change::New, depth + 1, out)?;
                j += 1;
            }
            (None, None) => break,
        }
    }
    Ok(())
}
