//! The master's side of the passphrase mode: the handshake, run on a new connection
//! before the session's open, and the errors it ends in.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use distio_proto::ProtoError;
use distio_proto::remote::SessionCodec;
use distio_proto::remote::passphrase::{ClientHandshake, Passphrase, RecordKeys};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::session::Ws;
use crate::MasterError;

/// Proves to the server that the master knows `passphrase` and checks that the server
/// does too; the record keys for the rest of the session. Each wait is bounded by
/// `limit`; deriving the key (PBKDF2, cached per salt and iterations) runs off the
/// runtime's threads.
pub(crate) async fn handshake(
    ws: &mut Ws,
    passphrase: &Arc<Passphrase>,
    codec: SessionCodec,
    host: &str,
    limit: Duration,
) -> Result<RecordKeys, MasterError> {
    let failed = |err: ProtoError| error(host, err);
    let (mut client, hello) = ClientHandshake::start(codec).map_err(failed)?;
    send(ws, hello, host).await?;
    let challenge = receive(ws, host, limit).await?;
    let params = client.challenge(&challenge).map_err(failed)?;
    let key = match passphrase.cached(&params.salt, params.iterations) {
        Some(key) => key,
        None => {
            let passphrase = Arc::clone(passphrase);
            // Bounded by the iterations' cap (checked by `challenge`).
            tokio::task::spawn_blocking(move || passphrase.key_for(&params.salt, params.iterations))
                .await
                .map_err(|err| handshake_failed(host, format!("deriving the key failed: {err}")))?
                .map_err(failed)?
        }
    };
    let proof = client.prove(&key).map_err(failed)?;
    send(ws, proof, host).await?;
    let confirm = receive(ws, host, limit).await?;
    client.confirm(&confirm).map_err(failed)
}

async fn send(ws: &mut Ws, message: Bytes, host: &str) -> Result<(), MasterError> {
    ws.send(Message::Binary(message))
        .await
        .map_err(|err| MasterError::HostUnreachable {
            host: host.to_owned(),
            reason: err.to_string(),
        })
}

/// The next binary message, within `limit`.
async fn receive(ws: &mut Ws, host: &str, limit: Duration) -> Result<Bytes, MasterError> {
    let unreachable = |reason: String| MasterError::HostUnreachable {
        host: host.to_owned(),
        reason,
    };
    tokio::time::timeout(limit, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(bytes))) => return Ok(bytes),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(_)) => {
                    return Err(handshake_failed(
                        host,
                        "it sent a non-binary message".into(),
                    ));
                }
                Some(Err(err)) => return Err(unreachable(err.to_string())),
                None => return Err(unreachable("it closed the connection".into())),
            }
        }
    })
    .await
    .map_err(|_| {
        handshake_failed(
            host,
            format!("no passphrase handshake answer within {limit:?}"),
        )
    })?
}

/// The master's error for a failed passphrase handshake.
pub(crate) fn error(host: &str, err: ProtoError) -> MasterError {
    let host = host.to_owned();
    match err {
        ProtoError::PassphraseRequired => MasterError::HostNeedsPassphrase { host },
        ProtoError::PassphraseRefused => MasterError::HostRefusedPassphrase { host },
        ProtoError::PassphraseNotConfigured => MasterError::HostHasNoPassphrase { host },
        reason @ (ProtoError::ServerNotAuthenticated
        | ProtoError::PassphraseIterations { .. }
        | ProtoError::PassphraseSalt { .. }) => MasterError::HostNotAuthenticated { host, reason },
        other => handshake_failed(&host, other.to_string()),
    }
}

fn handshake_failed(host: &str, reason: String) -> MasterError {
    MasterError::HostHandshake {
        host: host.to_owned(),
        reason,
    }
}
