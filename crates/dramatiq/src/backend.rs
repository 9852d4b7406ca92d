//! The [`DramatiqBackend`]: jobs of [`socketlet_jobs`] as dramatiq messages, their ends read
//! from dramatiq's Redis results backend.

use crate::amqp::AmqpBroker;
use crate::config::{redact, Actor, BrokerKind, DramatiqConfig, DramatiqError};
use crate::message::{redis_queue_keys, Message};
use crate::results::{decode_result, result_key};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;
use socketlet_jobs::{BoxFuture, JobBackend, JobContext, JobId, JobRequest};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

async fn redis_connection(url: &str) -> Result<ConnectionManager, DramatiqError> {
    let unreachable = |error: String| DramatiqError::Unreachable {
        url: redact(url),
        error,
    };
    let client = redis::Client::open(url).map_err(|e| unreachable(e.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| unreachable(e.to_string()))
}

/// Where messages go.
enum Broker {
    Redis {
        conn: ConnectionManager,
        namespace: String,
    },
    RabbitMq(Box<AmqpBroker>),
}

impl Broker {
    /// Enqueues `message` as dramatiq's `broker.enqueue(message, delay=...)` does.
    async fn enqueue(&self, message: &Message, delay: Option<Duration>) -> Result<(), String> {
        match self {
            Broker::Redis { conn, namespace } => {
                // dispatch.lua's "enqueue": HSET <ns>:<queue>.msgs <rid> <json>, then
                // RPUSH <ns>:<queue> <rid>; here in one MULTI, so a worker never sees the id
                // without its message. (The script also stamps the sender into
                // <ns>:__heartbeats__; only a consumer's stamp matters, and we consume nothing.)
                let (message, redis_id) = message.for_redis(delay);
                let (list, hash) = redis_queue_keys(namespace, &message.queue_name);
                let mut conn = conn.clone();
                redis::pipe()
                    .atomic()
                    .hset(hash, &redis_id, message.encode())
                    .ignore()
                    .rpush(list, &redis_id)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| format!("cannot enqueue on Redis: {e}"))
            }
            Broker::RabbitMq(amqp) => amqp.publish(&message.for_rabbitmq(delay)).await,
        }
    }
}

/// What every job task shares.
struct Shared {
    actors: HashMap<String, Actor>,
    broker: Broker,
    results: ConnectionManager,
    results_namespace: String,
    results_prefix_keys: bool,
    poll_interval: Duration,
    result_timeout: Duration,
    enqueue_timeout: Duration,
}

impl Shared {
    /// Sends the job's message and awaits its result.
    async fn run(
        &self,
        kind: &str,
        id: &JobId,
        input: Value,
        ctx: &JobContext,
    ) -> Result<Value, String> {
        let actor = self
            .actors
            .get(kind)
            .ok_or_else(|| format!("no job of kind {kind:?}"))?;
        let (message, delay) = actor.message(id, input)?;
        match tokio::time::timeout(self.enqueue_timeout, self.broker.enqueue(&message, delay)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(format!(
                    "cannot enqueue: the broker did not answer within {} s",
                    self.enqueue_timeout.as_secs_f64()
                ))
            }
        }
        tracing::debug!(job = %id, message_id = %message.message_id, queue = %message.queue_name, actor = %message.actor_name, "sent to dramatiq");
        ctx.progress(
            0.0,
            format!(
                "sent to dramatiq: {} on queue {}, message {}",
                message.actor_name, message.queue_name, message.message_id
            ),
        );
        let key = result_key(
            &self.results_namespace,
            &message.queue_name,
            &message.actor_name,
            &message.message_id,
            self.results_prefix_keys,
        );
        let wait = self
            .result_timeout
            .saturating_add(delay.unwrap_or_default());
        self.await_result(&key, wait).await.map_err(|e| match e {
            Awaited::Failed(why) => why,
            Awaited::TimedOut => format!(
                "no result from dramatiq within {} s (message {}): is a worker running actor {:?} \
                 on queue {:?}, with store_results=True?",
                wait.as_secs_f64(),
                message.message_id,
                message.actor_name,
                message.queue_name
            ),
        })
    }

    /// Looks for the result under `key` every poll interval, up to `wait`. Redis errors (Redis
    /// restarting, say) are logged and the polling goes on.
    async fn await_result(&self, key: &str, wait: Duration) -> Result<Value, Awaited> {
        let now = Instant::now();
        // A timeout past what a clock can hold is as good as none: thirty years.
        let give_up = now
            .checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        let mut conn = self.results.clone();
        let mut warned = false;
        loop {
            let read: Result<Option<Vec<u8>>, _> = redis::cmd("LINDEX")
                .arg(key)
                .arg(0)
                .query_async(&mut conn)
                .await;
            match read {
                Ok(Some(data)) => return decode_result(&data).map_err(Awaited::Failed),
                Ok(None) => {}
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(
                        key,
                        "cannot read dramatiq's results from Redis (will go on trying): {e}"
                    );
                }
                Err(e) => tracing::debug!(key, "cannot read dramatiq's results: {e}"),
            }
            let now = Instant::now();
            if now >= give_up {
                return Err(Awaited::TimedOut);
            }
            tokio::time::sleep_until((now + self.poll_interval).min(give_up)).await;
        }
    }
}

enum Awaited {
    Failed(String),
    TimedOut,
}

