//! Starting a slave on a host: the spawn request, and the link over its channel.

use distio_proto::SlaveId;
use distio_proto::remote::Spawn;
use std::sync::Arc;

use super::RemoteTarget;
use super::channel::{ChannelStream, OutputRoute, RemoteProcess};
use super::outbox::RemoteParts;
use super::sessions::Sessions;
use crate::link::LinkKind;
use crate::spawn::Captured;
use crate::{Link, MasterError, READY_TIMEOUT, SpawnOptions};

/// A remote slave that started, before the master wires it up.
pub(crate) struct RemoteChild {
    pub(crate) link: Link,
    pub(crate) pid: u32,
    pub(crate) server_id: SlaveId,
    pub(crate) process: Arc<RemoteProcess>,
    pub(crate) captured: Option<Arc<Captured>>,
}

/// Asks `target`'s host for a slave and returns it once started.
pub(crate) async fn spawn_remote(
    sessions: &Sessions,
    target: &RemoteTarget,
    options: &SpawnOptions,
    id: SlaveId,
    label: &str,
    codec: distio_proto::FrameCodec,
) -> Result<RemoteChild, MasterError> {
    if !options.process.env.is_empty() || options.process.current_dir.is_some() {
        return Err(MasterError::RemoteOption {
            option: if options.process.env.is_empty() {
                "current_dir"
            } else {
                "env"
            },
        });
    }
    let args = options
        .process
        .args
        .iter()
        .map(|arg| {
            arg.to_str()
                .map(str::to_owned)
                .ok_or(MasterError::RemoteOption {
                    option: "a non-UTF-8 argument",
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let codec = distio_proto::remote::SessionCodec::with_max_frame_len(codec.max_frame_len());
    let session = sessions.get(&target.host, codec).await?;
    let spawn = Spawn {
        channel: 0,
        slave: id,
        script: target.script.clone(),
        args,
        alias: options.alias.clone().unwrap_or_default(),
        group: options.group.clone(),
    };
    let route = OutputRoute::new(options.output, label);
    let captured = route.captured();
    let (spawned, channel, frames) = session.spawn(spawn, route, READY_TIMEOUT).await?;
    let link = Link {
        kind: LinkKind::Remote {
            parts: RemoteParts {
                tx: session.sender(),
                codec: session.codec,
                channel: channel.channel,
            },
            stream: Box::pin(ChannelStream::new(frames, session.codec)),
        },
    };
    Ok(RemoteChild {
        link,
        pid: spawned.pid,
        server_id: spawned.server_id,
        process: Arc::new(RemoteProcess { session, channel }),
        captured,
    })
}
