//! Metrics and health through [`OpsService`], with socketlet's in-process clients.
#![allow(clippy::unwrap_used)]

#[path = "../../socketlet/tests/common/mod.rs"]
mod common;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use socketlet::{Socket, SocketIo};
use socketlet_ops::{Health, Metrics, OpsService, MAX_NAMESPACE_LABELS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// GETs `path` through the ops service in front of `io`.
async fn ops_get(io: &SocketIo, health: &Health, metrics: Option<&Metrics>, path: &str) -> Reply {
    let mut service = OpsService::new(io.service(), health.clone());
    if let Some(metrics) = metrics {
        service = service.with_metrics(metrics.clone());
    }
    let req = Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    exchange(service, req).await
}

/// The value of the series `name` (with its labels, as written) in a scrape.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

fn echo_server() -> (SocketIo, Metrics) {
    let io = SocketIo::builder()
        .engine(|e| e.with_allowed_hosts(socketlet::AllowedHosts::Any))
        .build();
    let metrics = Metrics::new();
    io.observe(Arc::new(metrics.clone()));
    io.of("/").on_connect(|socket: Socket| async move {
        socket.on("echo", |socket: Socket, data: socketlet::Data| async move {
            let _ = socket.emit("echo", data);
        });
    });
    (io, metrics)
}

#[tokio::test(start_paused = true)]
async fn metrics_follow_connections_sockets_and_packets() {
    let (io, metrics) = echo_server();
    let health = Health::new();
    let client = Polling::open(&io).await;
    let (_, _) = client.connect(None).await;
    client.send(r#"42["echo","hello"]"#).await;
    assert_eq!(client.recv_one().await, r#"42["echo","hello"]"#);
    io.emit("news", "all").unwrap();
    assert_eq!(client.recv_one().await, r#"42["news","all"]"#);

    let res = ops_get(&io, &health, Some(&metrics), "/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let scrape = res.text();
    let at = |series: &str| value(scrape, series).unwrap_or_else(|| panic!("{series}: {scrape}"));
    assert_eq!(
        at(r#"socketlet_connections{transport="polling",protocol="4"}"#),
        1.0
    );
    assert_eq!(at("socketlet_handshakes_total"), 1.0);
    assert_eq!(at(r#"socketlet_sockets{namespace="/"}"#), 1.0);
    assert_eq!(at("socketlet_packets_received_total"), 1.0);
    // Bytes of the Socket.IO packet (Engine.IO's one-byte type is not counted).
    assert_eq!(
        at("socketlet_received_bytes_total"),
        r#"2["echo","hello"]"#.len() as f64
    );
    // The CONNECT answer and the echo went to the socket alone; the news was a broadcast.
    assert_eq!(at("socketlet_packets_sent_total"), 2.0);
    assert_eq!(at("socketlet_broadcasts_total"), 1.0);
    assert_eq!(at("socketlet_broadcast_deliveries_total"), 1.0);
    assert!(scrape.ends_with("# EOF\n"));

    // The client goes: the gauges come back down and the reason is counted.
    client.send("1").await;
    settle().await;
    let scrape = ops_get(&io, &health, Some(&metrics), "/metrics").await;
    let scrape = scrape.text();
    assert_eq!(
        value(
            scrape,
            r#"socketlet_connections{transport="polling",protocol="4"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(scrape, r#"socketlet_sockets{namespace="/"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(
            scrape,
            r#"socketlet_connection_closes_total{reason="transport close"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_moves_the_connection_between_transports() {
    let (io, metrics) = echo_server();
    let (client, _) = Polling::handshake(&io, 3).await;
    let mut ws = ws_connect(
        &io,
        &format!("EIO=3&transport=websocket&sid={}", client.sid),
    )
    .await
    .unwrap();
    ws_send_text(&mut ws, "2probe").await;
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    ws_send_text(&mut ws, "5").await;
    settle().await;
    let scrape = metrics.render();
    assert_eq!(
        value(
            &scrape,
            r#"socketlet_connections{transport="polling",protocol="3"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &scrape,
            r#"socketlet_connections{transport="websocket",protocol="3"}"#
        ),
        Some(1.0)
    );
    assert_eq!(value(&scrape, "socketlet_upgrades_total"), Some(1.0));
}

#[tokio::test(start_paused = true)]
async fn namespace_labels_are_capped() {
    let io = SocketIo::builder()
        .engine(|e| e.with_allowed_hosts(socketlet::AllowedHosts::Any))
        .build();
    let metrics = Metrics::new();
    io.observe(Arc::new(metrics.clone()));
    io.dynamic(|_name: &str| true);
    let client = Polling::open(&io).await;
    for n in 0..MAX_NAMESPACE_LABELS + 5 {
        client.send(&format!("40/n{n},")).await;
        let answer = client.recv_one().await;
        assert!(answer.starts_with(&format!("40/n{n},")), "{answer}");
    }
    let scrape = metrics.render();
    let named = scrape
        .lines()
        .filter(|l| l.starts_with("socketlet_sockets{"))
        .count();
    assert_eq!(named, MAX_NAMESPACE_LABELS + 1, "{scrape}");
    assert_eq!(
        value(&scrape, r#"socketlet_sockets{namespace="other"}"#),
        Some(5.0)
    );
}

#[tokio::test(start_paused = true)]
async fn gauges_read_at_scrape_time_and_hook_timings() {
    let metrics = Metrics::new();
    let depth = Arc::new(std::sync::atomic::AtomicI64::new(3));
    let read = depth.clone();
    metrics.gauge_fn("jobs_queued", "Jobs waiting", move || {
        read.load(Ordering::Relaxed)
    });
    assert_eq!(value(&metrics.render(), "socketlet_jobs_queued"), Some(3.0));
    depth.store(7, Ordering::Relaxed);
    assert_eq!(value(&metrics.render(), "socketlet_jobs_queued"), Some(7.0));
    metrics.counter_fn("jobs_done", "Jobs done", || 12);
    let scrape = metrics.render();
    assert_eq!(value(&scrape, "socketlet_jobs_done_total"), Some(12.0));
    assert!(
        scrape.contains("# TYPE socketlet_jobs_done counter"),
        "{scrape}"
    );

    metrics.hook_called("connect", "ok", std::time::Duration::from_millis(3));
    metrics.hook_called("connect", "timeout", std::time::Duration::from_secs(5));
    let scrape = metrics.render();
    assert_eq!(
        value(
            &scrape,
            r#"socketlet_hook_requests_total{hook="connect",outcome="timeout"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &scrape,
            r#"socketlet_hook_duration_seconds_count{hook="connect"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &scrape,
            r#"socketlet_hook_duration_seconds_bucket{le="0.005",hook="connect"}"#
        )
        .or_else(|| value(
            &scrape,
            r#"socketlet_hook_duration_seconds_bucket{hook="connect",le="0.005"}"#
        )),
        Some(1.0),
        "{scrape}"
    );
}

#[tokio::test(start_paused = true)]
async fn health_is_live_ready_until_a_check_fails_or_the_server_drains() {
    let (io, _) = echo_server();
    let health = Health::new();
    let redis_up = Arc::new(AtomicBool::new(true));
    let up = redis_up.clone();
    health.check("redis", move || {
        let up = up.load(Ordering::Relaxed);
        async move {
            if up {
                Ok(())
            } else {
                Err("connection refused".into())
            }
        }
    });
    let live = ops_get(&io, &health, None, "/health/live").await;
    assert_eq!((live.status, live.text()), (StatusCode::OK, "ok\n"));
    let ready = ops_get(&io, &health, None, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK);

    redis_up.store(false, Ordering::Relaxed);
    let ready = ops_get(&io, &health, None, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text(), "not ready: redis: connection refused\n");

    // A check that never answers fails after its timeout.
    let stuck = Health::new();
    stuck.check("stuck", std::future::pending::<Result<(), String>>);
    let ready = ops_get(&io, &stuck, None, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.text().contains("stuck: no answer"),
        "{}",
        ready.text()
    );

    redis_up.store(true, Ordering::Relaxed);
    health.drain();
    let ready = ops_get(&io, &health, None, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text(), "not ready: shutting down\n");
    // Without metrics, /metrics is the inner service's (here: not found); Socket.IO still works.
    let res = ops_get(&io, &health, None, "/metrics").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let handshake = ops_get(&io, &health, None, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(handshake.status, StatusCode::OK);
}
