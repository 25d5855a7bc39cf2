//! A process's memory and CPU time, read from `/proc/PID/status` and `/proc/PID/stat`.

/// What `/proc` says of one process; `None` where it could not be read (the process
/// ended, or `/proc` is not mounted).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Usage {
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) cpu_secs: Option<f64>,
}

/// The usage of process `pid`.
pub(crate) fn usage(pid: u32) -> Usage {
    let rss_bytes = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| rss_from_status(&text));
    let cpu_secs = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| cpu_ticks_from_stat(&text))
        .map(|ticks| ticks as f64 / ticks_per_second());
    Usage {
        rss_bytes,
        cpu_secs,
    }
}

/// `VmRSS:  1234 kB` → bytes.
fn rss_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself: fields are counted from the
/// last `)`.
fn cpu_ticks_from_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        assert_eq!(
            rss_from_status("Name:\tx\nVmRSS:\t    2048 kB\nThreads: 1\n"),
            Some(2048 * 1024)
        );
        assert_eq!(rss_from_status("Name:\tkthread\n"), None);
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 99 0 0";
        assert_eq!(cpu_ticks_from_stat(stat), Some(12));
        assert_eq!(cpu_ticks_from_stat("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let own = usage(std::process::id());
        assert!(own.rss_bytes.unwrap() > 0);
        assert!(own.cpu_secs.unwrap() >= 0.0);
        assert_eq!(usage(u32::MAX), Usage::default());
    }
}
