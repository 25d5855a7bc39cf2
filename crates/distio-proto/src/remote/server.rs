//! The server's side of a session.

use bytes::Bytes;

use super::channels::{Channels, Lookup, Stage};
use super::frames::{
    Channel, CloseReason, Closing, Exited, Open, Output, Spawn, SpawnFailed, SpawnFailure, Spawned,
    Status, Welcome,
};
use super::message::{ROUTED_HEADER_LEN, SessionCodec, SessionFrame, routed_header};
use super::resume::{Ack, Resume, ResumeToken, Resumed};
use super::violation::SessionViolation;
use crate::ProtoError;

/// What a message from the master means to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The master opened the session: answer with [`ServerSession::welcome`].
    Opened(Open),
    /// The master asks for a slave on a new channel, now starting: answer with
    /// [`ServerSession::spawned`] or [`ServerSession::spawn_failed`].
    Spawn(Spawn),
    /// The master asked for a slave beyond the session's channel limit: send `reply` (a
    /// spawn-failed frame); the channel is already finished.
    Refused {
        /// The channel asked for.
        channel: Channel,
        /// The message to send back.
        reply: Bytes,
    },
    /// A frame for the running slave on `channel`: relay `body` to it.
    Routed {
        /// The slave's channel.
        channel: Channel,
        /// The slave frame's body, to relay as it is.
        body: Bytes,
    },
    /// Send `signal` to the running slave on `channel`.
    Kill {
        /// The slave's channel.
        channel: Channel,
        /// The signal number.
        signal: i32,
    },
    /// The master killed a slave whose spawn has not been answered: do not start it, and
    /// answer with [`ServerSession::spawn_failed`] ([`SpawnFailure::Cancelled`]).
    Cancel {
        /// The slave's channel.
        channel: Channel,
    },
    /// A frame for a channel that has already finished (the master had not heard yet):
    /// nothing to do.
    Stale {
        /// The channel.
        channel: Channel,
    },
    /// The master is ending the session.
    Closing(Closing),
    /// The master asks to carry on the session of `Resume::token` over this connection,
    /// instead of opening one: this state machine is done (closed); the session resumed
    /// answers with [`ServerSession::resumed`], or the connection is refused with a
    /// closing ([`CloseReason::ResumeRefused`]).
    Resume(Resume),
    /// The master has received `received` of the server's counted frames.
    Acked {
        /// How many.
        received: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingOpen,
    Opened,
    Open,
    Closed,
}

/// The server's side of a remote session, without I/O: it turns the master's messages into
/// [`ServerEvent`]s and what the server has to say into messages, checking every rule of
/// the session on the way (see `docs/protocol.md`). An `Err` from
/// [`receive`](Self::receive) means the master broke the protocol and the session must
/// end; from the sending methods, that the server's own I/O loop asked for something the
/// session does not allow now.
///
/// At most `max_channels` slaves of one session are starting or running at once; a spawn
/// beyond that is answered with a refusal, which bounds what one session can make the
/// server hold.
///
/// ```
/// use distio_proto::remote::*;
/// let mut server = ServerSession::new(SessionCodec::new(), 16);
/// let codec = SessionCodec::new();
/// // A spawn before the session is open breaks the protocol.
/// let early = codec.encode(&SessionFrame::Spawn(Spawn::new(1, 1, "a.sh")))?;
/// assert!(server.receive(&early).is_err());
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Debug)]
pub struct ServerSession {
    codec: SessionCodec,
    phase: Phase,
    channels: Channels,
    max_channels: usize,
}

impl ServerSession {
    /// A session waiting for the master's open frame.
    pub fn new(codec: SessionCodec, max_channels: usize) -> Self {
        ServerSession {
            codec,
            phase: Phase::AwaitingOpen,
            channels: Channels::default(),
            max_channels,
        }
    }

    /// The codec the session uses.
    pub fn codec(&self) -> SessionCodec {
        self.codec
    }

    /// How many channels are starting or running.
    pub fn live_channels(&self) -> usize {
        self.channels.live()
    }

