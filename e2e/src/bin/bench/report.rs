//! The report: one table per object count, tapmon beside kube-state-metrics with the ratio,
//! then memory through churn, then where the targets stand.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use tapmon_e2e::{Cluster, root};

use crate::measure::{Latencies, LeakResult, SideResult};
use crate::sides::Side;
use tapmon_e2e::probe::Usage;

/// What one run measured, and on what.
pub struct Report {
    command: String,
    environment: Vec<(String, String)>,
    /// Per object count: tapmon's result, then kube-state-metrics'.
    pub scales: Vec<(usize, Vec<SideResult>)>,
    /// The churn and CRD rounds, when run.
    pub leak: Vec<LeakResult>,
    /// The growth chart's file name, beside the report, once there is one.
    pub chart: Option<String>,
}

const METHOD: &str = "\
Objects are copies of the fixture TAP environment (`e2e/fixtures/tap`: 21 kinds, their \
proportions, sizes, owners and status), one copy per set of namespaces, written by \
`tapmon_e2e::generate` (server-side apply, 32 requests in flight). tapmon runs one TapMonitor \
for every group; kube-state-metrics runs `--custom-resource-state-only` with the same presets \
(`tapmon presets`). Each program runs alone, pinned to core 1; kube-apiserver, etcd, the \
controller manager and this harness are pinned to core 0. Each program starts once the \
control plane has used under 10% of its core for 2 s in a row (after objects are written, its \
garbage collector keeps that core busy for a while, and the harness that scrapes shares it).

- **First complete scrape**: from process start to the first scrape (plain, polled 250 ms \
apart) that shows the final series count; tapmon's count must equal what its engine computes \
offline for the generated objects; kube-state-metrics' must reach four fifths of what the \
engine computes for the config it runs (an upper bound: it leaves out Info series without labels \
of their own) and then hold for 5 s. CPU is the \
program's user+system time at that poll, including the polls it served.
- **Scrape**: connect to last byte over loopback, sequential, each checked for the full series \
count; gzip scrapes send `Accept-Encoding: gzip` (kube-state-metrics runs with \
`--enable-gzip-encoding`). Bytes are the body as sent. Throughput is plain bytes / p50.
- **Update to series**: a Workload's condition gets a new `lastTransitionTime` (and status), \
timed from the API server's acknowledgement of the status patch to the start of the first \
scrape that shows it. *Full scrapes* (both programs): the full exposition scraped back to back; \
an upper bound with the resolution of one scrape (0: the first scrape sent after the \
acknowledgement already showed it). *Fine* (tapmon only): a second TapMonitor reading only the \
Workload's namespace and group shares tapmon's watches, so each event reaches both monitors \
together, and its few-kilobyte scrape is polled every millisecond; once with tapmon otherwise \
idle, once while another thread of the harness scrapes the full exposition back to back. \
*API server to a watch in the harness*: the same rounds, acknowledgement to the event on the \
harness's own watch of the Workload (on the control plane's core), for reference. The target \
is checked against the fine probe under full scrapes.
- **RSS**: peak is `VmHWM`, steady is `VmRSS` after the scrapes and updates and 2 s of rest.
- **Memory through churn**: both programs at once on the same objects; a round of churn \
deletes 10% of the objects (ones that own nothing) and creates as many new ones; a CRD round \
deletes the TaskRun CRD (and so its objects), installs it again and re-creates them. RSS is \
read once every program shows its first series count again.";

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_default()
}

/// kube-state-metrics' version as `e2e/ksm/go.mod` pins it (a build from the module proxy
/// carries no version of its own).
fn ksm_version() -> String {
    let gomod = std::fs::read_to_string(root().join("e2e/ksm/go.mod")).unwrap_or_default();
    gomod
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let mut words = l.strip_prefix("require").unwrap_or(l).split_whitespace();
            (words.next()? == "k8s.io/kube-state-metrics/v2").then(|| words.next())?
        })
        .map_or_else(
            || "unknown".into(),
            |v| format!("{v} (e2e/ksm/go.mod), built with the Go toolchain"),
        )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if d < BELOW_RESOLUTION {
        "< 0.01 ms".into()
    } else if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn size(bytes: usize) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.0} kB", bytes as f64 / 1e3)
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs == 0.0 || ours == 0.0 {
        return "–".into();
    }
    format!("{:.2}", ours / theirs)
}

