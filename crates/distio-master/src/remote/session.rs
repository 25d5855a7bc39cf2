//! One master's session with one host: the WebSocket, the tasks that read and write it,
//! and the channels of the slaves it carries.

use bytes::Bytes;
use distio_proto::remote::{
    Beat, Channel, ClientEvent, ClientSession, CloseReason, Exited, Heartbeat, Output,
    OutputStream, ReceiveCounter, ReplayBuffer, SessionCodec, SessionFrame, Spawn, SpawnFailed,
    Spawned, Status, TOKEN_LEN, Welcome,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};
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
    /// The instance of the server the session is with (from the welcome).
    instance: u64,
    /// What the writer sends, kept across links.
    queued: Queue,
    /// Sent counted frames the server has not acknowledged (when resuming is on).
    replay: Mutex<Option<ReplayBuffer>>,
    /// Told when the server acknowledges.
    acked: Notify,
    /// The reader and writer of the current link.
    link_tasks: Mutex<Vec<JoinHandle<()>>>,
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
    /// The session's resume token, once the server sent one.
    token: Option<[u8; TOKEN_LEN]>,
    /// How long the server keeps the session after its link drops (from the token).
    grace: Duration,
    /// Counted frames of the server's received (and acted on).
    received: ReceiveCounter,
    /// The connection now carrying the session (its reader and writer name it).
    link: u64,
    /// The link dropped and a new one is being made.
    reconnecting: bool,
}

/// Most bytes of sent frames a session keeps until the server acknowledges them.
pub(crate) const REPLAY_LIMIT: usize = 32 << 20;

