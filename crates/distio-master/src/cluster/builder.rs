//! Building a [`Cluster`]: its hosts and what they share.

use distio_proto::remote::passphrase::Passphrase;
use std::sync::Arc;
use std::time::Duration;

use super::Cluster;
use super::member::Member;
use super::placement::{LeastLoaded, Placement};
use crate::{ClientTls, Host, LinkSettings, MasterError, expand_slurm_nodelist};

/// The first delay before a down host is probed again.
pub const DEFAULT_PROBE_FIRST: Duration = Duration::from_millis(500);
/// The longest delay between two probes of a down host.
pub const DEFAULT_PROBE_MAX: Duration = Duration::from_secs(10);

/// Builds a [`Cluster`]: hosts from URLs, [`Host`]s with their own settings, a DNS name
/// that resolves to several addresses (a Kubernetes headless Service), or a Slurm node
/// list; the credentials, TLS, passphrase and [`LinkSettings`] they share (a host given
/// with its own keeps them); the [`Placement`] policy; and how down hosts are probed.
///
/// ```no_run
/// use distio_master::{Cluster, Host, RoundRobin};
/// # async fn demo() -> Result<(), distio_master::MasterError> {
/// let cluster = Cluster::builder()
///     .urls(["ws://node1:1337", "ws://node2:1337"])
///     .host(Host::parse("ws://big-box:1337")?.with_credentials("admin", "other"))
///     .dns("distio-serve.jobs.svc.cluster.local", 1337)
///     .credentials("ops", "s3cret")
///     .placement(RoundRobin::default())
///     .build()
///     .await?;
/// assert!(cluster.len() >= 3);
/// # Ok(()) }
/// ```
#[must_use]
pub struct ClusterBuilder {
    hosts: Vec<Result<Host, MasterError>>,
    dns: Vec<(String, u16)>,
    slurm: Vec<(String, u16)>,
    secure: bool,
    credentials: Option<(String, String)>,
    tls: Option<ClientTls>,
    passphrase: Option<Arc<Passphrase>>,
    link: Option<LinkSettings>,
    policy: Box<dyn Placement>,
    backoff: (Duration, Duration),
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            hosts: Vec::new(),
            dns: Vec::new(),
            slurm: Vec::new(),
            secure: false,
            credentials: None,
            tls: None,
            passphrase: None,
            link: None,
            policy: Box::new(LeastLoaded),
            backoff: (DEFAULT_PROBE_FIRST, DEFAULT_PROBE_MAX),
        }
    }
}

impl ClusterBuilder {
    /// Adds the host at `url` (`ws://[user:password@]host[:port]`, `wss://…`, or
    /// `host:port`). A bad URL fails [`build`](Self::build).
    pub fn url(mut self, url: impl AsRef<str>) -> Self {
        self.hosts.push(Host::parse(url.as_ref()));
        self
    }

