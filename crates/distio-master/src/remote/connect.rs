//! Opening a session: TCP, the WebSocket upgrade with credentials, then open and welcome.

use base64::Engine;
use distio_proto::remote::passphrase::{RecordKeys, TAG_LEN};
use distio_proto::remote::{
    ClientEvent, ClientSession, CloseReason, Closing, SessionCodec, Welcome,
};
use distio_proto::remote::{Resume, SessionFrame, TOKEN_LEN};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::host::Host;
use super::session::Ws;
use super::tls::tls_failure;
use crate::{ClientTls, MasterError};

/// A session's connection: plain TCP for `ws://`, TLS over TCP for `wss://`.
pub(crate) type Stream = tokio_util::either::Either<TcpStream, TlsStream<TcpStream>>;

/// How long connecting to a host, upgrading to a WebSocket and the session handshake may
/// take, each.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `host` and runs the session handshake (after the passphrase handshake,
/// when the host has a passphrase: then the record keys come back too).
pub(crate) async fn connect(
    host: &Host,
    codec: SessionCodec,
    client_name: &str,
) -> Result<(Ws, ClientSession, Welcome, Option<RecordKeys>), MasterError> {
    let shown = host.to_string();
    let unreachable = |reason: String| MasterError::HostUnreachable {
        host: shown.clone(),
        reason,
    };
    let (mut ws, mut keys) = open_link(host, codec).await?;
    let mut client = ClientSession::new(codec);
    let mut open = client
        .open(client_name)
        .map_err(|err| handshake(&shown, err.to_string()))?;
    if let Some(keys) = &mut keys {
        open = keys
            .sealer
            .seal(open)
            .map_err(|err| handshake(&shown, err.to_string()))?;
    }
    ws.send(Message::Binary(open))
        .await
        .map_err(|err| unreachable(err.to_string()))?;
    let welcome = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    let bytes = match &mut keys {
                        Some(keys) => keys
                            .opener
                            .open(bytes)
                            .map_err(|err| handshake(&shown, err.to_string()))?,
                        None => bytes,
                    };
                    return match client.receive(&bytes) {
                        Ok(ClientEvent::Welcomed(welcome)) => Ok(welcome),
                        Ok(ClientEvent::Closing(closing)) => Err(refused(&shown, closing)),
                        Ok(other) => Err(handshake(&shown, format!("it answered {other:?}"))),
                        Err(err) => Err(handshake(&shown, err.to_string())),
                    };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(_)) => {
                    return Err(handshake(&shown, "it sent a non-binary message".into()));
                }
                Some(Err(err)) => return Err(unreachable(err.to_string())),
                None => return Err(unreachable("it closed the connection".into())),
            }
        }
    })
    .await
    .map_err(|_| handshake(&shown, format!("no welcome within {CONNECT_TIMEOUT:?}")))??;
    Ok((ws, client, welcome, keys))
}

/// The error for a server's closing in answer to the open.
fn refused(host: &str, closing: Closing) -> MasterError {
    match closing.reason {
        CloseReason::PassphraseRequired => MasterError::HostNeedsPassphrase {
            host: host.to_owned(),
        },
        _ => handshake(host, format!("it refused the session: {}", closing.message)),
    }
}

fn handshake(host: &str, reason: String) -> MasterError {
    MasterError::HostHandshake {
        host: host.to_owned(),
        reason,
    }
}

fn upgrade_error(host: &str, err: WsError) -> MasterError {
    match err {
        WsError::Http(response) => match response.status() {
            StatusCode::UNAUTHORIZED => MasterError::HostUnauthorized {
                host: host.to_owned(),
            },
            StatusCode::FORBIDDEN => MasterError::HostForbidden {
                host: host.to_owned(),
            },
            status => handshake(host, format!("it answered the upgrade with HTTP {status}")),
        },
        WsError::Io(err) => {
            // With TLS 1.3 the server checks a client certificate after the client's side
            // of the handshake is done: its refusal arrives as the upgrade is read.
            tls_failure(host, &err).unwrap_or_else(|| MasterError::HostUnreachable {
                host: host.to_owned(),
                reason: err.to_string(),
            })
        }
        WsError::Tls(err) => MasterError::TlsHandshake {
            host: host.to_owned(),
            reason: err.to_string(),
        },
        other => handshake(host, other.to_string()),
    }
}

/// How a resume attempt failed.
pub(crate) enum ResumeFailure {
    /// The host could not be reached now (refused, reset, timed out): try again.
    Unreachable(MasterError),
    /// The server (or its credentials check) refused: the session is over.
    Refused(String),
    /// Nothing listens on the host's port any more: its server stopped or was killed,
    /// and its sessions with it.
    Gone,
}

