//! Mounting the server: a tower [`Service`] and [`Layer`], for axum or any tower stack, and a
//! plain hyper server.

use crate::server::SocketIo;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// A boxed error, as response bodies carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body of [`SocketIoService`]: the engine's, or the wrapped service's.
pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The future of [`SocketIoService`], and of any service that answers some requests itself and
/// passes the others on (see [`call_inner`]).
pub type ServiceFuture<E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, E>> + Send>>;

/// A response with its body boxed as a [`ResponseBody`].
pub fn box_response<RB>(res: Response<RB>) -> Response<ResponseBody>
where
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    res.map(|b| b.map_err(Into::into).boxed_unsync())
}

/// A service that a service in front of it ([`SocketIoService`], and the like) passes requests
/// on to with [`call_inner`]: it can be cloned, and its response bodies boxed. Every service
/// with these properties is one.
pub trait InnerService<B>:
    Service<Request<B>, Response = Response<Self::Body>, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
    /// The body of its responses.
    type Body: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B, RB> InnerService<B> for S
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Body = RB;
}

/// For a service in front of `inner` that does not answer `req` itself: `inner` takes the
/// request, and its response comes back with the body boxed. `inner` must be the service the
/// wrapper's `poll_ready` readied; a clone of it (not ready yet) stays in its place.
pub fn call_inner<S: InnerService<B>, B>(
    inner: &mut S,
    req: Request<B>,
) -> ServiceFuture<S::Error> {
    let clone = inner.clone();
    let mut ready = std::mem::replace(inner, clone);
    let fut = ready.call(req);
    Box::pin(async move { Ok(box_response(fut.await?)) })
}

/// The innermost service of a standalone server: 404 for everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<B> Service<Request<B>> for NotFound {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut res = Response::new(Full::new(Bytes::from_static(b"Not Found")));
        *res.status_mut() = StatusCode::NOT_FOUND;
        std::future::ready(Ok(res))
    }
}

/// Answers requests to the server's path (`/socket.io/` by default) and passes every other
/// request to `inner`.
#[derive(Clone, Debug)]
pub struct SocketIoService<S = NotFound> {
    io: SocketIo,
    inner: S,
}

impl SocketIoService<NotFound> {
    /// The server alone.
    pub fn new(io: SocketIo) -> Self {
        SocketIoService {
            io,
            inner: NotFound,
        }
    }
}

impl<S> SocketIoService<S> {
    /// The server in front of `inner`.
    pub fn with_inner(io: SocketIo, inner: S) -> Self {
        SocketIoService { io, inner }
    }
}

impl<S, B> Service<Request<B>> for SocketIoService<S>
where
    S: InnerService<B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = ServiceFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.io.engine().matches_path(req.uri().path()) {
            let answer = self.io.engine().handle(req);
            return Box::pin(async move { Ok(box_response(answer.await)) });
        }
        call_inner(&mut self.inner, req)
    }
}

/// Puts a [`SocketIoService`] in front of a service, e.g. an axum `Router`.
#[derive(Clone, Debug)]
pub struct SocketIoLayer {
    io: SocketIo,
}

impl SocketIoLayer {
    /// A layer serving `io`.
    pub fn new(io: SocketIo) -> Self {
        SocketIoLayer { io }
    }
}

impl<S> Layer<S> for SocketIoLayer {
    type Service = SocketIoService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SocketIoService::with_inner(self.io.clone(), inner)
    }
}

impl SocketIo {
    /// A tower layer that serves this server in front of another service.
    pub fn layer(&self) -> SocketIoLayer {
        SocketIoLayer::new(self.clone())
    }
}
