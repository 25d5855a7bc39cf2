//! One WebSocket session: drives the protocol's [`ServerSession`], starts and relays its
//! slaves, keeps the heartbeat, and ends everything it started when it ends.
//!
//! How a session ends decides how its slaves end:
//! - the master closes it, the connection drops, the heartbeat is lost, the master
//!   breaks the protocol, its client reads nothing for `client_stall_timeout`, or it
//!   has had no slave and sent no frame for `idle_session_timeout` (closed, reason
//!   done): each running slave gets SIGTERM, then SIGKILL to its group after the kill
//!   grace (their masters are gone, so no exit is reported); queued spawns are
//!   dropped and never start;
//! - the server stops: queued spawns are answered "server stopping", each running slave
//!   is ended the same way, with the shorter of the kill grace and the shutdown grace, and
//!   its exit reported (cause "server stopping"), then the session closes.
//!
//! In every case the session waits for its slaves (a bounded time), and aborting it
//! drops their processes, which SIGKILLs their groups.

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use distio_proto::Throttle;
use distio_proto::remote::{
    Beat, Channel, CloseReason, Closing, ExitCause, Heartbeat, ReceiveCounter, ReplayBuffer,
    Resume, ResumeToken, ServerEvent, ServerSession, SessionFrame, Spawn, SpawnFailure, Spawned,
    Welcome,
};
use futures_util::FutureExt as _;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::ServerState;
use super::lifetime::Command;
use super::load;
use super::outbox::{Out, Outbox};
use super::passphrase::{Gate, Refused};
use super::relay::SlaveLink;
use super::resume::{Handoff, TokenKey};
use super::slave::{self, Finished, SessionParts, Started};
use crate::admission::Admission;
use distio_proto::remote::passphrase::{Sealer, ServerHandshake};

static VIOLATIONS: Throttle = Throttle::new(Duration::from_secs(10));

/// Time on top of the grace for slaves to be reaped once they were SIGKILLed.
const REAP_MARGIN: Duration = Duration::from_secs(5);

/// How long the last messages (closing) have to go out.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Why a session's loop ended.
#[derive(Debug)]
enum End {
    /// The master sent closing.
    Closed,
    /// The connection ended or failed.
    Dropped,
    /// Nothing arrived within the heartbeat's limit.
    HeartbeatLost,
    /// The master broke the protocol (or sent no open in time).
    Violation(String),
    /// The server is stopping.
    ServerStopping,
    /// The client took no bytes for the stall timeout (it does not read).
    ClientStalled,
    /// No slaves and no frames for the idle timeout.
    Idle,
    /// The session was refused (the passphrase mode: a missing or wrong passphrase, a
    /// record that did not open; a resume refused); its closing, if any, is queued already.
    Refused(String),
    /// The connection's first frame was a resume: it is to carry on another session.
    Resume(Resume),
    /// A new connection resumed this session while this one was still attached: it
    /// replaces this one.
    Replaced(Box<Handoff>),
    /// The connection was handed to the session it resumed.
    HandedOver,
    /// The link dropped and no resume came within the grace.
    ResumeExpired,
    /// The master acknowledged too slowly: keeping more to replay would pass the limit.
    ReplayOverflow,
}

/// How the session's writer task ended.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// The outbox was dropped, or the connection failed.
    Ended,
    /// A write made no progress for the client stall timeout.
    Stalled,
    /// The connection was handed over (see [`Out::Detach`]).
    Detached,
    /// The master acknowledged nothing for the heartbeat's limit while the replay buffer
    /// was full.
    ReplayOverflow,
}

impl End {
    /// The `reason` of the session's end log line.
    fn label(&self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Dropped => "dropped",
            End::HeartbeatLost => "heartbeat_lost",
            End::Violation(_) => "protocol_violation",
            End::ServerStopping => "server_stopping",
            End::ClientStalled => "client_stalled",
            End::Idle => "idle",
            End::Refused(_) => "refused",
            End::Resume(_) => "resume",
            End::Replaced(_) => "replaced",
            End::HandedOver => "handed_over",
            End::ResumeExpired => "resume_expired",
            End::ReplayOverflow => "replay_overflow",
        }
    }
}

enum Chan {
    Starting(AbortHandle),
    Running(SlaveLink),
}

