//! The backend against REAL dramatiq workers: the `dramatiq` command of dramatiq 2.2.1 (from
//! PyPI, in the venv `tests/python/setup.sh` makes) running `tests/python/workers.py`, on a
//! `redis-server` each test starts on a free port (Redis broker and Redis results backend), and
//! on the machine's RabbitMQ (results still in Redis).
//!
//! Skipped, saying why, without the venv or redis-server, unless `SOCKETLET_REQUIRE_DRAMATIQ`
//! is set (scripts/test.sh makes the venv and sets it); the RabbitMQ test skips when no RabbitMQ
//! is reachable.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use socketlet_dramatiq::message::Message;
use socketlet_dramatiq::{Actor, Call, DramatiqBackend, DramatiqConfig};
use socketlet_jobs::{JobEvent, JobEventKind, Jobs, Outcome};
use std::collections::HashMap;
use std::time::Duration;
use support::{RedisServer, Workers};
use tokio::time::Instant;

/// The actors of workers.py, each kind of job named after its actor, on `queue`.
fn config(broker: &str, results: &str, queue: &str) -> DramatiqConfig {
    let mut config = DramatiqConfig::new(broker, results)
        .with_poll_interval(Duration::from_millis(50))
        .with_result_timeout(Duration::from_secs(60));
    for actor in ["add", "nap", "explode", "flaky", "record"] {
        config = config.with_actor(actor, Actor::new(queue, actor));
    }
    config
}

/// A redis-server (broker and results), real dramatiq workers on its queue `default` with
/// `processes` processes of `threads` threads each, and jobs on the backend that
/// `configure(config(...))` configures. `None` when the test skips (no venv, no redis-server).
async fn with_workers(
    processes: u32,
    threads: u32,
    configure: impl FnOnce(DramatiqConfig) -> DramatiqConfig,
) -> Option<(RedisServer, Workers, Jobs)> {
    let venv = support::venv()?;
    let redis = RedisServer::start()?;
    let workers = Workers::start(&venv, &redis.url, &redis.url, "default", processes, threads);
    let config = configure(config(&redis.url, &redis.url, "default"));
    let jobs = Jobs::new(DramatiqBackend::connect(config).await.unwrap());
    Some((redis, workers, jobs))
}

/// Keeps track of what was in flight (started, not ended) at once, and when each job ended.
#[derive(Default)]
struct Watch {
    in_flight: usize,
    peak: usize,
    ended_at: HashMap<String, Duration>,
    kinds: HashMap<String, Vec<String>>,
}

