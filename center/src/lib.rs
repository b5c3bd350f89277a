//! # ferry-center
//!
//! `ferry center`: the Sync Center, a local web page that shows every
//! replica on this machine and lets a person settle what needs a person.
//! Server-rendered HTML over HTTP/1 on loopback (axum on a small tokio
//! runtime); no external assets, no build chain: one inline stylesheet
//! and one line of script (the live view polls `/live`).
//!
//! ## Map
//! - [`Center`] (`server.rs`): binds `--listen` (loopback only), makes the
//!   tokens, serves the routes until [`Stopper::stop`]. Routes: `GET /`
//!   (overview), `GET /live` (the live panel, polled every 2 s),
//!   `GET /history` (a path's versions), `POST /resolve`, `POST /restore`.
//! - `security.rs`: the access token (URL, then an `HttpOnly;
//!   SameSite=Strict` cookie), the `Host` check against DNS rebinding, the
//!   CSRF token of every form, the `Origin` check, the response headers
//!   (Content-Security-Policy with a script nonce, no framing, no referrer to
//!   other sites, no caching).
//! - `view.rs`: what a page shows, read from the libraries: the replica
//!   registry ([`ferry_sync::registry`]), each replica opened without its
//!   key and dropped at once (busy when another process holds it), its
//!   stores ([`ferry_sync::replica::Replica::remotes`]) probed without key
//!   or lock ([`ferry_store::Store::peek_snapshots`], 3 s at most), local
//!   changes ([`ferry_sync::scan::status`]), conflicts
//!   ([`ferry_sync::resolve::list`]), a running
//!   watch's state ([`ferry_sync::watchstate`]) and the block caches
//!   ([`ferry_mount::status`]). [`KeySource`] is how actions get keys: the
//!   CLI passes a key file's key or a passphrase; the server never prompts.
//! - `actions.rs`: what the buttons do: resolve ([`ferry_sync::resolve`]),
//!   restore and a path's history ([`ferry_sync::versions`]), each with
//!   every store the replica syncs with.
//! - `pages.rs`, `html.rs`: rendering (escaping, relative times, human
//!   sizes, status colours).
//!
//! Every library call blocks, so handlers run them on tokio's blocking
//! pool; nothing is cached between requests but derived replica keys.
#![deny(missing_docs)]

mod actions;
mod error;
mod html;
mod pages;
mod security;
mod server;
mod view;

pub use error::{Error, Result};
pub use security::check_listen;
pub use server::{Center, CenterOptions, Stopper};
pub use view::KeySource;
