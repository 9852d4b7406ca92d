//! The node's connection to Redis: one subscriber that survives outages, one ordered publish
//! queue, the requests waiting for answers, and the dispatch of incoming messages.

use crate::RedisConfig;
use futures_util::StreamExt;
use serde_json::Value;
use socketlet::{AdapterError, SocketIo, WeakSocketIo};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// An answer from another node: its JSON (attachments moved out for msgpack answers).
pub(crate) type Answer = (Value, Vec<bytes::Bytes>);

/// Room for answers to one request.
const ANSWERS_PER_REQUEST: usize = 4096;

pub(crate) struct Node {
    uid: String,
    pub(crate) config: RedisConfig,
    client: redis::Client,
    commands: Commands,
    queue: mpsc::Sender<(String, Vec<u8>)>,
    io: OnceLock<WeakSocketIo>,
    namespaces: Mutex<BTreeSet<String>>,
    new_namespace: Notify,
    pending: Mutex<HashMap<String, mpsc::Sender<Answer>>>,
    publish_failing: AtomicBool,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("uid", &self.uid)
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A random id of `n` URL-safe characters.
pub(crate) fn random_id(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

impl Node {
    pub(crate) async fn connect(config: RedisConfig) -> Result<Arc<Node>, redis::RedisError> {
        let client = redis::Client::open(config.url.as_str())?;
        let commands = Commands::new(client.clone());
        // The first connection must work: a wrong URL fails here, not later.
        commands.get().await.ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Io, "cannot connect to Redis"))
        })?;
        let (queue, rx) = mpsc::channel(config.publish_queue.max(1));
        let node = Arc::new(Node {
            uid: random_id(6),
            config,
            client,
            commands,
            queue,
            io: OnceLock::new(),
            namespaces: Mutex::default(),
            new_namespace: Notify::new(),
            pending: Mutex::default(),
            publish_failing: AtomicBool::new(false),
        });
        tokio::spawn(run_publisher(Arc::downgrade(&node), rx));
        Ok(node)
    }

    pub(crate) fn uid(&self) -> &str {
        &self.uid
    }

    pub(crate) fn attach(self: &Arc<Self>, io: &SocketIo) {
        if self.io.set(io.downgrade()).is_ok() {
            tokio::spawn(run_subscriber(Arc::downgrade(self)));
        }
    }

    pub(crate) fn io(&self) -> Option<SocketIo> {
        self.io.get()?.upgrade()
    }

    pub(crate) fn register_namespace(&self, nsp: &str) {
        if lock(&self.namespaces).insert(nsp.to_owned()) {
            self.new_namespace.notify_one();
        }
    }

    // ---- channels (as Node's adapter names them) ----

    pub(crate) fn broadcast_channel(&self, nsp: &str) -> String {
        format!("{}#{}#", self.config.key, nsp)
    }

    pub(crate) fn request_channel(&self, nsp: &str) -> String {
        format!("{}-request#{}#", self.config.key, nsp)
    }

    pub(crate) fn response_channel(&self, nsp: &str) -> String {
        format!("{}-response#{}#", self.config.key, nsp)
    }

    // ---- publishing ----

    /// Queues a message for publication, in order. Fails only when the queue is full.
    pub(crate) fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), AdapterError> {
        self.queue
            .try_send((channel, payload))
            .map_err(|_| AdapterError("the Redis publish queue is full (is Redis down?)".into()))
    }

    /// How many nodes subscribe to a namespace's request channel (this one included).
    pub(crate) async fn server_count(&self, nsp: &str) -> Result<usize, AdapterError> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("NUMSUB").arg(self.request_channel(nsp));
        let (_, n): (String, usize) = self
            .commands
            .query(&cmd, self.config.request_timeout)
            .await
            .map_err(|e| AdapterError(format!("Redis: {e}")))?;
        Ok(n)
    }

    /// Registers a request id whose answers are wanted; the guard unregisters it when dropped.
    pub(crate) fn expect_answers(self: &Arc<Self>, request_id: &str) -> Pending {
        let (tx, rx) = mpsc::channel(ANSWERS_PER_REQUEST);
        lock(&self.pending).insert(request_id.to_owned(), tx);
        Pending {
            node: self.clone(),
            id: request_id.to_owned(),
            rx,
        }
    }

    fn deliver_answer(&self, answer: Answer) {
        let Some(id) = answer.0.get("requestId").and_then(Value::as_str) else {
            return;
        };
        let tx = lock(&self.pending).get(id).cloned();
        if let Some(tx) = tx {
            // Past ANSWERS_PER_REQUEST unread answers, the surplus is dropped.
            let _ = tx.try_send(answer);
        }
    }

    // ---- dispatch ----

    fn dispatch(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        if self.config.python_channel.as_deref() == Some(channel) {
            crate::python::handle(self, payload);
            return;
        }
        let key = &self.config.key;
        if channel.starts_with(&format!("{key}-response#")) {
            if let Some(answer) = decode_json_or_msgpack(payload) {
                self.deliver_answer(answer);
            }
        } else if let Some(rest) = channel.strip_prefix(&format!("{key}-request#")) {
            let nsp = rest.strip_suffix('#').unwrap_or(rest);
            match decode_json_or_msgpack(payload) {
                Some(request) => crate::adapter::on_request(self, nsp, request),
                None => tracing::debug!(channel, "ignored a malformed request"),
            }
        } else if channel.starts_with(&format!("{key}#")) {
            crate::adapter::on_broadcast(self, payload);
        }
    }
}

/// Answers to one request, until dropped.
pub(crate) struct Pending {
    node: Arc<Node>,
    id: String,
    pub(crate) rx: mpsc::Receiver<Answer>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        lock(&self.node.pending).remove(&self.id);
    }
}

