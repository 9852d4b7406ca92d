//! The shapes the Admin UI reads: sockets as Node's `serialize()` makes them, aggregated
//! events, timestamps.

use serde::Serialize;
use serde_json::{json, Map, Value};
use socketlet::{BroadcastOptions, Socket, SocketInfo, SocketIo};
use std::time::{SystemTime, UNIX_EPOCH};

/// The key Node puts in every socket's data in development mode, `{clientId, transport}`:
/// how other nodes learn a remote socket's client and transport.
pub(super) const ADMIN_KEY: &str = "_admin";

/// How much of the connection id the UI gets (Node: "this information is quite sensitive").
const CLIENT_ID_CHARS: usize = 12;

/// One count of `server_stats.aggregatedEvents`: `{timestamp, type, subType?, count}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AggregatedEvent {
    /// Milliseconds since 1970, on a whole second.
    pub timestamp: u64,
    /// `rawConnection`, `rawDisconnection`, `packetsIn`, `packetsOut`, `bytesIn`, `bytesOut`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The reason of a `rawDisconnection`.
    #[serde(rename = "subType", skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<&'static str>,
    /// How many (packets, bytes, connections).
    pub count: u64,
}

/// The host name (Node's `os.hostname()`).
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Milliseconds since 1970.
pub(super) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `t` as JSON writes a JavaScript `Date`: `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub(super) fn iso8601(t: SystemTime) -> String {
    let ms = millis(t);
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let of_day = secs % 86_400;
    // The civil date of a day count since 1970-01-01 (proleptic Gregorian calendar), counting
    // in 400-year eras that start on March 1st so that leap days end a year.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        ms % 1000
    )
}

/// The `_admin` value of a local socket.
pub(super) fn admin_data(socket: &Socket) -> Value {
    json!({
        "clientId": client_id(&socket.connection_id().to_string()),
        "transport": socket.transport().as_str(),
    })
}

fn client_id(connection_id: &str) -> String {
    connection_id.chars().take(CLIENT_ID_CHARS).collect()
}

/// `data` with `_admin` set to `admin`, first (as Node makes it); `None` when `data` is neither
/// an object nor null (then it is left alone).
pub(super) fn with_admin(data: Value, admin: Value) -> Option<Value> {
    match data {
        Value::Null => Some(json!({ ADMIN_KEY: admin })),
        Value::Object(old) => {
            let mut map = Map::with_capacity(old.len() + 1);
            map.insert(ADMIN_KEY.to_owned(), admin);
            for (k, v) in old {
                if k != ADMIN_KEY {
                    map.insert(k, v);
                }
            }
            Some(Value::Object(map))
        }
        _ => None,
    }
}

/// The data the UI is shown: without `_admin` (Node's `serializeData`); `{}` for none.
fn shown_data(data: &Value) -> Value {
    match data {
        Value::Null => Value::Object(Map::new()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != ADMIN_KEY)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A socket as the UI reads it (Node's `serialize(socket, nsp)`): `{id, clientId, transport,
/// nsp, data, handshake: {address, headers, query, issued, secure, time, url, xdomain},
/// rooms}`. A socket of this node tells its live transport; one of another node what its
/// `_admin` data says (its own id as the client when it has none).
pub(super) fn serialize(info: &SocketInfo) -> Value {
    let admin = info.data.get(ADMIN_KEY);
    let (client, transport) = match &info.local {
        Some(socket) => (
            Value::from(client_id(&socket.connection_id().to_string())),
            Value::from(socket.transport().as_str()),
        ),
        None => (
            admin
                .and_then(|a| a.get("clientId"))
                .cloned()
                .unwrap_or_else(|| Value::from(info.id.clone())),
            admin
                .and_then(|a| a.get("transport"))
                .cloned()
                .unwrap_or(Value::Null),
        ),
    };
    let h = &info.handshake;
    let header = |name: &str| h.headers.get(name).filter(|v| v.is_string()).cloned();
    // Node's order: Cloudflare's header, then X-Forwarded-For, then the peer.
    let address = header("cf-connecting-ip")
        .or_else(|| header("x-forwarded-for"))
        .unwrap_or_else(|| h.address.clone().map_or(Value::Null, Value::from));
    let mut out = Map::new();
    out.insert("id".into(), Value::from(info.id.clone()));
    out.insert("clientId".into(), client);
    if !transport.is_null() {
        out.insert("transport".into(), transport);
    }
    out.insert("nsp".into(), Value::from(info.nsp.clone()));
    out.insert("data".into(), shown_data(&info.data));
    out.insert(
        "handshake".into(),
        json!({
            "address": address,
            "headers": h.headers,
            "query": h.query,
            "issued": h.issued,
            "secure": h.secure,
            "time": h.time,
            "url": h.url,
            "xdomain": h.xdomain,
        }),
    );
    out.insert("rooms".into(), Value::from(info.rooms.clone()));
    Value::Object(out)
}

/// Every socket of every namespace this node knows, on every node (Node's `fetchAllSockets`).
/// A namespace whose cluster-wide fetch fails gives this node's sockets.
pub(super) async fn all_sockets(io: &SocketIo) -> Vec<Value> {
    let mut names = io.namespace_names();
    names.sort();
    let fetches = names.iter().filter_map(|n| io.namespace(n)).map(|ns| async move {
        match ns.fetch_sockets().await {
            Ok(sockets) => sockets,
            Err(e) => {
                tracing::warn!(nsp = %ns.name(), "admin UI: fetching the cluster's sockets failed, showing this node's: {e}");
                ns.local().fetch_sockets(&BroadcastOptions::default())
            }
        }
    });
    futures_util::future::join_all(fetches)
        .await
        .iter()
        .flatten()
        .map(serialize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_javascript_json() {
        let t = |ms: u64| iso8601(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(t(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(t(951_782_400_005), "2000-02-29T00:00:00.005Z");
        assert_eq!(t(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(t(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn admin_data_goes_first_and_is_never_shown() {
        let admin = json!({"clientId": "abc", "transport": "polling"});
        let data = with_admin(json!({"user": "ann", "_admin": 1}), admin.clone());
        let data = data.unwrap_or_default();
        assert_eq!(
            serde_json::to_string(&data).unwrap_or_default(),
            r#"{"_admin":{"clientId":"abc","transport":"polling"},"user":"ann"}"#
        );
        assert_eq!(shown_data(&data), json!({"user": "ann"}));
        assert_eq!(
            with_admin(Value::Null, admin.clone()),
            Some(json!({"_admin": admin}))
        );
        assert_eq!(with_admin(json!([1]), admin), None);
        assert_eq!(shown_data(&Value::Null), json!({}));
    }

    #[test]
    fn remote_sockets_read_their_admin_data() {
        let mut handshake = socketlet::Handshake::default();
        handshake.address = Some("10.0.0.7".into());
        handshake
            .headers
            .insert("x-forwarded-for".into(), json!("203.0.113.9"));
        let info = SocketInfo::remote(
            "s1".into(),
            "/chat".into(),
            vec!["s1".into(), "lobby".into()],
            json!({"_admin": {"clientId": "c0ffee", "transport": "websocket"}, "n": 1}),
            handshake,
        );
        let v = serialize(&info);
        assert_eq!(v["clientId"], "c0ffee");
        assert_eq!(v["transport"], "websocket");
        assert_eq!(v["nsp"], "/chat");
        assert_eq!(v["data"], json!({"n": 1}));
        assert_eq!(v["rooms"], json!(["s1", "lobby"]));
        assert_eq!(v["handshake"]["address"], "203.0.113.9");

        // Data replaced whole by the application: its own client, no transport.
        let bare = SocketInfo::remote(
            "s2".into(),
            "/".into(),
            vec!["s2".into()],
            Value::Null,
            socketlet::Handshake::default(),
        );
        let v = serialize(&bare);
        assert_eq!(v["clientId"], "s2");
        assert!(v.get("transport").is_none());
        assert_eq!(v["data"], json!({}));
        assert_eq!(v["handshake"]["address"], Value::Null);
    }

    #[test]
    fn aggregated_events_are_nodes_shape() {
        let e = AggregatedEvent {
            timestamp: 1000,
            kind: "rawDisconnection",
            sub_type: Some("transport close"),
            count: 2,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap_or_default(),
            json!({"timestamp": 1000, "type": "rawDisconnection", "subType": "transport close", "count": 2})
        );
        let e = AggregatedEvent {
            timestamp: 1000,
            kind: "bytesIn",
            sub_type: None,
            count: 20,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap_or_default(),
            json!({"timestamp": 1000, "type": "bytesIn", "count": 20})
        );
    }
}
