//! `report`: turns a directory of JSON results into `REPORT.md` and SVG plots.

use crate::stats::RunResult;
use crate::svg;
use crate::BoxError;
use tables::{Chart, Section, Target, CHARTS, MAIN, SECTIONS, TARGETS};

mod tables;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The parameters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReportArgs {
    /// Directory of results: `<server>/<cell>-<rep>.json`, `<server>/version.txt`.
    #[arg(long)]
    raw: PathBuf,
    /// Where to write REPORT.md and the SVG files.
    #[arg(long)]
    out: PathBuf,
    /// When the runs were made (shown as is).
    #[arg(long, default_value = "")]
    date: String,
    /// `full` or `smoke`.
    #[arg(long, default_value = "full")]
    mode: String,
    /// The command that produced the results (shown as is).
    #[arg(long, default_value = "bench/run.sh")]
    command: String,
}

/// The median and spread of one figure over the ok runs of a cell.
#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

struct Data {
    runs: Vec<RunResult>,
    servers: Vec<String>,
    versions: BTreeMap<String, String>,
}

impl Data {
    fn runs_of<'a>(
        &'a self,
        cell: &'a str,
        server: &'a str,
    ) -> impl Iterator<Item = &'a RunResult> {
        self.runs
            .iter()
            .filter(move |r| r.cell == cell && r.server == server)
    }

    /// `a`'s figure over `b`'s, for each repetition in which both completed with a finite
    /// figure: the spread around the ratio of their medians.
    fn paired_ratios(&self, cell: &str, a: &str, b: &str, metric: &str) -> Vec<f64> {
        let figure = |r: &RunResult| {
            r.ok.then(|| r.metrics.get(metric).copied())
                .flatten()
                .filter(|x| x.is_finite())
        };
        self.runs_of(cell, a)
            .filter_map(|ours| {
                let rep = ours.rep?;
                let theirs = self.runs_of(cell, b).find(|r| r.rep == Some(rep) && r.ok)?;
                let (x, y) = (figure(ours)?, figure(theirs)?);
                (y > 0.0).then(|| x / y)
            })
            .collect()
    }

    fn stat(&self, cell: &str, server: &str, metric: &str) -> Option<Stat> {
        let mut v: Vec<f64> = self
            .runs_of(cell, server)
            .filter(|r| r.ok)
            .filter_map(|r| r.metrics.get(metric).copied())
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// Whether `server` has any result.
    fn has(&self, server: &str) -> bool {
        self.runs.iter().any(|r| r.server == server)
    }

    fn median(&self, cell: &str, server: &str, metric: &str) -> Option<f64> {
        self.stat(cell, server, metric).map(|s| s.median)
    }

    fn cell_text(&self, cell: &str, server: &str, metric: &str) -> String {
        let total = self.runs_of(cell, server).count();
        let ok = self.runs_of(cell, server).filter(|r| r.ok).count();
        if total == 0 {
            return "-".to_owned();
        }
        if ok == 0 {
            return "failed (see below)".to_owned();
        }
        let Some(s) = self.stat(cell, server, metric) else {
            return "-".to_owned();
        };
        let mut t = if s.n > 1 {
            format!("{} ({}-{})", num(s.median), num(s.min), num(s.max))
        } else {
            num(s.median)
        };
        if ok < total {
            let _ = write!(t, " [{ok}/{total} runs ok]");
        }
        t
    }
}

fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn load(raw: &Path) -> Result<Data, BoxError> {
    let mut runs = Vec::new();
    let mut versions = BTreeMap::new();
    for entry in std::fs::read_dir(raw)? {
        let dir = entry?.path();
        if !dir.is_dir() {
            continue;
        }
        let server = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Ok(v) = std::fs::read_to_string(dir.join("version.txt")) {
            versions.insert(server.clone(), v.trim().to_owned());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)?;
            match serde_json::from_str::<RunResult>(&text) {
                Ok(mut r) => {
                    r.rep = rep_of(&f);
                    runs.push(r)
                }
                Err(e) => eprintln!("skipping {}: {e}", f.display()),
            }
        }
    }
    // The main tables' servers first, then the sections' in their order.
    let mut servers: Vec<String> = Vec::new();
    for s in MAIN
        .iter()
        .chain(SECTIONS.iter().flat_map(|sec| sec.servers))
    {
        if !servers.iter().any(|x| x == s) && runs.iter().any(|r| r.server == *s) {
            servers.push((*s).to_owned());
        }
    }
    for r in &runs {
        if !servers.contains(&r.server) {
            servers.push(r.server.clone());
        }
    }
    Ok(Data {
        runs,
        servers,
        versions,
    })
}