impl Watch {
    fn see(&mut self, t0: Instant, event: &JobEvent) {
        let name = match &event.kind {
            JobEventKind::Started => {
                self.in_flight += 1;
                self.peak = self.peak.max(self.in_flight);
                "started"
            }
            JobEventKind::Progress { .. } => "progress",
            JobEventKind::Done { .. } | JobEventKind::Failed { .. } => {
                self.in_flight -= 1;
                self.ended_at.insert(event.job.0.clone(), t0.elapsed());
                if matches!(event.kind, JobEventKind::Done { .. }) {
                    "done"
                } else {
                    "failed"
                }
            }
            JobEventKind::Cancelled => "cancelled",
        };
        self.kinds
            .entry(event.job.0.clone())
            .or_default()
            .push(name.to_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_completes_with_the_workers_results_and_bounded_in_flight() {
    let Some((redis, _workers, jobs)) = with_workers(2, 2, |c| c.with_max_in_flight(3)).await
    else {
        return;
    };
    let mut inputs: Vec<(&str, Value)> = (0..6).map(|i| ("add", json!([i, i * 10]))).collect();
    inputs.push(("nap", json!({"seconds": 0.5, "tag": "a"})));
    inputs.push(("nap", json!([0.5, "b"])));
    let t0 = Instant::now();
    let batch = jobs.submit_batch(inputs).unwrap();
    let mut watch = Watch::default();
    let results = batch
        .wait(t0 + Duration::from_secs(30), |e| watch.see(t0, e))
        .await;
    let took = t0.elapsed();
    for (i, (_, outcome)) in results.iter().take(6).enumerate() {
        assert_eq!(*outcome, Outcome::Done(json!(i * 11)), "add #{i}");
    }
    for (tag, (_, outcome)) in ["a", "b"].iter().zip(&results[6..]) {
        match outcome {
            Outcome::Done(v) => {
                assert_eq!(v["tag"], *tag);
                assert_eq!(v["slept"], 0.5);
            }
            other => panic!("nap {tag}: {other:?}"),
        }
    }
    assert_eq!(watch.peak, 3, "at most 3 in dramatiq at once");
    for (job, kinds) in &watch.kinds {
        assert_eq!(kinds, &["started", "progress", "done"], "{job}");
    }
    // Nothing is left in the broker's queue, and every result is where dramatiq put it.
    let left: i64 = redis.query(redis::cmd("LLEN").arg("dramatiq:default"));
    assert_eq!(left, 0);
    eprintln!("8 jobs through 2 dramatiq processes in {took:?}");
    jobs.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_reported_when_dramatiq_records_it_with_the_exception() {
    let Some((redis, _workers, jobs)) = with_workers(1, 4, |c| c).await else {
        return;
    };
    let t0 = Instant::now();
    let batch = jobs
        .submit_batch([
            ("nap", json!([4, "slow"])),
            ("explode", json!(["disk full ☃"])),
            ("flaky", json!(["once, twice"])),
        ])
        .unwrap();
    let ids = batch.ids().to_vec();
    let mut watch = Watch::default();
    let results = batch
        .wait(t0 + Duration::from_secs(30), |e| watch.see(t0, e))
        .await;
    assert_eq!(
        results[1].1,
        Outcome::Failed("actor raised ValueError: disk full ☃".into())
    );
    assert_eq!(
        results[2].1,
        Outcome::Failed("actor raised RuntimeError: once, twice".into())
    );
    assert!(matches!(&results[0].1, Outcome::Done(v) if v["tag"] == "slow"));
    // Reported as soon as dramatiq stored it: long before the slow job ended.
    let explode_at = watch.ended_at[&ids[1].0];
    let slow_at = watch.ended_at[&ids[0].0];
    assert!(
        explode_at < Duration::from_secs(3) && explode_at < slow_at,
        "failure at {explode_at:?}, slow job at {slow_at:?}"
    );
    // `flaky` has max_retries=1: dramatiq ran it twice, and stored the failure only then.
    let tries = redis
        .marks()
        .iter()
        .filter(|m| m["what"] == "flaky")
        .count();
    assert_eq!(tries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_waits_on_the_delay_queue_and_runs_after_its_delay() {
    let delays = |config: DramatiqConfig| {
        config
            .with_actor(
                "later",
                Actor::new("default", "record").with_delay(Duration::from_millis(2500)),
            )
            .with_actor(
                "per_job_delay",
                Actor::new("default", "record").with_call(|_id, input| {
                    let ms = input["delay_ms"].as_u64().unwrap_or(0);
                    Ok(Call::args(vec![input["tag"].clone()]).delayed(Duration::from_millis(ms)))
                }),
            )
    };
    let Some((redis, _workers, jobs)) = with_workers(1, 2, delays).await else {
        return;
    };
    let sent_ms = socketlet_dramatiq::message::now_millis();
    let t0 = Instant::now();
    let batch = jobs
        .submit_batch([
            ("later", json!(["late"])),
            (
                "per_job_delay",
                json!({"tag": "later still", "delay_ms": 3000}),
            ),
            ("record", json!(["now"])),
        ])
        .unwrap();
    // Meanwhile the delayed messages wait on default.DQ, each with its eta.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delayed: HashMap<String, String> =
        redis.query(redis::cmd("HGETALL").arg("dramatiq:default.DQ.msgs"));
    assert_eq!(delayed.len(), 2, "{delayed:?}");
    for raw in delayed.values() {
        let m = Message::decode(raw.as_bytes()).unwrap();
        assert_eq!(m.queue_name, "default.DQ");
        let eta = m.options["eta"].as_u64().unwrap();
        assert!(eta >= m.message_timestamp + 2500, "{raw}");
    }
    let results = batch.wait(t0 + Duration::from_secs(30), |_| {}).await;
    let ran_at = |o: &Outcome| match o {
        Outcome::Done(v) => v["at_ms"].as_u64().unwrap() - sent_ms,
        other => panic!("{other:?}"),
    };
    let (late, later, now) = (
        ran_at(&results[0].1),
        ran_at(&results[1].1),
        ran_at(&results[2].1),
    );
    assert!(
        late >= 2500,
        "ran {late} ms after it was sent, delay 2500 ms"
    );
    assert!(
        later >= 3000,
        "ran {later} ms after it was sent, delay 3000 ms"
    );
    assert!(now < 2500, "the undelayed one ran at once ({now} ms)");
    assert!(t0.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_before_it_is_enqueued_never_runs() {
    // One in flight: the second and third jobs wait here, unsent, until the first ends.
    let Some((redis, _workers, jobs)) = with_workers(1, 2, |c| c.with_max_in_flight(1)).await
    else {
        return;
    };
    let group = jobs.group(8);
    let t0 = Instant::now();
    let batch = group
        .submit_batch([
            ("nap", json!([1.0, "first"])),
            ("record", json!(["cancelled"])),
            ("record", json!(["also cancelled"])),
        ])
        .unwrap();
    assert_eq!(batch.cancel_queued(), 2);
    let results = batch.wait(t0 + Duration::from_secs(30), |_| {}).await;
    assert!(matches!(&results[0].1, Outcome::Done(v) if v["tag"] == "first"));
    assert_eq!(results[1].1, Outcome::Cancelled);
    assert_eq!(results[2].1, Outcome::Cancelled);
    // A job after them is sent (the place in flight went past the cancelled ones) ...
    let after = group.submit_batch([("record", json!(["after"]))]).unwrap();
    let results = after.wait(t0 + Duration::from_secs(30), |_| {}).await;
    assert!(matches!(&results[0].1, Outcome::Done(v) if v["tag"] == "after"));
    // ... and the cancelled ones never reached dramatiq, nor ran.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ran: Vec<Value> = redis.marks().iter().map(|m| m["tag"].clone()).collect();
    assert_eq!(ran, [json!("after")]);
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg("dramatiq:*"));
    for key in keys.iter().filter(|k| k.ends_with(".msgs")) {
        let messages: Vec<String> = redis.query(redis::cmd("HVALS").arg(key));
        assert!(
            messages.iter().all(|m| !m.contains("cancelled")),
            "{key}: {messages:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_shorter_than_the_work_reports_running_jobs_and_shutdown_stops_awaiting() {
    let Some((_redis, _workers, jobs)) = with_workers(1, 2, |c| c).await else {
        return;
    };
    let t0 = Instant::now();
    let batch = jobs
        .submit_batch([("add", json!([1, 2])), ("nap", json!([6, "slow"]))])
        .unwrap();
    let results = batch.wait(t0 + Duration::from_secs(2), |_| {}).await;
    let took = t0.elapsed();
    assert!(
        (Duration::from_secs(2)..Duration::from_millis(2500)).contains(&took),
        "{took:?}"
    );
    assert_eq!(results[0].1, Outcome::Done(json!(3)));
    assert_eq!(results[1].1, Outcome::Running, "still in dramatiq");
    // Shutdown: the slow job's result is awaited for the grace period, then no longer.
    let t1 = Instant::now();
    jobs.shutdown(Duration::from_millis(500)).await;
    let took = t1.elapsed();
    assert!(
        (Duration::from_millis(500)..Duration::from_secs(2)).contains(&took),
        "{took:?}"
    );
    assert!(jobs.submit_batch([("add", json!([1, 1]))]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_no_worker_answers_fails_after_the_result_timeout() {
    // No workers at all: the message waits in the queue, and no result ever comes.
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let config = DramatiqConfig::new(&redis.url, &redis.url)
        .with_actor("ghost", Actor::new("default", "ghost"))
        .with_poll_interval(Duration::from_millis(50))
        .with_result_timeout(Duration::from_millis(800));
    let jobs = Jobs::new(DramatiqBackend::connect(config).await.unwrap());
    let t0 = Instant::now();
    let batch = jobs.submit_batch([("ghost", json!(["boo"]))]).unwrap();
    let results = batch.wait(t0 + Duration::from_secs(10), |_| {}).await;
    match &results[0].1 {
        Outcome::Failed(why) => assert!(
            why.starts_with("no result from dramatiq within 0.8 s") && why.contains("\"ghost\""),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The message itself is in the queue as dramatiq's broker keeps it.
    let ids: Vec<String> = redis.query(redis::cmd("LRANGE").arg("dramatiq:default").arg(0).arg(-1));
    assert_eq!(ids.len(), 1);
    let raw: String = redis.query(redis::cmd("HGET").arg("dramatiq:default.msgs").arg(&ids[0]));
    let m = Message::decode(raw.as_bytes()).unwrap();
    assert_eq!(
        (m.actor_name.as_str(), m.args.clone()),
        ("ghost", vec![json!("boo")])
    );
    assert_eq!(m.options["redis_message_id"], json!(ids[0]));
    // An unreachable broker or a URL of no broker is an error at once.
    let bad = DramatiqBackend::connect(DramatiqConfig::new("http://x", &redis.url)).await;
    assert!(bad.unwrap_err().to_string().contains("redis://"));
    let port = support::free_port();
    let gone = DramatiqBackend::connect(DramatiqConfig::new(
        format!("redis://127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}"),
    ))
    .await;
    assert!(gone.is_err());
}

/// RabbitMQ: the queues are declared as dramatiq declares them (the workers, which declare them
/// too, start fine afterwards), a message is published as dramatiq publishes it, and a real
/// dramatiq worker on the RabbitMQ broker runs it, results through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_messages_run_on_a_real_dramatiq_worker() {
    use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeleteOptions};
    let Some(venv) = support::venv() else { return };
    let Some(amqp) = support::rabbitmq_url() else {
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let queue = format!(
        "socketlet_test_{}",
        socketlet_dramatiq::message::uuid4().replace('-', "")[..12].to_owned()
    );
    let config = config(&amqp, &redis.url, &queue).with_actor(
        "later",
        Actor::new(queue.as_str(), "record").with_delay(Duration::from_millis(1500)),
    );
    let jobs = Jobs::new(DramatiqBackend::connect(config).await.unwrap());

    // Before any worker: the message as RabbitMQ holds it.
    let peek = jobs.submit_batch([("add", json!([20, 22]))]).unwrap();
    let conn = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap();
        if let Some(got) = got {
            break got;
        }
        assert!(Instant::now() < until, "the message never reached {queue}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let props = &delivery.delivery.properties;
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert_eq!(*props.priority(), None);
    assert_eq!(delivery.delivery.exchange.as_str(), "");
    assert_eq!(delivery.delivery.routing_key.as_str(), queue);
    let m = Message::decode(&delivery.delivery.data).unwrap();
    assert_eq!(
        (m.queue_name.as_str(), m.actor_name.as_str()),
        (queue.as_str(), "add")
    );
    assert!(
        m.options.is_empty(),
        "no redis_message_id on RabbitMQ: {:?}",
        m.options
    );
    delivery
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
        .unwrap();

    // A real worker on the RabbitMQ broker: it declares the same queues (a difference would
    // stop it with PRECONDITION_FAILED) and runs everything.
    let workers = Workers::start(&venv, &amqp, &redis.url, &queue, 1, 2);
    let t0 = Instant::now();
    let batch = jobs
        .submit_batch([
            ("record", json!(["via rabbitmq"])),
            ("explode", json!(["no such image"])),
            ("later", json!(["delayed via rabbitmq"])),
        ])
        .unwrap();
    let sent_ms = socketlet_dramatiq::message::now_millis();
    let results = batch.wait(t0 + Duration::from_secs(30), |_| {}).await;
    let peeked = peek.wait(t0 + Duration::from_secs(30), |_| {}).await;
    assert_eq!(peeked[0].1, Outcome::Done(json!(42)));
    assert!(
        matches!(&results[0].1, Outcome::Done(v) if v["tag"] == "via rabbitmq"),
        "{results:?}"
    );
    assert_eq!(
        results[1].1,
        Outcome::Failed("actor raised ValueError: no such image".into())
    );
    match &results[2].1 {
        Outcome::Done(v) => {
            assert_eq!(v["tag"], "delayed via rabbitmq");
            let late = v["at_ms"].as_u64().unwrap().saturating_sub(sent_ms);
            assert!(late >= 1400, "ran {late} ms after it was sent");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !workers
            .log()
            .iter()
            .any(|l| l.contains("PRECONDITION_FAILED")),
        "{:?}",
        workers.log()
    );
    drop(workers);
    jobs.shutdown(Duration::from_secs(1)).await;
    for name in [queue.clone(), format!("{queue}.DQ"), format!("{queue}.XQ")] {
        let _ = channel
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
}

/// A queue RabbitMQ has with other arguments is refused when the backend starts, naming it
/// (dramatiq's workers would fail the same way); with declaring off, a message for a queue that
/// does not exist fails its job at once instead of vanishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_queues_are_declared_as_dramatiq_does_or_not_at_all() {
    use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
    use socketlet_dramatiq::AmqpOptions;
    let Some(amqp) = support::rabbitmq_url() else {
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let unique = || {
        format!(
            "socketlet_test_{}",
            &socketlet_dramatiq::message::uuid4()[..8]
        )
    };
    let (declared_otherwise, missing) = (unique(), unique());
    let conn = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_declare(
            declared_otherwise.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let refused = DramatiqBackend::connect(
        DramatiqConfig::new(&amqp, &redis.url)
            .with_actor("x", Actor::new(declared_otherwise.as_str(), "record")),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains(&format!(
            "cannot declare queue \"{declared_otherwise}\" as dramatiq does"
        )) && refused.contains("PRECONDITION_FAILED")
            && refused.contains("amqp://guest:***@"),
        "{refused}"
    );

    let jobs = Jobs::new(
        DramatiqBackend::connect(
            DramatiqConfig::new(&amqp, &redis.url)
                .with_actor("x", Actor::new(missing.as_str(), "record"))
                .with_amqp(AmqpOptions {
                    declare: false,
                    ..AmqpOptions::default()
                }),
        )
        .await
        .unwrap(),
    );
    let t0 = Instant::now();
    let batch = jobs.submit_batch([("x", json!(["lost?"]))]).unwrap();
    let results = batch.wait(t0 + Duration::from_secs(10), |_| {}).await;
    match &results[0].1 {
        Outcome::Failed(why) => assert!(
            why.starts_with(&format!("RabbitMQ has no queue \"{missing}\"")),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
    let _ = channel
        .queue_delete(
            declared_otherwise.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await;
    let _ = conn.close(200, "done".into()).await;
}
