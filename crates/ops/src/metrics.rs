//! Prometheus metrics of a socketlet server, as an [`Observer`].
//!
//! Per-packet counters carry no labels (an atomic add each); labelled series change only when
//! connections and sockets come and go. Namespaces as labels are capped at
//! [`MAX_NAMESPACE_LABELS`]; the others count as `other` (a dynamic namespace could otherwise
//! make series without end).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use socketlet::engine::{CloseReason, Connection};
use socketlet::socketio_proto::Packet;
use socketlet::{Data, DisconnectReason, Observer, Socket, TransportKind};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Namespaces named in labels; the others count as `other`.
pub const MAX_NAMESPACE_LABELS: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    transport: &'static str,
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookName {
    hook: String,
}

/// A value read when scraped (a queue's depth, whether Redis is reachable, jobs done...).
type ReadFn = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A series read at scrape time: its name, help, whether it is a counter, and how to read it.
#[derive(Clone)]
struct Reading {
    name: String,
    help: String,
    counter: bool,
    read: ReadFn,
}

/// The series read at scrape time.
#[derive(Default)]
struct Readings(Mutex<Vec<Reading>>);

impl std::fmt::Debug for Readings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readings")
    }
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Read outside the lock: a reading is the caller's code.
        let readings = socketlet::engine::sync::lock(&self.0).clone();
        for reading in readings {
            let value = (reading.read)();
            if reading.counter {
                let counter = ConstCounter::new(value.max(0) as u64);
                let metric = encoder.encode_descriptor(
                    &reading.name,
                    &reading.help,
                    None,
                    counter.metric_type(),
                )?;
                counter.encode(metric)?;
            } else {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(
                    &reading.name,
                    &reading.help,
                    None,
                    gauge.metric_type(),
                )?;
                gauge.encode(metric)?;
            }
        }
        Ok(())
    }
}

struct Inner {
    registry: Registry,
    connections: Family<ConnectionLabels, Gauge>,
    handshakes: Counter,
    upgrades: Counter,
    closes: Family<ReasonLabels, Counter>,
    sockets: Family<NamespaceLabels, Gauge>,
    socket_disconnects: Family<ReasonLabels, Counter>,
    packets_in: Counter,
    bytes_in: Counter,
    packets_out: Counter,
    bytes_out: Counter,
    broadcasts: Counter,
    deliveries: Counter,
    volatile_dropped: Counter,
    slow_clients: Counter,
    ack_timeouts: Counter,
    hook_requests: Family<HookLabels, Counter>,
    hook_seconds: Family<HookName, Histogram>,
    readings: Arc<Readings>,
    namespaces: Mutex<HashSet<String>>,
}

/// The metrics of a server. Cheap to clone; add it with `io.observe(Arc::new(metrics))`, serve
/// [`Metrics::render`] (or [`crate::OpsService`]).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn histogram() -> Histogram {
    // 1 ms to about 8 s.
    Histogram::new([
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 8.0,
    ])
}

