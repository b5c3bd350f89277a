//! [`Retry`]: any backend, with transient errors retried.

use std::time::Duration;

use super::{Backend, ObjectInfo};
use crate::error::Result;

/// How often and how patiently [`Retry`] tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per call, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound for one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 5, initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(5) }
    }
}

/// Wraps a backend: a call that fails with a transient error
/// ([`Error::is_transient`](crate::Error::is_transient): interrupted, timed
/// out, connection reset...) is tried again, up to
/// [`RetryPolicy::attempts`] times with exponential backoff. Permanent
/// errors (not found, permission denied, already exists, damage) return at
/// once. Every call is safe to repeat: objects are written once under
/// content names, deleting a missing object is not an error.
#[derive(Debug)]
pub struct Retry<B> {
    inner: B,
    policy: RetryPolicy,
}

impl<B: Backend> Retry<B> {
    /// `inner` with the default policy.
    pub fn new(inner: B) -> Self {
        Self::with_policy(inner, RetryPolicy::default())
    }
    /// `inner` with `policy`.
    pub fn with_policy(inner: B, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn run<T>(&self, mut f: impl FnMut(&B) -> Result<T>) -> Result<T> {
        let mut backoff = self.policy.initial_backoff;
        let mut attempt = 1;
        loop {
            match f(&self.inner) {
                Err(e) if e.is_transient() && attempt < self.policy.attempts.max(1) => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

impl<B: Backend> Backend for Retry<B> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.run(|b| b.create())
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.run(|b| b.list(prefix))
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.run(|b| b.read(path))
    }
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.run(|b| b.read_range(path, offset, len))
    }
    fn read_ranges(&self, path: &str, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>> {
        self.run(|b| b.read_ranges(path, ranges))
    }
    fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.run(|b| b.write(path, bytes))
    }
    fn exists(&self, path: &str) -> Result<bool> {
        self.run(|b| b.exists(path))
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.run(|b| b.delete(path))
    }
    fn list_strays(&self, prefix: &str) -> Result<Vec<String>> {
        self.run(|b| b.list_strays(prefix))
    }
    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }
    fn append_only(&self) -> bool {
        self.inner.append_only()
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use super::*;
    use crate::error::Error;

    /// A backend whose reads fail with the queued errors first, then succeed;
    /// it counts the calls.
    #[derive(Debug, Default)]
    struct Flaky {
        failures: Mutex<Vec<io::ErrorKind>>,
        calls: Mutex<u32>,
    }

    impl Flaky {
        fn failing(kinds: &[io::ErrorKind]) -> Self {
            Flaky { failures: Mutex::new(kinds.iter().rev().copied().collect()), calls: Mutex::new(0) }
        }
        fn calls(&self) -> u32 {
            *self.calls.lock().unwrap()
        }
        fn next(&self, path: &str) -> Result<()> {
            *self.calls.lock().unwrap() += 1;
            match self.failures.lock().unwrap().pop() {
                Some(kind) => Err(Error::io("read", path, io::Error::new(kind, "injected"))),
                None => Ok(()),
            }
        }
    }

    impl Backend for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn create(&self) -> Result<()> {
            self.next("")
        }
        fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
            self.next(prefix).map(|()| Vec::new())
        }
        fn read(&self, path: &str) -> Result<Vec<u8>> {
            self.next(path).map(|()| b"ok".to_vec())
        }
        fn read_range(&self, path: &str, _: u64, len: u64) -> Result<Vec<u8>> {
            self.next(path).map(|()| vec![7; len as usize])
        }
        fn write(&self, path: &str, _: &[u8]) -> Result<()> {
            self.next(path)
        }
        fn exists(&self, path: &str) -> Result<bool> {
            self.next(path).map(|()| true)
        }
        fn delete(&self, path: &str) -> Result<()> {
            self.next(path)
        }
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy { attempts, initial_backoff: Duration::from_millis(1), max_backoff: Duration::from_millis(4) }
    }

    #[test]
    fn transient_errors_are_retried_until_success() {
        use io::ErrorKind::*;
        let r = Retry::with_policy(Flaky::failing(&[Interrupted, TimedOut, ConnectionReset, WouldBlock]), fast(5));
        assert_eq!(r.read("x").unwrap(), b"ok");
        assert_eq!(r.inner().calls(), 5);
    }

    #[test]
    fn attempts_are_bounded() {
        let r = Retry::with_policy(Flaky::failing(&[io::ErrorKind::TimedOut; 10]), fast(3));
        let e = r.write("x", b"").unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert_eq!(r.inner().calls(), 3);
    }

    #[test]
    fn permanent_errors_pass_through_at_once() {
        for kind in [io::ErrorKind::NotFound, io::ErrorKind::PermissionDenied, io::ErrorKind::AlreadyExists, io::ErrorKind::InvalidData] {
            let r = Retry::with_policy(Flaky::failing(&[kind]), fast(5));
            let e = r.read_range("packs/x", 0, 3).unwrap_err();
            assert_eq!(r.inner().calls(), 1, "{kind:?} was retried");
            if kind == io::ErrorKind::NotFound {
                assert!(matches!(e, Error::NotFound(ref p) if p == "packs/x"), "{e}");
            }
        }
    }

    #[test]
    fn default_read_ranges_and_list_strays() {
        let r = Retry::with_policy(Flaky::failing(&[io::ErrorKind::Interrupted]), fast(2));
        assert_eq!(r.read_ranges("p", &[(0, 2), (5, 1)]).unwrap(), vec![vec![7, 7], vec![7]]);
        assert!(r.list_strays("").unwrap().is_empty());
        assert_eq!(r.concurrency(), 1);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy { attempts: 4, initial_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(30) };
        let r = Retry::with_policy(Flaky::failing(&[io::ErrorKind::TimedOut; 3]), policy);
        let t = std::time::Instant::now();
        r.exists("x").unwrap();
        // 20 + 30 (40 capped) + 30 (80 capped) ms.
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(80), "{waited:?}");
        assert!(waited < Duration::from_millis(1000), "{waited:?}");
    }
}
