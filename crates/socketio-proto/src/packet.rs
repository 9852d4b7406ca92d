//! The Socket.IO packet model and its text encoding.
//!
//! Wire form: `<type>[<attachments>-][/<nsp>,][<ack id>][<json>]`, for example
//! `2["hello",1]`, `21["ask"]` (ack id 21), `3/admin,21[true]`,
//! `51-["file",{"_placeholder":true,"num":0}]`, `0/admin,{"token":"x"}`, `1/admin,`.
//! The namespace `/` is omitted when encoding.

use bytes::Bytes;
use serde_json::Value;

/// The packet type digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// `0`.
    Connect,
    /// `1`.
    Disconnect,
    /// `2`.
    Event,
    /// `3`.
    Ack,
    /// `4` (called ERROR in protocol v4).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl PacketKind {
    /// The type from its wire digit.
    pub fn from_digit(c: u8) -> Option<Self> {
        todo!()
    }

    /// The wire digit.
    pub fn digit(self) -> u8 {
        todo!()
    }
}

/// What a packet carries, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum PacketData {
    /// CONNECT. From a client: the optional `auth` object (v5). From the server: v5 sends
    /// `{"sid":"..."}`, v4 sends nothing.
    Connect(Option<Value>),
    /// DISCONNECT.
    Disconnect,
    /// EVENT or BINARY_EVENT: the event name, its arguments (placeholders where attachments
    /// go), and the ack id if the sender wants an answer.
    Event {
        /// The event name (the first element of the JSON array).
        name: String,
        /// The remaining elements.
        args: Vec<Value>,
        /// The ack id.
        id: Option<u64>,
    },
    /// ACK or BINARY_ACK: the answer to the event with ack `id`.
    Ack {
        /// The arguments of the answer.
        args: Vec<Value>,
        /// The ack id being answered.
        id: u64,
    },
    /// CONNECT_ERROR (v5: an object `{"message":...,"data":...}`) or ERROR (v4: a string).
    ConnectError(Value),
}

/// A whole Socket.IO packet, attachments included.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The namespace, always starting with `/`.
    pub nsp: String,
    /// The content.
    pub data: PacketData,
    /// Binary attachments, in placeholder order. Non-empty turns EVENT into BINARY_EVENT and ACK
    /// into BINARY_ACK when encoding.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    /// A packet with no attachments.
    pub fn new(nsp: impl Into<String>, data: PacketData) -> Self {
        Packet {
            nsp: nsp.into(),
            data,
            attachments: Vec::new(),
        }
    }

    /// The wire type: EVENT becomes BINARY_EVENT (ACK, BINARY_ACK) when there are attachments.
    pub fn kind(&self) -> PacketKind {
        todo!()
    }

    /// Encodes the text part (the attachments are sent after it, one binary message each).
    /// JSON is compact and keeps key order.
    pub fn encode(&self) -> String {
        todo!()
    }
}
