//! Little-endian encoding helpers with hard limits, shared by every
//! parser of store objects (and of trees and snapshots in ferry-sync).
//! A reader never allocates more than the input can hold: counts are
//! checked against the remaining bytes first.

use crate::error::{Error, Result};

/// Appends little-endian fields to a byte vector.
#[derive(Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Appends a u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends an i32.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
}

/// Reads little-endian fields; every error names the object being parsed.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`; `what` names the object in errors.
    pub fn new(buf: &'a [u8], what: &'a str) -> Self {
        Reader { buf, pos: 0, what }
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// A damage error naming the object.
    pub fn fail(&self, reason: impl Into<String>) -> Error {
        Error::damaged(self.what, reason)
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.fail(format!("truncated: needs {n} more bytes at offset {}, has {}", self.pos, self.remaining())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    /// A byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    /// A u32.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A u64.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// An i32.
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    /// A count of records of `record_size` bytes each; refused when the
    /// rest of the input cannot hold that many.
    pub fn count(&mut self, record_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(record_size) > self.remaining() {
            return Err(self.fail(format!("count {n} of {record_size}-byte records exceeds the {} bytes left", self.remaining())));
        }
        Ok(n)
    }
    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(self.fail(format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

impl Writer {
    /// Appends an i64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a u32 length and the bytes.
    pub fn blob(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32).bytes(v)
    }
}

impl<'a> Reader<'a> {
    /// An i64.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A u16.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// A u32 length then that many bytes, refused past `max`.
    pub fn blob(&mut self, max: usize) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(self.fail(format!("field of {n} bytes exceeds the {max}-byte limit")));
        }
        self.take(n)
    }
}
