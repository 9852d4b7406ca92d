//! The backend hooks: socketlet calls the backend when a client connects, sends an event, and
//! disconnects.
//!
//! - **connect**: a middleware of the namespace. `{sid, nsp, auth, query, headers, address,
//!   protocol, transport}` is POSTed; `{"result": {"user", "rooms", "data"}}` accepts (the
//!   socket joins the rooms; `user` and `data` are kept as the socket's data,
//!   `{"user": .., "data": ..}`), `{"error": {"message", "data"}}` refuses with that
//!   CONNECT_ERROR. A failed call refuses with `"server error"` (never the backend's words).
//! - **event**: a fallback handler (events the application handles itself do not go to the
//!   backend). `{sid, nsp, user, data, event, args, binary}` is POSTed, one event of a socket
//!   at a time and in order, on a task of the socket's own (other sockets never wait for a
//!   slow backend). The answer's `result.ack` is the ack; `result` may also carry commands
//!   applied first: `join`, `leave` (rooms), `emit` (`[{event, args, binary, rooms}]`, to the
//!   rooms or, without rooms, to the socket), `disconnect` (`true`).
//! - **disconnect**: `{sid, nsp, user, reason}` once per socket.

use crate::client::{HookClient, HookError};
use crate::config::HookConfig;
use crate::data::{data_from_wire, data_to_wire};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use socketlet::{AckSender, ConnectError, Data, DisconnectReason, EventName, Namespace, Socket};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The message a client sees when its backend fails.
const SERVER_ERROR: &str = "server error";

/// The hooks of one gateway, shared by the namespaces they serve.
pub(crate) struct Hooks {
    config: HookConfig,
    client: HookClient,
}

/// The events of one socket on their way to the event hook.
#[derive(Clone)]
struct EventQueue(mpsc::Sender<QueuedEvent>);

struct QueuedEvent {
    name: String,
    data: Data,
    ack: AckSender,
}