/// The repetition of a result file named `<cell>-<rep>.json`, as `run.sh` names them.
fn rep_of(file: &Path) -> Option<u32> {
    file.file_stem()?.to_str()?.rsplit_once('-')?.1.parse().ok()
}

/// The parameters of `soak-report`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SoakReportArgs {
    /// The soak's result (JSON, as `soak --out` wrote it); its plots are written next to it.
    #[arg(long)]
    result: PathBuf,
    /// Where to write SOAK.md.
    #[arg(long)]
    out: PathBuf,
    /// The server and its setup (shown as is).
    #[arg(long, default_value = "")]
    server_version: String,
    /// When the run was made (shown as is).
    #[arg(long, default_value = "")]
    date: String,
    /// The command that made the run (shown as is).
    #[arg(long, default_value = "bench/soak.sh")]
    command: String,
}

/// One column of a soak's windows: its key in a sample, and its title.
const SOAK_COLUMNS: &[(&str, &str)] = &[
    ("t_secs", "t (s)"),
    ("rss_mib", "RSS (MiB)"),
    ("server_cpu_pct", "server CPU %"),
    ("gen_cpu_pct", "generator CPU %"),
    ("other_cpu_pct", "other processes' CPU % (of the machine)"),
    ("echos", "echos"),
    ("echo_p50_ms", "echo p50 (ms)"),
    ("echo_p99_ms", "echo p99 (ms)"),
    ("echo_max_ms", "echo max (ms)"),
    ("broadcasts", "broadcasts"),
    ("deliveries", "deliveries"),
    ("broadcast_last_p50_ms", "last delivery p50 (ms)"),
    ("broadcast_last_max_ms", "last delivery max (ms)"),
    ("errors", "errors"),
];

/// A soak figure as text: counts as whole numbers, the rest as [`num`] does.
fn soak_num(key: &str, v: f64) -> String {
    const COUNTS: &[&str] = &[
        "errors",
        "clients_lost",
        "deliveries_missing",
        "echos",
        "broadcasts",
        "deliveries",
    ];
    if COUNTS.contains(&key) {
        format!("{v:.0}")
    } else {
        num(v)
    }
}

