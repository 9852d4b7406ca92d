//! The engine: the session table and the routing of each HTTP request to a transport.

use crate::body::{self, Encoding, ResponseBody};
use crate::config::EngineConfig;
use crate::cors;
use crate::query::Query;
use crate::sid::SidHash;
use crate::socket::{Message, RemoteAddr, RequestInfo, Sid, Socket};
use crate::sync::{read, write};
use crate::transport::{polling, websocket};
use http::header::{HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use socketlet_engineio_proto::session::{CloseReason, Session, Timing, Transport};
use socketlet_engineio_proto::{ErrorCode, ProtocolVersion};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

/// What the layer above (the Socket.IO server, or an application using the engine alone) does
/// with sessions. Called from the engine's tasks: implementations must not block.
pub trait EngineHandler: Send + Sync + 'static {
    /// A session completed its handshake.
    fn on_open(&self, socket: &Arc<Socket>);
    /// A message arrived. Messages of one session arrive one at a time, in order.
    fn on_message(&self, socket: &Arc<Socket>, msg: Message);
    /// The session closed, once, for `reason`. No message follows.
    fn on_close(&self, socket: &Arc<Socket>, reason: CloseReason);

    /// The session moved from long-polling to WebSocket. Default: nothing.
    fn on_upgrade(&self, socket: &Arc<Socket>) {
        let _ = socket;
    }
}

pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    pub(crate) handler: Arc<dyn EngineHandler>,
    sessions: RwLock<HashMap<Sid, Arc<Socket>, SidHash>>,
    /// Bytes held by the bodies of POSTs being read (bounded by `max_body_memory`).
    pub(crate) body_memory: std::sync::atomic::AtomicUsize,
}

impl Shared {
    pub(crate) fn remove(&self, sid: Sid) {
        write(&self.sessions).remove(&sid);
    }

    fn get(&self, sid: Sid) -> Option<Arc<Socket>> {
        read(&self.sessions).get(&sid).cloned()
    }

    /// The compression a polling answer to a request with `headers` may use: none when
    /// compression is off.
    fn poll_encoding(&self, headers: &HeaderMap) -> Option<Encoding> {
        self.config
            .compression_threshold
            .and_then(|_| Encoding::accepted(headers))
    }

    pub(crate) fn timing(&self) -> Timing {
        Timing {
            ping_interval: self.config.ping_interval,
            ping_timeout: self.config.ping_timeout,
            upgrade_timeout: self.config.upgrade_timeout,
        }
    }
}

/// A request routed: answered at once, or by a future.
enum Routed {
    Now(Response<ResponseBody>),
    Later(Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>),
}

/// An Engine.IO server: give it HTTP requests with [`Engine::handle`]. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .field("sessions", &self.session_count())
            .finish()
    }
}

/// An [`Engine`] handle that does not keep it alive; see [`Engine::downgrade`].
#[derive(Clone)]
pub struct WeakEngine(std::sync::Weak<Shared>);

impl std::fmt::Debug for WeakEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakEngine")
    }
}

impl WeakEngine {
    /// The engine, if it still exists.
    pub fn upgrade(&self) -> Option<Engine> {
        Some(Engine {
            shared: self.0.upgrade()?,
        })
    }
}

