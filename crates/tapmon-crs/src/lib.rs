//! kube-state-metrics' `CustomResourceStateMetrics` config, compiled once and evaluated per
//! object into rendered series.
//!
//! ```text
//! model (serde) ──compile──▶ Compiled { families, resources } ──evaluate(object)──▶ ObjectRenderer
//! ```
//!
//! Semantics follow kube-state-metrics v2.20 except where it is known to misbehave; each such
//! difference is listed in the README and pinned by a test here.

mod compile;
mod evaluate;
pub mod ignored;
mod labels;
pub mod live;
pub mod model;
mod offline;
pub mod yaml;

pub use compile::{
    Compiled, CompiledLive, CompiledResource, ConfigError, ConfigErrorKind, DEFAULT_PREFIX,
    LiveKind, Location, Placed, full_name,
};
pub use evaluate::{EvalError, EvalErrorKind, EvalErrors, GVK_LABELS, ObjectKind, UNKNOWN_VALUE};
pub use offline::{ObjectErrors, Offline};

#[cfg(test)]
mod tests;
