//! The `socketlet` binary: a Socket.IO server with a demo page at `/` and the official browser
//! client bundle at `/socket.io/socket.io.js`.

/// With the `mimalloc` feature, mimalloc allocates for the whole process.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin_ui;
mod assets;
mod config;
mod provision;
mod vm;

use bytes::Bytes;
use clap::Parser;
use http::{header, Method, Request, Response, StatusCode};
use serde_json::json;
use socketlet::{AckSender, Cors, Data, Socket, SocketIo};
use socketlet_ops::{Health, Metrics, OpsService};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A Socket.IO server (Engine.IO v3 and v4 on one endpoint) with a demo page.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A TOML file of settings: every flag below is a key (its long name with `_` for `-`;
    /// lists in the plural, e.g. `cors_origins = [...]`). Flags and environment variables win
    /// over the file.
    #[arg(long, env = "SOCKETLET_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Check the settings, print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    check_config: bool,
    /// Print the table of options (file key, flag, environment variable, default) and exit.
    #[arg(long)]
    print_options: bool,
    /// Hooks of particular namespaces: the settings file's `[namespaces."/name"]` tables (no
    /// flag).
    #[arg(skip)]
    namespaces: std::collections::BTreeMap<String, config::NamespaceHooks>,
    /// Address to listen on.
    #[arg(long, env = "SOCKETLET_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Path of the Socket.IO endpoint.
    #[arg(long, env = "SOCKETLET_PATH", default_value = "/socket.io")]
    path: String,
    /// Origins allowed to connect (repeat the flag; `*` allows any). Default: same origin only,
    /// honouring X-Forwarded-Proto/Host.
    #[arg(
        long = "cors-origin",
        env = "SOCKETLET_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Peers whose X-Forwarded-Proto/Host headers are believed (repeat the flag; an address or
    /// a network like 10.0.0.0/8). Default: loopback, for a proxy on the same host; `none`
    /// trusts no peer.
    #[arg(
        long = "trusted-proxy",
        env = "SOCKETLET_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// Host names the server answers to (repeat the flag; `*` for any). Default: when --addr is
    /// a loopback address, `localhost`, `127.0.0.1` and `::1` only (a web page cannot then
    /// reach the server through DNS rebinding); otherwise any. Behind a proxy on the same host,
    /// list the public names the proxy passes on in `Host`.
    #[arg(
        long = "allowed-host",
        env = "SOCKETLET_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// Serve JSONP polling for old browsers (socket.io-client 1.x/2.x with `forceJSONP`). Off by
    /// default: a `<script>` request carries no Origin, so any site could open a session with
    /// the visitor's cookies and read it.
    #[arg(long, env = "SOCKETLET_ALLOW_JSONP")]
    allow_jsonp: bool,
    /// Send `Access-Control-Allow-Credentials: true` to accepted cross-origin requests
    /// (cookies then go along). True by default, as python-socketio: socket.io 2.x clients
    /// poll with credentials and fail without it (Node's default is false).
    #[arg(
        long,
        env = "SOCKETLET_CORS_CREDENTIALS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    cors_credentials: bool,
    /// The transports clients may use: `polling`, `websocket` (separate with commas).
    #[arg(
        long,
        env = "SOCKETLET_TRANSPORTS",
        value_delimiter = ',',
        default_value = "polling,websocket"
    )]
    transports: Vec<TransportName>,
    /// The largest HTTP body or WebSocket message a client may send, in bytes (Node's
    /// maxHttpBufferSize).
    #[arg(long, env = "SOCKETLET_MAX_PAYLOAD", default_value_t = 1_000_000)]
    max_payload: u64,
    /// Milliseconds a client may take to join a namespace after its connection opens.
    #[arg(long, env = "SOCKETLET_CONNECT_TIMEOUT", default_value_t = 45_000)]
    connect_timeout: u64,
    /// Milliseconds an upgrade from polling to WebSocket may take.
    #[arg(long, env = "SOCKETLET_UPGRADE_TIMEOUT", default_value_t = 10_000)]
    upgrade_timeout: u64,
    /// Packets queued for one client that does not read; past it the client is disconnected
    /// as too slow.
    #[arg(long, env = "SOCKETLET_MAX_BUFFERED_PACKETS", default_value_t = 4096)]
    max_buffered_packets: usize,
    /// Engine.IO sessions at once; handshakes past it are refused until some end.
    #[arg(long, env = "SOCKETLET_MAX_SESSIONS", default_value_t = 100_000)]
    max_sessions: usize,
    /// Threads of the async runtime. Default: one per core.
    #[arg(long, env = "SOCKETLET_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// How logs (on standard error) are written: `text` (no colours unless to a terminal) or
    /// `json` (one object per line). RUST_LOG picks what is logged (default: info).
    #[arg(long, env = "SOCKETLET_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// A PEM file of the certificate chain: serve HTTPS and WSS (with --tls-key).
    #[arg(
        long,
        env = "SOCKETLET_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<std::path::PathBuf>,
    /// A PEM file of the certificate's private key (with --tls-cert).
    #[arg(
        long,
        env = "SOCKETLET_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<std::path::PathBuf>,
    /// Milliseconds between heartbeats.
    #[arg(long, env = "SOCKETLET_PING_INTERVAL", default_value_t = 25_000)]
    ping_interval: u64,
    /// Milliseconds to wait for a heartbeat answer.
    #[arg(long, env = "SOCKETLET_PING_TIMEOUT", default_value_t = 20_000)]
    ping_timeout: u64,
    /// Milliseconds a polling POST's body may take to arrive (slower ones get 408).
    #[arg(long, env = "SOCKETLET_MAX_BODY_TIME_MS", default_value_t = 30_000)]
    max_body_time_ms: u64,
    /// How packets are written: `json` (every client's default) or `msgpack`
    /// (socket.io-msgpack-parser, python-socketio's serializer='msgpack'; v5 clients only).
    /// Clients must use the same.
    #[arg(long, env = "SOCKETLET_PARSER", default_value = "json")]
    parser: ParserKind,
    /// Connection state recovery: a client that loses its connection and comes back within
    /// this many seconds gets its socket back (id, rooms, data) and the events it missed
    /// (socket.io-client 4.6 and later). 0: off.
    #[arg(long, env = "SOCKETLET_RECOVERY_SECS", default_value_t = 0)]
    recovery_secs: u64,
    /// Refuse Engine.IO v3 clients (socket.io-client 1.x/2.x, python-socketio 4.x).
    #[arg(long, env = "SOCKETLET_NO_EIO3")]
    no_eio3: bool,
    /// How the VM console opens VMs: `simulated`, `command` (runs --vm-command per VM), or
    /// `dramatiq` (Python dramatiq workers open them: see --dramatiq-broker).
    #[arg(long, env = "SOCKETLET_VM_PROVISIONER", default_value = "simulated")]
    vm_provisioner: ProvisionerKind,
    /// With `--vm-provisioner dramatiq`: the broker of the dramatiq workers, `redis://...`
    /// (RedisBroker) or `amqp://...` (RabbitmqBroker). Each VM of an `open_vms` request becomes
    /// the message `open_vm_task(id, name, user_id)` on queue `default` (id: the job id; name:
    /// the VM's; user_id: the user the connect hook set, else the socket id); the actor must
    /// have `store_results=True` (and, for failures to show when they happen, few retries).
    /// --vm-concurrency bounds how many VMs are in dramatiq at once; a VM handed to dramatiq
    /// cannot be cancelled.
    #[arg(long, env = "SOCKETLET_DRAMATIQ_BROKER", value_name = "URL")]
    dramatiq_broker: Option<String>,
    /// With `--vm-provisioner dramatiq`: the Redis of the workers' results backend
    /// (`RedisBackend`, default namespace), e.g. redis://127.0.0.1:6379/0. What `open_vm_task`
    /// returns is what the console shows; a failure shows as "actor raised <type>: <msg>".
    /// Default: the broker's URL when it is a Redis.
    #[arg(long, env = "SOCKETLET_DRAMATIQ_RESULTS", value_name = "URL")]
    dramatiq_results: Option<String>,
    /// The program the command provisioner runs per VM, as `PROGRAM [--vm-command-arg...] --
    /// name vcpus memory_mb image` (the `--` ends its options: a VM's fields are never read as
    /// options), with VM_NAME, VM_VCPUS, VM_MEMORY_MB, VM_IMAGE in its environment. Names start
    /// with a letter or a digit; images are the catalogue's only. It runs in a process group of
    /// its own, killed whole at its timeout or at the end of the shutdown grace period.
    #[arg(long, env = "SOCKETLET_VM_COMMAND")]
    vm_command: Option<std::path::PathBuf>,
    /// Arguments put before the `--` and the VM's own (repeatable).
    #[arg(long = "vm-command-arg", allow_hyphen_values = true)]
    vm_command_args: Vec<String>,
    /// Seconds the command may run before it is killed (with its process group).
    #[arg(long, env = "SOCKETLET_VM_COMMAND_TIMEOUT", default_value_t = 300.0)]
    vm_command_timeout: f64,
    /// Seconds one `open_vms` request may take in all (one deadline for the whole batch).
    #[arg(long, env = "SOCKETLET_VM_DEADLINE", default_value_t = 120.0)]
    vm_deadline: f64,
    /// VMs opened at the same time, across all clients.
    #[arg(long, env = "SOCKETLET_VM_CONCURRENCY", default_value_t = 4)]
    vm_concurrency: u32,
    /// VMs waiting for a free slot, across all clients; an `open_vms` past it is refused in its
    /// ack ("the server is busy").
    #[arg(long, env = "SOCKETLET_VM_MAX_QUEUED", default_value_t = vm::DEFAULT_MAX_QUEUED)]
    vm_max_queued: usize,
    /// VMs one client may have queued or opening at once; an `open_vms` past it is refused in
    /// its ack. A client's queued VMs are cancelled when it disconnects.
    #[arg(long, env = "SOCKETLET_VM_MAX_PER_CLIENT", default_value_t = vm::DEFAULT_MAX_PER_CLIENT)]
    vm_max_per_client: usize,
    /// Keep the client connected after `vm_response` (the story's server disconnected it).
    #[arg(long, env = "SOCKETLET_VM_KEEP_CONNECTED")]
    vm_keep_connected: bool,
    /// Multiplies the simulated provisioner's durations (1.0: a few seconds per VM).
    #[arg(long, env = "SOCKETLET_VM_TIME_SCALE", default_value_t = 1.0)]
    vm_time_scale: f64,
    /// Chance that the simulated provisioner fails a VM (images named `broken*` always fail).
    #[arg(long, env = "SOCKETLET_VM_FAILURE_RATE", default_value_t = 0.1)]
    vm_failure_rate: f64,
    /// Join a cluster of nodes through this Redis (e.g. redis://127.0.0.1:6379); wire-compatible
    /// with Node's @socket.io/redis-adapter and @socket.io/redis-emitter.
    #[arg(long, env = "SOCKETLET_REDIS")]
    redis: Option<String>,
    /// With --redis: also deliver what python-socketio's RedisManager publishes on this channel
    /// (python-socketio's default is `socketio`).
    #[arg(long, env = "SOCKETLET_PYTHON_CHANNEL")]
    python_channel: Option<String>,
    /// With --python-channel: accept pickled messages (python-socketio < 5.14), read by a reader
    /// that understands plain data only and never runs code.
    #[arg(long, env = "SOCKETLET_ACCEPT_PICKLE")]
    accept_pickle: bool,
    /// With --redis: use Redis 7 sharded pub/sub as Node's createShardedAdapter does, with this
    /// subscription mode: static, dynamic (Node's default) or dynamic-private. Every node of the
    /// cluster must use the same setting.
    #[arg(long, env = "SOCKETLET_REDIS_SHARDED", value_name = "MODE")]
    redis_sharded: Option<socketlet_redis::SubscriptionMode>,
    /// With --redis: use Redis Streams as Node's @socket.io/redis-streams-adapter 0.3 does
    /// (stream `socket.io`, requests over pub/sub). With --recovery-secs, recovery sessions are
    /// kept in Redis and clients recover on any node. Not with --redis-sharded.
    #[arg(
        long,
        env = "SOCKETLET_REDIS_STREAMS",
        conflicts_with = "redis_sharded",
        requires = "redis"
    )]
    redis_streams: bool,
    /// Set the `io` cookie on handshakes, for load balancers that stick by cookie.
    #[arg(long, env = "SOCKETLET_COOKIE")]
    cookie: bool,
    /// A key of the server API (`Authorization: Bearer KEY`); repeat it (or separate with
    /// commas) to have several while rotating. Without a key the API is off.
    #[arg(
        long = "api-key",
        env = "SOCKETLET_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// Serve the API on this address of its own (a private interface, say) instead of under
    /// /api/ on --addr.
    #[arg(long, env = "SOCKETLET_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// URL the connect hook POSTs to on each namespace CONNECT; its answer accepts (user,
    /// rooms, data) or refuses the connection. With any hook, the demo is off and every
    /// namespace a client asks for goes through the hooks.
    #[arg(long, env = "SOCKETLET_HOOK_CONNECT")]
    hook_connect: Option<http::Uri>,
    /// URL the event hook POSTs client events to; its answer is the ack.
    #[arg(long, env = "SOCKETLET_HOOK_EVENT")]
    hook_event: Option<http::Uri>,
    /// The events the event hook gets (repeat or separate with commas). Default: all.
    #[arg(
        long = "hook-events",
        env = "SOCKETLET_HOOK_EVENTS",
        value_delimiter = ','
    )]
    hook_events: Vec<String>,
    /// URL the disconnect hook POSTs to once per socket.
    #[arg(long, env = "SOCKETLET_HOOK_DISCONNECT")]
    hook_disconnect: Option<http::Uri>,
    /// The secret hook requests are signed with (X-Socketlet-Signature: hex HMAC-SHA256 of
    /// "<X-Socketlet-Timestamp>.<body>").
    #[arg(long, env = "SOCKETLET_HOOK_SECRET", hide_env_values = true)]
    hook_secret: Option<String>,
    /// Milliseconds a hook may take to answer.
    #[arg(long, env = "SOCKETLET_HOOK_TIMEOUT", default_value_t = 5000)]
    hook_timeout: u64,
    /// A request header passed to the connect hook (repeat); default: user-agent,
    /// accept-language, origin, referer.
    #[arg(
        long = "hook-header",
        env = "SOCKETLET_HOOK_HEADERS",
        value_delimiter = ','
    )]
    hook_headers: Vec<http::HeaderName>,
    /// Pass the Cookie header to the connect hook (a session cookie then authenticates users).
    #[arg(long, env = "SOCKETLET_HOOK_FORWARD_COOKIE")]
    hook_forward_cookie: bool,
    /// Seconds running jobs get to finish on shutdown (SIGTERM or ctrl-c).
    #[arg(long, env = "SOCKETLET_SHUTDOWN_GRACE", default_value_t = 30.0)]
    shutdown_grace: f64,
    /// Serve Prometheus metrics at /metrics: on --api-addr when there is one, else on --addr.
    /// Off by default, for on a public port they tell anyone the server's load. (/health/live
    /// and /health/ready are always served.)
    #[arg(long, env = "SOCKETLET_METRICS")]
    metrics: bool,
    #[command(flatten)]
    admin: admin_ui::AdminArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TransportName {
    Polling,
    Websocket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ParserKind {
    Json,
    Msgpack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProvisionerKind {
    Simulated,
    Command,
    Dramatiq,
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// The console of `--vm-provisioner dramatiq`: VMs open through Python dramatiq workers.
async fn dramatiq_console(args: &Args, limits: vm::Limits) -> Result<vm::Console, String> {
    let broker = args
        .dramatiq_broker
        .as_deref()
        .ok_or("--vm-provisioner dramatiq needs --dramatiq-broker URL")?;
    let results = match (
        &args.dramatiq_results,
        socketlet_dramatiq::BrokerKind::of(broker),
    ) {
        (Some(results), _) => results.as_str(),
        (None, Some(socketlet_dramatiq::BrokerKind::Redis)) => broker,
        (None, _) => {
            return Err("--vm-provisioner dramatiq needs --dramatiq-results URL (a Redis)".into())
        }
    };
    let config = vm::dramatiq_config(broker, results, args.vm_concurrency, secs(args.vm_deadline));
    let backend = socketlet_dramatiq::DramatiqBackend::connect(config)
        .await
        .map_err(|e| format!("cannot use dramatiq (--dramatiq-broker, --dramatiq-results): {e}"))?;
    let name = format!(
        "dramatiq: {}(id, name, user_id) on queue {}",
        vm::DRAMATIQ_ACTOR,
        vm::DRAMATIQ_QUEUE
    );
    tracing::info!(
        broker = %socketlet_dramatiq::redact(broker),
        results = %socketlet_dramatiq::redact(results),
        "VMs open through dramatiq workers"
    );
    Ok(vm::Console::on_backend(
        backend,
        limits,
        secs(args.vm_deadline),
        !args.vm_keep_connected,
        name,
        false,
    ))
}

async fn console(args: &Args) -> Result<vm::Console, String> {
    let limits = vm::Limits {
        max_concurrent: args.vm_concurrency,
        max_queued: args.vm_max_queued,
        max_per_client: args.vm_max_per_client,
    };
    let (provisioner, name, simulated): (std::sync::Arc<dyn provision::Provisioner>, String, bool) =
        match args.vm_provisioner {
            ProvisionerKind::Simulated => (
                std::sync::Arc::new(provision::Simulated {
                    time_scale: args.vm_time_scale,
                    failure_rate: args.vm_failure_rate.clamp(0.0, 1.0),
                }),
                "simulated".into(),
                true,
            ),
            ProvisionerKind::Command => {
                let program = args
                    .vm_command
                    .clone()
                    .ok_or("--vm-provisioner command needs --vm-command PROGRAM")?;
                let name = format!("command: {}", program.display());
                (
                    std::sync::Arc::new(provision::Command {
                        program,
                        args: args.vm_command_args.clone(),
                        timeout: secs(args.vm_command_timeout),
                        images: vm::catalog_images(),
                    }),
                    name,
                    false,
                )
            }
            ProvisionerKind::Dramatiq => return dramatiq_console(args, limits).await,
        };
    Ok(vm::Console::new(
        provisioner,
        limits,
        secs(args.vm_deadline),
        !args.vm_keep_connected,
        name,
        simulated,
    ))
}

/// `--trusted-proxy`: networks, `none`, or nothing for the default (loopback).
fn trusted_proxies(list: &[String]) -> Result<socketlet::TrustedProxies, StartError> {
    if list.is_empty() {
        return Ok(socketlet::TrustedProxies::default());
    }
    if list.iter().any(|p| p == "none") {
        return Ok(socketlet::TrustedProxies::none());
    }
    let nets = list
        .iter()
        .map(|p| p.parse::<socketlet::IpNet>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError(format!("--trusted-proxy: {e}")))?;
    Ok(socketlet::TrustedProxies::new(nets))
}

/// `--allowed-host`: names, `*`, or nothing for the default (loopback names on a loopback bind).
fn allowed_hosts(list: &[String], addr: SocketAddr) -> socketlet::AllowedHosts {
    if list.iter().any(|h| h == "*") {
        socketlet::AllowedHosts::Any
    } else if !list.is_empty() {
        socketlet::AllowedHosts::List(
            list.iter()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
                .collect(),
        )
    } else if addr.ip().is_loopback() {
        socketlet::AllowedHosts::loopback()
    } else {
        socketlet::AllowedHosts::Any
    }
}

/// ctrl-c and SIGTERM, listened to from the moment this is made (a signal that comes before
/// anyone awaits it is not lost, nor does it kill the process).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Resolves on the next ctrl-c or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves the demo page and the client bundle (under the server's Socket.IO path); 404 for the
/// rest.
#[derive(Clone)]
struct Static {
    /// `<path>/`: the bundle's files are under it.
    bundle_prefix: String,
    /// The demo page, rendered for the path once, when the server starts (none when the
    /// demo is off).
    index: Option<Bytes>,
}

impl Static {
    /// For a server whose Socket.IO path is `path` (as the engine normalised it).
    fn new(path: &str, demo: bool) -> Static {
        Static {
            bundle_prefix: format!("{}/", path.trim_end_matches('/')),
            index: demo.then(|| Bytes::from(assets::index_html(path))),
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<http_body_util::Full<Bytes>> {
    let mut res = Response::new(http_body_util::Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

impl<B> tower_service::Service<Request<B>> for Static {
    type Response = Response<http_body_util::Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        let res = if req.method() != Method::GET && req.method() != Method::HEAD {
            respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                Bytes::from_static(b"Method Not Allowed"),
            )
        } else if let Some(index) = self
            .index
            .as_ref()
            .filter(|_| path == "/" || path == "/index.html")
        {
            respond(StatusCode::OK, "text/html; charset=utf-8", index.clone())
        } else if let Some((bytes, content_type)) = path
            .strip_prefix(self.bundle_prefix.as_str())
            .and_then(assets::client_file)
        {
            let mut res = respond(StatusCode::OK, content_type, Bytes::from_static(bytes));
            if let Some(v) = assets::CLIENT_VERSION
                .and_then(|v| http::HeaderValue::from_str(&format!("\"{v}\"")).ok())
            {
                res.headers_mut().insert(header::ETAG, v);
            }
            res
        } else {
            respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"Not Found"),
            )
        };
        std::future::ready(Ok(res))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The demo's events: `echo`, `join`, `chat`, and the VM console's.
/// A chat message as the demo page sends it.
#[derive(serde::Deserialize)]
struct ChatIn {
    room: String,
    text: String,
}

/// A chat message as the room gets it.
#[derive(serde::Serialize)]
struct ChatOut<'a> {
    room: &'a str,
    from: &'a str,
    text: &'a str,
    at: u64,
}

fn demo(io: &SocketIo, console: vm::Console) {
    io.of("/").on_connect(move |socket: Socket| {
        console.attach(&socket);
        tracing::info!(id = %socket.id(), transport = socket.transport().as_str(), "connected");
        socket.on("echo", |data: Data, ack: AckSender| async move {
            let _ = ack.send(data);
        });
        socket.on(
            "join",
            |socket: Socket, socketlet::Args(room): socketlet::Args<String>, ack: AckSender| async move {
                // Bounded: short names, and at most 32 rooms per socket (its own id included).
                if !room.is_empty() && room.len() <= 64 && socket.rooms().len() < 32 {
                    socket.join([room]);
                }
                let _ = ack.send(socket.rooms());
            },
        );
        socket.on("chat", |socket: Socket, socketlet::Args(msg): socketlet::Args<ChatIn>| async move {
            if msg.room.is_empty() || msg.text.is_empty() || msg.text.len() > 2000 {
                return;
            }
            let out = ChatOut {
                room: &msg.room,
                from: socket.id(),
                text: &msg.text,
                at: now_ms(),
            };
            let _ = socket.ns().to(msg.room.clone()).emit("chat", &out);
        });
        socket.on_disconnect(|socket, reason| async move {
            tracing::info!(id = %socket.id(), %reason, "disconnected");
        });
        async {}
    });
}

/// The gateway of the binary: its API and whether hooks are on.
struct BinaryGateway {
    api: socketlet_gateway::Gateway,
    hooks: bool,
}

impl BinaryGateway {
    /// Whether the backend's hooks run the namespaces (then the demo is off).
    fn hooked(&self) -> bool {
        self.hooks
    }
}

/// The server API and the hooks, from the flags.
fn gateway(args: &Args, io: &SocketIo, metrics: Option<&Metrics>) -> BinaryGateway {
    use socketlet_gateway::{EventFilter, GatewayConfig, HookConfig};
    let mut hooks = HookConfig::default()
        .with_connect(args.hook_connect.clone())
        .with_event(args.hook_event.clone())
        .with_disconnect(args.hook_disconnect.clone())
        .with_secret(args.hook_secret.clone())
        .with_timeout(Duration::from_millis(args.hook_timeout))
        .with_forward_cookie(args.hook_forward_cookie);
    if !args.hook_events.is_empty() {
        hooks = hooks.with_events(EventFilter::Only(args.hook_events.clone()));
    }
    if !args.hook_headers.is_empty() {
        hooks = hooks.with_headers(args.hook_headers.clone());
    }
    if let Some(metrics) = metrics {
        let metrics = metrics.clone();
        hooks = hooks
            .with_observer(move |hook, outcome, took| metrics.hook_called(hook, outcome, took));
    }
    let mut config = GatewayConfig::default()
        .with_api_keys(args.api_keys.iter().filter(|k| !k.is_empty()).cloned())
        .with_hooks(hooks.clone());
    for (name, own) in &args.namespaces {
        config = config.with_namespace_hooks(name, namespace_hooks(&hooks, own));
    }
    let any = config.any_hooks();
    let gateway = socketlet_gateway::Gateway::new(io, config);
    if any {
        gateway.attach_all();
    }
    BinaryGateway {
        api: gateway,
        hooks: any,
    }
}

/// A namespace's hooks: the flags' (`base`), with what its table in the settings file replaces.
/// The URLs and headers were checked when the file was read.
fn namespace_hooks(
    base: &socketlet_gateway::HookConfig,
    own: &config::NamespaceHooks,
) -> socketlet_gateway::HookConfig {
    let url = |u: &String| {
        (!u.is_empty())
            .then(|| u.parse::<http::Uri>().ok())
            .flatten()
    };
    let mut hooks = base.clone();
    if let Some(u) = &own.hook_connect {
        hooks = hooks.with_connect(url(u));
    }
    if let Some(u) = &own.hook_event {
        hooks = hooks.with_event(url(u));
    }
    if let Some(u) = &own.hook_disconnect {
        hooks = hooks.with_disconnect(url(u));
    }
    if let Some(events) = &own.hook_events {
        hooks = hooks.with_events(socketlet_gateway::EventFilter::Only(events.clone()));
    }
    if let Some(ms) = own.hook_timeout {
        hooks = hooks.with_timeout(Duration::from_millis(ms));
    }
    if let Some(headers) = &own.hook_headers {
        hooks = hooks.with_headers(
            headers
                .iter()
                .filter_map(|h| http::HeaderName::try_from(h.as_str()).ok())
                .collect(),
        );
    }
    if let Some(forward) = own.hook_forward_cookie {
        hooks = hooks.with_forward_cookie(forward);
    }
    hooks
}

/// The jobs' states as metrics: `socketlet_jobs{state="queued"|"running"}` now, and totals of
/// jobs done, failed and cancelled.
fn job_metrics(metrics: &Metrics, jobs: &socketlet_jobs::Jobs) {
    let j = jobs.clone();
    metrics.gauge_fn("jobs_queued", "Jobs waiting for a slot", move || {
        j.stats().queued as i64
    });
    let j = jobs.clone();
    metrics.gauge_fn("jobs_running", "Jobs running", move || {
        j.stats().running as i64
    });
    let j = jobs.clone();
    metrics.counter_fn("jobs_done", "Jobs finished with a result", move || {
        j.stats().done
    });
    let j = jobs.clone();
    metrics.counter_fn(
        "jobs_failed",
        "Jobs failed (errors, deadlines, shutdown)",
        move || j.stats().failed,
    );
    let j = jobs.clone();
    metrics.counter_fn(
        "jobs_cancelled",
        "Jobs cancelled before they started",
        move || j.stats().cancelled,
    );
}

/// The Redis adapter's state as metrics.
fn redis_metrics(metrics: &Metrics, cluster: &socketlet_redis::RedisCluster) {
    let c = cluster.clone();
    metrics.gauge_fn(
        "redis_subscribed",
        "1 while the Redis pub/sub connection is up (other nodes' messages arrive), else 0",
        move || i64::from(c.stats().subscribed),
    );
    let c = cluster.clone();
    metrics.gauge_fn(
        "redis_publishing",
        "1 while publishing to Redis works, 0 since a publication failed",
        move || i64::from(c.stats().publishing),
    );
    let c = cluster.clone();
    metrics.gauge_fn(
        "redis_publish_queue",
        "Messages waiting to be published to Redis",
        move || c.stats().publish_queue as i64,
    );
}

/// A reason the server could not start, as one sentence for the person who started it.
#[derive(Debug)]
struct StartError(String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn main() -> std::process::ExitCode {
    let loaded = match config::load(std::env::args_os().collect()) {
        Ok(loaded) => loaded,
        Err(config::LoadError::Clap(e)) => e.exit(),
        Err(config::LoadError::File(e)) => {
            eprintln!("socketlet: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let args = &loaded.args;
    if args.print_options {
        print!("{}", config::options_table());
        return std::process::ExitCode::SUCCESS;
    }
    if args.check_config {
        if let Err(e) = check(args) {
            eprintln!("socketlet: {e}");
            return std::process::ExitCode::from(2);
        }
        print!("{}", config::effective(&loaded));
        return std::process::ExitCode::SUCCESS;
    }
    init_logs(args.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = args.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("socketlet: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(loaded.args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("socketlet: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs on standard error: text (colours for a person at a terminal only) or JSON lines.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}

/// What `--check-config` checks beyond each value's type: the settings that only make sense
/// together, and the files they name.
fn check(args: &Args) -> Result<(), StartError> {
    trusted_proxies(&args.trusted_proxies)?;
    admin_ui::config(&args.admin, &args.path).map_err(StartError)?;
    transports(&args.transports)?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        tls_config(cert, key)?;
    }
    if args.api_addr.is_some() && args.api_keys.iter().all(|k| k.is_empty()) {
        return Err(StartError("--api-addr needs an API key (--api-key)".into()));
    }
    if args.vm_provisioner == ProvisionerKind::Command && args.vm_command.is_none() {
        return Err(StartError(
            "--vm-provisioner command needs --vm-command PROGRAM".into(),
        ));
    }
    if args.vm_provisioner == ProvisionerKind::Dramatiq && args.dramatiq_broker.is_none() {
        return Err(StartError(
            "--vm-provisioner dramatiq needs --dramatiq-broker URL".into(),
        ));
    }
    Ok(())
}

/// `--transports`: at least one.
fn transports(list: &[TransportName]) -> Result<socketlet::Transports, StartError> {
    let polling = list.contains(&TransportName::Polling);
    let websocket = list.contains(&TransportName::Websocket);
    match (polling, websocket) {
        (true, true) => Ok(socketlet::Transports::ALL),
        (true, false) => Ok(socketlet::Transports::POLLING_ONLY),
        (false, true) => Ok(socketlet::Transports::WEBSOCKET_ONLY),
        (false, false) => Err(StartError(
            "--transports needs polling, websocket or both".into(),
        )),
    }
}

/// `--tls-cert` and `--tls-key`: a rustls server configuration.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<std::sync::Arc<socketlet::rustls::ServerConfig>, StartError> {
    use socketlet::rustls::pki_types::pem::PemObject;
    use socketlet::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StartError(format!("cannot read {} (--tls-cert): {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(StartError(format!(
            "{} (--tls-cert) holds no certificate",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| StartError(format!("cannot read {} (--tls-key): {e}", key.display())))?;
    // rustls' process-wide provider: ring, the one built in.
    let config = socketlet::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            StartError(format!(
                "the certificate (--tls-cert) and key (--tls-key) do not work: {e}"
            ))
        })?;
    Ok(std::sync::Arc::new(config))
}

async fn run(args: Args) -> Result<(), StartError> {
    let cors = if args.cors_origins.is_empty() {
        Cors::SameOrigin
    } else {
        Cors::from_list(args.cors_origins.clone())
    };
    let cookie = args.cookie.then(socketlet::Cookie::default);
    let trusted_proxies = trusted_proxies(&args.trusted_proxies)?;
    let allowed_hosts = allowed_hosts(&args.allowed_hosts, args.addr);
    let transports = transports(&args.transports)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let mut builder = SocketIo::builder()
        .path(args.path.clone())
        .ping_interval(Duration::from_millis(args.ping_interval))
        .ping_timeout(Duration::from_millis(args.ping_timeout))
        .upgrade_timeout(Duration::from_millis(args.upgrade_timeout))
        .connect_timeout(Duration::from_millis(args.connect_timeout))
        .max_payload(args.max_payload)
        .transports(transports)
        .allow_eio3(!args.no_eio3)
        .parser(match args.parser {
            ParserKind::Json => socketlet::Parser::Json,
            ParserKind::Msgpack => socketlet::Parser::Msgpack,
        })
        .cors(cors)
        .engine(|e| {
            e.with_cookie(cookie)
                .with_trusted_proxies(trusted_proxies)
                .with_allowed_hosts(allowed_hosts)
                .with_allow_jsonp(args.allow_jsonp)
                .with_max_body_time(Duration::from_millis(args.max_body_time_ms))
                .with_cors_credentials(args.cors_credentials)
                .with_max_buffered_packets(args.max_buffered_packets)
                .with_max_sessions(args.max_sessions)
        });
    if args.recovery_secs > 0 {
        builder = builder.connection_state_recovery(
            socketlet::RecoveryConfig::default()
                .with_max_disconnection_duration(Duration::from_secs(args.recovery_secs)),
        );
    }
    let cluster = match &args.redis {
        Some(url) => {
            let config = socketlet_redis::RedisConfig::new(url.clone())
                .with_python_channel(args.python_channel.clone())
                .with_accept_pickle(args.accept_pickle)
                .with_sharded(args.redis_sharded)
                .with_streams(
                    args.redis_streams
                        .then(socketlet_redis::StreamsConfig::default),
                );
            let cluster = socketlet_redis::RedisCluster::connect(config)
                .await
                .map_err(|e| StartError(format!("cannot reach Redis at {url} (--redis): {e}")))?;
            tracing::info!(uid = cluster.uid(), "joined the Redis cluster at {url}");
            builder = builder.adapter(cluster.adapter_factory());
            Some(cluster)
        }
        None => None,
    };
    let io = builder.build();
    if let Some(cluster) = &cluster {
        cluster.attach(&io);
    }
    let health = Health::new();
    let metrics = args.metrics.then(Metrics::new);
    if let Some(metrics) = &metrics {
        io.observe(std::sync::Arc::new(metrics.clone()));
    }
    if let Some(cluster) = &cluster {
        let cluster = cluster.clone();
        health.check("redis", move || {
            let cluster = cluster.clone();
            async move {
                cluster
                    .server_count()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        });
    }
    let console = console(&args).await.map_err(StartError)?;
    let jobs = console.jobs.clone();
    if let Some(metrics) = &metrics {
        job_metrics(metrics, &jobs);
        if let Some(cluster) = &cluster {
            redis_metrics(metrics, cluster);
        }
    }
    let _admin = admin_ui::attach(&args.admin, &io, args.redis.as_deref()).map_err(StartError)?;
    let gateway = gateway(&args, &io, metrics.as_ref());
    let demo_on = !gateway.hooked();
    if demo_on {
        demo(&io, console);
    }

    let statics = admin_ui::Files::new(
        Static::new(&io.config().engine.path, demo_on),
        &args.admin,
        &io.config().engine.path,
    );
    let api_on_main = gateway.api.api_enabled() && args.api_addr.is_none();
    let main_inner = gateway.api.api_service(statics).with_api(api_on_main);
    let service = socketlet::SocketIoService::with_inner(io.clone(), main_inner);
    let mut service = OpsService::new(service, health.clone());
    if let (Some(metrics), None) = (&metrics, args.api_addr) {
        service = service.with_metrics(metrics.clone());
    }
    let listener = socketlet::bind(args.addr)
        .map_err(|e| StartError(format!("cannot listen on {} (--addr): {e}", args.addr)))?;
    let api_listener = match args.api_addr {
        Some(addr) if gateway.api.api_enabled() => Some(
            socketlet::bind(addr)
                .map_err(|e| StartError(format!("cannot listen on {addr} (--api-addr): {e}")))?,
        ),
        Some(_) => {
            return Err(StartError(
                "--api-addr needs an API key (--api-key)".to_owned(),
            ))
        }
        None => None,
    };
    let local = listener.local_addr().unwrap_or(args.addr);
    // Signals are caught from here on: a SIGTERM right after the line below stops gracefully.
    let mut signals = StopSignals::new();
    tracing::info!(
        addr = %local,
        tls = tls.is_some(),
        path = %io.config().engine.path,
        "listening"
    );
    // One line on standard output (logs go to standard error), for people and scripts alike.
    println!(
        "socketlet listening on {}://{local} (Socket.IO at {}, client bundle {})",
        if tls.is_some() { "https" } else { "http" },
        io.config().engine.path,
        assets::CLIENT_VERSION.unwrap_or("not embedded")
    );
    if let Some(api_listener) = api_listener {
        let api_local = api_listener.local_addr().ok();
        println!(
            "socketlet API listening on http://{}",
            api_local.map_or(String::from("?"), |a| a.to_string())
        );
        let mut api = OpsService::new(gateway.api.api_service(socketlet::NotFound), health.clone());
        if let Some(metrics) = &metrics {
            api = api.with_metrics(metrics.clone());
        }
        tokio::spawn(async move {
            if let Err(e) = socketlet::serve(api_listener, api, std::future::pending()).await {
                tracing::error!("the API listener failed: {e}");
            }
        });
    }
    match tls {
        Some(tls) => socketlet::serve_tls(listener, service, tls, signals.next()).await,
        None => socketlet::serve(listener, service, signals.next()).await,
    }
    .map_err(|e| StartError(format!("the listener on {local} failed: {e}")))?;
    // Graceful shutdown: no new connections; clients are told; running jobs get the grace period
    // (their results still reach clients that stay); then every connection closes.
    health.drain();
    let grace = secs(args.shutdown_grace);
    tracing::info!(grace_secs = grace.as_secs_f64(), "shutting down");
    let _ = io.emit(
        "server_shutdown",
        json!({ "grace_ms": grace.as_millis() as u64 }),
    );
    tokio::select! {
        _ = jobs.shutdown(grace) => {}
        _ = signals.next() => tracing::warn!("second signal: not waiting for jobs"),
    }
    io.close();
    // Give the transports a moment to deliver the close packets.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
