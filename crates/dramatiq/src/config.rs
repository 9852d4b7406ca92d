//! What the jobs become and where they go: [`Actor`], [`Call`], [`DramatiqConfig`].

use crate::amqp::AmqpOptions;
use crate::message::Message;
use crate::results::DEFAULT_NAMESPACE;
use serde_json::{Map, Value};
use socketlet_jobs::JobId;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What one job becomes: the actor's positional and keyword arguments, extra message options,
/// and a delay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    /// Positional arguments (`args`).
    pub args: Vec<Value>,
    /// Keyword arguments (`kwargs`).
    pub kwargs: Map<String, Value>,
    /// Message options added after the actor's ([`Actor::with_option`]), e.g.
    /// `broker_priority`.
    pub options: Map<String, Value>,
    /// Run no sooner than this after it is enqueued (dramatiq's `delay`: the message waits on
    /// `<queue>.DQ` with `options.eta`). Overrides [`Actor::with_delay`].
    pub delay: Option<Duration>,
}

impl Call {
    /// A call with these positional arguments.
    pub fn args(args: Vec<Value>) -> Call {
        Call {
            args,
            ..Call::default()
        }
    }

    /// A call with these keyword arguments.
    pub fn kwargs(kwargs: Map<String, Value>) -> Call {
        Call {
            kwargs,
            ..Call::default()
        }
    }

    /// The same call, delayed by `delay`.
    pub fn delayed(mut self, delay: Duration) -> Call {
        self.delay = Some(delay);
        self
    }

    /// The same call with one more message option.
    pub fn option(mut self, key: impl Into<String>, value: Value) -> Call {
        self.options.insert(key.into(), value);
        self
    }

    /// The default mapping of a job's input: a JSON array is the positional arguments, an
    /// object the keyword arguments, `null` no argument, anything else the one positional
    /// argument.
    pub fn from_input(input: Value) -> Call {
        match input {
            Value::Array(args) => Call::args(args),
            Value::Object(kwargs) => Call::kwargs(kwargs),
            Value::Null => Call::default(),
            other => Call::args(vec![other]),
        }
    }
}

type MakeCall = Arc<dyn Fn(&JobId, Value) -> Result<Call, String> + Send + Sync>;

/// A dramatiq actor a kind of job goes to: its queue, its name, the options of its messages,
/// and how a job's input becomes its arguments.
#[derive(Clone)]
pub struct Actor {
    queue_name: String,
    actor_name: String,
    options: Map<String, Value>,
    delay: Option<Duration>,
    make_call: MakeCall,
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor")
            .field("queue_name", &self.queue_name)
            .field("actor_name", &self.actor_name)
            .field("options", &self.options)
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

impl Actor {
    /// The actor `actor_name` (the Python function's name unless its `@dramatiq.actor` says
    /// `actor_name=`) on `queue_name` (dramatiq's default queue is `default`). A job's input
    /// becomes its arguments by [`Call::from_input`] unless [`Actor::with_call`] says otherwise.
    ///
    /// The actor must store its results (`@dramatiq.actor(store_results=True)`, with the
    /// `Results` middleware on dramatiq's `RedisBackend`), or the jobs never end before
    /// [`DramatiqConfig::with_result_timeout`].
    pub fn new(queue_name: impl Into<String>, actor_name: impl Into<String>) -> Actor {
        Actor {
            queue_name: queue_name.into(),
            actor_name: actor_name.into(),
            options: Map::new(),
            delay: None,
            make_call: Arc::new(|_id, input| Ok(Call::from_input(input))),
        }
    }

    /// How a job (its id and input) becomes a call of the actor; an error fails the job
    /// without sending anything.
    pub fn with_call<F>(mut self, make_call: F) -> Actor
    where
        F: Fn(&JobId, Value) -> Result<Call, String> + Send + Sync + 'static,
    {
        self.make_call = Arc::new(make_call);
        self
    }

    /// Adds an option to every message (as `actor.send_with_options(key=value)`), e.g.
    /// `max_retries` 0 so that a failure is recorded, and reported, at once.
    pub fn with_option(mut self, key: impl Into<String>, value: Value) -> Actor {
        self.options.insert(key.into(), value);
        self
    }

    /// Delays every message by `delay` (dramatiq's `send_with_options(delay=...)`).
    pub fn with_delay(mut self, delay: Duration) -> Actor {
        self.delay = Some(delay);
        self
    }

