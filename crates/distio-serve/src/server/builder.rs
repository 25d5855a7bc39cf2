//! The server's settings and the builder that sets them.

use axum::Router;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Server;
use crate::containment::Jail;
use crate::{
    Access, AdmissionConfig, Containment, LoadedConfig, Secret, ServeConfig, ServeError, ServerTls,
};
use distio_proto::remote::passphrase::PassphraseKey;

/// What wraps the router before it serves (the auth middleware, say).
pub(crate) type RouterMap = Box<dyn FnOnce(Router) -> Router + Send>;

/// Everything the server is configured with. See [`ServerBuilder`] for each setting.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) address: IpAddr,
    pub(crate) port: u16,
    pub(crate) root: PathBuf,
    pub(crate) interpreters: BTreeMap<String, PathBuf>,
    pub(crate) max_concurrent_slaves: usize,
    pub(crate) queue_limit: usize,
    pub(crate) queue_timeout: Duration,
    pub(crate) kill_slaves_after: Option<Duration>,
    pub(crate) kill_grace: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_misses: u32,
    pub(crate) shutdown_grace: Duration,
    pub(crate) max_frame_len: usize,
    pub(crate) server_name: String,
    pub(crate) max_channels_per_session: usize,
    pub(crate) open_timeout: Duration,
    pub(crate) outbox_limit: usize,
    pub(crate) client_stall_timeout: Duration,
    pub(crate) idle_session_timeout: Option<Duration>,
    pub(crate) slave_inbox_limit: usize,
    pub(crate) resume_grace: Duration,
    pub(crate) resume_buffer: usize,
    pub(crate) insecure_plaintext: bool,
    pub(crate) containment: Containment,
    /// Set up by [`ServerBuilder::build`] from `root` and `containment`.
    pub(crate) jail: Option<Arc<Jail>>,
    pub(crate) admission: AdmissionConfig,
    pub(crate) passphrase: Option<PassphraseSetting>,
}

/// The passphrase as configured; [`ServerBuilder::build`] turns it into the key.
#[derive(Clone, Debug)]
pub(crate) enum PassphraseSetting {
    /// The passphrase itself: derived with a new random salt at start.
    Plain(Secret),
    /// Its key as a hash string.
    Hash(Secret),
}

impl PassphraseSetting {
    fn from_config(config: &ServeConfig) -> Option<Self> {
        match (&config.passphrase_hash, &config.passphrase) {
            (Some(hash), _) => Some(PassphraseSetting::Hash(hash.clone())),
            (None, Some(plain)) => Some(PassphraseSetting::Plain(plain.clone())),
            (None, None) => None,
        }
    }

    /// The server's key (slow for a plain passphrase: PBKDF2 at 600 000 iterations).
    fn key(&self) -> Result<PassphraseKey, ServeError> {
        match self {
            PassphraseSetting::Hash(hash) => PassphraseKey::parse_hash(hash.expose()),
            PassphraseSetting::Plain(plain) => {
                tracing::warn!(
                    "the passphrase is in the configuration as plain text; store its hash \
                     instead (passphrase_hash, made with `distio-serve hash-password`)"
                );
                PassphraseKey::generate(plain.expose())
            }
        }
        .map_err(ServeError::Passphrase)
    }
}

impl Default for Settings {
    /// The same defaults as [`ServeConfig::default`]: one set, documented in `docs/serve.md`.
    fn default() -> Self {
        Settings::from_config(&ServeConfig::default())
    }
}