/// Update latencies under this were seen by the first scrape after the acknowledgement: zero
/// as far as the method can tell, so a ratio of them means nothing.
const BELOW_RESOLUTION: Duration = Duration::from_micros(10);

fn latency_ratio(ours: Duration, theirs: Duration) -> String {
    if ours < BELOW_RESOLUTION || theirs < BELOW_RESOLUTION {
        return "–".into();
    }
    ratio(ours.as_secs_f64(), theirs.as_secs_f64())
}

fn throughput(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64().max(1e-9) / 1e9
}

impl Report {
    /// Records the command, machine and versions.
    pub async fn new(command: String, cluster: &Cluster) -> anyhow::Result<Report> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or_else(String::new, |kib| {
                format!("{:.0} GiB", kib as f64 / f64::from(1 << 20))
            });
        let server = cluster.admin.apiserver_version().await?;
        let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
        let environment = vec![
            (
                "Date".into(),
                command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            ),
            (
                "Machine".into(),
                format!("{model}, {cores} cores, {memory}"),
            ),
            ("Kernel".into(), command_output("uname", &["-sr"])),
            (
                "tapmon".into(),
                format!(
                    "{} (commit {commit}), release build",
                    env!("CARGO_PKG_VERSION")
                ),
            ),
            ("kube-state-metrics".into(), ksm_version()),
            (
                "Kubernetes".into(),
                format!(
                    "kube-apiserver {} with etcd, on loopback",
                    server.git_version
                ),
            ),
            ("Rust".into(), command_output("rustc", &["--version"])),
        ];
        Ok(Report {
            command,
            environment,
            scales: Vec::new(),
            leak: Vec::new(),
            chart: None,
        })
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks: tapmon and kube-state-metrics\n");
        let _ = writeln!(
            out,
            "Written by `make bench`, which ran:\n\n```\n{}\n```\n",
            self.command
        );
        for (k, v) in &self.environment {
            let _ = writeln!(out, "- {k}: {v}");
        }
        let _ = writeln!(out, "\n## How\n\n{METHOD}\n");
        if let Some(chart) = &self.chart {
            let _ = writeln!(
                out,
                "## Growth\n\n![RSS, CPU to the first complete scrape and scrape p99 against \
                 object count, tapmon and kube-state-metrics]({chart})\n\n\
                 From the tables below: each point is one object count of this run.\n"
            );
        }
        for (objects, pair) in &self.scales {
            if let Some((ours, theirs)) = both(pair, |r| r.side) {
                scale_table(&mut out, *objects, ours, theirs);
            }
        }
        if let Some((ours, theirs)) = both(&self.leak, |r| r.side) {
            leak_table(&mut out, ours, theirs);
        }
        if let Some((objects, pair)) = self.scales.last()
            && let Some((ours, theirs)) = both(pair, |r| r.side)
        {
            targets(&mut out, *objects, ours, theirs);
        }
        out
    }
}

/// tapmon's result and kube-state-metrics', when both are there.
fn both<T>(results: &[T], side: impl Fn(&T) -> Side) -> Option<(&T, &T)> {
    let of = |s: Side| results.iter().find(|r| side(r) == s);
    Some((of(Side::Tapmon)?, of(Side::Ksm)?))
}

