//! Include/exclude rules with gitignore semantics, shared by backup and
//! restore: `--exclude`, `--include`, `.ferryignore` files (backup), and
//! `--exclude-if-present`.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// Name of the per-folder ignore file.
pub const IGNORE_FILE: &str = ".ferryignore";

/// Filter settings.
#[derive(Clone, Debug, Default)]
pub struct FilterOptions {
    /// Paths to leave out (gitignore patterns, relative to the root).
    pub excludes: Vec<String>,
    /// When non-empty, only files matching one of these are taken.
    pub includes: Vec<String>,
    /// Leave out folders that contain a file with one of these names.
    pub exclude_if_present: Vec<String>,
    /// Do not cross into other filesystems (backup).
    pub one_file_system: bool,
    /// Read `.ferryignore` files (backup).
    pub ignore_files: bool,
}

fn build(root: &Path, patterns: &[String]) -> Result<Gitignore> {
    let mut b = GitignoreBuilder::new(root);
    for p in patterns {
        b.add_line(None, p).map_err(|e| Error::Pattern { pattern: p.clone(), reason: e.to_string() })?;
    }
    b.build().map_err(|e| Error::Pattern { pattern: patterns.join(" "), reason: e.to_string() })
}

/// Compiled global rules; per-folder `.ferryignore` rules are stacked by
/// the walker with [`Filter::with_ignore_file`].
#[derive(Clone, Debug)]
pub struct Filter {
    excludes: Gitignore,
    includes: Option<Gitignore>,
    /// `.ferryignore` matchers from the root down to the current folder.
    stack: Vec<Gitignore>,
    /// The options.
    pub opts: FilterOptions,
}

/// The decision for one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Skip it (and, for a folder, everything below).
    Exclude,
    /// Take it.
    Include,
    /// A folder not matched by `--include`: walk it, keep it only if something inside is taken.
    Descend,
}

impl Filter {
    /// Compiles the options. Paths given to [`Filter::decide`] are relative.
    pub fn new(opts: &FilterOptions) -> Result<Filter> {
        let root = Path::new("");
        let includes = if opts.includes.is_empty() { None } else { Some(build(root, &opts.includes)?) };
        Ok(Filter { excludes: build(root, &opts.excludes)?, includes, stack: Vec::new(), opts: opts.clone() })
    }

    /// A filter that takes everything.
    pub fn all() -> Filter {
        Filter::new(&FilterOptions::default()).expect("empty rules compile")
    }

    /// Decides for a relative path.
    pub fn decide(&self, rel: &Path, is_dir: bool) -> Decision {
        if self.excludes.matched_path_or_any_parents(rel, is_dir).is_ignore() {
            return Decision::Exclude;
        }
        for g in self.stack.iter().rev() {
            let m = g.matched(rel, is_dir);
            if m.is_ignore() {
                return Decision::Exclude;
            }
            if m.is_whitelist() {
                break;
            }
        }
        match &self.includes {
            None => Decision::Include,
            Some(inc) if inc.matched_path_or_any_parents(rel, is_dir).is_ignore() => Decision::Include,
            Some(_) if is_dir => Decision::Descend,
            Some(_) => Decision::Exclude,
        }
    }

    /// The filter for the inside of folder `rel` at `abs`: adds its
    /// `.ferryignore`, if reading them is on and it has one.
    pub fn with_ignore_file(&self, abs: &Path, rel: &Path) -> Result<Option<Filter>> {
        if !self.opts.ignore_files {
            return Ok(None);
        }
        let file = abs.join(IGNORE_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // A folder that cannot be opened is the problem, not its rules file.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && std::fs::read_dir(abs).is_err() => {
                return Err(Error::FolderUnreadable { path: abs.to_path_buf() });
            }
            Err(e) => return Err(Error::io("read", file, e)),
        };
        let g = compile_ignore_file(rel, &file, &text)?;
        let mut f = self.clone();
        f.stack.push(g);
        Ok(Some(f))
    }

    /// True when the folder holds a marker named by `--exclude-if-present`.
    pub fn has_marker(&self, abs: &Path) -> bool {
        self.opts.exclude_if_present.iter().any(|m| abs.join(m).symlink_metadata().is_ok())
    }
}

fn compile_ignore_file(rel: &Path, label: &Path, text: &str) -> Result<Gitignore> {
    let mut b = GitignoreBuilder::new(rel);
    for line in text.lines() {
        b.add_line(Some(label.to_path_buf()), line).map_err(|e| Error::Pattern { pattern: line.into(), reason: e.to_string() })?;
    }
    b.build().map_err(|e| Error::Pattern { pattern: label.display().to_string(), reason: e.to_string() })
}

/// The `.ferryignore` rules of a whole folder (a working folder or a
/// snapshot's tree). A replica does not sync what they exclude, so a
/// snapshot says nothing about those paths: their absence from it is not
/// a deletion (format-spec §16).
#[derive(Clone, Debug, Default)]
pub struct IgnoreRules {
    by_dir: std::collections::BTreeMap<PathBuf, Gitignore>,
}

impl IgnoreRules {
    /// Adds the text of the `.ferryignore` in folder `dir` (relative).
    pub fn add(&mut self, dir: &Path, text: &str) -> Result<()> {
        let g = compile_ignore_file(dir, &dir.join(IGNORE_FILE), text)?;
        self.by_dir.insert(dir.to_path_buf(), g);
        Ok(())
    }

    /// True when no rule was added.
    pub fn is_empty(&self) -> bool {
        self.by_dir.is_empty()
    }

    /// True when `rel`, or a folder above it, is excluded.
    pub fn excludes(&self, rel: &Path, is_dir: bool) -> bool {
        if self.by_dir.is_empty() {
            return false;
        }
        let mut prefix = PathBuf::new();
        let n = rel.components().count();
        for (i, c) in rel.components().enumerate() {
            prefix.push(c);
            if self.decide(&prefix, i + 1 < n || is_dir) {
                return true;
            }
        }
        false
    }

    /// One path, by the rules of the folders above it (deepest first).
    fn decide(&self, rel: &Path, is_dir: bool) -> bool {
        let mut dir = rel.parent();
        while let Some(d) = dir {
            if let Some(g) = self.by_dir.get(d) {
                let m = g.matched(rel, is_dir);
                if m.is_ignore() {
                    return true;
                }
                if m.is_whitelist() {
                    return false;
                }
            }
            dir = d.parent();
        }
        false
    }
}

/// Joins a relative path, for display.
pub fn display_rel(rel: &Path) -> String {
    let s = rel.to_string_lossy();
    if s.is_empty() { ".".into() } else { s.into_owned() }
}

/// A relative path from name bytes.
pub fn rel_join(parent: &Path, name: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    parent.join(std::ffi::OsStr::from_bytes(name))
}
