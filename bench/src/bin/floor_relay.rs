//! The remote floor's relay: the two hops a remote request takes, with no distio code. It
//! accepts WebSocket connections on 127.0.0.1 (printing its port), starts one `floor-echo`
//! child per connection over a Unix socket pair, and forwards each binary message to the
//! child as a length-delimited frame and each frame back as a message, flushing what is
//! ready at once.
//!
//! Usage: `floor-relay <path to floor-echo>`.

use distio_bench::floor_codec;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::codec::Framed;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let echo = PathBuf::from(std::env::args().nth(1).unwrap_or_default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    loop {
        let (tcp, _) = listener.accept().await?;
        let echo = echo.clone();
        tokio::spawn(async move {
            // A client that goes away without a close handshake is how the bench ends a
            // connection; anything else is worth a line.
            if let Err(err) = relay(tcp, &echo).await
                && !err.to_string().contains("without closing handshake")
            {
                eprintln!("floor-relay: {err}");
            }
        });
    }
}

async fn relay(tcp: TcpStream, echo: &PathBuf) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let max = 64 * 1024 * 1024 + 64;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let ws = tokio_tungstenite::accept_async_with_config(tcp, Some(config))
        .await
        .map_err(std::io::Error::other)?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let mut child = Command::new(echo)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    ours.set_nonblocking(true)?;
    let framed = Framed::new(UnixStream::from_std(ours)?, floor_codec());
    let (mut to_child, mut from_child) = framed.split();
    let (mut to_client, mut from_client) = ws.split();
    let up = async {
        loop {
            let next = match from_client.next().now_or_never() {
                Some(next) => next,
                None => {
                    SinkExt::<bytes::Bytes>::flush(&mut to_child).await?;
                    from_client.next().await
                }
            };
            match next {
                Some(Ok(Message::Binary(bytes))) => to_child.feed(bytes).await?,
                Some(Ok(Message::Close(_))) | None => return Ok::<(), std::io::Error>(()),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(std::io::Error::other(err)),
            }
        }
    };
    let down = async {
        loop {
            let next = match from_child.next().now_or_never() {
                Some(next) => next,
                None => {
                    to_client.flush().await.map_err(std::io::Error::other)?;
                    from_child.next().await
                }
            };
            match next {
                Some(frame) => to_client
                    .feed(Message::Binary(frame?.freeze()))
                    .await
                    .map_err(std::io::Error::other)?,
                None => return Ok::<(), std::io::Error>(()),
            }
        }
    };
    let result = tokio::select! {
        r = up => r,
        r = down => r,
    };
    let _ = child.kill().await;
    result
}
