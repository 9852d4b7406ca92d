//! Origin checks and CORS headers, with python-engineio's semantics.
//!
//! - [`Cors::SameOrigin`] (the default): an `Origin` must equal `http://<Host>`, or
//!   `<X-Forwarded-Proto>://<X-Forwarded-Host>` when a trusted proxy (see [`crate::proxy`])
//!   sets either (first value of a comma list; each falls back to the request's own scheme or
//!   host). From any other peer the forwarded headers are ignored.
//! - [`Cors::Any`]: any origin.
//! - [`Cors::List`]: exact matches.
//! - [`Cors::Disabled`]: no check and no CORS headers (a proxy in front handles them).
//!
//! The check applies to every request carrying `Origin`, WebSocket upgrades included; a request
//! without `Origin` is not restricted. An accepted cross-origin request gets the origin echoed
//! back (never `*`), credentials allowed unless `cors_credentials` is off, and for preflights the methods `OPTIONS, GET, POST` and
//! the requested headers.

use http::header::{self, HeaderMap, HeaderValue};

/// Which origins may use the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cors {
    /// Only the server's own origin, honouring `X-Forwarded-Proto` and `X-Forwarded-Host` from
    /// trusted proxies.
    #[default]
    SameOrigin,
    /// Any origin (python-socketio's `cors_allowed_origins="*"`).
    Any,
    /// These origins exactly, e.g. `https://app.example.com`.
    List(Vec<String>),
    /// No origin check and no CORS headers (python-socketio's `cors_allowed_origins=[]`).
    Disabled,
}

impl Cors {
    /// Builds a policy from a list the way python-socketio reads `cors_allowed_origins`: an empty
    /// list disables CORS handling, a list holding `*` allows any origin.
    pub fn from_list<S: Into<String>>(origins: impl IntoIterator<Item = S>) -> Cors {
        let list: Vec<String> = origins.into_iter().map(Into::into).collect();
        if list.is_empty() {
            Cors::Disabled
        } else if list.iter().any(|o| o == "*") {
            Cors::Any
        } else {
            Cors::List(list)
        }
    }

    /// Whether a request with these headers may go on. `Ok(Some(origin))` when CORS headers must
    /// be added for `origin`, `Ok(None)` when none are needed, `Err(())` when the origin is refused.
    /// `forwarded`: the request comes from a trusted proxy, whose forwarded headers count.
    pub(crate) fn check<'a>(
        &self,
        headers: &'a HeaderMap,
        forwarded: bool,
    ) -> Result<Option<&'a HeaderValue>, ()> {
        if *self == Cors::Disabled {
            return Ok(None);
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(None);
        };
        let ok = match self {
            Cors::Disabled => true,
            Cors::Any => true,
            Cors::List(list) => origin
                .to_str()
                .is_ok_and(|o| list.iter().any(|allowed| allowed == o)),
            Cors::SameOrigin => origin
                .to_str()
                .is_ok_and(|o| same_origin(headers, o, forwarded)),
        };
        if ok {
            Ok(Some(origin))
        } else {
            Err(())
        }
    }
}

fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?;
    Some(v.split(',').next().unwrap_or(v).trim())
}

fn same_origin(headers: &HeaderMap, origin: &str, forwarded: bool) -> bool {
    let Some(host) = first_value(headers, "host") else {
        return false;
    };
    if origin.strip_prefix("http://") == Some(host) {
        return true;
    }
    if !forwarded {
        return false;
    }
    let fwd_proto = first_value(headers, "x-forwarded-proto");
    let fwd_host = first_value(headers, "x-forwarded-host");
    if fwd_proto.is_none() && fwd_host.is_none() {
        return false;
    }
    let scheme = fwd_proto.unwrap_or("http");
    let host = fwd_host.unwrap_or(host);
    origin
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"))
        == Some(host)
}

/// Adds the CORS headers for an accepted `origin` to a response (with
/// `Access-Control-Allow-Credentials: true` when `credentials`).
pub(crate) fn apply(
    out: &mut HeaderMap,
    origin: &HeaderValue,
    request: &HeaderMap,
    preflight: bool,
    credentials: bool,
) {
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if preflight {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("OPTIONS, GET, POST"),
        );
        if let Some(h) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn no_origin_is_not_restricted() {
        assert_eq!(
            Cors::SameOrigin.check(&headers(&[("host", "a:1")]), false),
            Ok(None)
        );
    }

    #[test]
    fn same_origin_uses_host() {
        let h = headers(&[
            ("host", "localhost:3000"),
            ("origin", "http://localhost:3000"),
        ]);
        assert!(Cors::SameOrigin.check(&h, false).is_ok_and(|o| o.is_some()));
        let h = headers(&[("host", "localhost:3000"), ("origin", "http://evil.test")]);
        assert_eq!(Cors::SameOrigin.check(&h, false), Err(()));
    }

    #[test]
    fn same_origin_honours_forwarded_headers() {
        let h = headers(&[
            ("host", "127.0.0.1:8000"),
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "app.example.com"),
            ("origin", "https://app.example.com"),
        ]);
        assert!(Cors::SameOrigin.check(&h, true).is_ok());
        let h = headers(&[
            ("host", "app.example.com"),
            ("x-forwarded-proto", "https"),
            ("origin", "https://app.example.com"),
        ]);
        assert!(Cors::SameOrigin.check(&h, true).is_ok());
        // From a peer that is not a trusted proxy, the forwarded headers are anyone's.
        assert_eq!(Cors::SameOrigin.check(&h, false), Err(()));
        let h = headers(&[
            ("host", "127.0.0.1:3000"),
            ("x-forwarded-host", "evil.test"),
            ("origin", "http://evil.test"),
        ]);
        assert_eq!(Cors::SameOrigin.check(&h, false), Err(()));
        let h = headers(&[
            ("host", "app.example.com"),
            ("x-forwarded-proto", "https"),
            ("origin", "http://other.example.com"),
        ]);
        assert_eq!(Cors::SameOrigin.check(&h, true), Err(()));
    }

    #[test]
    fn list_any_and_disabled() {
        let h = headers(&[("host", "x"), ("origin", "https://a.test")]);
        assert!(Cors::from_list(["https://a.test"]).check(&h, false).is_ok());
        assert_eq!(
            Cors::from_list(["https://b.test"]).check(&h, false),
            Err(())
        );
        assert!(Cors::from_list(["https://b.test", "*"])
            .check(&h, false)
            .is_ok());
        assert_eq!(
            Cors::from_list(Vec::<String>::new()).check(&h, false),
            Ok(None)
        );
    }

    #[test]
    fn apply_echoes_origin_and_reflects_headers() {
        let req = headers(&[("access-control-request-headers", "x-token")]);
        let mut out = HeaderMap::new();
        apply(
            &mut out,
            &HeaderValue::from_static("https://a.test"),
            &req,
            true,
            true,
        );
        assert_eq!(out["access-control-allow-origin"], "https://a.test");
        assert_eq!(out["access-control-allow-credentials"], "true");
        assert_eq!(out["access-control-allow-methods"], "OPTIONS, GET, POST");
        assert_eq!(out["access-control-allow-headers"], "x-token");
        let mut out = HeaderMap::new();
        apply(
            &mut out,
            &HeaderValue::from_static("https://a.test"),
            &req,
            false,
            false,
        );
        assert_eq!(out["access-control-allow-origin"], "https://a.test");
        assert!(!out.contains_key("access-control-allow-credentials"));
        assert!(!out.contains_key("access-control-allow-methods"));
    }
}
