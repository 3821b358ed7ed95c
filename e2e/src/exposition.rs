//! Reading expositions in tests: series of a family, and a parser into series and values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// The names of the series the presets' counters and histograms write. They count what
/// happens while tapmon runs (objects created and finished live), which no fixture implies.
fn live_series_names() -> &'static BTreeSet<String> {
    static NAMES: OnceLock<BTreeSet<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let spec = tapmon_presets::spec_for(tapmon_presets::TapGroup::ALL).unwrap_or_default();
        let (compiled, _) = tapmon_crs::Compiled::compile(&spec);
        let mut names = BTreeSet::new();
        for live in compiled.resources().iter().flat_map(|r| r.live()) {
            match live.kind() {
                tapmon_crs::LiveKind::Histogram { .. } => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{}{suffix}", live.name()));
                    }
                }
                _ => {
                    names.insert(live.name().to_owned());
                }
            }
        }
        names
    })
}

/// True for a sample line of a text exposition that an object's state implies: not a
/// comment, not empty, not a live counter or histogram.
pub fn is_object_series(line: &str) -> bool {
    if line.is_empty() || line.starts_with('#') {
        return false;
    }
    let name = line.split(['{', ' ']).next().unwrap_or(line);
    !live_series_names().contains(name)
}

/// Series lines of an exposition whose metric name is `family`.
pub fn series<'a>(exposition: &'a str, family: &str) -> Vec<&'a str> {
    exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

/// One series: its name and labels.
pub type SeriesKey = (String, BTreeMap<String, String>);

/// Parses a text exposition into series and values (comments skipped).
pub fn parse_exposition(text: &str) -> anyhow::Result<BTreeMap<SeriesKey, f64>> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => bail!("no value: {line}"),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '}' {
                    end = Some(i);
                    break;
                }
                if c == ',' || c == ' ' {
                    continue;
                }
                let name_start = i;
                let mut name_end = i;
                for (j, c) in chars.by_ref() {
                    if c == '=' {
                        name_end = j;
                        break;
                    }
                }
                let label = body[name_start..name_end].to_owned();
                if chars.next().map(|(_, c)| c) != Some('"') {
                    bail!("label value not quoted: {line}");
                }
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(other) => value.push(other),
                            None => bail!("dangling escape: {line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(label, value);
            }
            let end = end.with_context(|| format!("unclosed labels: {line}"))?;
            rest = &body[end + 1..];
        }
        let value = rest.split_whitespace().next().context("no value")?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().with_context(|| format!("bad value in {line}"))?,
        };
        out.insert((name.to_owned(), labels), value);
    }
    Ok(out)
}

fn pipe(program: &str, args: &[&str], input: &str) -> anyhow::Result<std::process::Output> {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    Ok(child.wait_with_output()?)
}

/// `promtool check metrics` over `text` (Debian package `prometheus`): its findings, or an
/// error when it cannot parse the exposition (lint findings are exit code 3, parse errors 1).
pub fn promtool_findings(text: &str) -> anyhow::Result<Vec<String>> {
    let out = pipe("promtool", &["check", "metrics"], text)?;
    let findings =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0 | 3) => Ok(findings
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()),
        code => bail!("promtool failed ({code:?}): {findings}"),
    }
}

/// The number of samples the Python client's reference parser reads from `text`.
pub fn python_samples(text: &str) -> anyhow::Result<usize> {
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as parse\nprint(sum(len(f.samples) for f in parse(sys.stdin.read())))";
    let out = pipe("python3", &["-c", script], text)?;
    if !out.status.success() {
        bail!(
            "prometheus_client could not parse the exposition: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

#[cfg(test)]
mod live_tests {
    use super::*;

    #[test]
    fn live_counters_and_histograms_are_not_object_series() {
        assert!(is_object_series("kpack_build_status{name=\"b\"} 1"));
        assert!(is_object_series(
            "kpack_build_duration_seconds{name=\"b\"} 95"
        ));
        assert!(!is_object_series(
            "kpack_build_completed_total{workload=\"w\"} 1"
        ));
        assert!(!is_object_series(
            "kpack_build_completed_duration_seconds_bucket{le=\"30\"} 1"
        ));
        assert!(!is_object_series("# TYPE kpack_build_status gauge"));
        assert!(!is_object_series(""));
    }
}