/// Writes SOAK.md and the soak's plots (RSS, and latency, over time).
pub(crate) fn soak(args: &SoakReportArgs) -> Result<(), BoxError> {
    let text = std::fs::read_to_string(&args.result)?;
    let r: RunResult = serde_json::from_str(&text)?;
    if r.samples.is_empty() {
        return Err(format!("{}: no samples", args.result.display()).into());
    }
    let plots = args
        .result
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    std::fs::create_dir_all(&args.out)?;
    std::fs::create_dir_all(&plots)?;
    // The plots' paths as SOAK.md links them.
    let link = |file: &str| {
        let path = plots.join(file);
        let out = args.out.canonicalize().unwrap_or_else(|_| args.out.clone());
        let full = path.canonicalize().unwrap_or_else(|_| path.clone());
        full.strip_prefix(&out)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| full.to_string_lossy().into_owned())
    };
    let series = |key: &str, name: &str| svg::Series {
        name: name.to_owned(),
        points: r
            .samples
            .iter()
            .filter_map(|s| Some((s.get("t_secs").copied()? / 60.0, s.get(key).copied()?)))
            .collect(),
    };
    let end = r
        .samples
        .last()
        .and_then(|s| s.get("t_secs").copied())
        .unwrap_or(0.0)
        / 60.0;
    let step = if end > 20.0 { 5.0 } else { 1.0 };
    let ticks: Vec<(f64, String)> = (0..=(end / step) as usize)
        .map(|k| (k as f64 * step, format!("{}", k as f64 * step)))
        .collect();
    std::fs::write(
        plots.join("rss.svg"),
        svg::lines(
            "Soak: server RSS over time",
            "minutes",
            "MiB",
            &ticks,
            &[series("rss_mib", "server RSS")],
            false,
        ),
    )?;
    std::fs::write(
        plots.join("latency.svg"),
        svg::lines(
            "Soak: latency per window over time",
            "minutes",
            "ms (log)",
            &ticks,
            &[
                series("echo_p99_ms", "echo p99"),
                series("echo_p50_ms", "echo p50"),
                series("broadcast_last_max_ms", "broadcast max"),
                series("broadcast_last_p50_ms", "broadcast p50"),
            ],
            true,
        ),
    )?;

    let raw = link(
        args.result
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("soak.json"),
    );
    let m = |k: &str| r.metrics.get(k).copied();
    let p = |k: &str| r.params.get(k).map_or("-".to_owned(), |v| v.to_string());
    let f = |k: &str| m(k).map_or("-".to_owned(), |v| soak_num(k, v));
    let mut md = String::new();
    let _ = writeln!(md, "# socketlet soak\n");
    let _ = writeln!(
        md,
        "Made by `{}` on {} with the benchmark's load generator (`bench/`, scenario `soak`): {} \
         WebSocket clients stay connected for {} s; each sends {} echo(s) with ack a second on a \
         fixed schedule (open loop; latency is timed from the scheduled send), and one more \
         client sends a `broadcast` to every socket every {} ms. Every {} s the generator records \
         a window: the server's RSS (`VmRSS`) and CPU, the echo latency of that window, the \
         broadcasts and deliveries, the errors (connections lost, acks missing after {} s, \
         deliveries missing). The RSS drift is measured from the end of the {} s warm-up to the \
         end. Raw result: [`{}`]({}).\n",
        args.command,
        if args.date.is_empty() {
            "an unrecorded date"
        } else {
            &args.date
        },
        p("clients"),
        p("secs"),
        p("echo_rate"),
        p("broadcast_ms"),
        p("sample_secs"),
        p("ack_timeout"),
        p("warmup_secs"),
        raw,
        raw,
    );
    let _ = writeln!(md, "## Machine and server\n");
    let _ = writeln!(md, "| | |\n| --- | --- |");
    for (k, v) in machine() {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    if !args.server_version.is_empty() {
        let _ = writeln!(md, "| server | {} |", args.server_version);
    }
    if let Some(n) = r.params.get("gen_nofile") {
        let _ = writeln!(md, "| generator open-files limit | {n} |");
    }
    let _ = writeln!(
        md,
        "\n## Result: {}\n",
        if r.ok { "passed" } else { "FAILED" }
    );
    let _ = writeln!(md, "| figure | value |\n| --- | --- |");
    let rows: &[(&str, &str)] = &[
        (
            "errors",
            "errors (connections lost, acks missing, failed broadcasts)",
        ),
        ("clients_lost", "clients whose connection ended early"),
        ("deliveries_missing", "broadcast deliveries missing"),
        ("echos", "echos acked"),
        ("broadcasts", "broadcasts sent"),
        ("connect_secs", "seconds to connect every client"),
        ("rss_first_mib", "RSS at the first window (MiB)"),
        ("rss_start_mib", "RSS at the end of the warm-up (MiB)"),
        ("rss_end_mib", "RSS at the end (MiB)"),
        ("rss_drift_pct", "RSS drift, warm-up end to end (%)"),
        ("rss_max_mib", "highest RSS (MiB)"),
        (
            "rss_after_mib",
            "RSS after the traffic, the clients still connected (MiB)",
        ),
        ("echo_p99_min_ms", "echo p99 per window: lowest (ms)"),
        ("echo_p99_median_ms", "echo p99 per window: median (ms)"),
        ("echo_p99_max_ms", "echo p99 per window: highest (ms)"),
        (
            "broadcast_last_p50_ms",
            "broadcast to the last client: p50 (ms)",
        ),
        (
            "broadcast_last_p99_ms",
            "broadcast to the last client: p99 (ms)",
        ),
        (
            "server_cpu_pct_mean",
            "server CPU, mean of the windows (% of one core)",
        ),
        (
            "gen_cpu_pct_mean",
            "generator CPU, mean of the windows (% of one core)",
        ),
        (
            "other_cpu_pct_mean",
            "other processes' CPU, mean of the windows (% of the machine)",
        ),
    ];
    for (k, label) in rows {
        let _ = writeln!(md, "| {label} | {} |", f(k));
    }
    if !r.errors.is_empty() {
        let _ = writeln!(md, "\nErrors: {}", distinct_errors(&r.errors));
    }
    let _ = writeln!(
        md,
        "\n## Over time\n\n![RSS over time]({})\n\n![latency over time]({})\n\nPer window: the \
         echo latency's p50 and p99, and the median and highest time from a broadcast's send to \
         its last delivery. The server under test and the generator each run on one thread: an \
         echo that comes while either is writing or reading a broadcast's {} deliveries waits \
         for it, which is most of the p99. The other processes' share of the machine is in the \
         windows' table.\n",
        link("rss.svg"),
        link("latency.svg"),
        p("clients"),
    );
    let _ = writeln!(md, "## Windows\n");
    let titles: Vec<&str> = SOAK_COLUMNS.iter().map(|c| c.1).collect();
    let _ = writeln!(md, "| {} |", titles.join(" | "));
    let _ = writeln!(md, "|{}", " --- |".repeat(titles.len()));
    for s in &r.samples {
        let cells: Vec<String> = SOAK_COLUMNS
            .iter()
            .map(|(k, _)| s.get(*k).map_or("-".to_owned(), |v| soak_num(k, *v)))
            .collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    std::fs::write(args.out.join("SOAK.md"), md)?;
    println!(
        "wrote {} and the plots in {}",
        args.out.join("SOAK.md").display(),
        plots.display()
    );
    Ok(())
}

/// The machine the runs in `raw` were made on: as the report first written from them recorded
/// it (`raw/machine.tsv`, a fact a line: name, a tab, value), else this one, which is then
/// recorded there; so that the report written again later, elsewhere or after a kernel update,
/// still names the machine of the runs. `bench/run.sh` removes the record before it measures.
fn machine_of(raw: &Path) -> Vec<(String, String)> {
    let path = raw.join("machine.tsv");
    let recorded: Vec<(String, String)> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if !recorded.is_empty() {
        return recorded;
    }
    let facts = machine();
    let text: String = facts.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("could not record the machine in {}: {e}", path.display());
    }
    facts
}

