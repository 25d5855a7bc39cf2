//! One slave of a session, from its spawn to its exit: resolve the script, wait for a
//! place, start the process, relay it until it has exited and its socket and output have
//! ended, then report how it exited.
//!
//! What runs is the descriptor `script::resolve` checked (see `ProcessSpec::from_fd`),
//! with the server's allowlisted environment, in the root, as the configured user, with
//! the configured limits, in its own process group and (where cgroups work) its own
//! cgroup, killed as a whole when the slave ends. Nothing of how it runs comes from the
//! client: the spawn frame carries only the script's path and its arguments.

use distio_master::hosted::{HostedProcess, ProcessSpec};
use distio_proto::SlaveId;
use distio_proto::remote::{Channel, Exited, ServerSession, Spawn, SpawnFailure};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

use super::ServerState;
use super::lifetime::{self, Ending};
use super::outbox::Outbox;
use super::relay::{self, SlaveEnds, SlaveLink};
use super::script::{self, Program, Refusal};
use super::slots::{Permit, SlotError};
use crate::containment::SlaveCgroup;

/// How long the socket and output of an exited slave are still relayed: what it wrote
/// before it ended gets through, but a process that left its group and kept them open
/// does not hold the channel forever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// What a session's slave task hands the session.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) channel: Channel,
    pub(crate) pid: u32,
    pub(crate) server_id: SlaveId,
    pub(crate) link: SlaveLink,
    /// Answer to let the slave's frames flow (after the spawned frame is queued); dropped
    /// to end it.
    pub(crate) go: oneshot::Sender<()>,
}

/// How a slave task ended.
#[derive(Debug)]
pub(crate) enum Finished {
    /// The slave did not start.
    Failed(SpawnFailure, String),
    /// The slave ran and exited.
    Exited(Exited),
    /// The session no longer wanted the slave.
    Abandoned,
}

/// What a slave task needs of its session.
#[derive(Clone, Debug)]
pub(crate) struct SessionParts {
    pub(crate) state: ServerState,
    pub(crate) session: Arc<Mutex<ServerSession>>,
    pub(crate) outbox: Outbox,
    pub(crate) started: mpsc::Sender<Started>,
    pub(crate) session_id: u64,
}

/// The life of the slave spawned by `spawn`.
pub(crate) async fn run(spawn: Spawn, parts: SessionParts) -> Finished {
    let channel = spawn.channel;
    let (hosted, permit, cgroup) = match start(&spawn, &parts.state).await {
        Ok(started) => started,
        Err(Refusal { kind, message }) => {
            parts.state.admin().metrics().spawn_refused(kind);
            tracing::debug!(script = ?spawn.script, reason = ?kind, "spawn refused");
            return Finished::Failed(kind, message);
        }
    };
    let pid = hosted.handle.pid();
    let server_id = parts.state.next_server_id();
    let entry = parts.state.admin().slave_started(
        server_id,
        parts.session_id,
        &spawn.script,
        hosted.handle.signaller(),
    );
    tracing::info!(
        session = parts.session_id,
        slave = server_id,
        channel,
        pid,
        script = %spawn.script,
        alias = %spawn.alias,
        "slave started"
    );
    let settings = parts.state.settings();
    let (link, ends) = SlaveLink::new(settings.slave_inbox_limit);
    let (go, going) = oneshot::channel();
    let started = Started {
        channel,
        pid,
        server_id,
        link,
        go,
    };
    if parts.started.send(started).await.is_err() || going.await.is_err() {
        // Dropping the process kills its group.
        return Finished::Abandoned;
    }
    let exited = relay_until_exit(hosted, channel, ends, &parts).await;
    // Whatever the slave left behind in its cgroup (a double-forked daemon) goes too.
    if let Some(cgroup) = cgroup {
        cgroup.end().await;
    }
    drop(permit);
    let (reason, ran) = entry.finish(exited.cause);
    tracing::info!(session = parts.session_id, slave = server_id, channel, pid, script = %spawn.script, code = ?exited.code, signal = ?exited.signal, reason, duration = ?ran, "slave ended");
    Finished::Exited(exited)
}

