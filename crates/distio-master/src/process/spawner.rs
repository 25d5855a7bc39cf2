//! Forks every local slave from one thread that lives as long as the process.
//!
//! A slave's parent-death signal (`PR_SET_PDEATHSIG`) fires when the *thread* that forked
//! it ends, not the process: a slave forked from a short-lived thread (a plain thread with
//! its own runtime, a `spawn_blocking` thread tokio retires when idle) would be killed
//! with that thread. So every fork happens on the spawner thread, which never ends; async
//! callers hand it their command over a bounded channel and await the reply.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::reaper::{self, ProcessGroup};
use super::worker::Worker;

/// Spawn requests waiting for the spawner thread (callers beyond that wait to send).
const QUEUED: usize = 64;

static SPAWNER: Worker<Job> = Worker::new("distio-spawner", QUEUED, run);

struct Job {
    command: Command,
    /// Descriptors the child inherits: open until the fork is done, closed after.
    inherited: Vec<Arc<OwnedFd>>,
    /// The caller's runtime, which watches the child.
    runtime: Handle,
    reply: oneshot::Sender<io::Result<(Child, ProcessGroup)>>,
}

/// Starts `command` (which must start the child in its own process group) on the spawner
/// thread. `inherited` stays open until the child has started; the child's process group
/// is listed with the reaper.
pub(crate) async fn spawn(
    command: Command,
    inherited: Vec<Arc<OwnedFd>>,
) -> io::Result<(Child, ProcessGroup)> {
    let runtime = Handle::try_current().map_err(io::Error::other)?;
    let (reply, answer) = oneshot::channel();
    let gone = || io::Error::other("the distio spawner thread is gone");
    SPAWNER
        .sender()?
        .send(Job {
            command,
            inherited,
            runtime,
            reply,
        })
        .await
        .map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

fn run(mut jobs: mpsc::Receiver<Job>) {
    while let Some(mut job) = jobs.blocking_recv() {
        // Forked from here too, so its parent-death signal is tied to this thread.
        reaper::start_once();
        let _runtime = job.runtime.enter();
        // A panic here (tokio panics when the caller's runtime has no I/O driver) must not
        // end this thread: every slave forked from it would die with it.
        let command = &mut job.command;
        let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            command.spawn().map(|child| {
                let group = ProcessGroup::led_by(child.id());
                (child, group)
            })
        }))
        .unwrap_or_else(|_| {
            Err(io::Error::other(
                "starting the process panicked; is the runtime built with its I/O driver \
                 enabled (`enable_all`)?",
            ))
        });
        drop(job.inherited);
        // A caller that gave up drops the reply: that kills the child and its group.
        drop(job.reply.send(spawned));
    }
}