/// The current time as the protocol state machine takes it (follows tokio's paused clock in
/// tests).
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Engine {
    /// An engine with these settings, handing sessions to `handler`.
    pub fn new(config: EngineConfig, handler: Arc<dyn EngineHandler>) -> Engine {
        Engine {
            shared: Arc::new(Shared {
                config,
                handler,
                sessions: RwLock::new(HashMap::default()),
                body_memory: Default::default(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// A handle that does not keep the engine alive.
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.shared))
    }

    /// A live session by id.
    pub fn socket(&self, sid: Sid) -> Option<Arc<Socket>> {
        self.shared.get(sid)
    }

    /// How many sessions the engine holds.
    pub fn session_count(&self) -> usize {
        read(&self.shared.sessions).len()
    }

    /// Closes every session for `reason` (used when shutting down).
    pub fn close_all(&self, reason: CloseReason) {
        let all: Vec<Arc<Socket>> = read(&self.shared.sessions).values().cloned().collect();
        for s in all {
            s.close_with(reason, true);
        }
    }

    /// Whether `path` is the engine's (`/engine.io` or `/engine.io/` by default).
    pub fn matches_path(&self, path: &str) -> bool {
        let own = self.shared.config.path.as_str();
        path.strip_prefix(own)
            .is_some_and(|rest| rest.is_empty() || rest == "/")
    }

    /// Answers one HTTP request aimed at the engine's path: a handshake, a poll, a POST of
    /// packets, a WebSocket, an upgrade or a CORS preflight. Errors are answered with Engine.IO's
    /// JSON error bodies; nothing a client sends makes this panic.
    ///
    /// The request is checked and routed before the future is made, which holds only what its
    /// route needs (a parked GET, which every polling client keeps, a few hundred bytes).
    pub fn handle<B>(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (routed, cors) = self.start(req);
        async move {
            let mut res = match routed {
                Routed::Now(res) => res,
                Routed::Later(answer) => answer.await,
            };
            if let Some((origin, credentials)) = cors {
                cors::apply(
                    res.headers_mut(),
                    &origin,
                    &HeaderMap::new(),
                    false,
                    credentials,
                );
            }
            res
        }
    }

    /// The checks before routing (host, origin), a preflight's answer, and the route; with the
    /// origin to allow in the answer (and whether with credentials) when it is not yet given.
    fn start<B>(&self, req: Request<B>) -> (Routed, Option<(HeaderValue, bool)>)
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let shared = &self.shared;
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        if !shared.config.allowed_hosts.allows(host) {
            tracing::debug!(
                ?host,
                "refused a request for a host the server does not serve"
            );
            let refusal = body::json_error_context(ErrorCode::Forbidden, "Host not allowed");
            return (Routed::Now(refusal), None);
        }
        let peer = req.extensions().get::<RemoteAddr>().map(|a| a.0.ip());
        let forwarded = shared.config.trusted_proxies.trusts(peer);
        let origin = match shared.config.cors.check(req.headers(), forwarded) {
            Ok(origin) => origin.cloned(),
            Err(()) => {
                tracing::debug!(
                    "refused origin {:?}",
                    req.headers().get(http::header::ORIGIN)
                );
                let refusal = body::json_error_message(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadRequest,
                    "Not an accepted origin.",
                );
                return (Routed::Now(refusal), None);
            }
        };
        let credentials = shared.config.cors_credentials;
        if req.method() == Method::OPTIONS {
            let mut res = body::empty(StatusCode::NO_CONTENT);
            if let Some(origin) = origin {
                cors::apply(res.headers_mut(), &origin, req.headers(), true, credentials);
            }
            return (Routed::Now(res), None);
        }
        (self.route(req), origin.map(|o| (o, credentials)))
    }

    /// Routes a request: answered at once, or by the future of its route alone, boxed. A
    /// parked GET, which every polling client keeps, so holds a few hundred bytes rather
    /// than the room of the largest route (the handshake's).
    fn route<B>(&self, req: Request<B>) -> Routed
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let shared = &self.shared;
        let query = Query::parse(req.uri().query());
        let version = match query.eio.as_deref().and_then(ProtocolVersion::from_query) {
            Some(ProtocolVersion::V3) if !shared.config.allow_eio3 => None,
            v => v,
        };
        let Some(version) = version else {
            return Routed::Now(body::json_error(ErrorCode::UnsupportedProtocolVersion));
        };
        let websocket = match query.transport.as_deref() {
            Some("polling") if shared.config.transports.polling => false,
            Some("websocket") if shared.config.transports.websocket => true,
            _ => return Routed::Now(body::json_error(ErrorCode::UnknownTransport)),
        };

        if query.jsonp.is_some() && !shared.config.allow_jsonp {
            tracing::debug!("refused a JSONP request: JSONP polling is off");
            return Routed::Now(body::json_error_context(
                ErrorCode::BadRequest,
                "JSONP polling is disabled",
            ));
        }
        let Some(sid) = query.sid.as_deref() else {
            let engine = self.clone();
            // The query borrows the request: what the handshake needs of it is read now.
            let b64 = version == ProtocolVersion::V3 && (query.b64 || query.jsonp.is_some());
            let jsonp = polling::jsonp_index(&query);
            return Routed::Later(Box::pin(async move {
                engine.handshake(req, version, websocket, b64, jsonp).await
            }));
        };
        let Some(socket) = Sid::parse(sid).and_then(|sid| shared.get(sid)) else {
            return Routed::Now(body::json_error(ErrorCode::UnknownSid));
        };
        if socket.protocol() != version {
            return Routed::Now(body::json_error(ErrorCode::BadRequest));
        }
        if websocket {
            if !shared.config.allow_upgrades {
                return Routed::Now(body::json_error(ErrorCode::BadRequest));
            }
            if let Some(refusal) = self.refuse(&req) {
                return Routed::Now(refusal);
            }
            return Routed::Now(websocket::upgrade(socket, req));
        }
        match *req.method() {
            Method::GET => {
                // A parked GET keeps none of its request: what it needs is read now.
                let jsonp = polling::jsonp_index(&query);
                let encoding = shared.poll_encoding(req.headers());
                drop(req);
                Routed::Later(Box::pin(polling::get(socket, jsonp, encoding)))
            }
            Method::POST => {
                let jsonp = query.jsonp.is_some();
                Routed::Later(Box::pin(polling::post(socket, jsonp, req)))
            }
            _ => Routed::Now(body::json_error(ErrorCode::BadRequest)),
        }
    }

    /// Asks `allow_request` about a request; the refusal to send, if it says no.
    fn refuse<B>(&self, req: &Request<B>) -> Option<Response<ResponseBody>> {
        let allow = self.shared.config.allow_request.as_ref()?;
        // The hook sees the request head only; rebuild one without the body.
        let mut head = Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = req.uri().clone();
        *head.version_mut() = req.version();
        *head.headers_mut() = req.headers().clone();
        if let Some(addr) = req.extensions().get::<RemoteAddr>() {
            head.extensions_mut().insert(*addr);
        }
        let (parts, ()) = head.into_parts();
        let context = allow(&parts).err()?;
        tracing::debug!(%context, "request refused by allow_request");
        Some(body::json_error_context(ErrorCode::Forbidden, &context))
    }

    async fn handshake<B>(
        &self,
        req: Request<B>,
        version: ProtocolVersion,
        websocket: bool,
        b64: bool,
        jsonp: Result<Option<u32>, ()>,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let shared = &self.shared;
        if req.method() != Method::GET {
            return body::json_error(ErrorCode::BadHandshakeMethod);
        }
        if websocket && !websocket::is_upgrade_request(req.headers()) {
            return body::json_error(ErrorCode::BadRequest);
        }
        if let Some(refusal) = self.refuse(&req) {
            return refusal;
        }
        if self.session_count() >= shared.config.max_sessions {
            tracing::warn!("session limit reached, refusing a handshake");
            return body::json_error(ErrorCode::BadRequest);
        }
        let transport = if websocket {
            Transport::WebSocket
        } else {
            Transport::Polling
        };
        let session = Session::new(version, shared.timing(), transport, now());
        let sid = Sid::random();
        let request = RequestInfo::detached(&req);
        let socket = Arc::new(Socket::new(
            sid,
            session,
            request,
            b64,
            shared.config.max_buffered_packets,
            Arc::downgrade(shared),
        ));
        let handshake = socketlet_engineio_proto::Handshake {
            sid: sid.to_string(),
            upgrades: if !websocket
                && shared.config.allow_upgrades
                && shared.config.transports.websocket
            {
                vec!["websocket"]
            } else {
                vec![]
            },
            ping_interval: shared.config.ping_interval.as_millis() as u64,
            ping_timeout: shared.config.ping_timeout.as_millis() as u64,
            max_payload: Some(shared.config.max_payload),
        };
        socket.push_control(socketlet_engineio_proto::Packet::Open(
            handshake.to_json(version).into(),
        ));
        write(&shared.sessions).insert(sid, socket.clone());
        tracing::debug!(%sid, ?version, websocket, "handshake");

        let mut res = if websocket {
            websocket::open(socket.clone(), req)
        } else {
            polling::start_timer(socket.clone());
            shared.handler.on_open(&socket);
            let encoding = shared.poll_encoding(req.headers());
            polling::get(socket.clone(), jsonp, encoding).await
        };
        if let Some(cookie) = &shared.config.cookie {
            let mut v = format!("{}={}; Path={}", cookie.name, sid, cookie.path);
            if cookie.http_only {
                v.push_str("; HttpOnly");
            }
            v.push_str("; SameSite=");
            v.push_str(cookie.same_site);
            if let Ok(v) = http::HeaderValue::from_str(&v) {
                res.headers_mut().append(http::header::SET_COOKIE, v);
            }
        }
        res
    }
}
