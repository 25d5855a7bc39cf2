//! The systemd readiness protocol (`sd_notify`), without libsystemd.
//!
//! Under a `Type=notify` unit, systemd passes the path of a datagram socket in
//! `NOTIFY_SOCKET` and waits for `READY=1` before it considers the service started. The
//! `distio-serve` binary sends `READY=1` once it listens, `STOPPING=1` when a signal starts
//! the drain, and `WATCHDOG=1` at half the interval systemd asks for in `WATCHDOG_USEC`
//! (when `WATCHDOG_PID` is unset or names this process).
//!
//! Everything here is best effort: with no `NOTIFY_SOCKET` (not started by systemd) there is
//! no [`Notifier`], and a failed send is returned to the caller, who logs it and carries on.
//! A notification never stops the server.
//!
//! Slaves never see these variables: they get a minimal environment (`PATH`, `LANG`, `HOME`),
//! so a slave cannot send notifications in the server's name.
//!
//! ```
//! use distio_serve::notify::Notifier;
//! use std::os::unix::net::UnixDatagram;
//!
//! // What systemd does: bind a datagram socket and name it in NOTIFY_SOCKET.
//! let dir = std::env::temp_dir().join(format!("notify-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("notify");
//! let _ = std::fs::remove_file(&path);
//! let systemd = UnixDatagram::bind(&path)?;
//!
//! let notifier = Notifier::from_socket_var(Some(path.as_os_str())).expect("a socket path");
//! notifier.ready()?;
//! let mut buf = [0u8; 64];
//! let n = systemd.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"READY=1");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The shortest watchdog ping interval honoured; a smaller `WATCHDOG_USEC` is raised to it so a
/// misconfigured unit cannot make the server spin.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(10);

/// A connection to systemd's notification socket.
///
/// Build it with [`Notifier::from_env`] (the binary) or [`Notifier::from_socket_var`]
/// (tests, or a program that read the variable itself). See the [module docs](self).
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// The address as given, for messages.
    shown: String,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("socket", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET`, or `None` when it is unset or cannot be used
    /// (see [`Notifier::from_socket_var`]).
    ///
    /// ```
    /// // Outside systemd there is usually no NOTIFY_SOCKET, and nothing to do.
    /// let notifier = distio_serve::notify::Notifier::from_env();
    /// if let Some(notifier) = notifier {
    ///     let _ = notifier.ready();
    /// }
    /// ```
    pub fn from_env() -> Option<Self> {
        Self::from_socket_var(std::env::var_os("NOTIFY_SOCKET").as_deref())
    }

    /// The notifier for a `NOTIFY_SOCKET` value: an absolute path (`/run/systemd/notify`) or an
    /// abstract-namespace name written with a leading `@`. `None` when the value is missing,
    /// empty, of another kind (e.g. `vsock:`), too long for a socket address, or when no
    /// datagram socket can be created; the reason is logged at debug level.
    ///
    /// ```
    /// use distio_serve::notify::Notifier;
    /// assert!(Notifier::from_socket_var(None).is_none());
    /// assert!(Notifier::from_socket_var(Some("relative/path".as_ref())).is_none());
    /// assert!(Notifier::from_socket_var(Some("@distio-doc-example".as_ref())).is_some());
    /// ```
    pub fn from_socket_var(value: Option<&OsStr>) -> Option<Self> {
        let value = value.filter(|v| !v.is_empty())?;
        let shown = value.to_string_lossy().into_owned();
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(value),
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            _ => {
                tracing::debug!(socket = %shown, "NOTIFY_SOCKET is neither a path nor an abstract name; not notifying systemd");
                return None;
            }
        };
        let addr = match addr {
            Ok(addr) => addr,
            Err(err) => {
                tracing::debug!(socket = %shown, %err, "NOTIFY_SOCKET cannot be used; not notifying systemd");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound() {
            Ok(socket) => socket,
            Err(err) => {
                tracing::debug!(%err, "cannot create a datagram socket; not notifying systemd");
                return None;
            }
        };
        // A full receive queue must not block the caller (an async task).
        if let Err(err) = socket.set_nonblocking(true) {
            tracing::debug!(%err, "cannot make the notify socket non-blocking; not notifying systemd");
            return None;
        }
        Some(Self {
            socket,
            addr,
            shown,
        })
    }

    /// Sends `state`, newline-separated `KEY=VALUE` assignments (see `sd_notify(3)`), in one
    /// datagram.
    ///
    /// ```
    /// # let notifier = distio_serve::notify::Notifier::from_socket_var(Some("@distio-doc-nobody".as_ref())).unwrap();
    /// // Nobody listens on this abstract name: the send fails, and the caller decides.
    /// assert!(notifier.notify("STATUS=idle").is_err());
    /// ```
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        if sent == state.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was cut short",
            ))
        }
    }

    /// `READY=1`: the service has started (call it once it listens).
    pub fn ready(&self) -> io::Result<()> {
        self.notify("READY=1")
    }

    /// `STOPPING=1`: the service has begun to stop.
    pub fn stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }

    /// `WATCHDOG=1`: the service is alive.
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    /// `STATUS=text`: a one-line status that `systemctl status` shows. Line breaks in `text`
    /// are replaced by spaces so they cannot start another assignment.
    pub fn status(&self, text: &str) -> io::Result<()> {
        self.notify(&format!("STATUS={}", text.replace(['\n', '\r'], " ")))
    }

    /// Where notifications go, as `NOTIFY_SOCKET` named it.
    pub fn socket_name(&self) -> &str {
        &self.shown
    }
}

