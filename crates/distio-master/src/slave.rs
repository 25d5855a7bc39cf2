//! The master's handle to one slave.

use distio_proto::{Control, Frame, Payload, SlaveId};
use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::task::AbortHandle;

use crate::events::Events;
use crate::slave_core::{SlaveCore, Stop};
use crate::spawn::Captured;
use crate::sync::lock;
use crate::{CapturedOutput, EndReason, Exec, Location, MasterError, Signal, SlaveState, Timeout};

/// The master's handle to one slave. Cheap to clone: every clone is the same slave.
///
/// The slave lives while its master holds it or a handle to it exists; when the last one
/// goes, its process is killed. The master lists a slave until it is closed, shut down or
/// killed, or its link ends, and holds it, unlisted, until it has ended. Use
/// [`close`](Self::close) or [`shutdown`](Self::shutdown) to end it gracefully.
///
/// ```no_run
/// use distio_master::{Answer, Master, SpawnOptions};
/// use std::time::Duration;
///
/// # async fn demo() -> Result<(), distio_master::MasterError> {
/// let master = Master::new();
/// let slave = master.spawn(SpawnOptions::new("./target/debug/worker").alias("w")).await?;
/// let squared: u64 = slave.exec("square", &12u64).await?.value()?;
/// assert_eq!(squared, 144);
/// let late = slave.exec("slow", &()).timeout(Duration::from_secs(1)).await?;
/// println!("{:?}", late.error());
/// slave.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Slave {
    inner: Arc<SlaveInner>,
}

struct SlaveInner {
    core: Arc<SlaveCore>,
    tasks: Vec<AbortHandle>,
    captured: Option<Arc<Captured>>,
}

impl Drop for SlaveInner {
    fn drop(&mut self) {
        // Ends the link tasks and the process watcher; dropping the watcher's child handle
        // kills the process if it is still running.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Slave {
    pub(crate) fn new(
        core: Arc<SlaveCore>,
        tasks: Vec<AbortHandle>,
        captured: Option<Arc<Captured>>,
    ) -> Self {
        Slave {
            inner: Arc::new(SlaveInner {
                core,
                tasks,
                captured,
            }),
        }
    }

    pub(crate) fn core(&self) -> &Arc<SlaveCore> {
        &self.inner.core
    }

    /// The slave's id: unique within its master, never reused.
    pub fn id(&self) -> SlaveId {
        self.core().id
    }

    /// The slave's alias, if it was given one.
    pub fn alias(&self) -> Option<&str> {
        self.core().alias.as_deref()
    }

    /// The slave's group, if any.
    pub fn group(&self) -> Option<String> {
        lock(&self.core().group).clone()
    }

    /// Moves the slave into `group` (or out of any with `None`).
    pub fn set_group(&self, group: Option<String>) {
        *lock(&self.core().group) = group;
    }

    /// True if the slave is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        lock(&self.core().group).as_deref() == Some(group)
    }

    /// The operating-system process id, once known.
    pub fn pid(&self) -> Option<u32> {
        self.core().status.borrow().pid
    }

    /// Where the slave runs.
    pub fn location(&self) -> &Location {
        &self.core().location
    }

    /// The executable, for a local slave.
    pub fn path(&self) -> Option<&Path> {
        match &self.core().location {
            Location::Local { path } => Some(path),
            Location::Remote { .. } | Location::Attached { .. } => None,
        }
    }

    /// True for a process this master started on this machine.
    pub fn is_local(&self) -> bool {
        matches!(self.core().location, Location::Local { .. })
    }

    /// True for a slave reached over a link rather than started on this machine: a slave
    /// on a `distio-serve` host ([`SpawnOptions::remote`](crate::SpawnOptions::remote)) or
    /// one [attached](crate::Master::attach) over a link of the caller's.
    pub fn is_remote(&self) -> bool {
        !self.is_local()
    }

    /// The host of a slave started with [`SpawnOptions::remote`](crate::SpawnOptions::remote),
    /// as `ws://[user@]host:port`.
    pub fn host(&self) -> Option<&str> {
        match &self.core().location {
            Location::Remote { host, .. } => Some(host),
            _ => None,
        }
    }

    /// The slave's default request timeout ([`Timeout::Inherit`]: the master's applies).
    ///
    /// ```no_run
    /// use distio_master::Timeout;
    /// # fn demo(slave: distio_master::Slave) {
    /// assert_eq!(slave.default_timeout(), Timeout::Inherit);
    /// # }
    /// ```
    pub fn default_timeout(&self) -> Timeout {
        self.core().defaults.timeout()
    }

