//! Naming slaves: by handle, id, alias or group.

use distio_proto::SlaveId;
use std::fmt;

use crate::Slave;

/// One way of naming slaves in [`Master::tell`](crate::Master::tell) and the master's
/// queries and lifecycle calls.
///
/// ```
/// use distio_master::Target;
/// let targets: Vec<Target> = vec![3u64.into(), "worker".into(), Target::group("squares")];
/// assert_eq!(targets[1].to_string(), "alias \"worker\"");
/// ```
#[derive(Clone, Debug)]
pub enum Target {
    /// This slave.
    Slave(Slave),
    /// The live slave with this id.
    Id(SlaveId),
    /// The live slave with this alias.
    Alias(String),
    /// Every live slave in this group.
    Group(String),
}

impl Target {
    /// Every live slave in `group`.
    pub fn group(group: impl Into<String>) -> Self {
        Target::Group(group.into())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Slave(slave) => write!(f, "{slave}"),
            Target::Id(id) => write!(f, "id {id}"),
            Target::Alias(alias) => write!(f, "alias \"{alias}\""),
            Target::Group(group) => write!(f, "group \"{group}\""),
        }
    }
}

impl From<Slave> for Target {
    fn from(slave: Slave) -> Self {
        Target::Slave(slave)
    }
}

impl From<&Slave> for Target {
    fn from(slave: &Slave) -> Self {
        Target::Slave(slave.clone())
    }
}

impl From<SlaveId> for Target {
    fn from(id: SlaveId) -> Self {
        Target::Id(id)
    }
}

impl From<&str> for Target {
    fn from(alias: &str) -> Self {
        Target::Alias(alias.to_owned())
    }
}

impl From<String> for Target {
    fn from(alias: String) -> Self {
        Target::Alias(alias)
    }
}

impl From<&Target> for Target {
    fn from(target: &Target) -> Self {
        target.clone()
    }
}
