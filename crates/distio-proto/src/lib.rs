//! The distio wire protocol.
//!
//! Everything a distio master and slave say to each other is a [`Frame`], sent as a
//! big-endian `u32` length followed by a bincode body ([`FrameCodec`]), or as the body
//! alone over a transport that delimits messages itself, such as a WebSocket
//! ([`FrameCodec::encode_body`], [`FrameCodec::decode_body`]). User data travels
//! inside frames as a [`Payload`]: bytes encoded once by the sender and decoded into a type
//! the receiver names. The first frames on a connection are the handshake: the master sends
//! [`Hello`], the slave answers [`Ready`]; both carry [`MAGIC`] and [`PROTOCOL_VERSION`].
//!
//! This crate holds no process or socket code, and depends on no other distio crate; the
//! byte-level specification is `docs/protocol.md`, enough to write a slave in another
//! language.
//!
//! ```
//! use bytes::BytesMut;
//! use distio_proto::{Frame, FrameCodec, Metadata, Payload, Request};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let request = Frame::Request(Request {
//!     id: 1,
//!     task: "square".into(),
//!     payload: Payload::encode(&12u64)?,
//!     meta: Metadata::default(),
//! });
//! let mut wire = BytesMut::new();
//! FrameCodec::new().encode(&request, &mut wire)?;
//! let back = FrameCodec::new().decode(&mut wire)?.expect("a whole frame");
//! assert_eq!(back, request);
//! # Ok::<(), distio_proto::ProtoError>(())
//! ```

mod codec;
mod error;
mod frame;
mod payload;
pub mod remote;
mod task;
mod throttle;
mod wire;

// The integration tests' frame strategies, for the unit tests that compare private paths.
#[cfg(test)]
extern crate self as distio_proto;
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_strategies;

pub use codec::{DEFAULT_MAX_FRAME_LEN, FrameCodec, HEADER_LEN};
pub use error::ProtoError;
pub use frame::{
    Control, ErrorKind, Event, Frame, Hello, MAGIC, Metadata, PROTOCOL_VERSION, Ready, Request,
    RequestId, Response, SlaveId, SlaveIdentity, TaskError, check_handshake,
};
pub use payload::Payload;
pub use task::Task;
pub use throttle::Throttle;

/// How a master hands a local slave process its connection.
///
/// The master creates a Unix socket pair, lets the child inherit one end, and names that
/// descriptor in the child's environment. A slave runtime finds its connection there; a
/// program sees it was launched as a slave by the variable being set.
pub mod local {
    /// Environment variable holding the decimal file-descriptor number of the slave's end
    /// of the connection.
    ///
    /// ```
    /// assert_eq!(distio_proto::local::SLAVE_FD_ENV, "DISTIO_SLAVE_FD");
    /// ```
    pub const SLAVE_FD_ENV: &str = "DISTIO_SLAVE_FD";
}
