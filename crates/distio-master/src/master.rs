//! The master: owns slaves, names them, and sends them work.

use distio_proto::{FrameCodec, Hello, Payload, SlaveId, SlaveIdentity};
use futures_util::future::join_all;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::AbortHandle;
use tokio_util::codec::FramedRead;

use crate::defaults::Defaults;
use crate::limits::Limits;
use crate::link::framed::run_writer;
use crate::link::outbox::Outbox;
use crate::link::reader::run_reader;
use crate::link::unix::{DirectWriter, run_direct_writer};
use crate::link::{FrameSink, FrameStream, LinkKind};
use crate::remote::{RemoteChild, RemoteProcess, spawn_remote};
use crate::room::Room;
use crate::slave_core::{CoreParts, Roster, SlaveCore};
use crate::spawn::{Captured, DEFAULT_CLOSE_GRACE, LocalProcess, spawn_local, watch_process};
use crate::sync::lock;
use crate::{
    Broadcast, IntoTargets, Link, Location, MasterError, Signal, Slave, SlaveArray, SpawnOptions,
    Target, Timeout,
};

/// Starts slaves, keeps the list of live ones, and sends them work.
///
/// Cheap to clone: clones share the same slaves. When the last clone is dropped, the live
/// slaves no other handle refers to are killed, so a master never leaves orphan processes.
///
/// ```no_run
/// use distio_master::{Answer, Master, SpawnOptions, Target};
/// use std::time::Duration;
///
/// # async fn demo() -> Result<(), distio_master::MasterError> {
/// let master = Master::new();
/// master.set_default_timeout(Duration::from_secs(30));
/// let slaves = master.spawn_many(5, SpawnOptions::new("./worker").group("squares")).await?;
///
/// // Broadcast to a group; the data is encoded once.
/// let all = master.tell(Target::group("squares")).to("say hello", &()).await?;
/// println!("{}", all.join_values::<String>(", ")?);
///
/// // One slave, by id.
/// let first = master.slave(slaves[0].id()).expect("live");
/// println!("{:?}", first.exec("say hello", &()).await?.value::<String>());
///
/// master.close_all().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Master {
    shared: Arc<MasterShared>,
}

#[derive(Default)]
struct MasterShared {
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    defaults: Arc<Defaults>,
    codec: FrameCodec,
    /// Sessions with the hosts of remote slaves, one per host.
    sessions: crate::remote::Sessions,
}

#[derive(Default)]
struct Registry {
    /// The slaves every list and query sees: started, and not stopped or ended.
    live: BTreeMap<SlaveId, Slave>,
    /// Alias → the id that holds it (reserved from spawn until the slave is stopped or
    /// ends).
    aliases: HashMap<String, SlaveId>,
    /// Slaves closed, shut down or killed (or whose link is ending) that have not ended
    /// yet: listed nowhere, but held so that dropping the caller's handles does not kill
    /// them mid-close, and so that [`Master::exited_all`] waits for them.
    stopping: HashMap<SlaveId, Slave>,
}

impl Registry {
    /// Takes slave `id` off the lists and frees its alias (if it still holds it: a newer
    /// slave may have taken it since); it stays held until it ends. Does nothing if it is
    /// not listed.
    fn unlist(&mut self, id: SlaveId) {
        let Some(slave) = self.live.remove(&id) else {
            return;
        };
        if let Some(alias) = slave.alias()
            && self.aliases.get(alias) == Some(&id)
        {
            self.aliases.remove(alias);
        }
        self.stopping.insert(id, slave);
    }

    /// Slave `id` has ended: unlisted if it was not, and no longer held. Returns the
    /// master's handle, to be dropped once the registry is unlocked.
    fn release(&mut self, id: SlaveId) -> Option<Slave> {
        self.unlist(id);
        self.stopping.remove(&id)
    }
}

/// A slave's way back to the registry of the master that started it.
struct Listing(Weak<MasterShared>);

impl Roster for Listing {
    fn unlist(&self, id: SlaveId) {
        if let Some(shared) = self.0.upgrade() {
            lock(&shared.registry).unlist(id);
        }
    }

