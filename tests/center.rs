//! The Sync Center (`ferry center`) end to end: the real binary serves
//! two real replicas with a real conflict, and a real headless Chromium
//! (Debian's `chromium`, driven over the DevTools protocol) reads the page
//! and clicks a resolve button; the file on disk must change. Plain HTTP
//! from the test checks the guard: no token, a wrong token, a foreign
//! Host, a POST without or with a wrong CSRF token, a GET on an action.
//!
//! Chromium is required: without it the test fails and says how to
//! install it (`ci/install-test-deps.sh`), it never skips.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use serde_json::{Value, json};

const KDF: [&str; 4] = ["--kdf-memory-kib", "64", "--kdf-iterations", "1"];

fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser"] {
        if let Ok(o) = Command::new("sh").args(["-c", &format!("command -v {c}")]).output()
            && o.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        }
    }
    panic!("tests/center.rs needs Debian's `chromium` (headless): run ci/install-test-deps.sh or `apt-get install chromium`");
}

/// A running `ferry center`, stopped (SIGINT, exit 0 checked) when dropped.
struct Center {
    child: Child,
    url: String,
    addr: String,
    token: String,
}

impl Center {
    fn start(env: &Env) -> Center {
        let mut child = env.cmd().args(["center", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let _ = child.kill();
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("ferry center printed {line:?}: {err}")
        });
        let url = v["url"].as_str().unwrap().to_string();
        let addr = v["listen"].as_str().unwrap().to_string();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        let token = url.split("token=").nth(1).unwrap().to_string();
        assert!(token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        Center { child, url, addr, token }
    }

    fn stop(mut self) {
        assert!(Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert_eq!(s.code(), Some(0), "ferry center after SIGINT");
                return;
            }
            assert!(Instant::now() < deadline, "ferry center did not stop after SIGINT");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Center {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped (a failed assertion leaves nothing running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One plain HTTP/1.1 exchange: status, headers (lower-case names), body.
fn http(addr: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req += &format!("Host: {addr}\r\n");
    }
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    // Read the head, then Content-Length bytes (Chromium's DevTools
    // server keeps the connection open whatever the request says).
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status = status_line.split(' ').nth(1).unwrap_or_else(|| panic!("{target}: {status_line:?}")).parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut body = Vec::new();
    match header(&headers, "content-length").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).unwrap();
        }
        // Chunked bodies are read whole (the chunk sizes stay in: checks look for substrings).
        None => {
            r.read_to_end(&mut body).unwrap();
        }
    }
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Headless Chromium with the DevTools protocol over a websocket.
struct Browser {
    child: Child,
    /// Set once connected (the struct exists from the spawn on, so a
    /// failed launch still kills the browser when dropped).
    ws: Option<tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>>,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let port_file = profile.path().join("DevToolsActivePort");
        let mut b = Browser { child, ws: None, next: 0, _profile: profile };
        // Chromium writes the port it chose into the profile.
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(t) = std::fs::read_to_string(&port_file)
                && let Some(p) = t.lines().next().filter(|p| !p.is_empty())
            {
                break p.to_string();
            }
            assert!(Instant::now() < deadline, "chromium did not open its DevTools port");
            std::thread::sleep(Duration::from_millis(100));
        };
        let dev = format!("127.0.0.1:{port}");
        let (_, _, body) = http(&dev, "GET", "/json/list", &[], "");
        let targets: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/json/list: {e}: {body}"));
        let page = targets.as_array().unwrap().iter().find(|t| t["type"] == "page").expect("a page target");
        let ws_url = page["webSocketDebuggerUrl"].as_str().unwrap();
        b.ws = Some(tungstenite::connect(ws_url).unwrap().0);
        b.call("Page.enable", json!({}));
        b
    }

