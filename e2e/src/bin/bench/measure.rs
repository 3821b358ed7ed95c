//! The measurements: one program from start to its first complete scrape, its scrapes, its
//! update latency and its memory; and both under rounds of churn.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tapmon_e2e::generate::{Generator, Instance};
use tapmon_e2e::{apply_cluster_monitor, cluster_monitors, get, groups_only};
use tapmon_presets::TapGroup;

use crate::scrape::{quantile, series_count};
use crate::sides::{Complete, Expected, Programs, Running, Side};
use tapmon_e2e::http::Client;
use tapmon_e2e::probe::Usage;

/// How long a count must hold before kube-state-metrics (which has no readiness for custom
/// resources) counts as complete.
const HOLD: Duration = Duration::from_secs(5);
/// Longest wait for a program to show everything.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(900);
/// The kind whose status the update test changes.
const UPDATED_KIND: &str = "Workload";
/// The kind whose CRD the memory test deletes and re-creates (one that owns nothing).
const RECREATED_KIND: &str = "TaskRun";

/// The one-namespace TapMonitor the fine update probe polls.
const PROBE_MONITOR: &str = "probe";
/// How often the fine update probe polls its small scrape.
const PROBE_INTERVAL: Duration = Duration::from_millis(1);

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
    /// Found by full scrapes back to back: the same method for both programs.
    pub update: Latencies,
    /// tapmon only: found by polling a TapMonitor that reads only the updated object's
    /// namespace, so the resolution is a millisecond instead of a full scrape.
    pub update_fine: Option<FineUpdates>,
}

/// Update-to-series latencies of one method.
#[derive(Debug, Clone, Copy)]
pub struct Latencies {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub samples: usize,
}

impl Latencies {
    fn of(samples: &[Duration]) -> Latencies {
        Latencies {
            p50: quantile(samples, 0.5),
            p99: quantile(samples, 0.99),
            max: quantile(samples, 1.0),
            samples: samples.len(),
        }
    }
}

/// The fine update probe, with the program otherwise idle and while full scrapes run back to
/// back.
#[derive(Debug, Clone, Copy)]
pub struct FineUpdates {
    pub idle: Latencies,
    pub loaded: Latencies,
    /// Acknowledgement to a watch event in the harness, same rounds: the API server's part.
    pub delivered_idle: Latencies,
    pub delivered_loaded: Latencies,
    /// Full scrapes served during the loaded run.
    pub load_scrapes: usize,
}

/// The series counts the generated objects imply.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// tapmon's, computed offline by its engine.
    pub tapmon: usize,
    /// The same computed for the config kube-state-metrics runs (the exported presets): an
    /// upper bound, since kube-state-metrics leaves out Info series without labels of their own
    /// (e2e/ksm-differences.yaml).
    pub ksm_config: usize,
}

impl Counts {
    /// What makes a scrape of `side` complete.
    pub fn of(self, side: Side) -> Expected {
        match side {
            Side::Tapmon => Expected {
                exact: Some(self.tapmon),
                at_least: self.tapmon,
            },
            // The differences leave out a few percent; four fifths is far above what a
            // kube-state-metrics still listing its kinds has shown holding still.
            Side::Ksm => Expected {
                exact: None,
                at_least: self.ksm_config * 4 / 5,
            },
        }
    }
}

/// Start to first complete scrape, then scrapes, then updates; stops the program.
pub async fn side(
    programs: &Programs<'_>,
    generator: &Generator,
    side: Side,
    expected: Counts,
    scrapes: usize,
    updates: usize,
) -> anyhow::Result<SideResult> {
    let running = programs.start(side).await?;
    let expected = expected.of(side);
    let complete = running
        .until_complete(expected, HOLD, COMPLETE_TIMEOUT)
        .await?;
    let plain = timed_scrapes(&running, false, scrapes, complete.series).await?;
    let gzip = timed_scrapes(&running, true, scrapes, complete.series).await?;
    let target = UpdateTarget::sample(generator)?;
    let update =
        timed_updates(running.addr, running.path, &target, updates, Duration::ZERO).await?;
    let update = Latencies::of(&shown_after_ack(&update));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady = running.probe.read()?;
    let update_fine = match side {
        Side::Tapmon => {
            Some(fine_updates(programs, &running, &target, updates, complete.series).await?)
        }
        Side::Ksm => None,
    };
    running.stop();
    Ok(SideResult {
        side,
        complete,
        steady,
        plain,
        gzip,
        update,
        update_fine,
    })
}

