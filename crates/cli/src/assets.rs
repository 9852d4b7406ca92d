//! Static assets served by the `socketlet` binary: the demo page, and the
//! official Socket.IO browser client bundle embedded at build time.
//!
//! The bundle comes from the `socket.io-client` package pinned in
//! `crates/cli/client/package-lock.json` (see `build.rs`). A build made
//! without it still works: [`client_file`] then returns `None` for every
//! name, the server should answer 404, and the demo page explains how to
//! embed the bundle (`npm ci --prefix crates/cli/client`, then rebuild).

// Defines `BUNDLE_JS`, `BUNDLE_MIN_JS`, `BUNDLE_JS_MAP`, `BUNDLE_MIN_JS_MAP`
// (`Option<&[u8]>`) and `BUNDLE_VERSION` (`Option<&str>`).
include!(concat!(env!("OUT_DIR"), "/client_bundle.rs"));

/// The demo page's template; [`index_html`] renders it for a server's path.
///
/// The page loads the client bundle from `<path>/socket.io.js`, connects with
/// `io({ path })`, and uses the events `echo` (ack), `join` `(room)` (ack:
/// the socket's rooms) and `chat` `({room, text})`, which the server relays to
/// the room as `chat` `({room, from, text, at})`, plus the VM console's and
/// `server_shutdown` (`{grace_ms}`).
///
/// Its fields, replaced by [`index_html`]: `{{bundle_url}}` (HTML text and
/// attribute values), `{{bundle_url_js}}` and `{{path_js}}` (JavaScript
/// string literals, quotes included, inside `<script>`).
pub const INDEX_HTML: &str = include_str!("../assets/index.html");

