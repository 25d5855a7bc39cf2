//! Shared pieces of the distio benchmark: the floor's wire format.
//!
//! The floor is the least an IPC echo can do with the same tools distio is built from: a
//! tokio-util length-delimited frame over a Unix socket pair to a child process, carrying a
//! bincode-encoded `(id, bytes)`. The `floor-echo` binary answers it; no distio code runs
//! on either side of the floor.

use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// The floor's message: a request id and opaque bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct FloorMessage {
    /// Matches a reply to its request.
    pub id: u64,
    /// The payload, echoed back.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// The bincode configuration distio also uses (little-endian, fixed-width integers).
pub const BINCODE: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
> = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding();

/// Length-delimited framing with the same 64 MiB limit as distio.
pub fn floor_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(64 * 1024 * 1024)
        .new_codec()
}

/// Encodes a floor message.
pub fn encode(message: &FloorMessage) -> bytes::Bytes {
    bincode::serde::encode_to_vec(message, BINCODE)
        .unwrap_or_default()
        .into()
}

/// Decodes a floor message.
pub fn decode(bytes: &[u8]) -> Option<FloorMessage> {
    bincode::serde::decode_from_slice(bytes, BINCODE)
        .ok()
        .map(|(m, _)| m)
}

/// Peak resident set size of process `pid` (`self` for this one), in KiB, from /proc.
pub fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time process `pid` (`self` for this one) has used so far, in nanoseconds: the sum
/// over its threads of the first field of `/proc/<pid>/task/<tid>/schedstat`.
pub fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| {
            stat.split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
        })
        .sum()
}