/// This machine: processors, CPU model, memory and kernel.
fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let mem = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".to_owned());
    vec![
        (
            "processors (nproc)".to_owned(),
            crate::procfs::cpus().to_string(),
        ),
        ("CPU".to_owned(), model),
        ("memory".to_owned(), mem),
        (
            "kernel".to_owned(),
            read("/proc/sys/kernel/osrelease").trim().to_owned(),
        ),
    ]
}

fn ratio_text(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    }
}

fn diff_text(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => {
            let d = a - b;
            if d > 0.0 {
                format!("+{}", num(d))
            } else {
                num(d)
            }
        }
        _ => "-".to_owned(),
    }
}

fn targets(data: &Data, md: &mut String) {
    let _ = writeln!(
        md,
        "| issue | target | subject | its figure | peer | ratio | met? |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |");
    for t in TARGETS {
        let ours = data.median(t.cell, t.subject, t.metric);
        let mut paired = Vec::new();
        let (peer_text, ratio_cell, met) = match t.ratio {
            Some((peer, bound, at_most)) => {
                let theirs = data.median(t.cell, peer, t.metric);
                let meets = |ratio: f64| {
                    if at_most {
                        ratio <= bound
                    } else {
                        ratio >= bound
                    }
                };
                let met = match (ours, theirs) {
                    (Some(a), Some(b)) if b > 0.0 => Some(meets(a / b)),
                    _ => None,
                };
                paired = data
                    .paired_ratios(t.cell, t.subject, peer, t.metric)
                    .into_iter()
                    .map(|ratio| (ratio, meets(ratio)))
                    .collect();
                let mut ratio_cell = ratio_text(ours, theirs);
                if paired.len() > 1 {
                    let (lo, hi) = paired
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(r, _)| {
                            (lo.min(r), hi.max(r))
                        });
                    let (lo, hi) = (format!("{lo:.2}"), format!("{hi:.2}"));
                    if lo != hi {
                        let _ = write!(ratio_cell, " ({lo}-{hi})");
                    }
                }
                (
                    format!("{peer}: {}", theirs.map_or("-".to_owned(), num)),
                    ratio_cell,
                    met,
                )
            }
            None => (
                "-".to_owned(),
                "-".to_owned(),
                match (ours, t.absolute) {
                    (Some(a), Some(bound)) => Some(a <= bound),
                    _ => None,
                },
            ),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            t.issue,
            t.what,
            t.subject,
            ours.map_or("-".to_owned(), num),
            peer_text,
            ratio_cell,
            match met {
                Some(true) => "met".to_owned(),
                Some(false) => missed(data, t, &paired),
                None => "not measured".to_owned(),
            }
        );
    }
}

