//! Finding the connection a distio master handed this process.
//!
//! The master creates a Unix socket pair and leaves one end open across `exec`, naming its
//! descriptor number in [`SLAVE_FD_ENV`]. Taking ownership of a raw descriptor, and removing
//! the variable once it is taken, need `unsafe`; this module is the only place the crate
//! uses it.
#![allow(unsafe_code)]

use distio_proto::local::SLAVE_FD_ENV;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::SlaveError;

/// True if a distio master started this process as a slave: the environment names a
/// descriptor, and that descriptor is an open socket.
///
/// Once [`SlaveProcess::serve`](crate::SlaveProcess::serve) has taken the connection, the
/// variable naming it ([`SLAVE_FD_ENV`]) is removed from the environment, so this returns
/// `false` from then on, in this process and in any process the slave starts.
///
/// A program that is both master and slave checks this first thing in `main`:
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
    inherited_fd().is_ok()
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
pub(crate) fn take_inherited_connection() -> Result<UnixStream, SlaveError> {
    /// The descriptor taken, or -1 before then.
    static TAKEN: AtomicI32 = AtomicI32::new(-1);
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
    // outside std (a C library) calling libc `getenv` on another thread at this moment;
    // that is why `SlaveProcess::serve` documents that it should be called before starting
    // threads that read the environment through libc. Nothing else in this crate keeps a
    // pointer into the environment.
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
