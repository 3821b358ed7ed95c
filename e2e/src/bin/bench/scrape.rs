//! Scrapes as Prometheus makes them, timed from connect to the last byte.

use std::borrow::Cow;
use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One scrape.
pub struct Scrape<'a> {
    /// Connect to last byte.
    pub took: Duration,
    /// Body bytes as sent (compressed when gzip was asked for and given).
    pub wire_bytes: usize,
    /// The exposition, decompressed; a plain body is not copied out of the client's buffer.
    pub body: Cow<'a, [u8]>,
}

/// An HTTP client that keeps one receive buffer for all its scrapes: a fresh 65 MB buffer
/// costs ~16k page faults, which would be timed as the server's. Each concurrent poller
/// has its own.
#[derive(Default)]
pub struct Scraper {
    raw: Vec<u8>,
}

impl Scraper {
    /// GETs `path`; with `gzip`, asks for a compressed body and decompresses it (after the
    /// clock stops).
    pub async fn get(
        &mut self,
        addr: SocketAddr,
        path: &str,
        gzip: bool,
    ) -> anyhow::Result<Scrape<'_>> {
        let start = Instant::now();
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let accept = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n").as_bytes())
            .await?;
        self.raw.clear();
        stream.read_to_end(&mut self.raw).await?;
        let took = start.elapsed();
        let raw = &self.raw;
        let end = memchr::memmem::find(raw, b"\r\n\r\n").context("no end of headers")?;
        let head = std::str::from_utf8(&raw[..end])?;
        if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
            bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
        }
        let compressed = head
            .lines()
            .any(|l| l.to_ascii_lowercase().replace(' ', "") == "content-encoding:gzip");
        if gzip && !compressed {
            bail!("asked for gzip, got a plain body");
        }
        let wire = &raw[end + 4..];
        let wire_bytes = wire.len();
        let body = if compressed {
            let mut out = Vec::with_capacity(wire_bytes * 8);
            flate2::read::GzDecoder::new(wire).read_to_end(&mut out)?;
            Cow::Owned(out)
        } else {
            Cow::Borrowed(wire)
        };
        Ok(Scrape {
            took,
            wire_bytes,
            body,
        })
    }
}

/// Series in a text exposition: lines that are neither empty nor comments.
pub fn series_count(body: &[u8]) -> usize {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
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
