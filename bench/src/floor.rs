//! The floor's parent side: child processes running `floor-echo`, and the same workloads
//! distio runs, with nothing but tokio, tokio-util and bincode.

use distio_bench::{FloorMessage, decode, encode, floor_codec};
use futures_util::{SinkExt, StreamExt};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// One floor child and the parent's end of its socket.
pub(crate) struct FloorChild {
    child: Child,
    framed: Framed<UnixStream, LengthDelimitedCodec>,
    next_id: u64,
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl FloorChild {
    /// Starts `floor-echo` with one end of a socket pair as its stdin.
    pub(crate) fn spawn(exe: &Path) -> io::Result<Self> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let child = Command::new(exe)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        ours.set_nonblocking(true)?;
        let framed = Framed::new(UnixStream::from_std(ours)?, floor_codec());
        Ok(FloorChild {
            child,
            framed,
            next_id: 0,
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn message(&mut self, payload: &[u8]) -> FloorMessage {
        self.next_id += 1;
        FloorMessage {
            id: self.next_id,
            payload: payload.to_vec(),
        }
    }

    /// Sends one message without waiting.
    pub(crate) async fn send(&mut self, payload: &[u8]) -> io::Result<u64> {
        let message = self.message(payload);
        self.framed.send(encode(&message)).await?;
        Ok(message.id)
    }

    /// Waits for one reply and checks it.
    pub(crate) async fn recv(&mut self, id: u64) -> io::Result<usize> {
        let frame = self
            .framed
            .next()
            .await
            .ok_or_else(|| broken("floor child closed"))??;
        let reply = decode(&frame).ok_or_else(|| broken("floor reply did not decode"))?;
        if reply.id != id {
            return Err(broken("floor reply out of order"));
        }
        Ok(reply.payload.len())
    }

    /// One request and its reply.
    pub(crate) async fn round_trip(&mut self, payload: &[u8]) -> io::Result<Duration> {
        let started = Instant::now();
        let id = self.send(payload).await?;
        self.recv(id).await?;
        Ok(started.elapsed())
    }

    /// `total` requests with at most `window` in flight; returns the time taken.
    pub(crate) async fn pipelined(
        &mut self,
        total: usize,
        window: usize,
        payload: &[u8],
    ) -> io::Result<Duration> {
        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(window));
        let first_id = self.next_id + 1;
        let (mut sink, mut stream) = (&mut self.framed).split();
        let writer = async {
            for n in 0..total {
                permits
                    .acquire()
                    .await
                    .map_err(|_| broken("closed"))?
                    .forget();
                let message = FloorMessage {
                    id: first_id + n as u64,
                    payload: payload.to_vec(),
                };
                sink.feed(encode(&message)).await?;
                if permits.available_permits() == 0 || n + 1 == total {
                    SinkExt::<bytes::Bytes>::flush(&mut sink).await?;
                }
            }
            Ok::<(), io::Error>(())
        };
        let reader = async {
            for _ in 0..total {
                let frame = stream
                    .next()
                    .await
                    .ok_or_else(|| broken("floor child closed"))??;
                decode(&frame).ok_or_else(|| broken("floor reply did not decode"))?;
                permits.add_permits(1);
            }
            Ok::<(), io::Error>(())
        };
        tokio::try_join!(writer, reader)?;
        self.next_id += total as u64;
        Ok(started.elapsed())
    }
}
