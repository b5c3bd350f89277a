//! The far end of `ssh://` stores: `ferry serve --stdio` serves one store
//! folder over stdin/stdout (format-spec §19).
//!
//! The store path arrives in the hello, never on the command line, so the
//! same command line works as an `authorized_keys` forced command. With
//! [`ServeOptions::restrict_to`] the path, resolved (`..` and symlinks, via
//! the nearest existing ancestor for a store not created yet), must lie in
//! one of the folders. With [`ServeOptions::append_only`] deletes are
//! refused except of lock objects (`locks/`), which writers must be able to
//! release; overwrites never happen (writes of existing objects are
//! no-ops). Every write is checked before it touches the disk: the path is
//! an object path of a store, and a content-named object's bytes hash to
//! its name.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;

use crate::backend::{Backend, LocalDir};
use crate::error::{Error, Result};
use crate::id::ObjectName;
use crate::layout::{
    CONFIG_PATH, INDEX_DIR, KEYS_DIR, LOCKS_DIR, PACKS_DIR, SNAPSHOTS_DIR, key_name_from_path, name_from_path, object_path,
};
use crate::lock::MAX_LOCK_OBJECT;
use crate::protocol::{Code, FLAG_APPEND_ONLY, Reply, Request, VERSION, decode_request, encode_reply, read_frame, write_frame};

/// How `ferry serve` restricts its clients.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// When not empty, the store path must resolve into one of these folders.
    pub restrict_to: Vec<PathBuf>,
    /// Refuse deletes outside `locks/`.
    pub append_only: bool,
    /// Requests worked on at once; 0 means [`SERVE_WORKERS`].
    pub workers: usize,
}

/// Requests the server works on at once (reads and writes of different
/// objects overlap; replies go out as each finishes).
pub const SERVE_WORKERS: usize = 4;

type Refusal = (Code, String);

/// Serves stdin/stdout until the client closes its end.
pub fn serve_stdio(opts: &ServeOptions) -> Result<()> {
    serve(io::stdin().lock(), io::stdout(), opts)
}

fn io_err(op: &'static str, e: io::Error) -> Error {
    Error::Io { op, path: "ferry serve stream".into(), source: e }
}

/// Serves one session: a hello, then requests until `input` ends.
pub fn serve<R: Read, W: Write + Send>(mut input: R, output: W, opts: &ServeOptions) -> Result<()> {
    let out = Mutex::new(output);
    let send = |id: u32, reply: &Reply| -> io::Result<()> {
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        write_frame(&mut *o, &encode_reply(id, reply))
    };
    let Some(body) = read_frame(&mut input).map_err(|e| io_err("read", e))? else { return Ok(()) };
    let (id, version, path) = match decode_request(&body) {
        Ok((id, Request::Hello { version, path })) => (id, version, path),
        Ok((id, _)) => {
            let _ = send(id, &Reply::Error(Code::BadRequest, "the first request must be a hello".into()));
            return Err(Error::InvalidParameter("ferry serve: the first request was not a hello".into()));
        }
        Err(e) => {
            let _ = send(0, &Reply::Error(Code::BadRequest, e.to_string()));
            return Err(e);
        }
    };
    if version != VERSION {
        let text = format!("protocol version {version} is not supported; this server speaks version {VERSION}");
        let _ = send(id, &Reply::Error(Code::Version, text.clone()));
        return Err(Error::Unsupported(text));
    }
    let root = match resolve_store_path(&path, &opts.restrict_to) {
        Ok(r) => r,
        Err((code, text)) => {
            let _ = send(id, &Reply::Error(code, text.clone()));
            return Err(Error::InvalidParameter(format!("ferry serve: {text}")));
        }
    };
    let flags = if opts.append_only { FLAG_APPEND_ONLY } else { 0 };
    send(id, &Reply::HelloOk { version: VERSION, flags }).map_err(|e| io_err("write", e))?;

    let dir = LocalDir::new(root);
    let workers = if opts.workers == 0 { SERVE_WORKERS } else { opts.workers };
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(workers * 2);
    let rx = Mutex::new(rx);
    let mut result = Ok(());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(body) = next else { break };
                    let (id, reply) = handle(&dir, opts, &body);
                    if send(id, &reply).is_err() {
                        break;
                    }
                }
            });
        }
        loop {
            match read_frame(&mut input) {
                Ok(Some(body)) => {
                    if tx.send(body).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    result = Err(io_err("read", e));
                    break;
                }
            }
        }
        drop(tx);
    });
    result
}