    /// The actor's queue.
    pub fn queue_name(&self) -> &str {
        &self.queue_name
    }

    /// The actor's name.
    pub fn actor_name(&self) -> &str {
        &self.actor_name
    }

    /// The message a job becomes (not yet enqueued: no `redis_message_id` nor `eta`), and its
    /// delay.
    pub fn message(
        &self,
        job: &JobId,
        input: Value,
    ) -> Result<(Message, Option<Duration>), String> {
        let call = (self.make_call)(job, input)?;
        let mut options = self.options.clone();
        options.extend(call.options);
        let message = Message::new(
            self.queue_name.clone(),
            self.actor_name.clone(),
            call.args,
            call.kwargs,
            options,
        );
        Ok((message, call.delay.or(self.delay)))
    }
}

/// Default of [`DramatiqConfig::with_max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default of [`DramatiqConfig::with_poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Default of [`DramatiqConfig::with_result_timeout`]: dramatiq's default result TTL (a result
/// not read by then has expired anyway).
pub const DEFAULT_RESULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default of [`DramatiqConfig::with_enqueue_timeout`].
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the workers are and what the jobs become.
#[derive(Debug, Clone)]
pub struct DramatiqConfig {
    pub(crate) broker_url: String,
    pub(crate) results_url: String,
    pub(crate) actors: HashMap<String, Actor>,
    pub(crate) max_in_flight: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) result_timeout: Duration,
    pub(crate) enqueue_timeout: Duration,
    pub(crate) redis_namespace: String,
    pub(crate) results_namespace: String,
    pub(crate) results_prefix_keys: bool,
    pub(crate) amqp: AmqpOptions,
}

impl DramatiqConfig {
    /// Messages go to the broker at `broker_url`: `redis://` (also `rediss://`, `unix://`,
    /// `redis+unix://`) for dramatiq's `RedisBroker`, `amqp://` for its `RabbitmqBroker`.
    /// Results are read from the Redis at `results_url` (dramatiq's `RedisBackend`; it may be
    /// the broker's Redis).
    pub fn new(broker_url: impl Into<String>, results_url: impl Into<String>) -> DramatiqConfig {
        DramatiqConfig {
            broker_url: broker_url.into(),
            results_url: results_url.into(),
            actors: HashMap::new(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            result_timeout: DEFAULT_RESULT_TIMEOUT,
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
            redis_namespace: "dramatiq".into(),
            results_namespace: DEFAULT_NAMESPACE.into(),
            results_prefix_keys: false,
            amqp: AmqpOptions::default(),
        }
    }

    /// Jobs of `kind` go to `actor`.
    pub fn with_actor(mut self, kind: impl Into<String>, actor: Actor) -> DramatiqConfig {
        self.actors.insert(kind.into(), actor);
        self
    }

    /// How many jobs may be in dramatiq at once, their results awaited (at least 1; default
    /// [`DEFAULT_MAX_IN_FLIGHT`]). Past it, jobs wait here, in order, reported as queued, and
    /// may still be cancelled.
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> DramatiqConfig {
        self.max_in_flight = max_in_flight.max(1);
        self
    }

    /// How often a result is looked for (`LINDEX`; default [`DEFAULT_POLL_INTERVAL`]): the
    /// longest a result, or a failure, waits in Redis before it is reported.
    pub fn with_poll_interval(mut self, interval: Duration) -> DramatiqConfig {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long after its enqueue (and its delay) a job's result is awaited at most (default
    /// [`DEFAULT_RESULT_TIMEOUT`]); then the job fails ("no result from dramatiq"): no worker
    /// ran it, the actor stores no result, or its retries are still going.
    pub fn with_result_timeout(mut self, timeout: Duration) -> DramatiqConfig {
        self.result_timeout = timeout;
        self
    }

    /// How long enqueueing one message may take (default [`DEFAULT_ENQUEUE_TIMEOUT`]); then the
    /// job fails (though a broker that answers late may still have taken the message).
    pub fn with_enqueue_timeout(mut self, timeout: Duration) -> DramatiqConfig {
        self.enqueue_timeout = timeout;
        self
    }

    /// The Redis broker's key prefix, as the workers' `RedisBroker(namespace=...)` (default
    /// `dramatiq`).
    pub fn with_redis_namespace(mut self, namespace: impl Into<String>) -> DramatiqConfig {
        self.redis_namespace = namespace.into();
        self
    }

    /// The results backend's namespace and key form, as the workers'
    /// `RedisBackend(namespace=..., use_namespace_prefix_keys=...)` (default
    /// `dramatiq-results`, md5 keys).
    pub fn with_results_namespace(
        mut self,
        namespace: impl Into<String>,
        prefix_keys: bool,
    ) -> DramatiqConfig {
        self.results_namespace = namespace.into();
        self.results_prefix_keys = prefix_keys;
        self
    }

    /// How the workers' RabbitMQ broker is set up (the queues are declared to match).
    pub fn with_amqp(mut self, options: AmqpOptions) -> DramatiqConfig {
        self.amqp = options;
        self
    }
}

/// Why a [`DramatiqBackend`](crate::DramatiqBackend) could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DramatiqError {
    /// The broker URL is neither `redis://...` nor `amqp://...`.
    UnsupportedUrl(String),
    /// The broker or the results backend could not be reached, or refused something.
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What failed.
        error: String,
    },
}