async fn timed_scrapes(
    running: &Running,
    gzip: bool,
    count: usize,
    series: usize,
) -> anyhow::Result<Scrapes> {
    let mut scraper = Client::default();
    let mut took = Vec::with_capacity(count);
    let mut bytes = Vec::with_capacity(count);
    for _ in 0..count {
        let s = scraper.scrape(running.addr, running.path, gzip).await?;
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

/// The object whose status the update tests change: a Workload with conditions.
struct UpdateTarget {
    api: kube::Api<kube::api::DynamicObject>,
    instance: Instance,
    conditions: Vec<serde_json::Value>,
}

impl UpdateTarget {
    fn sample(generator: &Generator) -> anyhow::Result<UpdateTarget> {
        let (api, instance, status) = generator
            .sample(UPDATED_KIND)
            .context("no Workload with status among the generated objects")?;
        let conditions = status["conditions"]
            .as_array()
            .cloned()
            .context("the sample Workload has no conditions")?;
        Ok(UpdateTarget {
            api,
            instance,
            conditions,
        })
    }

    /// Gives the last condition a transition time never used before in this run (unlike any
    /// fixture time) and flips its status; returns the time.
    async fn update(&self) -> anyhow::Result<String> {
        let round = UPDATES.fetch_add(1, Ordering::Relaxed);
        let stamp = format!(
            "2030-01-{:02}T{:02}:{:02}:{:02}Z",
            1 + round / 86400 % 28,
            round / 3600 % 24,
            round / 60 % 60,
            round % 60
        );
        let mut conditions = self.conditions.clone();
        let last = conditions.last_mut().context("empty conditions")?;
        last["lastTransitionTime"] = json!(stamp);
        last["status"] = json!(if round.is_multiple_of(2) {
            "False"
        } else {
            "True"
        });
        let patch = json!({ "status": { "conditions": conditions } });
        self.api
            .patch_status(
                &self.instance.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .with_context(|| {
                format!(
                    "updating {}/{}",
                    self.instance.namespace, self.instance.name
                )
            })?;
        Ok(stamp)
    }

    /// Records when a watch of the target, in this harness, sees each transition time: how
    /// long the API server takes to deliver the event to any watcher.
    fn watch_deliveries(&self) -> Deliveries {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let config =
            watcher::Config::default().fields(&format!("metadata.name={}", self.instance.name));
        let stream = watcher::watcher(self.api.clone(), config).applied_objects();
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(Ok(obj)) = stream.next().await {
                    let at = Instant::now();
                    let stamp = obj.data["status"]["conditions"]
                        .as_array()
                        .and_then(|c| c.last())
                        .and_then(|c| c["lastTransitionTime"].as_str())
                        .map(str::to_owned);
                    if let Some(stamp) = stamp {
                        seen.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .entry(stamp)
                            .or_insert(at);
                    }
                }
            }
        });
        Deliveries { seen, task }
    }
}

