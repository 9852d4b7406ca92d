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

/// The demo page, served at `/` as `text/html; charset=utf-8`.
///
/// It loads `/socket.io/socket.io.js` and uses the events `echo` (ack),
/// `join` `(room)` (ack: the socket's rooms) and `chat` `({room, text})`,
/// which the server relays to the room as `chat` `({room, from, text, at})`.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");

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
        assert!(INDEX_HTML.starts_with("<!doctype html>"));
        assert!(INDEX_HTML.contains("src=\"/socket.io/socket.io.js\""));
        assert!(INDEX_HTML.contains("npm ci --prefix crates/cli/client"));
        for external in ["http://", "https://", "src=\"//", "href=\"//", "@import"] {
            assert!(!INDEX_HTML.contains(external), "page contains {external:?}");
        }
    }
}
