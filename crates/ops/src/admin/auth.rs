//! The admin namespace's login, as Node's `instrument()` does it: a session id the UI got
//! earlier, or the username and a password checked against a bcrypt hash; then a new session
//! id for the UI to come back with.

use serde_json::Value;
use socketlet::engine::sync::lock;
use socketlet::ConnectError;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What the UI is told when it may not in (it shows its login form on exactly this message).
const INVALID: &str = "invalid credentials";
/// How long a login waits for its turn at the password check before it is refused.
const LOGIN_WAIT: Duration = Duration::from_secs(10);

/// A boxed future, as [`SessionStore`] returns them.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the admin sessions live (Node's `Store`: `doesSessionExist`, `saveSession`). A store
/// shared by the nodes of a cluster (Redis, say) lets a UI that reconnects to another node in
/// without its password.
pub trait SessionStore: Send + Sync + 'static {
    /// Whether `id` is a session that was saved and has not expired.
    fn exists<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
    /// Saves the session `id`.
    fn save<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;
}

/// Sessions in this node's memory (Node's `InMemoryStore`, bounded): each lasts `ttl` (default
/// 24 h, the session duration of Node's Redis store), and past `capacity` (default 10,000) the
/// oldest goes.
pub struct MemorySessionStore {
    sessions: Mutex<HashMap<String, Instant>>,
    ttl: Duration,
    capacity: usize,
}

impl MemorySessionStore {
    /// The default session lifetime.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);
    /// The default number of sessions kept.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// An empty store with the defaults.
    pub fn new() -> MemorySessionStore {
        MemorySessionStore {
            sessions: Mutex::new(HashMap::new()),
            ttl: Self::DEFAULT_TTL,
            capacity: Self::DEFAULT_CAPACITY,
        }
    }

    /// How long a session lasts.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many sessions are kept (at least 1).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// How many sessions are kept now (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn contains(&self, id: &str) -> bool {
        let mut sessions = lock(&self.sessions);
        match sessions.get(id) {
            Some(saved) if saved.elapsed() < self.ttl => true,
            Some(_) => {
                sessions.remove(id);
                false
            }
            None => false,
        }
    }

    fn insert(&self, id: &str) {
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.capacity && !sessions.contains_key(id) {
            let ttl = self.ttl;
            sessions.retain(|_, saved| saved.elapsed() < ttl);
            if sessions.len() >= self.capacity {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, saved)| **saved)
                    .map(|(id, _)| id.clone());
                if let Some(oldest) = oldest {
                    sessions.remove(&oldest);
                }
            }
        }
        sessions.insert(id.to_owned(), Instant::now());
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        MemorySessionStore::new()
    }
}

impl fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("sessions", &self.len())
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl SessionStore for MemorySessionStore {
    fn exists<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let found = self.contains(id);
        Box::pin(async move { found })
    }

    fn save<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        self.insert(id);
        Box::pin(async {})
    }
}

/// A new session id: 8 random bytes in hex (Node's `randomId`).
pub(super) fn session_id() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality whose time does not depend on where two strings of one length differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The login of the admin namespace (basic authentication).
pub(super) struct Login {
    username: String,
    hash: Arc<str>,
    store: Arc<dyn SessionStore>,
    /// Password checks at once: bcrypt is slow on purpose, and anyone can ask for one.
    checks: Arc<Semaphore>,
}

impl Login {
    pub(super) fn new(
        username: String,
        hash: String,
        store: Arc<dyn SessionStore>,
        max_checks: usize,
    ) -> Login {
        Login {
            username,
            hash: hash.into(),
            store,
            checks: Arc::new(Semaphore::new(max_checks.max(1))),
        }
    }

    /// Checks the CONNECT's `auth`: `Ok(None)` for a known session id, `Ok(Some(new id))` for
    /// the right username and password (the session is saved), else Node's refusal.
    pub(super) async fn check(&self, auth: &Value) -> Result<Option<String>, ConnectError> {
        if let Some(session) = auth
            .get("sessionId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            if self.store.exists(session).await {
                return Ok(None);
            }
        }
        let username = auth.get("username").and_then(Value::as_str);
        let password = auth.get("password").and_then(Value::as_str);
        let (Some(username), Some(password)) = (username, password) else {
            return Err(ConnectError::new(INVALID));
        };
        if !same(username, &self.username) || !self.verify(password).await? {
            return Err(ConnectError::new(INVALID));
        }
        let session = session_id();
        self.store.save(&session).await;
        Ok(Some(session))
    }

    /// bcrypt on a blocking thread, a bounded number at once.
    async fn verify(&self, password: &str) -> Result<bool, ConnectError> {
        let permit = tokio::time::timeout(LOGIN_WAIT, self.checks.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| ConnectError::new("too many logins at once, try again"))?;
        let password = password.to_owned();
        let hash = self.hash.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
        .await;
        Ok(checked.unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// bcryptjs' `hashSync("changeit", 4)`, as Node users make them.
    const HASH: &str = "$2a$04$NBNjxNr6W0K4l8S8HcTsHu6ZiY.PP9Vn8quLLG2H5pOC3LmRnA.dS";

    fn login(store: Arc<MemorySessionStore>) -> Login {
        Login::new("admin".into(), HASH.into(), store, 2)
    }

    #[tokio::test]
    async fn a_password_login_makes_a_session_that_lets_the_ui_back_in() {
        let store = Arc::new(MemorySessionStore::new());
        let login = login(store.clone());
        let session = login
            .check(&json!({"username": "admin", "password": "changeit"}))
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(session.len(), 16);
        assert!(session.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(store.len(), 1);
        assert!(matches!(
            login.check(&json!({"sessionId": session})).await,
            Ok(None)
        ));
    }

    #[tokio::test]
    async fn wrong_credentials_are_refused_with_nodes_message() {
        let login = login(Arc::new(MemorySessionStore::new()));
        for auth in [
            json!({"username": "admin", "password": "wrong"}),
            json!({"username": "root", "password": "changeit"}),
            json!({"username": "admin"}),
            json!({"username": "admin", "password": 42}),
            json!({"sessionId": "0123456789abcdef"}),
            json!({"sessionId": ""}),
            json!(null),
            json!("admin:changeit"),
        ] {
            match login.check(&auth).await {
                Err(e) => assert_eq!(e.to_string(), INVALID, "{auth}"),
                Ok(_) => panic!("{auth} was let in"),
            }
        }
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let store = MemorySessionStore::new().with_capacity(2);
        store.insert("a");
        store.insert("b");
        store.insert("c");
        assert_eq!(store.len(), 2);
        assert!(!store.contains("a"), "the oldest went");
        assert!(store.contains("c"));
        let store = MemorySessionStore::new().with_ttl(Duration::ZERO);
        store.insert("a");
        assert!(!store.contains("a"));
        assert!(store.is_empty());
    }

    #[test]
    fn equality_is_exact() {
        assert!(same("admin", "admin"));
        assert!(!same("admin", "admin "));
        assert!(!same("admin", "Admin"));
        assert!(!same("", "a"));
    }
}
