//! The operator's own metrics, served on the telemetry port. Labels are bounded: kinds, event
//! types and error variant names, never error text.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Self-metrics.
#[derive(Debug, Clone)]
pub struct Telemetry {
    registry: Registry,
    names: Vec<String>,
    /// Watch events by kind and type (`init`, `apply`, `delete`).
    pub watch_events: IntCounterVec,
    /// Watch errors by kind and reason (`forbidden`, `not_found`, `other`).
    pub watch_errors: IntCounterVec,
    /// Running watches per kind: 1 when monitors share it, whatever their number.
    pub watches: IntGaugeVec,
    /// Objects per kind, as last counted.
    pub objects: IntGaugeVec,
    /// Series per kind across monitors, as last counted.
    pub series: IntGaugeVec,
    /// Values that could not be evaluated, per kind.
    pub evaluation_errors: IntCounterVec,
    /// Label values cut to the longest the exposition writes, per kind.
    pub truncated_label_values: IntCounterVec,
    /// Objects left out because their monitor reached its series limit, per kind.
    pub left_out: IntCounterVec,
    /// Scrape authorisation decisions, by result.
    pub scrape_auth: IntCounterVec,
    /// Reconcile duration.
    pub reconcile_duration: Histogram,
    /// Failed reconciles by error variant.
    pub reconcile_errors: IntCounterVec,
    /// TapMonitors being served.
    pub monitors: IntGauge,
    /// 1 while this replica holds the lease and writes.
    pub leader: IntGauge,
    /// This replica's shard, and shards in all (0 and 1 unsharded).
    pub shard: IntGauge,
    /// Shards in all.
    pub shards: IntGauge,
    /// Monitors by the health of the status this replica last wrote (`ready`, `progressing`,
    /// `stalled`); only the leader's is current, so alerts join it with `tapmon_leader`.
    pub monitors_by_health: IntGaugeVec,
    /// Status patches written.
    pub status_writes: IntCounter,
    /// Events published.
    pub events: IntCounter,
    /// Failed accepts on the HTTP ports (each followed by a backoff).
    pub accept_errors: IntCounter,
    /// Connections closed at once because the connection limit was reached.
    pub rejected_connections: IntCounter,
    /// Scrapes answered 503 because too many were in progress.
    pub scrapes_refused: IntCounter,
}

