//! The binary's VM console with `--vm-provisioner dramatiq`, end to end: the `socketlet`
//! binary, a redis-server of the test's own (dramatiq's Redis broker and results backend), the
//! real `dramatiq` command running `open_vm_task(id, name, user_id)` (crates/dramatiq/tests/
//! python/workers.py), and python-socketio 5.x opening VMs and getting `vm_response` with what
//! the workers returned.
//!
//! Skipped, saying why, without the venv of crates/dramatiq/tests/python (its setup.sh makes
//! it) or redis-server, unless `SOCKETLET_REQUIRE_DRAMATIQ` is set (scripts/test.sh sets it).

#![allow(clippy::unwrap_used)]

#[path = "../../dramatiq/tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use support::{RedisServer, Workers};

const BIN: &str = env!("CARGO_BIN_EXE_socketlet");

/// The binary, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the socketlet binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .strip_prefix("socketlet listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no listening line: {line:?}"))
            .to_owned();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn vms_open_through_real_dramatiq_workers_and_their_results_reach_the_client() {
    let Some(venv) = support::venv() else { return };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let workers = Workers::start(&venv, &redis.url, &redis.url, "default", 2, 2);
    let server = Server::start(&[
        "--vm-provisioner",
        "dramatiq",
        "--dramatiq-broker",
        &redis.url,
        "--dramatiq-results",
        &redis.url,
    ]);
    let started = std::time::Instant::now();
    let out = Command::new(venv.join("bin/python"))
        .arg(support::python_dir().join("console_client.py"))
        .args([&server.url, "web-1", "db-1", "legacy-1"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client failed: {stdout}\nworkers: {:?}",
        workers.log()
    );
    let got: Value = serde_json::from_str(stdout.trim()).unwrap();
    let sid = got["sid"].as_str().unwrap();

    // The ack: one job per VM.
    let jobs = got["ack"]["jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j["vm"].as_str().unwrap()).collect();
    assert_eq!(names, ["web-1", "db-1", "legacy-1"], "{got}");

    // vm_response: what open_vm_task returned, for (id, name, user_id) = (job id, VM, socket).
    let response = &got["response"];
    assert_eq!(response["complete"], true, "{response}");
    let results = response["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (result, job) in results.iter().zip(jobs) {
        assert_eq!(result["job"], job["job"]);
        assert_eq!(result["vm"], job["vm"]);
    }
    for result in &results[..2] {
        assert_eq!(result["status"], "done", "{result}");
        let value = &result["value"];
        assert_eq!(value["id"], result["job"]);
        assert_eq!(value["name"], result["vm"]);
        assert_eq!(
            value["user_id"],
            json!(sid),
            "no gateway user: the socket id"
        );
        assert_eq!(value["state"], "running");
        assert!(value["worker_pid"].as_u64().is_some());
    }
    assert_eq!(
        results[2]["status"], "failed",
        "legacy-1 does not boot: {}",
        results[2]
    );
    assert_eq!(
        results[2]["value"],
        "actor raised RuntimeError: legacy-1: the guest did not boot"
    );

    // Progress on the way: each VM started (handed to dramatiq), was sent, and ended.
    let progress = got["progress"].as_array().unwrap();
    for job in jobs {
        let events: Vec<&str> = progress
            .iter()
            .filter(|p| p["job"] == job["job"])
            .map(|p| p["event"].as_str().unwrap())
            .collect();
        let end = if job["vm"] == "legacy-1" {
            "failed"
        } else {
            "done"
        };
        assert_eq!(events, ["started", "progress", end], "{}", job["vm"]);
    }
    assert!(
        progress.iter().any(|p| p["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("sent to dramatiq: open_vm_task on queue default"))),
        "{progress:?}"
    );
    // As in the story, the server disconnects the client after vm_response.
    assert_eq!(got["disconnected"], true);
    eprintln!("3 VMs through dramatiq and back to the client in {took:?}");
}

#[test]
fn the_dramatiq_provisioner_names_what_it_lacks() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["--addr", "127.0.0.1:0", "--vm-provisioner", "dramatiq"])
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("needs --dramatiq-broker URL"), "{stderr}");
    let (code, stderr) = run(&["--dramatiq-broker", "amqp://guest:guest@127.0.0.1:1/%2f"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("needs --dramatiq-results URL"), "{stderr}");
    let port = support::free_port();
    let url = format!("redis://:secret@127.0.0.1:{port}");
    let (code, stderr) = run(&["--dramatiq-broker", &url]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(
            "cannot use dramatiq (--dramatiq-broker, --dramatiq-results): redis://:***@127.0.0.1:"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "the password shows: {stderr}");
}
