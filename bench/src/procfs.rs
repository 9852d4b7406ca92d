//! CPU time and resident memory of processes, read from `/proc`.

use std::collections::HashMap;
use std::io;
use std::time::Instant;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// utime + stime of a process (`pid` is a number or `self`), in seconds, all threads included.
pub(crate) fn cpu_secs(pid: &str) -> io::Result<f64> {
    cpu_times(pid).map(|(user, system)| user + system)
}

/// utime and stime of a process apart (in user space, in the kernel), in seconds.
pub(crate) fn cpu_times(pid: &str) -> io::Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let (_, rest) = stat.rsplit_once(')').ok_or_else(|| bad("no ')' in stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, stime field 15.
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("short stat"))
    };
    Ok((field(11)? as f64 / USER_HZ, field(12)? as f64 / USER_HZ))
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub(crate) fn rss_kib(pid: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("no VmRSS"))
}

/// CPU seconds of every process but `exclude`, by pid. (`/proc/stat` is not used: on this
/// kind of VM its totals do not agree with the per-process figures.)
fn others_cpu(exclude: &[u32]) -> HashMap<u32, f64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if exclude.contains(&pid) {
            continue;
        }
        if let Ok(secs) = cpu_secs(&pid.to_string()) {
            out.insert(pid, secs);
        }
    }
    out
}

/// Processors available to this process.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Takes samples of the server's and the generator's CPU time, and of the whole machine's.
///
/// The server may be several processes (the nodes of a cluster): their CPU times and RSS are
/// summed. Auxiliary processes (a Redis broker, a hook backend, an emitter) are measured apart.
#[derive(Debug, Clone, Default)]
pub(crate) struct Probe {
    pids: Vec<String>,
    aux: Vec<String>,
}

/// One reading of a [`Probe`].
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    at: Instant,
    server_cpu: f64,
    server_sys: f64,
    aux_cpu: f64,
    self_cpu: f64,
    others: HashMap<u32, f64>,
}

/// What happened between two samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Wall-clock seconds.
    pub(crate) secs: f64,
    /// Server CPU seconds, summed over its processes (0 without a server pid).
    pub(crate) server_cpu: f64,
    /// Of those, the seconds in the kernel (stime): system calls, and on loopback the TCP
    /// work of the packets both ways.
    pub(crate) server_sys_cpu: f64,
    /// CPU seconds of the auxiliary processes (0 without any).
    pub(crate) aux_cpu: f64,
    /// Generator CPU seconds.
    pub(crate) self_cpu: f64,
    /// CPU used by every other process (those alive at the end of the window), in percent of
    /// the machine.
    pub(crate) other_cpu_pct: f64,
}

impl Probe {
    /// A probe of the server processes `pids` (none: only the generator is measured) and of
    /// the auxiliary processes `aux`.
    pub(crate) fn new(pids: &[u32], aux: &[u32]) -> Probe {
        Probe {
            pids: pids.iter().map(u32::to_string).collect(),
            aux: aux.iter().map(u32::to_string).collect(),
        }
    }

    /// Whether a server process is measured.
    pub(crate) fn has_server(&self) -> bool {
        !self.pids.is_empty()
    }

    /// Whether auxiliary processes are measured.
    pub(crate) fn has_aux(&self) -> bool {
        !self.aux.is_empty()
    }

    /// Reads the counters now.
    pub(crate) fn sample(&self) -> Sample {
        let sum = |pids: &[String]| -> f64 { pids.iter().filter_map(|p| cpu_secs(p).ok()).sum() };
        let server: Vec<(f64, f64)> = self.pids.iter().filter_map(|p| cpu_times(p).ok()).collect();
        Sample {
            at: Instant::now(),
            server_cpu: server.iter().map(|(user, system)| user + system).sum(),
            server_sys: server.iter().map(|(_, system)| system).sum(),
            aux_cpu: sum(&self.aux),
            self_cpu: cpu_secs("self").unwrap_or(0.0),
            others: others_cpu(&self.exclude()),
        }
    }

    fn exclude(&self) -> Vec<u32> {
        let mut pids = vec![std::process::id()];
        pids.extend(
            self.pids
                .iter()
                .chain(&self.aux)
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        pids
    }

    /// The server's resident memory in KiB (summed over its processes).
    pub(crate) fn server_rss_kib(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids
            .iter()
            .map(|p| rss_kib(p).ok())
            .sum::<Option<u64>>()
    }

    /// Whether every server process still exists (true without a pid).
    pub(crate) fn server_alive(&self) -> bool {
        self.pids
            .iter()
            .all(|p| std::fs::metadata(format!("/proc/{p}")).is_ok())
    }
}

impl Sample {
    /// The window from `self` to `later`.
    pub(crate) fn until(&self, later: &Sample) -> Window {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        let server_cpu = (later.server_cpu - self.server_cpu).max(0.0);
        let server_sys_cpu = (later.server_sys - self.server_sys).max(0.0);
        let aux_cpu = (later.aux_cpu - self.aux_cpu).max(0.0);
        let self_cpu = (later.self_cpu - self.self_cpu).max(0.0);
        // A process that started during the window counts with all its CPU time.
        let other: f64 = later
            .others
            .iter()
            .map(|(pid, t)| (t - self.others.get(pid).copied().unwrap_or(0.0)).max(0.0))
            .sum();
        let other_cpu_pct = if secs > 0.0 {
            100.0 * other / (secs * cpus() as f64)
        } else {
            0.0
        };
        Window {
            secs,
            server_cpu,
            server_sys_cpu,
            aux_cpu,
            self_cpu,
            other_cpu_pct,
        }
    }
}
