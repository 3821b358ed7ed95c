//! What a process costs, read from /proc: resident memory now and at its peak, CPU time.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;

/// A running process to measure.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pid: u32,
    ticks_per_second: u64,
}

/// One reading.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Resident set size, bytes.
    pub rss: u64,
    /// Peak resident set size since start, bytes.
    pub peak_rss: u64,
    /// User plus system CPU time since start.
    pub cpu: Duration,
}

impl Probe {
    /// Measures process `pid`.
    pub fn new(pid: u32) -> anyhow::Result<Probe> {
        let out = Command::new("getconf").arg("CLK_TCK").output()?;
        let ticks_per_second = String::from_utf8(out.stdout)?
            .trim()
            .parse()
            .context("getconf CLK_TCK")?;
        Ok(Probe {
            pid,
            ticks_per_second,
        })
    }

    /// Reads the process's memory and CPU time now.
    pub fn read(&self) -> anyhow::Result<Usage> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("process {} is gone", self.pid))?;
        let kib = |field: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(field))
                .with_context(|| format!("no {field} in /proc/{}/status", self.pid))?;
            let n: u64 = line[field.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(n * 1024)
        };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name, which may itself hold spaces and parentheses.
        let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        Ok(Usage {
            rss: kib("VmRSS:")?,
            peak_rss: kib("VmHWM:")?,
            cpu: Duration::from_millis(ticks * 1000 / self.ticks_per_second),
        })
    }
}

/// Pins every thread of `pid` to `cpus` (a taskset list: `0`, `0-1`).
pub fn pin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .context("running taskset")?;
    anyhow::ensure!(
        out.status.success(),
        "taskset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let probe = Probe::new(std::process::id()).unwrap();
        let before = probe.read().unwrap();
        // Burn some CPU so the reading must move.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let after = probe.read().unwrap();
        assert!(after.rss > 1 << 20, "{after:?}");
        assert!(after.peak_rss >= after.rss, "{after:?}");
        assert!(after.cpu > before.cpu, "{before:?} → {after:?}");
    }
}