type Queue = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Outgoing>>>;

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
                token: None,
                grace: Duration::ZERO,
                received: ReceiveCounter::default(),
                link: 0,
                reconnecting: false,
            }),
            status: Mutex::new((Status::from(welcome), 0)),
            out,
            tasks: Mutex::new(Vec::new()),
            instance: welcome.instance,
            queued: Arc::new(tokio::sync::Mutex::new(queued)),
            replay: Mutex::new(None),
            acked: Notify::new(),
            link_tasks: Mutex::new(Vec::new()),
            ended: watch::Sender::new(false),
        });
        if !session.host.link.resume_window.is_zero() {
            *lock(&session.replay) = Some(ReplayBuffer::new(REPLAY_LIMIT));
        }
        session.start_link(ws, keys, Vec::new(), 0);
        session
    }

    /// Starts the reader and writer of link number `link`; `preamble` is sent first.
    fn start_link(
        self: &Arc<Self>,
        ws: Ws,
        keys: Option<RecordKeys>,
        preamble: Vec<Bytes>,
        link: u64,
    ) {
        let (sink, stream) = ws.split();
        let weak = Arc::downgrade(self);
        let (sealer, opener) = keys.map(|k| (k.sealer, k.opener)).unzip();
        let reader = tokio::spawn(run_reader(weak.clone(), stream, opener, link));
        let writer = tokio::spawn(run_writer(
            weak,
            sink,
            Arc::clone(&self.queued),
            sealer,
            preamble,
            link,
        ));
        let mut tasks = lock(&self.link_tasks);
        for task in tasks.drain(..) {
            task.abort();
        }
        tasks.extend([reader, writer]);
    }

    /// True while the link to the host dropped and the session is resuming over a new
    /// one: its slaves' requests stay pending and new frames wait.
    #[allow(
        dead_code,
        reason = "for the cluster code, which picks hosts by link state"
    )]
    pub(crate) fn is_reconnecting(&self) -> bool {
        let state = lock(&self.state);
        state.reconnecting && state.loss.is_none()
    }

    /// Link number `link` dropped (`cause`): resume over a new one within the host's
    /// resume window, or end the session if it cannot be resumed.
    fn link_down(self: &Arc<Self>, link: u64, cause: LossCause) {
        {
            let mut state = lock(&self.state);
            if state.loss.is_some() || state.reconnecting || state.link != link {
                return;
            }
            let window = self.host.link.resume_window;
            if state.token.is_none() || window.is_zero() {
                drop(state);
                self.end(cause);
                return;
            }
            state.reconnecting = true;
        }
        let old_link: Vec<JoinHandle<()>> = lock(&self.link_tasks).drain(..).collect();
        for task in &old_link {
            task.abort();
        }
        tracing::info!(host = %self.host, "session link lost ({cause}); resuming within {:?}", self.host.link.resume_window);
        let task = tokio::spawn(reconnect(Arc::downgrade(self), old_link));
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task.abort_handle());
    }

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
        for task in lock(&self.link_tasks).drain(..) {
            task.abort();
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
            ClientEvent::ResumeToken(token) => {
                let mut state = lock(&self.state);
                state.token = Some(token.token);
                state.grace = Duration::from_millis(u64::from(token.grace_ms));
            }
            ClientEvent::Acked { received } => {
                let acked = lock(&self.replay).as_mut().map(|r| r.ack(received));
                match acked {
                    Some(Err(err)) => return Err(LossCause::ProtocolViolation(err.to_string())),
                    Some(Ok(())) => self.acked.notify_one(),
                    None => {}
                }
            }
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

/// How long the writer of a dropped session may take to close its WebSocket.
const GOODBYE_LIMIT: Duration = Duration::from_secs(2);

impl Drop for Session {
    fn drop(&mut self) {
        // The session is closed on purpose: a WebSocket close tells the server to end it
        // (and its slaves) now, rather than keep it for a resume that will not come. The
        // link's writer sends it, within GOODBYE_LIMIT, then stops; the reader stops now.
        let _ = self.out.send(Outgoing::control(Message::Close(None)));
        let mut link = lock(&self.link_tasks)
            .drain(..)
            .collect::<Vec<_>>()
            .into_iter();
        let (reader, writer) = (link.next(), link.next());
        if let Some(reader) = reader {
            reader.abort();
        }
        if let Some(writer) = writer {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let abort = writer.abort_handle();
                    runtime.spawn(async move {
                        if tokio::time::timeout(GOODBYE_LIMIT, writer).await.is_err() {
                            abort.abort();
                        }
                    });
                }
                Err(_) => writer.abort(),
            }
        }
        for task in link {
            task.abort();
        }
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

/// Reads the server's messages and watches the heartbeat; when the connection ends, the
/// link is down (resumed if it can be) or the session ends.
async fn run_reader(
    session: Weak<Session>,
    mut stream: SplitStream<Ws>,
    mut opener: Option<Opener>,
    link_no: u64,
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
                        session.ack_due(|received| received.tick());
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
                let counted = SessionFrame::is_counted(&bytes).then_some(bytes.len());
                if let Err(cause) = session.receive(bytes).await {
                    break cause;
                }
                // Counted once acted on: a reader aborted before this has it sent again.
                if let Some(len) = counted {
                    session.ack_due(|received| received.count(len));
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
        match cause {
            LossCause::ConnectionLost | LossCause::HeartbeatLost => {
                session.link_down(link_no, cause);
            }
            cause => {
                // A session already ended (its writer failed) has closed its protocol side,
                // so a message read after that is refused as "after close": that is not the
                // server breaking the protocol, and there is no one to tell.
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
    }
}

impl Session {
    /// Sends an ack if `due` says one is due now.
    fn ack_due(&self, due: impl FnOnce(&mut ReceiveCounter) -> Option<u64>) {
        let ack = {
            let mut state = lock(&self.state);
            due(&mut state.received).map(|received| state.client.ack(received))
        };
        if let Some(Ok(ack)) = ack {
            self.queue(ack);
        }
    }
}

/// Resumes the session over new connections, with backoff, until the host's resume
/// window passes; ends the session if it cannot.
async fn reconnect(session: Weak<Session>, old_link: Vec<JoinHandle<()>>) {
    // The old link's reader and writer are stopped first (they may be running on another
    // thread): what they counted as received or kept for replay is settled before the
    // resume says how much arrived and what to send again.
    for task in old_link {
        let _ = task.await;
    }
    let Some(strong) = session.upgrade() else {
        return;
    };
    let (host, codec, instance) = (strong.host.clone(), strong.codec, strong.instance);
    drop(strong);
    // No longer than the server keeps the session: past its grace, a redial is refused.
    let grace = session
        .upgrade()
        .map_or(Duration::ZERO, |s| lock(&s.state).grace);
    let window = host.link.resume_window.min(grace);
    let deadline = tokio::time::Instant::now() + window;
    // Each attempt may take at most the heartbeat's limit (at least a second), so a link
    // that swallows everything is given up and tried again.
    let attempt_limit = host.link.dead_after().max(Duration::from_secs(1));
    let mut backoff =
        crate::cluster::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut attempts = 0u32;
    loop {
        let Some((token, received)) = session
            .upgrade()
            .and_then(|s| {
                let state = lock(&s.state);
                state
                    .loss
                    .is_none()
                    .then(|| (state.token, state.received.received()))
            })
            .and_then(|(token, received)| token.map(|t| (t, received)))
        else {
            return;
        };
        attempts += 1;
        let limit =
            attempt_limit.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let attempt = tokio::time::timeout(
            limit,
            super::connect::resume(&host, codec, token, instance, received),
        )
        .await;
        let Some(strong) = session.upgrade() else {
            return;
        };
        match attempt {
            Ok(Ok((ws, server_received, keys))) => {
                let replay = lock(&strong.replay).as_mut().map(|r| {
                    r.replay_from(server_received)
                        .map(|frames| frames.cloned().collect::<Vec<_>>())
                });
                let frames = match replay {
                    Some(Ok(frames)) => frames,
                    Some(Err(err)) => {
                        strong.end(LossCause::ProtocolViolation(err.to_string()));
                        return;
                    }
                    None => Vec::new(),
                };
                let link = {
                    let mut state = lock(&strong.state);
                    if state.loss.is_some() {
                        return;
                    }
                    state.link += 1;
                    state.reconnecting = false;
                    // The server sends a fresh token over the new link.
                    state.client.new_link();
                    state.received.told();
                    state.link
                };
                tracing::info!(host = %host, attempts, replayed = frames.len(), "session resumed");
                strong.acked.notify_one();
                strong.start_link(ws, keys, frames, link);
                return;
            }
            Ok(Err(super::connect::ResumeFailure::Refused(why))) => {
                strong.end(LossCause::ResumeRefused(why));
                return;
            }
            Ok(Err(super::connect::ResumeFailure::Gone)) => {
                strong.end(LossCause::ServerGone);
                return;
            }
            Ok(Err(super::connect::ResumeFailure::Unreachable(err))) => {
                tracing::debug!(host = %host, attempts, "resume attempt failed: {err}");
            }
            Err(_) => tracing::debug!(host = %host, attempts, "resume attempt timed out"),
        }
        drop(strong);
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep_until(deadline.min(now + backoff.next_delay())).await;
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    if let Some(session) = session.upgrade() {
        session.end(LossCause::ResumeWindowPassed(window));
    }
}

/// Writes `preamble` (a resumed link's replay), then queued messages, every message ready
/// at once with one flush. Counted frames are kept for replay before they are written, so
/// a writer aborted at any point loses none; while the replay buffer is full, it takes
/// nothing more from the queue, for at most the heartbeat's limit (then the session ends).
async fn run_writer(
    session: Weak<Session>,
    mut sink: SplitSink<Ws, Message>,
    queued: Queue,
    mut sealer: Option<Sealer>,
    preamble: Vec<Bytes>,
    link_no: u64,
) {
    // Waits for the writer of the link before to be gone.
    let mut queued = queued.lock_owned().await;
    let mut batch: Vec<Outgoing> = preamble
        .into_iter()
        .map(|bytes| Outgoing::control(Message::Binary(bytes)))
        .collect();
    let mut replaying = !batch.is_empty();
    loop {
        if !replaying {
            let Some(strong) = session.upgrade() else {
                // The session was dropped: send its WebSocket close if it is queued, then
                // stop (the session's drop bounds how long this may take).
                while let Ok(out) = queued.try_recv() {
                    if matches!(out.message, Message::Close(_)) {
                        let _ = sink.send(out.message).await;
                        break;
                    }
                }
                return;
            };
            let full = || lock(&strong.replay).as_ref().is_some_and(|r| !r.has_room());
            if full() {
                let limit = strong.host.link.dead_after();
                let waited = tokio::time::timeout(limit, async {
                    while full() {
                        strong.acked.notified().await;
                    }
                })
                .await;
                if waited.is_err() {
                    strong.end(LossCause::ReplayOverflow);
                    return;
                }
            }
            drop(strong);
            if queued.recv_many(&mut batch, 256).await == 0 {
                return;
            }
            if let Some(strong) = session.upgrade()
                && let Some(replay) = lock(&strong.replay).as_mut()
            {
                for out in &batch {
                    if let Message::Binary(bytes) = &out.message
                        && SessionFrame::is_counted(bytes)
                    {
                        replay.push_unchecked(bytes.clone());
                    }
                }
            }
        }
        replaying = false;
        let mut failed = None;
        for out in batch.drain(..) {
            let Outgoing { message, release } = out;
            let message = match (message, sealer.as_mut()) {
                // In place: the outbox leaves room for the tag (a frame kept for replay is
                // copied instead).
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
                session.link_down(link_no, LossCause::ConnectionLost);
            }
            return;
        }
    }
}
