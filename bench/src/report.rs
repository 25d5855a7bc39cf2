//! The results table and its JSON record.

use serde::Serialize;
use std::fmt::Write as _;

/// What a scenario's ratio (or absolute value) is held to.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) enum Target {
    /// distio / floor must be at most this.
    RatioAtMost(f64),
    /// distio / floor must be at least this.
    RatioAtLeast(f64),
    /// distio's figure itself must be at most this.
    AbsoluteAtMost(f64),
    /// Reported only.
    None,
}

/// One row of results.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Outcome {
    pub(crate) scenario: String,
    pub(crate) unit: &'static str,
    pub(crate) distio: f64,
    pub(crate) floor: f64,
    /// distio / floor.
    pub(crate) ratio: f64,
    pub(crate) target: Target,
    pub(crate) met: Option<bool>,
    pub(crate) note: String,
}

impl Outcome {
    /// A row; whether more or less is better is the target's to say.
    pub(crate) fn new(
        scenario: &str,
        unit: &'static str,
        distio: f64,
        floor: f64,
        target: Target,
    ) -> Self {
        let ratio = distio / floor.max(f64::MIN_POSITIVE);
        let met = match target {
            Target::RatioAtMost(t) => Some(ratio <= t),
            Target::RatioAtLeast(t) => Some(ratio >= t),
            Target::AbsoluteAtMost(t) => Some(distio <= t),
            Target::None => None,
        };
        Outcome {
            scenario: scenario.to_owned(),
            unit,
            distio,
            floor,
            ratio,
            target,
            met,
            note: String::new(),
        }
    }

    /// Adds a note shown after the row.
    pub(crate) fn note(mut self, note: &str) -> Self {
        self.note = note.to_owned();
        self
    }
}

fn target_text(target: Target) -> String {
    match target {
        Target::RatioAtMost(t) => format!("ratio <= {t}"),
        Target::RatioAtLeast(t) => format!("ratio >= {t}"),
        Target::AbsoluteAtMost(t) => format!("distio <= {t}"),
        Target::None => "-".to_owned(),
    }
}

fn figure(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The results as a text table.
pub(crate) fn table(outcomes: &[Outcome], failures: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<56} {:>12} {:>12} {:>7}  {:<16} result",
        "scenario", "distio", "floor", "ratio", "target"
    );
    for o in outcomes {
        let result = match o.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        let _ = writeln!(
            out,
            "{:<56} {:>12} {:>12} {:>6.2}x  {:<16} {}{}",
            format!("{} ({})", o.scenario, o.unit),
            figure(o.distio),
            figure(o.floor),
            o.ratio,
            target_text(o.target),
            result,
            if o.note.is_empty() {
                String::new()
            } else {
                format!("  [{}]", o.note)
            },
        );
    }
    for failure in failures {
        let _ = writeln!(out, "FAILED: {failure}");
    }
    out
}

/// The machine, as far as /proc tells.
#[derive(Serialize)]
pub(crate) struct Machine {
    cpus: usize,
    model: String,
    kernel: String,
}

impl Machine {
    pub(crate) fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split(':').nth(1))
            })
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            model,
            kernel,
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPUs, {}, Linux {}",
            self.cpus, self.model, self.kernel
        )
    }
}