impl Settings {
    /// Every key of a configuration, with the same bounds the builder's setters apply.
    fn from_config(config: &ServeConfig) -> Self {
        Settings {
            address: config.bind,
            port: config.port,
            root: config.root.clone(),
            interpreters: config
                .interpreters
                .iter()
                .map(|(ext, program)| (ext.trim_start_matches('.').to_owned(), program.clone()))
                .collect(),
            max_concurrent_slaves: config.max_concurrent_slaves.max(1),
            queue_limit: config.queue_limit,
            queue_timeout: config.queue_timeout,
            kill_slaves_after: config.kill_slaves_after.filter(|d| !d.is_zero()),
            kill_grace: config.kill_grace,
            heartbeat_interval: config.heartbeat_interval,
            heartbeat_misses: config.heartbeat_misses.max(1),
            shutdown_grace: config.shutdown_grace,
            max_frame_len: config.max_frame_len.clamp(1, u32::MAX as usize),
            server_name: config.server_name.clone().unwrap_or_else(host_name),
            max_channels_per_session: config.max_channels_per_session.max(1),
            open_timeout: config.open_timeout,
            outbox_limit: config.outbox_limit.clamp(1, u32::MAX as usize),
            client_stall_timeout: config.client_stall_timeout.max(Duration::from_millis(1)),
            idle_session_timeout: config.idle_session_timeout.filter(|d| !d.is_zero()),
            slave_inbox_limit: config.slave_inbox_limit.clamp(1, u32::MAX as usize),
            resume_grace: config.resume_grace,
            resume_buffer: config.resume_buffer.max(1),
            insecure_plaintext: config.insecure_plaintext,
            containment: config.containment.clone(),
            jail: None,
            admission: config.admission.clone(),
            passphrase: PassphraseSetting::from_config(config),
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "distio-serve".to_owned())
}

/// Whether `address` only reaches this host: 127.0.0.0/8, `::1`, or an IPv4-mapped
/// loopback address.
pub(crate) fn is_loopback(address: IpAddr) -> bool {
    address.to_canonical().is_loopback()
}

/// Configures and starts a [`Server`].
///
/// Every setting has the default of the configuration key of the same name
/// ([`ServeConfig::default`], listed in `docs/serve.md`): bind 127.0.0.1, port 1337, the
/// working directory as root, `py`/`js`/`sh` interpreters, CPUs × 4 slaves at once, a
/// 15-minute lifetime limit. [`from_config`](Self::from_config) sets all of them from a
/// configuration, [`from_loaded`](Self::from_loaded) adds its access checks.
///
/// A non-loopback address is refused at [`build`](Self::build) unless the server has
/// [`tls`](Self::tls) or [`insecure_plaintext`](Self::insecure_plaintext) is set.
///
/// ```no_run
/// use distio_serve::Server;
/// use std::time::Duration;
/// # async fn run() -> Result<(), distio_serve::ServeError> {
/// let server = Server::builder()
///     .address("0.0.0.0".parse().unwrap())
///     .insecure_plaintext(true) // a trusted network: no TLS
///     .port(1337)
///     .root("/srv/slaves")
///     .interpreter("py", "/usr/bin/python3")
///     .max_concurrent_slaves(32)
///     .queue_limit(100)
///     .queue_timeout(Duration::from_secs(30))
///     .heartbeat(Duration::from_secs(5), 3)
///     .build()
///     .await?;
/// # drop(server);
/// # Ok(())
/// # }
/// ```
#[must_use = "a builder does nothing until `build` is awaited"]
#[derive(Default)]
pub struct ServerBuilder {
    pub(crate) settings: Settings,
    pub(crate) router_map: Option<RouterMap>,
    /// The access checks [`from_loaded`](Self::from_loaded) added, for the start's warning.
    open_access: Option<OpenAccess>,
    tls: Option<ServerTls>,
}

/// Which access checks guard the session route.
#[derive(Clone, Copy, Debug)]
struct OpenAccess {
    authenticated: bool,
    allowlisted: bool,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("settings", &self.settings)
            .field("router_map", &self.router_map.is_some())
            .field("open_access", &self.open_access)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ServerBuilder {
    /// A builder with every key of `config`: `bind`, `port`, `root`, `interpreters` (the
    /// whole table), the limits, the heartbeat, the graces, `server_name` and
    /// `insecure_plaintext`, `admission`. Logging, the access checks (`authorized_ips`,
    /// `basic_auth`) and TLS (whose files are read at load) are not the server core's: see
    /// [`from_loaded`](Self::from_loaded) and [`tls`](Self::tls).
    ///
    /// ```
    /// let config: distio_serve::ServeConfig = toml::from_str("port = 0\nqueue_limit = 4")?;
    /// let builder = distio_serve::ServerBuilder::from_config(&config);
    /// # drop(builder);
    /// # Ok::<(), toml::de::Error>(())
    /// ```
    pub fn from_config(config: &ServeConfig) -> Self {
        ServerBuilder {
            settings: Settings::from_config(config),
            router_map: None,
            open_access: None,
            tls: None,
        }
    }

    /// A builder with every key of a loaded configuration, its session route guarded by
    /// the configuration's [`Access`] checks: the IP allowlist first (403), then basic
    /// authentication (401). What the `distio-serve` binary runs.
    ///
    /// Logs a warning when no `basic_auth` is set and the address is not loopback.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), distio_serve::ServeError> {
    /// let loaded = distio_serve::load_from_args(["distio-serve", "--config", "serve.toml"])?;
    /// let server = distio_serve::ServerBuilder::from_loaded(&loaded)?.build().await?;
    /// server.run().await
    /// # }
    /// ```
    pub fn from_loaded(loaded: &LoadedConfig) -> Result<Self, ServeError> {
        let access = Access::from_config(loaded)?;
        let mut builder = Self::from_config(&loaded.config);
        builder.tls = loaded.tls.clone();
        builder.open_access = Some(OpenAccess {
            authenticated: access.credentials.is_some(),
            allowlisted: !access.allowlist.is_open(),
        });
        Ok(builder.map_router(move |router| access.protect(router)))
    }

    /// The address to listen on (default 127.0.0.1). An address that is not loopback also
    /// needs [`insecure_plaintext`](Self::insecure_plaintext).
    pub fn address(mut self, address: IpAddr) -> Self {
        self.settings.address = address;
        self
    }

    /// The port to listen on (default 1337; 0 picks a free one, see
    /// [`Server::local_addr`]).
    pub fn port(mut self, port: u16) -> Self {
        self.settings.port = port;
        self
    }

    /// The directory scripts are found under, which is also their working directory
    /// (default: the working directory).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.settings.root = root.into();
        self
    }