fn scale_table(out: &mut String, objects: usize, ours: &SideResult, theirs: &SideResult) {
    let _ = writeln!(out, "## {objects} objects\n");
    let _ = writeln!(
        out,
        "| | tapmon | kube-state-metrics | tapmon / kube-state-metrics |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let mut row = |name: &str, a: String, b: String, r: String| {
        let _ = writeln!(out, "| {name} | {a} | {b} | {r} |");
    };
    let (a, b) = (&ours.complete, &theirs.complete);
    row(
        "Series",
        a.series.to_string(),
        b.series.to_string(),
        ratio(a.series as f64, b.series as f64),
    );
    let rss = |u: &Usage| u.peak_rss;
    row(
        "Peak RSS",
        mib(rss(&ours.steady)),
        mib(rss(&theirs.steady)),
        ratio(rss(&ours.steady) as f64, rss(&theirs.steady) as f64),
    );
    row(
        "RSS at first complete scrape",
        mib(a.usage.rss),
        mib(b.usage.rss),
        ratio(a.usage.rss as f64, b.usage.rss as f64),
    );
    row(
        "Steady RSS",
        mib(ours.steady.rss),
        mib(theirs.steady.rss),
        ratio(ours.steady.rss as f64, theirs.steady.rss as f64),
    );
    row(
        "CPU to first complete scrape",
        secs(a.cpu),
        secs(b.cpu),
        ratio(a.cpu.as_secs_f64(), b.cpu.as_secs_f64()),
    );
    row(
        "Wall time to first complete scrape",
        secs(a.wall),
        secs(b.wall),
        ratio(a.wall.as_secs_f64(), b.wall.as_secs_f64()),
    );
    for (name, x, y) in [
        ("plain", &ours.plain, &theirs.plain),
        ("gzip", &ours.gzip, &theirs.gzip),
    ] {
        row(
            &format!("Scrape p50, {name}"),
            ms(x.p50),
            ms(y.p50),
            ratio(x.p50.as_secs_f64(), y.p50.as_secs_f64()),
        );
        row(
            &format!("Scrape p99, {name}"),
            ms(x.p99),
            ms(y.p99),
            ratio(x.p99.as_secs_f64(), y.p99.as_secs_f64()),
        );
        row(
            &format!("Bytes per scrape, {name}"),
            size(x.bytes),
            size(y.bytes),
            ratio(x.bytes as f64, y.bytes as f64),
        );
    }
    let (t, u) = (
        throughput(ours.plain.bytes, ours.plain.p50),
        throughput(theirs.plain.bytes, theirs.plain.p50),
    );
    row(
        "Plain scrape throughput",
        format!("{t:.2} GB/s"),
        format!("{u:.2} GB/s"),
        ratio(t, u),
    );
    let (x, y) = (&ours.update, &theirs.update);
    row(
        "Update to series p50, full scrapes",
        ms(x.p50),
        ms(y.p50),
        latency_ratio(x.p50, y.p50),
    );
    row(
        "Update to series p99, full scrapes",
        ms(x.p99),
        ms(y.p99),
        latency_ratio(x.p99, y.p99),
    );
    if let Some(fine) = &ours.update_fine {
        let spread = |l: &Latencies| format!("{} / {} / {}", ms(l.p50), ms(l.p99), ms(l.max));
        for (name, shown, delivered) in [
            ("idle", &fine.idle, &fine.delivered_idle),
            ("under full scrapes", &fine.loaded, &fine.delivered_loaded),
        ] {
            row(
                &format!("Update to series p50 / p99 / max, fine, {name}"),
                spread(shown),
                "–".into(),
                "–".into(),
            );
            row(
                &format!("API server to a watch in the harness, {name}"),
                spread(delivered),
                "–".into(),
                "–".into(),
            );
        }
    }
    let _ = write!(out, "\n{} status updates per method", ours.update.samples);
    if let Some(fine) = &ours.update_fine {
        let _ = write!(
            out,
            "; tapmon served the full exposition {} times during the fine probe under full scrapes",
            fine.load_scrapes
        );
    }
    let _ = writeln!(out, ".\n");
}

fn leak_table(out: &mut String, ours: &LeakResult, theirs: &LeakResult) {
    let _ = writeln!(
        out,
        "## Memory through churn ({} objects, {} rounds each)\n",
        ours.objects, ours.rounds
    );
    let _ = writeln!(out, "| RSS | tapmon | kube-state-metrics |");
    let _ = writeln!(out, "|---|---:|---:|");
    let growth = |u: &Usage, base: &Usage| {
        format!(
            "{} ({:+.0}%)",
            mib(u.rss),
            (u.rss as f64 / base.rss as f64 - 1.0) * 100.0
        )
    };
    let _ = writeln!(
        out,
        "| After the first complete scrape | {} | {} |",
        mib(ours.baseline.rss),
        mib(theirs.baseline.rss)
    );
    let _ = writeln!(
        out,
        "| After {} rounds of 10% churn | {} | {} |",
        ours.rounds,
        growth(&ours.after_churn, &ours.baseline),
        growth(&theirs.after_churn, &theirs.baseline)
    );
    let _ = writeln!(
        out,
        "| After {} CRD delete/re-create rounds | {} | {} |",
        ours.rounds,
        growth(&ours.after_crds, &ours.baseline),
        growth(&theirs.after_crds, &theirs.baseline)
    );
    let _ = writeln!(
        out,
        "| Peak | {} | {} |",
        mib(ours.after_crds.peak_rss),
        mib(theirs.after_crds.peak_rss)
    );
    let _ = writeln!(
        out,
        "| Series before / after the rounds | {} / {} | {} / {} |\n",
        ours.series, ours.series_after, theirs.series, theirs.series_after
    );
}