/// Registering a metric can only fail on a duplicate name, a defect caught by the tests.
#[derive(Debug, thiserror::Error)]
#[error("failed to register self-metrics: {0}")]
pub struct TelemetryError(#[from] prometheus::Error);

impl Telemetry {
    /// Creates and registers every self-metric.
    pub fn new() -> Result<Self, TelemetryError> {
        let registry = Registry::new();
        let mut names = Vec::new();
        let mut register = |c: Box<dyn prometheus::core::Collector>| -> Result<(), TelemetryError> {
            names.extend(c.desc().iter().map(|d| d.fq_name.clone()));
            registry.register(c)?;
            Ok(())
        };
        let kind = &["group", "kind"];
        let mut counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, TelemetryError> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                register(Box::new(c.clone()))?;
                Ok(c)
            };
        let watch_events = counter(
            "tapmon_watch_events_total",
            "Watch events received, by kind and type.",
            &["group", "kind", "type"],
        )?;
        let watch_errors = counter(
            "tapmon_watch_errors_total",
            "Watch errors, by kind and reason.",
            &["group", "kind", "reason"],
        )?;
        let evaluation_errors = counter(
            "tapmon_evaluation_errors_total",
            "Object values that could not be turned into series, by kind.",
            kind,
        )?;
        let truncated_label_values = counter(
            "tapmon_label_values_truncated_total",
            "Label values cut to the longest written (2048 bytes), by kind.",
            kind,
        )?;
        let left_out = counter(
            "tapmon_series_limit_left_out_total",
            "Object evaluations left out because their monitor reached its series limit, by kind.",
            kind,
        )?;
        let scrape_auth = counter(
            "tapmon_scrape_authorizations_total",
            "Scrapes checked for a bearer token, by result (allowed, unauthenticated, forbidden, unavailable).",
            &["result"],
        )?;
        let reconcile_errors = counter(
            "tapmon_reconcile_errors_total",
            "Failed TapMonitor reconciles, by error.",
            &["error"],
        )?;
        let mut gauge = |name: &str, help: &str| -> Result<IntGaugeVec, TelemetryError> {
            let g = IntGaugeVec::new(Opts::new(name, help), kind)?;
            register(Box::new(g.clone()))?;
            Ok(g)
        };
        let watches = gauge(
            "tapmon_watches",
            "Running watches per kind (shared by all monitors).",
        )?;
        let objects = gauge("tapmon_objects", "Objects read per kind.")?;
        let series = gauge(
            "tapmon_series",
            "Series served per kind, all monitors together.",
        )?;
        let reconcile_duration = Histogram::with_opts(HistogramOpts::new(
            "tapmon_reconcile_duration_seconds",
            "Time taken by one TapMonitor reconcile.",
        ))?;
        register(Box::new(reconcile_duration.clone()))?;
        let monitors = IntGauge::new("tapmon_monitors", "TapMonitors being served.")?;
        register(Box::new(monitors.clone()))?;
        let leader = IntGauge::new(
            "tapmon_leader",
            "1 while this replica holds the lease and writes status, Events and published objects.",
        )?;
        register(Box::new(leader.clone()))?;
        let shard = IntGauge::new(
            "tapmon_shard",
            "The shard of objects this replica serves (0 when unsharded).",
        )?;
        register(Box::new(shard.clone()))?;
        let shards = IntGauge::new(
            "tapmon_shards",
            "Shards the objects are split into (1 when unsharded); every shard must be scraped.",
        )?;
        register(Box::new(shards.clone()))?;
        let monitors_by_health = IntGaugeVec::new(
            Opts::new(
                "tapmon_monitors_by_health",
                "Monitors by the health of their status as this replica last wrote it (ready, progressing, stalled); current on the leader only.",
            ),
            &["health"],
        )?;
        register(Box::new(monitors_by_health.clone()))?;
        let mut plain = |name: &str, help: &str| -> Result<IntCounter, TelemetryError> {
            let c = IntCounter::new(name, help)?;
            register(Box::new(c.clone()))?;
            Ok(c)
        };
        let status_writes = plain(
            "tapmon_status_writes_total",
            "Monitor status patches written (only when the status changed).",
        )?;
        let events = plain("tapmon_events_total", "Events published on monitors.")?;
        let accept_errors = plain(
            "tapmon_http_accept_errors_total",
            "Failed accepts on the HTTP ports, each followed by a backoff.",
        )?;
        let rejected_connections = plain(
            "tapmon_http_rejected_connections_total",
            "Connections closed at once because the connection limit was reached.",
        )?;
        let scrapes_refused = plain(
            "tapmon_http_scrapes_refused_total",
            "Scrapes answered 503 because too many were in progress.",
        )?;
        Ok(Self {
            watch_events,
            watch_errors,
            evaluation_errors,
            truncated_label_values,
            left_out,
            scrape_auth,
            reconcile_errors,
            watches,
            objects,
            series,
            reconcile_duration,
            monitors,
            leader,
            shard,
            shards,
            monitors_by_health,
            status_writes,
            events,
            accept_errors,
            rejected_connections,
            scrapes_refused,
            registry,
            names,
        })
    }

    /// The name of every self-metric, in registration order (for docs and their check).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The text exposition of every self-metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a metric family that fails to encode is
        // dropped from this scrape rather than failing it.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes() {
        let t = Telemetry::new().unwrap();
        t.watches.with_label_values(&["kpack.io", "Build"]).set(1);
        t.reconcile_errors.with_label_values(&["Discovery"]).inc();
        let text = String::from_utf8(t.encode()).unwrap();
        assert!(text.contains("tapmon_watches{group=\"kpack.io\",kind=\"Build\"} 1"));
        assert!(text.contains("tapmon_reconcile_errors_total{error=\"Discovery\"} 1"));
    }
}