    /// Runs scripts whose name ends in `.{extension}` with `program` (the script's path
    /// is its first argument), in addition to (or instead of) the default `py` →
    /// `python3`, `js` → `node`, `sh` → `/bin/sh`. Other scripts must be executable files.
    pub fn interpreter(
        mut self,
        extension: impl Into<String>,
        program: impl Into<PathBuf>,
    ) -> Self {
        let extension = extension.into();
        let extension = extension.trim_start_matches('.').to_owned();
        self.settings.interpreters.insert(extension, program.into());
        self
    }

    /// How many slaves run at once across all sessions (default: CPUs × 4, at least 1);
    /// spawns beyond wait in a FIFO queue.
    pub fn max_concurrent_slaves(mut self, max: usize) -> Self {
        self.settings.max_concurrent_slaves = max.max(1);
        self
    }

    /// How many spawns may wait for a place (default 256); beyond, a spawn fails with
    /// "queue full".
    pub fn queue_limit(mut self, limit: usize) -> Self {
        self.settings.queue_limit = limit;
        self
    }

    /// How long a spawn may wait for a place (default 30 s).
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.settings.queue_timeout = timeout;
        self
    }

    /// Ends a slave that runs longer than this (SIGTERM, then SIGKILL after the
    /// [`kill_grace`](Self::kill_grace)); default 15 minutes, `None` lets slaves live.
    pub fn kill_slaves_after(mut self, limit: Option<Duration>) -> Self {
        self.settings.kill_slaves_after = limit;
        self
    }