    fn release(&self, id: SlaveId) {
        if let Some(shared) = self.0.upgrade() {
            let released = lock(&shared.registry).release(id);
            drop(released);
        }
    }
}

/// The task that writes a link, before it is started.
enum Writer {
    Channel(FrameSink, UnboundedReceiver<distio_proto::Frame>),
    Direct(Arc<DirectWriter>),
    Remote(Arc<crate::remote::RemoteOutbox>),
}

/// What the reader task reads, before it is started.
enum Reader {
    Stream(FrameStream),
    Unix(FramedRead<OwnedReadHalf, FrameCodec>),
}

/// Everything needed to wire up a new slave's link.
struct NewSlave {
    id: SlaveId,
    alias: Option<String>,
    group: Option<String>,
    location: Location,
    pid: Option<u32>,
    link: Link,
    default_timeout: Timeout,
    catch_all: Option<bool>,
    close_grace: Duration,
    limits: Limits,
    child: Option<LocalProcess>,
    extra_tasks: Vec<AbortHandle>,
    captured: Option<Arc<Captured>>,
    /// For a remote slave: its channel on its host's session, and the server's id for it.
    remote: Option<(Arc<RemoteProcess>, SlaveId)>,
}

impl Master {
    /// A master with no slaves.
    pub fn new() -> Self {
        Master::default()
    }

    /// A master whose links use `codec` (for a frame limit other than the default; slaves
    /// must use the same limit).
    pub fn with_codec(codec: FrameCodec) -> Self {
        Master {
            shared: Arc::new(MasterShared {
                codec,
                ..MasterShared::default()
            }),
        }
    }

    // ----- defaults -----

    /// The default request timeout for all slaves ([`Timeout::Inherit`], the default, and
    /// [`Timeout::Never`]: no timeout).
    ///
    /// ```
    /// use distio_master::{Master, Timeout};
    /// assert_eq!(Master::new().default_timeout(), Timeout::Inherit);
    /// ```
    pub fn default_timeout(&self) -> Timeout {
        self.shared.defaults.timeout()
    }

    /// Sets the default request timeout for all slaves: a [`Duration`] or
    /// [`Timeout::Never`]. A slave's default or a request's own timeout overrides it.
    ///
    /// ```
    /// use distio_master::{Master, Timeout};
    /// use std::time::Duration;
    /// let master = Master::new();
    /// master.set_default_timeout(Duration::from_secs(30));
    /// assert_eq!(master.default_timeout(), Timeout::After(Duration::from_secs(30)));
    /// ```
    pub fn set_default_timeout(&self, timeout: impl Into<Timeout>) {
        self.shared.defaults.set_timeout(timeout.into());
    }

    /// The default catch-all setting for all slaves (`None`: off).
    pub fn default_catch_all(&self) -> Option<bool> {
        self.shared.defaults.catch_all()
    }

    /// Sets the default catch-all setting for all slaves (`None`: off); a slave's default
    /// or a request's own setting overrides it.
    ///
    /// ```
    /// let master = distio_master::Master::new();
    /// master.set_default_catch_all(true);
    /// assert_eq!(master.default_catch_all(), Some(true));
    /// ```
    pub fn set_default_catch_all(&self, catch_all: impl Into<Option<bool>>) {
        self.shared.defaults.set_catch_all(catch_all.into());
    }

    // ----- starting slaves -----

    /// Starts a local slave process and returns once it has finished its handshake (at most
    /// [`READY_TIMEOUT`](crate::READY_TIMEOUT); a slave that fails it is killed and the
    /// error returned). With [`SpawnOptions::wait_ready`]`(false)` it returns as soon as
    /// the process has started: requests sent before the handshake finishes are queued and
    /// delivered in order, and [`Slave::ready`] waits for it.
    pub async fn spawn(&self, options: SpawnOptions) -> Result<Slave, MasterError> {
        let wait = options.wait_ready;
        let slave = self.start_process(options).await?;
        if wait {
            ready_or_kill(&slave).await?;
        }
        Ok(slave)
    }