/// Requests and answers are JSON when they start with `{`, msgpack otherwise (as Node reads them).
fn decode_json_or_msgpack(payload: &[u8]) -> Option<Answer> {
    if payload.first() == Some(&b'{') {
        return serde_json::from_slice(payload)
            .ok()
            .map(|v| (v, Vec::new()));
    }
    let mut bins = Vec::new();
    let v = crate::msgpack::to_json(crate::msgpack::decode(payload)?, &mut bins)?;
    Some((v, bins))
}

/// Publishes queued messages in order. A failure is logged once per outage; the message is lost
/// (its local delivery already happened).
async fn run_publisher(node: std::sync::Weak<Node>, mut rx: mpsc::Receiver<(String, Vec<u8>)>) {
    while let Some((channel, payload)) = rx.recv().await {
        let Some(node) = node.upgrade() else {
            return;
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&channel).arg(payload);
        let result = node
            .commands
            .query::<i64>(&cmd, Duration::from_secs(2))
            .await
            .map(|_| ());
        match result {
            Ok(()) => {
                if node.publish_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis publishing works again");
                }
            }
            Err(e) => {
                if !node.publish_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot publish to Redis ({e}); this node's clients are still served, \
                         other nodes miss messages until Redis is back"
                    );
                }
            }
        }
    }
}

/// The connection for commands (PUBLISH, PUBSUB NUMSUB): made on first use, dropped on any error,
/// made again on the next use, at most once per backoff period while Redis stays away (messages
/// meanwhile fail at once instead of piling up behind connection attempts).
struct Commands {
    client: redis::Client,
    conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
    retry_at: Mutex<Option<tokio::time::Instant>>,
    connecting: tokio::sync::Mutex<()>,
}

const RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

impl Commands {
    fn new(client: redis::Client) -> Self {
        Commands {
            client,
            conn: Mutex::default(),
            retry_at: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    async fn get(&self) -> Option<redis::aio::MultiplexedConnection> {
        if let Some(c) = lock(&self.conn).clone() {
            return Some(c);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(c) = lock(&self.conn).clone() {
            return Some(c);
        }
        if lock(&self.retry_at).is_some_and(|t| tokio::time::Instant::now() < t) {
            return None;
        }
        let attempt = tokio::time::timeout(
            Duration::from_secs(1),
            self.client.get_multiplexed_async_connection(),
        )
        .await;
        match attempt {
            Ok(Ok(c)) => {
                *lock(&self.conn) = Some(c.clone());
                *lock(&self.retry_at) = None;
                Some(c)
            }
            _ => {
                *lock(&self.retry_at) = Some(tokio::time::Instant::now() + RECONNECT_BACKOFF);
                None
            }
        }
    }

    fn reset(&self) {
        *lock(&self.conn) = None;
    }

    /// Runs a command; on a failure (a connection gone stale while Redis restarted, say) drops
    /// the connection and tries once more on a fresh one.
    async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> Result<T, String> {
        let mut last = String::from("not connected");
        for _ in 0..2 {
            let Some(mut conn) = self.get().await else {
                return Err(last);
            };
            match tokio::time::timeout(timeout, cmd.query_async::<T>(&mut conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("no answer in {} ms", timeout.as_millis()),
            }
            self.reset();
        }
        Err(last)
    }
}

/// Keeps one pub/sub connection subscribed to every registered namespace, reconnecting with
/// backoff, and dispatches what arrives.
async fn run_subscriber(node: std::sync::Weak<Node>) {
    let mut backoff = Duration::from_millis(100);
    let mut lost_since: Option<tokio::time::Instant> = None;
    loop {
        let Some(strong) = node.upgrade() else {
            return;
        };
        let client = strong.client.clone();
        drop(strong);
        match client.get_async_pubsub().await {
            Ok(pubsub) => {
                let (mut sink, mut stream) = pubsub.split();
                let mut subscribed: HashSet<String> = HashSet::new();
                let mut healthy = true;
                if let Some(strong) = node.upgrade() {
                    if let Some(channel) = &strong.config.python_channel {
                        healthy = sink.subscribe(channel).await.is_ok();
                    }
                }
                while healthy {
                    let Some(strong) = node.upgrade() else {
                        return;
                    };
                    let wanted: Vec<String> = lock(&strong.namespaces)
                        .iter()
                        .filter(|n| !subscribed.contains(*n))
                        .cloned()
                        .collect();
                    for nsp in wanted {
                        let pattern = format!("{}*", strong.broadcast_channel(&nsp));
                        let channels = [
                            strong.request_channel(&nsp),
                            strong.response_channel(&nsp),
                            format!("{}{}#", strong.response_channel(&nsp), strong.uid),
                        ];
                        if sink.psubscribe(&pattern).await.is_err()
                            || sink.subscribe(&channels[..]).await.is_err()
                        {
                            healthy = false;
                            break;
                        }
                        subscribed.insert(nsp);
                    }
                    if !healthy {
                        break;
                    }
                    if let Some(since) = lost_since.take() {
                        tracing::info!(
                            "Redis subscription restored after {:.1} s; cluster delivery resumes",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => {
                                strong.dispatch(msg.get_channel_name(), msg.get_payload_bytes());
                            }
                            None => healthy = false,
                        },
                        _ = strong.new_namespace.notified() => {}
                    }
                }
            }
            Err(e) => tracing::debug!("Redis pub/sub connection failed: {e}"),
        }
        if lost_since.is_none() {
            lost_since = Some(tokio::time::Instant::now());
            tracing::warn!(
                "lost the Redis subscription; serving local clients only, reconnecting with backoff"
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