/// The store folder for a hello's path: absolute, resolved, and inside
/// one of `restrict_to` when that is not empty.
pub fn resolve_store_path(path: &str, restrict_to: &[PathBuf]) -> std::result::Result<PathBuf, Refusal> {
    let p = Path::new(path);
    if !p.is_absolute() || path.contains('\0') {
        return Err((Code::PathRefused, format!("store path {path:?} is not an absolute path")));
    }
    let resolved = resolve(p).map_err(|e| (Code::PathRefused, format!("store path {path:?} cannot be resolved: {e}")))?;
    if restrict_to.is_empty() {
        return Ok(resolved);
    }
    for dir in restrict_to {
        if let Ok(d) = resolve(dir)
            && resolved.starts_with(&d)
        {
            return Ok(resolved);
        }
    }
    Err((Code::PathRefused, format!("store path {path:?} (resolved: {}) is outside the folders this server may serve", resolved.display())))
}

/// `p` with symlinks and `..` resolved: the nearest existing ancestor
/// canonicalized, plus the components below it that do not exist yet
/// (which may not be `..`).
fn resolve(p: &Path) -> io::Result<PathBuf> {
    let mut existing = p.to_path_buf();
    let mut missing = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(mut c) => {
                for m in missing.iter().rev() {
                    c.push(m);
                }
                return Ok(c);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match existing.components().next_back() {
                    Some(Component::Normal(name)) => missing.push(name.to_os_string()),
                    _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "\"..\" below a folder that does not exist")),
                }
                existing.pop();
            }
            Err(e) => return Err(e),
        }
    }
}