    /// Starts the process of a local slave and wires it up, without waiting for it.
    async fn start_process(&self, options: SpawnOptions) -> Result<Slave, MasterError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.reserve_alias(options.alias.as_deref(), id)?;
        let label = options
            .alias
            .clone()
            .unwrap_or_else(|| format!("slave #{id}"));
        if let Some((cluster, script)) = &options.cluster {
            return self
                .start_on_cluster(cluster, script, &options, id, label)
                .await;
        }
        if let Some(remote) = &options.remote {
            return self.start_remote(remote, &options, id, label).await;
        }
        let child = match spawn_local(&options, label).await {
            Ok(child) => child,
            Err(err) => {
                self.release_alias(options.alias.as_deref(), id);
                return Err(err);
            }
        };
        Ok(self.start(NewSlave {
            id,
            alias: options.alias,
            group: options.group,
            location: Location::Local {
                path: options.process.program().to_owned(),
            },
            pid: Some(child.pid),
            link: child.link,
            default_timeout: options.default_timeout,
            catch_all: options.catch_all,
            close_grace: options.close_grace,
            limits: options.limits,
            child: Some(child.process),
            // The output pumps end with the process (see `spawn_local`).
            extra_tasks: Vec::new(),
            captured: child.captured,
            remote: None,
        }))
    }

    /// Starts a slave on a host and wires it up, without waiting for its handshake.
    async fn start_remote(
        &self,
        remote: &crate::remote::RemoteSpec,
        options: &SpawnOptions,
        id: SlaveId,
        label: String,
    ) -> Result<Slave, MasterError> {
        let started = match remote.target() {
            Ok(target) => {
                let child = spawn_remote(
                    &self.shared.sessions,
                    &target,
                    options,
                    id,
                    &label,
                    self.shared.codec,
                )
                .await;
                child.map(|child| (target, child))
            }
            Err(err) => Err(err),
        };
        match started {
            Ok((target, child)) => Ok(self.start_remote_child(target, child, options, id)),
            Err(err) => {
                self.release_alias(options.alias.as_deref(), id);
                Err(err)
            }
        }
    }

    /// Starts a slave on the host of `cluster` its placement chooses, and on the next
    /// when one refuses, until one takes it or none is left.
    async fn start_on_cluster(
        &self,
        cluster: &crate::Cluster,
        script: &str,
        options: &SpawnOptions,
        id: SlaveId,
        label: String,
    ) -> Result<Slave, MasterError> {
        let started = self
            .spawn_on_cluster(cluster, script, options, id, &label)
            .await;
        match started {
            Ok((target, child)) => Ok(self.start_remote_child(target, child, options, id)),
            Err(err) => {
                self.release_alias(options.alias.as_deref(), id);
                Err(err)
            }
        }
    }

    async fn spawn_on_cluster(
        &self,
        cluster: &crate::Cluster,
        script: &str,
        options: &SpawnOptions,
        id: SlaveId,
        label: &str,
    ) -> Result<(crate::remote::RemoteTarget, RemoteChild), MasterError> {
        let inner = cluster.inner();
        let codec = distio_proto::remote::SessionCodec::with_max_frame_len(
            self.shared.codec.max_frame_len(),
        );
        let mut refusals: Vec<crate::HostRefusal> = Vec::new();
        let mut tried: Vec<usize> = Vec::new();
        loop {
            inner.refresh(&self.shared.sessions, codec).await;
            let Some(place) = inner.pick(&tried) else {
                for (index, reason) in inner.down_reasons() {
                    if !tried.contains(&index) {
                        refusals.push(crate::HostRefusal {
                            host: inner.shown(index),
                            reason: format!("down: {reason}"),
                        });
                    }
                }
                return Err(MasterError::NoHostAvailable {
                    script: script.to_owned(),
                    refusals,
                });
            };
            let target = crate::remote::RemoteTarget {
                host: place.host().clone(),
                script: script.to_owned(),
            };
            let child = spawn_remote(
                &self.shared.sessions,
                &target,
                options,
                id,
                label,
                self.shared.codec,
            )
            .await;
            let err = match child {
                Ok(child) => return Ok((target, child)),
                Err(err) => err,
            };
            let index = place.index();
            drop(place);
            match crate::cluster::judge(&err) {
                crate::cluster::Verdict::Fatal => return Err(err),
                crate::cluster::Verdict::HostDown => inner.mark_down(index, err.to_string()),
                crate::cluster::Verdict::TryElsewhere => {}
            }
            tracing::debug!(host = %inner.shown(index), "a host did not start {script}: {err}");
            refusals.push(crate::HostRefusal {
                host: inner.shown(index),
                reason: err.to_string(),
            });
            tried.push(index);
        }
    }

    /// Wires up a slave a host has started.
    fn start_remote_child(
        &self,
        target: crate::remote::RemoteTarget,
        child: RemoteChild,
        options: &SpawnOptions,
        id: SlaveId,
    ) -> Slave {
        self.start(NewSlave {
            id,
            alias: options.alias.clone(),
            group: options.group.clone(),
            location: Location::Remote {
                host: target.host.to_string(),
                script: target.script,
            },
            pid: Some(child.pid),
            link: child.link,
            default_timeout: options.default_timeout,
            catch_all: options.catch_all,
            close_grace: options.close_grace,
            limits: options.limits,
            child: None,
            extra_tasks: Vec::new(),
            captured: child.captured,
            remote: Some((child.process, child.server_id)),
        })
    }

    /// Starts `count` local slaves. With an alias `a`, they are named `a`, `a-1`, `a-2`, ….
    /// All or nothing: if one fails to start, the others are killed and the error returned;
    /// by then none of them is listed and their aliases are free again.
    pub async fn spawn_many(
        &self,
        count: usize,
        options: SpawnOptions,
    ) -> Result<SlaveArray, MasterError> {
        // Started together: remote spawns then share their round trips to the host (local
        // ones are forked one after another by the spawner thread anyway).
        let starts = (0..count).map(|n| {
            let mut each = options.clone();
            if let (Some(alias), true) = (&options.alias, n > 0) {
                each.alias = Some(format!("{alias}-{n}"));
            }
            self.start_process(each)
        });
        let mut slaves = SlaveArray::new();
        let mut failed = None;
        for started in join_all(starts).await {
            match started {
                Ok(slave) => slaves.push(slave),
                Err(err) => {
                    failed.get_or_insert(err);
                }
            }
        }
        if let Some(err) = failed {
            // Unlisted at once; waited for (briefly: SIGKILL) so none outlives the error.
            let _ = slaves.kill(Signal::KILL).await;
            return Err(err);
        }
        if options.wait_ready {
            // All handshakes at once: starting N slaves costs one handshake's wait, not N.
            let ready = join_all(slaves.iter().map(|slave| slave.ready())).await;
            if let Some(err) = ready.into_iter().find_map(Result::err) {
                let _ = slaves.kill(Signal::KILL).await;
                return Err(err);
            }
        }
        Ok(slaves)
    }

    /// Adds a slave reached over `link` (an in-memory pipe, a socket, a remote host): the
    /// master sends its hello there and treats whatever answers as a slave.
    pub fn attach(
        &self,
        link: Link,
        description: impl Into<String>,
        alias: Option<String>,
        group: Option<String>,
    ) -> Result<Slave, MasterError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.reserve_alias(alias.as_deref(), id)?;
        Ok(self.start(NewSlave {
            id,
            alias,
            group,
            location: Location::Attached {
                description: description.into(),
            },
            pid: None,
            link,
            default_timeout: Timeout::Inherit,
            catch_all: None,
            close_grace: DEFAULT_CLOSE_GRACE,
            limits: Limits::default(),
            child: None,
            extra_tasks: Vec::new(),
            captured: None,
            remote: None,
        }))
    }

    fn reserve_alias(&self, alias: Option<&str>, id: SlaveId) -> Result<(), MasterError> {
        let Some(alias) = alias else { return Ok(()) };
        let mut registry = lock(&self.shared.registry);
        if let Some(&owner) = registry.aliases.get(alias) {
            return Err(MasterError::AliasTaken {
                alias: alias.to_owned(),
                owner,
            });
        }
        registry.aliases.insert(alias.to_owned(), id);
        Ok(())
    }

    fn release_alias(&self, alias: Option<&str>, id: SlaveId) {
        if let Some(alias) = alias {
            let mut registry = lock(&self.shared.registry);
            if registry.aliases.get(alias) == Some(&id) {
                registry.aliases.remove(alias);
            }
        }
    }

    fn start(&self, new: NewSlave) -> Slave {
        let codec = self.shared.codec;
        let room = Arc::new(Room::new(new.limits.outbox_limit));
        let (outbox, writer, reader) = match new.link.kind {
            LinkKind::Framed { sink, stream } => {
                let (tx, queued) = unbounded_channel();
                (
                    Outbox::Channel(tx),
                    Writer::Channel(sink, queued),
                    Reader::Stream(stream),
                )
            }
            LinkKind::Remote { parts, stream } => {
                let outbox = parts.outbox(Arc::clone(&room));
                (
                    Outbox::Remote(Arc::clone(&outbox)),
                    Writer::Remote(outbox),
                    Reader::Stream(stream),
                )
            }
            LinkKind::Unix { read, write } => {
                let direct = Arc::new(DirectWriter::new(write, codec, Arc::clone(&room)));
                (
                    Outbox::Direct(Arc::clone(&direct)),
                    Writer::Direct(direct),
                    Reader::Unix(FramedRead::new(read, codec)),
                )
            }
        };
        let id = new.id;
        let roster = Box::new(Listing(Arc::downgrade(&self.shared)));
        let core = Arc::new(SlaveCore::new(CoreParts {
            id: new.id,
            alias: new.alias.clone(),
            group: new.group,
            location: new.location,
            pid: new.pid,
            master_defaults: Arc::clone(&self.shared.defaults),
            codec,
            close_grace: new.close_grace,
            shutdown_grace: new.limits.shutdown_grace,
            outbox,
            room,
            max_in_flight: new.limits.max_in_flight,
            roster,
            remote: new.remote.as_ref().map(|(process, _)| Arc::clone(process)),
        }));
        core.defaults.set_timeout(new.default_timeout);
        core.defaults.set_catch_all(new.catch_all);
        let mut identity = SlaveIdentity::local(new.id, new.alias.unwrap_or_default());
        if let Some((_, server_id)) = &new.remote {
            identity.server_id = Some(*server_id);
            identity.remote_id = Some(new.id);
        }
        let hello = Hello::new(identity);

        // Listed before its tasks start, so a slave that ends at once is also unlisted.
        let mut registry = lock(&self.shared.registry);
        let writer = match writer {
            Writer::Channel(sink, queued) => {
                tokio::spawn(run_writer(Arc::clone(&core), sink, queued, hello))
            }
            Writer::Direct(direct) => {
                tokio::spawn(run_direct_writer(Arc::clone(&core), direct, hello))
            }
            Writer::Remote(outbox) => tokio::spawn(outbox.run(Arc::clone(&core), hello)),
        };
        let reader = match reader {
            Reader::Stream(stream) => tokio::spawn(run_reader(Arc::clone(&core), stream)),
            Reader::Unix(framed) => tokio::spawn(run_reader(Arc::clone(&core), framed)),
        };
        let mut tasks = vec![writer.abort_handle(), reader.abort_handle()];
        if let Some(child) = new.child {
            tasks.push(tokio::spawn(watch_process(Arc::clone(&core), child)).abort_handle());
        }
        tasks.extend(new.extra_tasks);
        let slave = Slave::new(core, tasks, new.captured);
        registry.live.insert(id, slave.clone());
        slave
    }

    // ----- sending work -----

    /// Addresses a request to `targets`: one target — a handle (`&slave`), an id, an alias
    /// (`"worker"`) or a [`Target`] such as [`Target::group`] — or a collection of them
    /// (`[&a, &b]`, `&slaves`, `vec![..]`); duplicates are sent to once. Finish with
    /// [`Tell::to`]; awaiting gives a [`ResponseArray`](crate::ResponseArray) in target
    /// order, also for one slave. A target that names no live slave fails the request with
    /// [`MasterError::NoSuchSlave`], and no slave at all with [`MasterError::NoTargets`].
    ///
    /// For one slave whose handle you hold, [`Slave::exec`] is shorter and gives a single
    /// [`Response`](crate::Response).
    ///
    /// ```no_run
    /// use distio_master::{Answer, Master, SpawnOptions, Target};
    ///
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let master = Master::new();
    /// let slave = master.spawn(SpawnOptions::new("./worker").alias("w").group("g")).await?;
    /// let one = master.tell(&slave).to("square", &3u64).await?;
    /// let by_alias = master.tell("w").to("square", &3u64).await?;
    /// let group = master.tell(Target::group("g")).to("square", &3u64).await?;
    /// let many = master.tell([0u64, 1]).to("square", &3u64).await?;
    /// assert_eq!(one.len(), 1);
    /// // The same, without the array:
    /// let n: u64 = slave.exec("square", &3u64).await?.value()?;
    /// # Ok(()) }
    /// ```
    pub fn tell(&self, targets: impl IntoTargets) -> Tell {
        Tell {
            slaves: self.resolve_all(targets),
        }
    }

    /// Resolves targets to live slaves, in order, without duplicates.
    fn resolve_all(&self, targets: impl IntoTargets) -> Result<Vec<Slave>, MasterError> {
        let targets = targets.into_targets();
        let registry = lock(&self.shared.registry);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut add = |slave: &Slave| {
            if seen.insert(slave.id()) {
                out.push(slave.clone());
            }
        };
        for target in targets {
            match target {
                Target::Slave(slave) => add(&slave),
                Target::Group(group) => registry
                    .live
                    .values()
                    .filter(|s| s.in_group(&group))
                    .for_each(&mut add),
                other => match registry.find(&other) {
                    Some(slave) => add(slave),
                    None => {
                        return Err(MasterError::NoSuchSlave {
                            target: other.to_string(),
                        });
                    }
                },
            }
        }
        Ok(out)
    }

    // ----- finding slaves -----

    /// The live slave `target` names: a handle resolves to itself while live, an id or an
    /// alias to the live slave holding it, a group to its first live slave.
    ///
    /// ```no_run
    /// use distio_master::{Master, SpawnOptions};
    ///
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let master = Master::new();
    /// let slave = master.spawn(SpawnOptions::new("./worker").alias("w")).await?;
    /// assert_eq!(master.slave("w"), Some(slave.clone()));
    /// assert_eq!(master.slave(slave.id()), Some(slave));
    /// assert!(master.slave(999u64).is_none());
    /// # Ok(()) }
    /// ```
    pub fn slave(&self, target: impl Into<Target>) -> Option<Slave> {
        lock(&self.shared.registry).find(&target.into()).cloned()
    }

    /// The live slaves `targets` names, in order and without duplicates (groups expand to
    /// their live members), for filtering further: `master.slaves(targets)?.idle()`.
    /// A target that names no live slave gives [`MasterError::NoSuchSlave`].
    ///
    /// ```no_run
    /// use distio_master::{Master, SpawnOptions};
    ///
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let master = Master::new();
    /// master.spawn_many(3, SpawnOptions::new("./worker").alias("w")).await?;
    /// let quietest = master.slaves(["w", "w-2"])?.least_busy();
    /// assert!(quietest.is_some());
    /// # Ok(()) }
    /// ```
    pub fn slaves(&self, targets: impl IntoTargets) -> Result<SlaveArray, MasterError> {
        self.resolve_all(targets).map(SlaveArray::from)
    }

    /// All live slaves (not closed, shut down, killed or exited), by id: the collection
    /// every query starts from, narrowed with [`SlaveArray`]'s filters
    /// ([`idle`](SlaveArray::idle), [`in_group`](SlaveArray::in_group), …) and picks
    /// ([`least_busy`](SlaveArray::least_busy), [`by_alias`](SlaveArray::by_alias), …).
    ///
    /// A slave leaves this list the moment it is closed, shut down or killed (when the call
    /// is made, not when the process has exited) or its link ends; its alias is free again
    /// from then on.
    ///
    /// ```no_run
    /// use distio_master::{Master, SpawnOptions};
    ///
    /// # async fn demo() -> Result<(), distio_master::MasterError> {
    /// let master = Master::new();
    /// master.spawn_many(4, SpawnOptions::new("./worker").group("x")).await?;
    /// assert_eq!(master.all().len(), 4);
    /// if let Some(slave) = master.all().idle().in_group("x").least_busy() {
    ///     slave.exec("square", &3u64).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn all(&self) -> SlaveArray {
        lock(&self.shared.registry).live.values().cloned().collect()
    }

    // ----- lifecycle -----

    /// Closes the slaves `targets` names, now (see [`SlaveArray::close`]): how each exited,
    /// in target order.
    ///
    /// ```no_run
    /// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
    /// let statuses = master.close("worker").await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(
        &self,
        targets: impl IntoTargets,
    ) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        self.slaves(targets)?.close().await
    }

    /// Shuts down the slaves `targets` names, after their pending requests (see
    /// [`SlaveArray::shutdown`]).
    ///
    /// ```no_run
    /// use distio_master::Target;
    /// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
    /// master.shutdown(Target::group("g")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(
        &self,
        targets: impl IntoTargets,
    ) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        self.slaves(targets)?.shutdown().await
    }

    /// Sends `signal` to the slaves `targets` names and waits for them (see
    /// [`SlaveArray::kill`]).
    ///
    /// ```no_run
    /// use distio_master::Signal;
    /// # async fn demo(master: distio_master::Master) -> Result<(), distio_master::MasterError> {
    /// master.kill("worker", Signal::KILL).await?;
    /// # Ok(()) }
    /// ```
    pub async fn kill(
        &self,
        targets: impl IntoTargets,
        signal: Signal,
    ) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        self.slaves(targets)?.kill(signal).await
    }

    /// Closes every live slave (see [`close`](Self::close)).
    pub async fn close_all(&self) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        self.all().close().await
    }

    /// Shuts down every live slave after its pending requests (see
    /// [`shutdown`](Self::shutdown)).
    pub async fn shutdown_all(&self) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        self.all().shutdown().await
    }

    /// Sends `signal` to every live slave and waits for them (see [`kill`](Self::kill)).
    pub async fn kill_all(&self, signal: Signal) -> Result<Vec<Option<ExitStatus>>, MasterError> {
        self.all().kill(signal).await
    }

    /// Waits until every slave of this master has ended: the live ones, and those closed,
    /// shut down or killed (no longer listed) that have not ended yet.
    pub async fn exited_all(&self) {
        let slaves: Vec<Slave> = {
            let registry = lock(&self.shared.registry);
            registry
                .live
                .values()
                .chain(registry.stopping.values())
                .cloned()
                .collect()
        };
        join_all(slaves.iter().map(Slave::exited)).await;
    }
}