    /// True once the session has closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// What a message from the master means.
    pub fn receive(&mut self, message: &Bytes) -> Result<ServerEvent, ProtoError> {
        let frame = self.codec.decode(message)?;
        let kind = frame.kind();
        match (self.phase, frame) {
            (Phase::Closed, _) => Err(SessionViolation::AfterClose { kind }.into()),
            (Phase::AwaitingOpen, SessionFrame::Open(open)) => {
                open.check()?;
                self.phase = Phase::Opened;
                Ok(ServerEvent::Opened(open))
            }
            (Phase::AwaitingOpen, SessionFrame::Resume(resume)) => {
                resume.check()?;
                self.phase = Phase::Closed;
                Ok(ServerEvent::Resume(resume))
            }
            // A master with a passphrase, and this server has none.
            (Phase::AwaitingOpen, SessionFrame::PassphraseHello(_)) => {
                Err(ProtoError::PassphraseNotConfigured)
            }
            (Phase::AwaitingOpen, _) => Err(SessionViolation::HandshakeFirst {
                expected: "open",
                found: kind,
            }
            .into()),
            // The master cannot have seen the welcome yet: it asks for nothing before it.
            (
                Phase::Opened,
                SessionFrame::Spawn(_) | SessionFrame::Routed { .. } | SessionFrame::Kill(_),
            ) => Err(SessionViolation::HandshakeFirst {
                expected: "welcome",
                found: kind,
            }
            .into()),
            (Phase::Opened | Phase::Open, frame) => self.receive_open(frame),
        }
    }

    fn receive_open(&mut self, frame: SessionFrame) -> Result<ServerEvent, ProtoError> {
        let kind = frame.kind();
        Ok(match frame {
            SessionFrame::Spawn(spawn) => {
                let room = self.channels.live() < self.max_channels;
                self.channels.open(spawn.channel, room)?;
                if room {
                    ServerEvent::Spawn(spawn)
                } else {
                    let reply = self.codec.encode(&SessionFrame::SpawnFailed(SpawnFailed {
                        channel: spawn.channel,
                        kind: SpawnFailure::QueueFull,
                        message: format!(
                            "this session already has {} slaves starting or running, the most \
                             one session may have; end some or open another session",
                            self.max_channels
                        ),
                    }))?;
                    ServerEvent::Refused {
                        channel: spawn.channel,
                        reply,
                    }
                }
            }
            SessionFrame::Routed { channel, body } => match self.channels.lookup(channel) {
                Lookup::Live(Stage::Running) => ServerEvent::Routed { channel, body },
                Lookup::Ended => ServerEvent::Stale { channel },
                other => return Err(other.violation(channel, kind).into()),
            },
            SessionFrame::Kill(kill) => match self.channels.lookup(kill.channel) {
                Lookup::Live(Stage::Running) => ServerEvent::Kill {
                    channel: kill.channel,
                    signal: kill.signal,
                },
                Lookup::Live(Stage::Starting) => ServerEvent::Cancel {
                    channel: kill.channel,
                },
                Lookup::Ended => ServerEvent::Stale {
                    channel: kill.channel,
                },
                Lookup::Unknown => {
                    return Err(SessionViolation::UnknownChannel {
                        channel: kill.channel,
                        kind,
                    }
                    .into());
                }
            },
            SessionFrame::Closing(closing) => {
                self.phase = Phase::Closed;
                self.channels.drain();
                ServerEvent::Closing(closing)
            }
            SessionFrame::Ack(ack) => ServerEvent::Acked {
                received: ack.received,
            },
            SessionFrame::Open(_)
            | SessionFrame::Resume(_)
            | SessionFrame::PassphraseHello(_)
            | SessionFrame::PassphraseChallenge(_)
            | SessionFrame::PassphraseProof(_)
            | SessionFrame::PassphraseConfirm(_) => {
                return Err(SessionViolation::RepeatedHandshake { kind }.into());
            }
            SessionFrame::Welcome(_)
            | SessionFrame::Status(_)
            | SessionFrame::Spawned(_)
            | SessionFrame::SpawnFailed(_)
            | SessionFrame::Output(_)
            | SessionFrame::Exited(_)
            | SessionFrame::ResumeToken(_)
            | SessionFrame::Resumed(_) => {
                return Err(SessionViolation::WrongDirection {
                    kind,
                    from: "master",
                }
                .into());
            }
        })
    }

