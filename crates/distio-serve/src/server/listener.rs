//! The accept loop: TCP, admission, the TLS handshake if configured, then HTTP/1.1 with
//! upgrades for the router, all of it before authentication bounded by one deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::ServerTls;
use crate::admission::{Admission, Gate, Refusal};

/// How long accepting pauses after an error such as running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one accept-error line per this long.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// What every connection is served with.
#[derive(Clone)]
pub(super) struct Serving {
    pub(super) router: Router,
    pub(super) gate: Gate,
    pub(super) tls: Option<ServerTls>,
}

/// Accepts until `stopped` turns true, then ends the connections that have not become
/// sessions (sessions are the server state's to end) and returns.
pub(super) async fn accept_loop(
    listener: TcpListener,
    serving: Serving,
    mut stopped: watch::Receiver<bool>,
) {
    let connections = TaskTracker::new();
    let mut last_error_log: Option<Instant> = None;
    let mut errors_unlogged = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|&stop| stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Per-connection errors (the peer reset before accept) are not the
                // listener's; others (EMFILE) pause accepting briefly instead of spinning.
                if !is_connection_error(&err) {
                    let now = Instant::now();
                    if last_error_log.is_none_or(|t| now - t >= ACCEPT_ERROR_LOG_EVERY) {
                        tracing::warn!(
                            error = %err,
                            suppressed = errors_unlogged,
                            "accepting a connection failed; pausing briefly"
                        );
                        last_error_log = Some(now);
                        errors_unlogged = 0;
                    } else {
                        errors_unlogged += 1;
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        let Some(ticket) = serving.gate.admit(peer) else {
            // Over the cap of unauthenticated connections: closed before any TLS or HTTP.
            drop(tcp);
            continue;
        };
        // Small frames (a response, a welcome) go out at once rather than waiting for
        // the peer's acknowledgement of the previous ones.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a session: {err}");
        }
        let serving = serving.clone();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            tokio::select! {
                () = connection(tcp, peer, ticket, serving) => {}
                _ = stopped.wait_for(|&stop| stop) => {}
            }
        });
    }
    connections.close();
    connections.wait().await;
}

fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// One connection: the TLS handshake if configured, then HTTP until it upgrades or closes.
async fn connection(tcp: TcpStream, peer: SocketAddr, ticket: Admission, serving: Serving) {
    let deadline = ticket.deadline();
    match &serving.tls {
        Some(tls) => match timeout_at(deadline, tls.acceptor().accept(tcp)).await {
            Ok(Ok(stream)) => serve_http(stream, peer, ticket, serving.router).await,
            Ok(Err(err)) => {
                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                ticket.refused(Refusal::Tls, None);
            }
            Err(_) => ticket.refused(Refusal::Deadline, None),
        },
        None => serve_http(tcp, peer, ticket, serving.router).await,
    }
}

/// HTTP/1.1 (upgrades allowed) with the peer's address and the admission ticket in each
/// request's extensions, until the connection upgrades or the deadline.
async fn serve_http<I>(io: I, peer: SocketAddr, ticket: Admission, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = ticket.deadline();
    let request_ticket = ticket.clone();
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(request_ticket.clone());
        let mut router = router.clone();
        async move {
            Ok::<_, Infallible>(
                router
                    .call(request)
                    .await
                    .unwrap_or_else(|never| match never {}),
            )
        }
    });
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    // The connection ends here once it has upgraded (the session goes on by itself); one
    // still speaking HTTP at the deadline is no session, authenticated or not.
    match timeout_at(deadline, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "connection ended with an HTTP error");
        }
        Err(_) if ticket.is_authenticated() => {
            tracing::debug!(%peer, "connection closed: no upgrade by the deadline");
        }
        Err(_) => ticket.refused(Refusal::Deadline, None),
    }
}
