//! What tapmon publishes beside the metrics, generated from the TAP groups a monitor enables:
//! Prometheus recording and alerting rules. Pure: the operator wraps them in a PrometheusRule,
//! `tapmon rules` prints them.

pub mod rules;