    /// Adds the hosts at each of `urls`.
    ///
    /// ```
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let cluster = distio_master::Cluster::builder()
    ///     .urls(["ws://127.0.0.1:7001", "ws://127.0.0.1:7002"])
    ///     .build()
    ///     .await?;
    /// assert_eq!(cluster.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for url in urls {
            self = self.url(url);
        }
        self
    }

    /// Adds `host` with its own settings (credentials, TLS, passphrase, link settings),
    /// which win over the shared ones.
    pub fn host(mut self, host: Host) -> Self {
        self.hosts.push(Ok(host));
        self
    }

    /// Adds one host per address `name` resolves to when the cluster is built, on `port`
    /// (a Kubernetes headless Service resolves to all its pods). With TLS, each server's
    /// certificate must name its address.
    pub fn dns(mut self, name: impl Into<String>, port: u16) -> Self {
        self.dns.push((name.into(), port));
        self
    }

    /// Adds one host per node of a Slurm node list (`SLURM_JOB_NODELIST`, compressed forms
    /// like `node[01-04,07]` included), on `port`. A list that cannot be read fails
    /// [`build`](Self::build).
    ///
    /// ```
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let cluster = distio_master::Cluster::builder()
    ///     .slurm_nodelist("node[01-03],gpu7", 1337)
    ///     .build()
    ///     .await?;
    /// assert_eq!(cluster.len(), 4);
    /// # Ok(()) }
    /// ```
    pub fn slurm_nodelist(mut self, list: impl Into<String>, port: u16) -> Self {
        self.slurm.push((list.into(), port));
        self
    }

    /// Whether hosts from [`dns`](Self::dns) and [`slurm_nodelist`](Self::slurm_nodelist)
    /// are reached over TLS (`wss://`). Default: no.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The user and password for hosts that have none of their own.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// How `wss://` hosts without TLS settings of their own are verified.
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The passphrase for hosts without one of their own (see
    /// [`Host::with_passphrase`]); derived once for all of them.
    pub fn passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(Arc::new(Passphrase::new(passphrase)));
        self
    }

    /// The heartbeat and resume window for hosts whose link settings are the default.
    pub fn link(mut self, link: LinkSettings) -> Self {
        self.link = Some(link);
        self
    }

    /// The placement policy (default [`LeastLoaded`]).
    pub fn placement(mut self, policy: impl Placement) -> Self {
        self.policy = Box::new(policy);
        self
    }

    /// How a down host is probed: first after about `first`, then twice as long each
    /// time up to `max`, each delay drawn from its upper half. Default 500 ms and 10 s.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = (first, max);
        self
    }

    /// Resolves the DNS names, expands the node lists, applies the shared settings, and
    /// makes the cluster. Nothing is contacted yet: sessions open with the first spawn.
    ///
    /// # Errors
    /// A bad URL or node list, a DNS name that does not resolve, or no host at all.
    pub async fn build(self) -> Result<Cluster, MasterError> {
        let scheme = if self.secure { "wss" } else { "ws" };
        let mut hosts = Vec::new();
        for host in self.hosts {
            hosts.push(host?);
        }
        for (list, port) in &self.slurm {
            for node in expand_slurm_nodelist(list)? {
                hosts.push(Host::parse(&format!("{scheme}://{node}:{port}"))?);
            }
        }
        for (name, port) in &self.dns {
            let lookup = tokio::net::lookup_host((name.as_str(), *port));
            let found = tokio::time::timeout(crate::CONNECT_TIMEOUT, lookup)
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", crate::CONNECT_TIMEOUT),
                    ))
                })
                .map_err(|source| MasterError::ClusterDns {
                    name: name.clone(),
                    source,
                })?;
            let mut addrs: Vec<_> = found.collect();
            addrs.sort();
            addrs.dedup();
            for addr in addrs {
                hosts.push(Host::parse(&format!("{scheme}://{addr}"))?);
            }
        }
        let mut seen: Vec<Host> = Vec::new();
        let mut members = Vec::new();
        for mut host in hosts {
            if host.user.is_none()
                && let Some((user, password)) = &self.credentials
            {
                host = host.with_credentials(user.clone(), password.clone());
            }
            if host.tls.is_none() && host.secure {
                host.tls.clone_from(&self.tls);
            }
            if host.passphrase.is_none() {
                host.passphrase.clone_from(&self.passphrase);
            }
            if let Some(link) = self.link
                && host.link == LinkSettings::default()
            {
                host.link = link;
            }
            if !seen.contains(&host) {
                seen.push(host.clone());
                members.push(Member::new(members.len(), host));
            }
        }
        if members.is_empty() {
            return Err(MasterError::NoHosts);
        }
        Ok(Cluster::new(members, self.policy, self.backoff))
    }
}

impl std::fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("hosts", &self.hosts.len())
            .field("dns", &self.dns)
            .field("slurm", &self.slurm)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_settings_fill_in_and_a_host_keeps_its_own() {
        let cluster = Cluster::builder()
            .url("ws://a:1")
            .host(
                Host::parse("ws://b:2")
                    .unwrap()
                    .with_credentials("own", "pw"),
            )
            .url("ws://a:1")
            .credentials("shared", "pw2")
            .build()
            .await
            .unwrap();
        assert_eq!(cluster.len(), 2, "the same host twice is one host");
        let users: Vec<_> = cluster
            .inner()
            .members
            .iter()
            .map(|m| m.host.user.clone())
            .collect();
        assert_eq!(users, [Some("shared".into()), Some("own".into())]);
        assert!(!format!("{cluster:?}").contains("pw"));
    }

    #[tokio::test]
    async fn an_empty_cluster_or_a_bad_url_fails_to_build() {
        assert!(matches!(
            Cluster::builder().build().await,
            Err(MasterError::NoHosts)
        ));
        assert!(matches!(
            Cluster::builder().url("ftp://x").build().await,
            Err(MasterError::HostUrl { .. })
        ));
    }

    #[tokio::test]
    async fn a_dns_name_gives_one_host_per_address() {
        let cluster = Cluster::builder()
            .dns("localhost", 1337)
            .build()
            .await
            .unwrap();
        assert!(!cluster.is_empty());
        assert!(cluster.hosts().iter().all(|h| h.host.ends_with(":1337")));
    }
}