    /// How long a slave being ended has between SIGTERM and SIGKILL (default 5 s).
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.settings.kill_grace = grace;
        self
    }

    /// A session is pinged every `interval` and ended when nothing arrived for
    /// `interval × misses` (default 5 s × 3).
    pub fn heartbeat(mut self, interval: Duration, misses: u32) -> Self {
        self.settings.heartbeat_interval = interval;
        self.settings.heartbeat_misses = misses.max(1);
        self
    }

    /// How long [`Server::run`] takes at most to end every session and slave once
    /// shutdown is asked for (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    /// The longest slave frame relayed either way (default
    /// [`DEFAULT_MAX_FRAME_LEN`](distio_proto::DEFAULT_MAX_FRAME_LEN)); a slave writing a
    /// longer one is killed, a master sending one breaks the protocol.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.settings.max_frame_len = max.clamp(1, u32::MAX as usize);
        self
    }

    /// The name the server gives in its welcome (default: the host name).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.settings.server_name = name.into();
        self
    }

    /// How many slaves one session may have starting or running (default 1024).
    pub fn max_channels_per_session(mut self, max: usize) -> Self {
        self.settings.max_channels_per_session = max.max(1);
        self
    }

    /// How long a new session has to send its open frame (default 10 s).
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.settings.open_timeout = timeout;
        self
    }

    /// Most bytes waiting to be written to one session's WebSocket (default 8 MiB): a
    /// slave's frames wait for room; its output lines are dropped and counted.
    pub fn outbox_limit(mut self, bytes: usize) -> Self {
        self.settings.outbox_limit = bytes.clamp(1, u32::MAX as usize);
        self
    }

    /// How long a session's WebSocket may take no bytes (its client does not read) before
    /// the session ends and its slaves are killed (default 30 s).
    pub fn client_stall_timeout(mut self, timeout: Duration) -> Self {
        self.settings.client_stall_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a session whose connection dropped keeps its slaves, waiting for its master
    /// to resume it (default 30 s; zero: no resuming, a dropped connection ends the session).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = distio_serve::Server::builder().resume_grace(Duration::from_secs(5));
    /// # let _ = builder;
    /// ```
    pub fn resume_grace(mut self, grace: Duration) -> Self {
        self.settings.resume_grace = grace;
        self
    }

    /// Most bytes of sent frames a session keeps until its master acknowledges them, to
    /// send again on a resume (default 32 MiB). Past it (for a heartbeat limit), the
    /// session ends.
    pub fn resume_buffer(mut self, bytes: usize) -> Self {
        self.settings.resume_buffer = bytes.max(1);
        self
    }

    /// How long a session without slaves may send no frame before it is closed (default
    /// 10 min; `None` or zero: never).
    pub fn idle_session_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.idle_session_timeout = timeout.filter(|d| !d.is_zero());
        self
    }

    /// Most bytes of frames waiting to be written to one slave's socket (default 8 MiB).
    pub fn slave_inbox_limit(mut self, bytes: usize) -> Self {
        self.settings.slave_inbox_limit = bytes.clamp(1, u32::MAX as usize);
        self
    }

    /// Allows listening on an address that is not loopback without TLS (default false).
    ///
    /// Without TLS, basic-auth credentials and everything a session carries cross the
    /// network in the clear; set this only on a trusted network or behind a TLS-terminating
    /// proxy on the same host. Loopback addresses (127.0.0.0/8, `::1`) never need it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), distio_serve::ServeError> {
    /// let server = distio_serve::Server::builder()
    ///     .address("10.0.0.5".parse().unwrap())
    ///     .insecure_plaintext(true)
    ///     .build()
    ///     .await?;
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    pub fn insecure_plaintext(mut self, allow: bool) -> Self {
        self.settings.insecure_plaintext = allow;
        self
    }

    /// Who slaves run as, their resource limits and their cgroups (the `[containment]`
    /// table). A server running as root refuses to build without `run_as_user` or
    /// `allow_root_slaves`.
    ///
    /// ```
    /// use distio_serve::{Containment, Server};
    /// let builder = Server::builder().containment(Containment {
    ///     run_as_user: Some("nobody".into()),
    ///     processes: Some(256),
    ///     ..Containment::default()
    /// });
    /// # drop(builder);
    /// ```
    pub fn containment(mut self, containment: Containment) -> Self {
        self.settings.containment = containment;
        self
    }

    /// Serves `wss://` with this certificate (and client CA, for mutual TLS); see
    /// [`ServerTls::load`]. A server with TLS may listen on any address.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), distio_serve::ServeError> {
    /// let tls = distio_serve::ServerTls::load(&distio_serve::TlsConfig {
    ///     cert: "cert.pem".into(),
    ///     key: "key.pem".into(),
    ///     client_ca: None,
    /// })?;
    /// let server = distio_serve::Server::builder()
    ///     .address("0.0.0.0".parse().unwrap())
    ///     .tls(tls)
    ///     .build()
    ///     .await?;
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Requires masters to prove they know `passphrase` before their session opens, and
    /// seals every session with keys derived from it (the passphrase mode; see
    /// `docs/security.md`). The key is derived once, at [`build`](Self::build), with a new
    /// random salt; a warning says the passphrase should be stored as its hash
    /// ([`passphrase_hash`](Self::passphrase_hash)). Replaces an earlier passphrase setting.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), distio_serve::ServeError> {
    /// let server = distio_serve::Server::builder()
    ///     .passphrase("correct horse battery staple")
    ///     .build()
    ///     .await?;
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    pub fn passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.settings.passphrase = Some(PassphraseSetting::Plain(Secret::new(passphrase)));
        self
    }

    /// Like [`passphrase`](Self::passphrase), with the passphrase's key as a hash string
    /// (`$pbkdf2-sha256$i=ITERATIONS$SALT$KEY`), read at [`build`](Self::build) (an
    /// unreadable one fails it with [`ServeError::Passphrase`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = distio_serve::Server::builder()
    ///     .port(0)
    ///     .passphrase_hash("$pbkdf2-sha256$i=1$x$y")
    ///     .build()
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, distio_serve::ServeError::Passphrase(_)));
    /// # }
    /// ```
    pub fn passphrase_hash(mut self, hash: impl Into<String>) -> Self {
        self.settings.passphrase = Some(PassphraseSetting::Hash(Secret::new(hash)));
        self
    }

    /// The limits before authentication: the deadline, the caps on unauthenticated
    /// connections, the penalties (default [`AdmissionConfig::default`]).
    ///
    /// ```
    /// let builder = distio_serve::Server::builder().admission(distio_serve::AdmissionConfig {
    ///     handshake_timeout: std::time::Duration::from_secs(3),
    ///     ..Default::default()
    /// });
    /// # drop(builder);
    /// ```
    pub fn admission(mut self, admission: AdmissionConfig) -> Self {
        self.settings.admission = admission;
        self
    }

    /// Wraps the server's router before it serves, e.g. to add authentication layers:
    /// `.map_router(|router| router.layer(my_layer))`. Called once, by
    /// [`build`](Self::build).
    pub fn map_router(mut self, map: impl FnOnce(Router) -> Router + Send + 'static) -> Self {
        let previous = self.router_map.take();
        self.router_map = Some(Box::new(move |router| {
            let router = match previous {
                Some(previous) => previous(router),
                None => router,
            };
            map(router)
        }));
        self
    }

    /// Checks the root and the address, then binds the listening socket.
    ///
    /// Fails with [`ServeError::Root`] when the root is not a directory,
    /// [`ServeError::Plaintext`] for a non-loopback address with neither [`tls`](Self::tls)
    /// nor [`insecure_plaintext`](Self::insecure_plaintext) (before anything is bound), and
    /// [`ServeError::Bind`] when the address cannot be listened on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let err = distio_serve::Server::builder()
    ///     .address("0.0.0.0".parse().unwrap())
    ///     .build()
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, distio_serve::ServeError::Plaintext { .. }));
    /// # }
    /// ```
    pub async fn build(self) -> Result<Server, ServeError> {
        let mut settings = self.settings;
        settings.root = tokio::fs::canonicalize(&settings.root)
            .await
            .map_err(|err| err.to_string())
            .and_then(|root| {
                if root.is_dir() {
                    Ok(root)
                } else {
                    Err("it is not a directory".to_owned())
                }
            })
            .map_err(|reason| ServeError::Root {
                path: settings.root.clone(),
                reason,
            })?;
        let passphrase = match settings.passphrase.clone() {
            Some(setting) => {
                let key = tokio::task::spawn_blocking(move || setting.key())
                    .await
                    .map_err(|err| ServeError::Runtime(std::io::Error::other(err)))??;
                tracing::info!(
                    iterations = key.iterations(),
                    "passphrase mode: masters must prove they know the passphrase, and sessions are sealed"
                );
                Some(Arc::new(key))
            }
            None => None,
        };
        let addr = SocketAddr::new(settings.address, settings.port);
        if !is_loopback(settings.address) && self.tls.is_none() {
            if !settings.insecure_plaintext {
                return Err(ServeError::Plaintext { addr });
            }
            tracing::warn!(
                %addr,
                "insecure_plaintext: serving without TLS on a non-loopback address; credentials and sessions cross the network in the clear"
            );
        }
        settings.jail = Some(Arc::new(Jail::set_up(
            &settings.root,
            &settings.containment,
        )?));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        if let Some(access) = self.open_access.filter(|a| !a.authenticated) {
            let addr = listener.local_addr().unwrap_or(addr);
            let root = settings.root.display();
            if is_loopback(settings.address) {
                tracing::info!(
                    "no basic_auth configured: any user of this host can run the scripts under {root}"
                );
            } else {
                let from = if access.allowlisted {
                    " from an authorized_ips address"
                } else {
                    ""
                };
                tracing::warn!(
                    "no basic_auth configured: anyone who can reach {addr}{from} can run the scripts under {root}"
                );
            }
        }
        Server::new(listener, settings, passphrase, self.router_map, self.tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_8_and_v6_one_and_mapped() {
        for a in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(a.parse().unwrap()), "{a}");
        }
        for a in [
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "192.168.1.1",
        ] {
            assert!(!is_loopback(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn every_config_key_reaches_the_settings() {
        let config: ServeConfig = toml::from_str(
            r#"
            bind = "10.0.0.1"
            port = 4000
            root = "/tmp"
            max_concurrent_slaves = 3
            queue_limit = 5
            queue_timeout = "7s"
            kill_slaves_after = "1h"
            kill_grace = "2s"
            heartbeat_interval = "4s"
            heartbeat_misses = 6
            shutdown_grace = "9s"
            max_frame_len = 1000
            server_name = "box"
            max_channels_per_session = 11
            open_timeout = "3s"
            outbox_limit = 12345
            client_stall_timeout = "12s"
            idle_session_timeout = "2min"
            slave_inbox_limit = 23456
            insecure_plaintext = true
            [interpreters]
            rb = "ruby"
            "#,
        )
        .unwrap();
        let s = ServerBuilder::from_config(&config).settings;
        assert_eq!(s.address, config.bind);
        assert_eq!(s.port, 4000);
        assert_eq!(s.root, PathBuf::from("/tmp"));
        assert_eq!(s.interpreters, config.interpreters);
        assert_eq!(s.max_concurrent_slaves, 3);
        assert_eq!(s.queue_limit, 5);
        assert_eq!(s.queue_timeout, Duration::from_secs(7));
        assert_eq!(s.kill_slaves_after, Some(Duration::from_secs(3600)));
        assert_eq!(s.kill_grace, Duration::from_secs(2));
        assert_eq!(s.heartbeat_interval, Duration::from_secs(4));
        assert_eq!(s.heartbeat_misses, 6);
        assert_eq!(s.shutdown_grace, Duration::from_secs(9));
        assert_eq!(s.max_frame_len, 1000);
        assert_eq!(s.server_name, "box");
        assert_eq!(s.max_channels_per_session, 11);
        assert_eq!(s.open_timeout, Duration::from_secs(3));
        assert_eq!(s.outbox_limit, 12345);
        assert_eq!(s.client_stall_timeout, Duration::from_secs(12));
        assert_eq!(s.idle_session_timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.slave_inbox_limit, 23456);
        assert!(s.insecure_plaintext);
    }

    #[test]
    fn builder_defaults_are_the_config_defaults() {
        let s = ServerBuilder::default().settings;
        let c = ServeConfig::default();
        assert_eq!(s.address, c.bind);
        assert_eq!(s.port, c.port);
        assert_eq!(s.queue_timeout, c.queue_timeout);
        assert_eq!(s.kill_slaves_after, c.kill_slaves_after);
        assert_eq!(s.interpreters, c.interpreters);
        assert!(!s.insecure_plaintext);
    }

    #[tokio::test]
    async fn non_loopback_without_the_opt_in_is_refused_before_binding() {
        // Something already listens there: binding would fail with "in use" instead.
        let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = ServerBuilder::default()
            .address("0.0.0.0".parse().unwrap())
            .port(port)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, ServeError::Plaintext { .. }), "{err}");
        let err = ServerBuilder::default()
            .address("0.0.0.0".parse().unwrap())
            .port(port)
            .insecure_plaintext(true)
            .containment(Containment {
                allow_root_slaves: true,
                ..Containment::default()
            })
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, ServeError::Bind { .. }), "{err}");
    }
}