    /// The answer to [`ServerEvent::Opened`]. Sent once.
    pub fn welcome(&mut self, welcome: &Welcome) -> Result<Bytes, ProtoError> {
        if self.phase != Phase::Opened {
            return Err(SessionViolation::RepeatedHandshake { kind: "welcome" }.into());
        }
        self.phase = Phase::Open;
        self.codec.encode(&SessionFrame::Welcome(welcome.clone()))
    }

    /// Encodes a [`Status`] report; only once the welcome has gone out.
    ///
    /// ```
    /// use distio_proto::remote::{ServerSession, SessionCodec, Status};
    /// let mut server = ServerSession::new(SessionCodec::new(), 8);
    /// assert!(server.status(&Status::default()).is_err()); // before the handshake
    /// ```
    pub fn status(&self, status: &Status) -> Result<Bytes, ProtoError> {
        self.sending()?;
        self.codec.encode(&SessionFrame::Status(*status))
    }

    /// The session's resume token, sent right after the welcome.
    pub fn resume_token(&self, token: &ResumeToken) -> Result<Bytes, ProtoError> {
        self.sending()?;
        self.codec.encode(&SessionFrame::ResumeToken(token.clone()))
    }

    /// The answer to an accepted resume, on the new connection: the server, instance
    /// `instance`, has received `received` of the master's counted frames.
    pub fn resumed(&self, instance: u64, received: u64) -> Result<Bytes, ProtoError> {
        self.sending()?;
        self.codec
            .encode(&SessionFrame::Resumed(Resumed { instance, received }))
    }

    /// Tells the master the server has received `received` of its counted frames.
    pub fn ack(&self, received: u64) -> Result<Bytes, ProtoError> {
        self.sending()?;
        self.codec.encode(&SessionFrame::Ack(Ack { received }))
    }

    /// The slave of a starting channel started.
    pub fn spawned(&mut self, spawned: Spawned) -> Result<Bytes, ProtoError> {
        self.sending()?;
        self.channels.advance(
            spawned.channel,
            Stage::Starting,
            Some(Stage::Running),
            "spawned",
        )?;
        self.codec.encode(&SessionFrame::Spawned(spawned))
    }

    /// The slave of a starting channel did not start; the channel is finished.
    pub fn spawn_failed(
        &mut self,
        channel: Channel,
        kind: SpawnFailure,
        message: String,
    ) -> Result<Bytes, ProtoError> {
        self.sending()?;
        self.channels
            .advance(channel, Stage::Starting, None, "spawn-failed")?;
        self.codec.encode(&SessionFrame::SpawnFailed(SpawnFailed {
            channel,
            kind,
            message,
        }))
    }

    /// A line of a running slave's output.
    pub fn output(&self, output: &Output) -> Result<Bytes, ProtoError> {
        self.sending()?;
        self.channels
            .expect(output.channel, Stage::Running, "output")?;
        self.codec.encode(&SessionFrame::Output(output.clone()))
    }

    /// The header to put before a running slave's frame body to route it to the master
    /// (see [`routed_header`]), or `None` if the channel is not running.
    pub fn routed_header(&self, channel: Channel) -> Option<[u8; ROUTED_HEADER_LEN]> {
        let running = self.phase == Phase::Open
            && self.channels.lookup(channel) == Lookup::Live(Stage::Running);
        running.then(|| routed_header(channel))
    }

    /// The slave of a running channel exited; the channel is finished. Send it after the
    /// last of the slave's routed frames and output.
    pub fn exited(&mut self, exited: Exited) -> Result<Bytes, ProtoError> {
        self.sending()?;
        self.channels
            .advance(exited.channel, Stage::Running, None, "exited")?;
        self.codec.encode(&SessionFrame::Exited(exited))
    }

    /// The session's last message.
    pub fn close(&mut self, reason: CloseReason, message: &str) -> Result<Bytes, ProtoError> {
        self.phase = Phase::Closed;
        self.channels.drain();
        self.codec.encode(&SessionFrame::Closing(Closing {
            reason,
            message: message.into(),
        }))
    }

    fn sending(&self) -> Result<(), SessionViolation> {
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Closed => Err(SessionViolation::AfterClose { kind: "reply" }),
            Phase::AwaitingOpen | Phase::Opened => Err(SessionViolation::HandshakeFirst {
                expected: "welcome",
                found: "reply",
            }),
        }
    }
}
