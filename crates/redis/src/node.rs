//! The node's connection to Redis: one subscriber that survives outages, one ordered publish
//! queue, the requests waiting for answers, and the dispatch of incoming messages.

use crate::RedisConfig;
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use socketlet::{AdapterError, SocketIo, WeakSocketIo};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// An answer from another node: its JSON (attachments moved out for msgpack answers).
pub type Answer = (Value, Vec<bytes::Bytes>);

/// Room for answers to one request.
const ANSWERS_PER_REQUEST: usize = 4096;

pub(crate) struct Node {
    uid: String,
    pub(crate) config: RedisConfig,
    client: redis::Client,
    commands: Commands,
    queue: mpsc::Sender<(String, Vec<u8>)>,
    io: OnceLock<WeakSocketIo>,
    /// The namespaces to subscribe for, each with the number of adapters made for it that are
    /// not let go (a child namespace that no socket joined lets its adapter go).
    namespaces: Mutex<BTreeMap<String, usize>>,
    /// Rooms (namespace, room) whose sharded channel may need a subscription or may have to go.
    rooms_to_check: Mutex<HashSet<(String, String)>>,
    /// Wakes the subscriber when a namespace or a room needs (un)subscribing.
    subscriptions_changed: Notify,
    pending: Mutex<HashMap<String, mpsc::Sender<Answer>>>,
    publish_failing: AtomicBool,
    /// Whether the pub/sub connection is up and subscribed (for metrics and readiness).
    subscribed: AtomicBool,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("uid", &self.uid)
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

use socketlet::engine::sync::lock;

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
        let (node, rx) = Node::assemble(random_id(6), config, client, commands);
        tokio::spawn(run_publisher(Arc::downgrade(&node), rx));
        Ok(node)
    }

    /// A node of these parts, and the other end of its publish queue (which nothing reads yet).
    fn assemble(
        uid: String,
        config: RedisConfig,
        client: redis::Client,
        commands: Commands,
    ) -> (Arc<Node>, mpsc::Receiver<(String, Vec<u8>)>) {
        let (queue, rx) = mpsc::channel(config.publish_queue.max(1));
        let node = Arc::new(Node {
            uid,
            config,
            client,
            commands,
            queue,
            io: OnceLock::new(),
            namespaces: Mutex::default(),
            rooms_to_check: Mutex::default(),
            subscriptions_changed: Notify::new(),
            pending: Mutex::default(),
            publish_failing: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
        });
        (node, rx)
    }

    pub(crate) fn uid(&self) -> &str {
        &self.uid
    }

    /// The Redis client (for connections of their own, as the streams readers' blocking ones).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs a command on the shared command connection (tried again once on a fresh
    /// connection after a failure).
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> Result<T, QueryError> {
        self.commands.run(Query::Cmd(cmd), timeout).await
    }

    /// Runs a pipeline on the shared command connection (not tried again after a timeout).
    pub(crate) async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        timeout: Duration,
    ) -> Result<T, QueryError> {
        self.commands.run(Query::Pipe(pipe), timeout).await
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
        let mut namespaces = lock(&self.namespaces);
        let count = namespaces.entry(nsp.to_owned()).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.subscriptions_changed.notify_one();
        }
    }

    /// The pub/sub patterns and channels of `nsp` on the classic subscriber: with the streams
    /// adapter, the namespace's public channel and this node's own (in one SUBSCRIBE, as Node's
    /// adapter sends it); otherwise the broadcast pattern, and the request and response
    /// channels.
    fn namespace_channels(&self, nsp: &str) -> (Vec<String>, Vec<String>) {
        if self.config.streams.is_some() {
            return (
                Vec::new(),
                vec![
                    self.broadcast_channel(nsp),
                    self.shard_channel(nsp, &self.uid),
                ],
            );
        }
        (
            vec![format!("{}*", self.broadcast_channel(nsp))],
            vec![
                self.request_channel(nsp),
                self.response_channel(nsp),
                format!("{}{}#", self.response_channel(nsp), self.uid),
            ],
        )
    }

    /// `nsp` is gone (a child namespace that no socket joined): the subscriber leaves its
    /// channels.
    pub(crate) fn unregister_namespace(&self, nsp: &str) {
        let mut namespaces = lock(&self.namespaces);
        let Some(count) = namespaces.get_mut(nsp) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            namespaces.remove(nsp);
            self.subscriptions_changed.notify_one();
        }
    }

    /// A room of `nsp` got its first local socket or lost its last one (sharded dynamic modes):
    /// the subscriber checks whether its channel is still wanted.
    pub(crate) fn room_changed(&self, nsp: &str, room: &str) {
        if lock(&self.rooms_to_check).insert((nsp.to_owned(), room.to_owned())) {
            self.subscriptions_changed.notify_one();
        }
    }

    // ---- channels (as Node's adapter names them) ----

    /// Classic broadcasts; in sharded mode, every message of the namespace.
    pub(crate) fn broadcast_channel(&self, nsp: &str) -> String {
        format!("{}#{}#", self.config.key, nsp)
    }

    /// Sharded mode: a room's channel (dynamic modes), or a node's response channel.
    pub(crate) fn shard_channel(&self, nsp: &str, room_or_uid: &str) -> String {
        format!("{}#{}#{}#", self.config.key, nsp, room_or_uid)
    }

    pub(crate) fn request_channel(&self, nsp: &str) -> String {
        format!("{}-request#{}#", self.config.key, nsp)
    }

    pub(crate) fn response_channel(&self, nsp: &str) -> String {
        format!("{}-response#{}#", self.config.key, nsp)
    }

    /// The pub/sub connection is up, and publishing worked last time it was tried.
    pub(crate) fn health(&self) -> (bool, bool) {
        (
            self.subscribed.load(Ordering::Relaxed),
            !self.publish_failing.load(Ordering::Relaxed),
        )
    }

    /// Messages waiting in the publish queue.
    pub(crate) fn publish_queue_len(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    // ---- publishing ----

    /// Queues a message for publication, in order. Fails only when the queue is full.
    pub(crate) fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), AdapterError> {
        self.queue
            .try_send((channel, payload))
            .map_err(|_| AdapterError::new("the Redis publish queue is full (is Redis down?)"))
    }

    /// How many nodes subscribe to a namespace's request channel (its channel in sharded mode),
    /// this one included.
    pub(crate) async fn server_count(&self, nsp: &str) -> Result<usize, AdapterError> {
        let mut cmd = redis::cmd("PUBSUB");
        if self.config.sharded.is_some() {
            cmd.arg("SHARDNUMSUB").arg(self.broadcast_channel(nsp));
        } else if self.config.streams.is_some() {
            // The streams adapter counts the subscribers of the namespace's public channel.
            cmd.arg("NUMSUB").arg(self.broadcast_channel(nsp));
        } else {
            cmd.arg("NUMSUB").arg(self.request_channel(nsp));
        }
        let (_, n): (String, usize) = self
            .query(&cmd, self.config.request_timeout)
            .await
            .map_err(|e| AdapterError::with_source("Redis could not count the nodes", e))?;
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

    pub(crate) fn deliver_answer(&self, answer: Answer) {
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

    /// Acts on messages read from Redis together (at most [`READ_BATCH`]), in order
    /// ([`parse_incoming`] reads each). Consecutive broadcasts (without acks) to the same
    /// sockets of one namespace are delivered together
    /// ([`LocalNamespace::broadcast_all`](socketlet::LocalNamespace::broadcast_all)): each
    /// receiver gets them in one write where they fit, rather than one write a broadcast.
    pub(crate) fn dispatch_all<'m>(
        self: &Arc<Self>,
        msgs: impl IntoIterator<Item = (&'m str, &'m [u8])>,
    ) {
        let mut batch: Option<Batch> = None;
        for (channel, payload) in msgs {
            let incoming = parse_incoming(&self.config, &self.uid, channel, payload);
            let (nsp, packet, opts) = match incoming {
                Incoming::Broadcast(crate::classic::Broadcast { packet, opts }) => {
                    (packet.nsp.clone(), packet, opts)
                }
                Incoming::Sharded(crate::sharded::Message {
                    nsp,
                    kind:
                        crate::sharded::MessageKind::Broadcast {
                            packet,
                            opts,
                            acks: None,
                        },
                    ..
                }) => (nsp, packet, opts),
                other => {
                    self.deliver_batch(batch.take());
                    self.act(channel, other);
                    continue;
                }
            };
            match &mut batch {
                Some(b) if b.nsp == nsp && b.opts == opts => b.packets.push(packet),
                _ => {
                    let next = Batch {
                        nsp,
                        opts,
                        packets: vec![packet],
                    };
                    self.deliver_batch(batch.replace(next));
                }
            }
        }
        self.deliver_batch(batch);
    }

    fn deliver_batch(&self, batch: Option<Batch>) {
        let Some(Batch { nsp, opts, packets }) = batch else {
            return;
        };
        if let Some(ns) = self.io().and_then(|io| io.namespace(&nsp)) {
            ns.local().broadcast_all(&packets, &opts);
        }
    }

    /// Does what a message from Redis says.
    fn act(self: &Arc<Self>, channel: &str, incoming: Incoming) {
        match incoming {
            Incoming::Python(message) => crate::python::handle(self, message),
            Incoming::Sharded(message) => crate::sharded::on_message(self, message),
            Incoming::Answer(answer) => self.deliver_answer(answer),
            Incoming::Request(nsp, request) => crate::classic::on_request(self, &nsp, request),
            // `dispatch_all` batches these; one that comes here is a batch of its own.
            Incoming::Broadcast(crate::classic::Broadcast { packet, opts }) => {
                self.deliver_batch(Some(Batch {
                    nsp: packet.nsp.clone(),
                    opts,
                    packets: vec![packet],
                }));
            }
            Incoming::Own => {}
            Incoming::Dropped(why) => tracing::debug!(channel, "ignored a message: {why}"),
        }
    }
}

