//! The ssh protocol between a client and `ferry serve` (format-spec §19):
//! length-prefixed frames, each a message with a type and a request id.
//! This module only encodes and decodes; the server is [`crate::serve`],
//! the client [`crate::backend::SshBackend`].
//!
//! Every length read from the other side is bounded before anything is
//! allocated: a frame by [`MAX_FRAME`], a path by [`MAX_PATH`], a count by
//! the bytes left in its frame.

use std::io::{self, Read, Write};

use crate::wire::{Reader, Writer};

/// Protocol version this build speaks (format-spec §19.2).
pub const VERSION: u32 = 1;
/// The 11 bytes that open a hello and its reply.
pub const MAGIC: &[u8; 11] = b"ferry-serve";
/// Largest frame body either side sends or accepts: a whole pack of the
/// largest pack target (1 GiB) plus one largest block (16 MiB) and room
/// for headers.
pub const MAX_FRAME: u32 = (1 << 30) + (32 << 20);
/// Longest path or prefix in a request, in bytes.
pub const MAX_PATH: usize = 1024;
/// Longest error text in a reply, in bytes (longer text is cut).
pub const MAX_TEXT: usize = 4096;
/// Most ranges in one read-ranges request.
pub const MAX_RANGES: usize = 1 << 16;

/// Message types (format-spec §19.3).
pub mod msg {
    /// Client: hello (magic, version, store path). Request id 0.
    pub const HELLO: u8 = 0x01;
    /// Client: make the store's folder.
    pub const CREATE: u8 = 0x02;
    /// Client: list objects under a prefix.
    pub const LIST: u8 = 0x03;
    /// Client: list strays (temp and unknown files) under a prefix.
    pub const LIST_STRAYS: u8 = 0x04;
    /// Client: read a whole object.
    pub const READ: u8 = 0x05;
    /// Client: read ranges of one object.
    pub const READ_RANGES: u8 = 0x06;
    /// Client: write an object once.
    pub const WRITE: u8 = 0x07;
    /// Client: does an object exist.
    pub const EXISTS: u8 = 0x08;
    /// Client: delete an object.
    pub const DELETE: u8 = 0x09;
    /// Server: done, nothing to return.
    pub const OK: u8 = 0x80;
    /// Server: hello reply.
    pub const HELLO_OK: u8 = 0x81;
    /// Server: a listing.
    pub const LISTING: u8 = 0x82;
    /// Server: a list of stray paths.
    pub const STRAYS: u8 = 0x83;
    /// Server: an object's bytes.
    pub const DATA: u8 = 0x84;
    /// Server: the bytes of several ranges.
    pub const RANGES: u8 = 0x85;
    /// Server: a yes/no answer.
    pub const BOOL: u8 = 0x86;
    /// Server: the request failed.
    pub const ERROR: u8 = 0xFF;
}

/// Hello reply flag: the server refuses deletes outside `locks/`.
pub const FLAG_APPEND_ONLY: u8 = 1;

/// Error codes in an error reply (format-spec §19.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// The object (or the store folder) does not exist.
    NotFound = 1,
    /// Refused: the server is append-only.
    AppendOnly = 2,
    /// Refused: the store path is outside the allowed folders.
    PathRefused = 3,
    /// A malformed request, or a write whose bytes do not match its name.
    BadRequest = 4,
    /// Any other I/O error on the server.
    Io = 5,
    /// No space left on the server's disk.
    NoSpace = 6,
    /// `create` on a folder holding other files.
    NotEmpty = 7,
    /// The hello's version is not one the server speaks.
    Version = 8,
    /// A ranged read past the end of the object (the object is truncated).
    Damaged = 9,
}

impl Code {
    /// The code for byte `b`; unknown bytes read as [`Code::Io`].
    pub fn from_u8(b: u8) -> Code {
        match b {
            1 => Code::NotFound,
            2 => Code::AppendOnly,
            3 => Code::PathRefused,
            4 => Code::BadRequest,
            6 => Code::NoSpace,
            7 => Code::NotEmpty,
            8 => Code::Version,
            9 => Code::Damaged,
            _ => Code::Io,
        }
    }
}

