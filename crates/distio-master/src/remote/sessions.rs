//! A master's sessions, one per host, opened on first use and reused.

use distio_proto::remote::SessionCodec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::connect::connect;
use super::host::Host;
use super::session::Session;
use crate::MasterError;
use crate::sync::lock;

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Session>>>>;

/// The sessions of one master, by host.
#[derive(Default)]
pub(crate) struct Sessions {
    hosts: Mutex<HashMap<Host, Slot>>,
}

impl Sessions {
    /// The session with `host` as it is, without opening one: `None` when there is none
    /// or one is being opened now.
    pub(crate) fn current(&self, host: &Host) -> Option<Arc<Session>> {
        let slot = Arc::clone(lock(&self.hosts).get(host)?);
        let slot = slot.try_lock().ok()?;
        slot.clone()
    }

    /// The live session with `host`, opening one if there is none. Concurrent callers for
    /// one host share one connection attempt.
    pub(crate) async fn get(
        &self,
        host: &Host,
        codec: SessionCodec,
    ) -> Result<Arc<Session>, MasterError> {
        let slot = Arc::clone(lock(&self.hosts).entry(host.clone()).or_default());
        let mut slot = slot.lock().await;
        if let Some(session) = slot.as_ref()
            && !session.is_lost()
        {
            return Ok(Arc::clone(session));
        }
        let name = format!("distio-master pid {}", std::process::id());
        let (ws, client, welcome, keys) = connect(host, codec, &name).await?;
        tracing::debug!(
            host = %host,
            server = %welcome.server,
            capacity = welcome.capacity,
            "session opened"
        );
        let session = Session::start(host.clone(), ws, client, &welcome, keys);
        *slot = Some(Arc::clone(&session));
        Ok(session)
    }
}
