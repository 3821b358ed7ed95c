//! The measurements: one program from start to its first complete scrape, its scrapes, its
//! update latency and its memory; and both under rounds of churn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tapmon_e2e::generate::Generator;

use crate::probe::Usage;
use crate::scrape::{quantile, scrape, series_count};
use crate::sides::{Complete, Programs, Running, Side};

/// How long a count must hold before kube-state-metrics (which has no readiness for custom
/// resources) counts as complete.
const HOLD: Duration = Duration::from_secs(5);
/// Longest wait for a program to show everything.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(900);
/// The kind whose status the update test changes.
const UPDATED_KIND: &str = "Workload";
/// The kind whose CRD the memory test deletes and re-creates (one that owns nothing).
const RECREATED_KIND: &str = "TaskRun";

/// Updates made so far in this run.
static UPDATES: AtomicUsize = AtomicUsize::new(0);

/// Scrape timings of one encoding.
#[derive(Debug, Default)]
pub struct Scrapes {
    pub p50: Duration,
    pub p99: Duration,
    /// Body bytes as sent, median.
    pub bytes: usize,
}

/// One program at one object count.
#[derive(Debug)]
pub struct SideResult {
    pub side: Side,
    pub complete: Complete,
    /// After the scrapes and updates, idle for a moment.
    pub steady: Usage,
    pub plain: Scrapes,
    pub gzip: Scrapes,
    pub update_p50: Duration,
    pub update_p99: Duration,
}

/// Start to first complete scrape, then scrapes, then updates; stops the program.
pub async fn side(
    programs: &Programs<'_>,
    generator: &Generator,
    side: Side,
    expected: usize,
    scrapes: usize,
    updates: usize,
) -> anyhow::Result<SideResult> {
    let running = programs.start(side).await?;
    let expected = (side == Side::Tapmon).then_some(expected);
    let complete = running
        .until_complete(expected, HOLD, COMPLETE_TIMEOUT)
        .await?;
    let plain = timed_scrapes(&running, false, scrapes, complete.series).await?;
    let gzip = timed_scrapes(&running, true, scrapes, complete.series).await?;
    let latencies = update_latencies(&running, generator, updates).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady = running.probe.read()?;
    running.stop();
    Ok(SideResult {
        side,
        complete,
        steady,
        plain,
        gzip,
        update_p50: quantile(&latencies, 0.5),
        update_p99: quantile(&latencies, 0.99),
    })
}

async fn timed_scrapes(
    running: &Running,
    gzip: bool,
    count: usize,
    series: usize,
) -> anyhow::Result<Scrapes> {
    let mut took = Vec::with_capacity(count);
    let mut bytes = Vec::with_capacity(count);
    for _ in 0..count {
        let s = scrape(running.addr, running.path, gzip).await?;
        // A scrape that lost series is not a faster scrape.
        let seen = series_count(&s.body);
        if seen != series {
            bail!(
                "{} served {seen} series, {series} before",
                running.side.name()
            );
        }
        took.push(s.took);
        bytes.push(s.wire_bytes);
    }
    bytes.sort_unstable();
    Ok(Scrapes {
        p50: quantile(&took, 0.5),
        p99: quantile(&took, 0.99),
        bytes: bytes.get(bytes.len() / 2).copied().unwrap_or(0),
    })
}