/// Connects to `host` again and asks it to carry on the session of `token` on server
/// instance `instance`; the master has received `received` counted frames of it. On
/// success, the connection, how many of the master's counted frames the server has, and
/// the new connection's record keys (passphrase mode).
pub(crate) async fn resume(
    host: &Host,
    codec: SessionCodec,
    token: [u8; TOKEN_LEN],
    instance: u64,
    received: u64,
) -> Result<(Ws, u64, Option<RecordKeys>), ResumeFailure> {
    let (mut ws, mut keys) = open_link(host, codec).await.map_err(|err| match err {
        MasterError::HostUnreachable { .. } | MasterError::HostHandshake { .. } => {
            ResumeFailure::Unreachable(err)
        }
        // Nothing listens: its server is gone, and the session with it.
        MasterError::HostNotListening { .. } => ResumeFailure::Gone,
        other => ResumeFailure::Refused(other.to_string()),
    })?;
    let unreachable = |reason: String| {
        ResumeFailure::Unreachable(MasterError::HostUnreachable {
            host: host.to_string(),
            reason,
        })
    };
    let resume = codec
        .encode(&SessionFrame::Resume(Resume::new(
            token, instance, received,
        )))
        .map_err(|err| ResumeFailure::Refused(err.to_string()))?;
    let resume = match &mut keys {
        Some(keys) => keys
            .sealer
            .seal(resume)
            .map_err(|err| ResumeFailure::Refused(err.to_string()))?,
        None => resume,
    };
    ws.send(Message::Binary(resume))
        .await
        .map_err(|err| unreachable(err.to_string()))?;
    let answer = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(_)) => return Err(ResumeFailure::Refused("a non-binary answer".into())),
                Some(Err(err)) => return Err(unreachable(err.to_string())),
                None => return Err(unreachable("it closed the connection".into())),
            }
        }
    })
    .await
    .map_err(|_| {
        unreachable(format!(
            "no answer to the resume within {CONNECT_TIMEOUT:?}"
        ))
    })??;
    let answer = match &mut keys {
        Some(keys) => keys
            .opener
            .open(answer)
            .map_err(|err| ResumeFailure::Refused(err.to_string()))?,
        None => answer,
    };
    match codec.decode(&answer) {
        Ok(SessionFrame::Resumed(resumed)) if resumed.instance == instance => {
            Ok((ws, resumed.received, keys))
        }
        // Not the server the session was opened with (the server refuses such a resume;
        // this is the master's own check that it reached the same one).
        Ok(SessionFrame::Resumed(resumed)) => Err(ResumeFailure::Refused(format!(
            "it is another server instance ({:#x}) than the session's ({instance:#x}): it \
             restarted, and the session and its slaves are gone",
            resumed.instance
        ))),
        Ok(SessionFrame::Closing(closing)) => Err(ResumeFailure::Refused(closing.message)),
        Ok(other) => Err(ResumeFailure::Refused(format!(
            "it answered the resume with a {} frame",
            other.kind()
        ))),
        Err(err) => Err(ResumeFailure::Refused(err.to_string())),
    }
}

/// TCP, TLS for `wss://`, the WebSocket upgrade with the credentials, then the passphrase
/// handshake when the host has a passphrase (its record keys come back).
async fn open_link(
    host: &Host,
    codec: SessionCodec,
) -> Result<(Ws, Option<RecordKeys>), MasterError> {
    let shown = host.to_string();
    if !host.is_secure() && host.tls().is_some() {
        return Err(MasterError::HostUrl {
            url: shown,
            reason: "TLS settings were given for a ws:// URL, which would not use them; write \
                     wss:// to connect with TLS"
                .into(),
        });
    }
    let unreachable = |reason: String| MasterError::HostUnreachable {
        host: shown.clone(),
        reason,
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(host.authority()))
        .await
        .map_err(|_| unreachable(format!("no connection within {CONNECT_TIMEOUT:?}")))?
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::ConnectionRefused => MasterError::HostNotListening {
                host: shown.clone(),
            },
            _ => unreachable(err.to_string()),
        })?;
    let _ = tcp.set_nodelay(true);
    let stream = if host.is_secure() {
        let default = ClientTls::new();
        let config = host.tls().unwrap_or(&default).client_config()?;
        let name =
            rustls::pki_types::ServerName::try_from(host.name().to_owned()).map_err(|_| {
                MasterError::HostUrl {
                    url: shown.clone(),
                    reason: "its host is not a valid TLS server name".into(),
                }
            })?;
        let handshake = TlsConnector::from(config).connect(name, tcp);
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| unreachable(format!("no TLS handshake within {CONNECT_TIMEOUT:?}")))?
            .map_err(|err| {
                tls_failure(&shown, &err).unwrap_or_else(|| unreachable(err.to_string()))
            })?;
        Stream::Right(tls)
    } else {
        Stream::Left(tcp)
    };
    let mut request =
        host.session_url()
            .into_client_request()
            .map_err(|err| MasterError::HostUrl {
                url: shown.clone(),
                reason: err.to_string(),
            })?;
    if let Some(user) = host.user() {
        let pair = format!("{user}:{}", host.password.as_deref().unwrap_or(""));
        let token = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut value =
            HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| MasterError::HostUrl {
                url: shown.clone(),
                reason: "its credentials cannot go in an HTTP header".into(),
            })?;
        value.set_sensitive(true);
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    // A sealed record is the message it carries and its tag.
    let max = codec.max_message_len() + TAG_LEN;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let upgrade = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
    let (mut ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, upgrade)
        .await
        .map_err(|_| unreachable(format!("no WebSocket upgrade within {CONNECT_TIMEOUT:?}")))?
        .map_err(|err| upgrade_error(&shown, err))?;

    let keys = match &host.passphrase {
        Some(passphrase) => Some(
            super::passphrase::handshake(&mut ws, passphrase, codec, &shown, CONNECT_TIMEOUT)
                .await?,
        ),
        None => None,
    };
    Ok((ws, keys))
}