/// The jobs waiting for a place in flight, and the tasks of those in flight.
struct Pool {
    max_in_flight: usize,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<JobRequest>,
    in_flight: usize,
    closing: bool,
    tasks: JoinSet<()>,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends queued jobs while there is room in flight.
    fn pump(pool: &Arc<Pool>, state: &mut PoolState) {
        while state.tasks.try_join_next().is_some() {}
        if state.closing {
            return;
        }
        while state.in_flight < pool.max_in_flight {
            let Some(mut job) = state.queue.pop_front() else {
                break;
            };
            // The point of no return: a job cancelled before this is never sent.
            if !job.start() {
                continue;
            }
            state.in_flight += 1;
            let slot_pool = pool.clone();
            let shared = pool.shared.clone();
            state.tasks.spawn_on(
                async move {
                    // Made here, not before the spawn: a task dropped unpolled (its runtime shut
                    // down) must not take the pool's lock, which the spawn holds.
                    let _slot = Slot(slot_pool);
                    let input = std::mem::take(&mut job.input);
                    let result = shared.run(&job.kind, job.id(), input, &job.context).await;
                    job.finish(result);
                },
                &pool.runtime,
            );
        }
    }
}

/// A place in flight, given back (and the next job sent) when its task ends or is aborted.
struct Slot(Arc<Pool>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        Pool::pump(&self.0, &mut state);
    }
}

/// A [`JobBackend`] whose jobs Python dramatiq workers run; see the crate's documentation.
pub struct DramatiqBackend {
    pool: Arc<Pool>,
    broker_kind: BrokerKind,
}

impl fmt::Debug for DramatiqBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.pool.lock();
        f.debug_struct("DramatiqBackend")
            .field("broker", &self.broker_kind)
            .field("kinds", &self.pool.shared.actors.keys().collect::<Vec<_>>())
            .field("max_in_flight", &self.pool.max_in_flight)
            .field("in_flight", &state.in_flight)
            .field("waiting", &state.queue.len())
            .finish()
    }
}

impl DramatiqBackend {
    /// Connects to the broker and the results backend (and on RabbitMQ declares the actors'
    /// queues as dramatiq does). Call it inside the tokio runtime the jobs are to run on.
    pub async fn connect(config: DramatiqConfig) -> Result<DramatiqBackend, DramatiqError> {
        let broker_kind = BrokerKind::of(&config.broker_url)
            .ok_or_else(|| DramatiqError::UnsupportedUrl(redact(&config.broker_url)))?;
        if BrokerKind::of(&config.results_url) != Some(BrokerKind::Redis) {
            return Err(DramatiqError::Unreachable {
                url: redact(&config.results_url),
                error: "the results backend is a Redis (redis://...)".into(),
            });
        }
        let results = redis_connection(&config.results_url).await?;
        let broker = match broker_kind {
            BrokerKind::Redis if config.broker_url == config.results_url => Broker::Redis {
                conn: results.clone(),
                namespace: config.redis_namespace.clone(),
            },
            BrokerKind::Redis => Broker::Redis {
                conn: redis_connection(&config.broker_url).await?,
                namespace: config.redis_namespace.clone(),
            },
            BrokerKind::RabbitMq => {
                let mut queues: Vec<String> = config
                    .actors
                    .values()
                    .map(|a| crate::message::q_name(a.queue_name()).to_owned())
                    .collect();
                queues.sort();
                queues.dedup();
                let amqp = AmqpBroker::connect(&config.broker_url, config.amqp.clone(), queues)
                    .await
                    .map_err(|error| DramatiqError::Unreachable {
                        url: redact(&config.broker_url),
                        error,
                    })?;
                Broker::RabbitMq(Box::new(amqp))
            }
        };
        let shared = Arc::new(Shared {
            actors: config.actors,
            broker,
            results,
            results_namespace: config.results_namespace,
            results_prefix_keys: config.results_prefix_keys,
            poll_interval: config.poll_interval,
            result_timeout: config.result_timeout,
            enqueue_timeout: config.enqueue_timeout,
        });
        Ok(DramatiqBackend {
            pool: Arc::new(Pool {
                max_in_flight: config.max_in_flight,
                shared,
                runtime: tokio::runtime::Handle::current(),
                state: Mutex::default(),
            }),
            broker_kind,
        })
    }

    /// The broker the messages go to.
    pub fn broker_kind(&self) -> BrokerKind {
        self.broker_kind
    }

    /// Jobs in dramatiq now, their results awaited.
    pub fn in_flight(&self) -> usize {
        self.pool.lock().in_flight
    }
}

impl JobBackend for DramatiqBackend {
    fn knows(&self, kind: &str) -> bool {
        self.pool.shared.actors.contains_key(kind)
    }

    fn submit(&self, job: JobRequest) {
        if !self.knows(&job.kind) {
            let error = format!("no job of kind {:?}", job.kind);
            return job.finish(Err(error));
        }
        let mut state = self.pool.lock();
        if state.closing {
            drop(state);
            return job.finish(Err("jobs are shutting down".into()));
        }
        state.queue.push_back(job);
        Pool::pump(&self.pool, &mut state);
    }

    fn cancel(&self, _jobs: &[JobId]) {
        // Cancelled jobs leave the queue now; they were never sent, and never will be.
        self.pool.lock().queue.retain(|job| !job.is_cancelled());
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()> {
        let (queued, mut tasks) = {
            let mut state = self.pool.lock();
            state.closing = true;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.tasks),
            )
        };
        for job in queued {
            job.finish(Err("jobs are shutting down".into()));
        }
        let shared = self.pool.shared.clone();
        Box::pin(async move {
            // Results still arriving within the grace period are reported; then awaiting stops
            // (the workers go on with whatever they have: a message cannot be recalled).
            let drained =
                tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                    .await;
            if drained.is_err() {
                tracing::warn!(
                    left = tasks.len(),
                    "grace period over: no longer awaiting dramatiq's results"
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
            }
            if let Broker::RabbitMq(amqp) = &shared.broker {
                amqp.close().await;
            }
        })
    }
}
