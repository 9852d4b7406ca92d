//! The server API: the backend emits, moves sockets between rooms, disconnects them and lists
//! them, over HTTP and JSON. Every operation goes through the namespace's adapter, so on a
//! cluster it reaches every node.
//!
//! `POST /api/<method>` with `Authorization: Bearer <key>` and a JSON body; the answer is JSON,
//! `{"error": {"code", "message"}}` with a 4xx/5xx status when it fails. The methods and their
//! bodies are described by the OpenAPI document served at `GET /api/openapi.json` (the file
//! `openapi.json` of this crate).

use crate::data::{data_from_wire, data_to_wire};
use crate::Gateway;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Digest;
use socketlet::{BroadcastOperator, RemoteAddr, SocketInfo};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

/// The OpenAPI 3 document of the API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Sources whose failed authentications were logged (each is logged once, up to this many).
const MAX_WARNED: usize = 1024;

/// A failed API call: its status, a stable code and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`bad_request`, `unauthorized`, ...).
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn no_method(method: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no API method {method:?}"),
        )
    }

    fn json(&self) -> Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}

/// Which sockets an API call targets: `nsp` (default `/`), `rooms` (all sockets when empty),
/// minus `except`, plus the sockets of `sids`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Selection {
    #[serde(default = "root")]
    nsp: String,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    sids: Vec<String>,
}

fn root() -> String {
    "/".to_owned()
}

