//! The master's side of a session.

use bytes::Bytes;

use super::channels::{Channels, Stage};
use super::frames::{
    Channel, CloseReason, Closing, Exited, Kill, Open, Output, Spawn, SpawnFailed, Spawned, Status,
    Welcome,
};
use super::message::{SessionCodec, SessionFrame};
use super::resume::{Ack, Resume, ResumeToken, TOKEN_LEN};
use super::violation::SessionViolation;
use crate::ProtoError;

/// What a message from the server means to the master.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted the session.
    Welcomed(Welcome),
    /// A slave started; its channel is running.
    Spawned(Spawned),
    /// A slave did not start; its channel is finished.
    SpawnFailed(SpawnFailed),
    /// A frame of the slave on `channel`.
    Routed {
        /// The slave's channel.
        channel: Channel,
        /// The slave frame's body.
        body: Bytes,
    },
    /// A line of a slave's output.
    Output(Output),
    /// A slave exited; its channel is finished.
    Exited(Exited),
    /// The server is ending the session.
    Closing(Closing),
    /// How busy the server is now.
    Status(Status),
    /// The token that resumes the session over a new connection (once, after the welcome).
    ResumeToken(ResumeToken),
    /// The server accepted a [`ClientSession::resume`]: it has received `received` of the
    /// master's counted frames; send it the rest again, then carry on (once `instance` is
    /// checked to be the session's server).
    Resumed {
        /// The server's instance.
        instance: u64,
        /// How many counted frames of the master's the server has.
        received: u64,
    },
    /// The server has received `received` of the master's counted frames.
    Acked {
        /// How many.
        received: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    New,
    Opening,
    Open,
    Closed,
}

/// The master's side of a remote session, without I/O: it turns what the master wants
/// into messages to send, and the server's messages into [`ClientEvent`]s, checking every
/// rule of the session on the way (see `docs/protocol.md`). The master's I/O loop sends
/// what it returns and acts on the events; an `Err` means the server broke the protocol
/// and the session must end.
///
/// ```
/// use distio_proto::remote::*;
///
/// let mut master = ClientSession::new(SessionCodec::new());
/// let mut server = ServerSession::new(SessionCodec::new(), 16);
///
/// let open = master.open("example")?;
/// assert!(matches!(server.receive(&open)?, ServerEvent::Opened(_)));
/// let welcome = server.welcome(&Welcome::new("host", 1, 8))?;
/// assert!(matches!(master.receive(&welcome)?, ClientEvent::Welcomed(_)));
///
/// let (channel, spawn) = master.spawn(Spawn::new(0, 1, "square.sh"))?;
/// let ServerEvent::Spawn(asked) = server.receive(&spawn)? else { panic!() };
/// assert_eq!(asked.channel, channel);
/// let spawned = server.spawned(Spawned { channel, pid: 42, server_id: 1 })?;
/// assert!(matches!(master.receive(&spawned)?, ClientEvent::Spawned(_)));
/// # Ok::<(), distio_proto::ProtoError>(())
/// ```
#[derive(Debug)]
pub struct ClientSession {
    codec: SessionCodec,
    phase: Phase,
    channels: Channels,
    /// A resume was sent on a new connection and not answered yet.
    resuming: bool,
    token_seen: bool,
}

impl ClientSession {
    /// A session not yet opened.
    pub fn new(codec: SessionCodec) -> Self {
        ClientSession {
            codec,
            phase: Phase::New,
            channels: Channels::default(),
            resuming: false,
            token_seen: false,
        }
    }

    /// The codec the session uses.
    pub fn codec(&self) -> SessionCodec {
        self.codec
    }

    /// The session carries on over a new connection (resumed): the server hands out a
    /// fresh resume token on it, which is taken once more.
    ///
    /// ```
    /// use distio_proto::remote::{ClientSession, SessionCodec};
    /// let mut master = ClientSession::new(SessionCodec::new());
    /// master.new_link();
    /// ```
    pub fn new_link(&mut self) {
        self.token_seen = false;
    }

