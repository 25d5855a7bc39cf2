//! The `[containment]` table: who slaves run as, their resource limits, their cgroups.

use serde::{Deserialize, Serialize};

/// How slaves are contained: the user they run as, resource limits set before they run,
/// and the cgroup limits where the server can create cgroups. Every key is optional; see
/// `docs/serve.md`.
///
/// Limits of `0` (or absent) are not set, except `open_files` (default 1024). Core dumps are
/// off unless `core_dumps = true`.
///
/// ```
/// let config: distio_serve::ServeConfig = toml::from_str(
///     "[containment]\nrun_as_user = \"nobody\"\nprocesses = 64\nmemory_max_bytes = 268435456",
/// )?;
/// assert_eq!(config.containment.run_as_user.as_deref(), Some("nobody"));
/// assert_eq!(config.containment.open_files, Some(1024));
/// assert!(!config.containment.core_dumps);
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Containment {
    /// The user slaves run as: a name from `/etc/passwd` or a numeric uid. Required when the
    /// server runs as root, unless `allow_root_slaves` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<String>,
    /// The group slaves run as (a name from `/etc/group` or a numeric gid). Default: the
    /// user's primary group. Supplementary groups are always dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<String>,
    /// Let a server running as root run slaves as root (no `run_as_user`). Default `false`:
    /// such a server refuses to start, because every script would then own the host.
    pub allow_root_slaves: bool,
    /// Run scripts that every user of the host may write (`chmod o+w`). Default `false`.
    pub allow_world_writable_scripts: bool,
    /// `RLIMIT_AS`: the most virtual memory of each slave process, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_space_bytes: Option<u64>,
    /// `RLIMIT_NPROC`: the most processes of the slaves' *user*, counted over the whole host
    /// (not per slave); not enforced for root. Prefer `pids_max` where cgroups work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// `RLIMIT_NOFILE`: the most open files of each slave process. Default 1024.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// `RLIMIT_CPU`: CPU seconds each slave process may use before it is killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<u64>,
    /// Let slaves write core dumps. Default `false` (`RLIMIT_CORE = 0`): a core holds the
    /// slave's memory, secrets included.
    pub core_dumps: bool,
    /// Give each slave its own cgroup (v2) where the server's cgroup can be written. Default
    /// `true`; without it (or without a writable cgroup) slaves are ended by process group.
    pub cgroups: bool,
    /// The cgroup's `memory.max` for each slave (all its processes together), in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_max_bytes: Option<u64>,
    /// The cgroup's `pids.max` for each slave (all its processes and threads together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
}

impl Default for Containment {
    fn default() -> Self {
        Containment {
            run_as_user: None,
            run_as_group: None,
            allow_root_slaves: false,
            allow_world_writable_scripts: false,
            address_space_bytes: None,
            processes: None,
            open_files: Some(1024),
            cpu_seconds: None,
            core_dumps: false,
            cgroups: true,
            memory_max_bytes: None,
            pids_max: None,
        }
    }
}

impl Containment {
    /// The resource limits each slave gets before it runs (`0` means not set).
    ///
    /// ```
    /// let limits = distio_serve::Containment::default().resource_limits();
    /// assert_eq!(limits.core_dump_bytes, Some(0));
    /// assert_eq!(limits.open_files, Some(1024));
    /// assert_eq!(limits.address_space_bytes, None);
    /// ```
    pub fn resource_limits(&self) -> distio_master::hosted::ResourceLimits {
        let set = |value: Option<u64>| value.filter(|&v| v > 0);
        distio_master::hosted::ResourceLimits {
            address_space_bytes: set(self.address_space_bytes),
            processes: set(self.processes),
            open_files: set(self.open_files),
            cpu_seconds: set(self.cpu_seconds),
            core_dump_bytes: if self.core_dumps { None } else { Some(0) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_not_set_and_cores_are_off_by_default() {
        let containment: Containment =
            toml::from_str("open_files = 0\ncpu_seconds = 5\ncore_dumps = true").unwrap();
        let limits = containment.resource_limits();
        assert_eq!(limits.open_files, None);
        assert_eq!(limits.cpu_seconds, Some(5));
        assert_eq!(limits.core_dump_bytes, None);
        assert!(toml::from_str::<Containment>("run_as = \"x\"").is_err());
    }
}
