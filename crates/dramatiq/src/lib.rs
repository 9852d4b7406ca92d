//! A [`socketlet_jobs`] backend whose jobs unmodified Python [dramatiq] workers run.
//!
//! The story socketlet was born from sent one dramatiq message per VM and then blocked a
//! server thread on `message.get_result(block=True, timeout=...)`. With this crate a Rust server
//! submits the same messages through the [`Jobs`](socketlet_jobs::Jobs) API (batches under one
//! deadline, groups, cancellation, bounded queues) and awaits the results without blocking
//! anything; the workers are dramatiq's own `dramatiq` command and Python code, unchanged.
//!
//! ```no_run
//! use serde_json::json;
//! use socketlet_dramatiq::{Actor, Call, DramatiqBackend, DramatiqConfig};
//! use socketlet_jobs::{Jobs, Outcome};
//! use std::time::Duration;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Python side:  @dramatiq.actor(store_results=True, max_retries=0)
//! //               def open_vm_task(id, name, user_id): ...
//! let config = DramatiqConfig::new("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0")
//!     .with_actor(
//!         "open_vm",
//!         Actor::new("default", "open_vm_task").with_call(|job, input| {
//!             Ok(Call::args(vec![json!(job), input["name"].clone(), input["user_id"].clone()]))
//!         }),
//!     );
//! let jobs = Jobs::new(DramatiqBackend::connect(config).await?);
//! let batch = jobs.submit_batch([("open_vm", json!({"name": "web-1", "user_id": "alice"}))])?;
//! let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
//! for (job, outcome) in batch.wait(deadline, |_event| {}).await {
//!     match outcome {
//!         Outcome::Done(result) => println!("{job}: {result}"),
//!         Outcome::Failed(why) => println!("{job} failed: {why}"), // "actor raised ValueError: ..."
//!         other => println!("{job}: {other:?}"), // still running at the deadline, say
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # What the workers need
//!
//! The broker the messages go to (`RedisBroker` or `RabbitmqBroker`, chosen by the broker URL:
//! `redis://` or `amqp://`), the `Results` middleware on a `RedisBackend` (whatever the
//! broker), and actors with `store_results=True`: a job ends when its result is in Redis.
//! Namespaces, key form and RabbitMQ queue arguments are dramatiq's defaults unless
//! [`DramatiqConfig`] says otherwise. An actor's failure is stored only when its retries ran out
//! (20 by default, the first after 15 s or more): for failures to be reported when they happen,
//! give the actor `max_retries=0` (or a few, with a short `min_backoff`), or send the option
//! with [`Actor::with_option`]. A message for an actor no worker knows goes to the dead-letter
//! queue and never has a result: its job fails after the result timeout.
//!
//! # What the states of a job mean here
//!
//! - **queued**: waiting in this process for a place in flight
//!   ([`DramatiqConfig::with_max_in_flight`]); nothing was sent. Cancelling it (group close,
//!   [`Batch::cancel_queued`](socketlet_jobs::Batch::cancel_queued)) means it is never sent.
//! - **started**: taken out of that queue to be sent. dramatiq tells nobody when a worker picks a
//!   message up, so "started" means "handed to dramatiq": the message is being enqueued, and is
//!   queued or running among the workers. It can no longer be cancelled: a message on a broker
//!   cannot be recalled (dramatiq has no revoke). Once the broker took it, one progress event
//!   says so (`"sent to dramatiq: <actor> on queue <queue>, message <id>"`); an enqueue that
//!   fails fails the job at once.
//! - **done** / **failed**: the result, or the failure (`"actor raised <type>: <msg>"`, the
//!   message of dramatiq's `ResultFailure`), as soon as it is in Redis (within one poll
//!   interval). Also failed: a message that could not be enqueued, and a job with no result
//!   after [`DramatiqConfig::with_result_timeout`] (plus its delay).
//! - **progress**: dramatiq has no progress channel. An actor that wants to show progress emits
//!   it to the client itself, e.g. with python-socketio's `RedisManager` (write-only) against a
//!   socketlet cluster, or through socketlet's HTTP API (`socketlet-gateway`).
//!
//! A batch's deadline is the caller's ([`Batch::wait`](socketlet_jobs::Batch::wait)): jobs still
//! in dramatiq then are reported as running, and their results are still awaited here (until the
//! result timeout) so that the place in flight is given back when they end. At
//! [`shutdown`](socketlet_jobs::Jobs::shutdown) the queued jobs fail at once, results are awaited
//! during the grace period, then awaiting stops (the workers finish what they have).
//!
//! # How this crate is built
//!
//! - [`message`]: dramatiq's message, encoded byte for byte as dramatiq's `JSONEncoder` writes
//!   it (key order, compact separators, `ensure_ascii`, Python's float `repr`), and what each
//!   broker adds when it enqueues (`options.redis_message_id`; `<queue>.DQ` and `options.eta`
//!   for a delay). The tests compare with messages captured from dramatiq 2.2.1
//!   (`tests/fixtures/reference.json`, made by `tests/python/capture_reference.py`).
//! - [`results`]: the results key (md5 of `dramatiq-results:<queue>:<actor>:<message_id>`) and
//!   what a stored value means (a result, or a failure `{"__t": "dramatiq.results.Result",
//!   "exn": {...}}`).
//! - [`Actor`], [`Call`], [`DramatiqConfig`]: which actor a kind of job goes to, how its input
//!   becomes `args`/`kwargs`/options/delay, and where the workers are.
//! - `amqp` (RabbitMQ, with `lapin` on tokio) and the Redis broker in [`DramatiqBackend`]: on
//!   Redis, `HSET dramatiq:<queue>.msgs <rid> <json>` and `RPUSH dramatiq:<queue> <rid>` in one
//!   `MULTI` (what dramatiq's `dispatch.lua` does for `enqueue`); on RabbitMQ, a confirmed
//!   publish to the default exchange after declaring the queues exactly as dramatiq does.
//! - [`DramatiqBackend`]: a [`JobPool`](socketlet_jobs::JobPool) (a first-in first-out queue of
//!   jobs and at most `max_in_flight` tokio tasks), each task of which enqueues one message and then polls its result key with `LINDEX key 0`
//!   (dramatiq's own non-blocking read) on a shared, reconnecting, multiplexed Redis connection.
//!   Polling, rather than `BRPOPLPUSH`, keeps one connection for any number of jobs: a blocking
//!   read would hold a connection per awaited result. When a task ends, its place goes to the
//!   next job that was not cancelled.
//!
//! [dramatiq]: https://dramatiq.io

mod amqp;
mod backend;
mod config;
pub mod message;
pub mod results;

pub use amqp::AmqpOptions;
pub use backend::DramatiqBackend;
pub use config::{
    redact, Actor, BrokerKind, Call, DramatiqConfig, DramatiqError, DEFAULT_ENQUEUE_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_POLL_INTERVAL, DEFAULT_RESULT_TIMEOUT,
};
pub use message::Message;
