//! A slave's stdout and stderr, line by line, as output frames.
//!
//! Bounded: a line goes out only if the session's outbox has room for it now, within the
//! small share of it output may take (so other slaves' frames never wait behind much of
//! it); otherwise it is dropped and counted, and the count goes out as `lost` with the
//! stream's next line that does. A line is at most [`LINE_LIMIT`](distio_master::LINE_LIMIT) bytes
//! (longer runs are cut into pieces); a piece cut at the limit is sent without a newline.

use bytes::{BufMut, Bytes, BytesMut};
use distio_master::LINE_LIMIT;
use distio_master::hosted::LineSplitter;
use distio_proto::remote::{Channel, Output, OutputStream, ServerSession};
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::outbox::Outbox;

/// Relays both streams until each ends.
pub(crate) async fn pump<O, E>(
    stdout: Option<O>,
    stderr: Option<E>,
    channel: Channel,
    session: &Mutex<ServerSession>,
    outbox: &Outbox,
) where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let out = async {
        if let Some(out) = stdout {
            relay(out, OutputStream::Stdout, channel, session, outbox).await;
        }
    };
    let err = async {
        if let Some(err) = stderr {
            relay(err, OutputStream::Stderr, channel, session, outbox).await;
        }
    };
    tokio::join!(out, err);
}

async fn relay<R: AsyncRead + Unpin>(
    mut stream: R,
    which: OutputStream,
    channel: Channel,
    session: &Mutex<ServerSession>,
    outbox: &Outbox,
) {
    let mut splitter = LineSplitter::new(LINE_LIMIT);
    let mut lost = 0u64;
    let mut chunk = vec![0u8; 8192];
    let mut send = |line: &[u8], newline: bool| {
        let mut data = BytesMut::with_capacity(line.len() + 1);
        data.extend_from_slice(line);
        if newline {
            data.put_u8(b'\n');
        }
        let output = Output {
            channel,
            stream: which,
            lost,
            data: Bytes::from(data),
        };
        let message = session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .output(&output);
        // An error: the session is closing; the stream is still drained.
        if let Ok(message) = message {
            if outbox.try_output(message) {
                lost = 0;
            } else {
                lost += 1;
            }
        }
    };
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.feed(&chunk[..n], |line| send(line, line.len() < LINE_LIMIT));
    }
    if let Some(rest) = splitter.finish() {
        send(&rest, false);
    }
}