    /// Sends one command and waits for its answer (events are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let ws = self.ws.as_mut().expect("connected");
        ws.send(tungstenite::Message::text(json!({"id": id, "method": method, "params": params}).to_string())).unwrap();
        loop {
            let msg = ws.read().unwrap();
            let Ok(text) = msg.to_text() else { continue };
            let v: Value = serde_json::from_str(text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page; returns its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true, "awaitPromise": true}));
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    fn wait_for(&mut self, expr: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true}));
            if r["result"]["value"] == json!(true) {
                return;
            }
            if Instant::now() >= deadline {
                let page = self.call(
                    "Runtime.evaluate",
                    json!({"expression": "location.href + '\\n' + document.body.innerText", "returnByValue": true}),
                );
                panic!("timed out waiting for {what}; the page: {}", page["result"]["value"]);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for("document.readyState === 'complete' && location.href.indexOf('token=') < 0", "the page to load");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two replicas, alpha and beta, of one store, with `notes.txt` edited
/// on both and synced: alpha holds a conflict copy.
fn two_replicas_with_a_conflict(env: &Env) -> String {
    let a = env.path("alpha");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("notes.txt"), "first\n").unwrap();
    std::fs::write(a.join("readme.md"), "hello\n").unwrap();
    let mut args = vec!["init", a.to_str().unwrap(), "--name", "alpha"];
    args.extend(KDF);
    env.ok(&args);
    let st = env.path("store").to_str().unwrap().to_string();
    let mut args = vec!["-C", a.to_str().unwrap(), "store", "init", &st, "--like", "."];
    args.extend(KDF);
    env.ok(&args);
    env.ok(&["-C", a.to_str().unwrap(), "push", &st]);
    let b = env.path("beta");
    let mut args = vec!["clone", &st, b.to_str().unwrap(), "--name", "beta"];
    args.extend(KDF);
    env.ok(&args);
    std::fs::write(a.join("notes.txt"), "mine: alpha's edit\n").unwrap();
    std::fs::write(b.join("notes.txt"), "theirs: beta's edit, longer\n").unwrap();
    env.sync_json("beta", &[&st]);
    env.sync_json("alpha", &[&st]);
    // The copy is a file like any other: beta takes it in too.
    env.sync_json("beta", &[&st]);
    assert_eq!(conflict_copies(&a).len(), 1, "alpha holds one conflict copy");
    assert_eq!(conflict_copies(&b).len(), 1, "beta holds it too");
    st
}

fn conflict_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains(".conflict-")).collect()
}

