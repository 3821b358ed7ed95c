//! How long a watch waits before trying again after an error: from half a second, doubling, to
//! at most five seconds. kube's default (client-go's) grows to 30 s, so after an API server
//! outage the data (and with it the status) came back up to half a minute late; a few dozen
//! watches retrying every five seconds is no load worth sparing a recovering server.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// The first wait.
const FIRST: Duration = Duration::from_millis(500);
/// The longest wait.
const MAX: Duration = Duration::from_secs(5);

/// The backoff of every watch the operator runs.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
    /// Spreads the retries of many watches (a few percent), without a random source.
    spread: u32,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        // The clock's nanoseconds differ between watches started apart: enough to spread them.
        let spread = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() % 97);
        Self {
            next: FIRST,
            spread,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next + self.next / 100 * self.spread / 20;
        self.next = (self.next * 2).min(MAX);
        Some(wait.min(MAX + MAX / 20))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_seconds_and_resets() {
        let mut b = WatchBackoff {
            next: FIRST,
            spread: 0,
        };
        let waits: Vec<Duration> = (&mut b).take(6).collect();
        assert_eq!(waits[0], FIRST);
        assert_eq!(waits[1], FIRST * 2);
        assert_eq!(waits[5], MAX);
        b.reset();
        assert_eq!(b.next(), Some(FIRST));
    }
}
