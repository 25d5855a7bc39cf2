//! Marking a host down the moment its session ends (its server killed, its link found dead
//! by the heartbeat, the server closing it), so that [`Cluster::hosts`](super::Cluster::hosts)
//! shows it down and its probe starts without waiting for the next spawn to look.

use std::sync::{Arc, Weak};

use super::Inner;
use crate::remote::Session;
use crate::sync::lock;

/// Watches `session`, the one member `index` is up with now (owned by the member: replaced
/// by the watch of its next session, aborted when the cluster goes).
pub(super) fn start(inner: &Arc<Inner>, index: usize, session: &Arc<Session>) {
    let Some(member) = inner.members.get(index) else {
        return;
    };
    let ended = session.ended();
    let task = tokio::spawn(run(
        Arc::downgrade(inner),
        index,
        Arc::downgrade(session),
        ended,
    ));
    if let Some(old) = lock(&member.state).watch.replace(task.abort_handle()) {
        old.abort();
    }
}

async fn run(
    inner: Weak<Inner>,
    index: usize,
    session: Weak<Session>,
    mut ended: tokio::sync::watch::Receiver<bool>,
) {
    // Only weak holds while waiting: neither the cluster nor the session is kept alive by
    // its watch. A session dropped unended (replaced) ends the watch too.
    if ended.wait_for(|ended| *ended).await.is_err() {
        return;
    }
    let Some(inner) = inner.upgrade() else {
        return;
    };
    let Some(member) = inner.members.get(index) else {
        return;
    };
    // A member already down, or up with a newer session, is not this session's to change.
    if !member.is_current(&session) {
        return;
    }
    let reason = session
        .upgrade()
        .and_then(|session| session.loss_reason())
        .unwrap_or_else(|| "its session was lost".into());
    inner.mark_down(index, reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cluster, Host, HostHealth};
    use distio_proto::remote::{ClientSession, SessionCodec, Welcome};
    use std::time::{Duration, Instant};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;

    type Plain = tokio_util::either::Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

    /// A session over a real WebSocket on loopback, and its far end (drop it: the
    /// connection is lost).
    async fn session_with(
        host: &Host,
        listener: &TcpListener,
    ) -> (Arc<Session>, WebSocketStream<TcpStream>) {
        let accept = async {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio_tungstenite::accept_async(tcp).await.unwrap()
        };
        let connect = async {
            let tcp = TcpStream::connect(host.authority()).await.unwrap();
            tokio_tungstenite::client_async(host.session_url(), Plain::Left(tcp))
                .await
                .unwrap()
                .0
        };
        let (far, ws) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(accept, connect)
        })
        .await
        .expect("a loopback WebSocket within 30 s");
        let welcome = Welcome::new("test", 1, 4);
        let client = ClientSession::new(SessionCodec::new());
        (
            Session::start(host.clone(), ws, client, &welcome, None),
            far,
        )
    }

    /// Its health once down (30 s bound).
    async fn wait_down(cluster: &Cluster) -> HostHealth {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = cluster.hosts()[0].health.clone();
            if matches!(health, HostHealth::Down { .. }) {
                return health;
            }
            assert!(Instant::now() < deadline, "still {health:?} after 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_lost_session_marks_its_host_down_without_a_spawn_but_an_old_one_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = Host::parse(&format!("ws://{}", listener.local_addr().unwrap())).unwrap();
        // Probes far off: the host stays down once marked.
        let cluster = Cluster::builder()
            .host(host.clone())
            .backoff(Duration::from_secs(600), Duration::from_secs(600))
            .build()
            .await
            .unwrap();
        let inner = cluster.inner();

        // Up with a first session, then with a second: the first one's end changes nothing.
        let (old, old_far) = session_with(&host, &listener).await;
        inner.up(&inner.members[0], &old);
        let (new, new_far) = session_with(&host, &listener).await;
        inner.up(&inner.members[0], &new);
        drop(old_far);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !old.is_lost() {
            assert!(Instant::now() < deadline, "the old session never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(cluster.hosts()[0].health, HostHealth::Up);

        // The current session's end marks the host down at once, with the reason.
        drop(new_far);
        let HostHealth::Down { reason, .. } = wait_down(&cluster).await else {
            unreachable!()
        };
        assert!(reason.contains("connection"), "{reason}");
        assert!(lock(&inner.members[0].state).probe.is_some(), "not probed");
    }
}