impl fmt::Display for DramatiqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DramatiqError::UnsupportedUrl(url) => write!(
                f,
                "{url}: a dramatiq broker is redis://... (RedisBroker) or amqp://... (RabbitmqBroker)"
            ),
            DramatiqError::Unreachable { url, error } => write!(f, "{url}: {error}"),
        }
    }
}

impl std::error::Error for DramatiqError {}

/// `url` with its password, if any, replaced by `***` (for messages and logs).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Which broker a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// dramatiq's `RedisBroker`.
    Redis,
    /// dramatiq's `RabbitmqBroker`.
    RabbitMq,
}

impl BrokerKind {
    /// The broker of `url`, by its scheme.
    pub fn of(url: &str) -> Option<BrokerKind> {
        let scheme = url.split_once("://")?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "redis" | "rediss" | "unix" | "redis+unix" => Some(BrokerKind::Redis),
            "amqp" | "amqps" => Some(BrokerKind::RabbitMq),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_choose_the_broker_and_passwords_stay_out_of_messages() {
        assert_eq!(
            BrokerKind::of("redis://127.0.0.1:6379/0"),
            Some(BrokerKind::Redis)
        );
        assert_eq!(BrokerKind::of("REDIS://h"), Some(BrokerKind::Redis));
        assert_eq!(
            BrokerKind::of("unix:///tmp/redis.sock"),
            Some(BrokerKind::Redis)
        );
        assert_eq!(
            BrokerKind::of("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Some(BrokerKind::RabbitMq)
        );
        assert_eq!(BrokerKind::of("http://x"), None);
        assert_eq!(BrokerKind::of("127.0.0.1:6379"), None);
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact("redis://h/a@b"), "redis://h/a@b");
    }

    #[test]
    fn inputs_become_calls() {
        assert_eq!(
            Call::from_input(json!([1, "a"])),
            Call::args(vec![json!(1), json!("a")])
        );
        let kwargs = json!({"b": 1, "a": 2});
        assert_eq!(
            Call::from_input(kwargs.clone())
                .kwargs
                .keys()
                .collect::<Vec<_>>(),
            ["b", "a"],
            "in the input's order"
        );
        assert_eq!(Call::from_input(Value::Null), Call::default());
        assert_eq!(Call::from_input(json!(3)), Call::args(vec![json!(3)]));
    }

    #[test]
    fn an_actor_makes_the_message_with_its_options_then_the_calls() {
        let actor = Actor::new("vms", "open_vm_task")
            .with_option("max_retries", json!(0))
            .with_delay(Duration::from_secs(5))
            .with_call(|id, input| {
                Ok(Call::args(vec![json!(id), input["name"].clone()])
                    .option("broker_priority", json!(1)))
            });
        let id = JobId("job-7".into());
        let (message, delay) = actor.message(&id, json!({"name": "web-1"})).unwrap();
        assert_eq!(message.queue_name, "vms");
        assert_eq!(message.actor_name, "open_vm_task");
        assert_eq!(message.args, [json!("job-7"), json!("web-1")]);
        assert!(message.kwargs.is_empty());
        assert_eq!(
            message.options.keys().collect::<Vec<_>>(),
            ["max_retries", "broker_priority"]
        );
        assert_eq!(delay, Some(Duration::from_secs(5)));
        let refusing = Actor::new("q", "a").with_call(|_, _| Err("bad input".into()));
        assert_eq!(refusing.message(&id, Value::Null).unwrap_err(), "bad input");
    }
}
