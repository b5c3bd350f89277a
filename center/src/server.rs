//! The HTTP server: binding, routes, the guard every request passes, and
//! clean shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_store::CacheLocation;
use ferry_sync::registry::Registry;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::security::{Guard, check_listen, query_param, query_without};
use crate::view::{KeySource, Keys};
use crate::{actions, pages};

/// What `ferry center` starts with.
pub struct CenterOptions {
    /// `--listen`: a loopback `IP:PORT` (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// The replica registry to show.
    pub registry: Registry,
    /// How stores are opened for actions: their index caches.
    pub cache: CacheLocation,
    /// The cache folder whose block caches are shown (`ferry cache status`).
    pub cache_dir: Option<PathBuf>,
    /// Keys for actions; [`KeySource::None`] shows state only.
    pub keys: KeySource,
    /// The host recorded in snapshots a replica without a name writes.
    pub host: String,
}

/// The shared state of the running server.
pub(crate) struct App {
    pub guard: Guard,
    pub registry: Registry,
    pub keys: Keys,
    pub cache: CacheLocation,
    pub cache_dir: Option<PathBuf>,
    pub host: String,
    pub addr: SocketAddr,
}

/// A bound, not yet serving, Sync Center.
pub struct Center {
    listener: std::net::TcpListener,
    app: Arc<App>,
    stop: Arc<Notify>,
}

/// Stops a running [`Center`] (from a signal handler's thread).
#[derive(Clone)]
pub struct Stopper(Arc<Notify>);

impl Stopper {
    /// Ends [`Center::run`]: requests under way finish, then it returns.
    pub fn stop(&self) {
        // notify_one keeps a permit when nobody waits yet.
        self.0.notify_one();
    }
}

impl Center {
    /// Checks `--listen` (loopback only), binds it and makes the tokens.
    pub fn bind(opts: CenterOptions) -> Result<Center> {
        let addr = check_listen(&opts.listen)?;
        let listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| Error::Bind { addr, source })?;
        let app = App {
            guard: Guard::new(addr),
            registry: opts.registry,
            keys: Keys::new(opts.keys),
            cache: opts.cache,
            cache_dir: opts.cache_dir,
            host: opts.host,
            addr,
        };
        Ok(Center { listener, app: Arc::new(app), stop: Arc::new(Notify::new()) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.app.addr
    }

    /// The URL to open: it carries the access token.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.app.addr, self.app.guard.token)
    }

    /// A handle that ends [`Center::run`].
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Serves until stopped.
    pub fn run(self) -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(Error::Server)?;
        let Center { listener, app, stop } = self;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(Error::Server)?;
            axum::serve(listener, router(app)).with_graceful_shutdown(async move { stop.notified().await }).await.map_err(Error::Server)
        })?;
        // Open keep-alive connections (the live view's polling) do not hold the exit.
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
        Ok(())
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/live", get(live))
        .route("/history", get(history))
        .route("/resolve", post(resolve))
        .route("/restore", post(restore))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// A refusal, as a small plain page.
fn refused(status: StatusCode, why: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("ferry center: {why}\n")).into_response()
}

/// Every request: the Host check, the access token (query once, then the
/// cookie), the Origin check for POSTs; then the security headers on
/// whatever is answered.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut resp = check(&app, req, next).await;
    let h = resp.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&app.guard.csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: with it browsers send `Origin: null` on our own
    // form posts, and the Origin check could not tell them from a sandboxed
    // foreign page. `same-origin` still sends nothing to other sites.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn check(app: &App, req: Request, next: Next) -> Response {
    let g = &app.guard;
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    if !g.host_ok(host) {
        return refused(StatusCode::FORBIDDEN, "this page answers only to its loopback address (Host header refused)");
    }
    if let Some(q) = req.uri().query()
        && let Some(t) = query_param(q, "token")
    {
        if !g.token_ok(t) {
            return refused(StatusCode::FORBIDDEN, "wrong access token: open the URL `ferry center` printed");
        }
        // The token moves into a cookie and out of the address bar.
        let rest = query_without(q, "token");
        let to = if rest.is_empty() { req.uri().path().to_string() } else { format!("{}?{rest}", req.uri().path()) };
        return (StatusCode::SEE_OTHER, [(header::LOCATION, to), (header::SET_COOKIE, g.set_cookie())]).into_response();
    }
    if !g.cookie_ok(req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok())) {
        return refused(StatusCode::FORBIDDEN, "no access token: open the URL `ferry center` printed (it carries the token)");
    }
    if req.method() == Method::POST && !g.origin_ok(req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok())) {
        return refused(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    next.run(req).await
}

/// Runs blocking library work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|p| std::panic::resume_unwind(p.into_panic()))
}

#[derive(Deserialize)]
struct OverviewQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn overview(State(app): State<Arc<App>>, Query(q): Query<OverviewQuery>) -> Response {
    let page = blocking(move || pages::overview(&app, q.done.as_deref())).await;
    match page {
        Ok(html) => Html(html).into_response(),
        Err(e) => error_page(&e),
    }
}

async fn live(State(app): State<Arc<App>>) -> Response {
    let frag = blocking(move || pages::live(&app)).await;
    match frag {
        Ok(html) => Html(html).into_response(),
        Err(e) => error_page(&e),
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    root: PathBuf,
    path: String,
    #[serde(default)]
    store: Option<String>,
}

async fn history(State(app): State<Arc<App>>, Query(q): Query<HistoryQuery>) -> Response {
    let page = blocking(move || pages::history(&app, &q.root, &q.path, q.store.as_deref())).await;
    match page {
        Ok(html) => Html(html).into_response(),
        Err(e) => error_page(&e),
    }
}

/// The CSRF field is optional in the form types so that a missing one is
/// a 403 like a wrong one (not the extractor's 422).
#[derive(Deserialize)]
struct ResolveForm {
    #[serde(default)]
    csrf: String,
    root: PathBuf,
    path: String,
    keep: String,
}

async fn resolve(State(app): State<Arc<App>>, Form(f): Form<ResolveForm>) -> Response {
    if !app.guard.csrf_ok(&f.csrf) {
        return refused(StatusCode::FORBIDDEN, "missing or wrong CSRF token: reload the page and try again");
    }
    let done = blocking(move || actions::resolve(&app, &f.root, &f.path, &f.keep)).await;
    after_action(done)
}

#[derive(Deserialize)]
struct RestoreForm {
    #[serde(default)]
    csrf: String,
    root: PathBuf,
    store: String,
    path: String,
    version: String,
}

async fn restore(State(app): State<Arc<App>>, Form(f): Form<RestoreForm>) -> Response {
    if !app.guard.csrf_ok(&f.csrf) {
        return refused(StatusCode::FORBIDDEN, "missing or wrong CSRF token: reload the page and try again");
    }
    let done = blocking(move || actions::restore(&app, &f.root, &f.store, &f.path, &f.version)).await;
    after_action(done)
}

/// Post/redirect/get: back to the overview with what was done.
fn after_action(done: Result<String>) -> Response {
    match done {
        Ok(msg) => Redirect::to(&format!("/?done={}", crate::html::url_enc(&msg))).into_response(),
        Err(e) => error_page(&e),
    }
}

fn error_page(e: &Error) -> Response {
    let status = match e {
        Error::NotRegistered { .. } | Error::NotARemote { .. } | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::NoKey { .. } => StatusCode::FORBIDDEN,
        Error::Sync(ferry_sync::Error::ReplicaBusy { .. }) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Html(pages::error(e))).into_response()
}
