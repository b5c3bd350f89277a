//! A store in an S3-compatible bucket: `s3://bucket[/prefix]`.
//!
//! Requests go through Apache Arrow's `object_store` crate (SigV4 signing,
//! retries with exponential backoff on connection errors, 5xx and
//! throttling), driven from a small tokio runtime that this backend owns,
//! so the [`Backend`] trait stays synchronous.
//!
//! Object-store semantics: every object is one whole PUT, which S3 makes
//! visible atomically (all or nothing), so there are no temp files and
//! [`Backend::list_strays`] has nothing to report; locks are objects like
//! any other; listings are paginated (continuation tokens); ranges are
//! ranged GETs, several of them in parallel; `exists` is a HEAD.
//!
//! Configuration comes from the standard AWS variables: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`; default `us-east-1`) and `AWS_ENDPOINT_URL` (a
//! non-AWS service such as Garage or MinIO; requests are then path-style,
//! `ENDPOINT/bucket/key`, and `http://` is allowed). `FERRY_S3_CONCURRENCY`
//! overrides how many requests ferry keeps in flight (default
//! [`S3_CONCURRENCY`]).

use std::ops::Range;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::{Backend, ObjectInfo};
use crate::error::{Error, Result};

/// Requests in flight by default: enough to hide round trips to a remote
/// service, few enough not to be throttled.
pub const S3_CONCURRENCY: usize = 16;

/// Objects per listing page (S3's maximum is 1000).
const LIST_PAGE: usize = 1000;

/// A store under `prefix` in an S3 bucket.
pub struct S3 {
    bucket: String,
    /// Key prefix without slashes at either end; empty for the whole bucket.
    prefix: String,
    /// Where requests go, for messages.
    endpoint: String,
    client: AmazonS3,
    rt: tokio::runtime::Runtime,
    concurrency: usize,
    list_page: usize,
    /// Set once the bucket is known to exist (a HEAD on a missing bucket
    /// answers a bare 404, like a missing object).
    bucket_seen: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3").field("bucket", &self.bucket).field("prefix", &self.prefix).field("endpoint", &self.endpoint).finish()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where and as whom an [`S3`] backend connects.
#[derive(Clone, Default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// Region (`us-east-1` when empty).
    pub region: String,
    /// A non-AWS endpoint such as `http://127.0.0.1:3900`: requests are
    /// then path-style.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Requests in flight (0: [`S3_CONCURRENCY`]).
    pub concurrency: usize,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secrets in debug output.
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// The configuration for `s3://bucket/prefix` from the standard AWS
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION` or `AWS_DEFAULT_REGION`,
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`) and
    /// `FERRY_S3_CONCURRENCY`. Missing keys are an error: without them
    /// the client would ask a cloud instance-metadata service, which
    /// elsewhere only hangs.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<S3Config> {
        let (Some(access_key_id), Some(secret_access_key)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) else {
            return Err(Error::NoCredentials { location: s3_location(bucket, prefix) });
        };
        Ok(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_default(),
            endpoint: env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")),
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
            concurrency: env("FERRY_S3_CONCURRENCY").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0),
        })
    }
}

fn s3_location(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") }
}

