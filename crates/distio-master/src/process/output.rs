//! Relaying slaves' output, line by line behind a prefix, to the master's stdout and
//! stderr without ever blocking the runtime.
//!
//! A pump task per stream reads the slave's pipe and cuts what it reads into lines of at
//! most [`LINE_LIMIT`] bytes; it sends them over a bounded channel to one writer thread
//! per standard stream (stdout, stderr), which does the blocking writes, a whole line at a
//! time. When the master's stdout stalls, the writer blocks, the channel fills, the pumps
//! wait to send and stop reading, and the slave's pipe fills: the slave's writes block,
//! the master's runtime does not.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::worker::Worker;
use crate::LINE_LIMIT;

/// Lines waiting for each writer thread: at most this many times [`LINE_LIMIT`] bytes
/// (plus prefixes) are held per stream.
const QUEUED: usize = 16;

static STDOUT: Worker<Vec<u8>> = Worker::new("distio-stdout", QUEUED, write_stdout);
static STDERR: Worker<Vec<u8>> = Worker::new("distio-stderr", QUEUED, write_stderr);

fn write_stdout(lines: mpsc::Receiver<Vec<u8>>) {
    write_lines(lines, || std::io::stdout().lock());
}

fn write_stderr(lines: mpsc::Receiver<Vec<u8>>) {
    write_lines(lines, || std::io::stderr().lock());
}

fn write_lines<W: std::io::Write>(mut lines: mpsc::Receiver<Vec<u8>>, out: impl Fn() -> W) {
    while let Some(line) = lines.blocking_recv() {
        // One write under the handle's lock keeps the line whole. Where the master's own
        // output fails there is nowhere to report it: the line is dropped.
        let _ = out().write_all(&line);
    }
}

/// Copies the lines of a slave's stream to the master's stdout (or stderr), each behind
/// `prefix`, in pieces of at most [`LINE_LIMIT`] bytes.
pub(crate) async fn relay_lines<R: AsyncRead + Unpin>(
    mut stream: R,
    prefix: String,
    to_stderr: bool,
) {
    let writer = if to_stderr { &STDERR } else { &STDOUT };
    let mut sender = match writer.sender() {
        Ok(sender) => Some(sender),
        Err(err) => {
            tracing::warn!("cannot relay a slave's output ({err}); it is discarded");
            None
        }
    };
    let mut splitter = LineSplitter::new(LINE_LIMIT);
    let mut chunk = vec![0u8; 8192];
    let mut lines = Vec::new();
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.feed(&chunk[..n], |line| lines.push(prefixed(&prefix, line)));
        forward(&mut sender, &mut lines).await;
    }
    if let Some(rest) = splitter.finish() {
        lines.push(prefixed(&prefix, &rest));
        forward(&mut sender, &mut lines).await;
    }
}

/// Queues one line (its newline, if any, replaced by one) for the master's stdout or
/// stderr behind `prefix`, without waiting: false if the writer is behind and the line was
/// dropped. For output that arrives as lines from a remote host, whose session must not
/// wait for a terminal.
pub(crate) fn print_line(prefix: &str, line: &[u8], to_stderr: bool) -> bool {
    let writer = if to_stderr { &STDERR } else { &STDOUT };
    let Ok(sender) = writer.sender() else {
        return false;
    };
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    sender.try_send(prefixed(prefix, line)).is_ok()
}

fn prefixed(prefix: &str, line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + line.len() + 1);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(line);
    out.push(b'\n');
    out
}

/// Sends `lines` to the writer thread, waiting while its queue is full. Without a writer
/// (it could not start) the lines are dropped, and the stream is still drained.
async fn forward(sender: &mut Option<mpsc::Sender<Vec<u8>>>, lines: &mut Vec<Vec<u8>>) {
    for line in lines.drain(..) {
        if let Some(tx) = sender
            && tx.send(line).await.is_err()
        {
            *sender = None;
        }
    }
}

/// Cuts a byte stream into lines of at most `limit` bytes.
///
/// ```
/// use distio_master::hosted::LineSplitter;
/// let mut splitter = LineSplitter::new(4);
/// let mut lines = Vec::new();
/// splitter.feed(b"ab\ncdefg", |line| lines.push(line.to_vec()));
/// assert_eq!(lines, [b"ab".to_vec(), b"cdef".to_vec()]);
/// assert_eq!(splitter.finish(), Some(b"g".to_vec()));
/// ```
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    limit: usize,
}

impl LineSplitter {
    /// A splitter emitting pieces of at most `limit` (at least 1) bytes.
    pub fn new(limit: usize) -> Self {
        LineSplitter {
            partial: Vec::new(),
            limit: limit.max(1),
        }
    }

    /// Hands every line completed by `data` to `emit`, without its newline; a run of more
    /// than `limit` bytes without one is handed over in pieces of `limit` bytes. What
    /// follows the last newline waits for more data (at most `limit` bytes are kept).
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = self.limit - self.partial.len();
            // A newline right after `room` more bytes still ends a full-length line.
            let window = &data[..data.len().min(room + 1)];
            let (end, skip) = match window.iter().position(|&b| b == b'\n') {
                Some(newline) => (newline, 1),
                None if data.len() <= room => {
                    self.partial.extend_from_slice(data);
                    return;
                }
                None => (room, 0),
            };
            if self.partial.is_empty() {
                emit(&data[..end]);
            } else {
                self.partial.extend_from_slice(&data[..end]);
                emit(&self.partial);
                self.partial.clear();
            }
            data = &data[end + skip..];
        }
    }

    /// The bytes after the last newline, if any, once the stream has ended.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

#[cfg(test)]
mod tests {
    use super::LineSplitter;

    /// Feeds `input` in `step`-byte reads; returns the pieces, then the rest at the end.
    fn split(input: &[u8], limit: usize, step: usize) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::new(limit);
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            splitter.feed(chunk, |line| out.push(line.to_vec()));
        }
        out.extend(splitter.finish());
        out
    }

    #[test]
    fn lines_are_cut_at_newlines_and_at_the_limit() {
        for step in [1, 2, 3, 4, 5, 7, 100] {
            let lines = split(b"ab\n\ncdefghij\nklmn\nopq", 4, step);
            let expected: Vec<&[u8]> = vec![b"ab", b"", b"cdef", b"ghij", b"klmn", b"opq"];
            assert_eq!(lines, expected, "reads of {step}");
        }
    }

    #[test]
    fn a_long_run_without_newline_comes_out_in_pieces_of_the_limit() {
        let input = vec![b'x'; 10 * 1024 * 1024 + 5];
        let limit = 64 * 1024;
        let pieces = split(&input, limit, 8192);
        assert_eq!(pieces.len(), input.len() / limit + 1);
        assert!(pieces.iter().all(|p| p.len() <= limit && !p.is_empty()));
        assert_eq!(pieces.iter().map(Vec::len).sum::<usize>(), input.len());
    }

    #[test]
    fn the_splitter_keeps_at_most_the_limit() {
        let mut splitter = LineSplitter::new(16);
        for _ in 0..1000 {
            splitter.feed(&[b'y'; 7], |line| assert_eq!(line.len(), 16));
            assert!(splitter.partial.len() <= 16);
        }
    }
}