/// Patches one Workload's last condition to a new transition time (and flips its status) and
/// times from the API server's acknowledgement to the start of the first scrape that shows it,
/// scraping back to back. The resolution is one scrape's duration.
async fn update_latencies(
    running: &Running,
    generator: &Generator,
    rounds: usize,
) -> anyhow::Result<Vec<Duration>> {
    let (api, instance, status) = generator
        .sample(UPDATED_KIND)
        .context("no Workload with status among the generated objects")?;
    let mut conditions = status["conditions"]
        .as_array()
        .cloned()
        .context("the sample Workload has no conditions")?;
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        // Unique for the whole run (so never the value already there), unlike any fixture time.
        let round = UPDATES.fetch_add(1, Ordering::Relaxed);
        let stamp = format!(
            "2030-01-01T{:02}:{:02}:{:02}Z",
            round / 3600 % 24,
            round / 60 % 60,
            round % 60
        );
        let last = conditions.last_mut().context("empty conditions")?;
        last["lastTransitionTime"] = json!(stamp);
        last["status"] = json!(if round.is_multiple_of(2) {
            "False"
        } else {
            "True"
        });
        let needle = format!("last_transition_time=\"{stamp}\"");
        let patch = json!({ "status": { "conditions": conditions } });
        api.patch_status(
            &instance.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .with_context(|| format!("updating {}/{}", instance.namespace, instance.name))?;
        let acknowledged = Instant::now();
        loop {
            // A scrape shows the store as it was when the request came in.
            let asked = Instant::now();
            let s = scrape(running.addr, running.path, false).await?;
            if memchr::memmem::find(&s.body, needle.as_bytes()).is_some() {
                out.push(asked.duration_since(acknowledged));
                break;
            }
            if acknowledged.elapsed() > Duration::from_secs(120) {
                bail!("{} never showed {needle}", running.side.name());
            }
        }
    }
    Ok(out)
}

/// One program's memory through the churn and CRD rounds.
#[derive(Debug)]
pub struct LeakResult {
    pub side: Side,
    pub objects: usize,
    pub rounds: usize,
    pub series: usize,
    pub baseline: Usage,
    pub after_churn: Usage,
    pub after_crds: Usage,
    /// Series shown after the CRD rounds (equal to `series` when nothing was lost).
    pub series_after: usize,
}

/// Both programs at once (memory does not mind sharing a core): complete, then `rounds` of 10%
/// churn, then `rounds` of deleting and re-creating one CRD; RSS after each phase once both
/// show everything again.
pub async fn leak(
    programs: &Programs<'_>,
    generator: &mut Generator,
    expected: usize,
    rounds: usize,
) -> anyhow::Result<Vec<LeakResult>> {
    let running = [
        programs.start(Side::Tapmon).await?,
        programs.start(Side::Ksm).await?,
    ];
    let mut series = Vec::new();
    let mut baseline = Vec::new();
    for r in &running {
        let expected = (r.side == Side::Tapmon).then_some(expected);
        let c = r.until_complete(expected, HOLD, COMPLETE_TIMEOUT).await?;
        series.push(c.series);
        baseline.push(r.probe.read()?);
    }
    for round in 0..rounds {
        generator.churn(0.1, round).await?;
    }
    // Churn replaces objects with copies of the same fixtures: the counts come back.
    let after_churn = settle(&running, &series).await?;
    let started = Instant::now();
    for _ in 0..rounds {
        generator.recreate_kind(RECREATED_KIND).await?;
    }
    eprintln!("bench: {rounds} CRD rounds in {:?}", started.elapsed());
    let after_crds = settle(&running, &series).await?;
    let mut out = Vec::new();
    for (i, r) in running.into_iter().enumerate() {
        let now = series_count(&scrape(r.addr, r.path, false).await?.body);
        out.push(LeakResult {
            side: r.side,
            objects: generator.live().len(),
            rounds,
            series: series[i],
            baseline: baseline[i],
            after_churn: after_churn[i],
            after_crds: after_crds[i],
            series_after: now,
        });
        r.stop();
    }
    Ok(out)
}

/// Waits (up to five minutes) until each program shows its earlier series count again, then
/// reads its memory. A program that does not get there is read anyway; the report shows its
/// count.
async fn settle(running: &[Running; 2], series: &[usize]) -> anyhow::Result<Vec<Usage>> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut out = Vec::new();
    for (r, &n) in running.iter().zip(series) {
        loop {
            let seen = scrape(r.addr, r.path, false)
                .await
                .map(|s| series_count(&s.body))
                .unwrap_or(0);
            if seen == n {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("bench: {} shows {seen} of {n} series", r.side.name());
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        out.push(r.probe.read()?);
    }
    Ok(out)
}
