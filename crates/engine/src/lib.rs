//! An Engine.IO server (protocols v3 and v4) over hyper and tokio.
//!
//! Usable alone, like Node's `engine.io` package: build an [`Engine`] with an [`EngineConfig`]
//! and an [`EngineHandler`], and serve it with [`EngineService`] and [`serve`]. The Socket.IO
//! server (`socketlet`) is built on it.
//!
//! # How this crate is built
//!
//! - [`engine`](Engine): the session table and the routing of a request (handshake, poll, POST,
//!   WebSocket, upgrade, preflight), CORS and `allow_request` first.
//! - `socket`: one session ([`Socket`]): its bounded outbox, its protocol state machine (from
//!   `socketlet-engineio-proto`) behind one lock, and closing.
//! - `transport/polling.rs` and `transport/websocket.rs`: the two ways bytes move. Both drain
//!   the same outbox and feed the same state machine.
//! - [`cors`]: python-engineio's origin semantics; [`proxy`]: trusted proxies and allowed
//!   hosts.
//! - `service`: the tower service and the accept loop; `http1`: the HTTP/1.1 connection it
//!   runs (socketlet's own, holding no buffer while it waits).
//!
//! Every per-client buffer is bounded: the outbox by
//! [`EngineConfig::max_buffered_packets`], request bodies and WebSocket messages by
//! [`EngineConfig::max_payload`], the packets of one POST by the same count as the outbox.

mod body;
mod config;
pub mod cors;
mod engine;
mod error;
mod headers;
mod http1;
pub mod proxy;
mod query;
mod service;
mod sid;
mod socket;
pub mod sync;
mod transport;

pub use body::ResponseBody;
pub use config::{AllowRequest, Cookie, EngineConfig, Transports};
pub use cors::Cors;
pub use engine::{Engine, EngineHandler, WeakEngine};
pub use error::SendError;
pub use headers::Headers;
pub use http1::{RequestBody, RequestBodyError, HEAD_TIMEOUT, MAX_HEAD, MAX_HEADERS};
pub use proxy::{AllowedHosts, IpNet, TrustedProxies};
pub use query::percent_decode;
#[cfg(feature = "tls")]
pub use service::serve_tls;
pub use service::{bind, serve, serve_connection, EngineService, Servable};
pub use sid::{SidHash, SidHasher};
pub use socket::{Message, RemoteAddr, RequestInfo, Sid, Socket, TransportKind};
pub use socketlet_engineio_proto as proto;
pub use socketlet_engineio_proto::session::CloseReason;
pub use socketlet_engineio_proto::ProtocolVersion;
/// rustls, for [`serve_tls`]'s configuration (certificates, keys, protocol versions).
#[cfg(feature = "tls")]
pub use tokio_rustls::rustls;