/// Most messages read from the subscriber's connection at once and handled together (see
/// [`Node::dispatch_all`]).
const READ_BATCH: usize = 32;

/// Broadcasts to the same sockets of one namespace, read one after another.
struct Batch {
    nsp: String,
    opts: socketlet::adapter::BroadcastOptions,
    packets: Vec<socketlet::socketio_proto::Packet>,
}

/// A message from Redis as read by [`parse_incoming`], before anything is done about it.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// From python-socketio's queue (or why it is refused).
    Python(Result<crate::python::PyMessage, crate::python::Refused>),
    /// A sharded message (every message in sharded mode).
    Sharded(crate::sharded::Message),
    /// An answer to some node's request (classic mode): JSON, attachments moved out.
    Answer(Answer),
    /// A request to the nodes of a namespace (classic mode).
    Request(String, crate::classic::Request),
    /// A broadcast (classic mode).
    Broadcast(crate::classic::Broadcast),
    /// This node's own message, back from Redis.
    Own,
    /// Not readable, or of no interest: why.
    Dropped(&'static str),
}

/// Reads what arrived on `channel` for a node of uid `uid` with `config`: which kind of message
/// the channel carries, and the message itself, parsed (classic requests and broadcasts, sharded
/// messages, python-socketio's queue). No side effect: [`Node::dispatch_all`] acts on the result.
/// Public (hidden) for the fuzz targets (`fuzz/fuzz_targets/redis_requests.rs`).
#[doc(hidden)]
pub fn parse_incoming(config: &RedisConfig, uid: &str, channel: &str, payload: &[u8]) -> Incoming {
    if config.python_channel.as_deref() == Some(channel) {
        return Incoming::Python(crate::python::parse(payload, config.accept_pickle));
    }
    // The streams adapter's pub/sub messages are socket.io-adapter's cluster messages too.
    if config.sharded.is_some() || config.streams.is_some() {
        return crate::sharded::parse(uid, payload);
    }
    let key = &config.key;
    if channel.starts_with(&format!("{key}-response#")) {
        match decode_json_or_msgpack(payload) {
            Some(answer) => Incoming::Answer(answer),
            None => Incoming::Dropped("a malformed answer"),
        }
    } else if let Some(rest) = channel.strip_prefix(&format!("{key}-request#")) {
        let nsp = rest.strip_suffix('#').unwrap_or(rest);
        match decode_json_or_msgpack(payload) {
            Some(request) => crate::classic::parse_request(uid, nsp, request),
            None => Incoming::Dropped("a malformed request"),
        }
    } else if channel.starts_with(&format!("{key}#")) {
        crate::classic::parse_broadcast(uid, payload)
    } else {
        Incoming::Dropped("a channel of no interest")
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
pub(crate) fn decode_json_or_msgpack(payload: &[u8]) -> Option<Answer> {
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
        let mut cmd = redis::cmd(if node.config.sharded.is_some() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        cmd.arg(&channel).arg(payload);
        let result = node
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

    /// Runs a query; on a failure the connection is dropped, for the next use to make anew, and
    /// the query may be tried once more on a fresh one (see [`Query`]).
    async fn run<T: redis::FromRedisValue>(
        &self,
        query: Query<'_>,
        timeout: Duration,
    ) -> Result<T, QueryError> {
        let mut last = QueryError::NotConnected;
        for _ in 0..2 {
            let Some(mut conn) = self.get().await else {
                return Err(last);
            };
            let again = match tokio::time::timeout(timeout, query.run(&mut conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    let unsent = e.is_connection_dropped() || e.is_connection_refusal();
                    last = QueryError::Redis(e);
                    unsent || query.may_repeat()
                }
                Err(_) => {
                    last = QueryError::Timeout(timeout);
                    query.may_repeat()
                }
            };
            self.reset();
            if !again {
                return Err(last);
            }
        }
        Err(last)
    }
}

/// What runs on the command connection. A command is tried again after any failure (a
/// connection gone stale while Redis restarted, say); a pipeline only when the connection is
/// known to have been dropped before it ran (a pipeline may add to a stream: trying it again
/// after a timeout could add twice).
#[derive(Clone, Copy)]
enum Query<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
}

impl Query<'_> {
    async fn run<T: redis::FromRedisValue>(
        self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> redis::RedisResult<T> {
        match self {
            Query::Cmd(cmd) => cmd.query_async(conn).await,
            Query::Pipe(pipe) => pipe.query_async(conn).await,
        }
    }

    /// Whether it may run twice.
    fn may_repeat(self) -> bool {
        matches!(self, Query::Cmd(_))
    }
}

/// Why a command to Redis failed.
#[derive(Debug)]
pub(crate) enum QueryError {
    /// No connection could be made (the last attempt is less than a backoff ago, or failed).
    NotConnected,
    /// Redis answered with an error, or the connection broke.
    Redis(redis::RedisError),
    /// No answer in time.
    Timeout(Duration),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::NotConnected => f.write_str("not connected to Redis"),
            QueryError::Redis(e) => write!(f, "Redis: {e}"),
            QueryError::Timeout(t) => write!(f, "no answer from Redis in {} ms", t.as_millis()),
        }
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueryError::Redis(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a subscriber session ended.
enum SessionEnd {
    /// The node is gone: stop.
    NodeGone,
    /// The connection failed or broke: reconnect after a backoff.
    Lost(String),
}

/// Keeps one pub/sub connection subscribed to every registered namespace (and, sharded, to the
/// rooms that need it), reconnecting with backoff, and dispatches what arrives.
async fn run_subscriber(node: std::sync::Weak<Node>) {
    let mut backoff = Duration::from_millis(100);
    let mut lost_since: Option<tokio::time::Instant> = None;
    loop {
        let Some(strong) = node.upgrade() else {
            return;
        };
        let client = strong.client.clone();
        let sharded = strong.config.sharded.is_some();
        drop(strong);
        let mut ready = || {
            if let Some(strong) = node.upgrade() {
                strong.subscribed.store(true, Ordering::Relaxed);
            }
            if let Some(since) = lost_since.take() {
                tracing::info!(
                    "Redis subscription restored after {:.1} s; cluster delivery resumes",
                    since.elapsed().as_secs_f64()
                );
            }
            backoff = Duration::from_millis(100);
        };
        let end = if sharded {
            sharded_session(&node, &client, &mut ready).await
        } else {
            classic_session(&node, &client, &mut ready).await
        };
        match end {
            SessionEnd::NodeGone => return,
            SessionEnd::Lost(why) => tracing::debug!("Redis pub/sub connection: {why}"),
        }
        if let Some(strong) = node.upgrade() {
            strong.subscribed.store(false, Ordering::Relaxed);
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

/// Classic pub/sub: a pattern per namespace for broadcasts, plus its request and response
/// channels. Returns when the connection breaks or the node is gone.
async fn classic_session(
    node: &std::sync::Weak<Node>,
    client: &redis::Client,
    ready: &mut impl FnMut(),
) -> SessionEnd {
    let pubsub = match client.get_async_pubsub().await {
        Ok(p) => p,
        Err(e) => return SessionEnd::Lost(e.to_string()),
    };
    let (mut sink, mut stream) = pubsub.split();
    let mut subscribed: HashSet<String> = HashSet::new();
    let Some(python_channel) = node.upgrade().map(|n| n.config.python_channel.clone()) else {
        return SessionEnd::NodeGone;
    };
    if let Some(channel) = python_channel {
        if let Err(e) = sink.subscribe(channel).await {
            return SessionEnd::Lost(e.to_string());
        }
    }
    loop {
        let Some(strong) = node.upgrade() else {
            return SessionEnd::NodeGone;
        };
        let (wanted, gone): (Vec<String>, Vec<String>) = {
            let namespaces = lock(&strong.namespaces);
            (
                namespaces
                    .keys()
                    .filter(|n| !subscribed.contains(*n))
                    .cloned()
                    .collect(),
                subscribed
                    .iter()
                    .filter(|n| !namespaces.contains_key(*n))
                    .cloned()
                    .collect(),
            )
        };
        for nsp in gone {
            let (patterns, channels) = strong.namespace_channels(&nsp);
            if !patterns.is_empty() {
                if let Err(e) = sink.punsubscribe(&patterns[..]).await {
                    return SessionEnd::Lost(e.to_string());
                }
            }
            if let Err(e) = sink.unsubscribe(&channels[..]).await {
                return SessionEnd::Lost(e.to_string());
            }
            subscribed.remove(&nsp);
        }
        for nsp in wanted {
            let (patterns, channels) = strong.namespace_channels(&nsp);
            if !patterns.is_empty() {
                if let Err(e) = sink.psubscribe(&patterns[..]).await {
                    return SessionEnd::Lost(e.to_string());
                }
            }
            if let Err(e) = sink.subscribe(&channels[..]).await {
                return SessionEnd::Lost(e.to_string());
            }
            subscribed.insert(nsp);
        }
        ready();
        tokio::select! {
            msg = stream.next() => match msg {
                Some(msg) => {
                    // What else has arrived already is handled with it.
                    let mut msgs = vec![msg];
                    while msgs.len() < READ_BATCH {
                        match stream.next().now_or_never() {
                            Some(Some(msg)) => msgs.push(msg),
                            // Nothing yet, or the end (which the next turn meets).
                            _ => break,
                        }
                    }
                    let read = msgs.iter().map(|m| (m.get_channel_name(), m.get_payload_bytes()));
                    strong.dispatch_all(read);
                }
                None => return SessionEnd::Lost("the connection closed".into()),
            },
            _ = strong.subscriptions_changed.notified() => {}
        }
    }
}

/// Messages received and not yet dispatched, on the sharded subscriber's connection. When full,
/// further messages are dropped (pub/sub delivery is at most once anyway) and a warning logged.
const SHARDED_INBOX: usize = 4096;

/// How often the sharded subscriber checks its connection with a PING.
const SHARDED_PING: Duration = Duration::from_secs(5);

/// Sharded pub/sub, on a RESP3 connection whose pushes carry the messages: `SSUBSCRIBE` to each
/// namespace's channel and this node's response channel, and in dynamic modes to the channel of
/// each room with local sockets (re-checked whenever one is created or deleted). Returns when the
/// connection breaks or the node is gone.
async fn sharded_session(
    node: &std::sync::Weak<Node>,
    client: &redis::Client,
    ready: &mut impl FnMut(),
) -> SessionEnd {
    let (tx, mut inbox) = mpsc::channel::<redis::PushInfo>(SHARDED_INBOX);
    let overflowing = Arc::new(AtomicBool::new(false));
    let warn = overflowing.clone();
    let push_sender = move |push: redis::PushInfo| {
        if tx.try_send(push).is_err() && !warn.swap(true, Ordering::Relaxed) {
            tracing::warn!("the sharded subscriber is behind; dropping Redis messages");
        }
        Ok::<(), ()>(())
    };
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let resp3 = match redis::Client::open(info.set_redis_settings(settings)) {
        Ok(c) => c,
        Err(e) => return SessionEnd::Lost(e.to_string()),
    };
    let config = redis::AsyncConnectionConfig::new()
        .set_push_sender(push_sender)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut conn = match resp3
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Ok(c) => c,
        Err(e) => return SessionEnd::Lost(e.to_string()),
    };
    let Some(python_channel) = node.upgrade().map(|n| n.config.python_channel.clone()) else {
        return SessionEnd::NodeGone;
    };
    if let Some(channel) = python_channel {
        if let Err(e) = conn.subscribe(channel).await {
            return SessionEnd::Lost(e.to_string());
        }
    }
    let mut namespaces: HashSet<String> = HashSet::new();
    let mut room_channels: HashSet<String> = HashSet::new();
    // After a reconnection every room is checked again.
    if let Some(strong) = node.upgrade() {
        strong.recheck_all_rooms();
    }
    let mut ping = tokio::time::interval(SHARDED_PING);
    ping.tick().await;
    loop {
        let Some(strong) = node.upgrade() else {
            return SessionEnd::NodeGone;
        };
        if let Err(e) = strong
            .sync_shard_subscriptions(&mut conn, &mut namespaces, &mut room_channels)
            .await
        {
            return SessionEnd::Lost(e.to_string());
        }
        ready();
        tokio::select! {
            push = inbox.recv() => match push {
                Some(push) if push.kind == redis::PushKind::Disconnection => {
                    return SessionEnd::Lost("the connection closed".into());
                }
                Some(push) => {
                    // What else has arrived already is handled with it.
                    let mut msgs = Vec::new();
                    let mut push = push;
                    let mut lost = false;
                    for read in 1..=READ_BATCH {
                        if push.kind == redis::PushKind::Disconnection {
                            lost = true;
                            break;
                        }
                        msgs.extend(redis::Msg::from_push_info(push));
                        if read == READ_BATCH {
                            break;
                        }
                        match inbox.try_recv() {
                            Ok(next) => push = next,
                            Err(_) => break,
                        }
                    }
                    let read = msgs.iter().map(|m| (m.get_channel_name(), m.get_payload_bytes()));
                    strong.dispatch_all(read);
                    if lost {
                        return SessionEnd::Lost("the connection closed".into());
                    }
                    overflowing.store(false, Ordering::Relaxed);
                }
                None => return SessionEnd::Lost("the connection closed".into()),
            },
            _ = strong.subscriptions_changed.notified() => {}
            _ = ping.tick() => {
                let alive = redis::cmd("PING").query_async::<redis::Value>(&mut conn).await;
                if let Err(e) = alive {
                    return SessionEnd::Lost(e.to_string());
                }
            }
        }
    }
}

impl Node {
    /// Marks every local room of every namespace for a check (after a reconnection).
    fn recheck_all_rooms(&self) {
        let (Some(io), Some(mode)) = (self.io(), self.config.sharded) else {
            return;
        };
        let namespaces: Vec<String> = lock(&self.namespaces).keys().cloned().collect();
        let mut check = lock(&self.rooms_to_check);
        for nsp in namespaces {
            let Some(ns) = io.namespace(&nsp) else {
                continue;
            };
            if mode.has_channel(false) {
                check.extend(ns.local().rooms().into_iter().map(|r| (nsp.clone(), r)));
            }
            if mode.has_channel(true) {
                let all = socketlet::adapter::BroadcastOptions::default();
                check.extend(
                    ns.local()
                        .sockets(&all)
                        .iter()
                        .map(|s| (nsp.clone(), s.id().to_owned())),
                );
            }
        }
    }

    /// Brings the sharded subscriptions in line with the namespaces and rooms: one `SSUBSCRIBE`
    /// or `SUNSUBSCRIBE` per channel (so that each gets exactly one confirmation, which RESP3
    /// connections take as the command's reply).
    async fn sync_shard_subscriptions(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        namespaces: &mut HashSet<String>,
        room_channels: &mut HashSet<String>,
    ) -> redis::RedisResult<()> {
        let new: Vec<String> = lock(&self.namespaces)
            .keys()
            .filter(|n| !namespaces.contains(*n))
            .cloned()
            .collect();
        let gone: Vec<String> = {
            let wanted = lock(&self.namespaces);
            namespaces
                .iter()
                .filter(|n| !wanted.contains_key(*n))
                .cloned()
                .collect()
        };
        for nsp in gone {
            for channel in [
                self.broadcast_channel(&nsp),
                self.shard_channel(&nsp, &self.uid),
            ] {
                redis::cmd("SUNSUBSCRIBE")
                    .arg(channel)
                    .query_async::<redis::Value>(conn)
                    .await?;
            }
            namespaces.remove(&nsp);
        }
        for nsp in new {
            for channel in [
                self.broadcast_channel(&nsp),
                self.shard_channel(&nsp, &self.uid),
            ] {
                redis::cmd("SSUBSCRIBE")
                    .arg(channel)
                    .query_async::<redis::Value>(conn)
                    .await?;
            }
            namespaces.insert(nsp);
        }
        let check: Vec<(String, String)> = lock(&self.rooms_to_check).drain().collect();
        if check.is_empty() {
            return Ok(());
        }
        let io = self.io();
        for (nsp, room) in check {
            if room == self.uid {
                // That name is this node's response channel, always subscribed.
                continue;
            }
            let channel = self.shard_channel(&nsp, &room);
            let wanted = io
                .as_ref()
                .and_then(|io| io.namespace(&nsp))
                .is_some_and(|ns| ns.local().has_room(&room));
            let result = if wanted && !room_channels.contains(&channel) {
                room_channels.insert(channel.clone());
                redis::cmd("SSUBSCRIBE")
                    .arg(&channel)
                    .query_async::<redis::Value>(conn)
                    .await
            } else if !wanted && room_channels.remove(&channel) {
                redis::cmd("SUNSUBSCRIBE")
                    .arg(&channel)
                    .query_async::<redis::Value>(conn)
                    .await
            } else {
                continue;
            };
            if let Err(e) = result {
                // Checked again on the next connection.
                self.room_changed(&nsp, &room);
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl Node {
    /// Acts on one message from Redis, as the subscriber does on one read alone.
    pub(crate) fn dispatch(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        self.dispatch_all([(channel, payload)]);
    }

    /// A node with uid `uid` that never connects to Redis (the URL is only parsed): what it
    /// publishes comes out of the returned receiver, and what it receives is what a test hands
    /// to [`Node::dispatch`].
    pub(crate) fn detached(
        config: RedisConfig,
        uid: &str,
    ) -> (Arc<Node>, mpsc::Receiver<(String, Vec<u8>)>) {
        let client = redis::Client::open(config.url.as_str()).expect("a Redis URL");
        let commands = Commands::new(client.clone());
        Node::assemble(uid.to_owned(), config, client, commands)
    }

    /// Delivers to `io` what [`Node::dispatch`] gets, without a subscriber.
    pub(crate) fn attach_detached(&self, io: &SocketIo) {
        let _ = self.io.set(io.downgrade());
    }
}
