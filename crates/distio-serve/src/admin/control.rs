//! The control socket: a Unix socket in the runtime directory that takes one JSON
//! request line and answers one JSON line. Who may use it is decided by its file
//! permissions: the socket is made 0660 and a directory the server creates for it 0750,
//! so its owner and group may; the path is refused when something other than a stale
//! socket is there.

use serde::{Deserialize, Serialize};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::registry::{KillError, SessionView, SlaveView};
use crate::{ServeError, ServerState, ShutdownHandle};

/// The longest request line the server reads.
pub(crate) const MAX_REQUEST: u64 = 4096;
/// How long a client has to send its request, and the server to write its answer.
const IO_DEADLINE: Duration = Duration::from_secs(5);
/// How many control connections are served at once; more are answered "busy".
const MAX_CONNECTIONS: usize = 8;

/// The file name of the socket in a runtime directory.
const SOCKET_NAME: &str = "control.sock";

/// A request on the control socket (one JSON line, `{"op": "..."}`).
///
/// ```
/// use distio_serve::admin::ControlRequest;
/// let line = serde_json::to_string(&ControlRequest::Kill { server_id: 3, signal: 15 })?;
/// assert_eq!(line, r#"{"op":"kill","server_id":3,"signal":15}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    /// The server's state and counts.
    Status,
    /// Every session and running slave.
    List,
    /// Send `signal` to the slave with this server id.
    Kill {
        /// The slave's server id (as `list` shows it).
        server_id: u64,
        /// The signal number.
        signal: i32,
    },
    /// Stop taking sessions; stop the server when the last one ends.
    Drain,
}

/// The server's state, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// `ready`, `draining` or `stopping`.
    pub state: String,
    /// The server's version.
    pub version: String,
    /// The server's process id.
    pub pid: u32,
    /// The name the server gives masters.
    pub server_name: String,
    /// How long the server has run, in seconds.
    pub uptime_secs: u64,
    /// Sessions open now.
    pub sessions: usize,
    /// Slave places taken now.
    pub slaves_running: usize,
    /// Spawns waiting for a place now.
    pub slaves_queued: usize,
    /// How many slaves may run at once.
    pub capacity: usize,
}

/// The server's answer (one JSON line, `{"result": "..."}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ControlResponse {
    /// The answer to [`ControlRequest::Status`].
    Status(StatusView),
    /// The answer to [`ControlRequest::List`].
    List {
        /// The open sessions.
        sessions: Vec<SessionView>,
        /// The running slaves.
        slaves: Vec<SlaveView>,
    },
    /// The signal was sent.
    Killed {
        /// The slave's server id.
        server_id: u64,
        /// Its process id.
        pid: u32,
        /// The signal sent.
        signal: i32,
    },
    /// The server drains.
    Draining {
        /// Sessions still open.
        sessions: usize,
        /// Whether it was draining already.
        already: bool,
    },
    /// The request was not carried out: why, as a sentence.
    Error {
        /// Why.
        message: String,
    },
}

/// Where the control socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketPath {
    /// `control_socket = "off"`: no control socket.
    Off,
    /// No configured path and no runtime directory known (not root, no
    /// `RUNTIME_DIRECTORY`, no `XDG_RUNTIME_DIR`).
    Unknown,
    /// This path.
    At(PathBuf),
}

/// The control socket's path: `configured` (the `control_socket` key or
/// `--control-socket`; `off` turns it off) if given, else `control.sock` in
/// `$RUNTIME_DIRECTORY` (set by systemd's `RuntimeDirectory=`), else
/// `/run/distio-serve/control.sock` for root, else
/// `$XDG_RUNTIME_DIR/distio-serve/control.sock`.
///
/// ```
/// use distio_serve::admin::{SocketPath, control_socket_path};
/// use std::path::Path;
/// assert_eq!(control_socket_path(Some(Path::new("off"))), SocketPath::Off);
/// assert_eq!(
///     control_socket_path(Some(Path::new("/tmp/c.sock"))),
///     SocketPath::At("/tmp/c.sock".into())
/// );
/// ```
pub fn control_socket_path(configured: Option<&Path>) -> SocketPath {
    if let Some(path) = configured {
        return if path == Path::new("off") {
            SocketPath::Off
        } else {
            SocketPath::At(path.to_owned())
        };
    }
    let env_dir = |key: &str| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dirs) = env_dir("RUNTIME_DIRECTORY") {
        // systemd separates several directories with `:`; the first is this service's.
        let first = dirs
            .to_string_lossy()
            .split(':')
            .next()
            .map(PathBuf::from)
            .unwrap_or(dirs);
        return SocketPath::At(first.join(SOCKET_NAME));
    }
    if rustix::process::geteuid().is_root() {
        return SocketPath::At(Path::new("/run/distio-serve").join(SOCKET_NAME));
    }
    match env_dir("XDG_RUNTIME_DIR") {
        Some(dir) => SocketPath::At(dir.join("distio-serve").join(SOCKET_NAME)),
        None => SocketPath::Unknown,
    }
}

/// Creates the socket at `path` (see the module's rules).
pub(crate) fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let fail = |source: std::io::Error| ServeError::ControlSocket {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(fail)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(fail)?;
    }
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(fail(err)),
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ServeError::ControlPathTaken {
                path: path.to_owned(),
            });
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(ServeError::ControlInUse {
                    path: path.to_owned(),
                });
            }
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing a stale control socket");
                std::fs::remove_file(path).map_err(fail)?;
            }
            Err(err) => return Err(fail(err)),
        },
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    UnixListener::from_std(listener).map_err(fail)
}