/// A watch of the updated object in the harness, and when it saw each transition time.
struct Deliveries {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Deliveries {
    /// Waits until the watch has listed the object, so that no round starts before it.
    async fn listed(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the harness's watch of the updated object saw nothing"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// For each round, acknowledgement to the harness's watch event (zero when the event came
    /// first); rounds whose event never came are left out.
    fn latencies(&self, rounds: &[Round]) -> Vec<Duration> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        rounds
            .iter()
            .filter_map(|r| {
                Some(
                    seen.get(&r.stamp)?
                        .saturating_duration_since(r.acknowledged),
                )
            })
            .collect()
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One timed update.
struct Round {
    stamp: String,
    acknowledged: Instant,
    /// The start of the first scrape that showed it.
    shown: Instant,
}

fn shown_after_ack(rounds: &[Round]) -> Vec<Duration> {
    rounds
        .iter()
        .map(|r| r.shown.duration_since(r.acknowledged))
        .collect()
}

/// Updates `target` `rounds` times and times each from the API server's acknowledgement to the
/// start of the first scrape of `path` that shows it, polling at most every `interval`. A
/// scrape shows the store as it was when the request came in, so the resolution is one
/// scrape's duration (or the interval, when longer).
async fn timed_updates(
    addr: SocketAddr,
    path: &str,
    target: &UpdateTarget,
    rounds: usize,
    interval: Duration,
) -> anyhow::Result<Vec<Round>> {
    let mut scraper = Client::default();
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let stamp = target.update().await?;
        let acknowledged = Instant::now();
        let needle = format!("last_transition_time=\"{stamp}\"");
        loop {
            let asked = Instant::now();
            let s = scraper.scrape(addr, path, false).await?;
            if memchr::memmem::find(&s.body, needle.as_bytes()).is_some() {
                out.push(Round {
                    stamp,
                    acknowledged,
                    shown: asked,
                });
                break;
            }
            if acknowledged.elapsed() > Duration::from_secs(120) {
                bail!("{path} never showed {needle}");
            }
            if !interval.is_zero() {
                tokio::time::sleep_until((asked + interval).into()).await;
            }
        }
    }
    Ok(out)
}

/// The fine probe: a second TapMonitor reading only the target's namespace and the
/// Cartographer group shares tapmon's watches, so it sees each event when the full monitor
/// does, and its scrape is a few kilobytes. Polled every millisecond, once with tapmon
/// otherwise idle and once while full scrapes run back to back; removed afterwards.
async fn fine_updates(
    programs: &Programs<'_>,
    running: &Running,
    target: &UpdateTarget,
    rounds: usize,
    series: usize,
) -> anyhow::Result<FineUpdates> {
    let client = &programs.cluster.admin;
    apply_cluster_monitor(
        client,
        PROBE_MONITOR,
        json!({
            "groups": groups_only(&[TapGroup::Cartographer]),
            "namespaceSelector": {"names": [target.instance.namespace]},
        }),
    )
    .await?;
    let path = format!("/clustermonitors/{PROBE_MONITOR}/metrics");
    // Served once the monitor is known, ready once the restarted watches have listed again.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, body) = get(running.addr, &path).await.unwrap_or((0, String::new()));
        let ready = get(running.addr, "/readyz")
            .await
            .is_ok_and(|(c, _)| c == 200);
        if code == 200 && ready && body.contains(&target.instance.name) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the probe TapMonitor was not served in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deliveries = target.watch_deliveries();
    deliveries.listed().await?;
    let idle = timed_updates(running.addr, &path, target, rounds, PROBE_INTERVAL).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let load = full_scrapes_until(running.addr, running.path, series, Arc::clone(&stop));
    let loaded = timed_updates(running.addr, &path, target, rounds, PROBE_INTERVAL).await;
    stop.store(true, Ordering::Relaxed);
    let load_scrapes = tokio::task::spawn_blocking(move || load.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the full-scrape thread panicked"))??;
    cluster_monitors(client)
        .delete(PROBE_MONITOR, &DeleteParams::default())
        .await?;
    let loaded = loaded?;
    Ok(FineUpdates {
        idle: Latencies::of(&shown_after_ack(&idle)),
        loaded: Latencies::of(&shown_after_ack(&loaded)),
        delivered_idle: Latencies::of(&deliveries.latencies(&idle)),
        delivered_loaded: Latencies::of(&deliveries.latencies(&loaded)),
        load_scrapes,
    })
}

/// Scrapes `path` back to back on a thread of its own (so the probe's polls are not queued
/// behind it) until `stop`; returns how many scrapes were served, after checking the last
/// one held all `series`.
fn full_scrapes_until(
    addr: SocketAddr,
    path: &'static str,
    series: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<usize>> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async {
                let mut scraper = Client::default();
                let (mut served, mut seen) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    seen = series_count(&scraper.scrape(addr, path, false).await?.body);
                    served += 1;
                }
                anyhow::ensure!(
                    seen == series,
                    "tapmon served {seen} of {series} series under load"
                );
                Ok(served)
            })
    })
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
    expected: Counts,
    rounds: usize,
) -> anyhow::Result<Vec<LeakResult>> {
    let running = [
        programs.start(Side::Tapmon).await?,
        programs.start(Side::Ksm).await?,
    ];
    let mut series = Vec::new();
    let mut baseline = Vec::new();
    for r in &running {
        let c = r
            .until_complete(expected.of(r.side), HOLD, COMPLETE_TIMEOUT)
            .await?;
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
    let mut scraper = Client::default();
    for (i, r) in running.into_iter().enumerate() {
        let now = series_count(&scraper.scrape(r.addr, r.path, false).await?.body);
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
    let mut scraper = Client::default();
    let mut out = Vec::new();
    for (r, &n) in running.iter().zip(series) {
        loop {
            let seen = scraper
                .scrape(r.addr, r.path, false)
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