/// The connect hook's answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectAnswer {
    #[serde(default)]
    result: Option<ConnectResult>,
    #[serde(default)]
    error: Option<HookRefusal>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConnectResult {
    #[serde(default)]
    user: Value,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HookRefusal {
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

/// The event hook's answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventAnswer {
    #[serde(default)]
    result: Option<EventResult>,
    #[serde(default)]
    error: Option<HookRefusal>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EventResult {
    /// The ack's arguments.
    #[serde(default)]
    ack: Option<Vec<Value>>,
    /// Base64 attachments the ack's placeholders refer to.
    #[serde(default)]
    ack_binary: Vec<String>,
    #[serde(default)]
    join: Vec<String>,
    #[serde(default)]
    leave: Vec<String>,
    #[serde(default)]
    emit: Vec<EmitCommand>,
    #[serde(default)]
    disconnect: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitCommand {
    event: String,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    binary: Vec<String>,
    /// To these rooms of the socket's namespace; to the socket itself when empty.
    #[serde(default)]
    rooms: Vec<String>,
}

impl Hooks {
    pub(crate) fn new(config: HookConfig) -> Arc<Hooks> {
        let client = HookClient::new(
            config.secret.as_deref(),
            config.timeout,
            config.max_in_flight,
            config.observer.clone(),
        );
        Arc::new(Hooks { config, client })
    }

    /// Puts the hooks on `ns`: the connect hook as a middleware (which joins the rooms the
    /// backend gave), then a connection handler that installs the event and disconnect hooks.
    pub(crate) fn attach(self: &Arc<Self>, ns: &Namespace) {
        if self.config.connect.is_some() {
            let hooks = self.clone();
            ns.use_middleware(move |socket: Socket| {
                let hooks = hooks.clone();
                async move { hooks.connect(&socket).await }
            });
        }
        let hooks = self.clone();
        ns.on_connect(move |socket: Socket| {
            hooks.connected(&socket);
            async {}
        });
    }

    /// The headers the backend may see.
    pub(crate) fn visible_headers(&self, socket: &Socket) -> Map<String, Value> {
        let headers = &socket.request().headers;
        let mut out = Map::new();
        for name in &self.config.headers {
            if let Some(v) = headers.get(name) {
                out.insert(name.as_str().to_owned(), Value::from(v));
            }
        }
        if self.config.forward_cookie {
            if let Some(v) = headers.get(http::header::COOKIE) {
                out.insert("cookie".into(), Value::from(v));
            }
        }
        out
    }

    async fn connect(&self, socket: &Socket) -> Result<(), ConnectError> {
        let Some(url) = &self.config.connect else {
            return Ok(());
        };
        let info = socket.info();
        let request = json!({
            "sid": socket.id(),
            "nsp": socket.ns().name(),
            "auth": socket.auth(),
            "query": info.handshake.query,
            "headers": self.visible_headers(socket),
            "address": info.handshake.address,
            "protocol": match socket.protocol() {
                socketlet::ProtocolVersion::V5 => 5,
                socketlet::ProtocolVersion::V4 => 4,
            },
            "transport": socket.transport().as_str(),
        });
        let answer = self
            .client
            .post("connect", url, &request)
            .await
            .and_then(|v| {
                serde_json::from_value::<ConnectAnswer>(v)
                    .map_err(|e| HookError::BadAnswer(e.to_string()))
            })
            .map_err(|e| {
                tracing::warn!(nsp = %socket.ns().name(), "connect hook failed: {e}");
                ConnectError::new(SERVER_ERROR)
            })?;
        match (answer.result, answer.error) {
            (_, Some(refusal)) => {
                let mut error = ConnectError::new(refusal.message);
                if let Some(data) = refusal.data {
                    error = error.with_data(data);
                }
                Err(error)
            }
            (Some(result), None) => {
                let _ = socket.set_data(json!({ "user": result.user, "data": result.data }));
                // Joined here, before the CONNECT answer is written: once the client is
                // connected, whatever reaches its rooms reaches it (a middleware's joins are
                // undone if a later one refuses the socket).
                socket.join(result.rooms);
                Ok(())
            }
            (None, None) => {
                tracing::warn!("connect hook answered neither result nor error");
                Err(ConnectError::new(SERVER_ERROR))
            }
        }
    }

    /// A socket accepted by the namespace: event hook, disconnect hook.
    fn connected(self: &Arc<Self>, socket: &Socket) {
        if self.config.event.is_some() {
            let hooks = self.clone();
            socket.on_fallback(
                move |socket: Socket, EventName(name): EventName, data: Data, ack: AckSender| {
                    hooks.queue_event(&socket, name, data, ack);
                    async {}
                },
            );
        }
        let hooks = self.clone();
        socket.on_disconnect(move |socket: Socket, reason: DisconnectReason| {
            // The event queue closes: its task ends once it has sent what is queued.
            socket.extensions().remove::<EventQueue>();
            let hooks = hooks.clone();
            async move { hooks.disconnected(&socket, reason).await }
        });
    }

    fn queue_event(self: &Arc<Self>, socket: &Socket, name: String, data: Data, ack: AckSender) {
        if !self.config.events.allows(&name) {
            tracing::debug!(event = %name, "event not forwarded to the backend");
            return;
        }
        let queue = match socket.extensions().get::<EventQueue>() {
            Some(q) => q,
            None => {
                let (tx, rx) = mpsc::channel(self.config.max_queued_events.max(1));
                let queue = EventQueue(tx);
                socket.extensions().insert(queue.clone());
                tokio::spawn(self.clone().send_events(socket.clone(), rx));
                queue
            }
        };
        let event = QueuedEvent { name, data, ack };
        if let Err(mpsc::error::TrySendError::Full(event)) = queue.0.try_send(event) {
            tracing::warn!(id = %socket.id(), "too many events waiting for the backend");
            let _ = event.ack.send(json!({
                "error": { "message": "too many events waiting for the backend" }
            }));
        }
    }

    /// The task that sends a socket's events to the event hook, one at a time.
    async fn send_events(self: Arc<Self>, socket: Socket, mut rx: mpsc::Receiver<QueuedEvent>) {
        let Some(url) = self.config.event.clone() else {
            return;
        };
        while let Some(event) = rx.recv().await {
            let session = socket.data();
            let (args, binary) = data_to_wire(&event.data);
            let request = json!({
                "sid": socket.id(),
                "nsp": socket.ns().name(),
                "user": session.get("user").cloned().unwrap_or(Value::Null),
                "data": session.get("data").cloned().unwrap_or(Value::Null),
                "event": event.name,
                "args": args,
                "binary": binary,
            });
            let answer = self
                .client
                .post("event", &url, &request)
                .await
                .and_then(|v| {
                    serde_json::from_value::<EventAnswer>(v)
                        .map_err(|e| HookError::BadAnswer(e.to_string()))
                });
            match answer {
                Ok(EventAnswer {
                    error: Some(refusal),
                    ..
                }) => {
                    let mut error = json!({ "message": refusal.message });
                    if let Some(data) = refusal.data {
                        error["data"] = data;
                    }
                    let _ = event.ack.send(json!({ "error": error }));
                }
                Ok(EventAnswer { result, .. }) => {
                    self.apply(&socket, result.unwrap_or_default(), event.ack);
                }
                Err(e) => {
                    tracing::warn!(id = %socket.id(), event = %event.name, "event hook failed: {e}");
                    let _ = event
                        .ack
                        .send(json!({ "error": { "message": SERVER_ERROR } }));
                }
            }
        }
    }

    /// Carries out what the event hook answered: commands first, then the ack.
    fn apply(&self, socket: &Socket, result: EventResult, ack: AckSender) {
        socket.join(result.join);
        for room in &result.leave {
            socket.leave(room);
        }
        for emit in result.emit {
            let data = match data_from_wire(emit.args, &emit.binary) {
                Ok(data) => data,
                Err(e) => {
                    tracing::warn!("event hook: a bad emit command: {e}");
                    continue;
                }
            };
            let sent = if emit.rooms.is_empty() {
                socket.emit(&emit.event, data)
            } else {
                let mut op = socket.ns().broadcast();
                for room in emit.rooms {
                    op = op.to(room);
                }
                op.emit(&emit.event, data)
            };
            if let Err(e) = sent {
                tracing::debug!("event hook: an emit command failed: {e}");
            }
        }
        if let Some(args) = result.ack {
            match data_from_wire(args, &result.ack_binary) {
                Ok(data) => {
                    let _ = ack.send(data);
                }
                Err(e) => {
                    tracing::warn!("event hook: a bad ack: {e}");
                    let _ = ack.send(json!({ "error": { "message": SERVER_ERROR } }));
                }
            }
        }
        if result.disconnect {
            socket.disconnect();
        }
    }

    async fn disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        let Some(url) = &self.config.disconnect else {
            return;
        };
        let session = socket.data();
        let request = json!({
            "sid": socket.id(),
            "nsp": socket.ns().name(),
            "user": session.get("user").cloned().unwrap_or(Value::Null),
            "reason": reason.as_str(),
        });
        if let Err(e) = self.client.post("disconnect", url, &request).await {
            tracing::warn!(id = %socket.id(), "disconnect hook failed: {e}");
        }
    }
}
