//! Paths into Kubernetes objects and the conversion of what they find.
//!
//! A [`Path`] is compiled once from either form a user may write — a kube-state-metrics path list
//! (`[status, conditions, "[type=Ready]", status]`) or a kubectl JSONPath string
//! (`.status.conditions[?(@.type=="Ready")].status`) — and evaluated many times against
//! [`serde_json::Value`] objects. [`value`] turns what a path finds into a sample value or a label
//! value with kube-state-metrics' rules.

mod jsonpath;
mod path;
pub mod quantity;
pub mod value;

pub use path::{FilterValue, Path, PathError, Segment};
