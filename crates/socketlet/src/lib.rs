//! socketlet: a Socket.IO server for tokio, hyper and tower.
//!
//! It speaks both protocol generations on one endpoint, chosen per request: Engine.IO v4 /
//! Socket.IO v5 (socket.io-client 3.x-4.x, python-socketio 5.x) and Engine.IO v3 / Socket.IO v4
//! (socket.io-client 1.x-2.x, python-socketio 4.x), over long-polling, WebSocket and the upgrade
//! between them.
//!
//! ```no_run
//! use socketlet::{AckSender, Args, ConnectError, Data, Socket, SocketIo};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let io = SocketIo::new();
//!     let root = io.of("/");
//!     root.use_middleware(|socket: Socket| async move {
//!         match socket.auth()["token"].as_str() {
//!             Some("secret") => Ok(()),
//!             _ => Err(ConnectError::new("unauthorized")),
//!         }
//!     });
//!     root.on_connect(|socket: Socket| async move {
//!         socket.on("echo", |data: Data, ack: AckSender| async move {
//!             let _ = ack.send(data);
//!         });
//!         socket.on("join", |socket: Socket, Args(room): Args<String>| async move {
//!             socket.join([room.clone()]);
//!             let _ = socket.to(room).emit("joined", socket.id());
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
//! - `namespace.rs`: [`Namespace`]: middlewares, connection handlers, operators;
//!   `local.rs`: [`LocalNamespace`], this node's sockets and rooms and delivery to them (what
//!   adapters work on).
//! - `handler.rs`: [`handler`]: handlers and their extractors ([`Args`], [`AckSender`], ...).
//! - `observer.rs`: [`Observer`], what metrics, admin tools and hooks watch the server with.
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
pub mod handler;
mod info;
mod local;
mod namespace;
pub mod observer;
mod operators;
mod runner;
mod server;
mod service;
mod socket;

pub use adapter::{
    Adapter, AdapterError, BroadcastOptions, Disconnect, LocalAcks, LocalNamespace, MemoryAdapter,
    Room,
};
pub use config::{Builder, Parser, RecoveryConfig, SocketIoConfig};
pub use data::{Data, IntoArgs};
pub use error::{AckError, ConnectError, DisconnectReason, EmitError};
pub use extensions::Extensions;
pub use handler::{
    AckSender, Args, ArgsError, Event, EventName, EventParts, FromEvent, Handler, TryArgs,
};
pub use info::{Handshake, SocketInfo};
pub use namespace::Namespace;
pub use observer::Observer;
pub use operators::{AckResponses, BroadcastOperator};
pub use server::{SocketIo, WeakSocketIo};
pub use service::{
    box_response, call_inner, BoxError, InnerService, NotFound, ResponseBody, ServiceFuture,
    SocketIoLayer, SocketIoService,
};
pub use socket::{AnyEvent, Socket};
pub use socketlet_engine::{
    bind, serve, serve_connection, AllowedHosts, Cookie, Cors, EngineConfig, Headers, IpNet,
    RemoteAddr, RequestBody, RequestBodyError, RequestInfo, Servable, TransportKind, Transports,
    TrustedProxies,
};
/// HTTPS and WSS on the listener (feature `tls`), and rustls to configure them.
#[cfg(feature = "tls")]
pub use socketlet_engine::{rustls, serve_tls};
pub use socketlet_socketio_proto::{DecoderLimits, ProtocolVersion};

/// The wire format of Socket.IO packets (the sans-I/O `socketlet-socketio-proto` crate).
pub use socketlet_socketio_proto as socketio_proto;

/// The Engine.IO server underneath (the `socketlet-engine` crate): its raw sessions and
/// messages, for an application that serves plain Engine.IO too.
pub mod engine {
    pub use socketlet_engine::{
        sync, CloseReason, Engine, EngineHandler, EngineService, Message,
        ProtocolVersion as EngineProtocol, SendError, Sid, SidHash, SidHasher,
        Socket as Connection, WeakEngine,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
