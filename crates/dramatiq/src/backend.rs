//! The [`DramatiqBackend`]: jobs of [`socketlet_jobs`] as dramatiq messages, their ends read
//! from dramatiq's Redis results backend.

use crate::amqp::AmqpBroker;
use crate::config::{redact, Actor, BrokerKind, DramatiqConfig, DramatiqError};
use crate::message::{redis_queue_keys, Message};
use crate::results::{decode_result, result_key};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;
use socketlet_jobs::{BoxFuture, JobBackend, JobContext, JobId, JobPool, JobRequest, JobRunner};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
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
    async fn send_and_await(
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
            let next = now.checked_add(self.poll_interval).unwrap_or(give_up);
            tokio::time::sleep_until(next.min(give_up)).await;
        }
    }
}

enum Awaited {
    Failed(String),
    TimedOut,
}

impl JobRunner for Shared {
    fn knows(&self, kind: &str) -> bool {
        self.actors.contains_key(kind)
    }

    fn run<'a>(
        &'a self,
        job: &'a JobRequest,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(self.send_and_await(&job.kind, job.id(), input, &job.context))
    }
}

/// A [`JobBackend`] whose jobs Python dramatiq workers run; see the crate's documentation.
pub struct DramatiqBackend {
    /// The jobs in dramatiq (their results awaited), and those waiting for a place.
    pool: Arc<JobPool<Shared>>,
    broker_kind: BrokerKind,
}

impl fmt::Debug for DramatiqBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DramatiqBackend")
            .field("broker", &self.broker_kind)
            .field(
                "kinds",
                &self.pool.runner().actors.keys().collect::<Vec<_>>(),
            )
            .field("max_in_flight", &self.pool.max_in_flight())
            .field("in_flight", &self.pool.in_flight())
            .field("waiting", &self.pool.waiting())
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
        let shared = Shared {
            actors: config.actors,
            broker,
            results,
            results_namespace: config.results_namespace,
            results_prefix_keys: config.results_prefix_keys,
            poll_interval: config.poll_interval,
            result_timeout: config.result_timeout,
            enqueue_timeout: config.enqueue_timeout,
        };
        Ok(DramatiqBackend {
            pool: JobPool::new(
                config.max_in_flight,
                shared,
                Some(tokio::runtime::Handle::current()),
            ),
            broker_kind,
        })
    }

    /// The broker the messages go to.
    pub fn broker_kind(&self) -> BrokerKind {
        self.broker_kind
    }

    /// Jobs in dramatiq now, their results awaited.
    pub fn in_flight(&self) -> usize {
        self.pool.in_flight()
    }
}

impl JobBackend for DramatiqBackend {
    fn knows(&self, kind: &str) -> bool {
        self.pool.runner().knows(kind)
    }

    fn submit(&self, job: JobRequest) {
        self.pool.submit(job);
    }

    fn cancel(&self, _jobs: &[JobId]) {
        // Cancelled jobs leave the queue now; they were never sent, and never will be.
        self.pool.drop_cancelled();
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'static, ()> {
        // Results still arriving within the grace period are reported; then awaiting stops
        // (the workers go on with whatever they have: a message cannot be recalled).
        let drained = self.pool.shutdown(grace);
        let pool = self.pool.clone();
        Box::pin(async move {
            let left = drained.await;
            if left > 0 {
                tracing::warn!(
                    left,
                    "grace period over: no longer awaiting dramatiq's results"
                );
            }
            if let Broker::RabbitMq(amqp) = &pool.runner().broker {
                amqp.close().await;
            }
        })
    }
}
