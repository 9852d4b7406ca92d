//! socketlet: a Socket.IO server for tokio, hyper and tower.
//!
//! It speaks both protocol generations on one endpoint, chosen per request: Engine.IO v4 /
//! Socket.IO v5 (socket.io-client 3.x-4.x, python-socketio 5.x) and Engine.IO v3 / Socket.IO v4
//! (socket.io-client 1.x-2.x, python-socketio 4.x), over long-polling, WebSocket and the upgrade
//! between them.
//!
//! ```no_run
//! use socketlet::{SocketIo, Socket, ConnectError};
//! use serde_json::json;
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new();
//!     let root = io.of("/");
//!     root.use_middleware(|socket: Socket| async move {
//!         match socket.auth().get("token").and_then(|t| t.as_str()) {
//!             Some("secret") => Ok(()),
//!             _ => Err(ConnectError::new("unauthorized").with_data(json!({"code": 401}))),
//!         }
//!     });
//!     root.on_connect(|socket: Socket| {
//!         socket.on("echo", |_socket, event| async move {
//!             if let Some(ack) = event.ack {
//!                 let _ = ack.send(event.data);
//!             }
//!         });
//!         socket.on("join", |socket, event| async move {
//!             if let Some(room) = event.data.str(0) {
//!                 socket.join([room]);
//!                 let _ = socket.to(room).emit("joined", json!(socket.id()));
//!             }
//!         });
//!     });
//!     let listener = socketlet::bind("127.0.0.1:3000".parse().unwrap())?;
//!     socketlet::serve(listener, io.service(), std::future::pending()).await
//! }
//! ```
//!
//! # How this crate is built
//!
//! - `server.rs`: [`SocketIo`], the namespaces, and the engine handler that creates a client
//!   per Engine.IO connection.
//! - `client.rs`: one connection: decoding (bounded attachments), routing packets to the
//!   sockets of its namespaces, the CONNECT flow (middlewares, handler, answer).
//! - `namespace.rs`: [`Namespace`]: middlewares, connection handler, and this node's index of
//!   sockets and rooms.
//! - `socket.rs`: [`Socket`]: events, acks both ways, rooms, per-socket state, disconnect.
//! - `operators.rs`: [`BroadcastOperator`]: `to`, `except`, `volatile`, `local`, `timeout`.
//! - `adapter/`: the [`Adapter`] interface for cluster-wide operations, and [`MemoryAdapter`].
//! - `service.rs`: the tower [`SocketIoService`] and [`SocketIoLayer`].
//!
//! Engine.IO lives in `socketlet-engine`, the wire formats in the sans-I/O crates
//! `socketlet-engineio-proto` and `socketlet-socketio-proto`.

pub mod adapter;
mod client;
mod config;
mod data;
mod error;
mod extensions;
pub mod jobs;
mod namespace;
mod operators;
mod runner;
mod server;
mod service;
mod socket;
mod sync;

pub use adapter::{Adapter, AdapterError, BroadcastOptions, MemoryAdapter, Room};
pub use config::{Builder, SocketIoConfig};
pub use data::Data;
pub use error::{AckError, ConnectError, DisconnectReason, EmitError};
pub use extensions::Extensions;
pub use namespace::{LocalAcks, Namespace};
pub use operators::{AckResponses, BroadcastOperator};
pub use server::{SocketIo, WeakSocketIo};
pub use service::{BoxError, NotFound, ResponseBody, SocketIoLayer, SocketIoService};
pub use socket::{AckSender, Event, Socket, SocketInfo};
pub use socketlet_engine::{
    bind, serve, AllowedHosts, Cookie, Cors, EngineConfig, IpNet, RemoteAddr, RequestInfo,
    TransportKind, TrustedProxies,
};
pub use socketlet_socketio_proto as socketio_proto;
pub use socketlet_socketio_proto::ProtocolVersion;

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