    /// True once the server's welcome has come and until the session closes.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// How many channels are starting or running.
    pub fn live_channels(&self) -> usize {
        self.channels.live()
    }

    /// The session's first message. Sent once.
    pub fn open(&mut self, client: &str) -> Result<Bytes, ProtoError> {
        if self.phase != Phase::New {
            return Err(SessionViolation::RepeatedHandshake { kind: "open" }.into());
        }
        self.phase = Phase::Opening;
        self.codec.encode(&SessionFrame::Open(Open::new(client)))
    }

    /// The first message of a new connection carrying on this open session (its link
    /// dropped): the answer is [`ClientEvent::Resumed`] or a closing. Frames asked for
    /// meanwhile are encoded as usual, to be sent once it is resumed.
    pub fn resume(
        &mut self,
        token: [u8; TOKEN_LEN],
        instance: u64,
        received: u64,
    ) -> Result<Bytes, ProtoError> {
        self.sending("resume")?;
        self.resuming = true;
        self.codec.encode(&SessionFrame::Resume(Resume::new(
            token, instance, received,
        )))
    }

    /// Tells the server the master has received `received` of its counted frames.
    pub fn ack(&self, received: u64) -> Result<Bytes, ProtoError> {
        self.sending("ack")?;
        self.codec.encode(&SessionFrame::Ack(Ack { received }))
    }

    /// Asks for a slave: `spawn`'s channel is replaced by the next free one, which is
    /// returned with the message. Only once the session is open.
    pub fn spawn(&mut self, mut spawn: Spawn) -> Result<(Channel, Bytes), ProtoError> {
        self.sending("spawn")?;
        spawn.channel = self.channels.next()?;
        let message = self.codec.encode(&SessionFrame::Spawn(spawn.clone()))?;
        self.channels.open(spawn.channel, true)?;
        Ok((spawn.channel, message))
    }

    /// Asks the server to signal the slave of `channel` (or cancel its queued spawn).
    /// `None` when the channel has already finished: there is nothing to signal.
    pub fn kill(&mut self, channel: Channel, signal: i32) -> Result<Option<Bytes>, ProtoError> {
        self.sending("kill")?;
        if !matches!(
            self.channels.lookup(channel),
            super::channels::Lookup::Live(_)
        ) {
            return Ok(None);
        }
        self.codec
            .encode(&SessionFrame::Kill(Kill { channel, signal }))
            .map(Some)
    }

    /// True when frames may be routed to `channel` (its slave is running).
    pub fn is_running(&self, channel: Channel) -> bool {
        self.channels.lookup(channel) == super::channels::Lookup::Live(Stage::Running)
    }

    /// The session's last message; every channel ends with it.
    pub fn close(&mut self, reason: CloseReason, message: &str) -> Result<Bytes, ProtoError> {
        self.phase = Phase::Closed;
        self.channels.drain();
        self.codec.encode(&SessionFrame::Closing(Closing {
            reason,
            message: message.into(),
        }))
    }

    /// Every channel still live, ended at once (the connection is gone).
    pub fn end_all(&mut self) -> Vec<Channel> {
        self.phase = Phase::Closed;
        self.channels.drain()
    }

    /// What a message from the server means.
    pub fn receive(&mut self, message: &Bytes) -> Result<ClientEvent, ProtoError> {
        let frame = self.codec.decode(message)?;
        let kind = frame.kind();
        match (self.phase, frame) {
            (Phase::Closed, _) => Err(SessionViolation::AfterClose { kind }.into()),
            (_, SessionFrame::Closing(closing)) => Ok(self.closed(closing)),
            (Phase::Opening, SessionFrame::Welcome(welcome)) => {
                welcome.check()?;
                self.phase = Phase::Open;
                Ok(ClientEvent::Welcomed(welcome))
            }
            (Phase::New | Phase::Opening, _) => Err(SessionViolation::HandshakeFirst {
                expected: "welcome",
                found: kind,
            }
            .into()),
            (Phase::Open, SessionFrame::Resumed(resumed)) if self.resuming => {
                self.resuming = false;
                Ok(ClientEvent::Resumed {
                    instance: resumed.instance,
                    received: resumed.received,
                })
            }
            (Phase::Open, _) if self.resuming => Err(SessionViolation::HandshakeFirst {
                expected: "resumed",
                found: kind,
            }
            .into()),
            (Phase::Open, frame) => self.receive_open(frame),
        }
    }

