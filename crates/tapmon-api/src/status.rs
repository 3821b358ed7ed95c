//! What the operator reports in `TapMonitor.status`, shaped for kstatus so Flux and Argo CD can
//! judge health: `observedGeneration`, the `Ready`, `Reconciling` and `Stalled` conditions, one
//! condition per published kind, and the state of each kind read.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a TapMonitor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TapMonitorStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled` (kstatus), then `ServiceMonitor`, `PrometheusRule`,
    /// `Dashboards` and `SeriesLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One entry per kind the monitor reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<KindStatus>,
    /// Objects read, all kinds together.
    #[serde(default)]
    pub objects: i64,
    /// Series served, all kinds together.
    #[serde(default)]
    pub series: i64,
}

/// The state of one kind for one monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KindStatus {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// The version served and watched, when the kind is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether it is being watched, and if not why.
    pub state: KindState,
    /// Details for `Forbidden` and `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Objects of this kind read.
    #[serde(default)]
    pub objects: i64,
    /// Series of this kind served.
    #[serde(default)]
    pub series: i64,
}

/// Whether a kind is being watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KindState {
    /// Watched; its series are served.
    Watching,
    /// Its CRD is absent; watching starts by itself when it appears.
    NotInstalled,
    /// The operator may not list or watch it.
    Forbidden,
    /// Watching failed for another reason (see `message`); retried with backoff.
    Error,
}

impl KindState {
    /// The state as written in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            KindState::Watching => "Watching",
            KindState::NotInstalled => "NotInstalled",
            KindState::Forbidden => "Forbidden",
            KindState::Error => "Error",
        }
    }

    /// True for the states that keep a monitor from being Ready.
    pub fn is_failure(self) -> bool {
        matches!(self, KindState::Forbidden | KindState::Error)
    }
}

impl std::fmt::Display for KindState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