fn targets(out: &mut String, objects: usize, ours: &SideResult, theirs: &SideResult) {
    let _ = writeln!(out, "## Targets at {objects} objects\n");
    let _ = writeln!(out, "| Target | Measured | Met |");
    let _ = writeln!(out, "|---|---:|:---:|");
    let mut row = |name: &str, measured: String, met: bool| {
        let _ = writeln!(
            out,
            "| {name} | {measured} | {} |",
            if met { "yes" } else { "**no**" }
        );
    };
    let r = |a: f64, b: f64| if b == 0.0 { f64::INFINITY } else { a / b };
    let peak = r(ours.steady.peak_rss as f64, theirs.steady.peak_rss as f64);
    let steady = r(ours.steady.rss as f64, theirs.steady.rss as f64);
    row(
        "Peak RSS ≤ 0.5× kube-state-metrics",
        format!("{peak:.2}×"),
        peak <= 0.5,
    );
    row(
        "Steady RSS ≤ 0.5× kube-state-metrics",
        format!("{steady:.2}×"),
        steady <= 0.5,
    );
    for (name, x, y) in [
        ("plain", &ours.plain, &theirs.plain),
        ("gzip", &ours.gzip, &theirs.gzip),
    ] {
        let q = r(x.p99.as_secs_f64(), y.p99.as_secs_f64());
        row(
            &format!("Scrape p99 ≤ 0.5×, {name}"),
            format!("{q:.2}×"),
            q <= 0.5,
        );
    }
    let cpu = r(
        ours.complete.cpu.as_secs_f64(),
        theirs.complete.cpu.as_secs_f64(),
    );
    row(
        "CPU to first complete scrape ≤ 1×",
        format!("{cpu:.2}×"),
        cpu <= 1.0,
    );
    // The fine probe under full scrapes is both the exact and the harder number; without it
    // (kube-state-metrics cannot be probed that way) the full-scrape bound stands.
    let (update, how) = match &ours.update_fine {
        Some(fine) => (fine.loaded.p99, "fine probe under full scrapes"),
        None => (ours.update.p99, "full scrapes"),
    };
    row(
        &format!("Update to series p99 ≤ 100 ms ({how})"),
        ms(update),
        update <= Duration::from_millis(100),
    );
    let t = throughput(ours.plain.bytes, ours.plain.p50);
    row(
        "Plain scrape throughput ≥ 1 GB/s",
        format!("{t:.2} GB/s"),
        t >= 1.0,
    );
    // Scale targets: compressed scrapes at the cost of a copy, memory close to the data.
    let gzip_p99 = r(ours.gzip.p99.as_secs_f64(), theirs.gzip.p99.as_secs_f64());
    row(
        "Scrape p99 ≤ 0.15×, gzip",
        format!("{gzip_p99:.2}×"),
        gzip_p99 <= 0.15,
    );
    let gzip_bytes = r(ours.gzip.bytes as f64, theirs.gzip.bytes as f64);
    row(
        "Bytes per scrape ≤ 1.0×, gzip",
        format!("{gzip_bytes:.2}×"),
        gzip_bytes <= 1.0,
    );
    let held = r(ours.steady.peak_rss as f64, ours.plain.bytes as f64);
    row(
        "Peak RSS ≤ 1.2× the exposition held (plain scrape bytes)",
        format!("{held:.2}×"),
        held <= 1.2,
    );
    row(
        "CPU to first complete scrape ≤ 0.2×",
        format!("{cpu:.2}×"),
        cpu <= 0.2,
    );
    let _ = writeln!(out);
}