/// Serves control connections until `cancel`.
pub(crate) async fn serve(
    listener: UnixListener,
    state: ServerState,
    stop: ShutdownHandle,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("the control socket failed to accept: {err}");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    }
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tasks.spawn(reply_busy(stream));
            continue;
        };
        let (state, stop, inner, cancel) =
            (state.clone(), stop.clone(), tasks.clone(), cancel.clone());
        tasks.spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = cancel.cancelled() => {}
                () = connection(stream, state, stop, inner, cancel.clone()) => {}
            }
        });
    }
}

async fn reply_busy(mut stream: UnixStream) {
    let reply = ControlResponse::Error {
        message: "the server is busy with other control connections; try again".into(),
    };
    let _ = tokio::time::timeout(IO_DEADLINE, write_reply(&mut stream, &reply)).await;
}

async fn write_reply(stream: &mut UnixStream, reply: &ControlResponse) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await
}

async fn connection(
    mut stream: UnixStream,
    state: ServerState,
    stop: ShutdownHandle,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let uid = stream.peer_cred().ok().map(|cred| cred.uid());
    let mut line = String::new();
    let read = {
        let mut reader = BufReader::new((&mut stream).take(MAX_REQUEST + 1));
        tokio::time::timeout(IO_DEADLINE, reader.read_line(&mut line)).await
    };
    let reply = match read {
        Err(_) => ControlResponse::Error {
            message: format!("no request line arrived within {IO_DEADLINE:?}"),
        },
        Ok(Err(err)) => ControlResponse::Error {
            message: format!("the request could not be read: {err}"),
        },
        Ok(Ok(_)) if line.len() as u64 > MAX_REQUEST || !line.ends_with('\n') => {
            ControlResponse::Error {
                message: format!("the request is not one line of at most {MAX_REQUEST} bytes"),
            }
        }
        Ok(Ok(_)) => match serde_json::from_str::<ControlRequest>(&line) {
            Ok(request) => {
                tracing::info!(uid, request = ?request, "control request");
                handle(request, &state, &stop, &tasks, &cancel)
            }
            Err(err) => ControlResponse::Error {
                message: format!("the request is not a control request: {err}"),
            },
        },
    };
    if let Err(err) = tokio::time::timeout(IO_DEADLINE, write_reply(&mut stream, &reply))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    {
        tracing::debug!("a control reply was not delivered: {err}");
    }
}

fn handle(
    request: ControlRequest,
    state: &ServerState,
    stop: &ShutdownHandle,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) -> ControlResponse {
    let admin = state.admin();
    match request {
        ControlRequest::Status => {
            let slots = state.slots();
            let (sessions, _) = admin.registry().counts();
            let status = if state.stopping() {
                "stopping"
            } else if admin.draining() {
                "draining"
            } else {
                "ready"
            };
            ControlResponse::Status(StatusView {
                state: status.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                pid: std::process::id(),
                server_name: state.settings().server_name.clone(),
                uptime_secs: admin.uptime().as_secs(),
                sessions,
                slaves_running: slots.running(),
                slaves_queued: slots.queued(),
                capacity: slots.capacity(),
            })
        }
        ControlRequest::List => {
            let (sessions, slaves) = admin.registry().snapshot();
            ControlResponse::List { sessions, slaves }
        }
        ControlRequest::Kill { server_id, signal } => {
            if !(1..=64).contains(&signal) {
                return ControlResponse::Error {
                    message: format!("{signal} is not a signal number (1 to 64)"),
                };
            }
            match admin.registry().kill(server_id, signal) {
                Ok(pid) => {
                    tracing::info!(
                        slave = server_id,
                        pid,
                        signal,
                        "an operator signalled a slave"
                    );
                    ControlResponse::Killed {
                        server_id,
                        pid,
                        signal,
                    }
                }
                Err(KillError::NoSuchSlave) => ControlResponse::Error {
                    message: format!(
                        "no running slave has the server id {server_id}; `distio-serve list` shows them"
                    ),
                },
                Err(KillError::Gone) => ControlResponse::Error {
                    message: format!("the slave {server_id} has exited already"),
                },
            }
        }
        ControlRequest::Drain => {
            let started = admin.drain();
            let (sessions, _) = admin.registry().counts();
            if started {
                let mut open = admin.open_sessions();
                let (stop, cancel) = (stop.clone(), cancel.clone());
                tasks.spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        _ = open.wait_for(|&n| n == 0) => {
                            tracing::info!("drained: the last session ended; stopping");
                            stop.shutdown();
                        }
                    }
                });
            }
            ControlResponse::Draining {
                sessions,
                already: !started,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        for line in [
            r#"{"op":"status"}"#,
            r#"{"op":"list"}"#,
            r#"{"op":"drain"}"#,
            r#"{"op":"kill","server_id":7,"signal":9}"#,
        ] {
            let request: ControlRequest = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&request).unwrap(), line);
        }
        assert!(serde_json::from_str::<ControlRequest>(r#"{"op":"reboot"}"#).is_err());
        let reply = ControlResponse::Draining {
            sessions: 2,
            already: false,
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            text,
            r#"{"result":"draining","sessions":2,"already":false}"#
        );
        assert_eq!(
            serde_json::from_str::<ControlResponse>(&text).unwrap(),
            reply
        );
    }

    #[tokio::test]
    async fn a_path_that_is_not_a_stale_socket_is_refused() {
        let dir = std::env::temp_dir().join(format!("distio-control-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/control.sock");
        let listener = bind(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o660);
        assert_eq!(mode(path.parent().unwrap()), 0o750);
        // A live socket is another server's.
        assert!(matches!(bind(&path), Err(ServeError::ControlInUse { .. })));
        // A stale one is replaced.
        drop(listener);
        let listener = bind(&path).unwrap();
        drop(listener);
        let file = dir.join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            bind(&file),
            Err(ServeError::ControlPathTaken { .. })
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
