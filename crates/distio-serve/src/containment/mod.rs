//! What confines and contains the slaves of a server, set up once at start: the scripts
//! root held open (see `server::script`), the user slaves run as, their resource limits and
//! their cgroups.
//!
//! A server running as root refuses to start unless it has a `run_as_user` or
//! `allow_root_slaves` is set. Where cgroups v2 can be written, each slave gets its own
//! cgroup ([`cgroup`]); otherwise slaves are ended by process group, as always.

mod account;
mod cgroup;

pub(crate) use cgroup::SlaveCgroup;

use distio_master::hosted::ResourceLimits;
use std::path::Path;

use crate::server::script::Root;
use crate::{Containment, ServeError};
use cgroup::SlaveCgroups;

/// How slaves are confined and contained; shared by every session of a server.
#[derive(Debug)]
pub(crate) struct Jail {
    pub(crate) root: Root,
    pub(crate) limits: ResourceLimits,
    /// `(uid, gid)` to run slaves as; `None`: as the server's user.
    pub(crate) user: Option<(u32, u32)>,
    pub(crate) allow_world_writable: bool,
    pub(crate) cgroups: Option<SlaveCgroups>,
}

impl Jail {
    /// Opens the root (canonical), checks who slaves run as and sets up their cgroups.
    pub(crate) fn set_up(root: &Path, config: &Containment) -> Result<Jail, ServeError> {
        let root = Root::open(root).map_err(|err| match err {
            None => ServeError::NoOpenat2,
            Some(err) => ServeError::Root {
                path: root.to_owned(),
                reason: err.to_string(),
            },
        })?;
        let user = match &config.run_as_user {
            Some(user) => Some(account::resolve(user, config.run_as_group.as_deref())?),
            None if rustix::process::geteuid().is_root() && !config.allow_root_slaves => {
                return Err(ServeError::RootSlaves);
            }
            None => None,
        };
        if user == Some((0, 0)) && !config.allow_root_slaves {
            return Err(ServeError::RootSlaves);
        }
        let cgroups = if config.cgroups {
            let limit = |value: Option<u64>| value.filter(|&v| v > 0);
            match SlaveCgroups::set_up(limit(config.memory_max_bytes), limit(config.pids_max)) {
                Ok(cgroups) => Some(cgroups),
                Err(reason) => {
                    tracing::info!("no cgroup for slaves ({reason})");
                    None
                }
            }
        } else {
            None
        };
        let jail = Jail {
            root,
            limits: config.resource_limits(),
            user,
            allow_world_writable: config.allow_world_writable_scripts,
            cgroups,
        };
        jail.log(config);
        Ok(jail)
    }

    /// Creates the cgroup of a new slave, if slaves get one.
    pub(crate) fn slave_cgroup(
        &self,
    ) -> Option<Result<(SlaveCgroup, std::os::fd::OwnedFd), String>> {
        self.cgroups.as_ref().map(|cgroups| cgroups.create())
    }

    fn log(&self, config: &Containment) {
        let user = match self.user {
            Some((uid, gid)) => format!("uid {uid} gid {gid}"),
            None => format!("the server's (uid {})", rustix::process::geteuid().as_raw()),
        };
        let rlimits = format!("{:?}", self.limits);
        match &self.cgroups {
            Some(cgroups) => {
                let controllers = if cgroups.controllers().is_empty() {
                    "none".to_owned()
                } else {
                    cgroups.controllers().join(" ")
                };
                tracing::info!(
                    cgroup = %cgroups.dir().display(),
                    controllers,
                    %user,
                    rlimits,
                    "containment: a cgroup per slave (ended with cgroup.kill), process groups, resource limits"
                );
                let unset = |value: Option<u64>, controller| {
                    value.is_some_and(|v| v > 0) && !cgroups.controllers().contains(&controller)
                };
                if unset(config.memory_max_bytes, "memory") || unset(config.pids_max, "pids") {
                    tracing::warn!(
                        "memory_max_bytes or pids_max is set but its cgroup controller is not available here: it is not enforced (the rlimits still are)"
                    );
                }
            }
            None => {
                tracing::info!(
                    %user,
                    rlimits,
                    "containment: process groups only (no writable cgroup v2), resource limits"
                );
                if config.memory_max_bytes.is_some_and(|v| v > 0)
                    || config.pids_max.is_some_and(|v| v > 0)
                {
                    tracing::warn!(
                        "memory_max_bytes and pids_max need a writable cgroup v2 and are not enforced (the rlimits still are)"
                    );
                }
            }
        }
    }
}
