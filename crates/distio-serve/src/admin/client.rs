//! The operator CLI: `distio-serve status|list|kill|drain`, clients of the control
//! socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::control::{
    ControlRequest, ControlResponse, SocketPath, StatusView, control_socket_path,
};
use super::registry::{SessionView, SlaveView};
use super::table;
use crate::{ServeConfig, ServeError};

/// How long the CLI waits for the server.
const DEADLINE: Duration = Duration::from_secs(10);
/// The largest answer the CLI reads.
const MAX_REPLY: u64 = 64 << 20;

/// The operator subcommands of `distio-serve`. Each talks to the running server over
/// its control socket.
///
/// ```
/// use clap::Parser;
/// let args = distio_serve::CliArgs::try_parse_from(["distio-serve", "kill", "7", "--signal", "KILL"])?;
/// assert!(args.command.is_some());
/// # Ok::<(), clap::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum AdminCommand {
    /// Show the running server's state: ready, draining or stopping, and its counts.
    Status(ClientOptions),
    /// List the open sessions and the running slaves (pid, script, uptime, memory, CPU).
    List(ClientOptions),
    /// Send a signal to a running slave, named by its server id (see `list`).
    Kill {
        /// The slave's server id.
        #[arg(value_name = "SLAVE")]
        slave: u64,
        /// The signal: TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT, or a number.
        #[arg(long, short = 's', default_value = "TERM", value_parser = parse_signal)]
        signal: i32,
        /// Where the server is, and the output format.
        #[command(flatten)]
        options: ClientOptions,
    },
    /// Stop taking sessions and let the open ones finish; the server exits when the last
    /// one ends.
    Drain(ClientOptions),
}

/// Options every operator subcommand takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct ClientOptions {
    /// The server's control socket [default: `control_socket` from the configuration,
    /// else the runtime directory's `distio-serve/control.sock`].
    #[arg(long = "control-socket", value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Print the server's answer as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl AdminCommand {
    fn options(&self) -> &ClientOptions {
        match self {
            AdminCommand::Status(o) | AdminCommand::List(o) | AdminCommand::Drain(o) => o,
            AdminCommand::Kill { options, .. } => options,
        }
    }

    fn request(&self) -> ControlRequest {
        match self {
            AdminCommand::Status(_) => ControlRequest::Status,
            AdminCommand::List(_) => ControlRequest::List,
            AdminCommand::Drain(_) => ControlRequest::Drain,
            AdminCommand::Kill { slave, signal, .. } => ControlRequest::Kill {
                server_id: *slave,
                signal: *signal,
            },
        }
    }
}

/// Reads a signal name (`TERM`, `SIGKILL`, case-insensitive) or number.
fn parse_signal(text: &str) -> Result<i32, String> {
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} is not a signal number (1 to 64)"))
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    use rustix::process::Signal as S;
    let signal = match name {
        "TERM" => S::TERM,
        "KILL" => S::KILL,
        "INT" => S::INT,
        "HUP" => S::HUP,
        "QUIT" => S::QUIT,
        "USR1" => S::USR1,
        "USR2" => S::USR2,
        "STOP" => S::STOP,
        "CONT" => S::CONT,
        _ => {
            return Err(format!(
                "`{text}` is not a signal: write TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT or a number"
            ));
        }
    };
    Ok(signal.as_raw())
}

/// Runs an operator subcommand against the server `config` names (its
/// `control_socket`, unless `--control-socket` is given) and returns what to print: a
/// table, or the server's JSON answer with `--json`.
///
/// Fails with [`ServeError::ControlConnect`] when no server answers on the socket,
/// [`ServeError::ControlReply`] when its answer cannot be read, and
/// [`ServeError::ControlRefused`] when the server refuses the request (no such slave).
///
/// ```no_run
/// use clap::Parser;
/// let args = distio_serve::CliArgs::try_parse_from(["distio-serve", "list", "--json"])?;
/// let config = distio_serve::config::load(&args)?.config;
/// if let Some(distio_serve::Command::Admin(command)) = &args.command {
///     print!("{}", distio_serve::admin::run_command(command, &config)?);
/// }
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
pub fn run_command(command: &AdminCommand, config: &ServeConfig) -> Result<String, ServeError> {
    let options = command.options();
    let configured = options
        .control_socket
        .as_deref()
        .or(config.control_socket.as_deref());
    let path = match control_socket_path(configured) {
        SocketPath::At(path) => path,
        SocketPath::Off | SocketPath::Unknown => return Err(ServeError::ControlUnknown),
    };
    let (reply, raw) = exchange(&path, &command.request())?;
    if let ControlResponse::Error { message } = reply {
        return Err(ServeError::ControlRefused { message });
    }
    if options.json {
        return Ok(raw);
    }
    Ok(render(&reply))
}

