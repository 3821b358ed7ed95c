//! What a monitor publishes beside its metrics: a Prometheus Operator ServiceMonitor and
//! PrometheusRule, and its Grafana dashboards as ConfigMaps. Each object is built by a pure
//! function ([`objects`]), server-side applied with one field manager and owned by the
//! monitor, so garbage collection removes it with the monitor ([`apply`]). An object of the
//! same name that the monitor does not own is never changed or deleted: that is a conflict,
//! reported in status.

mod apply;
pub mod objects;

use std::collections::BTreeMap;

use tapmon_api::{ConditionType, Reason};

pub use apply::publish;
pub use objects::CONFIGMAP_LIMIT;

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "tapmon";

/// API group of the Prometheus Operator's ServiceMonitor and PrometheusRule.
pub const MONITORING_GROUP: &str = "monitoring.coreos.com";

/// Version of the Prometheus Operator kinds published.
pub const MONITORING_VERSION: &str = "v1";

/// The operator's own Service, which ServiceMonitors select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorService {
    /// Namespace the operator runs in.
    pub namespace: String,
    /// Labels of its Service.
    pub labels: BTreeMap<String, String>,
    /// Name of the Service port that serves `/monitors/...`.
    pub port: String,
    /// Scrapes need a ServiceAccount token authorised for the monitor (and HTTPS).
    pub authorized_scrapes: bool,
    /// Labels put on every published object (say `release: kube-prometheus-stack`, which that
    /// chart's Prometheus and Grafana select by); a monitor's own labels win over them.
    pub published_labels: BTreeMap<String, String>,
}

impl Default for OperatorService {
    fn default() -> Self {
        Self {
            namespace: "tapmon-system".into(),
            labels: BTreeMap::from([("app.kubernetes.io/name".into(), "tapmon".into())]),
            port: "metrics".into(),
            authorized_scrapes: false,
            published_labels: BTreeMap::new(),
        }
    }
}

/// What a TapMonitor publishes, each reported by a status condition of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishKind {
    /// The Prometheus Operator `ServiceMonitor` pointing Prometheus at the monitor.
    ServiceMonitor,
    /// The Prometheus Operator `PrometheusRule` with recording rules and alerts.
    PrometheusRule,
    /// The Grafana dashboard `ConfigMap`s.
    Dashboards,
}

impl PublishKind {
    /// Every kind, in the order they are published.
    pub const ALL: [PublishKind; 3] = [
        PublishKind::ServiceMonitor,
        PublishKind::PrometheusRule,
        PublishKind::Dashboards,
    ];

    /// The status condition that reports it.
    pub fn condition(self) -> ConditionType {
        match self {
            PublishKind::ServiceMonitor => ConditionType::ServiceMonitor,
            PublishKind::PrometheusRule => ConditionType::PrometheusRule,
            PublishKind::Dashboards => ConditionType::Dashboards,
        }
    }

    /// The Kubernetes kind of the objects, and its plural.
    pub fn object_kind(self) -> (&'static str, &'static str) {
        match self {
            PublishKind::ServiceMonitor => ("ServiceMonitor", "servicemonitors"),
            PublishKind::PrometheusRule => ("PrometheusRule", "prometheusrules"),
            PublishKind::Dashboards => ("ConfigMap", "configmaps"),
        }
    }

    /// True for the kinds that need the Prometheus Operator's CRDs.
    pub fn needs_prometheus_operator(self) -> bool {
        !matches!(self, PublishKind::Dashboards)
    }
}

/// What became of one published kind.
#[derive(Debug)]
pub enum Published {
    /// Applied.
    Applied,
    /// Disabled in the spec; any earlier one was deleted.
    Disabled,
    /// Its CRD is not installed; it is applied when the CRD appears.
    NotInstalled,
    /// It could not be published.
    Failed(PublishError),
}

impl Published {
    /// The reason of its condition.
    pub fn reason(&self) -> Reason {
        match self {
            Published::Applied => Reason::Applied,
            Published::Disabled => Reason::Disabled,
            Published::NotInstalled => Reason::CrdNotInstalled,
            Published::Failed(PublishError::Conflict { .. }) => Reason::Conflict,
            Published::Failed(_) => Reason::ApplyFailed,
        }
    }
}

/// Why a published object could not be written.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum PublishError {
    /// The API server refused the object (say, a label value Kubernetes rejects).
    #[error("failed to apply {kind} {namespace}/{name}: {}", api_message(.source))]
    Apply {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// An object of that name exists and is not this monitor's: it is left untouched.
    #[error(
        "{kind} {namespace}/{name} exists and is not this monitor's ({owner}); it is left untouched: delete or rename it, or disable publishing"
    )]
    Conflict {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Who controls it, as far as its owner references say.
        owner: String,
    },
    /// The object could not be read to check who owns it.
    #[error("failed to read {kind} {namespace}/{name}: {}", api_message(.source))]
    Read {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// An object published earlier could not be deleted after being disabled.
    #[error("failed to delete {kind} {namespace}/{name}: {}", api_message(.source))]
    Delete {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// A dashboard is larger than a ConfigMap can hold.
    #[error("dashboard {slug} is {size} bytes, over the {CONFIGMAP_LIMIT}-byte ConfigMap limit")]
    DashboardTooLarge {
        /// Which dashboard.
        slug: &'static str,
        /// Its size as JSON.
        size: usize,
    },
    /// A dashboard could not be written as JSON.
    #[error("failed to encode dashboard {slug}: {source}")]
    Encode {
        /// Which dashboard.
        slug: &'static str,
        /// The encoder's error.
        source: serde_json::Error,
    },
}

impl PublishError {
    /// True when retrying the same write cannot succeed: the API server judged the object
    /// invalid (400, 422) or the operator not allowed (403), another owner holds the name, or
    /// the dashboard does not fit.
    pub fn needs_change(&self) -> bool {
        match self {
            PublishError::Conflict { .. }
            | PublishError::DashboardTooLarge { .. }
            | PublishError::Encode { .. } => true,
            PublishError::Apply { source, .. }
            | PublishError::Read { source, .. }
            | PublishError::Delete { source, .. } => {
                matches!(source.as_ref(), kube::Error::Api(s) if matches!(s.code, 400 | 403 | 422))
            }
        }
    }
}

/// The API server's own message for an API error (its `Status.message`, which names the field
/// and the problem), or the client's error otherwise.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}
