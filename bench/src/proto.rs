//! The bits of Engine.IO v4 / Socket.IO v5 (and Engine.IO v3 / Socket.IO v4) the generator
//! speaks, on namespace `/` only.
//!
//! Engine.IO v3 differs where the generator cares: the client sends the heartbeat's PING (`2`)
//! and the server answers PONG (`3`), the reverse of v4; a polling payload is
//! `<length>:<packet>` for each packet (with `b64=1`, the text framing), not packets joined by
//! a record separator; and with Socket.IO v4 the server connects every client to `/` by itself
//! (it sends `40` unasked; the client sends no CONNECT for `/`).

use crate::BoxError;
use std::time::Duration;

/// Engine.IO's record separator between packets of a v4 polling payload.
pub(crate) const SEPARATOR: char = '\u{1e}';

/// How often a v3 client sends its heartbeat PING: below every server's `pingInterval` (25 s
/// for python-socketio 4.x and socketlet), so no server times an idle client out.
pub(crate) const V3_PING_EVERY: Duration = Duration::from_secs(20);

/// The Engine.IO protocol revision spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Eio {
    /// Engine.IO v3 with Socket.IO v4 (socket.io-client 1.x/2.x, python-socketio 4.x).
    #[value(name = "3")]
    V3,
    /// Engine.IO v4 with Socket.IO v5 (socket.io-client 3.x/4.x).
    #[value(name = "4")]
    V4,
}

impl Eio {
    /// The Engine.IO path with the query of this revision, without the transport (v3 asks for
    /// the text framing of polling payloads, `b64=1`).
    pub(crate) fn path(self) -> &'static str {
        match self {
            Eio::V3 => "/socket.io/?EIO=3&b64=1",
            Eio::V4 => "/socket.io/?EIO=4",
        }
    }

    /// A polling payload of one packet.
    pub(crate) fn encode_one(self, packet: &str) -> String {
        match self {
            Eio::V3 => format!("{}:{packet}", packet.encode_utf16().count()),
            Eio::V4 => packet.to_owned(),
        }
    }

    /// The packets of a polling payload.
    pub(crate) fn decode(self, payload: &str) -> Result<Vec<String>, BoxError> {
        match self {
            Eio::V4 => Ok(payload.split(SEPARATOR).map(str::to_owned).collect()),
            Eio::V3 => decode_v3(payload),
        }
    }
}

/// `<length>:<packet>...`, lengths in UTF-16 code units (as JavaScript counts them).
fn decode_v3(mut payload: &str) -> Result<Vec<String>, BoxError> {
    let mut packets = Vec::new();
    while !payload.is_empty() {
        let (len, rest) = payload
            .split_once(':')
            .ok_or_else(|| format!("bad v3 payload: {payload:.80}"))?;
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad v3 packet length {len:.20}"))?;
        let mut units = 0;
        let end = rest
            .char_indices()
            .find_map(|(i, c)| {
                let at = (units >= len).then_some(i);
                units += c.len_utf16();
                at
            })
            .unwrap_or(rest.len());
        if units < len && end == rest.len() {
            return Err(format!("short v3 packet: {rest:.80}").into());
        }
        packets.push(rest[..end].to_owned());
        payload = &rest[end..];
    }
    Ok(packets)
}

/// The session id of an Engine.IO OPEN packet (`0{"sid":...}`).
pub(crate) fn parse_open(packet: &str) -> Result<String, BoxError> {
    let json = packet
        .strip_prefix('0')
        .ok_or_else(|| format!("expected an OPEN packet, got {:.80}", packet))?;
    let open: serde_json::Value = serde_json::from_str(json)?;
    open.get("sid")
        .and_then(|s| s.as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("OPEN packet without sid: {json:.80}").into())
}

/// What a Socket.IO packet on `/` means to the generator.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// Engine.IO PING: answer PONG (`3`).
    Ping,
    /// Socket.IO CONNECT answer (`40...`).
    Connected,
    /// Socket.IO CONNECT_ERROR (`44...`).
    ConnectError,
    /// Socket.IO ACK with its id (`43<id>[...]`).
    Ack(u64),
    /// A `broadcast` event with its round number (`42["broadcast",<n>]`, or
    /// `42["broadcast",<n>,"<offset>"]` from a server with connection state recovery on), or a
    /// `chat` message of the binary's demo whose text is the round number
    /// (`42["chat",{..."text":"<n>"...}]`).
    Broadcast(u64),
    /// Engine.IO probe answer (`3probe`).
    Probe,
    /// Anything else (NOOP, other events, ...).
    Other,
}

