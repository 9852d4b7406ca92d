//! Opening a virtual machine: the provisioner interface, a simulated provisioner (the default),
//! and a command provisioner that runs a configured program per VM.
//!
//! What a client sends ends up as a program's arguments and environment, so it is checked twice:
//! by the console when the request arrives ([`VmConfig::validate_for`]) and by the command
//! provisioner before it runs anything. A name never starts with `-` (nor `.` or `_`), an image
//! is one of the configured catalogue's (never absolute, never with `..`), and the VM's own
//! arguments come after `--`, so the program's option parser never reads them as options.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use socketlet_jobs::{BoxFuture, JobContext};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// What the console asks for: one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    /// A name, 1 to 64 characters of letters, digits, `-`, `_` and `.`, starting with a letter
    /// or a digit (so never with `-`: it is never read as an option).
    pub name: String,
    /// Virtual CPUs, 1 to 64.
    pub vcpus: u32,
    /// Memory in MiB, 128 to 262144.
    pub memory_mb: u32,
    /// The disk image: one of the console's catalogue ([`VmConfig::validate_for`]); in any case
    /// 1 to 128 characters of letters, digits, `-`, `_`, `.` and `/`, starting with a letter or a
    /// digit (never absolute, never an option) and without `..`.
    pub image: String,
}

impl VmConfig {
    /// Checks the fields' shape (they end up as program arguments and environment variables).
    pub fn validate(&self) -> Result<(), String> {
        let ok_chars = |s: &str, extra: &[char]| {
            s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(&c))
        };
        if self.name.len() > 64 || !ok_chars(&self.name, &[]) {
            return Err(format!(
                "bad VM name {:?}: 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or a digit",
                self.name
            ));
        }
        if !(1..=64).contains(&self.vcpus) {
            return Err(format!("{}: vcpus must be 1 to 64", self.name));
        }
        if !(128..=262_144).contains(&self.memory_mb) {
            return Err(format!("{}: memory_mb must be 128 to 262144", self.name));
        }
        if self.image.len() > 128 || !ok_chars(&self.image, &['/']) || self.image.contains("..") {
            return Err(format!("{}: bad image {:?}", self.name, self.image));
        }
        Ok(())
    }

    /// [`VmConfig::validate`], and the image must be one of `images` (the catalogue's).
    pub fn validate_for(&self, images: &[String]) -> Result<(), String> {
        self.validate()?;
        if !images.contains(&self.image) {
            return Err(format!(
                "{}: image {:?} is not in the catalogue",
                self.name, self.image
            ));
        }
        Ok(())
    }
}

/// Opens VMs. An implementation reports progress through the job context and returns what the
/// console shows for the VM, or why it failed. It must not block a thread.
pub trait Provisioner: Send + Sync + 'static {
    /// Opens one VM.
    fn open(&self, vm: VmConfig, ctx: JobContext) -> BoxFuture<'static, Result<Value, String>>;
}

/// A pretend hypervisor: realistic phases and durations, and an occasional failure.
#[derive(Debug, Clone)]
pub struct Simulated {
    /// Multiplies every duration (1.0: about 3 to 9 s per VM; tests use less).
    pub time_scale: f64,
    /// Chance that a VM fails to open, 0 to 1. An image named `broken*` always fails.
    pub failure_rate: f64,
}

impl Provisioner for Simulated {
    fn open(&self, vm: VmConfig, ctx: JobContext) -> BoxFuture<'static, Result<Value, String>> {
        let scale = self.time_scale.max(0.0);
        let fails = vm.image.starts_with("broken") || rand::random::<f64>() < self.failure_rate;
        Box::pin(async move {
            let started = Instant::now();
            // Bigger machines take longer to allocate and boot.
            let weight = 1.0 + f64::from(vm.vcpus) / 16.0 + f64::from(vm.memory_mb) / 32_768.0;
            let phases: [(&str, f64); 4] = [
                ("allocating resources", 0.8),
                ("cloning the image", 1.6),
                ("booting", 1.4),
                ("waiting for the guest agent", 0.9),
            ];
            let total: f64 = phases.iter().map(|(_, s)| s).sum();
            let mut done = 0.0;
            for (i, (phase, secs)) in phases.iter().enumerate() {
                ctx.progress((done / total) as f32, *phase);
                let jitter = 0.75 + rand::random::<f64>() * 0.5;
                tokio::time::sleep(Duration::from_secs_f64(secs * weight * jitter * scale)).await;
                done += secs;
                if fails && i == 2 {
                    return Err(format!(
                        "{}: the guest did not boot (simulated failure)",
                        vm.name
                    ));
                }
            }
            let n = rand::random::<u8>() % 250 + 2;
            Ok(json!({
                "name": vm.name,
                "state": "running",
                "host": "sim-hypervisor-1",
                // TEST-NET-1 documentation addresses: this is pretend.
                "address": format!("192.0.2.{n}"),
                "took_ms": started.elapsed().as_millis() as u64,
                "simulated": true,
            }))
        })
    }
}