/// Sends one request and reads the one answer (parsed, and its raw line).
fn exchange(
    path: &Path,
    request: &ControlRequest,
) -> Result<(ControlResponse, String), ServeError> {
    let connect = |source| ServeError::ControlConnect {
        path: path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(connect)?;
    stream.set_read_timeout(Some(DEADLINE)).map_err(connect)?;
    stream.set_write_timeout(Some(DEADLINE)).map_err(connect)?;
    let mut line = serde_json::to_vec(request).map_err(ServeError::ControlReply)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(connect)?;
    let mut raw = String::new();
    BufReader::new(stream.take(MAX_REPLY))
        .read_line(&mut raw)
        .map_err(connect)?;
    let reply = serde_json::from_str(&raw).map_err(ServeError::ControlReply)?;
    Ok((reply, raw))
}

fn render(reply: &ControlResponse) -> String {
    match reply {
        ControlResponse::Status(status) => render_status(status),
        ControlResponse::List { sessions, slaves } => render_list(sessions, slaves),
        ControlResponse::Killed {
            server_id,
            pid,
            signal,
        } => format!("sent signal {signal} to slave {server_id} (pid {pid})\n"),
        ControlResponse::Draining { sessions, already } => format!(
            "{}: no new sessions; the server exits when the last of its {sessions} open session{} ends\n",
            if *already {
                "draining already"
            } else {
                "draining"
            },
            if *sessions == 1 { "" } else { "s" }
        ),
        ControlResponse::Error { message } => format!("error: {message}\n"),
    }
}

fn render_status(s: &StatusView) -> String {
    let rows = [
        ("state", s.state.clone()),
        ("server", s.server_name.clone()),
        ("version", s.version.clone()),
        ("pid", s.pid.to_string()),
        ("uptime", table::duration(s.uptime_secs)),
        ("sessions", s.sessions.to_string()),
        (
            "slaves",
            format!(
                "{} running, {} queued, {} at most",
                s.slaves_running, s.slaves_queued, s.capacity
            ),
        ),
    ];
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(k, v)| vec![k.to_owned(), v])
        .collect();
    table::render(&["", ""], &rows)
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect()
}

fn render_list(sessions: &[SessionView], slaves: &[SlaveView]) -> String {
    let session_rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            let since =
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s.since_unix));
            vec![
                s.id.to_string(),
                s.peer.clone(),
                s.user.clone().unwrap_or_else(|| "-".into()),
                since.to_string(),
                table::duration(s.age_secs),
                s.slaves.to_string(),
            ]
        })
        .collect();
    let slave_rows: Vec<Vec<String>> = slaves
        .iter()
        .map(|v| {
            vec![
                v.server_id.to_string(),
                v.session.to_string(),
                v.pid.to_string(),
                v.script.clone(),
                table::duration(v.uptime_secs),
                v.rss_bytes.map_or_else(|| "-".into(), table::bytes),
                v.cpu_secs
                    .map_or_else(|| "-".into(), |c| format!("{c:.2}s")),
            ]
        })
        .collect();
    let mut out = table::render(
        &["SESSION", "PEER", "USER", "SINCE", "AGE", "SLAVES"],
        &session_rows,
    );
    out.push('\n');
    out.push_str(&table::render(
        &["SLAVE", "SESSION", "PID", "SCRIPT", "UPTIME", "RSS", "CPU"],
        &slave_rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert_eq!(parse_signal("sigkill"), Ok(9));
        assert_eq!(parse_signal("10"), Ok(10));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("BOGUS").is_err());
    }

    #[test]
    fn a_list_renders_as_two_tables() {
        let text = render(&ControlResponse::List {
            sessions: vec![SessionView {
                id: 1,
                peer: "127.0.0.1:5000".into(),
                user: Some("ops".into()),
                since_unix: 0,
                age_secs: 61,
                slaves: 1,
            }],
            slaves: vec![SlaveView {
                server_id: 4,
                session: 1,
                pid: 1234,
                script: "a.sh".into(),
                uptime_secs: 3,
                rss_bytes: Some(2048),
                cpu_secs: Some(0.5),
            }],
        });
        assert!(
            text.contains("1        127.0.0.1:5000  ops   1970-01-01T00:00:00Z  1m1s  1"),
            "{text}"
        );
        assert!(
            text.contains("4      1        1234  a.sh    3s      2.0KiB  0.50s"),
            "{text}"
        );
    }
}