/// A missed target's verdict: with the repetitions whose own ratio (`paired`: each with
/// whether it meets the target) would have met it, if any; and for a target the generator may
/// cap, the share of a core the generator took (its median over the subject's runs) when that
/// is most of one.
fn missed(data: &Data, t: &Target, paired: &[(f64, bool)]) -> String {
    /// From this share of a core on, the generator rather than the server sets the pace.
    const GENERATOR_BOUND_PCT: f64 = 80.0;
    let mut verdict = "**missed**".to_owned();
    let met = paired.iter().filter(|(_, met)| *met).count();
    if met > 0 && paired.len() > 1 {
        let _ = write!(verdict, " (met in {met} of {} repetitions)", paired.len());
    }
    match data.median(t.cell, t.subject, "gen_cpu_pct") {
        Some(pct) if t.generator_permitting && pct >= GENERATOR_BOUND_PCT => {
            let _ = write!(verdict, ": the generator took {pct:.0} % of a core");
        }
        _ => {}
    }
    verdict
}

fn plots(data: &Data, out: &Path) -> Result<Vec<(String, String)>, BoxError> {
    let mut written = Vec::new();
    // Open-loop latency percentiles: the run with the median p99 of each server.
    let mut series = Vec::new();
    for s in &data.servers {
        let mut runs: Vec<&RunResult> = data
            .runs_of("echo-rate", s)
            .filter(|r| r.ok && !r.latency_curve.is_empty())
            .collect();
        runs.sort_by(|a, b| {
            let p = |r: &RunResult| r.metrics.get("latency_p99_ms").copied().unwrap_or(0.0);
            p(a).total_cmp(&p(b))
        });
        if let Some(r) = runs.get(runs.len() / 2) {
            let points = r
                .latency_curve
                .iter()
                .filter(|(q, _)| *q >= 0.5 && *q < 1.0)
                .map(|(q, ms)| (-(1.0 - q).log10(), *ms))
                .collect();
            series.push(svg::Series {
                name: s.clone(),
                points,
            });
        }
    }
    if !series.is_empty() {
        let ticks: Vec<(f64, String)> = [
            (0.5, "p50"),
            (0.9, "p90"),
            (0.99, "p99"),
            (0.999, "p99.9"),
            (0.9999, "p99.99"),
        ]
        .iter()
        .map(|(q, l)| (-(1.0f64 - q).log10(), (*l).to_owned()))
        .collect();
        let chart = svg::lines(
            "Echo latency, open loop, 1k clients x 10/s (from the scheduled send)",
            "percentile",
            "latency (ms, log scale)",
            &ticks,
            &series,
            true,
        );
        std::fs::write(out.join("latency.svg"), chart)?;
        written.push((
            "latency.svg".to_owned(),
            "open-loop echo latency percentiles".to_owned(),
        ));
    }
    for chart in CHARTS {
        if write_chart(chart, data, out)? {
            written.push((chart.file.to_owned(), chart.alt.to_owned()));
        }
    }
    Ok(written)
}

/// Writes `chart` into `out`; false (and nothing written) when none of its cells has results.
fn write_chart(chart: &Chart, data: &Data, out: &Path) -> Result<bool, BoxError> {
    let servers: Vec<String> = chart
        .servers
        .iter()
        .filter(|s| data.has(s))
        .map(|s| (*s).to_owned())
        .collect();
    let values: Vec<Vec<Option<f64>>> = servers
        .iter()
        .map(|s| {
            chart
                .groups
                .iter()
                .map(|(c, m, _)| data.median(c, s, m))
                .collect()
        })
        .collect();
    if !values.iter().flatten().any(Option::is_some) {
        return Ok(false);
    }
    let labels: Vec<String> = chart
        .groups
        .iter()
        .map(|(_, _, l)| (*l).to_owned())
        .collect();
    let svg = svg::bars(
        chart.title,
        chart.axis,
        &labels,
        &servers,
        &values,
        chart.log,
    );
    std::fs::write(out.join(chart.file), svg)?;
    Ok(true)
}

