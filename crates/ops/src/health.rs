//! Health checks for load balancers and orchestrators: alive (the process answers) and ready
//! (it accepts connections, and what it depends on, Redis say, answers).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A readiness check: `Err` says what is not ready.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The server's health: ready while it accepts connections and every check passes. Cheap to
/// clone.
#[derive(Clone, Default)]
pub struct Health {
    draining: Arc<AtomicBool>,
    checks: Arc<Mutex<Vec<(String, ReadyCheck)>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("draining", &self.draining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Health {
    /// Ready, with no checks.
    pub fn new() -> Health {
        Health::default()
    }

    /// Adds a check, named for what it checks.
    pub fn check<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: ReadyCheck = Arc::new(move || Box::pin(check()));
        socketlet::engine::sync::lock(&self.checks).push((name.into(), check));
    }

    /// The server stops accepting connections (shutting down): not ready from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the server is ready, or why not.
    pub async fn ready(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Acquire) {
            return Err("shutting down".into());
        }
        let checks = socketlet::engine::sync::lock(&self.checks).clone();
        for (name, check) in checks {
            match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(format!("{name}: {why}")),
                Err(_) => return Err(format!("{name}: no answer in {CHECK_TIMEOUT:?}")),
            }
        }
        Ok(())
    }
}
