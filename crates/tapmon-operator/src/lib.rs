//! The tapmon operator: reconciles TapMonitors, runs one shared dynamic watch per kind, and
//! serves each monitor's series at `/monitors/{namespace}/{name}/metrics`.
//!
//! ```text
//! TapMonitor ──reconcile──▶ validate ▶ discover ▶ plan ▶ subscribe ▶ publish ▶ status
//!                                                          │
//! kind watch ──event──▶ evaluate per subscribing monitor ▶ monitor store ◀── scrape (http)
//! ```
//!
//! Where to look: [`validate`], [`discovery`], [`plan`] and [`reconcile`] are the reconcile's
//! phases; [`watches`] runs the shared watches over the [`kinds`] they read; [`monitor`] holds a
//! monitor's compiled config and rendered series; `http` serves them; [`publish`] builds and
//! writes the ServiceMonitor, PrometheusRule and dashboards; [`state`] and [`context`] are what
//! the tasks share; [`shard`] says which objects a replica serves; `run` wires them together.

pub mod context;
pub mod discovery;
pub mod http;
pub mod kinds;
pub mod leader;
pub mod monitor;
pub mod object;
pub mod plan;
pub mod publish;
pub mod reconcile;
mod run;
pub mod shard;
pub mod state;
mod telemetry;
pub mod validate;
pub mod watches;

pub use context::Context;
pub use run::{MetricsAuth, RunConfig, RunError, SHUTDOWN_LIMIT, run};
pub use shard::{Shard, ShardError};
pub use state::State;
pub use telemetry::{Telemetry, TelemetryError};
pub use watches::InitialList;
