//! The binary's Admin UI: its settings (`--admin-ui` and the `--admin-*` flags), the server side
//! from `socketlet-ops` ([`socketlet_ops::AdminUi`]), and the official UI's files, embedded at
//! build time (see `build.rs`) and served under `--admin-ui-path`.
//!
//! The page is the package's own, with two changes made when it is embedded (its links to other
//! sites: Google's Roboto font is dropped, the icon font is embedded) and one when it is served:
//! a short script that presets the UI's connection form with this server's Socket.IO path and
//! admin namespace (only where the browser has no saved settings). The person still types the
//! server's URL (this page's address without the path) and logs in.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use socketlet::SocketIo;
use socketlet_ops::{AdminAuth, AdminConfig, AdminMode, AdminUi, RedisSessionStore};
use std::convert::Infallible;
use std::future::Ready;
use std::task::{Context, Poll};

// Defines `ADMIN_UI_FILES` (`&[(&str, &[u8])]`: path under the UI's URL, bytes) and
// `ADMIN_UI_VERSION` (`Option<&str>`).
include!(concat!(env!("OUT_DIR"), "/admin_ui.rs"));

/// The version of the embedded `@socket.io/admin-ui`, if the build embedded it.
pub const VERSION: Option<&str> = ADMIN_UI_VERSION;

/// The Admin UI's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct AdminArgs {
    /// Serve the official Socket.IO Admin UI (at --admin-ui-path) and its server side (the
    /// --admin-namespace namespace). Needs --admin-username and --admin-password-hash, or
    /// --admin-no-auth.
    #[arg(long, env = "SOCKETLET_ADMIN_UI")]
    pub admin_ui: bool,
    /// The Admin UI's user name.
    #[arg(long, env = "SOCKETLET_ADMIN_USERNAME")]
    pub admin_username: Option<String>,
    /// The bcrypt hash of the Admin UI's password (never the password), as Node's
    /// instrument() takes it: e.g. `htpasswd -nbBC 10 "" 'the password' | cut -d: -f2`.
    #[arg(long, env = "SOCKETLET_ADMIN_PASSWORD_HASH", hide_env_values = true)]
    pub admin_password_hash: Option<String>,
    /// Let anyone who reaches the server use the Admin UI, without a login (Node's `auth:
    /// false`).
    #[arg(long, env = "SOCKETLET_ADMIN_NO_AUTH")]
    pub admin_no_auth: bool,
    /// The Admin UI only watches: its commands (emit, join, leave, disconnect) are refused.
    #[arg(long, env = "SOCKETLET_ADMIN_READONLY")]
    pub admin_readonly: bool,
    /// `development`: the UI sees every socket, room and event (Node's default);
    /// `production`: counts only.
    #[arg(long, env = "SOCKETLET_ADMIN_MODE", default_value = "development")]
    pub admin_mode: AdminModeArg,
    /// The admin namespace the UI connects to.
    #[arg(long, env = "SOCKETLET_ADMIN_NAMESPACE", default_value = "/admin")]
    pub admin_namespace: String,
    /// This node's name in the UI's list of servers. Default: the host name; give each node
    /// on one host its own.
    #[arg(long, env = "SOCKETLET_ADMIN_SERVER_ID")]
    pub admin_server_id: Option<String>,
    /// Where the UI's page is served.
    #[arg(long, env = "SOCKETLET_ADMIN_UI_PATH", default_value = "/admin-ui")]
    pub admin_ui_path: String,
}

/// `--admin-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AdminModeArg {
    /// Everything.
    Development,
    /// Counts only.
    Production,
}

