//! Who may use the page: loopback only, an access token, a Host check
//! and a CSRF token on every POST.
//!
//! - The server binds a loopback address only ([`check_listen`]): other
//!   machines cannot connect at all.
//! - Other local users and web pages can reach loopback ports, so every
//!   request needs the **access token**: 256 random bits in the URL that
//!   `ferry center` prints. The first request carries it as `?token=`;
//!   the answer sets it as an `HttpOnly; SameSite=Strict` cookie and
//!   redirects to the same page without it (out of the address bar and
//!   history). Requests with neither are refused (403).
//! - **DNS rebinding** (a hostile name resolving to 127.0.0.1 so that a
//!   page of that name may read ours) is refused by the `Host` header:
//!   only `127.0.0.1:PORT` / `[::1]:PORT` / `localhost:PORT` pass. The
//!   cookie would not be sent to that name anyway; this makes it certain.
//! - **CSRF**: every state change is a POST carrying a second random
//!   token in a hidden form field, compared with this process's; an
//!   `Origin` header, when present, must be this server. GETs change
//!   nothing.
//! - The cookie's name carries the port: cookies ignore ports, so two
//!   centers (or a restarted one) do not overwrite each other's.
//!
//! Tokens are compared in constant time.

use std::net::SocketAddr;

use crate::error::{Error, Result};

/// Parses `--listen` and refuses anything but a loopback address.
pub fn check_listen(given: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = match given.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}").parse(),
        None => given.parse(),
    }
    .map_err(|_| Error::BadListen { given: given.to_string() })?;
    if !addr.ip().is_loopback() {
        return Err(Error::NotLoopback { addr });
    }
    Ok(addr)
}

/// 32 random bytes as 64 hex digits.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("OS randomness");
    hex::encode(b)
}

/// Equal, without an early exit on the first differing byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The secrets of one running center and the checks that use them.
pub(crate) struct Guard {
    /// The access token (URL, then cookie).
    pub token: String,
    /// The CSRF token (hidden form fields).
    pub csrf: String,
    /// A nonce for the page's one inline script (Content-Security-Policy).
    pub nonce: String,
    /// The cookie's name (`ferry_center_<port>`).
    pub cookie_name: String,
    /// The `Host` values accepted.
    hosts: Vec<String>,
    /// The `Origin` values accepted.
    origins: Vec<String>,
}

impl Guard {
    /// New random tokens for a server bound to `addr`.
    pub fn new(addr: SocketAddr) -> Guard {
        let port = addr.port();
        let ip = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let hosts = vec![format!("{ip}:{port}"), format!("localhost:{port}")];
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        let mut nonce = random_hex();
        nonce.truncate(32);
        Guard { token: random_hex(), csrf: random_hex(), nonce, cookie_name: format!("ferry_center_{port}"), hosts, origins }
    }

    /// The `Host` header names this server (not a rebound DNS name).
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| self.hosts.iter().any(|ok| ok.eq_ignore_ascii_case(h)))
    }

    /// `t` is the access token.
    pub fn token_ok(&self, t: &str) -> bool {
        same(t, &self.token)
    }

    /// One of the `Cookie` headers carries the access token.
    pub fn cookie_ok<'a>(&self, headers: impl Iterator<Item = &'a str>) -> bool {
        headers.flat_map(|h| h.split(';')).filter_map(|c| c.trim().split_once('=')).any(|(k, v)| k == self.cookie_name && self.token_ok(v))
    }

    /// The form's CSRF token is this server's.
    pub fn csrf_ok(&self, t: &str) -> bool {
        same(t, &self.csrf)
    }

    /// An `Origin` header, when the browser sends one, is this server.
    pub fn origin_ok(&self, origin: Option<&str>) -> bool {
        origin.is_none_or(|o| self.origins.iter().any(|ok| ok.eq_ignore_ascii_case(o)))
    }

    /// The `Set-Cookie` value that carries the token from now on.
    pub fn set_cookie(&self) -> String {
        format!("{}={}; HttpOnly; SameSite=Strict; Path=/", self.cookie_name, self.token)
    }

    /// The `Content-Security-Policy` of every page: nothing from outside,
    /// inline styles, only our own script, fetches to ourselves, forms to
    /// ourselves, no framing.
    pub fn csp(&self) -> String {
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{}'; connect-src 'self'; img-src data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            self.nonce
        )
    }
}

/// The value of `name` in a query string (`a=1&token=..`), undecoded (tokens are hex).
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The query string without `name` (what the redirect after the token keeps).
pub(crate) fn query_without(query: &str, name: &str) -> String {
    query.split('&').filter(|kv| !kv.is_empty() && kv.split_once('=').map_or(*kv, |(k, _)| k) != name).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_must_be_loopback() {
        assert!(check_listen("127.0.0.1:0").is_ok());
        assert!(check_listen("[::1]:8385").is_ok());
        assert_eq!(check_listen("localhost:9").unwrap(), "127.0.0.1:9".parse().unwrap());
        assert!(matches!(check_listen("0.0.0.0:8385"), Err(Error::NotLoopback { .. })));
        assert!(matches!(check_listen("192.168.1.2:80"), Err(Error::NotLoopback { .. })));
        assert!(matches!(check_listen("example.com:80"), Err(Error::BadListen { .. })));
        assert!(matches!(check_listen("8385"), Err(Error::BadListen { .. })));
    }

    #[test]
    fn guard_checks_host_cookie_csrf_and_origin() {
        let g = Guard::new("127.0.0.1:4000".parse().unwrap());
        assert_eq!(g.token.len(), 64);
        assert_ne!(g.token, g.csrf);
        assert!(g.host_ok(Some("127.0.0.1:4000")) && g.host_ok(Some("localhost:4000")));
        assert!(!g.host_ok(Some("evil.example:4000")) && !g.host_ok(Some("127.0.0.1:4001")) && !g.host_ok(None));
        let good = format!("a=b; ferry_center_4000={}", g.token);
        assert!(g.cookie_ok([good.as_str()].into_iter()));
        assert!(!g.cookie_ok(["ferry_center_4000=00"].into_iter()));
        let other_port = format!("ferry_center_4001={}", g.token);
        assert!(!g.cookie_ok([other_port.as_str()].into_iter()));
        assert!(g.csrf_ok(&g.csrf.clone()) && !g.csrf_ok("") && !g.csrf_ok(&g.token));
        assert!(g.origin_ok(None) && g.origin_ok(Some("http://127.0.0.1:4000")));
        assert!(!g.origin_ok(Some("http://evil.example")) && !g.origin_ok(Some("null")));
        let v6 = Guard::new("[::1]:5".parse().unwrap());
        assert!(v6.host_ok(Some("[::1]:5")));
    }

    #[test]
    fn query_helpers() {
        assert_eq!(query_param("token=ab&x=1", "token"), Some("ab"));
        assert_eq!(query_param("x=1", "token"), None);
        assert_eq!(query_without("token=ab&x=1", "token"), "x=1");
        assert_eq!(query_without("token=ab", "token"), "");
    }
}