/// Runs `program` once per VM as `program [args...] -- name vcpus memory_mb image`, with the
/// VM's fields also in the environment (`VM_NAME`, `VM_VCPUS`, `VM_MEMORY_MB`, `VM_IMAGE`). The
/// `--` ends the program's options: whatever a VM is called, the program never reads it as one.
///
/// - exit status 0: the VM is open; the result is the program's standard output parsed as JSON,
///   or `{"output": "<stdout>"}` when it is not JSON;
/// - any other status: failed, with the last line of standard error (or the status);
/// - still running after `timeout`, or still running when the server's shutdown grace period
///   ends: killed, and failed. The program runs in a process group of its own, and the whole
///   group is killed (`kill -KILL -<pgid>`), so the children it started go too. A program that
///   exits by itself keeps whatever it left running in the background (a daemonised VM).
///
/// A VM whose name or image is refused ([`VmConfig::validate_for`] with `images`) fails without
/// running anything. A line `PROGRESS <fraction> <message>` on standard output reports progress.
/// Output is read up to 64 KiB.
#[derive(Debug, Clone)]
pub struct Command {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the `--` and the VM's own.
    pub args: Vec<String>,
    /// The longest a program may run.
    pub timeout: Duration,
    /// The images a VM may ask for (the console's catalogue).
    pub images: Vec<String>,
}

const MAX_OUTPUT: u64 = 64 * 1024;

impl Provisioner for Command {
    fn open(&self, vm: VmConfig, ctx: JobContext) -> BoxFuture<'static, Result<Value, String>> {
        let this = self.clone();
        Box::pin(async move { this.run(vm, ctx).await })
    }
}

impl Command {
    async fn run(&self, vm: VmConfig, ctx: JobContext) -> Result<Value, String> {
        // Checked by the console too; this is the last door before a program sees the fields.
        vm.validate_for(&self.images)?;
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .arg("--")
            .arg(&vm.name)
            .arg(vm.vcpus.to_string())
            .arg(vm.memory_mb.to_string())
            .arg(&vm.image)
            .env("VM_NAME", &vm.name)
            .env("VM_VCPUS", vm.vcpus.to_string())
            .env("VM_MEMORY_MB", vm.memory_mb.to_string())
            .env("VM_IMAGE", &vm.image)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group (pgid = its pid), so that it can be killed with its children.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: cannot run {}: {e}", vm.name, self.program.display()))?;
        // Declared after `child`, so dropped before it: if this future is dropped (the shutdown
        // grace period ended), the group is killed while the leader is still unreaped, so its
        // pid, the group's id, cannot have been reused.
        let mut group = GroupKiller(child.id());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let read_stdout = async {
            let mut out = String::new();
            if let Some(stdout) = stdout {
                let mut lines = BufReader::new(stdout.take(MAX_OUTPUT)).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match parse_progress(&line) {
                        Some((fraction, message)) => ctx.progress(fraction, message),
                        None => {
                            out.push_str(&line);
                            out.push('\n');
                        }
                    }
                }
            }
            out
        };
        let read_stderr = async {
            let mut err = String::new();
            if let Some(stderr) = stderr {
                let _ = stderr.take(MAX_OUTPUT).read_to_string(&mut err).await;
            }
            err
        };
        let run = async {
            let (out, err) = tokio::join!(read_stdout, read_stderr);
            (child.wait().await, out, err)
        };
        let (status, out, err) = match tokio::time::timeout(self.timeout, run).await {
            Ok(done) => {
                // It exited (and was reaped): what it left in the background stays.
                group.disarm();
                done
            }
            Err(_) => {
                group.kill().await;
                return Err(format!(
                    "{}: {} timed out after {} s and was killed",
                    vm.name,
                    self.program.display(),
                    self.timeout.as_secs_f64()
                ));
            }
        };
        let status = status.map_err(|e| format!("{}: {e}", vm.name))?;
        if status.success() {
            let out = out.trim();
            Ok(serde_json::from_str(out).unwrap_or_else(|_| json!({ "output": out })))
        } else {
            let why = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("exited with {status}"));
            Err(format!("{}: {why}", vm.name))
        }
    }
}