struct Session {
    state: ServerState,
    peer: SocketAddr,
    parts: SessionParts,
    channels: HashMap<Channel, Chan>,
    tasks: JoinSet<(Channel, Finished)>,
    ids: HashMap<tokio::task::Id, Channel>,
    started: mpsc::Receiver<Started>,
    /// The writer task has returned (its handle must not be polled again).
    writer_done: bool,
    entry: crate::admin::SessionEntry,
    user: Option<String>,
    /// What the writer sends, kept across connections.
    outgoing: Outgoing,
    /// What was sent and not yet acknowledged (once a resume token was issued).
    replay: Replay,
    /// Told when the master acknowledges.
    acked: Arc<Notify>,
    received: ReceiveCounter,
    /// Connections resuming this session, once it issued a token (and the token's key).
    handoffs: Option<(mpsc::Receiver<Handoff>, TokenKey)>,
}

type Outgoing = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Out>>>;
type Replay = Arc<Mutex<Option<ReplayBuffer>>>;

/// Serves one session until it ends, and ends everything it started.
pub(crate) async fn run(
    socket: WebSocket,
    peer: SocketAddr,
    user: Option<String>,
    ticket: Option<Admission>,
    state: ServerState,
) {
    let entry = state.admin().session_opened(peer, user.clone());
    let settings = state.settings();
    let (sink, stream) = socket.split();
    let (outbox, outgoing) = Outbox::new(settings.outbox_limit);
    let outgoing = Arc::new(tokio::sync::Mutex::new(outgoing));
    let replay: Replay = Arc::default();
    let acked = Arc::new(Notify::new());
    let protocol = ServerSession::new(state.codec(), settings.max_channels_per_session);
    // Each slave hands over at most one `Started`; the channel limit bounds them.
    let (started_tx, started) = mpsc::channel(settings.max_channels_per_session.max(1));
    let mut session = Session {
        state: state.clone(),
        peer,
        parts: SessionParts {
            state: state.clone(),
            session: Arc::new(Mutex::new(protocol)),
            outbox,
            started: started_tx,
            session_id: entry.id(),
        },
        channels: HashMap::new(),
        tasks: JoinSet::new(),
        ids: HashMap::new(),
        started,
        writer_done: false,
        entry,
        user,
        outgoing,
        replay,
        acked,
        received: ReceiveCounter::default(),
        handoffs: None,
    };
    let mut writer = session.writer(sink, None, Vec::new());
    tracing::info!(session = session.entry.id(), %peer, user = session.entry.user(), "session started");
    let mut gate = Gate::new(&state, ticket);
    let mut stream = stream;
    let mut end = session
        .serve(&mut stream, &mut writer, &mut gate, false)
        .await;
    if let End::Resume(resume) = end {
        let end = session.hand_over(resume, stream, gate, &mut writer).await;
        return session.finish(end, &mut writer).await;
    }
    loop {
        end = match end {
            End::Dropped | End::HeartbeatLost | End::ClientStalled | End::Replaced(_)
                if session.handoffs.is_some() =>
            {
                writer.abort();
                // Gone before anything is replayed: a writer still running on another
                // thread could otherwise keep one more frame for replay after the snapshot
                // (and send it on the dead link only).
                if !session.writer_done {
                    let _ = (&mut writer).await;
                    session.writer_done = true;
                }
                let parked = match end {
                    End::Replaced(handoff) => Ok(*handoff),
                    end => session.park(end).await,
                };
                match parked {
                    Ok(Handoff {
                        stream: new_stream,
                        sink,
                        gate: new_gate,
                        sealer,
                        received,
                        peer,
                    }) => {
                        (stream, gate) = (new_stream, new_gate);
                        session.peer = peer;
                        match session.attach(sink, sealer, received, &mut writer) {
                            Ok(()) => {
                                session
                                    .serve(&mut stream, &mut writer, &mut gate, true)
                                    .await
                            }
                            Err(end) => end,
                        }
                    }
                    Err(end) => end,
                }
            }
            end => break session.finish(end, &mut writer).await,
        };
    }
}

impl Session {
    fn replay_lock(&self) -> MutexGuard<'_, Option<ReplayBuffer>> {
        self.replay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a writer for a connection's sending half: `preamble` first (a resumed
    /// session's answer and replay), then the outbox.
    fn writer(
        &self,
        sink: SplitSink<WebSocket, Message>,
        sealer: Option<Box<Sealer>>,
        preamble: Vec<Bytes>,
    ) -> tokio::task::JoinHandle<Written> {
        let settings = self.state.settings();
        tokio::spawn(write(Writer {
            sink,
            outgoing: Arc::clone(&self.outgoing),
            limit: settings.client_stall_timeout,
            sealer,
            replay: Arc::clone(&self.replay),
            acked: Arc::clone(&self.acked),
            ack_wait: settings.heartbeat_interval * settings.heartbeat_misses,
            preamble,
            overflow: self.state.codec().encode(&SessionFrame::Closing(Closing {
                reason: CloseReason::ProtocolViolation,
                message: format!(
                    "the master acknowledged too slowly: more than {} bytes were sent and not \
                     acknowledged",
                    settings.resume_buffer
                ),
            })),
        }))
    }