#[test]
fn the_sync_center_shows_replicas_stores_and_conflicts_and_resolves_one_in_chromium() {
    let chromium = chromium();
    let env = Env::new();
    let st = two_replicas_with_a_conflict(&env);
    let (alpha, beta) = (env.path("alpha").canonicalize().unwrap(), env.path("beta").canonicalize().unwrap());
    // A registered replica whose folder is gone shows as missing.
    let gamma = env.path("gamma");
    let mut args = vec!["init", gamma.to_str().unwrap(), "--name", "gamma"];
    args.extend(KDF);
    env.ok(&args);
    let gamma = gamma.canonicalize().unwrap();
    std::fs::remove_dir_all(&gamma).unwrap();
    let center = Center::start(&env);
    let addr = center.addr.clone();

    // --- The guard, over plain HTTP.
    let (s, _, body) = http(&addr, "GET", "/", &[], "");
    assert_eq!(s, 403, "no token: {body}");
    assert!(!body.contains("alpha"), "a refusal shows nothing");
    let (s, _, _) = http(&addr, "GET", "/?token=00112233445566778899aabbccddeeff", &[], "");
    assert_eq!(s, 403, "a wrong token");
    let (s, h, _) = http(&addr, "GET", &format!("/?token={}", center.token), &[], "");
    assert_eq!(s, 303, "the token is traded for a cookie");
    assert_eq!(header(&h, "location"), Some("/"));
    let set_cookie = header(&h, "set-cookie").unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let evil_host = format!("rebound.example:{}", addr.split(':').nth(1).unwrap());
    let (s, _, _) = http(&addr, "GET", "/", &[("Cookie", &cookie), ("Host", &evil_host)], "");
    assert_eq!(s, 403, "a foreign Host header (DNS rebinding)");
    let (s, h, body) = http(&addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(s, 200, "{body}");
    assert!(header(&h, "content-security-policy").is_some_and(|c| c.contains("default-src 'none'")));
    assert!(body.contains(&alpha.to_string_lossy().to_string()) && body.contains(&beta.to_string_lossy().to_string()));
    let form = format!("root={}&path=notes.txt&keep=mine", alpha.display());
    let post = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let (s, _, _) = http(&addr, "POST", "/resolve", &post, &form);
    assert_eq!(s, 403, "a POST without the CSRF token");
    let (s, _, _) = http(&addr, "POST", "/resolve", &post, &format!("csrf={}&{form}", center.token));
    assert_eq!(s, 403, "a POST with a wrong CSRF token");
    let csrf = body.split(r#"name="csrf" value=""#).nth(1).and_then(|r| r.split('"').next()).expect("a CSRF field on the page").to_string();
    let foreign = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded"), ("Origin", "http://evil.example")];
    let (s, _, _) = http(&addr, "POST", "/resolve", &foreign, &format!("csrf={csrf}&{form}"));
    assert_eq!(s, 403, "a POST from another origin, even with the CSRF token");
    let (s, _, _) = http(&addr, "GET", &format!("/resolve?{form}"), &[("Cookie", &cookie)], "");
    assert_eq!(s, 405, "no GET changes state");
    assert_eq!(conflict_copies(&alpha).len(), 1, "nothing was resolved by refused requests");

    // --- A watch shows in the live panel.
    let mut watch =
        Running(env.cmd().args(["-C", beta.to_str().unwrap(), "watch", "--interval", "1s"]).stdout(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, _, body) = http(&addr, "GET", "/live", &[("Cookie", &cookie)], "");
        assert_eq!(s, 200);
        if body.contains(&format!(r#"class="watching" data-root="{}""#, beta.display())) && body.contains(&st) {
            break;
        }
        assert!(Instant::now() < deadline, "the live panel never showed beta's watch: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(Command::new("kill").args(["-INT", &watch.0.id().to_string()]).status().unwrap().success());
    assert_eq!(watch.0.wait().unwrap().code(), Some(0));
    let (_, _, body) = http(&addr, "GET", "/live", &[("Cookie", &cookie)], "");
    assert!(!body.contains(r#"class="watching""#), "a stopped watch leaves the live panel: {body}");
    assert!(!beta.join(".ferry/watch.json").exists(), "and removes its state file");

    // --- The page in Chromium: the DOM shows the replicas, the store, the conflict.
    let mut b = Browser::launch();
    b.goto(&center.url);
    // The live panel polls /live (its one script runs under the page's CSP).
    let first = b.eval("document.querySelector('#live [data-updated]').dataset.updated");
    b.wait_for(&format!("document.querySelector('#live [data-updated]').dataset.updated !== {first}"), "the live panel to refresh itself");
    let roots = b.eval("JSON.stringify([...document.querySelectorAll('section.replica')].map(s => s.dataset.root))");
    let roots: Vec<String> = serde_json::from_str(roots.as_str().unwrap()).unwrap();
    assert_eq!(roots, vec![alpha.to_string_lossy().to_string(), beta.to_string_lossy().to_string(), gamma.to_string_lossy().to_string()]);
    let gamma_card = b.eval(&format!("document.querySelector('section.replica[data-root=\"{}\"]').textContent", gamma.display()));
    assert!(
        gamma_card.as_str().unwrap().contains("missing") && gamma_card.as_str().unwrap().contains("Nothing was changed"),
        "{gamma_card}"
    );
    assert_eq!(b.eval("document.querySelectorAll('section.replica form').length > 0"), json!(true));
    assert_eq!(
        b.eval(&format!("document.querySelectorAll('section.replica[data-root=\"{}\"] form').length", gamma.display())),
        json!(0),
        "nothing is offered for a missing replica"
    );
    let names = b.eval("[...document.querySelectorAll('section.replica h2')].map(h => h.textContent).join('|')");
    assert!(names.as_str().unwrap().contains("alpha") && names.as_str().unwrap().contains("beta"), "{names}");
    let stores =
        b.eval("[...document.querySelectorAll('section.replica tr.store')].map(r => r.dataset.location + ' ' + r.textContent).join('|')");
    let stores = stores.as_str().unwrap();
    assert_eq!(stores.matches(&st).count(), 4, "each replica lists the store (location in data and text): {stores}");
    assert!(stores.contains("yes"), "reachable: {stores}");
    let conflict = b.eval(&format!(
        "[...document.querySelectorAll('section.replica[data-root=\"{}\"] .conflict')].map(c => c.dataset.path).join('|')",
        alpha.display()
    ));
    assert_eq!(conflict, json!("notes.txt"), "alpha's card shows the conflict");
    let beta_conflicts =
        b.eval(&format!("document.querySelectorAll('section.replica[data-root=\"{}\"] .conflict').length", beta.display()));
    assert_eq!(beta_conflicts, json!(1), "and so does beta's");

    // The screenshot, kept as an artefact.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("center.png");
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(&chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--window-size=1280,900"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(&center.url)
        .output()
        .unwrap();
    assert!(o.status.success(), "chromium --screenshot: {}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000, "{} is a PNG of the page", png.display());
    eprintln!("screenshot: {}", png.display());

    // --- Resolve through the page: keep the version in the copy (which
    // edit won the path depends on the two mtimes; the other is the copy).
    let copy = conflict_copies(&alpha).remove(0);
    let copy_name = copy.file_name().unwrap().to_string_lossy().to_string();
    let kept = std::fs::read_to_string(&copy).unwrap();
    let lost = std::fs::read_to_string(alpha.join("notes.txt")).unwrap();
    assert_ne!(kept, lost);
    b.eval(&format!(
        "document.querySelector('section.replica[data-root=\"{}\"] .conflict[data-path=\"notes.txt\"] button[data-keep=\"{copy_name}\"]').click(); true",
        alpha.display()
    ));
    b.wait_for(
        "document.readyState === 'complete' && !!(document.getElementById('notice') || document.querySelector('div.error'))",
        "the page after resolving",
    );
    let failed = b.eval("document.querySelector('div.error') ? document.querySelector('div.error').textContent : ''");
    assert_eq!(failed, json!(""), "resolving through the page failed");
    let notice = b.eval("document.getElementById('notice').textContent");
    assert!(notice.as_str().unwrap().contains("notes.txt"), "{notice}");
    assert!(conflict_copies(&alpha).is_empty(), "the copy is gone: {:?}", conflict_copies(&alpha));
    assert_eq!(std::fs::read_to_string(alpha.join("notes.txt")).unwrap(), kept, "the copy's version holds the path");
    let left = b.eval(&format!("document.querySelectorAll('section.replica[data-root=\"{}\"] .conflict').length", alpha.display()));
    assert_eq!(left, json!(0), "alpha's card shows no conflict any more");
    // --- A path's history: the version that lost comes back with "restore this version".
    b.eval(&format!(
        "const f = document.querySelector('section.replica[data-root=\"{}\"] form.history'); f.querySelector('input[name=path]').value = 'notes.txt'; f.querySelector('button').click(); true",
        alpha.display()
    ));
    b.wait_for("document.readyState === 'complete' && !!document.querySelector('section.history')", "the history page");
    let rows = b.eval(
        "JSON.stringify([...document.querySelectorAll('tr.version')].map(r => [r.dataset.version, r.dataset.size, r.dataset.current]))",
    );
    let rows: Vec<(String, String, String)> = serde_json::from_str(rows.as_str().unwrap()).unwrap();
    assert!(rows.len() >= 3, "first, alpha's and beta's versions: {rows:?}");
    assert_eq!(rows.iter().filter(|r| r.2 == "true").count(), 1, "one is current: {rows:?}");
    let lost_row = rows.iter().find(|r| r.1 == lost.len().to_string() && r.2 == "false").unwrap_or_else(|| panic!("{rows:?}"));
    b.eval(&format!("document.querySelector('form.restore button[data-version=\"{}\"]').click(); true", lost_row.0));
    b.wait_for(
        "document.readyState === 'complete' && !!(document.getElementById('notice') || document.querySelector('div.error'))",
        "the page after restoring",
    );
    let failed = b.eval("document.querySelector('div.error') ? document.querySelector('div.error').textContent : ''");
    assert_eq!(failed, json!(""), "restoring through the page failed");
    assert_eq!(std::fs::read_to_string(alpha.join("notes.txt")).unwrap(), lost, "the restored version is back at the path");
    let kept = lost;

    // The choice reaches beta through the store.
    env.sync_json("beta", &[&st]);
    assert_eq!(std::fs::read_to_string(beta.join("notes.txt")).unwrap(), kept);
    assert!(conflict_copies(&beta).is_empty());
    drop(b);
    center.stop();
}

#[test]
fn a_non_loopback_listen_address_is_refused() {
    let env = Env::new();
    let o = env.run(&["center", "--listen", "0.0.0.0:8385"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("loopback only"), "{err}");
}

#[test]
fn without_a_key_the_center_shows_state_and_refuses_actions() {
    let env = Env::new();
    two_replicas_with_a_conflict(&env);
    let alpha = env.path("alpha").canonicalize().unwrap();
    let mut child = Running(
        env.cmd()
            .env_remove("FERRY_PASSWORD")
            .args(["center", "--json", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let (addr, url) = (v["listen"].as_str().unwrap(), v["url"].as_str().unwrap());
    let token = url.split("token=").nth(1).unwrap();
    let (_, h, _) = http(addr, "GET", &format!("/?token={token}"), &[], "");
    let cookie = header(&h, "set-cookie").unwrap().split(';').next().unwrap().to_string();
    let (s, _, body) = http(addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(s, 200);
    assert!(body.contains("Started without a key") && body.contains(r#"data-path="notes.txt""#), "state is shown");
    let csrf = body.split(r#"name="csrf" value=""#).nth(1).and_then(|r| r.split('"').next()).unwrap();
    let post = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let (s, _, body) = http(addr, "POST", "/resolve", &post, &format!("csrf={csrf}&root={}&path=notes.txt&keep=mine", alpha.display()));
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("no key"), "{body}");
    assert_eq!(conflict_copies(&alpha).len(), 1, "nothing changed");
}
