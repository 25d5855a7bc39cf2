//! Knocking on a down host until it answers: a bare session handshake, then goodbye.

use distio_proto::remote::{SessionCodec, Status};
use std::sync::Weak;
use std::time::Duration;

use super::Inner;
use super::backoff::Backoff;
use crate::remote::connect;

/// How long a probe's goodbye may take.
const GOODBYE_LIMIT: Duration = Duration::from_secs(1);

/// Starts the probe of member `index` (owned by the member: aborted when the cluster goes).
pub(super) fn start(inner: &std::sync::Arc<Inner>, index: usize) {
    let Some(member) = inner.members.get(index) else {
        return;
    };
    let weak = std::sync::Arc::downgrade(inner);
    let backoff = Backoff::new(inner.backoff.0, inner.backoff.1);
    let task = tokio::spawn(run(weak, index, backoff));
    let mut state = crate::sync::lock(&member.state);
    if let Some(old) = state.probe.replace(task.abort_handle()) {
        old.abort();
    }
}

async fn run(inner: Weak<Inner>, index: usize, mut backoff: Backoff) {
    loop {
        tokio::time::sleep(backoff.next_delay()).await;
        // Only a weak hold across the wait: a dropped cluster ends its probes.
        let host = match inner.upgrade() {
            Some(inner) => match inner.members.get(index) {
                Some(member) => member.host.clone(),
                None => return,
            },
            None => return,
        };
        match knock(&host).await {
            Ok(status) => {
                if let Some(inner) = inner.upgrade()
                    && let Some(member) = inner.members.get(index)
                {
                    member.answered(status);
                }
                return;
            }
            Err(err) => tracing::debug!(host = %host, "probe: still down: {err}"),
        }
    }
}

/// Opens a session with `host` and closes it: what its server reports, or why not.
async fn knock(host: &crate::Host) -> Result<Status, crate::MasterError> {
    let name = format!("distio-master pid {} probe", std::process::id());
    let (mut ws, _client, welcome, _keys) = connect(host, SessionCodec::new(), &name).await?;
    let _ = tokio::time::timeout(GOODBYE_LIMIT, ws.close(None)).await;
    Ok(Status::from(&welcome))
}
