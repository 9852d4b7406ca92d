//! The bits of Engine.IO v4 / Socket.IO v5 the generator speaks, on namespace `/` only.

use crate::BoxError;

/// The Engine.IO path with the v4 query, without the transport.
pub(crate) const EIO_PATH: &str = "/socket.io/?EIO=4";

/// Engine.IO's record separator between packets of a polling payload.
pub(crate) const SEPARATOR: char = '\u{1e}';

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
    /// A `broadcast` event with its round number (`42["broadcast",<n>]`).
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
        _ if packet.starts_with("42[\"broadcast\",") => packet
            .get(15..packet.len().saturating_sub(1))
            .and_then(|n| n.trim().parse().ok())
            .map_or(Incoming::Other, Incoming::Broadcast),
        _ if packet == "3probe" => Incoming::Probe,
        _ => Incoming::Other,
    }
}

/// `42<id>["echo","<payload>"]`.
pub(crate) fn echo_packet(id: u64, payload: &str) -> String {
    format!("42{id}[\"echo\",\"{payload}\"]")
}

/// `42<id>["broadcast",<round>]`.
pub(crate) fn broadcast_packet(id: u64, round: u64) -> String {
    format!("42{id}[\"broadcast\",{round}]")
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
    }

    #[test]
    fn parses_open() {
        let sid = parse_open("0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":25000}").unwrap();
        assert_eq!(sid, "abc");
        assert!(parse_open("40").is_err());
    }
}
