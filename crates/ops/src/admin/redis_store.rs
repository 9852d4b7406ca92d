//! Admin sessions in Redis, as Node's `RedisStore` keeps them (feature `redis`).

use super::auth::{SessionStore, StoreFuture};
use super::AdminError;
use std::fmt;
use std::time::Duration;

/// How long one Redis command (or making the connection) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Sessions in Redis, shared by the nodes of a cluster, as Node's `RedisStore` keeps them: the
/// key `<prefix>#<session id>` (prefix `socket.io-admin` by default), the value `1`, expiring
/// after the session's lifetime (24 h by default). A UI that reconnects to another node (a Node
/// one too) gets in with its session id. When Redis cannot be reached, sessions are not found
/// (the UI asks for the password again) and new ones are not kept.
pub struct RedisSessionStore {
    client: redis::Client,
    /// Made on first use, dropped on any error, made again on the next use.
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    prefix: String,
    ttl: Duration,
}

impl RedisSessionStore {
    /// Node's default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "socket.io-admin";
    /// Node's default session lifetime (its `sessionDuration`, 86,400 s).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);

    /// A store on the Redis at `url` (`redis://...`); it connects when first used.
    pub fn new(url: &str) -> Result<RedisSessionStore, AdminError> {
        let client = redis::Client::open(url)
            .map_err(|e| AdminError::Config(format!("the session store's Redis URL: {e}")))?;
        Ok(RedisSessionStore {
            client,
            conn: tokio::sync::Mutex::new(None),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            ttl: Self::DEFAULT_TTL,
        })
    }

    /// The key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a session lasts (at least a second: Redis expires keys in seconds).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn key(&self, id: &str) -> String {
        format!("{}#{id}", self.prefix)
    }

    /// Runs `cmd`, making the connection if needed; `None` (the connection dropped) on failure.
    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            let made = tokio::time::timeout(
                COMMAND_TIMEOUT,
                self.client.get_multiplexed_async_connection(),
            )
            .await;
            match made {
                Ok(Ok(conn)) => *slot = Some(conn),
                Ok(Err(e)) => {
                    tracing::warn!("admin sessions: cannot reach Redis: {e}");
                    return None;
                }
                Err(_) => {
                    tracing::warn!("admin sessions: Redis did not answer in time");
                    return None;
                }
            }
        }
        let mut conn = slot.as_ref()?.clone();
        // The connection is multiplexed: commands need not wait for each other.
        drop(slot);
        match tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            failed => {
                if let Ok(Err(e)) = failed {
                    tracing::warn!("admin sessions: Redis: {e}");
                }
                *self.conn.lock().await = None;
                None
            }
        }
    }
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionStore for RedisSessionStore {
    fn exists<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut cmd = redis::cmd("EXISTS");
            cmd.arg(self.key(id));
            self.query::<i64>(cmd).await == Some(1)
        })
    }

    fn save<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(id))
                .arg("1")
                .arg("EX")
                .arg(self.ttl.as_secs().max(1));
            let _ = self.query::<redis::Value>(cmd).await;
        })
    }
}
