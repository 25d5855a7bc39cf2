//! The floor's child: echoes floor messages over the Unix socket it was given as stdin.
//! Every frame is decoded and re-encoded, as a distio slave does; frames that arrive
//! together are answered with one flush.

use distio_bench::{decode, encode, floor_codec};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::os::fd::AsFd;
use tokio_util::codec::Framed;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let socket = std::os::unix::net::UnixStream::from(fd);
    socket.set_nonblocking(true)?;
    let mut framed = Framed::new(tokio::net::UnixStream::from_std(socket)?, floor_codec());
    loop {
        let next = match framed.next().now_or_never() {
            Some(next) => next,
            None => {
                SinkExt::<bytes::Bytes>::flush(&mut framed).await?;
                framed.next().await
            }
        };
        let Some(frame) = next else { return Ok(()) };
        let Some(message) = decode(&frame?) else {
            return Ok(());
        };
        framed.feed(encode(&message)).await?;
    }
}