/// The demo page for a server whose Socket.IO path is `path` (as the engine
/// normalised it, e.g. `/socket.io`), served at `/` as
/// `text/html; charset=utf-8`. Rendered once, when the server starts.
pub fn index_html(path: &str) -> String {
    let bundle_url = format!("{}/socket.io.js", path.trim_end_matches('/'));
    let value = |name: &str| match name {
        "bundle_url" => Some(html_escape(&bundle_url)),
        "bundle_url_js" => Some(js_string(&bundle_url)),
        "path_js" => Some(js_string(path)),
        _ => None,
    };
    // One pass over the template: a value is never scanned for fields again.
    let mut out = String::with_capacity(INDEX_HTML.len() + 64);
    let mut rest = INDEX_HTML;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let field = after
            .find("}}")
            .and_then(|end| Some((value(&after[..end])?, &after[end + 2..])));
        match field {
            Some((value, tail)) => {
                out.push_str(&value);
                rest = tail;
            }
            // Not a field: the braces stay as they are.
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML content and quoted attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JavaScript string literal (quotes included) for inside an inline `<script>`: JSON, with
/// `<`, `>` and `&` escaped too so that no `</script>` or `<!--` can appear, and U+2028/U+2029.
fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in serde_json::Value::from(s).to_string().chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The version of the embedded `socket.io-client` bundle (e.g. `"4.8.4"`),
/// or `None` when the build embedded no bundle.
///
/// Suitable as an `ETag` for the bundle files, since they never change
/// within one build.
pub const CLIENT_VERSION: Option<&str> = BUNDLE_VERSION;

const JAVASCRIPT: &str = "application/javascript; charset=utf-8";
const SOURCE_MAP: &str = "application/json; charset=utf-8";

/// Looks up a file of the embedded client bundle by its name under
/// `/socket.io/`: `socket.io.js`, `socket.io.min.js`, `socket.io.js.map` or
/// `socket.io.min.js.map`.
///
/// Returns its bytes and its `Content-Type`, or `None` for any other name
/// and for files the build did not embed.
pub fn client_file(name: &str) -> Option<(&'static [u8], &'static str)> {
    let (bytes, content_type) = match name {
        "socket.io.js" => (BUNDLE_JS, JAVASCRIPT),
        "socket.io.min.js" => (BUNDLE_MIN_JS, JAVASCRIPT),
        "socket.io.js.map" => (BUNDLE_JS_MAP, SOURCE_MAP),
        "socket.io.min.js.map" => (BUNDLE_MIN_JS_MAP, SOURCE_MAP),
        _ => return None,
    };
    bytes.map(|bytes| (bytes, content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 4] = [
        "socket.io.js",
        "socket.io.min.js",
        "socket.io.js.map",
        "socket.io.min.js.map",
    ];

    #[test]
    fn unknown_names_are_not_found() {
        for name in [
            "",
            "index.html",
            "socket.io",
            "SOCKET.IO.JS",
            "/socket.io.js",
            "socket.io/socket.io.js",
            "../socket.io.js",
            "socket.io.js?v=1",
            "socket.io.esm.min.js",
            "socket.io.msgpack.min.js",
        ] {
            assert!(client_file(name).is_none(), "{name:?} should be unknown");
        }
    }

    #[test]
    fn scripts_are_embedded_together_with_the_version() {
        let embedded = client_file("socket.io.js").is_some();
        assert_eq!(client_file("socket.io.min.js").is_some(), embedded);
        assert_eq!(CLIENT_VERSION.is_some(), embedded);
    }

    #[test]
    fn embedded_scripts_carry_the_official_banner() {
        let Some(version) = CLIENT_VERSION else {
            return; // built without the bundle
        };
        let banner = format!("/*!\n * Socket.IO v{version}\n");
        for name in ["socket.io.js", "socket.io.min.js"] {
            let (bytes, content_type) = client_file(name).expect("embedded");
            assert!(bytes.starts_with(banner.as_bytes()), "{name} banner");
            assert!(content_type.starts_with("application/javascript"));
        }
    }

    #[test]
    fn embedded_source_maps_are_json() {
        for name in ["socket.io.js.map", "socket.io.min.js.map"] {
            if let Some((bytes, content_type)) = client_file(name) {
                assert!(bytes.starts_with(b"{"), "{name} is a JSON object");
                assert!(content_type.starts_with("application/json"));
            }
        }
    }

    #[test]
    fn embedded_files_are_not_empty() {
        for name in NAMES {
            if let Some((bytes, _)) = client_file(name) {
                assert!(!bytes.is_empty(), "{name}");
            }
        }
    }

    #[test]
    fn version_looks_like_semver() {
        if let Some(version) = CLIENT_VERSION {
            assert!(version.split('.').count() >= 3, "{version}");
            assert!(version.starts_with("4."), "{version}");
        }
    }

    #[test]
    fn index_page_loads_the_bundle_and_nothing_external() {
        let page = index_html("/socket.io");
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<script src=\"/socket.io/socket.io.js\"></script>"));
        assert!(page.contains("const PATH = \"/socket.io\";"));
        assert!(page.contains("const BUNDLE_URL = \"/socket.io/socket.io.js\";"));
        assert!(page.contains("io({ path: PATH })"));
        assert!(page.contains("npm ci --prefix crates/cli/client"));
        for external in ["http://", "https://", "src=\"//", "href=\"//", "@import"] {
            assert!(!page.contains(external), "page contains {external:?}");
        }
    }

    #[test]
    fn index_page_follows_the_path() {
        let page = index_html("/realtime");
        assert!(page.contains("<script src=\"/realtime/socket.io.js\"></script>"));
        assert!(page.contains("<code>/realtime/socket.io.js</code>"));
        assert!(page.contains("const PATH = \"/realtime\";"));
        assert!(page.contains("const BUNDLE_URL = \"/realtime/socket.io.js\";"));
        assert!(
            !page.contains("/socket.io/socket.io.js"),
            "no default path left"
        );
        // The root path: the bundle is at /socket.io.js.
        assert!(index_html("/").contains("<script src=\"/socket.io.js\"></script>"));
    }

    #[test]
    fn every_field_is_filled_in() {
        for field in ["{{bundle_url}}", "{{bundle_url_js}}", "{{path_js}}"] {
            assert!(INDEX_HTML.contains(field), "the template uses {field}");
        }
        let page = index_html("/socket.io");
        assert!(!page.contains("{{"), "a field was left unfilled");
    }

    #[test]
    fn the_path_is_escaped_for_html_and_javascript() {
        let evil = "/a\"b'c<d>&e\\f</script><!--\u{2028}{{path_js}}";
        let page = index_html(evil);
        // No markup comes from the path: only the template's own.
        assert_eq!(
            page.matches("</script>").count(),
            INDEX_HTML.matches("</script>").count()
        );
        assert_eq!(
            page.matches("<!--").count(),
            INDEX_HTML.matches("<!--").count()
        );
        assert!(page.contains(
            "<script src=\"/a&quot;b&#39;c&lt;d&gt;&amp;e\\f&lt;/script&gt;&lt;!--\u{2028}{{path_js}}/socket.io.js\">"
        ));
        assert!(page.contains(
            "const PATH = \"/a\\\"b'c\\u003cd\\u003e\\u0026e\\\\f\\u003c/script\\u003e\\u003c!--\\u2028{{path_js}}\";"
        ));
        // A value is not scanned for fields again.
        assert_eq!(page.matches("{{path_js}}").count(), 5);
    }
}