impl S3 {
    /// The backend for `s3://bucket/prefix`, configured from the AWS
    /// environment variables ([`S3Config::from_env`]). Nothing is sent yet.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<S3> {
        S3::new(S3Config::from_env(bucket, prefix)?)
    }

    /// The backend for `config`. Nothing is sent yet.
    pub fn new(config: S3Config) -> Result<S3> {
        let S3Config { bucket, prefix, region, endpoint, access_key_id, secret_access_key, session_token, concurrency } = config;
        let prefix = prefix.trim_matches('/').to_string();
        let location = s3_location(&bucket, &prefix);
        let region = if region.is_empty() { "us-east-1".to_string() } else { region };
        // Not AmazonS3Builder::from_env: only the variables documented
        // above count, so nothing else in the environment changes ferry's
        // behaviour behind the user's back.
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&region)
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key)
            .with_retry(RetryConfig {
                backoff: BackoffConfig { init_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(5), base: 2.0 },
                max_retries: 5,
                retry_timeout: Duration::from_secs(60),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(120))
                    .with_allow_http(endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))),
            );
        if let Some(t) = session_token {
            builder = builder.with_token(t);
        }
        let endpoint = match &endpoint {
            Some(e) => {
                // A custom endpoint (Garage, MinIO, Ceph...): path-style requests.
                let e = e.trim_end_matches('/').to_string();
                builder = builder.with_endpoint(&e).with_virtual_hosted_style_request(false);
                e
            }
            None => {
                builder = builder.with_virtual_hosted_style_request(true);
                format!("https://{bucket}.s3.{region}.amazonaws.com")
            }
        };
        let client = builder.build().map_err(|e| Error::BadLocation { location: location.clone(), reason: e.to_string() })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("start", location.clone(), e))?;
        Ok(S3 {
            bucket,
            prefix,
            endpoint,
            client,
            rt,
            concurrency: if concurrency == 0 { S3_CONCURRENCY } else { concurrency },
            list_page: LIST_PAGE,
            bucket_seen: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Lists in pages of `n` objects (tests use small pages to exercise
    /// continuation).
    pub fn with_list_page(mut self, n: usize) -> Self {
        self.list_page = n.clamp(1, LIST_PAGE);
        self
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() { path.to_string() } else { format!("{}/{path}", self.prefix) }
    }

    fn obj(&self, path: &str) -> Path {
        Path::from(self.key(path))
    }

    /// Lists at most one key under the store's prefix: proves the bucket
    /// exists, the credentials work and the endpoint answers.
    fn probe(&self) -> Result<bool> {
        let root = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let opts = PaginatedListOptions { max_keys: Some(1), ..Default::default() };
        let page = self
            .rt
            .block_on(self.client.list_paginated((!root.is_empty()).then_some(root.as_str()), opts))
            .map_err(|e| self.error("list", &root, e))?;
        self.bucket_seen.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(!page.result.objects.is_empty())
    }

    /// One page of keys under `prefix` (raw key prefix), from `token`.
    fn page(&self, prefix: &str, token: Option<String>) -> Result<(Vec<ObjectInfo>, Option<String>)> {
        let opts = PaginatedListOptions { max_keys: Some(self.list_page), page_token: token, ..Default::default() };
        let page = self
            .rt
            .block_on(self.client.list_paginated((!prefix.is_empty()).then_some(prefix), opts))
            .map_err(|e| self.error("list", prefix, e))?;
        let root = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let objects = page
            .result
            .objects
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref();
                key.strip_prefix(&root).map(|rel| ObjectInfo { path: rel.to_string(), size: m.size })
            })
            .collect();
        Ok((objects, page.page_token))
    }

    /// Turns a client error into the store's error: a missing bucket,
    /// refused credentials and an unreachable endpoint get their own
    /// variants; a missing object is [`Error::NotFound`].
    fn error(&self, op: &'static str, path: &str, e: object_store::Error) -> Error {
        let text = chain_text(&e);
        let code = xml_field(&text, "Code");
        let detail = || match (xml_field(&text, "Code"), xml_field(&text, "Message")) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c,
            _ => last_line(&text),
        };
        if code.as_deref() == Some("NoSuchBucket") {
            return Error::NoSuchBucket { bucket: self.bucket.clone(), endpoint: self.endpoint.clone() };
        }
        let denied_code = matches!(
            code.as_deref(),
            Some(
                "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken"
                    | "AuthorizationHeaderMalformed"
            )
        );
        if denied_code || matches!(e, object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) {
            return Error::AccessDenied { location: self.location(), detail: detail() };
        }
        if let object_store::Error::NotFound { .. } = e {
            return Error::NotFound(path.to_string());
        }
        if let Some(kind) = http_kind(&e) {
            use object_store::client::HttpErrorKind as K;
            if matches!(kind, K::Connect) {
                return Error::Unreachable { endpoint: self.endpoint.clone(), detail: last_line(&text) };
            }
        }
        Error::io(op, path, std::io::Error::other(detail()))
    }
}

/// Every message in the error's source chain, joined.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// The HTTP error kind somewhere in the chain.
fn http_kind(e: &(dyn std::error::Error + 'static)) -> Option<object_store::client::HttpErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(h) = c.downcast_ref::<object_store::client::HttpError>() {
            return Some(h.kind());
        }
        cur = c.source();
    }
    None
}

