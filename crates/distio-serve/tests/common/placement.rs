//! Where a cluster put its slaves, for the cluster tests.
#![allow(dead_code)]

use distio_master::{Cluster, HostHealth, Location, Slave};
use std::collections::BTreeMap;

/// The host `slave` runs on (`ws://addr:port`).
pub fn host_of(slave: &Slave) -> String {
    match slave.location() {
        Location::Remote { host, .. } => host.clone(),
        other => panic!("{slave} is not remote: {other:?}"),
    }
}

/// How many of `slaves` run on each host.
pub fn per_host<'a>(slaves: impl IntoIterator<Item = &'a Slave>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for slave in slaves {
        *counts.entry(host_of(slave)).or_default() += 1;
    }
    counts
}

/// None of `slaves` went to `host`, and the cluster shows its host `index` down.
pub fn assert_skipped<'a>(
    cluster: &Cluster,
    slaves: impl IntoIterator<Item = &'a Slave> + Copy,
    host: &str,
    index: usize,
) {
    assert!(
        slaves.into_iter().all(|s| host_of(s) != host),
        "slaves placed on {host}, which is down: {:?}",
        per_host(slaves)
    );
    assert!(
        matches!(cluster.hosts()[index].health, HostHealth::Down { .. }),
        "{:?}",
        cluster.hosts()
    );
}