impl Registry {
    fn find(&self, target: &Target) -> Option<&Slave> {
        match target {
            Target::Slave(slave) => self.live.get(&slave.id()).filter(|live| *live == slave),
            Target::Id(id) => self.live.get(id),
            Target::Alias(alias) => self.aliases.get(alias).and_then(|id| self.live.get(id)),
            Target::Group(group) => self.live.values().find(|s| s.in_group(group)),
        }
    }
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("live", &self.all().ids())
            .finish()
    }
}

/// A request being addressed; see [`Master::tell`].
#[must_use = "call `to` to name the task"]
#[derive(Debug)]
pub struct Tell {
    slaves: Result<Vec<Slave>, MasterError>,
}

impl Tell {
    /// The task and its data; await the result for a
    /// [`ResponseArray`](crate::ResponseArray).
    pub fn to<T: Serialize + ?Sized>(self, task: impl Into<String>, data: &T) -> Broadcast {
        Broadcast::new(
            self.slaves,
            task.into(),
            Payload::encode(data).map_err(MasterError::Encode),
        )
    }
}

/// Waits for `slave`'s handshake; a slave that does not make it is killed (and unlisted).
async fn ready_or_kill(slave: &Slave) -> Result<(), MasterError> {
    if let Err(err) = slave.ready().await {
        let _ = slave.kill(Signal::KILL).await;
        return Err(err);
    }
    Ok(())
}
