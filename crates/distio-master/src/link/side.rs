//! What a link's writer task needs from the slave it writes to, so the writers (which the
//! slave's core holds) need not know the core.

use distio_proto::{FrameCodec, RequestId, SlaveId};
use std::future::Future;

use crate::room::Room;

/// The slave a link's writer task writes to, as the writer sees it.
pub(crate) trait WriterSide: Send + Sync + 'static {
    /// The slave's id, for logs.
    fn slave_id(&self) -> SlaveId;
    /// The codec frames are counted with.
    fn codec(&self) -> FrameCodec;
    /// The byte limit of the frames queued for the slave and not yet written.
    fn room(&self) -> &Room;
    /// Waits for the handshake to settle: true once the slave is ready, false if it ended
    /// first.
    fn handshake_done(&self) -> impl Future<Output = bool> + Send;
    /// How many requests have been forgotten (timed out or dropped) so far: a writer that
    /// sees it change looks for their frames to drop them unsent.
    fn forgotten(&self) -> u64;
    /// Runs `f` with a check telling whether a request's frame is still worth sending.
    fn with_live_check<R>(&self, f: impl FnOnce(&dyn Fn(RequestId) -> bool) -> R) -> R;
    /// Writing failed: end the link.
    fn end_link(&self);
}
