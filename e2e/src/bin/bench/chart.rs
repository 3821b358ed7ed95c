//! The growth chart: RSS, CPU to the first complete scrape and scrape time against object count,
//! tapmon beside kube-state-metrics, drawn as an SVG from the run's own numbers.

use std::fmt::Write as _;

use crate::measure::SideResult;
use crate::sides::Side;

/// One panel: a title, a unit, and how to read the value of a result.
struct Panel {
    title: &'static str,
    unit: &'static str,
    value: fn(&SideResult) -> f64,
}

const PANELS: [Panel; 4] = [
    Panel {
        title: "Peak RSS",
        unit: "MiB",
        value: |r| r.steady.peak_rss as f64 / f64::from(1 << 20),
    },
    Panel {
        title: "CPU to first complete scrape",
        unit: "s",
        value: |r| r.complete.cpu.as_secs_f64(),
    },
    Panel {
        title: "Scrape p99, plain",
        unit: "ms",
        value: |r| r.plain.p99.as_secs_f64() * 1e3,
    },
    Panel {
        title: "Scrape p99, gzip",
        unit: "ms",
        value: |r| r.gzip.p99.as_secs_f64() * 1e3,
    },
];

const SIDES: [(Side, &str, &str); 2] = [
    (Side::Tapmon, "tapmon", "#1f77b4"),
    (Side::Ksm, "kube-state-metrics", "#d62728"),
];

const PANEL_W: f64 = 300.0;
const PANEL_H: f64 = 220.0;
/// Room for the value axis' labels, left of each panel.
const MARGIN_L: f64 = 56.0;
/// Room for the object counts, below the panels.
const MARGIN_B: f64 = 40.0;
/// Room for the title and legend, above the panels.
const TOP: f64 = 48.0;

/// The chart, or None with fewer than two object counts measured for both programs.
pub fn growth(scales: &[(usize, Vec<SideResult>)]) -> Option<String> {
    // Object counts where both programs were measured.
    let points: Vec<(usize, [&SideResult; 2])> = scales
        .iter()
        .filter_map(|(n, pair)| {
            let of = |s: Side| pair.iter().find(|r| r.side == s);
            Some((*n, [of(Side::Tapmon)?, of(Side::Ksm)?]))
        })
        .collect();
    if points.len() < 2 {
        return None;
    }
    let (lo, hi) = (
        (points[0].0.max(1) as f64).log10(),
        (points[points.len() - 1].0.max(1) as f64).log10(),
    );
    let span = (hi - lo).max(f64::EPSILON);
    let width = PANELS.len() as f64 * (PANEL_W + MARGIN_L) + 20.0;
    let height = TOP + PANEL_H + MARGIN_B + 30.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14">tapmon and kube-state-metrics against object count (log scale), same objects, one core each</text>"#
    );
    for (i, (_, name, colour)) in SIDES.iter().enumerate() {
        let x = 10.0 + i as f64 * 170.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="32" x2="{}" y2="32" stroke="{colour}" stroke-width="2"/><text x="{}" y="36">{name}</text>"#,
            x + 20.0,
            x + 25.0
        );
    }
    for (p, panel) in PANELS.iter().enumerate() {
        let left = p as f64 * (PANEL_W + MARGIN_L) + MARGIN_L;
        let bottom = TOP + PANEL_H;
        let max = points
            .iter()
            .flat_map(|(_, r)| r.iter().map(|r| (panel.value)(r)))
            .fold(0.0f64, f64::max)
            .max(f64::MIN_POSITIVE)
            * 1.1;
        let x = |n: usize| left + ((n.max(1) as f64).log10() - lo) / span * PANEL_W;
        let y = |v: f64| bottom - v / max * PANEL_H;
        let _ = writeln!(
            svg,
            r##"<text x="{left}" y="{}" font-weight="bold">{} ({})</text><rect x="{left}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>"##,
            TOP - 6.0,
            panel.title,
            panel.unit
        );
        for g in 0..=4 {
            let v = max * f64::from(g) / 4.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#eee"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
                y(v),
                left + PANEL_W,
                left - 4.0,
                y(v) + 4.0,
                short(v)
            );
        }
        for (n, _) in &points {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x(*n),
                bottom + 16.0,
                count(*n)
            );
        }
        for (s, (_, _, colour)) in SIDES.iter().enumerate() {
            let line: Vec<String> = points
                .iter()
                .map(|(n, r)| format!("{:.1},{:.1}", x(*n), y((panel.value)(r[s]))))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                line.join(" ")
            );
            for (n, r) in &points {
                let v = (panel.value)(r[s]);
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}: {} {} at {} objects</title></circle>"#,
                    x(*n),
                    y(v),
                    SIDES[s].1,
                    short(v),
                    panel.unit,
                    n
                );
            }
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">objects</text>"#,
            left + PANEL_W / 2.0,
            bottom + 32.0
        );
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

/// A value with a few significant digits.
fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// An object count as 1k, 50k, 1.2M.
fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(count(1_000), "1k");
        assert_eq!(count(200_000), "200k");
        assert_eq!(count(999), "999");
        assert_eq!(short(985.1), "985");
        assert_eq!(short(11.86), "11.9");
        assert_eq!(short(0.5), "0.50");
        assert_eq!(short(0.0), "0");
    }
}
