//! The engine as a tower [`Service`], and a plain hyper server loop to run any such service.

use crate::body::ResponseBody;
use crate::engine::Engine;
use crate::http1::RequestBody;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tower_service::Service;

/// The engine alone as a tower service (like Node's `engine.io` package): requests to its path
/// are answered by the engine, anything else gets a 404.
#[derive(Debug, Clone)]
pub struct EngineService {
    engine: Engine,
}

impl EngineService {
    /// Wraps an engine.
    pub fn new(engine: Engine) -> Self {
        EngineService { engine }
    }
}

impl<B> Service<Request<B>> for EngineService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.engine.matches_path(req.uri().path()) {
            let answer = self.engine.handle(req);
            Box::pin(async move { Ok(answer.await) })
        } else {
            let mut res = Response::new(ResponseBody::new(Bytes::from_static(b"Not Found")));
            *res.status_mut() = StatusCode::NOT_FOUND;
            Box::pin(std::future::ready(Ok(res)))
        }
    }
}

/// A tower service that [`serve`] (and `serve_tls`) can run: it takes requests whose body is a
/// [`RequestBody`], never fails, is cloned for each connection, and answers with a body of
/// bytes. Every service with these properties is one (services generic over the request body,
/// as the engine's and socketlet's are, among them).
pub trait Servable:
    Service<
        Request<RequestBody>,
        Response = Response<Self::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The body of its responses.
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
}

impl<S, B> Servable for S
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Body = B;
}

/// Binds a TCP listener with a deep accept backlog (4096), so bursts of connections do not pay
/// SYN retries.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves HTTP/1.1 (with upgrades, for WebSocket) on `listener` with `service` until `shutdown`
/// completes; then stops accepting and returns. Connections already open carry on until they end.
///
/// The connections are socketlet's own HTTP/1.1 (see [`RequestBody`] for what it reads), not
/// hyper's: a connection keeps no buffer while it waits, which is what a long-polling client
/// costs most of the time. A service that needs hyper's own upgrades (`hyper::upgrade::on`)
/// is served with hyper instead (axum's `serve`, say); the engine works under both.
///
/// Each request gets a [`RemoteAddr`](crate::RemoteAddr) extension with the peer's address.
pub async fn serve<S, F>(listener: TcpListener, service: S, shutdown: F) -> std::io::Result<()>
where
    S: Servable,
    F: Future<Output = ()> + Send,
{
    accept_loop(listener, shutdown, move |stream, peer| {
        let service = service.clone();
        serve_connection(stream, peer, service)
    })
    .await
}

/// How long a client may take over its TLS handshake.
#[cfg(feature = "tls")]
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// As [`serve`], over TLS: HTTPS and WSS with `tls` (a rustls server configuration; its ALPN
/// protocols are set to `http/1.1` when empty). A handshake that fails or takes longer than
/// 10 s ends that connection only.
#[cfg(feature = "tls")]
pub async fn serve_tls<S, F>(
    listener: TcpListener,
    service: S,
    tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    shutdown: F,
) -> std::io::Result<()>
where
    S: Servable,
    F: Future<Output = ()> + Send,
{
    let tls = if tls.alpn_protocols.is_empty() {
        let mut config = (*tls).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        std::sync::Arc::new(config)
    } else {
        tls
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    accept_loop(listener, shutdown, move |stream, peer| {
        let (acceptor, service) = (acceptor.clone(), service.clone());
        async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, service).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    })
    .await
}

/// Accepts connections until `shutdown`, each handed to `handle` on a task of its own.
async fn accept_loop<F, H, Fut>(
    listener: TcpListener,
    shutdown: F,
    handle: H,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
    H: Fn(tokio::net::TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle(stream, peer));
    }
}

/// Serves one HTTP/1.1 connection (with upgrades) until it ends: what [`serve`] runs for each
/// connection it accepts, for a stream that comes another way (a Unix socket, an in-memory
/// pipe in a test). `peer` is given to each request as its [`RemoteAddr`](crate::RemoteAddr).
pub fn serve_connection<I, S>(
    io: I,
    peer: SocketAddr,
    service: S,
) -> impl Future<Output = ()> + Send + 'static
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Servable,
{
    // Not wrapped in a future of its own: every connection's task would keep a second copy of
    // the arguments.
    crate::http1::serve_connection(io, peer, service)
}