impl Metrics {
    /// Metrics with every series at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("socketlet");
        let connections = Family::<ConnectionLabels, Gauge>::default();
        let handshakes = Counter::default();
        let upgrades = Counter::default();
        let closes = Family::<ReasonLabels, Counter>::default();
        let sockets = Family::<NamespaceLabels, Gauge>::default();
        let socket_disconnects = Family::<ReasonLabels, Counter>::default();
        let [packets_in, bytes_in, packets_out, bytes_out]: [Counter; 4] = Default::default();
        let [broadcasts, deliveries]: [Counter; 2] = Default::default();
        let [volatile_dropped, slow_clients, ack_timeouts]: [Counter; 3] = Default::default();
        let hook_requests = Family::<HookLabels, Counter>::default();
        let hook_seconds =
            Family::<HookName, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let readings = Arc::new(Readings::default());
        registry.register(
            "connections",
            "Engine.IO connections open now, by transport and protocol (EIO 3 or 4)",
            connections.clone(),
        );
        registry.register("handshakes", "Engine.IO handshakes", handshakes.clone());
        registry.register(
            "upgrades",
            "Connections moved from long-polling to WebSocket",
            upgrades.clone(),
        );
        registry.register(
            "connection_closes",
            "Engine.IO connections closed, by reason",
            closes.clone(),
        );
        registry.register(
            "sockets",
            "Sockets connected now, by namespace",
            sockets.clone(),
        );
        registry.register(
            "socket_disconnects",
            "Sockets disconnected, by reason",
            socket_disconnects.clone(),
        );
        registry.register(
            "packets_received",
            "Events and acks received",
            packets_in.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes of events and acks received",
            bytes_in.clone(),
        );
        registry.register(
            "packets_sent",
            "Packets sent to one socket (emits, acks, CONNECT answers...)",
            packets_out.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes of packets sent to one socket",
            bytes_out.clone(),
        );
        registry.register(
            "broadcasts",
            "Broadcasts sent from this node",
            broadcasts.clone(),
        );
        registry.register(
            "broadcast_deliveries",
            "Sockets reached by broadcasts of this node",
            deliveries.clone(),
        );
        registry.register(
            "volatile_dropped",
            "Volatile packets dropped because their client was not ready",
            volatile_dropped.clone(),
        );
        registry.register(
            "slow_clients",
            "Connections closed because the client fell too far behind",
            slow_clients.clone(),
        );
        registry.register(
            "ack_timeouts",
            "Acks that did not come in time",
            ack_timeouts.clone(),
        );
        registry.register(
            "hook_requests",
            "Backend hook requests, by hook and outcome",
            hook_requests.clone(),
        );
        registry.register(
            "hook_duration_seconds",
            "Time a backend hook took to answer",
            hook_seconds.clone(),
        );
        registry.register_collector(Box::new(readings.clone()));
        Metrics {
            inner: Arc::new(Inner {
                registry,
                connections,
                handshakes,
                upgrades,
                closes,
                sockets,
                socket_disconnects,
                packets_in,
                bytes_in,
                packets_out,
                bytes_out,
                broadcasts,
                deliveries,
                volatile_dropped,
                slow_clients,
                ack_timeouts,
                hook_requests,
                hook_seconds,
                readings,
                namespaces: Mutex::default(),
            }),
        }
    }

    /// Adds a gauge read at every scrape: `socketlet_<name>`, the value `read` returns. `read`
    /// runs on the scraping request's task with no lock held.
    pub fn gauge_fn(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) {
        self.add_reading(name.into(), help.into(), false, Arc::new(read));
    }

    /// Adds a counter read at every scrape: `socketlet_<name>_total`, the value `read` returns
    /// (a total that only grows, like jobs done).
    pub fn counter_fn(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        let read = move || i64::try_from(read()).unwrap_or(i64::MAX);
        self.add_reading(name.into(), help.into(), true, Arc::new(read));
    }

    fn add_reading(&self, name: String, help: String, counter: bool, read: ReadFn) {
        // The registry's prefix (`socketlet_`) is put in front when encoding.
        socketlet::engine::sync::lock(&self.inner.readings.0).push(Reading {
            name,
            help,
            counter,
            read,
        });
    }

    /// Records a backend hook call (`hook`: connect, event, disconnect; `outcome`: ok, refused,
    /// or the failure), for the gateway.
    pub fn hook_called(&self, hook: &str, outcome: &str, elapsed: Duration) {
        self.inner
            .hook_requests
            .get_or_create(&HookLabels {
                hook: hook.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.inner
            .hook_seconds
            .get_or_create(&HookName {
                hook: hook.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    fn namespace(&self, nsp: &str) -> NamespaceLabels {
        let mut seen = socketlet::engine::sync::lock(&self.inner.namespaces);
        let known = seen.contains(nsp) || {
            seen.len() < MAX_NAMESPACE_LABELS && seen.insert(nsp.to_owned())
        };
        NamespaceLabels {
            namespace: if known {
                nsp.to_owned()
            } else {
                "other".into()
            },
        }
    }

    fn connection(&self, connection: &Connection, transport: TransportKind) -> ConnectionLabels {
        ConnectionLabels {
            transport: transport.as_str(),
            protocol: match connection.protocol() {
                socketlet::engine::EngineProtocol::V3 => "3",
                socketlet::engine::EngineProtocol::V4 => "4",
            },
        }
    }
}

impl Observer for Metrics {
    fn connection_opened(&self, connection: &Arc<Connection>) {
        self.inner.handshakes.inc();
        let labels = self.connection(connection, connection.transport());
        self.inner.connections.get_or_create(&labels).inc();
    }

    fn connection_upgraded(&self, connection: &Arc<Connection>) {
        self.inner.upgrades.inc();
        let from = self.connection(connection, TransportKind::Polling);
        let to = self.connection(connection, TransportKind::WebSocket);
        self.inner.connections.get_or_create(&from).dec();
        self.inner.connections.get_or_create(&to).inc();
    }

    fn connection_closed(&self, connection: &Arc<Connection>, reason: CloseReason) {
        let labels = self.connection(connection, connection.transport());
        self.inner.connections.get_or_create(&labels).dec();
        let reason = if reason == CloseReason::SlowClient {
            self.inner.slow_clients.inc();
            "slow client"
        } else {
            reason.as_str()
        };
        self.inner
            .closes
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    fn socket_connected(&self, socket: &Socket) {
        let labels = self.namespace(socket.ns().name());
        self.inner.sockets.get_or_create(&labels).inc();
    }

    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        let labels = self.namespace(socket.ns().name());
        self.inner.sockets.get_or_create(&labels).dec();
        self.inner
            .socket_disconnects
            .get_or_create(&ReasonLabels {
                reason: reason.as_str().to_owned(),
            })
            .inc();
    }

    fn event_received(&self, _socket: &Socket, _event: &str, _data: &Data, bytes: usize) {
        self.inner.packets_in.inc();
        self.inner.bytes_in.inc_by(bytes as u64);
    }

    fn ack_received(&self, _socket: &Socket, _data: &Data) {
        self.inner.packets_in.inc();
    }

    fn packet_sent(&self, _socket: &Socket, _packet: &Packet, bytes: usize) {
        self.inner.packets_out.inc();
        self.inner.bytes_out.inc_by(bytes as u64);
    }

    fn broadcast_sent(&self, _nsp: &str, _packet: &Packet, receivers: usize, bytes: usize) {
        self.inner.broadcasts.inc();
        self.inner.deliveries.inc_by(receivers as u64);
        self.inner.bytes_out.inc_by((bytes * receivers) as u64);
    }

    fn volatile_dropped(&self, _nsp: &str, count: usize) {
        self.inner.volatile_dropped.inc_by(count as u64);
    }

    fn ack_timed_out(&self, _socket: &Socket) {
        self.inner.ack_timeouts.inc();
    }
}
