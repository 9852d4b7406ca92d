//! The server the end-to-end tests drive (see `tests/e2e/CONTRACT.md`).

use clap::Parser;
use serde_json::{json, Value};
use socketlet::{AckSender, Args, ConnectError, Cors, Data, Socket, SocketIo};
use std::time::Duration;

#[derive(Parser)]
struct Cli {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 25_000)]
    ping_interval: u64,
    /// Heartbeat timeout in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    ping_timeout: u64,
    /// Allowed origin (repeatable; default: same origin).
    #[arg(long)]
    cors_origin: Vec<String>,
    /// Join a cluster through this Redis (e.g. redis://127.0.0.1:6379).
    #[arg(long)]
    redis: Option<String>,
    /// Also deliver python-socketio message-queue messages from this channel (with --redis).
    #[arg(long)]
    python_channel: Option<String>,
    /// Accept pickled python-socketio messages (python-socketio < 5.14), read safely.
    #[arg(long)]
    accept_pickle: bool,
    /// Redis 7 sharded pub/sub with this subscription mode (static, dynamic, dynamic-private).
    #[arg(long)]
    redis_sharded: Option<socketlet_redis::SubscriptionMode>,
    /// Redis Streams, as Node's @socket.io/redis-streams-adapter (with --redis; not with
    /// --redis-sharded); with --recovery-ms, sessions are kept in Redis.
    #[arg(long, conflicts_with = "redis_sharded", requires = "redis")]
    redis_streams: bool,
    /// Serve JSONP polling (off by default).
    #[arg(long)]
    allow_jsonp: bool,
    /// Write packets with the msgpack parser (socket.io-msgpack-parser) instead of JSON.
    #[arg(long)]
    msgpack: bool,
    /// Connection state recovery, keeping sessions this many milliseconds (off without it).
    #[arg(long)]
    recovery_ms: Option<u64>,
}

fn sorted_rooms(socket: &Socket) -> Value {
    let mut rooms = socket.rooms();
    rooms.sort();
    json!(rooms)
}

async fn echo(socket: Socket, data: Data, ack: AckSender) {
    if ack.requested() {
        let _ = ack.send(data);
    } else {
        let _ = socket.emit("echo", data);
    }
}