/// Classifies one Engine.IO packet.
pub(crate) fn classify(packet: &str) -> Incoming {
    let b = packet.as_bytes();
    match b {
        [b'2'] => Incoming::Ping,
        [b'4', b'0', ..] => Incoming::Connected,
        [b'4', b'4', ..] => Incoming::ConnectError,
        [b'4', b'3', rest @ ..] => {
            let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            match std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
            {
                Some(id) => Incoming::Ack(id),
                None => Incoming::Other,
            }
        }
        _ if packet.starts_with(BROADCAST) => broadcast_round(&packet[BROADCAST.len()..]),
        _ if packet.starts_with("42[\"chat\",") => chat_round(packet),
        _ if packet == "3probe" => Incoming::Probe,
        _ => Incoming::Other,
    }
}

/// How a `broadcast` event starts.
const BROADCAST: &str = "42[\"broadcast\",";

/// The round number that starts the arguments of a `broadcast` event: a number followed by the
/// end of the arguments, or by more of them (the offset a server with connection state
/// recovery appends as the last argument).
fn broadcast_round(args: &str) -> Incoming {
    let args = args.trim_start();
    let digits = args.bytes().take_while(u8::is_ascii_digit).count();
    let rest = args[digits..].trim_start();
    if digits == 0 || !(rest.starts_with(']') || rest.starts_with(',')) {
        return Incoming::Other;
    }
    args[..digits]
        .parse()
        .map_or(Incoming::Other, Incoming::Broadcast)
}

/// Whether a packet is a `broadcast` event, whatever its arguments.
pub(crate) fn is_broadcast(packet: &str) -> bool {
    packet.starts_with(BROADCAST)
}

/// The offset a server with connection state recovery appends to an event as its last
/// argument: the event's third element (its name, the one argument the generator sends, the
/// offset), when it is a string.
pub(crate) fn event_offset(packet: &str) -> Option<String> {
    let json = packet.strip_prefix("42")?;
    let json = &json[json.bytes().take_while(u8::is_ascii_digit).count()..];
    match serde_json::from_str::<serde_json::Value>(json).ok()? {
        serde_json::Value::Array(mut items) if items.len() == 3 => match items.pop()? {
            serde_json::Value::String(offset) => Some(offset),
            _ => None,
        },
        _ => None,
    }
}

/// The Socket.IO CONNECT answer on `/` (`40{"sid":"...","pid":"..."}`): the socket id, and the
/// private id a server with connection state recovery gives (v5 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Connected {
    /// The socket id.
    pub(crate) sid: String,
    /// The private id to recover the session with (none: recovery is off).
    pub(crate) pid: Option<String>,
}

/// Parses a CONNECT answer on `/`.
pub(crate) fn parse_connected(packet: &str) -> Result<Connected, BoxError> {
    let json = packet
        .strip_prefix("40")
        .ok_or_else(|| format!("expected a CONNECT answer, got {packet:.80}"))?;
    if json.is_empty() {
        // Socket.IO v4 (Engine.IO v3) answers `40` alone.
        return Ok(Connected {
            sid: String::new(),
            pid: None,
        });
    }
    let v: serde_json::Value = serde_json::from_str(json)?;
    let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
    Ok(Connected {
        sid: text("sid").ok_or_else(|| format!("CONNECT answer without sid: {json:.80}"))?,
        pid: text("pid"),
    })
}

/// `40{"pid":"...","offset":"..."}`: a CONNECT on `/` that asks to recover a session (as
/// socket.io-client 4.6+ sends it after losing its connection).
pub(crate) fn recover_packet(pid: &str, offset: &str) -> String {
    format!("40{}", serde_json::json!({ "pid": pid, "offset": offset }))
}

/// `42<id>["broadcast","xxx..."]`: a broadcast whose one argument is a JSON string of exactly
/// `bytes` bytes of JSON text (at least 2: the quotes).
pub(crate) fn padded_broadcast_packet(id: u64, bytes: usize) -> String {
    format!(
        "42{id}[\"broadcast\",\"{}\"]",
        "x".repeat(bytes.saturating_sub(2))
    )
}

/// The round number in the text of a `chat` message.
fn chat_round(packet: &str) -> Incoming {
    const TEXT: &str = "\"text\":\"";
    packet
        .find(TEXT)
        .map(|at| &packet[at + TEXT.len()..])
        .and_then(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            rest[..digits].parse().ok()
        })
        .map_or(Incoming::Other, Incoming::Broadcast)
}

/// `42<id>["echo","<payload>"]`.
pub(crate) fn echo_packet(id: u64, payload: &str) -> String {
    format!("42{id}[\"echo\",\"{payload}\"]")
}

/// `42<id>["broadcast",<round>]`.
pub(crate) fn broadcast_packet(id: u64, round: u64) -> String {
    format!("42{id}[\"broadcast\",{round}]")
}