    fn receive_open(&mut self, frame: SessionFrame) -> Result<ClientEvent, ProtoError> {
        let kind = frame.kind();
        Ok(match frame {
            SessionFrame::Spawned(spawned) => {
                self.channels.advance(
                    spawned.channel,
                    Stage::Starting,
                    Some(Stage::Running),
                    kind,
                )?;
                ClientEvent::Spawned(spawned)
            }
            SessionFrame::SpawnFailed(failed) => {
                self.channels
                    .advance(failed.channel, Stage::Starting, None, kind)?;
                ClientEvent::SpawnFailed(failed)
            }
            SessionFrame::Routed { channel, body } => {
                self.channels.expect(channel, Stage::Running, kind)?;
                ClientEvent::Routed { channel, body }
            }
            SessionFrame::Output(output) => {
                self.channels.expect(output.channel, Stage::Running, kind)?;
                ClientEvent::Output(output)
            }
            SessionFrame::Exited(exited) => {
                self.channels
                    .advance(exited.channel, Stage::Running, None, kind)?;
                ClientEvent::Exited(exited)
            }
            SessionFrame::Status(status) => ClientEvent::Status(status),
            SessionFrame::Ack(ack) => ClientEvent::Acked {
                received: ack.received,
            },
            SessionFrame::ResumeToken(token) if !self.token_seen => {
                self.token_seen = true;
                ClientEvent::ResumeToken(token)
            }
            SessionFrame::Welcome(_)
            | SessionFrame::ResumeToken(_)
            | SessionFrame::Resumed(_)
            | SessionFrame::PassphraseHello(_)
            | SessionFrame::PassphraseChallenge(_)
            | SessionFrame::PassphraseProof(_)
            | SessionFrame::PassphraseConfirm(_) => {
                return Err(SessionViolation::RepeatedHandshake { kind }.into());
            }
            SessionFrame::Open(_)
            | SessionFrame::Spawn(_)
            | SessionFrame::Kill(_)
            | SessionFrame::Resume(_) => {
                return Err(SessionViolation::WrongDirection {
                    kind,
                    from: "server",
                }
                .into());
            }
            SessionFrame::Closing(closing) => self.closed(closing),
        })
    }

    fn closed(&mut self, closing: Closing) -> ClientEvent {
        self.phase = Phase::Closed;
        self.channels.drain();
        ClientEvent::Closing(closing)
    }

    fn sending(&self, kind: &'static str) -> Result<(), SessionViolation> {
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Closed => Err(SessionViolation::AfterClose { kind }),
            Phase::New | Phase::Opening => Err(SessionViolation::HandshakeFirst {
                expected: "welcome",
                found: kind,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_runs_out_of_channel_numbers_after_the_last() {
        let mut session = ClientSession::new(SessionCodec::new());
        session.phase = Phase::Open;
        // As if 2^32 - 2 spawns had come and gone.
        session.channels.open(Channel::MAX - 1, false).unwrap();
        let (channel, _) = session.spawn(Spawn::new(0, 1, "a")).unwrap();
        assert_eq!(channel, Channel::MAX);
        assert!(matches!(
            session.spawn(Spawn::new(0, 1, "a")),
            Err(ProtoError::Session(SessionViolation::ChannelsExhausted))
        ));
        assert_eq!(session.live_channels(), 1);
    }
}