/// A request, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Opens the session on a store path.
    Hello {
        /// Protocol version of the client.
        version: u32,
        /// Absolute path of the store on the server.
        path: String,
    },
    /// Make the store folder.
    Create,
    /// List under a prefix.
    List(String),
    /// List strays under a prefix.
    ListStrays(String),
    /// Read a whole object.
    Read(String),
    /// Read ranges of an object.
    ReadRanges(String, Vec<(u64, u64)>),
    /// Write an object.
    Write(String, Vec<u8>),
    /// Does it exist.
    Exists(String),
    /// Delete it.
    Delete(String),
}

/// A reply, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done.
    Ok,
    /// Hello accepted.
    HelloOk {
        /// Version the server speaks.
        version: u32,
        /// [`FLAG_APPEND_ONLY`] and future flags.
        flags: u8,
    },
    /// Objects and sizes.
    Listing(Vec<(String, u64)>),
    /// Stray paths.
    Strays(Vec<String>),
    /// An object's bytes.
    Data(Vec<u8>),
    /// Ranges' bytes, in request order.
    Ranges(Vec<Vec<u8>>),
    /// Yes or no.
    Bool(bool),
    /// Failure.
    Error(Code, String),
}

fn bad(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

/// Writes one frame: the body's length (u32 LE) then the body.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME as usize {
        return Err(bad(format!("frame of {} bytes exceeds the {MAX_FRAME}-byte limit", body.len())));
    }
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// Reads one frame body; `Ok(None)` at a clean end of input (no byte of a
/// next frame). A length over [`MAX_FRAME`] is refused before allocating.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "input ends inside a frame length")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = u32::from_le_bytes(len);
    if n > MAX_FRAME {
        return Err(bad(format!(
            "frame length {n} exceeds the {MAX_FRAME}-byte limit (first bytes {:?}: not a ferry serve stream)",
            String::from_utf8_lossy(&len)
        )));
    }
    // Room for the frame up front (at most 16 MiB before the bytes arrive,
    // so a claimed length alone never allocates much), then one read loop.
    let mut body = Vec::with_capacity((n as usize).min(16 << 20));
    r.take(n as u64).read_to_end(&mut body)?;
    if body.len() != n as usize {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "input ends inside a frame"));
    }
    Ok(Some(body))
}

fn str16(w: &mut Writer, s: &str) {
    let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    w.u16(s.len() as u16).bytes(s);
}

fn read_str(r: &mut Reader, max: usize) -> crate::Result<String> {
    let n = r.u16()? as usize;
    if n > max {
        return Err(r.fail(format!("string of {n} bytes exceeds the {max}-byte limit")));
    }
    String::from_utf8(r.take(n)?.to_vec()).map_err(|_| r.fail("string is not UTF-8"))
}

/// Encodes a request with id `id` as a frame body.
pub fn encode_request(id: u32, req: &Request) -> Vec<u8> {
    let mut w = Writer::default();
    let path_msg = |w: &mut Writer, t: u8, p: &str| {
        w.u8(t).u32(id);
        str16(w, p);
    };
    match req {
        Request::Hello { version, path } => {
            w.u8(msg::HELLO).u32(id).bytes(MAGIC).u32(*version);
            str16(&mut w, path);
        }
        Request::Create => {
            w.u8(msg::CREATE).u32(id);
        }
        Request::List(p) => path_msg(&mut w, msg::LIST, p),
        Request::ListStrays(p) => path_msg(&mut w, msg::LIST_STRAYS, p),
        Request::Read(p) => path_msg(&mut w, msg::READ, p),
        Request::ReadRanges(p, ranges) => {
            path_msg(&mut w, msg::READ_RANGES, p);
            w.u32(ranges.len() as u32);
            for &(o, l) in ranges {
                w.u64(o).u64(l);
            }
        }
        Request::Write(p, bytes) => {
            path_msg(&mut w, msg::WRITE, p);
            w.bytes(bytes);
        }
        Request::Exists(p) => path_msg(&mut w, msg::EXISTS, p),
        Request::Delete(p) => path_msg(&mut w, msg::DELETE, p),
    }
    w.buf
}