/// `<Name>value</Name>` in an S3 error body.
fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim().to_string())
}

/// The innermost cause, which says most (connection refused, timed out).
fn last_line(text: &str) -> String {
    text.rsplit(": ").find(|s| !s.trim().is_empty()).unwrap_or(text).trim().to_string()
}

impl Backend for S3 {
    fn location(&self) -> String {
        s3_location(&self.bucket, &self.prefix)
    }

    /// Checks that the bucket exists and the credentials may list it (one
    /// request); buckets themselves are never created. A prefix that holds
    /// other objects but no store is refused like a non-empty folder.
    fn create(&self) -> Result<()> {
        if self.probe()? && !self.exists(crate::layout::CONFIG_PATH)? {
            return Err(Error::NotEmpty(self.location().into()));
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let key_prefix = if self.prefix.is_empty() {
            prefix.to_string()
        } else if prefix.is_empty() {
            format!("{}/", self.prefix)
        } else {
            self.key(prefix)
        };
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (objects, next) = self.page(&key_prefix, token)?;
            out.extend(objects);
            match next {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let obj = self.obj(path);
        self.rt
            .block_on(async {
                let r = self.client.get(&obj).await?;
                r.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| self.error("read", path, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        Ok(self.read_ranges(path, &[(offset, len)])?.pop().unwrap_or_default())
    }

    /// Ranged GETs; `object_store` merges close ranges and sends the rest
    /// in parallel.
    fn read_ranges(&self, path: &str, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let obj = self.obj(path);
        let want: Vec<Range<u64>> = ranges.iter().map(|&(o, l)| o..o.saturating_add(l)).collect();
        let truncated = |o: u64, l: u64| Error::Damaged {
            what: path.to_string(),
            reason: format!("object ends before {l} bytes at offset {o} (truncated)"),
        };
        // A range past the end is refused by the server (416) or cut short:
        // both mean the object is shorter than its index says.
        let got = match self.rt.block_on(self.client.get_ranges(&obj, &want)) {
            Ok(got) => got,
            Err(e) => {
                return Err(match self.error("read", path, e) {
                    // A range past the end is refused (416) or rejected by
                    // the client: the object is shorter than the index says.
                    e @ Error::Io { .. } => match self.rt.block_on(self.client.head(&obj)) {
                        Ok(m) => match ranges.iter().find(|&&(o, l)| o.saturating_add(l) > m.size) {
                            Some(&(o, l)) => truncated(o, l),
                            None => e,
                        },
                        Err(_) => e,
                    },
                    e => e,
                });
            }
        };
        ranges.iter().zip(got).map(|(&(o, l), b)| if b.len() as u64 == l { Ok(b.to_vec()) } else { Err(truncated(o, l)) }).collect()
    }

    /// One PUT: the object appears whole or not at all. Writing an existing
    /// name again stores the same bytes (names are content hashes).
    fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let obj = self.obj(path);
        let payload = PutPayload::from(bytes.to_vec());
        self.rt.block_on(self.client.put(&obj, payload)).map(|_| ()).map_err(|e| self.error("write", path, e))
    }

    fn exists(&self, path: &str) -> Result<bool> {
        match self.rt.block_on(self.client.head(&self.obj(path))) {
            Ok(_) => Ok(true),
            Err(e) => match self.error("stat", path, e) {
                Error::NotFound(_) => {
                    // A HEAD's 404 has no body to tell a missing bucket
                    // from a missing object: ask once.
                    if !self.bucket_seen.load(std::sync::atomic::Ordering::Relaxed) {
                        self.probe()?;
                    }
                    Ok(false)
                }
                e => Err(e),
            },
        }
    }

    fn delete(&self, path: &str) -> Result<()> {
        match self.rt.block_on(self.client.delete(&self.obj(path))) {
            Ok(()) => Ok(()),
            Err(e) => match self.error("delete", path, e) {
                Error::NotFound(_) => Ok(()),
                e => Err(e),
            },
        }
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read() {
        let body = "Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>Bucket not found: x</Message></Error>";
        assert_eq!(xml_field(body, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_field(body, "Message").as_deref(), Some("Bucket not found: x"));
        assert_eq!(xml_field(body, "Resource"), None);
        assert_eq!(last_line("a: b: connection refused"), "connection refused");
    }
}
