//! What the tests with real dramatiq workers start: a `redis-server` of their own on a free
//! port, the real `dramatiq` command from the venv of `tests/python` (setup.sh makes it), and a
//! way to reach the machine's RabbitMQ. Everything started is killed when dropped (the workers
//! with their whole process group).
//!
//! Without the venv (or redis-server) the tests skip, saying why, unless
//! `SOCKETLET_REQUIRE_DRAMATIQ` is set (scripts/test.sh sets it after making the venv): then
//! they fail. Without a RabbitMQ on 127.0.0.1:5672 (or `SOCKETLET_RABBITMQ_URL`) the RabbitMQ
//! test skips, saying so.
//!
//! Shared by crates/dramatiq/tests/workers.rs and crates/cli/tests/dramatiq_console.rs.

#![allow(dead_code, clippy::unwrap_used)]

#[path = "../../../redis/tests/support/redis_server.rs"]
mod redis_server;

pub use redis_server::{free_port, RedisServer};

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `tests/python` of the dramatiq crate: the worker module, the requirements, setup.sh.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dramatiq/tests/python")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python"))
}

fn required() -> bool {
    std::env::var_os("SOCKETLET_REQUIRE_DRAMATIQ").is_some()
}

/// Skips the test (returns `None`) with a message, or fails it when the run requires dramatiq.
fn skip<T>(why: String) -> Option<T> {
    if required() {
        panic!("{why}, and SOCKETLET_REQUIRE_DRAMATIQ is set");
    }
    eprintln!("SKIPPED: {why} (run crates/dramatiq/tests/python/setup.sh to make the venv)");
    None
}

/// The venv with dramatiq, or `None` (the test skips).
pub fn venv() -> Option<PathBuf> {
    let venv = std::env::var_os("SOCKETLET_DRAMATIQ_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| python_dir().join(".venv"));
    if venv.join("bin/dramatiq").is_file() {
        Some(venv)
    } else {
        skip(format!("no dramatiq venv at {}", venv.display()))
    }
}

/// Kills a whole process group (`kill -s KILL -- -<pgid>`; no libc: unsafe is forbidden).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

impl RedisServer {
    /// Starts one on a free port; `None` when there is no redis-server (the test skips).
    pub fn start() -> Option<RedisServer> {
        RedisServer::spawn().map_or_else(skip, Some)
    }

    /// What the `record` and `flaky` actors marked (`socketlet-test:ran`), in order.
    pub fn marks(&self) -> Vec<serde_json::Value> {
        let raw: Vec<String> = self.query(
            redis::cmd("LRANGE")
                .arg("socketlet-test:ran")
                .arg(0)
                .arg(-1),
        );
        raw.iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }
}

/// The real `dramatiq` command running `workers.py`, with its whole process group killed when
/// dropped. Its log (standard error) is kept, and shown when a test fails.
pub struct Workers {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Workers {
    /// Starts `dramatiq workers --processes P --threads T` on the broker at `broker` (queue
    /// `queue`), results on `results`; returns when every worker process is ready.
    pub fn start(
        venv: &Path,
        broker: &str,
        results: &str,
        queue: &str,
        processes: u32,
        threads: u32,
    ) -> Workers {
        let mut child = Command::new(venv.join("bin/dramatiq"))
            .arg("workers")
            .args(["--processes", &processes.to_string()])
            .args(["--threads", &threads.to_string()])
            .args(["--queues", queue])
            .current_dir(python_dir())
            .env("PYTHONPATH", python_dir())
            .env("PYTHONUNBUFFERED", "1")
            .env("DRAMATIQ_BROKER", broker)
            .env("DRAMATIQ_RESULTS", results)
            .env("DRAMATIQ_QUEUE", queue)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("cannot run dramatiq from the venv");
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let workers = Workers { child, log };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = workers
                .log()
                .iter()
                .filter(|l| l.contains("Worker process is ready for action"))
                .count();
            if ready >= processes as usize {
                return workers;
            }
            assert!(
                Instant::now() < until,
                "dramatiq's workers did not get ready; their log:\n{}",
                workers.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The workers' log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- dramatiq's log ---\n{}", self.log().join("\n"));
        }
    }
}

/// The RabbitMQ to test against (`SOCKETLET_RABBITMQ_URL`, default
/// `amqp://guest:guest@127.0.0.1:5672/%2f`), or `None` when nothing listens there (the test
/// skips, saying so).
pub fn rabbitmq_url() -> Option<String> {
    let url = std::env::var("SOCKETLET_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let host_port = url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
        .unwrap_or("127.0.0.1:5672")
        .to_owned();
    let reachable = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok());
    if reachable {
        Some(url)
    } else {
        eprintln!("SKIPPED: no RabbitMQ reachable at {host_port} (set SOCKETLET_RABBITMQ_URL)");
        None
    }
}