/// Kills a command's whole process group, unless disarmed: when [`GroupKiller::kill`] is called,
/// or at the latest when it is dropped.
struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn disarm(&mut self) {
        self.0 = None;
    }

    /// Kills the group now, without blocking the runtime.
    async fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let killed = tokio::process::Command::from(kill_group(pgid))
                .status()
                .await;
            log_kill(pgid, killed);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        // The future was dropped mid-run: no runtime to await on, so this blocks for the
        // millisecond `kill` takes.
        if let Some(pgid) = self.0.take() {
            log_kill(pgid, kill_group(pgid).status());
        }
    }
}

/// `kill -s KILL -- -<pgid>`: every process of the group (the workspace forbids `unsafe`, so no
/// `killpg` from libc; the `kill` program does it).
/// `kill -s KILL -- -<pgid>`, without standard streams.
fn kill_group(pgid: u32) -> std::process::Command {
    let mut kill = std::process::Command::new("kill");
    kill.args(["-s", "KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    kill
}

fn log_kill(pgid: u32, killed: std::io::Result<std::process::ExitStatus>) {
    match killed {
        Ok(status) if status.success() => {}
        // The group is already gone: nothing to kill.
        Ok(_) => tracing::debug!(pgid, "no process left in the group"),
        Err(e) => tracing::warn!(
            pgid,
            "cannot run `kill` for the command's process group: {e}"
        ),
    }
}

fn parse_progress(line: &str) -> Option<(f32, String)> {
    let rest = line.strip_prefix("PROGRESS ")?;
    let (fraction, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((fraction.parse().ok()?, message.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketlet_jobs::{InProcessBackend, JobEventKind, Jobs, Outcome};
    use std::sync::Arc;

    fn vm(name: &str, image: &str) -> VmConfig {
        VmConfig {
            name: name.into(),
            vcpus: 2,
            memory_mb: 2048,
            image: image.into(),
        }
    }

    /// The images the tests' command provisioners accept.
    fn images() -> Vec<String> {
        ["debian-12.qcow2", "pg.qcow2", "missing.qcow2", "x.qcow2"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn validation_refuses_what_could_become_a_flag_or_a_path_trick() {
        assert!(vm("web-1", "debian-12.qcow2").validate().is_ok());
        assert!(vm("web-1", "base/debian-12.qcow2").validate().is_ok());
        assert!(vm("", "x").validate().is_err());
        assert!(vm("a b", "x").validate().is_err());
        assert!(vm("a;rm", "x").validate().is_err());
        assert!(vm("ok", "-rf").validate().is_err());
        assert!(vm("ok", "").validate().is_err());
        let mut big = vm("ok", "x");
        big.vcpus = 0;
        assert!(big.validate().is_err());
    }

    /// Issue 19, finding E: names that a program's option parser would read as options.
    #[test]
    fn names_that_look_like_options_are_refused() {
        for name in ["--help", "--force", "-rf", "-", ".", "..", "_x", ".hidden"] {
            let err = vm(name, "debian-12.qcow2")
                .validate_for(&images())
                .expect_err(name);
            assert!(err.contains("bad VM name"), "{name}: {err}");
        }
        assert_eq!(
            vm("web-1", "debian-12.qcow2").validate_for(&images()),
            Ok(())
        );
    }

    /// Issue 19, finding E: images that become paths outside the catalogue.
    #[test]
    fn images_outside_the_catalogue_are_refused() {
        for image in [
            "../../../../etc/shadow",
            "/etc/passwd",
            "images/../../etc/passwd",
            "..",
            "--help",
        ] {
            // Refused by their shape, catalogue or not.
            assert!(vm("web-1", image).validate().is_err(), "{image}");
            let mut catalogue = images();
            catalogue.push(image.to_owned());
            assert!(
                vm("web-1", image).validate_for(&catalogue).is_err(),
                "{image}"
            );
        }
        let err = vm("web-1", "not-in-catalogue.qcow2")
            .validate_for(&images())
            .expect_err("not in the catalogue");
        assert_eq!(
            err,
            "web-1: image \"not-in-catalogue.qcow2\" is not in the catalogue"
        );
    }

    #[test]
    fn progress_lines_parse() {
        assert_eq!(
            parse_progress("PROGRESS 0.5 booting"),
            Some((0.5, "booting".into()))
        );
        assert_eq!(parse_progress("PROGRESS 1"), Some((1.0, String::new())));
        assert_eq!(parse_progress("PROGRESS x y"), None);
        assert_eq!(parse_progress("hello"), None);
    }

    /// A fresh temporary directory.
    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "socketlet-provision-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes an executable script into a fresh temporary directory.
    fn script(name: &str, body: &str) -> PathBuf {
        let path = temp_dir().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn command(program: PathBuf, args: &[&str], timeout: Duration) -> Command {
        Command {
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout,
            images: images(),
        }
    }

    fn jobs_of(provisioner: Command) -> Jobs {
        let p = Arc::new(provisioner);
        Jobs::new(
            InProcessBackend::new(4).register("open_vm", move |ctx, input| {
                let p = p.clone();
                async move {
                    let vm: VmConfig = serde_json::from_value(input).map_err(|e| e.to_string())?;
                    p.open(vm, ctx).await
                }
            }),
        )
    }

    async fn open_with(
        provisioner: Command,
        vms: Vec<VmConfig>,
    ) -> (Vec<Outcome>, Vec<JobEventKind>) {
        let jobs = jobs_of(provisioner);
        let batch = jobs
            .submit_batch(
                vms.into_iter()
                    .map(|v| ("open_vm", serde_json::to_value(v).unwrap())),
            )
            .unwrap();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let results = batch.wait(deadline, |e| events.push(e.kind.clone())).await;
        (results.into_iter().map(|(_, o)| o).collect(), events)
    }

    #[tokio::test]
    async fn command_success_passes_fields_and_parses_json_output() {
        let program = script(
            "ok.sh",
            r#"echo "PROGRESS 0.5 starting $2"
echo "{\"name\":\"$VM_NAME\",\"args\":\"$*\",\"mem\":$VM_MEMORY_MB}""#,
        );
        let cmd = command(program, &[], Duration::from_secs(10));
        let (outcomes, events) = open_with(cmd, vec![vm("db-1", "pg.qcow2")]).await;
        assert_eq!(
            outcomes,
            vec![Outcome::Done(json!({
                "name": "db-1", "args": "-- db-1 2 2048 pg.qcow2", "mem": 2048
            }))]
        );
        assert!(events.contains(&JobEventKind::Progress {
            fraction: 0.5,
            message: "starting db-1".into()
        }));
    }

    /// Issue 19, finding E: `--` ends the program's options before the VM's own arguments.
    #[tokio::test]
    async fn command_gets_a_double_dash_before_the_vm_arguments() {
        let program = script("argv.sh", r#"for a in "$@"; do echo "arg=$a"; done"#);
        let cmd = command(
            program,
            &["--connect", "qemu:///system"],
            Duration::from_secs(10),
        );
        let (outcomes, _) = open_with(cmd, vec![vm("web-1", "debian-12.qcow2")]).await;
        let argv = "arg=--connect\narg=qemu:///system\narg=--\narg=web-1\narg=2\narg=2048\narg=debian-12.qcow2";
        assert_eq!(outcomes, vec![Outcome::Done(json!({ "output": argv }))]);
    }

    /// Issue 19, finding E: the provisioner itself refuses what the console should have, and
    /// runs nothing for it.
    #[tokio::test]
    async fn command_refuses_option_names_and_foreign_images_without_running() {
        let ran = temp_dir().join("ran");
        let program = script("touch.sh", &format!("echo \"$@\" >> {}", ran.display()));
        let cmd = command(program, &[], Duration::from_secs(10));
        let bad = vec![
            vm("--help", "debian-12.qcow2"),
            vm("--force", "debian-12.qcow2"),
            vm("-rf", "debian-12.qcow2"),
            vm("-", "debian-12.qcow2"),
            vm("web-1", "../../../../etc/shadow"),
            vm("web-2", "/etc/passwd"),
            vm("web-3", "not-in-catalogue.qcow2"),
        ];
        let (outcomes, _) = open_with(cmd, bad).await;
        assert_eq!(outcomes.len(), 7);
        for outcome in &outcomes {
            match outcome {
                Outcome::Failed(why) => {
                    assert!(why.contains("bad") || why.contains("catalogue"), "{why}")
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert!(!ran.exists(), "the program ran for a refused VM");
    }

    #[tokio::test]
    async fn command_failure_reports_stderr() {
        let program = script("fail.sh", "echo 'no such image' >&2\nexit 3");
        let cmd = command(program, &[], Duration::from_secs(10));
        let (outcomes, _) = open_with(cmd, vec![vm("web-1", "missing.qcow2")]).await;
        assert_eq!(
            outcomes,
            vec![Outcome::Failed("web-1: no such image".into())]
        );
    }

    /// Whether process `pid` is alive: `kill -0` reaches it and it is not a zombie (a killed
    /// orphan waits for init to reap it, and init in a container may never do so).
    fn alive(pid: &str) -> bool {
        let reached = std::process::Command::new("kill")
            .args(["-0", pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                // `pid (comm) S ...`: the state follows the last ')'.
                let rest = &stat[stat.rfind(')')? + 1..];
                rest.split_whitespace().next().map(|state| state == "Z")
            })
            .unwrap_or(false);
        reached && !zombie
    }

    /// Waits (up to 5 s) until none of `pids` is alive; the ones still alive.
    async fn survivors(pids: &[String]) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<String> = pids.iter().filter(|p| alive(p)).cloned().collect();
            if left.is_empty() || Instant::now() > until {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 5 s) until the program and its child sleep (`pids`, as the hanging script
    /// wrote them) are gone; fails if either survives.
    async fn assert_killed(pids: &[String]) {
        assert_eq!(
            survivors(pids).await,
            Vec::<String>::new(),
            "the program (pid {}) or its child sleep (pid {}) survived",
            pids[0],
            pids[1]
        );
    }

    /// A script that starts a child `sleep 60`, writes "<its pid> <the child's pid>" to `marker`,
    /// and waits for the child.
    fn hanging_script(marker: &std::path::Path) -> PathBuf {
        script(
            "hang.sh",
            &format!(
                "sleep 60 &\necho \"$$ $!\" > {}.tmp\nmv {0}.tmp {0}\nwait\necho late",
                marker.display()
            ),
        )
    }

    /// Waits (up to 10 s) for the pids the hanging script writes.
    async fn pids_in(marker: &std::path::Path) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(marker) {
                return text.split_whitespace().map(str::to_owned).collect();
            }
            assert!(Instant::now() < until, "the script did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Issue 19, finding E: at its timeout the command is killed with its whole process group:
    /// the child `sleep` it started does not survive it.
    #[tokio::test]
    async fn command_that_hangs_is_killed_with_its_children_at_its_timeout() {
        let marker = temp_dir().join("pids");
        let cmd = command(hanging_script(&marker), &[], Duration::from_secs(1));
        let started = Instant::now();
        let (outcomes, _) = open_with(cmd, vec![vm("slow-1", "x.qcow2")]).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "did not wait for the program"
        );
        match &outcomes[0] {
            Outcome::Failed(why) => assert!(why.contains("timed out"), "{why}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        let pids = pids_in(&marker).await;
        assert_eq!(pids.len(), 2, "{pids:?}");
        assert_killed(&pids).await;
    }

    /// Issue 19, finding E: when the server's shutdown grace period ends, a command still running
    /// is killed with its whole process group.
    #[tokio::test]
    async fn command_still_running_when_the_shutdown_grace_ends_is_killed_with_its_children() {
        let marker = temp_dir().join("pids");
        let cmd = command(hanging_script(&marker), &[], Duration::from_secs(300));
        let jobs = jobs_of(cmd);
        let batch = jobs
            .submit_batch([(
                "open_vm",
                serde_json::to_value(vm("slow-1", "x.qcow2")).unwrap(),
            )])
            .unwrap();
        let pids = pids_in(&marker).await;
        assert_eq!(pids.len(), 2, "{pids:?}");
        let started = Instant::now();
        jobs.shutdown(Duration::from_millis(300)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let results = batch
            .wait(tokio::time::Instant::now() + Duration::from_secs(5), |_| {})
            .await;
        assert_eq!(results[0].1, Outcome::Running, "abandoned at the grace end");
        assert_killed(&pids).await;
    }

    #[tokio::test(start_paused = true)]
    async fn simulated_opens_and_fails_broken_images() {
        let sim = Simulated {
            time_scale: 1.0,
            failure_rate: 0.0,
        };
        let p = Arc::new(sim);
        let jobs = Jobs::new(
            InProcessBackend::new(4).register("open_vm", move |ctx, input| {
                let p = p.clone();
                async move {
                    let vm: VmConfig = serde_json::from_value(input).map_err(|e| e.to_string())?;
                    p.open(vm, ctx).await
                }
            }),
        );
        let batch = jobs
            .submit_batch([
                (
                    "open_vm",
                    serde_json::to_value(vm("a", "debian.qcow2")).unwrap(),
                ),
                (
                    "open_vm",
                    serde_json::to_value(vm("b", "broken.qcow2")).unwrap(),
                ),
            ])
            .unwrap();
        let t0 = tokio::time::Instant::now();
        let results = batch.wait(t0 + Duration::from_secs(60), |_| {}).await;
        assert!(matches!(&results[0].1, Outcome::Done(v) if v["state"] == "running"));
        assert!(matches!(&results[1].1, Outcome::Failed(e) if e.contains("did not boot")));
        let took = t0.elapsed().as_secs_f64();
        assert!(
            (2.0..20.0).contains(&took),
            "realistic duration, took {took} s"
        );
    }
}
