//! The Unix-socket link kind: written to from the requesting task itself.
//!
//! A request encodes its frame into a shared buffer. If nobody is writing, the sender
//! writes the buffer to the socket right away (no hand-off to another task, so no
//! cross-thread wake-up on the way out); frames other senders append meanwhile go out in
//! the same loop, so concurrent requests share writes. The link's writer task takes over
//! only a flush its sender could not finish: the socket was full (for control frames), or
//! the sending request was dropped mid-flush. The lock is never held across an await or a
//! system call.

use bytes::{Buf, BytesMut};
use distio_proto::{Frame, FrameCodec, Hello, ProtoError, RequestId};
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_util::codec::Encoder;

use super::side::WriterSide;
use crate::room::Room;
use crate::sync::lock;

pub(crate) struct DirectWriter {
    half: OwnedWriteHalf,
    codec: FrameCodec,
    room: Arc<Room>,
    state: Mutex<WriteState>,
    /// Tells the writer task it owns the flush now (the socket was full, or a sender
    /// deferred the write to batch it).
    blocked: Notify,
}

struct WriteState {
    /// Encoded frames not yet written.
    buf: BytesMut,
    /// The frames in `buf` (and in a chunk being written), in order: which request each
    /// belongs to (0: not a request, or already partly written) and its length left.
    frames: VecDeque<(RequestId, usize)>,
    /// An empty buffer with capacity, swapped in while `buf` is being written so frames
    /// appended meanwhile do not start from nothing.
    spare: BytesMut,
    /// False until the handshake is done: frames queue but are not written.
    open: bool,
    /// Someone (a sender, or the writer task) is writing `buf` out.
    flushing: bool,
    /// Writing failed; the link is going down.
    failed: bool,
}

/// A flush a sender has claimed: the frames of a burst wait in the buffer while the
/// sender lets the other requests of its task queue behind its own, then
/// [`finish`](Self::finish) writes them all with one system call. The token is the one
/// owner of that duty: dropped unfinished (the request went away), it hands the flush to
/// the link's writer task, so a claimed flush is never lost and never done twice.
pub(crate) struct Flush {
    writer: Option<Arc<DirectWriter>>,
}

impl Flush {
    /// Writes what is buffered as far as the socket takes it now; the writer task finishes
    /// the rest once the socket drains.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(writer) => writer.flush_now(lock(&writer.state)),
            None => Ok(()),
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.hand_over();
        }
    }
}

/// How far a flush got.
enum Flushed {
    /// Everything buffered is written.
    All,
    /// The socket is full; the rest waits for it to drain.
    Blocked,
    /// Writing failed.
    Failed(io::Error),
}

impl DirectWriter {
    pub(crate) fn new(half: OwnedWriteHalf, codec: FrameCodec, room: Arc<Room>) -> Self {
        DirectWriter {
            half,
            codec,
            room,
            state: Mutex::new(WriteState {
                buf: BytesMut::new(),
                frames: VecDeque::new(),
                spare: BytesMut::new(),
                open: false,
                flushing: false,
                failed: false,
            }),
            blocked: Notify::new(),
        }
    }

    /// Queues `frame`. When the link is open and idle, the sender owns the flush: with
    /// `now` it writes at once (lowest latency; if the socket fills up, the writer task
    /// takes over the rest); otherwise it gets a [`Flush`] to finish soon, after letting
    /// other requests of the same burst queue up behind it.
    pub(crate) fn send(
        self: &Arc<Self>,
        frame: &Frame,
        now: bool,
    ) -> Result<Option<Flush>, ProtoError> {
        let mut state = lock(&self.state);
        let mut codec = self.codec;
        let before = state.buf.len();
        codec.encode(frame, &mut state.buf)?;
        let len = state.buf.len() - before;
        let id = match frame {
            Frame::Request(request) => request.id,
            _ => 0,
        };
        state.frames.push_back((id, len));
        self.room.add(len);
        if !state.open || state.flushing || state.failed {
            return Ok(None);
        }
        state.flushing = true;
        if !now {
            return Ok(Some(Flush {
                writer: Some(Arc::clone(self)),
            }));
        }
        match self.flush_now(state) {
            Ok(()) => Ok(None),
            Err(err) => Err(ProtoError::Io(err)),
        }
    }

    /// Hands the flush the caller owns to the writer task.
    fn hand_over(&self) {
        self.blocked.notify_one();
    }