impl Selection {
    /// Its fields, which every method that selects sockets takes beside its own.
    const FIELDS: [&'static str; 4] = ["nsp", "rooms", "except", "sids"];

    /// Every socket of a namespace.
    fn all(nsp: String) -> Self {
        Selection {
            nsp,
            rooms: Vec::new(),
            except: Vec::new(),
            sids: Vec::new(),
        }
    }
}

/// `emit`'s own fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitRequest {
    event: String,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    binary: Vec<String>,
    #[serde(default)]
    volatile: bool,
    #[serde(default)]
    ack_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinRequest {
    join: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaveRequest {
    leave: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectRequest {
    #[serde(default)]
    close: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomsRequest {
    #[serde(default = "root")]
    nsp: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    commands: Vec<Map<String, Value>>,
}

/// Failed authentications already logged, by source.
#[derive(Default)]
pub(crate) struct Warned(Mutex<HashSet<Option<IpAddr>>>);

impl Warned {
    fn first(&self, source: Option<IpAddr>) -> bool {
        let mut seen = socketlet::engine::sync::lock(&self.0);
        seen.len() < MAX_WARNED && seen.insert(source)
    }
}

/// The digests of the API keys: a key is compared with each in constant time (a digest each,
/// then every byte, whatever matched).
pub(crate) fn digest_keys(keys: &[String]) -> Vec<[u8; 32]> {
    keys.iter()
        .map(|k| sha2::Sha256::digest(k.as_bytes()).into())
        .collect()
}

fn key_matches(candidate: &[u8], keys: &[[u8; 32]]) -> bool {
    let candidate: [u8; 32] = sha2::Sha256::digest(candidate).into();
    let mut found = 0u8;
    for key in keys {
        let diff = key
            .iter()
            .zip(candidate.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        found |= u8::from(diff == 0);
    }
    found == 1
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn fail(error: &ApiError) -> Response<Full<Bytes>> {
    let mut res = respond(error.status, &error.json());
    if error.status == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

const NOT_AN_OBJECT: &str = "the body must be a JSON object";

fn parse<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    // serde reads a struct from an array too, by position: the API takes objects only.
    if !v.is_object() {
        return Err(ApiError::bad_request(NOT_AN_OBJECT));
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The body of a method that selects sockets: the [`Selection`]'s fields, and the method's own
/// (`T`); a field that is neither is an error.
fn parse_selected<T: DeserializeOwned>(v: Value) -> Result<(Selection, T), ApiError> {
    let Value::Object(mut own) = v else {
        return Err(ApiError::bad_request(NOT_AN_OBJECT));
    };
    let selection: Map<String, Value> = Selection::FIELDS
        .iter()
        .filter_map(|&field| Some((field.to_owned(), own.remove(field)?)))
        .collect();
    Ok((parse(Value::Object(selection))?, parse(Value::Object(own))?))
}

impl Gateway {
    /// Answers one request to the API, whose path is `/api/<method>` (the prefix is the
    /// caller's business: see [`crate::ApiService`]). Nothing a caller sends makes it panic.
    pub async fn handle_api<B>(&self, method: &str, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if method == "openapi.json" && req.method() == Method::GET {
            let mut res = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return res;
        }
        let inner = &self.inner;
        let source = req.extensions().get::<RemoteAddr>().map(|a| a.0.ip());
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !presented.is_some_and(|k| key_matches(k.as_bytes(), &inner.api_keys)) {
            if inner.warned.first(source) {
                tracing::warn!(?source, "API call with a missing or wrong key");
            }
            return fail(&ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API key (Authorization: Bearer <key>)",
            ));
        }
        if req.method() != Method::POST {
            let mut res = fail(&ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the API takes POST",
            ));
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return res;
        }
        if !KNOWN.contains(&method) {
            return fail(&ApiError::no_method(method));
        }
        let limit = inner.config.api_body_limit;
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return if e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    fail(&ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the body is over {limit} bytes"),
                    ))
                } else {
                    fail(&ApiError::bad_request("the body could not be read"))
                };
            }
        };
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return fail(&ApiError::bad_request(format!("not JSON: {e}"))),
        };
        match self.call(method, value).await {
            Ok(answer) => respond(StatusCode::OK, &answer),
            Err(e) => fail(&e),
        }
    }

    /// Runs one API method.
    async fn call(&self, method: &str, body: Value) -> Result<Value, ApiError> {
        match method {
            "emit" => {
                let (sel, r) = parse_selected(body)?;
                self.emit(&sel, r).await
            }
            "sockets_join" => {
                let (sel, r): (_, JoinRequest) = parse_selected(body)?;
                let op = self.select(&sel)?;
                op.sockets_join(r.join).await.map_err(cluster)?;
                Ok(json!({}))
            }
            "sockets_leave" => {
                let (sel, r): (_, LeaveRequest) = parse_selected(body)?;
                let op = self.select(&sel)?;
                op.sockets_leave(r.leave).await.map_err(cluster)?;
                Ok(json!({}))
            }
            "disconnect_sockets" => {
                let (sel, r): (_, DisconnectRequest) = parse_selected(body)?;
                let op = self.select(&sel)?;
                if r.close {
                    op.close_connections().await.map_err(cluster)?;
                } else {
                    op.disconnect_sockets().await.map_err(cluster)?;
                }
                Ok(json!({}))
            }
            "fetch_sockets" => {
                let sel: Selection = parse(body)?;
                let sockets = self.select(&sel)?.fetch_sockets().await.map_err(cluster)?;
                Ok(Value::Array(
                    sockets.iter().map(|s| self.describe(s)).collect(),
                ))
            }
            "rooms" => {
                let r: RoomsRequest = parse(body)?;
                let sockets = self
                    .select(&Selection::all(r.nsp))?
                    .fetch_sockets()
                    .await
                    .map_err(cluster)?;
                let mut rooms: BTreeMap<String, usize> = BTreeMap::new();
                for s in &sockets {
                    for room in s.rooms.iter().filter(|r| **r != s.id) {
                        *rooms.entry(room.clone()).or_default() += 1;
                    }
                }
                Ok(Value::Array(
                    rooms
                        .into_iter()
                        .map(|(room, sockets)| json!({ "room": room, "sockets": sockets }))
                        .collect(),
                ))
            }
            "batch" => {
                let r: BatchRequest = parse(body)?;
                let mut answers = Vec::with_capacity(r.commands.len());
                for command in r.commands {
                    let answer = match single(command) {
                        Ok((method, body)) if method != "batch" => {
                            Box::pin(self.call(&method, body)).await
                        }
                        Ok(_) => Err(ApiError::bad_request("a batch cannot hold a batch")),
                        Err(e) => Err(e),
                    };
                    answers.push(match answer {
                        Ok(result) => json!({ "result": result }),
                        Err(e) => e.json(),
                    });
                }
                Ok(Value::Array(answers))
            }
            _ => Err(ApiError::no_method(method)),
        }
    }

    /// The sockets a selection targets.
    fn select(&self, sel: &Selection) -> Result<BroadcastOperator, ApiError> {
        let unknown = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_namespace",
                format!("no namespace {:?}", sel.nsp),
            )
        };
        let ns = match self.inner.io.namespace(&sel.nsp) {
            Some(ns) => ns,
            None => {
                // A namespace new to this node: made (clients of other nodes may be in it),
                // within the bound.
                let made = &self.inner.api_namespaces;
                if made.fetch_add(1, Ordering::Relaxed) >= self.inner.config.api_max_new_namespaces
                {
                    made.fetch_sub(1, Ordering::Relaxed);
                    return Err(unknown());
                }
                let ns = self.inner.io.resolve(&sel.nsp);
                if ns.is_none() {
                    made.fetch_sub(1, Ordering::Relaxed);
                }
                ns.ok_or_else(unknown)?
            }
        };
        let mut op = ns.broadcast();
        for room in sel.rooms.iter().chain(&sel.sids) {
            op = op.to(room.clone());
        }
        for room in &sel.except {
            op = op.except(room.clone());
        }
        Ok(op)
    }

    async fn emit(&self, sel: &Selection, r: EmitRequest) -> Result<Value, ApiError> {
        let mut op = self.select(sel)?;
        if r.volatile {
            op = op.volatile();
        }
        let data = data_from_wire(r.args, &r.binary).map_err(|e| ApiError::bad_request(e.0))?;
        let Some(timeout) = r.ack_timeout_ms else {
            op.emit(&r.event, data).map_err(emit_error)?;
            return Ok(json!({}));
        };
        let max = self.inner.config.api_max_ack_timeout;
        if u128::from(timeout) > max.as_millis() {
            return Err(ApiError::bad_request(format!(
                "ack_timeout_ms is at most {}",
                max.as_millis()
            )));
        }
        let acks = op
            .timeout(Duration::from_millis(timeout))
            .emit_with_ack(&r.event, data)
            .await
            .map_err(emit_error)?;
        let answers: Vec<Value> = acks
            .responses
            .iter()
            .map(|(id, data)| {
                let (args, binary) = data_to_wire(data);
                json!({ "id": id, "args": args, "binary": binary })
            })
            .collect();
        Ok(json!({
            "acks": answers,
            "missing": acks.missing,
            "missing_remote": acks.missing_remote,
            "silent_nodes": acks.silent_nodes,
            "cluster_error": acks.cluster_error.map(|e| e.to_string()),
        }))
    }

    /// A socket as `fetch_sockets` answers it.
    fn describe(&self, s: &SocketInfo) -> Value {
        let headers: Map<String, Value> = self
            .inner
            .config
            .hooks
            .headers
            .iter()
            .filter_map(|name| {
                let v = s.handshake.headers.get(name.as_str())?;
                Some((name.as_str().to_owned(), v.clone()))
            })
            .collect();
        json!({
            "id": s.id,
            "nsp": s.nsp,
            "rooms": s.rooms,
            "user": s.data.get("user").cloned().unwrap_or(Value::Null),
            "data": s.data.get("data").cloned().unwrap_or(Value::Null),
            "handshake": {
                "address": s.handshake.address,
                "headers": headers,
                "query": s.handshake.query,
                "time": s.handshake.time,
            },
        })
    }
}