    /// Sets the slave's default request timeout: a [`Duration`], [`Timeout::Never`] (no
    /// timeout even if the master has one) or [`Timeout::Inherit`] (the master's). A
    /// request's own timeout overrides it.
    ///
    /// ```no_run
    /// use distio_master::Timeout;
    /// use std::time::Duration;
    /// # fn demo(slave: distio_master::Slave) {
    /// slave.set_default_timeout(Duration::from_secs(5));
    /// slave.set_default_timeout(Timeout::Never);
    /// # }
    /// ```
    pub fn set_default_timeout(&self, timeout: impl Into<Timeout>) {
        self.core().defaults.set_timeout(timeout.into());
    }

    /// The slave's default catch-all setting (`None`: the master's applies).
    pub fn default_catch_all(&self) -> Option<bool> {
        self.core().defaults.catch_all()
    }

    /// Sets the slave's default catch-all setting (`true`, `false`, or `None` to defer to
    /// the master). A request's own setting overrides it.
    ///
    /// ```no_run
    /// # fn demo(slave: distio_master::Slave) {
    /// slave.set_default_catch_all(true);
    /// slave.set_default_catch_all(None);
    /// # }
    /// ```
    pub fn set_default_catch_all(&self, catch_all: impl Into<Option<bool>>) {
        self.core().defaults.set_catch_all(catch_all.into());
    }

    /// Requests sent to the slave.
    pub fn sent(&self) -> u64 {
        self.core().sent.load(Ordering::Relaxed)
    }

    /// Responses received from the slave.
    pub fn received(&self) -> u64 {
        self.core().received.load(Ordering::Relaxed)
    }

    /// Requests waiting for a response.
    pub fn pending(&self) -> usize {
        self.core().pending_count()
    }

    /// True if no request is waiting for a response (from the master's point of view).
    pub fn is_idle(&self) -> bool {
        self.pending() == 0
    }

    /// True if some request is waiting for a response.
    pub fn is_busy(&self) -> bool {
        !self.is_idle()
    }

    /// Where the slave is in its life.
    pub fn state(&self) -> SlaveState {
        self.core().state()
    }

    /// True until the slave is closed, shut down or killed, or its link ends.
    pub fn is_connected(&self) -> bool {
        self.state() != SlaveState::Ended && !self.core().is_stopped()
    }

    /// True once the slave has ended.
    pub fn has_exited(&self) -> bool {
        self.state() == SlaveState::Ended
    }

    /// Why the slave takes no more requests: `None` while it does; why the master stopped
    /// it ([`close`](Self::close), [`shutdown`](Self::shutdown), [`kill`](Self::kill)) from
    /// that moment; why its link ended once it has (the reason it was stopped, unless it
    /// broke the protocol meanwhile).
    ///
    /// ```no_run
    /// use distio_master::{EndReason, Signal};
    /// # async fn demo(slave: distio_master::Slave) -> Result<(), distio_master::MasterError> {
    /// assert_eq!(slave.end_reason(), None);
    /// slave.kill(Signal::TERM).await?;
    /// assert_eq!(slave.end_reason(), Some(EndReason::Killed(Signal::TERM)));
    /// # Ok(()) }
    /// ```
    pub fn end_reason(&self) -> Option<EndReason> {
        self.core().end_reason()
    }