/// `42<id>["<event>",<round>]`: an event with one number and an ack.
pub(crate) fn event_packet(event: &str, id: u64, arg: u64) -> String {
    format!("42{id}[\"{event}\",{arg}]")
}

/// `42<id>["join","bench"]`: join the room `bench` (the argument is the room for the binary's
/// demo; the bench servers ignore it and join `bench`).
pub(crate) fn join_packet(id: u64) -> String {
    format!("42{id}[\"join\",\"bench\"]")
}

/// `42["chat",{"room":"bench","text":"<round>"}]`: the binary demo's room message.
pub(crate) fn chat_packet(round: u64) -> String {
    format!("42[\"chat\",{{\"room\":\"bench\",\"text\":\"{round}\"}}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_packets() {
        assert_eq!(classify("2"), Incoming::Ping);
        assert_eq!(classify("40{\"sid\":\"x\"}"), Incoming::Connected);
        assert_eq!(classify("44{\"message\":\"no\"}"), Incoming::ConnectError);
        assert_eq!(classify("4317[\"abc\"]"), Incoming::Ack(17));
        assert_eq!(classify("42[\"broadcast\",9]"), Incoming::Broadcast(9));
        assert_eq!(classify("3probe"), Incoming::Probe);
        assert_eq!(classify("6"), Incoming::Other);
        assert_eq!(classify("42[\"other\",1]"), Incoming::Other);
        assert_eq!(
            classify("42[\"chat\",{\"room\":\"bench\",\"from\":\"x\",\"text\":\"12\",\"at\":1}]"),
            Incoming::Broadcast(12)
        );
        assert_eq!(classify(&chat_packet(7)), Incoming::Broadcast(7));
    }

    #[test]
    fn broadcasts_with_a_recovery_offset() {
        assert_eq!(
            classify("42[\"broadcast\",9,\"17\"]"),
            Incoming::Broadcast(9)
        );
        assert_eq!(classify("42[\"broadcast\", 9 ]"), Incoming::Broadcast(9));
        assert_eq!(classify("42[\"broadcast\",9x]"), Incoming::Other);
        assert_eq!(classify("42[\"broadcast\",\"xx\",\"3\"]"), Incoming::Other);
        assert!(is_broadcast("42[\"broadcast\",\"xx\",\"3\"]"));
        assert_eq!(
            event_offset("42[\"broadcast\",9,\"17\"]").as_deref(),
            Some("17")
        );
        assert_eq!(
            event_offset("42[\"broadcast\",\"xx\",\"1-0\"]").as_deref(),
            Some("1-0")
        );
        // No offset: recovery off, or an ack id.
        assert_eq!(event_offset("42[\"broadcast\",\"xx\"]"), None);
        assert_eq!(event_offset("42[\"broadcast\",9,17]"), None);
        assert_eq!(event_offset("4312[\"a\",\"b\",\"c\"]"), None);
        assert_eq!(event_offset("425[\"a\",\"b\",\"c\"]").as_deref(), Some("c"));
    }

    #[test]
    fn connect_answers_and_recovery() {
        let c = parse_connected("40{\"sid\":\"s1\",\"pid\":\"p1\"}").unwrap();
        assert_eq!(c.sid, "s1");
        assert_eq!(c.pid.as_deref(), Some("p1"));
        assert_eq!(parse_connected("40{\"sid\":\"s1\"}").unwrap().pid, None);
        assert_eq!(parse_connected("40").unwrap().sid, "");
        assert!(parse_connected("40{}").is_err());
        assert!(parse_connected("44{}").is_err());
        assert_eq!(
            recover_packet("p\"1", "7"),
            "40{\"pid\":\"p\\\"1\",\"offset\":\"7\"}"
        );
        let p = padded_broadcast_packet(3, 100);
        assert!(p.starts_with("423[\"broadcast\",\""));
        assert_eq!(p.len() - "423[\"broadcast\",]".len(), 100);
    }

    #[test]
    fn v3_payloads() {
        let eio = Eio::V3;
        assert_eq!(eio.encode_one("42[\"é\"]"), "7:42[\"é\"]");
        assert_eq!(
            eio.decode("2:403:2ab1:6").unwrap(),
            vec!["40".to_owned(), "2ab".to_owned(), "6".to_owned()]
        );
        assert_eq!(eio.decode("8:42[\"😀\"]2:40").unwrap().len(), 2);
        assert!(eio.decode("5:40").is_err());
        assert!(eio.decode("x:40").is_err());
        assert_eq!(Eio::V4.decode("40\u{1e}2").unwrap().len(), 2);
    }

    #[test]
    fn parses_open() {
        let sid = parse_open("0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":25000}").unwrap();
        assert_eq!(sid, "abc");
        assert!(parse_open("40").is_err());
    }
}
