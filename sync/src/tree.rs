//! Trees (format-spec §14.1): one metadata block per directory, entries
//! sorted by name. An unchanged subtree encodes to the same bytes and so
//! keeps its block ID.
//!
//! ```text
//! tree  = count u32 || count × entry          (names strictly increasing, bytewise)
//! entry = name blob | type u8 | mode u32 | mtime_ns i64 | size u64
//!         | uid u32 | gid u32 | link_group u64 | content
//! content: file    = block_count u32 || block_count × block id (32)
//!          dir     = subtree block id (32)
//!          symlink = target blob
//! blob  = len u32 || bytes
//! ```
//! Names are validated on decode: never empty, never `.` or `..`, no `/`
//! and no NUL, at most [`MAX_NAME`] bytes. A reader can therefore join a
//! name to a folder path without escaping it.

use ferry_store::wire::{Reader, Writer};
use ferry_store::{BlockId, Error as StoreError};

/// Longest name accepted.
pub const MAX_NAME: usize = 1024;
/// Longest symlink target accepted.
pub const MAX_TARGET: usize = 4096;
/// Deepest tree nesting followed by readers.
pub const MAX_DEPTH: usize = 256;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryType {
    /// Regular file.
    File = 1,
    /// Directory.
    Dir = 2,
    /// Symbolic link.
    Symlink = 3,
}

/// An entry's content.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Content {
    /// Ordered data blocks.
    File(Vec<BlockId>),
    /// The subtree's block.
    Dir(BlockId),
    /// Link target bytes.
    Symlink(Vec<u8>),
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// File name bytes.
    pub name: Vec<u8>,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// File size (0 for folders and links).
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Non-zero for files with several hard links: equal values in one
    /// snapshot are the same inode.
    pub link_group: u64,
    /// What it holds.
    pub content: Content,
}

impl Entry {
    /// The entry type.
    pub fn entry_type(&self) -> EntryType {
        match self.content {
            Content::File(_) => EntryType::File,
            Content::Dir(_) => EntryType::Dir,
            Content::Symlink(_) => EntryType::Symlink,
        }
    }
    /// The name as text (lossy).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// Checks a name is safe to join to a folder path.
pub fn validate_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name == b"." || name == b".." {
        return Err(format!("name {:?} is not allowed", String::from_utf8_lossy(name)));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(format!("name {:?} contains '/' or NUL", String::from_utf8_lossy(name)));
    }
    if name.len() > MAX_NAME {
        return Err(format!("name of {} bytes is longer than {MAX_NAME}", name.len()));
    }
    Ok(())
}

/// A directory listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// Entries, sorted by name.
    pub entries: Vec<Entry>,
}

impl Tree {
    /// Sorts the entries (encoding requires strictly increasing names).
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Encodes a sorted tree.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            w.blob(&e.name).u8(e.entry_type() as u8).u32(e.mode).i64(e.mtime_ns).u64(e.size);
            w.u32(e.uid).u32(e.gid).u64(e.link_group);
            match &e.content {
                Content::File(ids) => {
                    w.u32(ids.len() as u32);
                    for id in ids {
                        w.bytes(&id.0);
                    }
                }
                Content::Dir(id) => {
                    w.bytes(&id.0);
                }
                Content::Symlink(t) => {
                    w.blob(t);
                }
            }
        }
        w.buf
    }

    /// Decodes and validates a tree block.
    pub fn decode(payload: &[u8], what: &str) -> Result<Tree, StoreError> {
        let mut r = Reader::new(payload, what);
        let n = r.count(45)?;
        let mut entries: Vec<Entry> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.blob(MAX_NAME)?.to_vec();
            validate_name(&name).map_err(|e| r.fail(e))?;
            if let Some(prev) = entries.last()
                && prev.name >= name
            {
                return Err(r.fail(format!("entries not strictly sorted at {:?}", String::from_utf8_lossy(&name))));
            }
            let ty = r.u8()?;
            let mode = r.u32()?;
            let mtime_ns = r.i64()?;
            let size = r.u64()?;
            let uid = r.u32()?;
            let gid = r.u32()?;
            let link_group = r.u64()?;
            let content = match ty {
                1 => {
                    let k = r.count(32)?;
                    let mut ids = Vec::with_capacity(k);
                    for _ in 0..k {
                        ids.push(BlockId(r.array()?));
                    }
                    Content::File(ids)
                }
                2 => Content::Dir(BlockId(r.array()?)),
                3 => Content::Symlink(r.blob(MAX_TARGET)?.to_vec()),
                t => return Err(r.fail(format!("unknown entry type {t}"))),
            };
            if mode & !0o7777 != 0 {
                return Err(r.fail(format!("mode {mode:o} has bits outside 0o7777")));
            }
            entries.push(Entry { name, mode, mtime_ns, size, uid, gid, link_group, content });
        }
        r.finish()?;
        Ok(Tree { entries })
    }
}
