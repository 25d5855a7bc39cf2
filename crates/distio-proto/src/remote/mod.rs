//! The remote session between a master and `distio-serve`, without I/O.
//!
//! A master opens one WebSocket to each server it uses and runs all its slaves there over
//! it, each on a numbered [`Channel`]. Every WebSocket binary message is one
//! [`SessionFrame`]; slave frames cross it as [`SessionFrame::Routed`], their bodies as the
//! slave link carries them, so the server relays them without decoding them.
//!
//! The rules of the session — the handshake first, channels that only increase, which
//! frame may come at which stage of a channel, nothing after closing — live in two state
//! machines, [`ClientSession`] (the master's side) and [`ServerSession`] (the server's),
//! which take messages in and give events and messages out, with no sockets and no clock;
//! [`Heartbeat`] decides when a quiet peer is pinged or given up, from instants the caller
//! passes in. The byte-level specification is `docs/protocol.md`.

mod channels;
mod client;
mod frames;
#[cfg(test)]
mod golden;
mod heartbeat;
mod message;
pub mod passphrase;
mod replay;
mod resume;
mod server;
mod violation;

pub use client::{ClientEvent, ClientSession};
pub use frames::{
    Channel, CloseReason, Closing, ExitCause, Exited, Kill, Open, Output, OutputStream, Spawn,
    SpawnFailed, SpawnFailure, Spawned, Status, Welcome,
};
pub use heartbeat::{Beat, Heartbeat};
pub use message::{ROUTED_HEADER_LEN, SessionCodec, SessionFrame, routed_header};
pub use replay::{ACK_EVERY_BYTES, ACK_EVERY_FRAMES, ReceiveCounter, ReplayBuffer, ReplayError};
pub use resume::{Ack, Resume, ResumeToken, Resumed, TOKEN_LEN};
pub use server::{ServerEvent, ServerSession};
pub use violation::SessionViolation;

/// The version of the session protocol, in [`Open`], [`Welcome`] and [`Resume`]: 2 since
/// the status report (tag 20) and resuming (tags 21–24). Separate from the slave link's
/// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION): a slave speaks the same protocol whether
/// its master is local or remote.
///
/// ```
/// use distio_proto::remote::{Open, SESSION_VERSION};
/// assert_eq!(Open::new("ci").version, SESSION_VERSION);
/// ```
pub const SESSION_VERSION: u16 = 2;

/// Checks a session handshake's magic bytes and [`SESSION_VERSION`].
fn check_session_handshake(magic: [u8; 4], version: u16) -> Result<(), crate::ProtoError> {
    crate::frame::check_magic_and_version(magic, version, SESSION_VERSION)
}