/// The server side's settings from the flags; `None` when the Admin UI is off.
pub fn config(args: &AdminArgs, socketio_path: &str) -> Result<Option<AdminConfig>, String> {
    if !args.admin_ui {
        return Ok(None);
    }
    let auth = match (
        &args.admin_username,
        &args.admin_password_hash,
        args.admin_no_auth,
    ) {
        (Some(_), _, true) | (_, Some(_), true) => {
            return Err(
                "--admin-no-auth and a login (--admin-username, --admin-password-hash) \
                        exclude each other"
                    .into(),
            )
        }
        (Some(user), Some(hash), false) => {
            AdminAuth::basic(user, hash).map_err(|e| format!("--admin-password-hash: {e}"))?
        }
        (None, None, true) => AdminAuth::none(),
        _ => {
            return Err(
                "--admin-ui needs --admin-username and --admin-password-hash (a bcrypt \
                        hash), or --admin-no-auth"
                    .into(),
            )
        }
    };
    let path = ui_prefix(&args.admin_ui_path)?;
    if path.trim_end_matches('/') == socketio_path.trim_end_matches('/') {
        return Err("--admin-ui-path must differ from --path".into());
    }
    if !args.admin_namespace.starts_with('/') || args.admin_namespace == "/" {
        return Err("--admin-namespace must start with `/` and not be `/`".into());
    }
    let mut config = AdminConfig::new(auth)
        .with_namespace(args.admin_namespace.clone())
        .with_readonly(args.admin_readonly)
        .with_mode(match args.admin_mode {
            AdminModeArg::Development => AdminMode::Development,
            AdminModeArg::Production => AdminMode::Production,
        });
    if let Some(id) = args.admin_server_id.as_ref().filter(|id| !id.is_empty()) {
        config = config.with_server_id(id.clone());
    }
    Ok(Some(config))
}

/// `--admin-ui-path` as a prefix ending in `/`.
fn ui_prefix(path: &str) -> Result<String, String> {
    let trimmed = path.trim_end_matches('/');
    if !trimmed.starts_with('/') || trimmed.len() < 2 || trimmed.contains(['?', '#']) {
        return Err(format!(
            "--admin-ui-path {path:?} must be a path like /admin-ui (not `/`)"
        ));
    }
    Ok(format!("{trimmed}/"))
}

/// Attaches the server side to `io` when the flags ask for it. In a cluster (`redis`: the
/// `--redis` URL) the sessions live in Redis, as Node's `RedisStore` keeps them, so that a UI
/// that reconnects to another node gets in with its session.
pub fn attach(
    args: &AdminArgs,
    io: &SocketIo,
    redis: Option<&str>,
) -> Result<Option<AdminUi>, String> {
    let Some(mut config) = config(args, &io.config().engine.path)? else {
        return Ok(None);
    };
    if let Some(url) = redis {
        let store = RedisSessionStore::new(url).map_err(|e| e.to_string())?;
        config = config.with_store(std::sync::Arc::new(store));
    }
    let admin = AdminUi::attach(io, config).map_err(|e| format!("the Admin UI: {e}"))?;
    tracing::info!(
        path = %args.admin_ui_path,
        namespace = admin.namespace(),
        ui = VERSION.unwrap_or("not embedded"),
        "Admin UI on"
    );
    Ok(Some(admin))
}

/// Serves the Admin UI's files under its prefix in front of `inner` (which gets everything
/// else).
#[derive(Clone)]
pub struct Files<S> {
    inner: S,
    /// `<--admin-ui-path>/`, when the Admin UI is on.
    prefix: Option<String>,
    /// The page, rendered once for this server's settings.
    index: Bytes,
}

impl<S> Files<S> {
    /// The UI's files, when `args` turn it on, for a server whose Socket.IO path is
    /// `socketio_path`.
    pub fn new(inner: S, args: &AdminArgs, socketio_path: &str) -> Files<S> {
        let prefix = args
            .admin_ui
            .then(|| ui_prefix(&args.admin_ui_path).ok())
            .flatten();
        Files {
            inner,
            prefix,
            index: Bytes::from(index_html(socketio_path, &args.admin_namespace)),
        }
    }
}

/// The embedded page with the connection form's defaults (path, namespace) set for this server.
fn index_html(socketio_path: &str, namespace: &str) -> String {
    let Some(page) = file("index.html") else {
        return String::new();
    };
    let page = String::from_utf8_lossy(page);
    let js = |s: &str| {
        // A JSON string, with what could end the script escaped.
        serde_json::Value::from(s)
            .to_string()
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    };
    let preset = format!(
        "<script>try{{var s=window.localStorage;\
         if(!s.getItem(\"path\"))s.setItem(\"path\",{});\
         if(!s.getItem(\"namespace\"))s.setItem(\"namespace\",{})}}catch(e){{}}</script>",
        js(socketio_path),
        js(namespace)
    );
    match page.find("</head>") {
        Some(at) => format!("{}{preset}{}", &page[..at], &page[at..]),
        None => format!("{preset}{page}"),
    }
}

