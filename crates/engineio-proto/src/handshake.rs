//! The OPEN packet's JSON body.

use crate::ProtocolVersion;
use serde::Serialize;

/// The handshake the server sends in the OPEN packet.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The session id.
    pub sid: String,
    /// Transports the client may upgrade to (`["websocket"]`, or empty).
    pub upgrades: Vec<&'static str>,
    /// Milliseconds between heartbeats.
    pub ping_interval: u64,
    /// Milliseconds to wait for the other side of a heartbeat.
    pub ping_timeout: u64,
    /// The largest payload the server accepts, in bytes (v4 only; absent for v3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<u64>,
}

impl Handshake {
    /// The JSON text for a client of `version` (`maxPayload` is dropped for v3).
    pub fn to_json(&self, version: ProtocolVersion) -> String {
        let mut h = self.clone();
        if version == ProtocolVersion::V3 {
            h.max_payload = None;
        }
        serde_json::to_string(&h).unwrap_or_default()
    }
}
