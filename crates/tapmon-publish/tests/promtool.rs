//! The generated rules through promtool: `check rules`, then the unit tests of rules_test.yaml.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use tapmon_presets::TapGroup;
use tapmon_publish::rules::{RuleGroup, rule_groups};

#[derive(Serialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool is installed (Debian package prometheus)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool {}: {text}", args.join(" "));
    text
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = tempfile::tempdir().unwrap();
    let rules = RuleFile {
        groups: rule_groups(&TapGroup::ALL, None),
    };
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_saphyr::to_string(&rules).unwrap(),
    )
    .unwrap();
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules_test.yaml");
    std::fs::copy(&tests, dir.path().join("rules_test.yaml")).unwrap();
    let checked = promtool(dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(checked.contains("SUCCESS: 28 rules found"), "{checked}");
    let tested = promtool(dir.path(), &["test", "rules", "rules_test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}