/// An embedded file by its path under the UI's URL.
fn file(path: &str) -> Option<&'static [u8]> {
    ADMIN_UI_FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        _ => "application/octet-stream",
    }
}

/// What a build without the UI answers at its path.
const MISSING: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
<title>Socket.IO Admin UI not embedded</title>\
<h1>The Socket.IO Admin UI is not in this build</h1>\
<p>This <code>socketlet</code> binary was built without the Admin UI's files. To embed them, \
run <code>npm ci --prefix crates/cli/admin-ui</code> in the repository (or build where npm can \
reach its registry), then rebuild. The admin namespace works without them: the hosted UI, or \
any copy of <code>@socket.io/admin-ui</code>'s <code>ui/dist</code>, can connect to this \
server.</p></html>";

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

impl<S> Files<S> {
    /// The answer for `path` when it is the UI's, else `None`.
    fn answer(&self, method: &Method, path: &str) -> Option<Response<Full<Bytes>>> {
        let prefix = self.prefix.as_deref()?;
        let bare = prefix.trim_end_matches('/');
        if path != bare && !path.starts_with(prefix) {
            return None;
        }
        if method != Method::GET && method != Method::HEAD {
            return Some(response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                Bytes::from_static(b"Method Not Allowed"),
            ));
        }
        if ADMIN_UI_FILES.is_empty() {
            return Some(response(
                StatusCode::NOT_FOUND,
                "text/html; charset=utf-8",
                Bytes::from_static(MISSING.as_bytes()),
            ));
        }
        if path == bare {
            // The page's links are relative: it must be read under the prefix.
            let mut res = response(StatusCode::MOVED_PERMANENTLY, "text/plain", Bytes::new());
            if let Ok(to) = HeaderValue::from_str(prefix) {
                res.headers_mut().insert(header::LOCATION, to);
            }
            return Some(res);
        }
        let rest = &path[prefix.len()..];
        if rest.is_empty() || rest == "index.html" {
            let mut res = response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                self.index.clone(),
            );
            let h = res.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // An admin page is not to be framed by another site.
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            return Some(res);
        }
        Some(match file(rest) {
            Some(bytes) => {
                let mut res = response(
                    StatusCode::OK,
                    content_type(rest),
                    Bytes::from_static(bytes),
                );
                res.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                );
                res
            }
            None => response(
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"Not Found"),
            ),
        })
    }
}