/// The API's methods.
const KNOWN: &[&str] = &[
    "emit",
    "sockets_join",
    "sockets_leave",
    "disconnect_sockets",
    "fetch_sockets",
    "rooms",
    "batch",
];

/// A batch command: an object with exactly one key, the method, whose value is its body.
fn single(command: Map<String, Value>) -> Result<(String, Value), ApiError> {
    let mut it = command.into_iter();
    match (it.next(), it.next()) {
        (Some((method, body)), None) if KNOWN.contains(&method.as_str()) => Ok((method, body)),
        (Some((method, _)), None) => Err(ApiError::no_method(&method)),
        _ => Err(ApiError::bad_request(
            "a command is an object with one key, the method: {\"emit\": {...}}",
        )),
    }
}

fn cluster(e: socketlet::AdapterError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unreachable",
        e.to_string(),
    )
}

fn emit_error(e: socketlet::EmitError) -> ApiError {
    match e {
        socketlet::EmitError::Adapter(e) => cluster(e),
        other => ApiError::bad_request(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = digest_keys(&["first".into(), "second".into()]);
        assert!(key_matches(b"first", &keys));
        assert!(key_matches(b"second", &keys));
        assert!(!key_matches(b"firs", &keys));
        assert!(!key_matches(b"", &keys));
        assert!(!key_matches(b"first", &[]));
    }

    #[test]
    fn batch_commands_have_one_method_each() {
        let one = |v: Value| single(serde_json::from_value(v).unwrap_or_default());
        assert_eq!(
            one(json!({"emit": {"event": "x"}})).map(|c| c.0),
            Ok("emit".to_owned())
        );
        assert_eq!(one(json!({})).map_err(|e| e.code), Err("bad_request"));
        assert_eq!(
            one(json!({"emit": {}, "rooms": {}})).map_err(|e| e.code),
            Err("bad_request")
        );
        assert_eq!(
            one(json!({"nope": {}})).map_err(|e| e.code),
            Err("not_found")
        );
    }
}
