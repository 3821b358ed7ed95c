//! Counting series and taking quantiles of scrape timings (requests go through
//! `tapmon_e2e::http::Client`).

use std::time::Duration;

/// Series in a text exposition that objects imply: lines that are neither empty nor
/// comments nor live counters and histograms (objects churned in count there).
pub fn series_count(body: &[u8]) -> usize {
    body.split(|&b| b == b'\n')
        .filter(|l| std::str::from_utf8(l).is_ok_and(tapmon_e2e::is_object_series))
        .count()
}

/// The value at quantile `q` (nearest rank) of `samples`.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_series_not_comments() {
        let text = b"# HELP a x\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 0\n\nb 3\n";
        assert_eq!(series_count(text), 3);
        assert_eq!(series_count(b""), 0);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let samples = ms(&[5, 1, 4, 2, 3]);
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(3));
        assert_eq!(quantile(&samples, 0.99), Duration::from_millis(5));
        assert_eq!(quantile(&samples, 0.0), Duration::from_millis(1));
        let hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&hundred, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
