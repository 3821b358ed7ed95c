//! What tapmon publishes beside the metrics, generated from the TAP groups a monitor enables:
//! Prometheus recording and alerting rules, and Grafana dashboards. Pure: the operator wraps
//! them in a PrometheusRule and ConfigMaps; `tapmon rules` and `tapmon dashboards` print them.

pub mod dashboards;
pub mod dora;
pub mod promql;
pub mod rules;
mod selector;