/// Decodes a request frame body: `(id, request)`. Errors (as damage of
/// "request") name what is malformed.
pub fn decode_request(body: &[u8]) -> crate::Result<(u32, Request)> {
    let mut r = Reader::new(body, "request");
    let t = r.u8()?;
    let id = r.u32()?;
    let req = match t {
        msg::HELLO => {
            if r.take(MAGIC.len())? != MAGIC {
                return Err(r.fail("hello does not start with \"ferry-serve\""));
            }
            let version = r.u32()?;
            Request::Hello { version, path: read_str(&mut r, MAX_PATH)? }
        }
        msg::CREATE => Request::Create,
        msg::LIST => Request::List(read_str(&mut r, MAX_PATH)?),
        msg::LIST_STRAYS => Request::ListStrays(read_str(&mut r, MAX_PATH)?),
        msg::READ => Request::Read(read_str(&mut r, MAX_PATH)?),
        msg::READ_RANGES => {
            let p = read_str(&mut r, MAX_PATH)?;
            let n = r.count(16)?;
            if n > MAX_RANGES {
                return Err(r.fail(format!("{n} ranges exceed the limit of {MAX_RANGES}")));
            }
            let mut ranges = Vec::with_capacity(n);
            for _ in 0..n {
                ranges.push((r.u64()?, r.u64()?));
            }
            Request::ReadRanges(p, ranges)
        }
        msg::WRITE => {
            let p = read_str(&mut r, MAX_PATH)?;
            let rest = r.take(r.remaining())?.to_vec();
            Request::Write(p, rest)
        }
        msg::EXISTS => Request::Exists(read_str(&mut r, MAX_PATH)?),
        msg::DELETE => Request::Delete(read_str(&mut r, MAX_PATH)?),
        t => return Err(r.fail(format!("unknown request type 0x{t:02x}"))),
    };
    r.finish()?;
    Ok((id, req))
}

/// Encodes a reply to request `id` as a frame body.
pub fn encode_reply(id: u32, reply: &Reply) -> Vec<u8> {
    let mut w = Writer::default();
    match reply {
        Reply::Ok => {
            w.u8(msg::OK).u32(id);
        }
        Reply::HelloOk { version, flags } => {
            w.u8(msg::HELLO_OK).u32(id).bytes(MAGIC).u32(*version).u8(*flags);
        }
        Reply::Listing(items) => {
            w.u8(msg::LISTING).u32(id).u32(items.len() as u32);
            for (p, size) in items {
                str16(&mut w, p);
                w.u64(*size);
            }
        }
        Reply::Strays(items) => {
            w.u8(msg::STRAYS).u32(id).u32(items.len() as u32);
            for p in items {
                str16(&mut w, p);
            }
        }
        Reply::Data(bytes) => {
            w.u8(msg::DATA).u32(id).bytes(bytes);
        }
        Reply::Ranges(parts) => {
            w.u8(msg::RANGES).u32(id).u32(parts.len() as u32);
            for p in parts {
                w.u64(p.len() as u64).bytes(p);
            }
        }
        Reply::Bool(b) => {
            w.u8(msg::BOOL).u32(id).u8(*b as u8);
        }
        Reply::Error(code, text) => {
            let mut end = text.len().min(MAX_TEXT);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            w.u8(msg::ERROR).u32(id).u8(*code as u8);
            str16(&mut w, &text[..end]);
        }
    }
    w.buf
}