impl<S, B> tower_service::Service<Request<B>> for Files<S>
where
    S: tower_service::Service<
        Request<B>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = Ready<Result<Response<Full<Bytes>>, Infallible>>,
    >,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.answer(req.method(), req.uri().path()) {
            Some(res) => std::future::ready(Ok(res)),
            None => self.inner.call(req),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        admin: AdminArgs,
    }

    fn args(flags: &[&str]) -> AdminArgs {
        Cli::try_parse_from(std::iter::once("socketlet").chain(flags.iter().copied()))
            .unwrap()
            .admin
    }

    const HASH: &str = "$2a$04$NBNjxNr6W0K4l8S8HcTsHu6ZiY.PP9Vn8quLLG2H5pOC3LmRnA.dS";

    #[test]
    fn the_ui_needs_a_login_or_an_explicit_none() {
        assert!(config(&args(&[]), "/socket.io").unwrap().is_none());
        let e = config(&args(&["--admin-ui"]), "/socket.io").unwrap_err();
        assert!(e.contains("--admin-no-auth"), "{e}");
        let e = config(
            &args(&[
                "--admin-ui",
                "--admin-username",
                "admin",
                "--admin-password-hash",
                "pw",
            ]),
            "/socket.io",
        )
        .unwrap_err();
        assert!(e.contains("bcrypt"), "{e}");
        let c = config(
            &args(&[
                "--admin-ui",
                "--admin-username",
                "admin",
                "--admin-password-hash",
                HASH,
            ]),
            "/socket.io",
        )
        .unwrap()
        .unwrap();
        assert!(c.auth.is_enabled());
        assert_eq!(c.namespace, "/admin");
        assert_eq!(c.mode, AdminMode::Development);
        let c = config(
            &args(&[
                "--admin-ui",
                "--admin-no-auth",
                "--admin-readonly",
                "--admin-mode",
                "production",
            ]),
            "/socket.io",
        )
        .unwrap()
        .unwrap();
        assert!(!c.auth.is_enabled() && c.readonly && c.mode == AdminMode::Production);
        assert!(config(
            &args(&["--admin-ui", "--admin-no-auth", "--admin-username", "x"]),
            "/socket.io"
        )
        .is_err());
        assert!(config(
            &args(&[
                "--admin-ui",
                "--admin-no-auth",
                "--admin-ui-path",
                "/socket.io"
            ]),
            "/socket.io"
        )
        .is_err());
        assert!(config(
            &args(&["--admin-ui", "--admin-no-auth", "--admin-ui-path", "/"]),
            "/socket.io"
        )
        .is_err());
    }

    fn get(files: &mut Files<crate::Static>, path: &str) -> Response<Full<Bytes>> {
        use tower_service::Service;
        let req = Request::get(path).body(()).unwrap();
        futures_util::FutureExt::now_or_never(files.call(req))
            .unwrap()
            .unwrap()
    }

    async fn body(res: Response<Full<Bytes>>) -> Bytes {
        use http_body_util::BodyExt;
        res.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn the_files_are_served_under_the_path_only_when_on() {
        let on = args(&[
            "--admin-ui",
            "--admin-no-auth",
            "--admin-ui-path",
            "/ops/ui/",
        ]);
        let mut files = Files::new(crate::Static::new("/realtime", false), &on, "/realtime");
        let res = get(&mut files, "/ops/ui");
        assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(res.headers()[header::LOCATION], "/ops/ui/");
        let page = get(&mut files, "/ops/ui/");
        if VERSION.is_none() {
            assert_eq!(page.status(), StatusCode::NOT_FOUND);
            let text = body(page).await;
            assert!(String::from_utf8_lossy(&text).contains("npm ci --prefix crates/cli/admin-ui"));
            return;
        }
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::X_FRAME_OPTIONS], "DENY");
        let html = String::from_utf8(body(page).await.to_vec()).unwrap();
        assert!(html.contains("Socket.IO Admin UI"));
        assert!(html.contains(r#"s.setItem("path","/realtime")"#), "{html}");
        assert!(html.contains(r#"s.setItem("namespace","/admin")"#));
        for external in ["http://", "https://", "href=\"//", "src=\"//"] {
            assert!(
                !html.contains(external),
                "the page refers to another site: {external}"
            );
        }
        // Every file the page names is there, with its type.
        for (name, _) in ADMIN_UI_FILES {
            let res = get(&mut files, &format!("/ops/ui/{name}"));
            assert_eq!(res.status(), StatusCode::OK, "{name}");
            assert_ne!(
                res.headers()[header::CONTENT_TYPE],
                "application/octet-stream",
                "{name}"
            );
        }
        assert!(file("mdi/fonts/materialdesignicons-webfont.woff2").is_some());
        assert!(ADMIN_UI_FILES.iter().all(|(n, _)| !n.ends_with(".map")));
        assert_eq!(
            get(&mut files, "/ops/ui/nothing.js").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&mut files, "/ops/ui/../index.html").status(),
            StatusCode::NOT_FOUND
        );
        // Other paths go on to the inner service.
        assert_eq!(get(&mut files, "/ops/uix").status(), StatusCode::NOT_FOUND);
        let off = args(&[]);
        let mut files = Files::new(crate::Static::new("/socket.io", false), &off, "/socket.io");
        assert_eq!(
            get(&mut files, "/admin-ui/").status(),
            StatusCode::NOT_FOUND
        );
    }
}
