//! Opening a virtual machine: the provisioner interface, a simulated provisioner (the default),
//! and a command provisioner that runs a configured program per VM.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use socketlet::adapter::BoxFuture;
use socketlet::jobs::JobContext;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// What the console asks for: one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    /// A name, 1 to 64 characters of letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Virtual CPUs, 1 to 64.
    pub vcpus: u32,
    /// Memory in MiB, 128 to 262144.
    pub memory_mb: u32,
    /// The disk image, 1 to 128 characters of letters, digits, `-`, `_`, `.` and `/`.
    pub image: String,
}

impl VmConfig {
    /// Checks the fields (they end up as program arguments and environment variables).
    pub fn validate(&self) -> Result<(), String> {
        let ok_chars = |s: &str, extra: &[char]| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(&c))
        };
        if self.name.is_empty() || self.name.len() > 64 || !ok_chars(&self.name, &[]) {
            return Err(format!("bad VM name {:?}", self.name));
        }
        if !(1..=64).contains(&self.vcpus) {
            return Err(format!("{}: vcpus must be 1 to 64", self.name));
        }
        if !(128..=262_144).contains(&self.memory_mb) {
            return Err(format!("{}: memory_mb must be 128 to 262144", self.name));
        }
        if self.image.is_empty()
            || self.image.len() > 128
            || !ok_chars(&self.image, &['/'])
            || self.image.starts_with('-')
        {
            return Err(format!("{}: bad image {:?}", self.name, self.image));
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

/// Runs `program` once per VM, with the VM's fields as arguments (`name vcpus memory_mb image`)
/// and as environment variables (`VM_NAME`, `VM_VCPUS`, `VM_MEMORY_MB`, `VM_IMAGE`).
///
/// - exit status 0: the VM is open; the result is the program's standard output parsed as JSON,
///   or `{"output": "<stdout>"}` when it is not JSON;
/// - any other status: failed, with the last line of standard error (or the status);
/// - still running after `timeout`: killed, and failed.
///
/// A line `PROGRESS <fraction> <message>` on standard output reports progress. Output is read up
/// to 64 KiB.
#[derive(Debug, Clone)]
pub struct Command {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the VM's own.
    pub args: Vec<String>,
    /// The longest a program may run.
    pub timeout: Duration,
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
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
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
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: cannot run {}: {e}", vm.name, self.program.display()))?;
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
            Ok(done) => done,
            Err(_) => {
                // `kill_on_drop` ends the program when `child` goes out of scope below.
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

fn parse_progress(line: &str) -> Option<(f32, String)> {
    let rest = line.strip_prefix("PROGRESS ")?;
    let (fraction, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((fraction.parse().ok()?, message.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketlet::jobs::{InProcessBackend, JobEventKind, Jobs, Outcome};
    use std::sync::Arc;

    fn vm(name: &str, image: &str) -> VmConfig {
        VmConfig {
            name: name.into(),
            vcpus: 2,
            memory_mb: 2048,
            image: image.into(),
        }
    }

    #[test]
    fn validation_refuses_what_could_become_a_flag_or_a_path_trick() {
        assert!(vm("web-1", "debian-12.qcow2").validate().is_ok());
        assert!(vm("", "x").validate().is_err());
        assert!(vm("a b", "x").validate().is_err());
        assert!(vm("a;rm", "x").validate().is_err());
        assert!(vm("ok", "-rf").validate().is_err());
        assert!(vm("ok", "").validate().is_err());
        let mut big = vm("ok", "x");
        big.vcpus = 0;
        assert!(big.validate().is_err());
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

    /// Writes an executable script into a fresh temporary directory.
    fn script(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "socketlet-provision-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    async fn open_with(
        provisioner: Command,
        vms: Vec<VmConfig>,
    ) -> (Vec<Outcome>, Vec<JobEventKind>) {
        let p = Arc::new(provisioner);
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
            r#"echo "PROGRESS 0.5 starting $1"
echo "{\"name\":\"$VM_NAME\",\"args\":\"$*\",\"mem\":$VM_MEMORY_MB}""#,
        );
        let cmd = Command {
            program,
            args: vec![],
            timeout: Duration::from_secs(10),
        };
        let (outcomes, events) = open_with(cmd, vec![vm("db-1", "pg.qcow2")]).await;
        assert_eq!(
            outcomes,
            vec![Outcome::Done(json!({
                "name": "db-1", "args": "db-1 2 2048 pg.qcow2", "mem": 2048
            }))]
        );
        assert!(events.contains(&JobEventKind::Progress {
            fraction: 0.5,
            message: "starting db-1".into()
        }));
    }

    #[tokio::test]
    async fn command_failure_reports_stderr() {
        let program = script("fail.sh", "echo 'no such image' >&2\nexit 3");
        let cmd = Command {
            program,
            args: vec![],
            timeout: Duration::from_secs(10),
        };
        let (outcomes, _) = open_with(cmd, vec![vm("web-1", "missing.qcow2")]).await;
        assert_eq!(
            outcomes,
            vec![Outcome::Failed("web-1: no such image".into())]
        );
    }

    #[tokio::test]
    async fn command_that_hangs_is_killed_at_its_timeout() {
        let marker = std::env::temp_dir().join(format!("socketlet-hang-{}", rand::random::<u32>()));
        let program = script(
            "hang.sh",
            &format!("echo $$ > {}\nsleep 30\necho late", marker.display()),
        );
        let cmd = Command {
            program,
            args: vec![],
            timeout: Duration::from_millis(500),
        };
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
        // The program itself is gone: its pid no longer exists (give the kill a moment).
        let pid = std::fs::read_to_string(&marker).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "the hung program was not killed"
        );
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