    /// After the welcome: issues the session's resume token, unless resuming is off.
    fn issue_token(&mut self) {
        let grace = self.state.settings().resume_grace;
        if grace.is_zero() {
            return;
        }
        let (tx, rx) = mpsc::channel(1);
        let Some((token, key)) = self.state.resumes().issue(self.user.clone(), tx) else {
            tracing::warn!(
                session = self.entry.id(),
                "no randomness for a resume token; the session cannot be resumed"
            );
            return;
        };
        *self.replay_lock() = Some(ReplayBuffer::new(self.state.settings().resume_buffer));
        self.handoffs = Some((rx, key));
        let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
        let frame = self
            .protocol()
            .resume_token(&ResumeToken { token, grace_ms });
        self.send_control(frame);
    }

    /// The link dropped (`why`): keeps the slaves running and their frames queued until a
    /// new connection resumes the session (its hand-off comes back) or the grace passes.
    async fn park(&mut self, why: End) -> Result<Handoff, End> {
        let grace = self.state.settings().resume_grace;
        tracing::info!(
            session = self.entry.id(),
            reason = why.label(),
            slaves = self.channels.len(),
            ?grace,
            "session link lost; waiting for the master to resume it"
        );
        let deadline = Instant::now() + grace;
        let mut stop = self.state.stop_signal();
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return Err(End::ServerStopping),
                () = tokio::time::sleep_until(deadline) => return Err(End::ResumeExpired),
                handoff = next_handoff(&mut self.handoffs) => match handoff {
                    Some(handoff) => return Ok(handoff),
                    None => return Err(End::ResumeExpired),
                },
                Some(started) = self.started.recv() => self.on_started(started),
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => self.on_task_done(done),
            }
        }
    }

    /// Carries the session on over a new connection: answers the resume, then sends
    /// again what the master has not received, then the outbox.
    fn attach(
        &mut self,
        sink: SplitSink<WebSocket, Message>,
        sealer: Option<Box<Sealer>>,
        received: u64,
        writer: &mut tokio::task::JoinHandle<Written>,
    ) -> Result<(), End> {
        let replay = self.replay_lock().as_mut().map(|r| {
            r.replay_from(received)
                .map(|frames| frames.cloned().collect::<Vec<_>>())
        });
        let frames = match replay {
            Some(Ok(frames)) => frames,
            Some(Err(err)) => {
                *writer = self.writer(sink, sealer, Vec::new());
                self.writer_done = false;
                return Err(End::Violation(err.to_string()));
            }
            None => Vec::new(),
        };
        let mut preamble = Vec::with_capacity(frames.len() + 1);
        match self
            .protocol()
            .resumed(self.state.instance(), self.received.received())
        {
            Ok(resumed) => preamble.push(resumed),
            Err(err) => return Err(End::Violation(err.to_string())),
        }
        // A fresh token for the next resume: the one just used is spent.
        if let Some((_, key)) = self.handoffs.as_mut()
            && let Some((token, new_key)) = self.state.resumes().rotate(key)
        {
            *key = new_key;
            let grace = self.state.settings().resume_grace;
            let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
            match self
                .protocol()
                .resume_token(&ResumeToken { token, grace_ms })
            {
                Ok(frame) => preamble.push(frame),
                Err(err) => return Err(End::Violation(err.to_string())),
            }
        }
        self.received.told();
        tracing::info!(session = self.entry.id(), peer = %self.peer, replayed = frames.len(), "session resumed");
        preamble.extend(frames);
        *writer = self.writer(sink, sealer, preamble);
        self.writer_done = false;
        Ok(())
    }

    /// This connection asked to resume another session: hands it over, or refuses it.
    async fn hand_over(
        &mut self,
        resume: Resume,
        stream: SplitStream<WebSocket>,
        gate: Gate,
        writer: &mut tokio::task::JoinHandle<Written>,
    ) -> End {
        let refuse = |this: &Self, label: &str, message: &str| {
            tracing::info!(peer = %this.peer, user = this.entry.user(), reason = label, "a resume was refused");
            let closing = this.state.codec().encode(&SessionFrame::Closing(Closing {
                reason: CloseReason::ResumeRefused,
                message: message.into(),
            }));
            this.send_control(closing);
            End::Refused(format!("resume refused: {label}"))
        };
        if resume.instance != self.state.instance() {
            return refuse(
                self,
                "other_instance",
                "this server is another instance than the session's (it restarted): the \
                 session and its slaves are gone; open a new session",
            );
        }
        let handoffs = match self
            .state
            .resumes()
            .claim(&resume.token, self.user.as_deref())
        {
            Ok(handoffs) => handoffs,
            Err(refusal) => return refuse(self, refusal.label(), refusal.message()),
        };
        // The writer hands the sending half (and sealer) back once it has sent what came
        // before.
        let detached = self.parts.outbox.detach();
        let Ok(Ok((sink, sealer))) = tokio::time::timeout(FLUSH_LIMIT, detached).await else {
            return End::Dropped;
        };
        self.writer_done = true;
        let _ = writer.await;
        let handoff = Handoff {
            stream,
            sink,
            gate,
            sealer,
            received: resume.received,
            peer: self.peer,
        };
        match tokio::time::timeout(FLUSH_LIMIT, handoffs.send(handoff)).await {
            Ok(Ok(())) => End::HandedOver,
            // The session ended meanwhile: the connection drops.
            _ => End::Dropped,
        }
    }

    fn protocol(&self) -> MutexGuard<'_, ServerSession> {
        self.parts
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn serve(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        writer: &mut tokio::task::JoinHandle<Written>,
        gate: &mut Gate,
        resumed: bool,
    ) -> End {
        let settings = self.state.settings().clone();
        let open_deadline = Instant::now() + settings.open_timeout;
        // A resumed session is open already: its heartbeat starts at once.
        let mut heartbeat: Option<Heartbeat> = resumed.then(|| {
            Heartbeat::new(
                settings.heartbeat_interval,
                settings.heartbeat_misses,
                std::time::Instant::now(),
            )
        });
        let mut stop = self.state.stop_signal();
        // One timer for the whole session, moved as the deadline moves: the open deadline,
        // then the heartbeat's. Whether anything arrived is noted per message and handed
        // to the heartbeat when the timer fires, so a busy session reads no clock per
        // message (the peer is counted as heard at the tick, less than an interval late).
        let first = if resumed {
            Instant::now() + settings.heartbeat_interval
        } else {
            open_deadline
        };
        let timer = tokio::time::sleep_until(first);
        tokio::pin!(timer);
        let mut heard = false;
        // The idle check ticks four times per idle timeout: a session is closed after
        // four quiet ticks in a row (no frame, no slave), so between the timeout and a
        // quarter more after its last frame or slave.
        let idle_tick = settings.idle_session_timeout.map(|idle| idle / 4);
        let idle_timer = tokio::time::sleep(idle_tick.unwrap_or(Duration::MAX / 4));
        tokio::pin!(idle_timer);
        let (mut framed, mut quiet_ticks) = (false, 0u32);
        let codec = self.state.codec();
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return End::ServerStopping,
                Some(handoff) = next_handoff(&mut self.handoffs) => {
                    tracing::info!(session = self.entry.id(), "a new connection resumed the session; it replaces this one");
                    return End::Replaced(Box::new(handoff));
                }
                message = stream.next() => {
                    let message = match message {
                        None | Some(Err(_)) => return End::Dropped,
                        Some(Ok(message)) => message,
                    };
                    heard = true;
                    let binary = match message {
                        Message::Binary(binary) => {
                            framed = true;
                            binary
                        }
                        Message::Ping(_) | Message::Pong(_) => continue,
                        // A WebSocket close is sent on purpose (a link that drops sends
                        // none): the session ends now, it is not kept for a resume.
                        Message::Close(_) => return End::Closed,
                        Message::Text(_) => {
                            return End::Violation("a text message (sessions carry binary messages only)".into());
                        }
                    };
                    let binary = match gate.receive(binary, &self.parts.outbox, codec, self.peer) {
                        Ok(Some(binary)) => binary,
                        Ok(None) => continue,
                        Err(Refused::Handshake(why)) => return End::Refused(why),
                        Err(Refused::Record(why)) => return End::Violation(why),
                    };
                    let opening = heartbeat.is_none();
                    let counted = SessionFrame::is_counted(&binary).then_some(binary.len());
                    if let Err(end) = self.on_message(binary, &mut heartbeat).await {
                        return end;
                    }
                    // Counted once acted on.
                    if let Some(len) = counted
                        && let Some(received) = self.received.count(len)
                    {
                        let ack = self.protocol().ack(received);
                        self.send_control(ack);
                    }
                    if opening && let Some(beat) = heartbeat.as_mut() {
                        heard = false;
                        match self.beat(beat, std::time::Instant::now()) {
                            Some(at) => timer.as_mut().reset(at),
                            None => return End::HeartbeatLost,
                        }
                    }
                }
                () = &mut timer => {
                    let Some(beat) = heartbeat.as_mut() else {
                        return End::Violation(format!(
                            "no open frame within {:?}", settings.open_timeout
                        ));
                    };
                    let now = std::time::Instant::now();
                    if std::mem::take(&mut heard) {
                        beat.heard(now);
                    }
                    if let Some(received) = self.received.tick() {
                        let ack = self.protocol().ack(received);
                        self.send_control(ack);
                    }
                    match self.beat(beat, now) {
                        Some(at) => timer.as_mut().reset(at),
                        None => return End::HeartbeatLost,
                    }
                }
                () = &mut idle_timer, if idle_tick.is_some() => {
                    let busy = !self.channels.is_empty() || !self.tasks.is_empty();
                    quiet_ticks = if std::mem::take(&mut framed) || busy { 0 } else { quiet_ticks + 1 };
                    if quiet_ticks >= 4 {
                        return End::Idle;
                    }
                    let tick = idle_tick.unwrap_or(Duration::MAX / 4);
                    idle_timer.as_mut().reset(Instant::now() + tick);
                }
                Some(started) = self.started.recv() => self.on_started(started),
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => self.on_task_done(done),
                written = &mut *writer, if !self.writer_done => {
                    self.writer_done = true;
                    return match written {
                        Ok(Written::Stalled) => End::ClientStalled,
                        Ok(Written::ReplayOverflow) => End::ReplayOverflow,
                        _ => End::Dropped,
                    };
                }
            }
        }
    }

    /// Sends the pings due at `now`; the instant to look again, or `None` if the master
    /// has been silent too long.
    fn beat(&self, beat: &mut Heartbeat, now: std::time::Instant) -> Option<Instant> {
        loop {
            match beat.poll(now) {
                Beat::Dead => return None,
                Beat::Ping => {
                    self.parts.outbox.ping();
                    self.send_status();
                }
                Beat::WaitUntil(at) => return Some(Instant::from_std(at)),
            }
        }
    }

    async fn on_message(
        &mut self,
        message: Bytes,
        heartbeat: &mut Option<Heartbeat>,
    ) -> Result<(), End> {
        let event = self.protocol().receive(&message);
        let event = event.map_err(|err| {
            if let distio_proto::ProtoError::PassphraseNotConfigured = err {
                // A master with a passphrase: say clearly that this server has none.
                tracing::info!(peer = %self.peer, "a master offered a passphrase; this server has none");
                let codec = self.state.codec();
                self.parts
                    .outbox
                    .control(ServerHandshake::refusal(codec, &err));
                return End::Refused(err.to_string());
            }
            End::Violation(err.to_string())
        })?;
        match event {
            ServerEvent::Opened(open) => {
                let settings = self.state.settings();
                let status = load::status(&self.state);
                let mut welcome = Welcome::new(
                    settings.server_name.clone(),
                    self.state.instance(),
                    status.capacity,
                );
                welcome.running = status.running;
                welcome.queued = status.queued;
                welcome.cpus = status.cpus;
                let reply = self.protocol().welcome(&welcome);
                self.send_control(reply);
                // The load, which the welcome does not carry; then once per heartbeat.
                self.send_status();
                tracing::debug!(peer = %self.peer, client = %open.client, "session opened");
                *heartbeat = Some(Heartbeat::new(
                    settings.heartbeat_interval,
                    settings.heartbeat_misses,
                    std::time::Instant::now(),
                ));
                self.issue_token();
            }
            ServerEvent::Spawn(spawn) => self.spawn(spawn),
            ServerEvent::Refused { reply, .. } => self.parts.outbox.control(reply),
            ServerEvent::Routed { channel, body } => {
                self.state.admin().metrics().frame_to_slave(body.len());
                if let Some(Chan::Running(link)) = self.channels.get(&channel) {
                    // Waits while the slave's inbox is full (the slave reads slowly), up to
                    // the heartbeat's limit; then the slave is killed.
                    let settings = self.state.settings();
                    let limit = settings.heartbeat_interval * settings.heartbeat_misses;
                    let sent = match link.try_send(body) {
                        Ok(_) => Ok(true),
                        Err(body) => tokio::time::timeout(limit, link.send(body)).await,
                    };
                    match sent {
                        Ok(_) => {}
                        Err(_) => {
                            tracing::warn!(
                                channel,
                                "a slave read nothing for {limit:?}; it is killed"
                            );
                            link.command(Command::End {
                                cause: ExitCause::Exited,
                                grace: Duration::ZERO,
                            });
                        }
                    }
                }
            }
            ServerEvent::Kill { channel, signal } => {
                if let Some(Chan::Running(link)) = self.channels.get(&channel) {
                    link.command(Command::Kill(signal));
                }
            }
            ServerEvent::Cancel { channel } => {
                if let Some(Chan::Starting(task)) = self.channels.remove(&channel) {
                    task.abort();
                }
                let reply = self.protocol().spawn_failed(
                    channel,
                    SpawnFailure::Cancelled,
                    "the master killed the slave before it started".into(),
                );
                self.send_control(reply);
            }
            ServerEvent::Stale { .. } => {}
            ServerEvent::Acked { received } => {
                let acked = self.replay_lock().as_mut().map(|r| r.ack(received));
                match acked {
                    Some(Ok(())) => self.acked.notify_one(),
                    Some(Err(err)) => return Err(End::Violation(err.to_string())),
                    // No token was issued: nothing kept to drop.
                    None => {}
                }
            }
            ServerEvent::Resume(resume) => return Err(End::Resume(resume)),
            ServerEvent::Closing(closing) => {
                tracing::info!(peer = %self.peer, reason = ?closing.reason, "the master closed the session");
                return Err(End::Closed);
            }
            _ => {}
        }
        Ok(())
    }

    fn spawn(&mut self, spawn: Spawn) {
        let channel = spawn.channel;
        if self.state.stopping() {
            let reply = self.protocol().spawn_failed(
                channel,
                SpawnFailure::ServerStopping,
                "the server is stopping".into(),
            );
            self.send_control(reply);
            return;
        }
        let parts = self.parts.clone();
        let task = self
            .tasks
            .spawn(async move { (channel, slave::run(spawn, parts).await) });
        self.ids.insert(task.id(), channel);
        self.channels.insert(channel, Chan::Starting(task));
    }

    fn on_started(&mut self, started: Started) {
        let channel = started.channel;
        if !matches!(self.channels.get(&channel), Some(Chan::Starting(_))) {
            // Cancelled meanwhile: dropping `go` ends it.
            return;
        }
        let reply = self.protocol().spawned(Spawned {
            channel,
            pid: started.pid,
            server_id: started.server_id,
        });
        let ok = reply.is_ok();
        self.send_control(reply);
        if ok {
            self.channels.insert(channel, Chan::Running(started.link));
            let _ = started.go.send(());
        }
    }

    fn on_task_done(
        &mut self,
        done: Result<(tokio::task::Id, (Channel, Finished)), tokio::task::JoinError>,
    ) {
        let (channel, finished) = match done {
            Ok((id, result)) => {
                self.ids.remove(&id);
                result
            }
            Err(err) => {
                let Some(channel) = self.ids.remove(&err.id()) else {
                    return;
                };
                if err.is_cancelled() {
                    // Cancelled: answered already.
                    return;
                }
                tracing::error!(channel, "a slave's task failed: {err}");
                let finished = Finished::Failed(
                    SpawnFailure::StartFailed,
                    "the server failed while handling the slave".into(),
                );
                (channel, finished)
            }
        };
        let Some(chan) = self.channels.remove(&channel) else {
            return;
        };
        let reply = match (chan, finished) {
            (Chan::Starting(_), Finished::Failed(kind, message)) => {
                self.protocol().spawn_failed(channel, kind, message)
            }
            (Chan::Running(_), Finished::Exited(exited)) => self.protocol().exited(exited),
            (Chan::Running(_), _) => self.protocol().exited(distio_proto::remote::Exited {
                channel,
                code: None,
                signal: None,
                cause: ExitCause::Exited,
            }),
            (Chan::Starting(_), _) => self.protocol().spawn_failed(
                channel,
                SpawnFailure::StartFailed,
                "the slave did not start".into(),
            ),
        };
        self.send_control(reply);
    }

    /// Queues a session frame; an error (the session no longer allows it) is only logged.
    /// Tells the master how busy the server is (see [`load::status`]).
    fn send_status(&self) {
        let status = load::status(&self.state);
        let message = self.protocol().status(&status);
        self.send_control(message);
    }

    fn send_control(&self, reply: Result<Bytes, distio_proto::ProtoError>) {
        match reply {
            Ok(message) => self.parts.outbox.control(message),
            Err(err) => tracing::debug!(peer = %self.peer, "a reply was not sent: {err}"),
        }
    }

    /// Ends every slave of the session, then the session.
    async fn finish(mut self, end: End, writer: &mut tokio::task::JoinHandle<Written>) {
        let settings = self.state.settings().clone();
        if let Some((_, key)) = self.handoffs.take() {
            // The token resumes nothing from now on.
            self.state.resumes().remove(&key);
        }
        let stopping = matches!(end, End::ServerStopping);
        let close = match &end {
            End::Closed | End::Dropped | End::HandedOver | End::Resume(_) | End::Replaced(_) => {
                None
            }
            End::ResumeExpired => {
                tracing::info!(peer = %self.peer, slaves = self.channels.len(), "no resume came within the grace; the session's slaves are ended");
                None
            }
            End::ReplayOverflow => {
                // The writer sent the closing: nothing can follow the frames it holds.
                tracing::warn!(
                    peer = %self.peer,
                    slaves = self.channels.len(),
                    limit = settings.resume_buffer,
                    "a master acknowledged too slowly for the replay buffer; its session ends"
                );
                None
            }
            End::Refused(why) => {
                tracing::debug!(peer = %self.peer, "session refused: {why}");
                None
            }
            End::HeartbeatLost => Some((
                CloseReason::HeartbeatLost,
                format!(
                    "nothing arrived from the master for {:?}",
                    settings.heartbeat_interval * settings.heartbeat_misses
                ),
            )),
            End::Violation(what) => {
                if let Some(suppressed) = VIOLATIONS.allow() {
                    tracing::warn!(peer = %self.peer, suppressed, "a master broke the protocol: {what}");
                }
                Some((
                    CloseReason::ProtocolViolation,
                    format!("the server ended the session: {what}"),
                ))
            }
            End::ServerStopping => None,
            End::ClientStalled => {
                tracing::warn!(
                    peer = %self.peer,
                    slaves = self.channels.len(),
                    "a client read nothing for {:?}; its session ends and its slaves are killed",
                    settings.client_stall_timeout
                );
                None
            }
            End::Idle => Some((
                CloseReason::Done,
                format!(
                    "the session was idle (no slaves, no frames) for {:?}",
                    settings.idle_session_timeout.unwrap_or_default()
                ),
            )),
        };
        tracing::debug!(peer = %self.peer, end = ?end, slaves = self.channels.len(), "session ending");
        // Unless the server stops (then exits are reported first), the session closes now:
        // its slaves' frames and output stop here.
        if !stopping {
            let reason = close.as_ref().map_or(CloseReason::Done, |c| c.0);
            let message = close.as_ref().map_or("", |c| c.1.as_str());
            let bytes = self.protocol().close(reason, message);
            if close.is_some() {
                self.send_control(bytes);
            }
        }
        let (cause, grace) = if stopping {
            (
                ExitCause::ServerStopping,
                settings.kill_grace.min(settings.shutdown_grace),
            )
        } else {
            (ExitCause::SessionEnded, settings.kill_grace)
        };
        for (&channel, chan) in &self.channels {
            match chan {
                Chan::Starting(task) => {
                    task.abort();
                    if stopping {
                        let reply = self.protocol().spawn_failed(
                            channel,
                            SpawnFailure::ServerStopping,
                            "the server is stopping".into(),
                        );
                        self.send_control(reply);
                    }
                }
                Chan::Running(link) => link.command(Command::End { cause, grace }),
            }
        }
        self.channels
            .retain(|_, chan| matches!(chan, Chan::Running(_)));
        // Slaves starting now are not wanted.
        self.started.close();
        while let Ok(started) = self.started.try_recv() {
            drop(started);
        }
        let deadline = Instant::now() + grace + REAP_MARGIN;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(done)) => self.on_task_done(done),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(left = self.tasks.len(), "slaves still ending; killing them");
                    // Dropping their processes SIGKILLs their groups.
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        if stopping {
            let bytes = self
                .protocol()
                .close(CloseReason::ServerStopping, "the server is stopping");
            self.send_control(bytes);
        }
        // The writer sends what is queued, then the close; it is aborted if the master
        // does not take it in time.
        self.parts.outbox.close();
        let Session {
            parts,
            writer_done,
            entry,
            ..
        } = self;
        drop(parts);
        if !writer_done
            && tokio::time::timeout(FLUSH_LIMIT, &mut *writer)
                .await
                .is_err()
        {
            writer.abort();
        }
        tracing::info!(session = entry.id(), peer = %entry.peer(), user = entry.user(), reason = end.label(), duration = ?entry.duration(), "session ended");
    }
}

