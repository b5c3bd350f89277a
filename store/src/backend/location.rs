//! Store locations, parsed in one place:
//! `LOC = PATH | ssh://[user@]host[:port]/abs/path | s3://bucket[/prefix]`.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Backend, LocalDir};
use crate::error::{Error, Result};

/// What the user wrote as a store location, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A folder on a local disk, USB drive or mounted share.
    Local(PathBuf),
    /// `ssh://[user@]host[:port]/abs/path`: a store served by `ferry serve --stdio` over ssh.
    Ssh {
        /// Login name, when given.
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// Port, when given.
        port: Option<u16>,
        /// Absolute path of the store on the host.
        path: String,
    },
    /// `s3://bucket[/prefix]`: an S3-compatible object store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket (may be empty).
        prefix: String,
    },
}

/// The syntax, for error messages.
const SYNTAX: &str = "a store location is a folder path, ssh://[user@]host[:port]/abs/path or s3://bucket[/prefix]";

fn bad(location: &str, reason: impl Into<String>) -> Error {
    Error::BadLocation { location: location.into(), reason: reason.into() }
}

/// The scheme of `s` when it starts with `scheme://` (RFC 3986 scheme characters).
fn scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))).then_some(scheme)
}

impl Location {
    /// Parses a location. A string starting with `scheme://` must use a
    /// known scheme (`ssh`, `s3`); everything else is a local path.
    pub fn parse(s: &str) -> Result<Location> {
        if s.is_empty() {
            return Err(bad(s, format!("empty; {SYNTAX}")));
        }
        let Some(scheme) = scheme(s) else { return Ok(Location::Local(PathBuf::from(s))) };
        let rest = &s[scheme.len() + 3..];
        match scheme.to_ascii_lowercase().as_str() {
            "ssh" => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => return Err(bad(s, format!("no absolute path after the host; {SYNTAX}"))),
                };
                let (user, hostport) = match authority.rsplit_once('@') {
                    Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
                    Some(_) => return Err(bad(s, "empty user name before '@'")),
                    None => (None, authority),
                };
                let (host, port) = match hostport.rsplit_once(':') {
                    Some((h, p)) => {
                        let port = p
                            .parse::<u16>()
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or_else(|| bad(s, format!("port {p:?} is not a number from 1 to 65535")))?;
                        (h, Some(port))
                    }
                    None => (hostport, None),
                };
                if host.is_empty() {
                    return Err(bad(s, format!("no host; {SYNTAX}")));
                }
                Ok(Location::Ssh { user, host: host.to_string(), port, path: path.to_string() })
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad(s, format!("no bucket; {SYNTAX}")));
                }
                Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.trim_end_matches('/').to_string() })
            }
            _ => Err(bad(s, format!("unknown scheme {scheme:?}; {SYNTAX}"))),
        }
    }

    /// Opens the backend for this location (nothing is created or touched:
    /// [`Backend::create`] does that).
    pub fn open(&self) -> Result<Arc<dyn Backend>> {
        match self {
            Location::Local(p) => Ok(Arc::new(LocalDir::new(p))),
            Location::Ssh { user, host, port, path } => {
                let target = super::SshTarget { user: user.clone(), host: host.clone(), port: *port, path: path.clone() };
                Ok(Arc::new(super::Metered::new(super::Retry::new(super::SshBackend::connect(&self.to_string(), &target)?))))
            }
            Location::S3 { bucket, prefix } => Ok(Arc::new(super::Metered::new(super::S3::from_env(bucket, prefix)?))),
        }
    }

    /// The local folder, for a [`Location::Local`].
    pub fn as_local(&self) -> Option<&std::path::Path> {
        match self {
            Location::Local(p) => Some(p),
            _ => None,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Ssh { user, host, port, path } => {
                write!(f, "ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{host}")?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                write!(f, "{path}")
            }
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Parses `location` and opens its backend: the one entry point for every
/// store location the user gives.
pub fn open_backend(location: &str) -> Result<Arc<dyn Backend>> {
    Location::parse(location)?.open()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_local() {
        for p in ["/mnt/usb/store", "store", "./a:b", "C:\\stores\\x", "dir/with://inside"] {
            assert_eq!(Location::parse(p).unwrap(), Location::Local(PathBuf::from(p)), "{p}");
        }
    }

    #[test]
    fn ssh_locations_parse_fully() {
        assert_eq!(
            Location::parse("ssh://me@host.example:2222/srv/store").unwrap(),
            Location::Ssh { user: Some("me".into()), host: "host.example".into(), port: Some(2222), path: "/srv/store".into() }
        );
        assert_eq!(Location::parse("ssh://h/p").unwrap(), Location::Ssh { user: None, host: "h".into(), port: None, path: "/p".into() });
        assert_eq!(Location::parse("ssh://me@h:22/x").unwrap().to_string(), "ssh://me@h:22/x");
        for bad in ["ssh://host", "ssh:///abs", "ssh://h:99999/p", "ssh://h:/p", "ssh://@h/p"] {
            assert!(matches!(Location::parse(bad), Err(Error::BadLocation { .. })), "{bad}");
        }
    }

    #[test]
    fn s3_locations_parse() {
        assert_eq!(Location::parse("s3://bucket").unwrap(), Location::S3 { bucket: "bucket".into(), prefix: String::new() });
        assert_eq!(Location::parse("s3://b/some/prefix/").unwrap(), Location::S3 { bucket: "b".into(), prefix: "some/prefix".into() });
        assert!(Location::parse("s3:///x").is_err());
    }

    #[test]
    fn unsafe_ssh_hosts_and_unknown_schemes_are_named() {
        // ssh:// connects; a host that ssh would read as an option is refused first.
        let e = open_backend("ssh://-oProxyCommand=x/p").unwrap_err();
        assert!(matches!(e, Error::BadLocation { .. }), "{e}");
        let e = open_backend("ftp://x/y").unwrap_err().to_string();
        assert!(e.contains("unknown scheme \"ftp\""), "{e}");
        assert!(open_backend("").is_err());
    }
}
