//! The binary as an operator starts it: start-up errors are one sentence that names the flag
//! or address at fault, with a non-zero exit status, and logs written to a file or a pipe carry
//! no terminal colour codes.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_socketlet");

/// Runs the binary with `args` until it exits; its status and standard error.
fn run(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the socketlet binary runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts the binary with `args`, logging at info to a pipe; returns once it listens, with the
/// line that says so.
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the socketlet binary runs");
    // The listening line on stdout means start-up logging is done.
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the listening line");
    (child, line)
}

/// Sends SIGTERM to `child`; whether `kill` did.
fn terminate(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn an_address_in_use_is_named() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let (status, stderr) = run(&["--addr", &addr]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("socketlet: cannot listen on {addr} (--addr): ")),
        "{stderr}"
    );
    assert!(!stderr.contains("Os {"), "Rust debug output: {stderr}");
}

#[test]
fn an_unreachable_redis_is_named() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let (status, stderr) = run(&["--addr", "127.0.0.1:0", "--redis", &url]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "socketlet: cannot reach Redis at {url} (--redis): "
        )),
        "{stderr}"
    );
}

#[test]
fn a_provisioner_without_its_command_is_named() {
    let (status, stderr) = run(&["--addr", "127.0.0.1:0", "--vm-provisioner", "command"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--vm-command"), "{stderr}");
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let (mut child, line) = start(&["--addr", "127.0.0.1:0"]);
    assert!(
        line.starts_with("socketlet listening on http://127.0.0.1:"),
        "{line}"
    );
    // SIGTERM: the server logs its shutdown at info, then exits.
    assert!(terminate(&child));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("exit");
    assert!(out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.is_empty(), "no log lines at info");
    assert!(!stderr.contains('\u{1b}'), "ANSI codes in {stderr:?}");
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("socketlet-startup-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("a temporary file");
        TempFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn check_config_shows_flag_over_environment_over_file_over_default() {
    let file = TempFile::new(
        "precedence.toml",
        "ping_interval = 1000\nping_timeout = 2000\nupgrade_timeout = 3000\nhook_secret = \"shh\"\n",
    );
    let out = Command::new(BIN)
        .args([
            "--config",
            file.arg(),
            "--check-config",
            "--ping-interval",
            "10",
        ])
        .env("SOCKETLET_PING_INTERVAL", "20")
        .env("SOCKETLET_PING_TIMEOUT", "30")
        .output()
        .expect("the socketlet binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "ping_interval = 10  # flag",
        "ping_timeout = 30  # environment",
        "upgrade_timeout = 3000  # file",
        "connect_timeout = 45000  # default",
        "hook_secret = \"****\"  # file",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in\n{stdout}"
        );
    }
    assert!(!stdout.contains("shh"), "{stdout}");
}

#[test]
fn check_config_refuses_what_would_not_start() {
    let file = TempFile::new("unknown.toml", "adress = \"127.0.0.1:1\"\n");
    let (status, stderr) = run(&["--config", file.arg(), "--check-config"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "socketlet: {}: unknown key `adress` (`socketlet --print-options` lists them)",
            file.arg()
        )
    );
    let (status, stderr) = run(&["--check-config", "--trusted-proxy", "10.0.0.0/99"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("socketlet: --trusted-proxy: "),
        "{stderr}"
    );
    let (status, stderr) = run(&[
        "--check-config",
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("socketlet: cannot read /nonexistent/cert.pem (--tls-cert): "),
        "{stderr}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (child, _) = start(&["--addr", "127.0.0.1:0", "--log-format", "json"]);
    terminate(&child);
    let out = child.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "{stderr}");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(
            value["level"].is_string() && value["fields"].is_object(),
            "{line}"
        );
    }
}

#[test]
fn the_example_config_file_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/socketlet.toml");
    let (status, stderr) = run(&["--config", example, "--check-config"]);
    assert!(status.success(), "{stderr}");
}