/// Resolves the script, waits for a place and starts the process.
async fn start(
    spawn: &Spawn,
    state: &ServerState,
) -> Result<(HostedProcess, Permit, Option<SlaveCgroup>), Refusal> {
    let settings = state.settings();
    let failed = |message: String| Refusal {
        kind: SpawnFailure::StartFailed,
        message,
    };
    let jail = settings
        .jail
        .clone()
        .ok_or_else(|| failed("the server was not built with its containment".to_owned()))?;
    let (interpreters, script) = (settings.interpreters.clone(), spawn.script.clone());
    let resolving = jail.clone();
    let program = tokio::task::spawn_blocking(move || {
        script::resolve(
            &resolving.root,
            &script,
            &interpreters,
            resolving.allow_world_writable,
        )
    })
    .await
    .map_err(|err| {
        failed(format!(
            "resolving the script `{}` failed: {err}",
            spawn.script
        ))
    })??;
    let queued_at = std::time::Instant::now();
    let permit = state
        .slots()
        .acquire(settings.queue_timeout)
        .await
        .map_err(|err| match err {
            SlotError::QueueFull => Refusal {
                kind: SpawnFailure::QueueFull,
                message: format!(
                    "the server runs its limit of {} slaves and {} more spawns already wait; \
                     try again later",
                    state.slots().capacity(),
                    settings.queue_limit
                ),
            },
            SlotError::Timeout => Refusal {
                kind: SpawnFailure::QueueTimeout,
                message: format!(
                    "`{}` waited {:?} for one of the server's {} places without getting one",
                    spawn.script,
                    settings.queue_timeout,
                    state.slots().capacity()
                ),
            },
        })?;
    state.admin().metrics().queue_waited(queued_at.elapsed());
    let cannot_start = |err: &dyn std::fmt::Display| {
        failed(format!(
            "the server could not start `{}`: {err}",
            spawn.script
        ))
    };
    let spec = match program {
        Program::Direct(file) => ProcessSpec::from_fd(file)
            .map_err(|err| cannot_start(&err))?
            .arg0(&spawn.script),
        Program::Interpreted {
            interpreter,
            script,
        } => ProcessSpec::new(interpreter)
            .arg_fd(script)
            .map_err(|err| cannot_start(&err))?,
    };
    let mut spec = spec
        .args(&spawn.args)
        .current_dir(jail.root.path())
        .limits(jail.limits);
    for (key, value) in state.env() {
        spec = spec.env(key, value);
    }
    if let Some((uid, gid)) = jail.user {
        spec = spec.run_as(uid, gid);
    }
    let cgroup = match jail.slave_cgroup() {
        None => None,
        Some(Ok((cgroup, procs))) => {
            spec = spec.join_cgroup(procs);
            Some(cgroup)
        }
        Some(Err(err)) => return Err(cannot_start(&err)),
    };
    let hosted = spec.start().await.map_err(|err| cannot_start(&err))?;
    Ok((hosted, permit, cgroup))
}

/// Relays the slave until it has exited and its socket and output have ended (or
/// [`DRAIN_AFTER_EXIT`] has passed since its exit).
async fn relay_until_exit(
    hosted: HostedProcess,
    channel: Channel,
    ends: SlaveEnds,
    parts: &SessionParts,
) -> Exited {
    let HostedProcess {
        socket,
        stdout,
        stderr,
        mut handle,
    } = hosted;
    let settings = parts.state.settings();
    let signaller = handle.signaller();
    let ending = Ending::default();
    let (exit_seen, exit_rx) = watch::channel(false);
    let (reader, writer) = socket.into_split();
    let exit = async {
        let status = handle.wait().await;
        exit_seen.send_replace(true);
        status
    };
    let streams = async {
        let relay = relay::run(
            reader,
            writer,
            ends.inbox,
            channel,
            &parts.session,
            &parts.outbox,
            settings.max_frame_len,
            &signaller,
            parts.state.admin().metrics(),
        );
        let output = super::output::pump(stdout, stderr, channel, &parts.session, &parts.outbox);
        let drained = async {
            tokio::join!(relay, output);
        };
        let mut exit_rx = exit_rx;
        let late = async move {
            let _ = exit_rx.wait_for(|&exited| exited).await;
            tokio::time::sleep(DRAIN_AFTER_EXIT).await;
        };
        tokio::select! {
            () = drained => {}
            () = late => {}
        }
    };
    let control = lifetime::control(
        ends.commands,
        &signaller,
        settings.kill_slaves_after,
        settings.kill_grace,
        &ending,
    );
    let main = async { tokio::join!(exit, streams).0 };
    let status = tokio::select! {
        status = main => status,
        never = control => match never {},
    };
    let (code, signal) = match &status {
        Ok(status) => (status.code(), status.signal()),
        Err(err) => {
            tracing::warn!(channel, "could not wait for a slave: {err}");
            (None, None)
        }
    };
    Exited {
        channel,
        code,
        signal,
        cause: ending.cause(signal),
    }
}
