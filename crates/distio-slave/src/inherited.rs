//! Finding the connection a distio master handed this process.
//!
//! The master creates a Unix socket pair and leaves one end open across `exec`, naming its
//! descriptor number in [`SLAVE_FD_ENV`]. Taking ownership of a raw descriptor, and removing
//! the variable once it is taken, need `unsafe`; this module is the only place the crate
//! uses it.
//!
//! Removing a variable from the environment is only sound while no other thread reads the
//! environment through libc: std's own functions (`std::env::var`, `set_var`, …) take a
//! lock, but C code calling `getenv` (a C library, the resolver behind `getaddrinfo`, time
//! zone or locale lookups) does not, and races the removal. [`take_connection`], called
//! first thing in `main` while the program has one thread, is the fully safe way;
//! `serve` without it removes the variable with the runtime's threads already running.
#![allow(unsafe_code)]

use distio_proto::local::SLAVE_FD_ENV;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::SlaveError;

/// The descriptor taken, or -1 before then.
static TAKEN: AtomicI32 = AtomicI32::new(-1);

/// The connection [`take_connection`] took, until `serve` uses it.
static HELD: Mutex<Option<UnixStream>> = Mutex::new(None);

fn held() -> MutexGuard<'static, Option<UnixStream>> {
    HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// True if a distio master started this process as a slave and its connection is still
/// there for [`SlaveProcess::serve`](crate::SlaveProcess::serve): the environment names a
/// descriptor that is an open socket, or [`take_connection`] took it and holds it.
///
/// Once `serve` has taken the connection, this returns `false`: the variable naming it
/// ([`SLAVE_FD_ENV`]) is gone from the environment, in this process and in any process the
/// slave starts.
///
/// A program that is both master and slave checks this first thing in `main`. With
/// `#[tokio::main]` the runtime's threads exist before `main`'s body runs; see
/// [`take_connection`] for the way that removes the variable before any thread exists.
///
/// ```no_run
/// # async fn master_main() {}
/// # async fn slave_main() {}
/// #[tokio::main]
/// async fn main() {
///     if distio_slave::launched_as_slave() {
///         slave_main().await
///     } else {
///         master_main().await
///     }
/// }
/// ```
pub fn launched_as_slave() -> bool {
    held().is_some() || inherited_fd().is_ok()
}

