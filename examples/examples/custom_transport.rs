//! A transport of your own: this one wraps another and counts and times what passes
//! through it. The patterns accept it like any slave.
//!
//! Run with `cargo run -p distio-examples --example custom_transport`.

use async_trait::async_trait;
use distio_patterns::prelude::*;
use distio_patterns::{
    InProcess, IntoTransport, PatternError, Reply, SharedTransport, Transport, Workpool, shared,
};
use distio_proto::{Metadata, Payload};
use distio_slave::{TaskFailure, TaskRegistry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts requests and failures, then hands the request to the wrapped transport.
/// Cheap to clone: clones share the counters.
#[derive(Clone)]
struct Metered<T> {
    inner: T,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

#[async_trait]
impl<T: Transport> Transport for Metered<T> {
    fn id(&self) -> u64 {
        self.inner.id()
    }

    fn name(&self) -> String {
        format!("metered {}", self.inner.name())
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    async fn send(
        &self,
        task: &str,
        payload: Payload,
        meta: Metadata,
    ) -> Result<Reply, PatternError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.send(task, payload, meta).await;
        if !matches!(&result, Ok(reply) if reply.is_ok()) {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// Lets a pattern take a borrowed `&Metered<T>` too, cloning the cheap handle, as it takes
/// a `&Slave`. (Owned transports need nothing of the sort.)
impl<T: Transport + Clone + 'static> IntoTransport for &Metered<T> {
    fn into_transport(self) -> SharedTransport {
        shared(self.clone())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut tasks = TaskRegistry::new();
    tasks.register("is prime", |n: u64, _| async move {
        if n < 2 {
            return Err(TaskFailure::new(format!("{n} is too small to ask about")));
        }
        Ok((2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
    })?;
    let (requests, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let metered: Vec<_> = InProcess::many(3, tasks)
        .into_iter()
        .map(|inner| Metered {
            inner,
            requests: Arc::clone(&requests),
            failures: Arc::clone(&failures),
        })
        .collect();

    let pool = Workpool::new(&metered)?;
    let numbers: Vec<u64> = (0..50).collect();
    let replies = pool.run_all("is prime", &numbers).await?;
    let primes: Vec<u64> = numbers
        .iter()
        .zip(replies.iter())
        .filter(|(_, r)| r.value::<bool>().unwrap_or(false))
        .map(|(n, _)| *n)
        .collect();
    println!("primes below 50: {primes:?}");
    println!(
        "{} requests, {} failed",
        requests.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed)
    );
    Ok(())
}