/// Decodes a reply frame body: `(id, reply)`.
pub fn decode_reply(body: &[u8]) -> crate::Result<(u32, Reply)> {
    let mut r = Reader::new(body, "reply");
    let t = r.u8()?;
    let id = r.u32()?;
    let reply = match t {
        msg::OK => Reply::Ok,
        msg::HELLO_OK => {
            if r.take(MAGIC.len())? != MAGIC {
                return Err(r.fail("hello reply does not start with \"ferry-serve\""));
            }
            Reply::HelloOk { version: r.u32()?, flags: r.u8()? }
        }
        msg::LISTING => {
            let n = r.count(10)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let p = read_str(&mut r, MAX_PATH)?;
                items.push((p, r.u64()?));
            }
            Reply::Listing(items)
        }
        msg::STRAYS => {
            let n = r.count(2)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_str(&mut r, MAX_PATH)?);
            }
            Reply::Strays(items)
        }
        msg::DATA => Reply::Data(r.take(r.remaining())?.to_vec()),
        msg::RANGES => {
            let n = r.count(8)?;
            let mut parts = Vec::with_capacity(n);
            for _ in 0..n {
                let len = r.u64()?;
                if len > r.remaining() as u64 {
                    return Err(r.fail(format!("range of {len} bytes exceeds the {} bytes left", r.remaining())));
                }
                parts.push(r.take(len as usize)?.to_vec());
            }
            Reply::Ranges(parts)
        }
        msg::BOOL => match r.u8()? {
            0 => Reply::Bool(false),
            1 => Reply::Bool(true),
            b => return Err(r.fail(format!("boolean byte {b}"))),
        },
        msg::ERROR => {
            let code = Code::from_u8(r.u8()?);
            Reply::Error(code, read_str(&mut r, MAX_TEXT)?)
        }
        t => return Err(r.fail(format!("unknown reply type 0x{t:02x}"))),
    };
    r.finish()?;
    Ok((id, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let reqs = [
            Request::Hello { version: 1, path: "/srv/store".into() },
            Request::Create,
            Request::List("packs/".into()),
            Request::ListStrays(String::new()),
            Request::Read("config".into()),
            Request::ReadRanges("packs/ab/ab".into(), vec![(0, 5), (9, 1)]),
            Request::Write("locks/s-00".into(), vec![1, 2, 3]),
            Request::Exists("config".into()),
            Request::Delete("locks/s-00".into()),
        ];
        for (i, req) in reqs.iter().enumerate() {
            assert_eq!(decode_request(&encode_request(i as u32, req)).unwrap(), (i as u32, req.clone()));
        }
        let replies = [
            Reply::Ok,
            Reply::HelloOk { version: 1, flags: FLAG_APPEND_ONLY },
            Reply::Listing(vec![("config".into(), 7)]),
            Reply::Strays(vec![".tmp-1".into()]),
            Reply::Data(vec![9; 4]),
            Reply::Ranges(vec![vec![1], vec![], vec![2, 3]]),
            Reply::Bool(true),
            Reply::Error(Code::AppendOnly, "no".into()),
        ];
        for (i, rep) in replies.iter().enumerate() {
            assert_eq!(decode_reply(&encode_reply(i as u32, rep)).unwrap(), (i as u32, rep.clone()));
        }
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut huge = (MAX_FRAME + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(b"xx");
        assert!(read_frame(&mut &huge[..]).is_err());
        // A count far beyond the frame.
        let mut w = Writer::default();
        w.u8(msg::READ_RANGES).u32(1).u16(1).bytes(b"p").u32(u32::MAX);
        assert!(decode_request(&w.buf).is_err());
        let mut w = Writer::default();
        w.u8(msg::LIST).u32(1).u16(2000).bytes(&[b'a'; 2000]);
        assert!(decode_request(&w.buf).is_err());
        // Shell noise before the first frame reads as an absurd length.
        assert!(read_frame(&mut &b"Welcome to the server\n"[..]).is_err());
        assert_eq!(read_frame(&mut &b""[..]).unwrap(), None);
        assert!(read_frame(&mut &[3u8, 0, 0, 0, 1][..]).is_err());
    }
}