/// Takes the connection the master handed this process now, and holds it for
/// [`SlaveProcess::serve`](crate::SlaveProcess::serve). `Ok(true)`: this process is a
/// slave and the connection is held (now or by an earlier call); `Ok(false)`: no distio
/// master started it. Fails if the named descriptor is unusable or `serve` already took it.
///
/// Taking the connection marks it close-on-exec and removes [`SLAVE_FD_ENV`] from the
/// environment, so programs the slave starts neither inherit the link nor see the variable.
/// Removing a variable races any other thread reading the environment through libc (C code
/// calling `getenv`; std's own functions take a lock and are safe). Called first thing in
/// `main`, before a tokio runtime (or any other thread) is started, nothing can race it:
/// this is the fully safe way to start a slave. [`serve`](crate::SlaveProcess::serve) then
/// uses the connection held here.
///
/// ```no_run
/// use distio_slave::SlaveProcess;
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     // Still the only thread: the runtime's workers start below.
///     let is_slave = distio_slave::take_connection()?;
///     let runtime = tokio::runtime::Builder::new_multi_thread()
///         .enable_all()
///         .build()?;
///     if is_slave {
///         let slave = SlaveProcess::new()
///             .task("square", |n: u64, _| async move { Ok(n * n) });
///         runtime.block_on(slave.serve())?;
///     } else {
///         // The master's side: spawn slaves with distio-master.
///     }
///     Ok(())
/// }
/// ```
pub fn take_connection() -> Result<bool, SlaveError> {
    let mut held = held();
    if held.is_some() {
        return Ok(true);
    }
    match take_inherited_connection() {
        Ok(stream) => {
            *held = Some(stream);
            Ok(true)
        }
        Err(SlaveError::NotLaunchedAsSlave { .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

/// The connection `serve` uses: the one [`take_connection`] holds, or else the inherited
/// one, taken now.
pub(crate) fn connection_for_serve() -> Result<UnixStream, SlaveError> {
    if let Some(stream) = held().take() {
        return Ok(stream);
    }
    take_inherited_connection()
}

/// The inherited descriptor, checked to be an open socket.
fn inherited_fd() -> Result<RawFd, SlaveError> {
    let value = std::env::var(SLAVE_FD_ENV)
        .map_err(|_| SlaveError::NotLaunchedAsSlave { env: SLAVE_FD_ENV })?;
    let bad = |reason: &str| SlaveError::BadInheritedConnection {
        env: SLAVE_FD_ENV,
        fd: value.clone(),
        reason: reason.to_owned(),
    };
    let fd: RawFd = value
        .trim()
        .parse()
        .map_err(|_| bad("not a descriptor number"))?;
    if fd < 0 {
        return Err(bad("not a descriptor number"));
    }
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes only into the buffer we pass, which is large enough for a
    // `stat`; an fd that is not open makes it fail with EBADF rather than misbehave.
    let rc = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(bad("it is not open"));
    }
    // SAFETY: fstat returned 0, so it filled the whole buffer.
    let stat = unsafe { stat.assume_init() };
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(bad("it is not a socket"));
    }
    Ok(fd)
}

/// Takes ownership of the inherited connection. Succeeds at most once per process.
///
/// Once it is taken, the descriptor is close-on-exec and [`SLAVE_FD_ENV`] is gone from this
/// process's environment, so no program the slave starts inherits the link or mistakes an
/// unrelated descriptor for one.
fn take_inherited_connection() -> Result<UnixStream, SlaveError> {
    let already_taken = |fd: RawFd| SlaveError::BadInheritedConnection {
        env: SLAVE_FD_ENV,
        fd: fd.to_string(),
        reason: "it was already taken by an earlier serve() in this process".to_owned(),
    };
    // The variable is gone once taken: say so rather than "not launched as a slave".
    let taken = TAKEN.load(Ordering::SeqCst);
    if taken >= 0 {
        return Err(already_taken(taken));
    }
    let fd = inherited_fd()?;
    if let Err(taken) = TAKEN.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst) {
        return Err(already_taken(taken));
    }
    // SAFETY: fcntl with F_SETFD only changes the flags of descriptor `fd`, which is open
    // (checked above); it touches no memory of ours. Marking it close-on-exec keeps
    // processes this slave starts from inheriting the master's link.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    if rc == -1 {
        return Err(SlaveError::BadInheritedConnection {
            env: SLAVE_FD_ENV,
            fd: fd.to_string(),
            reason: format!(
                "it could not be made close-on-exec: {}",
                std::io::Error::last_os_error()
            ),
        });
    }
    // SAFETY: std's environment functions all take std's own environment lock, so this
    // cannot race `std::env::var`/`set_var` anywhere in the process. What remains is code
    // outside std (a C library) calling libc `getenv` on another thread at this moment.
    // Through `take_connection` called first thing in `main`, as its docs ask, there is no
    // other thread; through `serve` alone there may be, which `serve` documents as its
    // remaining hazard. Nothing in this crate keeps a pointer into the environment.
    unsafe { std::env::remove_var(SLAVE_FD_ENV) };
    // SAFETY: `fd` is an open socket (checked above) that nothing else in this process
    // owns: the master passed it for this runtime alone, and `TAKEN` makes sure it is
    // wrapped only once, so it is closed exactly once, by the returned stream.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    stream
        .set_nonblocking(true)
        .map_err(distio_proto::ProtoError::Io)?;
    Ok(stream)
}