    /// Writes what is buffered, as the current flusher; hands over to the writer task when
    /// the socket is full.
    fn flush_now<'a>(&'a self, state: MutexGuard<'a, WriteState>) -> io::Result<()> {
        match self.flush(state) {
            Flushed::All => Ok(()),
            Flushed::Blocked => {
                self.blocked.notify_one();
                Ok(())
            }
            Flushed::Failed(err) => Err(err),
        }
    }

    /// The flush loop. Called with `flushing` set by the caller, who owns the flush; leaves
    /// it set only when returning `Blocked`.
    fn flush<'a>(&'a self, mut state: MutexGuard<'a, WriteState>) -> Flushed {
        loop {
            if state.buf.is_empty() {
                state.flushing = false;
                return Flushed::All;
            }
            let spare = std::mem::take(&mut state.spare);
            let mut chunk = std::mem::replace(&mut state.buf, spare);
            let allocated = chunk.capacity();
            let queued = chunk.len();
            drop(state);
            let result = write_nonblocking(&self.half, &mut chunk);
            state = lock(&self.state);
            let written = queued - chunk.len();
            state.written(written);
            self.room.release(written);
            match result {
                Ok(()) => {
                    // Written bytes were advanced past, not freed: reclaim the allocation
                    // (no copy, nothing left in it) so the next frames reuse its pages.
                    chunk.clear();
                    chunk.reserve(allocated);
                    if chunk.capacity() > state.spare.capacity() {
                        state.spare = chunk;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // What is left goes before what others appended meanwhile; the buffer
                    // they appended to stays as the spare, keeping its allocation.
                    chunk.extend_from_slice(&state.buf);
                    let mut appended = std::mem::replace(&mut state.buf, chunk);
                    appended.clear();
                    if appended.capacity() > state.spare.capacity() {
                        state.spare = appended;
                    }
                    return Flushed::Blocked;
                }
                Err(err) => {
                    state.failed = true;
                    state.flushing = false;
                    state.buf = BytesMut::new();
                    state.frames.clear();
                    return Flushed::Failed(err);
                }
            }
        }
    }
}

impl DirectWriter {
    /// Drops the frames of requests that are no longer waiting (timed out or abandoned)
    /// from what is queued, so they are never sent. Call only while owning the flush with
    /// nothing being written (the writer task after the socket was full, or before the link
    /// opens). A frame partly written already stays.
    fn drop_dead_frames(&self, live: &dyn Fn(RequestId) -> bool) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        // Compacted in place: live frames after the first dead one move forward over it, so
        // each frame is checked once and nothing before the first dead frame is touched.
        let (mut read, mut write, mut dropped) = (0, 0, 0);
        state.frames.retain(|&(id, len)| {
            let at = read;
            read += len;
            if !live(id) {
                dropped += len;
                return false;
            }
            if write != at {
                state.buf.copy_within(at..at + len, write);
            }
            write += len;
            true
        });
        if dropped == 0 {
            return;
        }
        state.buf.truncate(write);
        self.room.release(dropped);
        tracing::debug!(
            bytes = dropped,
            "dropped unsent frames of requests no longer waiting"
        );
    }
}

impl WriteState {
    /// `n` bytes from the front of the queue were written: their frames are done, and a
    /// frame written in part must be finished whatever becomes of its request.
    fn written(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.frames.front_mut() else {
                return;
            };
            if front.1 <= n {
                n -= front.1;
                self.frames.pop_front();
            } else {
                front.1 -= n;
                front.0 = 0;
                return;
            }
        }
    }
}

/// Writes `chunk` until it is empty or the socket would block.
fn write_nonblocking(half: &OwnedWriteHalf, chunk: &mut BytesMut) -> io::Result<()> {
    while !chunk.is_empty() {
        match half.try_write(chunk) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => chunk.advance(n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The link's writer task for a direct writer: sends the hello, opens the link once the
/// slave is ready, then finishes flushes that found the socket full.
pub(crate) async fn run_direct_writer<S: WriterSide>(
    core: Arc<S>,
    writer: Arc<DirectWriter>,
    hello: Hello,
) {
    let mut first = BytesMut::new();
    let mut codec = writer.codec;
    let sent = match codec.encode(&Frame::Hello(hello), &mut first) {
        Ok(()) => write_all(&writer.half, &mut first)
            .await
            .map_err(ProtoError::Io),
        Err(err) => Err(err),
    };
    if let Err(err) = sent {
        tracing::debug!(slave = core.slave_id(), "could not send hello: {err}");
        core.end_link();
        return;
    }
    if !core.handshake_done().await {
        return;
    }
    // Open the link; requests queued during the handshake go out now, in order (those that
    // timed out meanwhile are dropped).
    let mut seen_forgotten = core.forgotten();
    core.with_live_check(|live| writer.drop_dead_frames(live));
    {
        let mut state = lock(&writer.state);
        state.open = true;
        if !state.flushing {
            state.flushing = true;
            if let Err(err) = writer.flush_now(state) {
                tracing::debug!(slave = core.slave_id(), "writing to slave failed: {err}");
                core.end_link();
                return;
            }
        }
    }
    loop {
        writer.blocked.notified().await;
        loop {
            if let Err(err) = writer.half.writable().await {
                tracing::debug!(slave = core.slave_id(), "slave socket failed: {err}");
                core.end_link();
                return;
            }
            // Requests forgotten while the socket was full: their frames need not go.
            let forgotten = core.forgotten();
            if forgotten != seen_forgotten {
                seen_forgotten = forgotten;
                core.with_live_check(|live| writer.drop_dead_frames(live));
            }
            match writer.flush(lock(&writer.state)) {
                Flushed::All => break,
                Flushed::Blocked => continue,
                Flushed::Failed(err) => {
                    tracing::debug!(slave = core.slave_id(), "writing to slave failed: {err}");
                    core.end_link();
                    return;
                }
            }
        }
    }
}

async fn write_all(half: &OwnedWriteHalf, buf: &mut BytesMut) -> io::Result<()> {
    while !buf.is_empty() {
        half.writable().await?;
        match write_nonblocking(half, buf) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