/// What a connection's writer works with.
struct Writer {
    sink: SplitSink<WebSocket, Message>,
    outgoing: Outgoing,
    /// The client stall timeout.
    limit: Duration,
    sealer: Option<Box<Sealer>>,
    replay: Replay,
    acked: Arc<Notify>,
    /// How long a full replay buffer waits for an acknowledgement.
    ack_wait: Duration,
    /// Sent first, not kept for replay (they are already, or are not counted).
    preamble: Vec<Bytes>,
    /// The closing sent when the master acknowledges too slowly.
    overflow: Result<Bytes, distio_proto::ProtoError>,
}

/// Sends the outbox's messages and pings to the WebSocket until the outbox is dropped,
/// then closes it. Gives up ([`Written::Stalled`]) on a write that makes no progress for
/// `limit`: the client does not read. Every counted frame is kept for replay before it is
/// written, so a writer aborted at any point loses nothing; while the replay buffer is
/// full the writer takes nothing more from the outbox, for at most `ack_wait`.
async fn write(w: Writer) -> Written {
    let Writer {
        mut sink,
        outgoing,
        limit,
        mut sealer,
        replay,
        acked,
        ack_wait,
        preamble,
        overflow,
    } = w;
    // Waits for a writer of an earlier connection to be gone (aborted).
    let mut outgoing = outgoing.lock_owned().await;
    let full = || {
        replay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .is_some_and(|r| !r.has_room())
    };
    let mut preamble = preamble.into_iter();
    loop {
        let out = match preamble.next() {
            Some(bytes) => Out::Message(bytes, None),
            None => {
                if full() {
                    // What was written must reach the master before it can acknowledge
                    // it: the sink may hold the last frames unflushed.
                    match tokio::time::timeout(limit, sink.flush()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Written::Ended,
                        Err(_) => return Written::Stalled,
                    }
                    let waited = tokio::time::timeout(ack_wait, async {
                        while full() {
                            acked.notified().await;
                        }
                    })
                    .await;
                    if waited.is_err() {
                        // The session ends: its closing goes after the frames sent.
                        let closing = match (overflow, sealer.as_mut()) {
                            (Ok(closing), Some(sealer)) => sealer.seal(closing).ok(),
                            (Ok(closing), None) => Some(closing),
                            (Err(_), _) => None,
                        };
                        if let Some(closing) = closing {
                            let _ =
                                tokio::time::timeout(limit, sink.send(Message::Binary(closing)))
                                    .await;
                        }
                        let _ = tokio::time::timeout(limit, sink.send(Message::Close(None))).await;
                        return Written::ReplayOverflow;
                    }
                }
                let Some(out) = outgoing.recv().await else {
                    break;
                };
                if let Out::Message(bytes, _) = &out
                    && SessionFrame::is_counted(bytes)
                    && let Some(r) = replay
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .as_mut()
                {
                    // Room was checked above; a frame may take the buffer past its limit
                    // by its own length at most.
                    r.push_unchecked(bytes.clone());
                }
                out
            }
        };
        let out = match out {
            Out::Seal(new) => {
                sealer = Some(new);
                // What came before (the confirmation) must not wait in the sink.
                if outgoing.is_empty()
                    && !matches!(tokio::time::timeout(limit, sink.flush()).await, Ok(Ok(())))
                {
                    return Written::Ended;
                }
                continue;
            }
            Out::Detach(to) => {
                let _ = tokio::time::timeout(limit, sink.flush()).await;
                let _ = to.send((sink, sealer));
                return Written::Detached;
            }
            Out::Message(bytes, room) => match sealer.as_mut() {
                // In place: the relay leaves room for the tag (a frame kept for replay is
                // copied instead).
                Some(sealer) => match sealer.seal(bytes) {
                    Ok(record) => Out::Message(record, room),
                    Err(err) => {
                        tracing::warn!("cannot seal a session message: {err}");
                        return Written::Ended;
                    }
                },
                None => Out::Message(bytes, room),
            },
            Out::Ping => Out::Ping,
        };
        // Usually the sink has room at once; only a write that must wait gets a deadline.
        let ready =
            match futures_util::future::poll_fn(|cx| sink.poll_ready_unpin(cx)).now_or_never() {
                Some(ready) => Ok(ready),
                None => {
                    tokio::time::timeout(
                        limit,
                        futures_util::future::poll_fn(|cx| sink.poll_ready_unpin(cx)),
                    )
                    .await
                }
            };
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Written::Ended,
            Err(_) => return Written::Stalled,
        }
        let sent = match out {
            // The room is freed once the message is handed to the socket.
            Out::Message(bytes, _room) => sink.start_send_unpin(Message::Binary(bytes)),
            Out::Ping => sink.start_send_unpin(Message::Ping(Bytes::new())),
            Out::Seal(_) | Out::Detach(_) => Ok(()),
        };
        if sent.is_err() {
            return Written::Ended;
        }
        if outgoing.is_empty() && preamble.len() == 0 {
            match tokio::time::timeout(limit, sink.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Written::Ended,
                Err(_) => return Written::Stalled,
            }
        }
    }
    let _ = tokio::time::timeout(limit, sink.send(Message::Close(None))).await;
    Written::Ended
}

/// The next connection resuming the session, if it can be resumed (else never).
async fn next_handoff(
    handoffs: &mut Option<(mpsc::Receiver<Handoff>, TokenKey)>,
) -> Option<Handoff> {
    match handoffs {
        Some((rx, _)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Returns once the server is stopping.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|&stop| stop).await;
}