/// A path or prefix from a request: `/`-separated components of
/// `[A-Za-z0-9._-]`, none empty, `.` or `..`; a prefix may be empty and
/// end with `/`.
fn check_path(p: &str, prefix: bool) -> std::result::Result<(), Refusal> {
    if prefix && p.is_empty() {
        return Ok(());
    }
    let body = if prefix { p.strip_suffix('/').unwrap_or(p) } else { p };
    let ok = !body.is_empty()
        && body.split('/').all(|c| {
            !c.is_empty() && c != "." && c != ".." && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok { Ok(()) } else { Err((Code::BadRequest, format!("{p:?} is not an object path"))) }
}

/// A write is allowed only to an object path of a store, and a
/// content-named object only with bytes that hash to its name.
fn check_write(path: &str, bytes: &[u8]) -> std::result::Result<(), Refusal> {
    let mismatch = || (Code::BadRequest, format!("{path}: the bytes do not hash to the object's name"));
    if path == CONFIG_PATH {
        return Ok(());
    }
    if let Some(name) = path.strip_prefix(LOCKS_DIR)
        && !name.contains('/')
        && !name.starts_with('.')
    {
        if bytes.len() as u64 > MAX_LOCK_OBJECT {
            return Err((Code::BadRequest, format!("{path}: a lock object of {} bytes is larger than {MAX_LOCK_OBJECT}", bytes.len())));
        }
        return Ok(());
    }
    if path.starts_with(KEYS_DIR)
        && let Some(name) = key_name_from_path(path)
    {
        return if ObjectName::of(bytes) == name { Ok(()) } else { Err(mismatch()) };
    }
    for dir in [PACKS_DIR, INDEX_DIR, SNAPSHOTS_DIR] {
        if path.starts_with(dir)
            && let Some(name) = name_from_path(path)
            && object_path(dir, &name) == path
        {
            return if ObjectName::of(bytes) == name { Ok(()) } else { Err(mismatch()) };
        }
    }
    Err((Code::BadRequest, format!("{path} is not an object path of a ferry store")))
}

fn refusal(e: Error) -> Refusal {
    let code = match &e {
        Error::NotFound(_) => Code::NotFound,
        Error::StorageFull { .. } => Code::NoSpace,
        Error::NotEmpty(_) => Code::NotEmpty,
        Error::Damaged { .. } => Code::Damaged,
        _ => Code::Io,
    };
    (code, e.to_string())
}

/// Answers one request frame: `(request id, reply)`.
fn handle(dir: &LocalDir, opts: &ServeOptions, body: &[u8]) -> (u32, Reply) {
    let (id, req) = match decode_request(body) {
        Ok(x) => x,
        Err(e) => {
            let id = body.get(1..5).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).unwrap_or(0);
            return (id, Reply::Error(Code::BadRequest, e.to_string()));
        }
    };
    let reply = match answer(dir, opts, req) {
        Ok(r) => r,
        Err((code, text)) => Reply::Error(code, text),
    };
    (id, reply)
}

fn answer(dir: &LocalDir, opts: &ServeOptions, req: Request) -> std::result::Result<Reply, Refusal> {
    Ok(match req {
        Request::Hello { .. } => return Err((Code::BadRequest, "hello was already done".into())),
        Request::Create => {
            dir.create().map_err(refusal)?;
            Reply::Ok
        }
        Request::List(prefix) => {
            check_path(&prefix, true)?;
            Reply::Listing(dir.list(&prefix).map_err(refusal)?.into_iter().map(|o| (o.path, o.size)).collect())
        }
        Request::ListStrays(prefix) => {
            check_path(&prefix, true)?;
            Reply::Strays(dir.list_strays(&prefix).map_err(refusal)?)
        }
        Request::Read(p) => {
            check_path(&p, false)?;
            let bytes = dir.read(&p).map_err(refusal)?;
            if bytes.len() > crate::protocol::MAX_FRAME as usize - 64 {
                return Err((Code::Io, format!("{p}: {} bytes do not fit in one frame", bytes.len())));
            }
            Reply::Data(bytes)
        }
        Request::ReadRanges(p, ranges) => {
            check_path(&p, false)?;
            let total = ranges.iter().fold(0u64, |t, &(_, l)| t.saturating_add(l).saturating_add(8));
            if total > crate::protocol::MAX_FRAME as u64 - 64 {
                return Err((Code::BadRequest, format!("{p}: ranges of {total} bytes do not fit in one frame")));
            }
            Reply::Ranges(dir.read_ranges(&p, &ranges).map_err(refusal)?)
        }
        Request::Write(p, bytes) => {
            check_path(&p, false)?;
            check_write(&p, &bytes)?;
            dir.write(&p, &bytes).map_err(refusal)?;
            Reply::Ok
        }
        Request::Exists(p) => {
            check_path(&p, false)?;
            Reply::Bool(dir.exists(&p).map_err(refusal)?)
        }
        Request::Delete(p) => {
            check_path(&p, false)?;
            if opts.append_only && !p.starts_with(LOCKS_DIR) {
                return Err((Code::AppendOnly, format!("deleting {p}")));
            }
            dir.delete(&p).map_err(refusal)?;
            Reply::Ok
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_reply, encode_request};

    fn session(opts: &ServeOptions, reqs: &[Request]) -> Vec<(u32, Reply)> {
        let mut input = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            write_frame(&mut input, &encode_request(i as u32, r)).unwrap();
        }
        let mut out = Vec::new();
        let _ = serve(&input[..], &mut out, opts);
        let mut rd = &out[..];
        let mut replies = Vec::new();
        while let Some(f) = read_frame(&mut rd).unwrap() {
            replies.push(decode_reply(&f).unwrap());
        }
        replies.sort_by_key(|r| r.0);
        replies
    }

    #[test]
    fn a_session_writes_reads_and_refuses() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("s");
        let pack = b"pack bytes".to_vec();
        let name = ObjectName::of(&pack);
        let pp = object_path(PACKS_DIR, &name);
        let opts = ServeOptions { restrict_to: vec![t.path().to_path_buf()], append_only: true, workers: 1 };
        let r = session(
            &opts,
            &[
                Request::Hello { version: VERSION, path: store.to_str().unwrap().into() },
                Request::Create,
                Request::Write(pp.clone(), pack.clone()),
                Request::Write(object_path(PACKS_DIR, &ObjectName::of(b"other")), pack.clone()),
                Request::Write("../escape".into(), vec![]),
                Request::Write("locks/s-01".into(), vec![1]),
                Request::Delete("locks/s-01".into()),
                Request::Delete(pp.clone()),
                Request::ReadRanges(pp.clone(), vec![(0, 4), (5, 5)]),
                Request::Exists("config".into()),
                Request::Read("nothing/here".into()),
            ],
        );
        assert_eq!(r[0].1, Reply::HelloOk { version: VERSION, flags: FLAG_APPEND_ONLY });
        assert_eq!(r[1].1, Reply::Ok);
        assert_eq!(r[2].1, Reply::Ok);
        assert!(matches!(&r[3].1, Reply::Error(Code::BadRequest, t) if t.contains("hash")), "{:?}", r[3]);
        assert!(matches!(&r[4].1, Reply::Error(Code::BadRequest, _)));
        assert_eq!(r[5].1, Reply::Ok);
        // Pipelined: the delete of the lock may run before its write; either way it is allowed.
        assert_eq!(r[6].1, Reply::Ok);
        assert!(matches!(&r[7].1, Reply::Error(Code::AppendOnly, _)));
        assert_eq!(r[8].1, Reply::Ranges(vec![b"pack".to_vec(), b"bytes".to_vec()]));
        assert_eq!(r[9].1, Reply::Bool(false));
        assert!(matches!(&r[10].1, Reply::Error(Code::NotFound, _)));
        assert!(store.join(&pp).exists());
    }

    #[test]
    fn paths_outside_the_allowed_folders_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let ok = t.path().join("ok");
        std::fs::create_dir(&ok).unwrap();
        std::os::unix::fs::symlink(t.path(), ok.join("link")).unwrap();
        let allow = vec![ok.clone()];
        assert!(resolve_store_path(ok.join("new/store").to_str().unwrap(), &allow).is_ok());
        for bad in [t.path().join("other"), ok.join("../other"), ok.join("link/x"), ok.join("new/../../x")] {
            let e = resolve_store_path(bad.to_str().unwrap(), &allow).unwrap_err();
            assert_eq!(e.0, Code::PathRefused, "{bad:?}");
        }
        assert!(resolve_store_path("relative/p", &[]).is_err());
        let r = session(
            &ServeOptions { restrict_to: allow, ..Default::default() },
            &[Request::Hello { version: VERSION, path: t.path().join("x").to_str().unwrap().into() }],
        );
        assert!(matches!(&r[0].1, Reply::Error(Code::PathRefused, _)));
    }

    #[test]
    fn requests_before_hello_and_other_versions_are_refused() {
        let r = session(&ServeOptions::default(), &[Request::Read("config".into())]);
        assert!(matches!(&r[0].1, Reply::Error(Code::BadRequest, _)));
        let r = session(&ServeOptions::default(), &[Request::Hello { version: 99, path: "/tmp".into() }]);
        assert!(matches!(&r[0].1, Reply::Error(Code::Version, _)));
    }
}