async fn on_root_connect(socket: Socket) {
    let protocol = match socket.protocol() {
        socketlet::ProtocolVersion::V5 => 5,
        socketlet::ProtocolVersion::V4 => 4,
    };
    let mut welcome = json!({"sid": socket.id(), "auth": socket.auth(), "protocol": protocol});
    if socket.recovered() {
        welcome["recovered"] = json!(true);
    }
    let _ = socket.emit("welcome", welcome);
    socket.on("echo", echo);
    socket.on(
        "ask-client",
        |socket: Socket, Args(question): Args<Value>, ack: AckSender| async move {
            let answer = socket
                .emit_with_ack_timeout("question", question, Duration::from_secs(5))
                .await;
            let _ = ack.send(match answer {
                Ok(data) => json!({"answer": data.args.first()}),
                Err(_) => json!({"error": "timeout"}),
            });
        },
    );
    socket.on(
        "join",
        |socket: Socket, Args(room): Args<String>, ack: AckSender| async move {
            socket.join([room]);
            let _ = ack.send(sorted_rooms(&socket));
        },
    );
    socket.on(
        "leave",
        |socket: Socket, Args(room): Args<String>, ack: AckSender| async move {
            socket.leave(&room);
            let _ = ack.send(sorted_rooms(&socket));
        },
    );
    socket.on(
        "to-room",
        |socket: Socket, Args((room, msg)): Args<(String, Value)>, data: Data, ack: AckSender| async move {
            // `msg` keeps its binary attachments: its placeholders refer to `data.binary`.
            let mut out = Data::new();
            out.binary = data.binary;
            out.push(json!({"room": room, "from": socket.id(), "msg": msg}));
            let _ = socket.ns().to(room).emit("room-message", out);
            let _ = ack.send(true);
        },
    );
    socket.on("broadcast", |socket: Socket, data: Data| async move {
        let _ = socket.broadcast().emit("broadcast", data);
    });
    socket.on("binary-please", |ack: AckSender| async move {
        let mut data = Data::new();
        let buf = data.push_binary(bytes::Bytes::from_static(&[1, 2, 3]));
        let nested = data.push_binary(bytes::Bytes::from_static(&[0xff]));
        data.push(json!({"buf": buf, "nested": [nested]}));
        let _ = ack.send(data);
    });
    socket.on(
        "collect-acks",
        |socket: Socket, Args(room): Args<String>, ack: AckSender| async move {
            let result = socket
                .ns()
                .to(room)
                .timeout(Duration::from_secs(2))
                .emit_with_ack("ping-ack", "ping")
                .await;
            let mut answers: Vec<Value> = result
                .map(|r| {
                    r.responses
                        .into_iter()
                        .filter_map(|(_, d)| d.args.into_iter().next())
                        .collect()
                })
                .unwrap_or_default();
            answers.sort_by_key(|v| v.to_string());
            let _ = ack.send(answers);
        },
    );
    socket.on("disconnect-me", |socket: Socket| async move {
        socket.disconnect();
    });
    socket.on("drop-transport", |socket: Socket| async move {
        socket.close_connection();
    });
    socket.on(
        "fetch-sockets",
        |socket: Socket, ack: AckSender| async move {
            let reply = match socket.ns().fetch_sockets().await {
                Ok(sockets) => {
                    let mut ids: Vec<Value> = sockets
                        .iter()
                        .map(|s| json!({"id": s.id, "rooms": s.rooms, "local": s.local.is_some()}))
                        .collect();
                    ids.sort_by_key(|v| v["id"].to_string());
                    json!(ids)
                }
                Err(e) => json!({"error": e.to_string()}),
            };
            let _ = ack.send(reply);
        },
    );
    socket.on(
        "remote-disconnect",
        |socket: Socket, Args(target): Args<String>, ack: AckSender| async move {
            let result = socket.ns().to(target).disconnect_sockets().await;
            let _ = ack.send(result.is_ok());
        },
    );
    socket.on(
        "server-side-emit",
        |socket: Socket, data: Data, ack: AckSender| async move {
            let result = socket.ns().server_side_emit("ping-nodes", data);
            let _ = ack.send(result.is_ok());
        },
    );
    socket.on("count", |socket: Socket, ack: AckSender| async move {
        let _ = ack.send(socket.ns().local().socket_count());
    });
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Cli::parse();
    let cors = if args.cors_origin.is_empty() {
        Cors::SameOrigin
    } else {
        Cors::from_list(args.cors_origin)
    };
    let mut builder = SocketIo::builder()
        .ping_interval(Duration::from_millis(args.ping_interval))
        .ping_timeout(Duration::from_millis(args.ping_timeout))
        .cors(cors)
        .engine(|e| e.with_allow_jsonp(args.allow_jsonp))
        .parser(if args.msgpack {
            socketlet::Parser::Msgpack
        } else {
            socketlet::Parser::Json
        });
    if let Some(ms) = args.recovery_ms {
        builder = builder.connection_state_recovery(
            socketlet::RecoveryConfig::default()
                .with_max_disconnection_duration(Duration::from_millis(ms)),
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
                .map_err(std::io::Error::other)?;
            builder = builder.adapter(cluster.adapter_factory());
            Some(cluster)
        }
        None => None,
    };
    let io = builder.build();

    let root = io.of("/");
    root.use_middleware(|socket: Socket| async move {
        let auth_token = socket
            .auth()
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let token = auth_token.or_else(|| socket.query("token"));
        if token.as_deref() == Some("reject") {
            return Err(ConnectError::new("unauthorized").with_data(json!({"code": "E_TOKEN"})));
        }
        Ok(())
    });
    root.on_connect(on_root_connect);

    io.of("/admin").on_connect(|socket: Socket| async move {
        let _ = socket.emit("welcome", json!({"nsp": "/admin", "sid": socket.id()}));
        socket.on("echo", echo);
    });

    if let Some(cluster) = &cluster {
        cluster.attach(&io);
        let counter = io.clone();
        io.of("/").on_server_side_emit(move |event, data| {
            let counter = counter.clone();
            async move {
                if event == "ping-nodes" {
                    let _ = counter.emit("nodes-pinged", data);
                }
            }
        });
    }

    let listener = socketlet::bind(([127, 0, 0, 1], args.port).into())?;
    println!("LISTENING {}", listener.local_addr()?.port());
    socketlet::serve(listener, io.service(), std::future::pending()).await
}
