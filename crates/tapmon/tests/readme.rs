//! README.md says what the code does: every flag of `tapmon run` and every self-metric is
//! documented there, and nothing documented is missing from the code.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn readme_section(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let rest = &readme[start + heading.len()..];
    let end = rest
        .find("\n### ")
        .or_else(|| rest.find("\n## "))
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Words of `text` that start with `prefix`, up to the first character not in `[a-z0-9_-]`.
fn words(text: &str, prefix: &str) -> BTreeSet<String> {
    text.match_indices(prefix)
        .map(|(i, _)| {
            let tail = &text[i + prefix.len()..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(tail.len());
            format!("{prefix}{}", &tail[..end])
        })
        .filter(|w| w.len() > prefix.len())
        .collect()
}

#[test]
fn every_flag_of_tapmon_run_is_documented_and_no_other() {
    let help = Command::new(env!("CARGO_BIN_EXE_tapmon"))
        .args(["run", "--help"])
        .output()
        .expect("tapmon runs");
    let help = String::from_utf8(help.stdout).unwrap();
    let mut flags = words(&help, "--");
    flags.remove("--help");
    let documented = words(&readme_section("### The operator"), "--");
    assert_eq!(
        flags, documented,
        "README \"### The operator\" and `tapmon run --help` list different flags"
    );
}

#[test]
fn every_self_metric_is_documented_and_no_other() {
    let telemetry = tapmon_operator::Telemetry::new().unwrap();
    let names: BTreeSet<String> = telemetry.names().iter().cloned().collect();
    let documented = words(&readme_section("### The operator"), "tapmon_");
    assert_eq!(
        names, documented,
        "README \"### The operator\" and the registered self-metrics differ"
    );
}
