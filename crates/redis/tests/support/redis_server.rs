//! A redis-server of a test's own, on a free port, killed when dropped. Shared by the test
//! support of crates/redis and of crates/dramatiq (which includes this file by path); each says
//! what a test does when there is no redis-server (`RedisServer::start`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// A redis-server of the test's own, killed when dropped.
pub struct RedisServer {
    child: Child,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
}

impl RedisServer {
    /// Starts one on a free port, without persistence, and waits until it answers; `Err` says
    /// why when redis-server cannot run.
    pub fn spawn() -> Result<RedisServer, String> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server ({e})"))?;
        let server = RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if server
                .try_query::<String>(&mut redis::cmd("PING"))
                .is_some()
            {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn try_query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Option<T> {
        let mut c = redis::Client::open(self.url.as_str())
            .ok()?
            .get_connection()
            .ok()?;
        cmd.query(&mut c).ok()
    }

    /// Runs a command on it.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        let mut c = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        cmd.query(&mut c).unwrap()
    }

    /// Kills it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