/// Writes one section: a column per server that has results, then the ratios whose two
/// servers have; nothing when none of its servers has results in its cells.
fn section_table(data: &Data, section: &Section, md: &mut String) {
    let servers: Vec<&str> = section
        .servers
        .iter()
        .copied()
        .filter(|s| {
            section
                .rows
                .iter()
                .any(|r| data.runs_of(r.cell, s).next().is_some())
        })
        .collect();
    if servers.is_empty() {
        return;
    }
    let ratios: Vec<(&str, &str)> = section
        .ratios
        .iter()
        .copied()
        .filter(|(a, b)| servers.contains(a) && servers.contains(b))
        .collect();
    let diffs: Vec<(&str, &str)> = section
        .diffs
        .iter()
        .copied()
        .filter(|(a, b)| servers.contains(a) && servers.contains(b))
        .collect();
    let _ = writeln!(md, "## {}\n\n{}\n", section.title, section.intro);
    let mut head = String::from("| measure |");
    let mut rule = String::from("| --- |");
    for s in &servers {
        let _ = write!(head, " {s} |");
        rule.push_str(" --- |");
    }
    for (a, b) in &ratios {
        let _ = write!(head, " {a} / {b} |");
        rule.push_str(" --- |");
    }
    for (a, b) in &diffs {
        let _ = write!(head, " {a} - {b} |");
        rule.push_str(" --- |");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    for r in section.rows {
        if !servers
            .iter()
            .any(|s| data.runs_of(r.cell, s).next().is_some())
        {
            continue;
        }
        let mut line = format!("| {} |", r.label);
        for s in &servers {
            let _ = write!(line, " {} |", data.cell_text(r.cell, s, r.metric));
        }
        for (a, b) in &ratios {
            let _ = write!(
                line,
                " {} |",
                ratio_text(
                    data.median(r.cell, a, r.metric),
                    data.median(r.cell, b, r.metric)
                )
            );
        }
        for (a, b) in &diffs {
            let _ = write!(
                line,
                " {} |",
                diff_text(
                    data.median(r.cell, a, r.metric),
                    data.median(r.cell, b, r.metric)
                )
            );
        }
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(md);
}

/// Writes the report.
pub(crate) fn run(args: &ReportArgs) -> Result<(), BoxError> {
    let data = load(&args.raw)?;
    std::fs::create_dir_all(&args.out)?;
    let mut md = String::new();
    let _ = writeln!(md, "# socketlet benchmark report\n");
    let _ =
        writeln!(
        md,
        "Made by `{}` ({} mode) on {}. Every figure is measured by the same Rust load generator \
         (`bench/`, Engine.IO v4 / Socket.IO v5 over WebSocket and long-polling) against one \
         server at a time, on loopback, each server started fresh for each run. Cells show the \
         median of the runs that completed, with the spread (min-max) when there are several; \
         ratios are the first named server's median over the second's (socketlet's over the \
         peer's in the main tables; below 1 is better for CPU, memory and latency, above 1 for \
         rates). Sections 6 to 14 are the cells of issues 21, 23, 24 and 25 (their servers \
         are named in the table below).\n",
        args.command,
        args.mode,
        if args.date.is_empty() { "an unrecorded date" } else { &args.date }
    );
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "| | |\n| --- | --- |");
    for (k, v) in machine_of(&args.raw) {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(md, "| date | {} |", args.date);
    let _ = writeln!(md, "\n## Servers\n");
    let _ = writeln!(md, "| server | version and setup |\n| --- | --- |");
    for s in &data.servers {
        let _ = writeln!(
            md,
            "| {s} | {} |",
            data.versions.get(s).map_or("-", String::as_str)
        );
    }
    let _ = writeln!(
        md,
        "\nServer CPU is `utime + stime` of the server process from `/proc/<pid>/stat` over the \
         measured phase only, divided by the operations; RSS is `VmRSS` from \
         `/proc/<pid>/status`. The generator runs on one thread (plus a pacer thread in the open \
         loop); its own CPU per operation is shown where it matters. Most of it, as of the \
         server's, is the kernel's loopback TCP work (a write on one side runs the receive \
         path of the other), so it cannot be far below that of the leanest servers. The servers are started with the open-files limit raised to the hard \
         limit of the machine.\n"
    );

    if let Some(b) = data
        .runs
        .iter()
        .find_map(|r| r.params.get("budget_secs").and_then(|v| v.as_f64()))
    {
        let _ = writeln!(
            md,
            "Measured phases of the connect, closed-loop echo, broadcast and polling cells start \
             no new operation after {b} s: a slow server then does fewer operations than the \
             counts below (its `count` in the raw results), which is no failure. The idle and \
             open-loop cells always run in full.\n"
        );
    }
    let _ = writeln!(
        md,
        "## Targets\n\nThe ratio is of the medians; in brackets, where it differs, the lowest \
         and highest ratio of the two servers' runs in the same repetition of the cell (in a full \
         run, made with only the cell's other servers between them): how far it moved within \
         the run. A missed target says in how many repetitions that ratio met it, if any.\n"
    );
    targets(&data, &mut md);
    let _ = writeln!(md);

    for section in SECTIONS {
        section_table(&data, section, &mut md);
    }

    let written = plots(&data, &args.out)?;
    if !written.is_empty() {
        let _ = writeln!(md, "## Plots\n");
        for (file, what) in &written {
            let _ = writeln!(md, "![{what}]({file})\n");
        }
    }

    let _ = writeln!(md, "## Failed runs and noise\n");
    let mut any = false;
    for r in &data.runs {
        if !r.ok {
            any = true;
            let _ = writeln!(
                md,
                "- **{} {}** failed: {}",
                r.server,
                r.cell,
                distinct_errors(&r.errors)
            );
        }
    }
    for r in &data.runs {
        if let Some(o) = r.metrics.get("other_cpu_pct") {
            if *o > 15.0 {
                any = true;
                let _ = writeln!(
                    md,
                    "- {} {}: other CPU use (other processes, or kernel threads such as ksoftirqd) was {:.0} % of the machine during the measured phase",
                    r.server, r.cell, o
                );
            }
        }
    }
    if !any {
        let _ = writeln!(md, "None: every run completed, and no other process used more than 15 % of the machine during a measured phase.");
    }
    let total = data.runs.len();
    let ok = data.runs.iter().filter(|r| r.ok).count();
    let _ = writeln!(md, "\n{ok} of {total} runs completed.");

    std::fs::write(args.out.join("REPORT.md"), md)?;
    println!("wrote {}", args.out.join("REPORT.md").display());
    Ok(())
}

/// The errors of a run, each once, with how many times it came when more than once (the
/// clients of a run often fail the same way).
fn distinct_errors(errors: &[String]) -> String {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for e in errors {
        match seen.iter_mut().find(|(s, _)| *s == e.as_str()) {
            Some((_, n)) => *n += 1,
            None => seen.push((e, 1)),
        }
    }
    let parts: Vec<String> = seen
        .into_iter()
        .map(|(e, n)| {
            if n > 1 {
                format!("{e} (x{n})")
            } else {
                e.to_owned()
            }
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::{distinct_errors, missed, rep_of, section_table, targets, Data, SECTIONS, TARGETS};
    use crate::stats::RunResult;
    use std::path::Path;

    fn run(server: &str, cell: &str, metric: &str, value: f64) -> RunResult {
        let mut r = RunResult::new("echo", cell, server);
        r.metric(metric, value);
        r
    }

    #[test]
    fn a_section_shows_the_servers_that_ran_and_their_ratios() {
        let data = Data {
            runs: vec![
                run("socketlet", "story-echo-max", "server_cpu_us_per_op", 10.0),
                run("python4", "story-echo-max", "server_cpu_us_per_op", 400.0),
            ],
            servers: vec!["socketlet".into(), "python4".into()],
            versions: Default::default(),
        };
        let story = SECTIONS
            .iter()
            .find(|s| s.title.contains("story"))
            .expect("the story's section");
        let mut md = String::new();
        section_table(&data, story, &mut md);
        assert!(
            md.contains("| measure | socketlet | python4 | socketlet / python4 |"),
            "{md}"
        );
        assert!(
            md.contains("| echo with ack: server CPU per ack (us) | 10.0 | 400 | 0.03x |"),
            "{md}"
        );
        // Rows of cells that did not run are left out; sections with no results at all too.
        assert!(!md.contains("connects/s"), "{md}");
        let cluster = SECTIONS
            .iter()
            .find(|s| s.title.contains("cluster"))
            .expect("cluster");
        let mut none = String::new();
        section_table(&data, cluster, &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn a_section_with_differences_shows_what_a_variant_adds() {
        let data = Data {
            runs: vec![
                run(
                    "socketlet",
                    "recovery-broadcast-1k",
                    "server_cpu_us_per_op",
                    2.0,
                ),
                run(
                    "socketlet-recovery",
                    "recovery-broadcast-1k",
                    "server_cpu_us_per_op",
                    2.5,
                ),
                run(
                    "socketlet",
                    "recovery-sessions-1k",
                    "rss_per_kept_session_kib",
                    0.01,
                ),
                run(
                    "socketlet-recovery",
                    "recovery-sessions-1k",
                    "rss_per_kept_session_kib",
                    0.4,
                ),
            ],
            servers: vec!["socketlet".into(), "socketlet-recovery".into()],
            versions: Default::default(),
        };
        let recovery = SECTIONS
            .iter()
            .find(|s| s.title.contains("recovery"))
            .expect("the recovery section");
        let mut md = String::new();
        section_table(&data, recovery, &mut md);
        assert!(
            md.contains(
                "| measure | socketlet | socketlet-recovery | socketlet-recovery / socketlet | \
                 socketlet-recovery - socketlet |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| broadcast 1k: server CPU per delivery (us) | 2.00 | 2.50 | 1.25x | +0.500 |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| 1k: RSS per kept session, round 2 (KiB) | 0.010 | 0.400 | 40.00x | +0.390 |"
            ),
            "{md}"
        );
    }

    #[test]
    fn a_miss_the_generator_may_cause_says_how_much_of_a_core_it_took() {
        let two_workers = TARGETS
            .iter()
            .find(|t| t.subject == "socketlet-2w")
            .expect("the two workers' target");
        let cluster = TARGETS
            .iter()
            .find(|t| t.subject == "socketlet-cluster")
            .expect("a cluster target");
        let data = |gen_pct: f64| Data {
            runs: vec![
                run(
                    two_workers.subject,
                    two_workers.cell,
                    "gen_cpu_pct",
                    gen_pct,
                ),
                run(cluster.subject, cluster.cell, "gen_cpu_pct", gen_pct),
            ],
            servers: vec!["socketlet-2w".into(), "socketlet-cluster".into()],
            versions: Default::default(),
        };
        assert_eq!(
            missed(&data(87.4), two_workers, &[]),
            "**missed**: the generator took 87 % of a core"
        );
        // A generator with room to spare, or a target it cannot cap: a plain miss.
        assert_eq!(missed(&data(60.0), two_workers, &[]), "**missed**");
        assert_eq!(missed(&data(87.4), cluster, &[]), "**missed**");
        assert_eq!(
            missed(
                &data(87.4),
                two_workers,
                &[(1.7, true), (1.0, false), (1.1, false)]
            ),
            "**missed** (met in 1 of 3 repetitions): the generator took 87 % of a core"
        );
        // A single pair says nothing the ratio does not.
        assert_eq!(
            missed(&data(60.0), two_workers, &[(1.7, true)]),
            "**missed**"
        );
    }

    #[test]
    fn a_results_repetition_is_read_from_its_file_name() {
        assert_eq!(
            rep_of(Path::new("raw/socketlet/broadcast-10k-tail-3.json")),
            Some(3)
        );
        assert_eq!(rep_of(Path::new("raw/node/echo-max-12.json")), Some(12));
        assert_eq!(rep_of(Path::new("raw/node/idle-ws-10k.json")), None);
        assert_eq!(rep_of(Path::new("raw/node/echo.json")), None);
    }

    #[test]
    fn a_targets_ratio_shows_how_far_it_moved_between_repetitions() {
        let rep = |server: &str, n: u32, value: f64| {
            let mut r = run(server, "polling-echo", "per_sec", value);
            r.rep = Some(n);
            r
        };
        let failed = {
            let mut r = rep("socketioxide", 4, 1.0);
            r.ok = false;
            r
        };
        let data = Data {
            // Out of order, as files of several runs may be: pairs go by repetition.
            runs: vec![
                rep("socketlet", 3, 140.0),
                rep("socketlet", 1, 100.0),
                rep("socketioxide", 1, 80.0),
                rep("socketioxide", 3, 100.0),
                rep("socketlet", 2, 90.0),
                rep("socketioxide", 2, 100.0),
                // A repetition the peer did not complete is left out of the pairs.
                rep("socketlet", 4, 500.0),
                failed,
            ],
            servers: vec!["socketlet".into(), "socketioxide".into()],
            versions: Default::default(),
        };
        let mut pairs = data.paired_ratios("polling-echo", "socketlet", "socketioxide", "per_sec");
        pairs.sort_by(f64::total_cmp);
        assert_eq!(pairs, [0.9, 1.25, 1.4]);
        let mut md = String::new();
        targets(&data, &mut md);
        // Medians 120 (of four runs) and 100; met (>= 1.3x) by the third pair only.
        assert!(
            md.contains(
                "| polling requests/s >= 1.3x socketioxide's | socketlet | 120 | \
                 socketioxide: 100 | 1.20x (0.90-1.40) | **missed** (met in 1 of 3 repetitions) |"
            ),
            "{md}"
        );
    }

    #[test]
    fn repeated_errors_are_counted_once() {
        let errors = [
            "a".to_owned(),
            "b".to_owned(),
            "a".to_owned(),
            "a".to_owned(),
        ];
        assert_eq!(distinct_errors(&errors), "a (x3); b");
        assert_eq!(distinct_errors(&[]), "");
    }
}
