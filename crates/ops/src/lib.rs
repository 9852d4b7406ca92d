//! Operating socketlet: Prometheus metrics ([`Metrics`], an [`socketlet::Observer`]) and health
//! checks, served by [`OpsService`] in front of any service; and the server side of the
//! official Socket.IO Admin UI ([`AdminUi`], see the [`admin`] module).
//!
//! ```no_run
//! use socketlet::SocketIo;
//! use socketlet_ops::{Health, Metrics, OpsService};
//! use std::sync::Arc;
//!
//! # async fn demo() -> std::io::Result<()> {
//! let io = SocketIo::new();
//! let metrics = Metrics::new();
//! io.observe(Arc::new(metrics.clone()));
//! let service = OpsService::new(io.service(), Health::new()).with_metrics(metrics);
//! let listener = socketlet::bind("127.0.0.1:3000".parse().unwrap())?;
//! socketlet::serve(listener, service, std::future::pending()).await
//! # }
//! ```
//!
//! # How this crate is built
//!
//! `metrics.rs`: the counters and gauges, fed by the server's observer interface (one atomic
//! add per packet; labelled series change only when connections come and go), plus gauges read
//! at scrape time. `health.rs`: liveness and readiness. `lib.rs`: the service that answers
//! `/metrics`, `/health/live` and `/health/ready` and passes everything else on. `admin.rs` (and
//! `admin/`): the Admin UI's namespace, an observer of its own, and its commands.

pub mod admin;
mod health;
mod metrics;

#[cfg(feature = "redis")]
pub use admin::RedisSessionStore;
pub use admin::{
    AdminAuth, AdminConfig, AdminError, AdminMode, AdminUi, MemorySessionStore, SessionStore,
};
pub use health::{Health, ReadyCheck};
pub use metrics::{Metrics, MAX_NAMESPACE_LABELS};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use socketlet::{box_response, call_inner, InnerService, ResponseBody, ServiceFuture};
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower_service::Service;

/// Answers `/health/live`, `/health/ready` and (with metrics) `/metrics`; passes every other
/// request to `inner`.
#[derive(Clone, Debug)]
pub struct OpsService<S> {
    inner: S,
    health: Health,
    metrics: Option<Metrics>,
}

impl<S> OpsService<S> {
    /// Health checks in front of `inner`.
    pub fn new(inner: S, health: Health) -> Self {
        OpsService {
            inner,
            health,
            metrics: None,
        }
    }

    /// Also answers `/metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ResponseBody> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    box_response(res)
}

impl<S, B> Service<Request<B>> for OpsService<S>
where
    S: InnerService<B, Error = Infallible>,
    B: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServiceFuture<Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match req.uri().path() {
            "/health/live" => {
                return Box::pin(async {
                    Ok(text(
                        StatusCode::OK,
                        "text/plain; charset=utf-8",
                        "ok\n".into(),
                    ))
                })
            }
            "/health/ready" => {
                let health = self.health.clone();
                return Box::pin(async move {
                    Ok(match health.ready().await {
                        Ok(()) => text(
                            StatusCode::OK,
                            "text/plain; charset=utf-8",
                            "ready\n".into(),
                        ),
                        Err(why) => text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain; charset=utf-8",
                            format!("not ready: {why}\n"),
                        ),
                    })
                });
            }
            "/metrics" if self.metrics.is_some() => {
                let body = self
                    .metrics
                    .as_ref()
                    .map(Metrics::render)
                    .unwrap_or_default();
                return Box::pin(async move {
                    Ok(text(
                        StatusCode::OK,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        body,
                    ))
                });
            }
            _ => {}
        }
        call_inner(&mut self.inner, req)
    }
}