/// How often to send `WATCHDOG=1`, from `$WATCHDOG_USEC` and `$WATCHDOG_PID` (see
/// [`watchdog_interval_from`]).
///
/// ```
/// // Outside systemd there is usually no watchdog.
/// let interval = distio_serve::notify::watchdog_interval();
/// assert!(interval.is_none_or(|i| !i.is_zero()));
/// ```
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var_os("WATCHDOG_USEC").as_deref(),
        std::env::var_os("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

/// How often to ping the watchdog: half of `usec` microseconds (at least 10 ms), or `None`
/// when there is no watchdog for process `my_pid` — `usec` unset, not a positive number, or
/// `pid` set to another process (as `sd_watchdog_enabled(3)` decides).
///
/// ```
/// use distio_serve::notify::watchdog_interval_from;
/// use std::time::Duration;
/// let half = Some(Duration::from_secs(15));
/// assert_eq!(watchdog_interval_from(Some("30000000".as_ref()), None, 7), half);
/// assert_eq!(watchdog_interval_from(Some("30000000".as_ref()), Some("7".as_ref()), 7), half);
/// assert_eq!(watchdog_interval_from(Some("30000000".as_ref()), Some("8".as_ref()), 7), None);
/// assert_eq!(watchdog_interval_from(None, None, 7), None);
/// ```
pub fn watchdog_interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    my_pid: u32,
) -> Option<Duration> {
    let usec: u64 = usec?.to_str()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid {
        let pid: u32 = pid.to_str()?.trim().parse().ok()?;
        if pid != my_pid {
            return None;
        }
    }
    Some((Duration::from_micros(usec) / 2).max(MIN_PING_INTERVAL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_socket(name: &str) -> (PathBuf, UnixDatagram) {
        let dir = std::env::temp_dir().join(format!("distio-notify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (dir, socket)
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_each_state_to_a_path_socket() {
        let (dir, systemd) = temp_socket("path");
        let notifier = Notifier::from_socket_var(Some(dir.join("notify").as_os_str())).unwrap();
        notifier.ready().unwrap();
        notifier.watchdog().unwrap();
        notifier.status("line one\nMAINPID=1").unwrap();
        notifier.stopping().unwrap();
        assert_eq!(recv(&systemd), "READY=1");
        assert_eq!(recv(&systemd), "WATCHDOG=1");
        assert_eq!(recv(&systemd), "STATUS=line one MAINPID=1");
        assert_eq!(recv(&systemd), "STOPPING=1");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!("distio-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&addr).unwrap();
        systemd
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let var = format!("@{name}");
        let notifier = Notifier::from_socket_var(Some(var.as_ref())).unwrap();
        assert_eq!(notifier.socket_name(), var);
        notifier.ready().unwrap();
        assert_eq!(recv(&systemd), "READY=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("distio-notify-{}-gone", std::process::id()));
        let notifier = Notifier::from_socket_var(Some(dir.join("nobody").as_os_str())).unwrap();
        assert!(notifier.ready().is_err());
    }

    #[test]
    fn unusable_values_give_no_notifier() {
        for value in ["", "relative", "vsock:2:1234"] {
            assert!(
                Notifier::from_socket_var(Some(value.as_ref())).is_none(),
                "{value}"
            );
        }
        let long = format!("/{}", "x".repeat(200));
        assert!(Notifier::from_socket_var(Some(long.as_ref())).is_none());
    }

    #[test]
    fn watchdog_interval_is_half_for_this_process_only() {
        let us = |s: &'static str| Some(OsStr::new(s));
        assert_eq!(
            watchdog_interval_from(us("2000000"), None, 42),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_interval_from(us("2000000"), us("42"), 42),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_interval_from(us("2000000"), us("43"), 42), None);
        assert_eq!(watchdog_interval_from(us("2000000"), us("x"), 42), None);
        assert_eq!(watchdog_interval_from(us("0"), None, 42), None);
        assert_eq!(watchdog_interval_from(us("-5"), None, 42), None);
        assert_eq!(watchdog_interval_from(us("soon"), None, 42), None);
        assert_eq!(
            watchdog_interval_from(us("1"), None, 42),
            Some(MIN_PING_INTERVAL)
        );
    }
}
