//! A redis-server of a test's own, shared by the test files of this crate.

mod redis_server;

pub use redis_server::RedisServer;

impl RedisServer {
    /// Starts one on a free port; `None` when redis-server is not installed (the test skips),
    /// unless `SOCKETLET_REQUIRE_REDIS` is set (then the test fails).
    pub fn start() -> Option<RedisServer> {
        match RedisServer::spawn() {
            Ok(server) => Some(server),
            Err(why) if std::env::var_os("SOCKETLET_REQUIRE_REDIS").is_none() => {
                eprintln!("SKIPPED: {why}");
                None
            }
            Err(why) => panic!("{why}, and SOCKETLET_REQUIRE_REDIS is set"),
        }
    }
}
