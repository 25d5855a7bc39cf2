//! What the server tells its masters about how busy it is ([`Status`]).

use distio_proto::remote::Status;

use super::ServerState;

/// The server's status now: its slots (all sessions together), CPU count and load.
pub(super) fn status(state: &ServerState) -> Status {
    let slots = state.slots();
    Status {
        capacity: saturate(slots.capacity()),
        running: saturate(slots.running()),
        queued: saturate(slots.queued()),
        cpus: std::thread::available_parallelism().map_or(1, |n| saturate(n.get())),
        load_milli: load_average()
            .map_or(0, |load| (load * 1000.0).clamp(0.0, u32::MAX as f64) as u32),
    }
}

/// The one-minute load average, where the system shows it (`/proc/loadavg`).
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_load(&text)
}

fn parse_load(text: &str) -> Option<f64> {
    text.split_ascii_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|load| load.is_finite() && *load >= 0.0)
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_loadavg_field_is_the_one_minute_load() {
        assert_eq!(parse_load("0.52 0.58 0.59 1/467 12345\n"), Some(0.52));
        assert_eq!(parse_load(""), None);
        assert_eq!(parse_load("nan 1 2"), None);
        assert_eq!(parse_load("-1 1 2"), None);
    }
}
