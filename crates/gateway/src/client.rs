//! The HTTP client of the hooks: a keep-alive pool, signed requests, a timeout and a bound on
//! requests in flight.

use crate::config::HookObserver;
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// The largest answer read from a hook.
const MAX_ANSWER: usize = 1 << 20;

/// The header that carries the signature of a hook request.
pub const SIGNATURE_HEADER: &str = "x-socketlet-signature";
/// The header that carries the time (Unix seconds) a hook request was signed at.
pub const TIMESTAMP_HEADER: &str = "x-socketlet-timestamp";

/// Why a hook call failed. The backend's own words are logged, never shown to clients.
#[derive(Debug)]
#[non_exhaustive]
pub enum HookError {
    /// No answer within the timeout.
    Timeout,
    /// `max_in_flight` requests were under way for the whole timeout.
    Busy,
    /// The backend could not be reached.
    Unreachable(String),
    /// The backend answered with this status (not 2xx).
    Status(StatusCode),
    /// The answer was not the JSON the hook expects.
    BadAnswer(String),
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookError::Timeout => f.write_str("the backend did not answer in time"),
            HookError::Busy => f.write_str("too many hook requests under way"),
            HookError::Unreachable(e) => write!(f, "the backend could not be reached: {e}"),
            HookError::Status(s) => write!(f, "the backend answered {s}"),
            HookError::BadAnswer(e) => write!(f, "the backend's answer is not understood: {e}"),
        }
    }
}

impl std::error::Error for HookError {}

impl HookError {
    /// A short name of the failure, for metrics: `timeout`, `busy`, `unreachable`, `status`
    /// or `bad_answer`.
    pub fn kind(&self) -> &'static str {
        match self {
            HookError::Timeout => "timeout",
            HookError::Busy => "busy",
            HookError::Unreachable(_) => "unreachable",
            HookError::Status(_) => "status",
            HookError::BadAnswer(_) => "bad_answer",
        }
    }
}

/// Signs `body` sent at `timestamp` (Unix seconds) with `secret`: hex of
/// HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // A key of any length is accepted by HMAC: this cannot fail.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Posts JSON to hooks.
#[derive(Clone)]
pub(crate) struct HookClient {
    client: Client<HttpConnector, Full<Bytes>>,
    secret: Option<Arc<[u8]>>,
    timeout: Duration,
    permits: Arc<Semaphore>,
    observer: Option<HookObserver>,
}

impl HookClient {
    pub(crate) fn new(
        secret: Option<&str>,
        timeout: Duration,
        max_in_flight: usize,
        observer: Option<HookObserver>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HookClient {
            client,
            secret: secret.map(|s| Arc::from(s.as_bytes())),
            timeout,
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            observer,
        }
    }

    /// POSTs `body` to the `hook` at `url` and returns the JSON answer.
    pub(crate) async fn post(
        &self,
        hook: &'static str,
        url: &Uri,
        body: &Value,
    ) -> Result<Value, HookError> {
        let started = tokio::time::Instant::now();
        let answer = self.post_timed(started, url, body).await;
        if let Some(HookObserver(observe)) = &self.observer {
            let outcome = match &answer {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            observe(hook, outcome, started.elapsed());
        }
        answer
    }

    async fn post_timed(
        &self,
        started: tokio::time::Instant,
        url: &Uri,
        body: &Value,
    ) -> Result<Value, HookError> {
        let permit = tokio::time::timeout(self.timeout, self.permits.acquire())
            .await
            .map_err(|_| HookError::Busy)?
            .map_err(|_| HookError::Busy)?;
        let body = serde_json::to_vec(body).map_err(|e| HookError::BadAnswer(e.to_string()))?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "socketlet");
        if let Some(secret) = &self.secret {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let signature = sign(secret, timestamp, &body);
            if let (Ok(ts), Ok(sig)) = (
                HeaderValue::from_str(&timestamp.to_string()),
                HeaderValue::from_str(&signature),
            ) {
                req = req
                    .header(TIMESTAMP_HEADER, ts)
                    .header(SIGNATURE_HEADER, sig);
            }
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HookError::Unreachable(e.to_string()))?;
        let remaining = self.timeout.saturating_sub(started.elapsed());
        let answer = tokio::time::timeout(remaining, async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| HookError::Unreachable(e.to_string()))?;
            let status = res.status();
            let body = Limited::new(res.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| HookError::BadAnswer(e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                return Err(HookError::Status(status));
            }
            serde_json::from_slice(&body).map_err(|e| HookError::BadAnswer(e.to_string()))
        })
        .await
        .map_err(|_| HookError::Timeout)?;
        drop(permit);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_timestamp_and_the_body() {
        // Computed independently: python3 -c 'import hmac, hashlib;
        // print(hmac.new(b"secret", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest())'
        assert_eq!(
            sign(b"secret", 1_700_000_000, br#"{"a":1}"#),
            "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}
