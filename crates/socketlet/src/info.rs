//! Descriptions of sockets, possibly on other nodes: what `fetch_sockets` returns, in the shape
//! Node's socket.io gives them (and carries between nodes of a cluster).

use crate::adapter::Room;
use crate::socket::Socket;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// A description of a socket, possibly on another node (what `fetch_sockets` returns).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SocketInfo {
    /// The socket id.
    pub id: String,
    /// The namespace.
    pub nsp: String,
    /// The rooms it is in, its own id included.
    pub rooms: Vec<Room>,
    /// Its data ([`Socket::data`]).
    pub data: Value,
    /// The handshake it connected with.
    pub handshake: Handshake,
    /// The socket itself when it is on this node.
    pub local: Option<Socket>,
}

impl SocketInfo {
    /// A socket of another node, as a cluster adapter learned it.
    pub fn remote(
        id: String,
        nsp: String,
        rooms: Vec<Room>,
        data: Value,
        handshake: Handshake,
    ) -> Self {
        SocketInfo {
            id,
            nsp,
            rooms,
            data,
            handshake,
            local: None,
        }
    }
}

/// The handshake of a socket, with the fields (and names) of Node's `socket.handshake`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Handshake {
    /// The headers of the connection's first request, names in lower case.
    pub headers: Map<String, Value>,
    /// When it came, as text (UTC, RFC 3339).
    pub time: String,
    /// The client's address (see `RequestInfo::client_address`).
    pub address: Option<String>,
    /// Whether it came from another origin.
    pub xdomain: bool,
    /// Whether it came over TLS.
    pub secure: bool,
    /// When it came, in milliseconds since 1970.
    pub issued: u64,
    /// The URL of the first request.
    pub url: String,
    /// The query parameters of the first request.
    pub query: Map<String, Value>,
    /// The `auth` payload of the namespace CONNECT.
    pub auth: Value,
}

impl Handshake {
    /// The handshake of a local socket.
    pub(crate) fn of(socket: &Socket) -> Handshake {
        let req = socket.request();
        let trusted = &socket.ns().trusted_proxies();
        let headers = req
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_owned(), Value::from(std::str::from_utf8(v).ok()?))))
            .collect();
        let query = req
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (
                    socketlet_engine::percent_decode(k),
                    Value::from(socketlet_engine::percent_decode(v)),
                )
            })
            .collect();
        let issued = req
            .issued
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Handshake {
            headers,
            time: rfc3339(req.issued),
            address: req.client_address(trusted).map(|a| a.to_string()),
            xdomain: req.headers.contains_key(http::header::ORIGIN),
            secure: req.uri.scheme_str() == Some("https"),
            issued,
            url: req.uri.to_string(),
            query,
            auth: socket.auth().clone(),
        }
    }
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), after Howard Hinnant's
    // well-known algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        let t = |secs: u64, ms: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
        };
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(t(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(t(1_796_562_245, 120), "2026-12-06T13:04:05.120Z");
        assert_eq!(t(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }
}
