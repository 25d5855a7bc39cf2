//! A loopback TCP proxy in front of a server, to drop and stall a session's link.
//!
//! `cut()` resets every current connection and refuses new ones until `restore()`;
//! `blackhole()` keeps connections open but forwards nothing (new ones too) until
//! `restore()`. Its tasks end with it (dropped).

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Open,
    Cut,
    Blackhole,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(server: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, watch) = watch::channel(Mode::Open);
        let accept = tokio::spawn(async move {
            let mut links = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() == Mode::Cut {
                    #[allow(deprecated)]
                    let _ = client.set_linger(Some(std::time::Duration::ZERO));
                    drop(client);
                    continue;
                }
                links.spawn(link(client, server, watch.clone()));
                while links.try_join_next().is_some() {}
            }
        });
        Proxy { addr, mode, accept }
    }

    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    pub fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept task owns the links' JoinSet: aborting it ends them all.
        self.accept.abort();
    }
}

async fn link(client: TcpStream, server: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(upstream) = TcpStream::connect(server).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let cut = Arc::new(tokio::sync::Notify::new());
    tokio::select! {
        () = pump(cr, uw, mode.clone()) => {}
        () = pump(ur, cw, mode.clone()) => {}
        () = until_cut(mode) => {}
    }
    drop(cut);
}

/// Copies one way while open; holds what it reads while blackholed (drops it: a
/// blackholed link is dead for the session); ends when cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match *mode.borrow() {
            Mode::Open => {}
            Mode::Blackhole => continue,
            Mode::Cut => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn until_cut(mut mode: watch::Receiver<Mode>) {
    let _ = mode.wait_for(|m| *m == Mode::Cut).await;
}
