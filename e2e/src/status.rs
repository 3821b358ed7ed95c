//! Reading a TapMonitor's status as a user does, in the API's own words.

use serde_json::Value;
use tapmon_api::{ConditionType, KindState, status_str};

/// One condition of a status: its status, reason and message (empty strings when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cond {
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
}

impl Cond {
    /// True when its status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == status_str(true)
    }
}

/// The condition `type_` of `status` (a TapMonitor's `.status`).
pub fn condition(status: &Value, type_: ConditionType) -> Cond {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_.as_str()))
        .cloned()
        .unwrap_or_default();
    let text = |f: &str| c[f].as_str().unwrap_or("").to_owned();
    Cond {
        status: text("status"),
        reason: text("reason"),
        message: text("message"),
    }
}

/// True when the status says Ready.
pub fn ready(status: &Value) -> bool {
    condition(status, ConditionType::Ready).is_true()
}

/// The state of `kind` in `status.kinds`, when listed.
pub fn kind_state(status: &Value, kind: &str) -> Option<KindState> {
    let state = status["kinds"]
        .as_array()?
        .iter()
        .find(|k| k["kind"] == kind)?["state"]
        .as_str()?
        .to_owned();
    serde_json::from_value(Value::String(state)).ok()
}
