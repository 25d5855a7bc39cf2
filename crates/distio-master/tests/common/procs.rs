//! Process and deadline helpers the integration tests of several crates share (the serve
//! crate's tests include this file by path).

#![allow(dead_code, unreachable_pub)]

use std::future::IntoFuture;
use std::time::Duration;

/// Fails the test instead of hanging if `fut` takes more than 30 s.
pub async fn within<F: IntoFuture>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut.into_future())
        .await
        .expect("operation hung for 30 s")
}

/// True once `pid` no longer runs (gone, or a zombie waiting to be reaped).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Waits up to 20 s for `pid` to be gone.
pub async fn wait_gone(pid: u32) -> bool {
    for _ in 0..200 {
        if process_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