    /// How the process exited, once it has (local slaves only).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.core().status.borrow().exit
    }

    /// The task names the slave announced in its handshake (empty until it is ready).
    pub fn task_names(&self) -> Vec<String> {
        self.core().status.borrow().tasks.to_vec()
    }

    /// Output kept for a slave started with [`Output::Capture`](crate::Output::Capture).
    pub fn captured_output(&self) -> Option<CapturedOutput> {
        self.inner.captured.as_ref().map(|c| c.snapshot())
    }

    /// Waits until the slave has finished its handshake, at most [`READY_TIMEOUT`]; see
    /// [`ready_within`](Self::ready_within) to choose the limit.
    ///
    /// [`READY_TIMEOUT`]: crate::READY_TIMEOUT
    pub async fn ready(&self) -> Result<(), MasterError> {
        self.ready_within(crate::READY_TIMEOUT).await
    }

    /// Waits at most `limit` until the slave has finished its handshake. Fails with
    /// [`MasterError::NotReady`] if it ends first or has not answered in time (it is left
    /// running: close or kill it if it should not stay).
    pub async fn ready_within(&self, limit: Duration) -> Result<(), MasterError> {
        let not_ready = |end: Option<EndReason>| MasterError::NotReady {
            slave: self.id(),
            end,
            limit,
        };
        match tokio::time::timeout(limit, self.core().handshake_done()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(not_ready(Some(self.core().gone().reason))),
            Err(_) => Err(not_ready(None)),
        }
    }

    /// Waits until the slave has ended; returns how its process exited (local slaves).
    pub async fn exited(&self) -> Option<ExitStatus> {
        self.core().ended().await;
        self.exit_status()
    }

    /// Builds a request for the slave to run `task` on `data`; await the returned [`Exec`]
    /// (after setting a timeout or catch-all on it, if wanted) for the
    /// [`Response`](crate::Response).
    ///
    /// The data is encoded here, but **nothing is sent until the `Exec` is first polled**
    /// (awaited, joined or spawned): an `Exec` is a lazy future, and one that is dropped
    /// unpolled sends nothing. See [`Exec`] for running several requests at once.
    ///
    /// ```no_run
    /// use distio_master::prelude::*;
    /// # async fn demo(slave: Slave) -> Result<(), MasterError> {
    /// let request = slave.exec("square", &9u64); // built, not sent
    /// let n: u64 = request.await?.value()?; // sent here, then answered
    /// assert_eq!(n, 81);
    /// # Ok(()) }
    /// ```
    pub fn exec<T: Serialize + ?Sized>(&self, task: impl Into<String>, data: &T) -> Exec {
        Exec::new(
            self.clone(),
            task.into(),
            Payload::encode(data).map_err(MasterError::Encode),
        )
    }

    /// Like [`exec`](Self::exec) with data that is already encoded (sent without copying).
    pub fn exec_payload(&self, task: impl Into<String>, payload: Payload) -> Exec {
        Exec::new(self.clone(), task.into(), Ok(payload))
    }

    /// Sends a ping and waits for the slave's answer, at most [`PING_TIMEOUT`]; returns the
    /// round-trip time. See [`ping_within`](Self::ping_within) to choose the limit.
    ///
    /// [`PING_TIMEOUT`]: crate::PING_TIMEOUT
    pub async fn ping(&self) -> Result<Duration, MasterError> {
        self.ping_within(crate::PING_TIMEOUT).await
    }

    /// Sends a ping and waits at most `limit` for the slave's answer; returns the
    /// round-trip time. A slave whose serving loop is blocked (a handler that never yields)
    /// does not answer: the result is then [`MasterError::PingTimedOut`].
    pub async fn ping_within(&self, limit: Duration) -> Result<Duration, MasterError> {
        let core = self.core();
        let unavailable = || MasterError::Unavailable {
            slave: self.id(),
            end: core.gone().reason,
        };
        if self.state() == SlaveState::Ended {
            return Err(unavailable());
        }
        let nonce = core.next_request_id();
        let answer = core.ping_waiter(nonce);
        // However this ends (answered, timed out, or dropped by the caller), the nonce
        // leaves the table of pings waiting for an answer.
        struct Forget<'a>(&'a crate::slave_core::SlaveCore, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget_ping(self.1);
            }
        }
        let _forget = Forget(core, nonce);
        let started = Instant::now();
        let _ = core.send_frame(&Frame::Control(Control::Ping(nonce)));
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(_)) => Err(unavailable()),
            Err(_) => Err(MasterError::PingTimedOut {
                slave: self.id(),
                limit,
            }),
        }
    }

    /// Closes the slave now: it takes no new requests, runs its close hook and exits;
    /// requests still pending fail with a `Closed` error ([`EndReason::Closed`]). If it has
    /// not exited within its close grace (default 5 s) it is killed. Returns how the process
    /// exited (`None` for a slave that is not a local process, or one that did not end
    /// even after the kill). Never fails today; it returns a `Result` like every ending
    /// ([`shutdown`](Self::shutdown), [`kill`](Self::kill), and the array and master
    /// versions).
    ///
    /// The slave leaves its master's lists ([`Master::all`](crate::Master::all) and every
    /// query) and frees its alias as soon as this is called, not when it has exited.
    ///
    /// ```no_run
    /// # async fn demo(slave: distio_master::Slave) -> Result<(), distio_master::MasterError> {
    /// let status = slave.close().await?;
    /// println!("exited: {status:?}");
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) -> Result<Option<ExitStatus>, MasterError> {
        let core = self.core();
        core.stop(Stop::Closed);
        let _ = core.send_frame(&Frame::Control(Control::Close));
        if tokio::time::timeout(core.close_grace, core.ended())
            .await
            .is_err()
        {
            tracing::warn!(
                slave = core.id,
                "{core} did not exit within {:?} of close; killing it",
                core.close_grace
            );
            core.force_end();
            // A kill is answered within moments; if even that fails (the process is not
            // ours to signal), give up waiting rather than hang.
            let settle = crate::slave_core::EXIT_GRACE * 3;
            if tokio::time::timeout(settle, core.ended()).await.is_err() {
                tracing::warn!(
                    slave = core.id,
                    "{core} did not end within {settle:?} of a kill"
                );
            }
        }
        Ok(self.exit_status())
    }

    /// Shuts the slave down gracefully: it takes no new requests, finishes the ones
    /// pending (their responses arrive as usual), then closes. Returns how it exited, as
    /// [`close`](Self::close) does.
    ///
    /// The slave leaves its master's lists and frees its alias as soon as this is called:
    /// a new slave can take the alias while this one finishes its pending requests.
    ///
    /// Bounded: if the slave has not ended within its shutdown grace (default
    /// [`DEFAULT_SHUTDOWN_GRACE`], see
    /// [`SpawnOptions::shutdown_grace`](crate::SpawnOptions::shutdown_grace)), it is
    /// closed as by [`close`](Self::close) — its pending requests fail, and it is killed if
    /// it does not exit within its close grace.
    ///
    /// [`DEFAULT_SHUTDOWN_GRACE`]: crate::DEFAULT_SHUTDOWN_GRACE
    ///
    /// ```no_run
    /// # async fn demo(slave: distio_master::Slave) -> Result<(), distio_master::MasterError> {
    /// let status = slave.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> Result<Option<ExitStatus>, MasterError> {
        let core = self.core();
        core.stop(Stop::ShutDown);
        let _ = core.send_frame(&Frame::Control(Control::Shutdown));
        if tokio::time::timeout(core.shutdown_grace, core.ended())
            .await
            .is_ok()
        {
            return Ok(self.exit_status());
        }
        tracing::warn!(
            slave = core.id,
            "{core} did not finish its pending requests within {:?} of shutdown; closing it",
            core.shutdown_grace
        );
        self.close().await
    }

    /// Sends `signal` to the slave process and takes no more requests for it (whatever the
    /// signal: it is refused with [`EndReason::Killed`]), then waits, at most its close
    /// grace (see [`SpawnOptions::close_grace`](crate::SpawnOptions::close_grace)), for it
    /// to end. Returns how it exited, as [`close`](Self::close) does: `None` if it has not
    /// ended by then (a signal it ignores or survives; it is not escalated — use
    /// [`Signal::KILL`] for a sure end) or is not a local process. Fails with
    /// [`MasterError::Signal`] if the signal could not be sent.
    ///
    /// The slave leaves its master's lists and frees its alias at once: an immediate
    /// [`Master::spawn`](crate::Master::spawn) can reuse the alias. This handle stays
    /// usable ([`state`](Self::state), [`exit_status`](Self::exit_status),
    /// [`exited`](Self::exited)), and the master keeps the slave, unlisted, until it has
    /// ended.
    ///
    /// ```no_run
    /// use distio_master::{Master, Signal, SpawnOptions};
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let master = Master::new();
    /// let slave = master.spawn(SpawnOptions::new("./worker").alias("w")).await?;
    /// let status = slave.kill(Signal::KILL).await?;
    /// assert!(status.is_some());
    /// assert!(master.all().is_empty());
    /// let _again = master.spawn(SpawnOptions::new("./worker").alias("w")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn kill(&self, signal: Signal) -> Result<Option<ExitStatus>, MasterError> {
        self.send_kill(signal)?;
        let core = self.core();
        let _ = tokio::time::timeout(core.close_grace, core.ended()).await;
        Ok(self.exit_status())
    }

    /// Stops the slave and sends `signal`, without waiting.
    pub(crate) fn send_kill(&self, signal: Signal) -> Result<(), MasterError> {
        let core = self.core();
        core.stop(Stop::Killed(signal));
        match core.location {
            Location::Local { .. } | Location::Remote { .. } => {
                core.signal(signal).map_err(|source| MasterError::Signal {
                    slave: core.id,
                    source,
                })
            }
            Location::Attached { .. } => {
                core.force_end();
                Ok(())
            }
        }
    }

    /// Subscribes to the slave's events named `name`.
    pub fn subscribe(&self, name: impl Into<String>) -> Events {
        let (events, sub) = Events::new(Some(name.into()));
        self.core().subscribe(sub);
        events
    }

    /// Subscribes to all of the slave's events.
    pub fn subscribe_all(&self) -> Events {
        let (events, sub) = Events::new(None);
        self.core().subscribe(sub);
        events
    }

    pub(crate) fn subscribe_with(&self, sub: crate::events::Subscriber) {
        self.core().subscribe(sub);
    }
}

impl PartialEq for Slave {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Slave {}

impl fmt::Display for Slave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self.core(), f)
    }
}

impl fmt::Debug for Slave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slave")
            .field("id", &self.id())
            .field("alias", &self.alias())
            .field("state", &self.state())
            .field("pending", &self.pending())
            .finish()
    }
}
