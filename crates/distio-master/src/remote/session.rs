//! One master's session with one host: the WebSocket, the tasks that read and write it,
//! and the channels of the slaves it carries.

use bytes::Bytes;
use distio_proto::remote::{
    Beat, Channel, ClientEvent, ClientSession, CloseReason, Exited, Heartbeat, Output,
    OutputStream, SessionCodec, Spawn, SpawnFailed, Spawned, Status, Welcome,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::channel::{OutputRoute, RemoteChannel, RemoteEnd};
use super::host::Host;
use super::loss::{HostLoss, LossCause};
use super::outbox::Outgoing;
use crate::sync::lock;
use crate::{MasterError, Signal, process};
use distio_proto::remote::passphrase::{Opener, RecordKeys, Sealer};

pub(crate) type Ws = WebSocketStream<super::connect::Stream>;

/// A master's session with one host.
pub(crate) struct Session {
    pub(crate) host: Host,
    pub(crate) codec: SessionCodec,
    state: Mutex<State>,
    /// How busy the server said it is (from the welcome, then each status report), and
    /// how many slaves this master has started there since that report.
    status: Mutex<(Status, u32)>,
    /// The writer's queue: slave frames (bounded by each slave's room, in bytes) and the
    /// session's own few messages.
    out: mpsc::UnboundedSender<Outgoing>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Turns true when the session ends, for those who watch it (a cluster marks its host
    /// down at once).
    ended: watch::Sender<bool>,
}

/// A spawn waiting for the server's answer: its channel, and who waits.
type PendingSpawn = (
    Arc<RemoteChannel>,
    oneshot::Sender<Result<Spawned, SpawnFailed>>,
);

struct State {
    client: ClientSession,
    spawns: HashMap<Channel, PendingSpawn>,
    channels: HashMap<Channel, Arc<RemoteChannel>>,
    loss: Option<HostLoss>,
}

impl Session {
    /// Starts the tasks of a session whose handshake is done.
    /// With `keys` (passphrase mode), every message both ways is a sealed record.
    pub(crate) fn start(
        host: Host,
        ws: Ws,
        client: ClientSession,
        welcome: &Welcome,
        keys: Option<RecordKeys>,
    ) -> Arc<Self> {
        let (out, queued) = mpsc::unbounded_channel();
        let codec = client.codec();
        let session = Arc::new(Session {
            host,
            codec,
            state: Mutex::new(State {
                client,
                spawns: HashMap::new(),
                channels: HashMap::new(),
                loss: None,
            }),
            status: Mutex::new((Status::from(welcome), 0)),
            out,
            tasks: Mutex::new(Vec::new()),
            ended: watch::Sender::new(false),
        });
        let (sink, stream) = ws.split();
        let weak = Arc::downgrade(&session);
        let (sealer, opener) = keys.map(|k| (k.sealer, k.opener)).unzip();
        let reader = tokio::spawn(run_reader(weak.clone(), stream, opener));
        let writer = tokio::spawn(run_writer(weak, sink, queued, sealer));
        lock(&session.tasks).extend([reader.abort_handle(), writer.abort_handle()]);
        session
    }

    /// True once the session has ended.
    /// How busy the server last said it is, and how many slaves this master started there
    /// since it said so.
    pub(crate) fn status(&self) -> (Status, u32) {
        *lock(&self.status)
    }

    /// This master's slaves on the host now (starting or running).
    pub(crate) fn live_channels(&self) -> usize {
        lock(&self.state).client.live_channels()
    }

    pub(crate) fn is_lost(&self) -> bool {
        lock(&self.state).loss.is_some()
    }

    /// Turns true when the session ends (already true if it has). Its sender goes with
    /// the session.
    pub(crate) fn ended(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }

    /// The queue of messages for the writer.
    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<Outgoing> {
        self.out.clone()
    }

    /// Asks the server for a slave; returns its channel once started, with the receiver of
    /// its frames.
    pub(crate) async fn spawn(
        &self,
        spawn: Spawn,
        output: OutputRoute,
        limit: Duration,
    ) -> Result<(Spawned, Arc<RemoteChannel>, mpsc::Receiver<Bytes>), MasterError> {
        let script = spawn.script.clone();
        let (answer, answered) = oneshot::channel();
        let (channel, frames) = {
            let mut state = lock(&self.state);
            if let Some(loss) = &state.loss {
                return Err(MasterError::HostLost { loss: loss.clone() });
            }
            let (number, message) = state
                .client
                .spawn(spawn)
                .map_err(|err| self.violation(err.to_string()))?;
            let (channel, frames) = RemoteChannel::new(number, output);
            state.spawns.insert(number, (Arc::clone(&channel), answer));
            // Under the lock, so spawn messages leave in channel order.
            self.queue(message);
            (channel, frames)
        };
        match tokio::time::timeout(limit, answered).await {
            Ok(Ok(Ok(spawned))) => Ok((spawned, channel, frames)),
            Ok(Ok(Err(failed))) => Err(MasterError::RemoteSpawn {
                host: self.host.to_string(),
                script,
                kind: failed.kind,
                message: failed.message,
            }),
            Ok(Err(_)) => Err(MasterError::HostLost {
                loss: self
                    .loss()
                    .unwrap_or_else(|| self.lost(LossCause::ConnectionLost)),
            }),
            Err(_) => {
                // Cancel it: a slave that starts later is killed at once.
                self.kill(channel.channel, Signal::KILL);
                Err(MasterError::RemoteSpawnTimedOut {
                    host: self.host.to_string(),
                    script,
                    limit,
                })
            }
        }
    }

    /// Queues a kill (or the cancelling of a queued spawn) for `channel`.
    pub(crate) fn kill(&self, channel: Channel, signal: Signal) {
        let message = lock(&self.state).client.kill(channel, signal.0);
        if let Ok(Some(message)) = message {
            self.queue(message);
        }
    }

    /// Queues a session message of no slave's.
    fn queue(&self, message: Bytes) {
        let _ = self.out.send(Outgoing::control(Message::Binary(message)));
    }

    /// Why the session was lost, as a sentence (`None` while it lives).
    pub(crate) fn loss_reason(&self) -> Option<String> {
        self.loss().map(|loss| loss.cause.to_string())
    }

    fn loss(&self) -> Option<HostLoss> {
        lock(&self.state).loss.clone()
    }

    fn lost(&self, cause: LossCause) -> HostLoss {
        HostLoss {
            host: self.host.to_string(),
            cause,
        }
    }

    fn violation(&self, why: String) -> MasterError {
        MasterError::HostLost {
            loss: self.lost(LossCause::ProtocolViolation(why)),
        }
    }

    /// Ends the session: every pending spawn and every slave on it fails with `cause`
    /// (the first cause counts), and the connection is dropped.
    pub(crate) fn end(&self, cause: LossCause) {
        let (spawns, channels, loss) = {
            let mut state = lock(&self.state);
            if state.loss.is_some() {
                return;
            }
            let loss = self.lost(cause);
            state.loss = Some(loss.clone());
            state.client.end_all();
            (
                std::mem::take(&mut state.spawns),
                std::mem::take(&mut state.channels),
                loss,
            )
        };
        tracing::debug!(host = %self.host, "session ended: {}", loss.cause);
        for (_, (channel, answer)) in spawns {
            channel.finish(RemoteEnd::Lost(loss.clone()));
            drop(answer);
        }
        for (_, channel) in channels {
            channel.finish(RemoteEnd::Lost(loss.clone()));
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        // Last: whoever watches sees the slaves already ended.
        self.ended.send_replace(true);
    }

    /// Acts on one message from the server. `Err` ends the session.
    async fn receive(&self, message: Bytes) -> Result<(), LossCause> {
        // One lock per message: a routed frame's destination is looked up with the check.
        let (event, frames) = {
            let mut state = lock(&self.state);
            let event = state.client.receive(&message);
            let frames = match &event {
                Ok(ClientEvent::Routed { channel, .. }) => {
                    state.channels.get(channel).and_then(|c| c.frames())
                }
                _ => None,
            };
            (event, frames)
        };
        let event = event.map_err(|err| LossCause::ProtocolViolation(err.to_string()))?;
        match event {
            ClientEvent::Routed { body, .. } => {
                if let Some(frames) = frames {
                    // Waits when the slave's reader is behind: the session is a stream.
                    let _ = frames.send(body).await;
                }
            }
            ClientEvent::Spawned(spawned) => {
                let mut state = lock(&self.state);
                {
                    let mut status = lock(&self.status);
                    status.1 = status.1.saturating_add(1);
                }
                if let Some((channel, answer)) = state.spawns.remove(&spawned.channel) {
                    state.channels.insert(spawned.channel, channel);
                    if answer.send(Ok(spawned)).is_err() {
                        // Nobody waits any more (timed out): end the slave.
                        drop(state);
                        self.kill(spawned.channel, Signal::KILL);
                    }
                }
            }
            ClientEvent::SpawnFailed(failed) => {
                if let Some((_, answer)) = lock(&self.state).spawns.remove(&failed.channel) {
                    let _ = answer.send(Err(failed));
                }
            }
            ClientEvent::Output(output) => self.show(output),
            ClientEvent::Exited(exited) => {
                let channel = lock(&self.state).channels.remove(&exited.channel);
                if let Some(channel) = channel {
                    channel.finish(RemoteEnd::Exited {
                        status: exit_status(&exited),
                        cause: exited.cause,
                    });
                }
            }
            ClientEvent::Closing(closing) => {
                let cause = match closing.reason {
                    CloseReason::ServerStopping => LossCause::ServerStopping,
                    CloseReason::HeartbeatLost => LossCause::HeartbeatLost,
                    _ => LossCause::ClosedByServer(closing.message),
                };
                // Ended here, under the cause the server gave, so that a spawn racing the
                // close is refused with it (not as a frame sent after closing).
                self.end(cause.clone());
                return Err(cause);
            }
            ClientEvent::Status(status) => *lock(&self.status) = (status, 0),
            ClientEvent::Welcomed(_) => {}
            _ => {}
        }
        Ok(())
    }

    fn show(&self, output: Output) {
        let Some(channel) = lock(&self.state).channels.get(&output.channel).cloned() else {
            return;
        };
        let stderr = output.stream == OutputStream::Stderr;
        if output.lost > 0 {
            channel.lost_lines.fetch_add(output.lost, Ordering::Relaxed);
        }
        let printed = match &channel.output {
            OutputRoute::Prefixed(prefix) => {
                if output.lost > 0 {
                    let note = format!("({} lines of output lost)", output.lost);
                    process::print_line(prefix, note.as_bytes(), stderr);
                }
                process::print_line(prefix, &output.data, stderr)
            }
            OutputRoute::Inherit => process::print_line("", &output.data, stderr),
            OutputRoute::Capture(store) => {
                store.append(stderr, &output.data);
                true
            }
            OutputRoute::Null => true,
        };
        if !printed {
            channel.lost_lines.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

fn exit_status(exited: &Exited) -> ExitStatus {
    match (exited.code, exited.signal) {
        (Some(code), _) => ExitStatus::from_raw((code & 0xff) << 8),
        (None, Some(signal)) => ExitStatus::from_raw(signal & 0x7f),
        (None, None) => ExitStatus::from_raw(0),
    }
}

/// Reads the server's messages and watches the heartbeat; ends the session when the
/// connection does.
async fn run_reader(
    session: Weak<Session>,
    mut stream: SplitStream<Ws>,
    mut opener: Option<Opener>,
) {
    let link = match session.upgrade() {
        Some(session) => session.host.link,
        None => return,
    };
    let interval = link.heartbeat_interval.max(Duration::from_millis(1));
    let mut heartbeat = Heartbeat::new(interval, link.heartbeat_misses, Instant::now());
    let mut deadline = Instant::now() + interval;
    let cause = loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = tokio::time::sleep_until(deadline.into()) => {
                let Some(session) = session.upgrade() else { return };
                match heartbeat.poll(Instant::now()) {
                    Beat::WaitUntil(at) => deadline = at,
                    Beat::Ping => {
                        let _ = session.out.send(Outgoing::control(Message::Ping(Bytes::new())));
                        deadline = Instant::now() + interval.min(heartbeat.limit());
                    }
                    Beat::Dead => break LossCause::HeartbeatLost,
                }
                continue;
            }
        };
        heartbeat.heard(Instant::now());
        let Some(session) = session.upgrade() else {
            return;
        };
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                let bytes = match opener.as_mut() {
                    None => bytes,
                    Some(opener) => match opener.open(bytes) {
                        Ok(opened) => opened,
                        Err(err) => break LossCause::ProtocolViolation(err.to_string()),
                    },
                };
                if let Err(cause) = session.receive(bytes).await {
                    break cause;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Text(_))) => {
                break LossCause::ProtocolViolation("the server sent a text message".into());
            }
            Some(Ok(Message::Close(_))) | None => break LossCause::ConnectionLost,
            Some(Err(err)) => {
                tracing::debug!(host = %session.host, "session read failed: {err}");
                break LossCause::ConnectionLost;
            }
        }
    };
    if let Some(session) = session.upgrade() {
        // A session already ended (its writer failed) has closed its protocol side, so a
        // message read after that is refused as "after close": that is not the server
        // breaking the protocol, and there is no one to tell.
        if let LossCause::ProtocolViolation(why) = &cause
            && !session.is_lost()
        {
            tracing::warn!(host = %session.host, "closing the session: {why}");
            let bye = lock(&session.state)
                .client
                .close(CloseReason::ProtocolViolation, why);
            if let Ok(bye) = bye {
                let _ = session.out.send(Outgoing::control(Message::Binary(bye)));
            }
            // Let the writer send it before the connection drops.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        session.end(cause);
    }
}

/// Writes queued messages, every message ready at once with one flush.
async fn run_writer(
    session: Weak<Session>,
    mut sink: SplitSink<Ws, Message>,
    mut queued: mpsc::UnboundedReceiver<Outgoing>,
    mut sealer: Option<Sealer>,
) {
    let mut batch = Vec::with_capacity(64);
    while queued.recv_many(&mut batch, 256).await > 0 {
        let mut failed = None;
        for out in batch.drain(..) {
            let Outgoing { message, release } = out;
            let message = match (message, sealer.as_mut()) {
                // In place: the outbox leaves room for the tag.
                (Message::Binary(bytes), Some(sealer)) => match sealer.seal(bytes) {
                    Ok(record) => Message::Binary(record),
                    Err(err) => {
                        failed = Some(tokio_tungstenite::tungstenite::Error::Io(
                            std::io::Error::other(err),
                        ));
                        break;
                    }
                },
                (message, _) => message,
            };
            let fed = sink.feed(message).await;
            drop(release);
            if let Err(err) = fed {
                failed = Some(err);
                break;
            }
        }
        if failed.is_none()
            && let Err(err) = sink.flush().await
        {
            failed = Some(err);
        }
        if let Some(err) = failed {
            batch.clear();
            if let Some(session) = session.upgrade() {
                tracing::debug!(host = %session.host, "session write failed: {err}");
                session.end(LossCause::ConnectionLost);
            }
            return;
        }
    }
}
