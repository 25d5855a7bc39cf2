//! Naming slaves: by handle, id, alias or group.

use distio_proto::SlaveId;
use std::fmt;

use crate::{Slave, SlaveArray};

/// One way of naming slaves in [`Master::tell`](crate::Master::tell),
/// [`Master::slave`](crate::Master::slave) and the master's lifecycle calls.
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

/// What [`Master::tell`](crate::Master::tell), [`Master::slaves`](crate::Master::slaves),
/// [`Master::close`](crate::Master::close), [`Master::shutdown`](crate::Master::shutdown)
/// and [`Master::kill`](crate::Master::kill) accept: one target (a handle, an id, an alias
/// or a [`Target`]), or a collection of them (an array, a `Vec`, a slice, a
/// [`SlaveArray`]).
///
/// ```
/// use distio_master::{IntoTargets, Target};
/// assert_eq!("worker".into_targets().len(), 1);
/// assert_eq!(Target::group("squares").into_targets().len(), 1);
/// assert_eq!([0u64, 1, 2].into_targets().len(), 3);
/// assert_eq!(vec!["a", "b"].into_targets()[1].to_string(), "alias \"b\"");
/// ```
pub trait IntoTargets {
    /// The targets, in order.
    fn into_targets(self) -> Vec<Target>;
}

macro_rules! one_target {
    ($($ty:ty),* $(,)?) => {$(
        impl IntoTargets for $ty {
            fn into_targets(self) -> Vec<Target> {
                vec![self.into()]
            }
        }
    )*};
}

one_target!(Target, &Target, Slave, &Slave, SlaveId, &str, String);

impl IntoTargets for &String {
    fn into_targets(self) -> Vec<Target> {
        vec![Target::Alias(self.clone())]
    }
}

impl<T: Into<Target>, const N: usize> IntoTargets for [T; N] {
    fn into_targets(self) -> Vec<Target> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<T: Into<Target>> IntoTargets for Vec<T> {
    fn into_targets(self) -> Vec<Target> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<'a, T> IntoTargets for &'a [T]
where
    &'a T: Into<Target>,
{
    fn into_targets(self) -> Vec<Target> {
        self.iter().map(Into::into).collect()
    }
}

impl<'a, T> IntoTargets for &'a Vec<T>
where
    &'a T: Into<Target>,
{
    fn into_targets(self) -> Vec<Target> {
        self.as_slice().into_targets()
    }
}

impl IntoTargets for SlaveArray {
    fn into_targets(self) -> Vec<Target> {
        self.into_iter().map(Target::Slave).collect()
    }
}

impl IntoTargets for &SlaveArray {
    fn into_targets(self) -> Vec<Target> {
        self.iter().map(Into::into).collect()
    }
}
