//! The binary as an operator starts it: start-up errors are one sentence that names the flag
//! or address at fault, with a non-zero exit status, and logs written to a file or a pipe carry
//! no terminal colour codes.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
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
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0"])
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
    assert!(
        line.starts_with("socketlet listening on http://127.0.0.1:"),
        "{line}"
    );
    // SIGTERM: the server logs its shutdown at info, then exits.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
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
