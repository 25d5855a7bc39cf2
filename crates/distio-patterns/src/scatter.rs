//! Scatter: one task over a list of data items, spread across transports.

use distio_proto::{Metadata, Payload};
use serde::Serialize;
use std::sync::Arc;

use crate::progress::{ProgressFn, Tracker, gather};
use crate::transport::collect_transports;
use crate::{IntoTransport, PatternError, Progress, Replies, Transport};

/// Sizes of `parts` contiguous parts of a list of `len` items, differing by at most one
/// (the larger parts first).
///
/// ```
/// assert_eq!(distio_patterns::chunk_sizes(10, 3), vec![4, 3, 3]);
/// assert_eq!(distio_patterns::chunk_sizes(2, 4), vec![1, 1, 0, 0]);
/// ```
pub fn chunk_sizes(len: usize, parts: usize) -> Vec<usize> {
    if parts == 0 {
        return Vec::new();
    }
    let (base, extra) = (len / parts, len % parts);
    (0..parts).map(|i| base + usize::from(i < extra)).collect()
}

/// One task over a list of data items. By default item `i` goes to transport `i mod n`
/// (round robin) as its own request; in chunk mode the list is split into `n` contiguous
/// parts and each transport gets one part as a list. Replies come back in input order.
/// The data belongs to the scatter: gathering again sends the same items, and nothing else.
/// With no items, nothing is sent and the result is empty.
///
/// ```
/// use distio_patterns::prelude::*;
/// use distio_patterns::{InProcess, Scatter};
/// use distio_slave::TaskRegistry;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut tasks = TaskRegistry::new();
/// tasks.register("square", |n: u64, _| async move { Ok(n * n) })?;
/// tasks.register("sum", |ns: Vec<u64>, _| async move { Ok(ns.iter().sum::<u64>()) })?;
/// let workers = InProcess::many(2, tasks);
///
/// let squares = Scatter::new("square").data(&[1u64, 2, 3])?.gather(&workers).await?;
/// assert_eq!(squares.values::<u64>()?, vec![1, 4, 9]);
/// let none = Scatter::new("square").data::<u64>(&[])?.gather(&workers).await?;
/// assert!(none.is_empty());
///
/// let sums = Scatter::new("sum").chunk(true).data(&[1u64, 2, 3, 4, 5])?.gather(&workers).await?;
/// assert_eq!(sums.values::<u64>()?, vec![6, 9]); // [1, 2, 3] and [4, 5]
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Scatter {
    task: String,
    items: Vec<Payload>,
    chunk: bool,
    meta: Metadata,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Scatter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scatter")
            .field("task", &self.task)
            .field("items", &self.items.len())
            .field("chunk", &self.chunk)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl Scatter {
    /// A scatter of `task` with no data yet.
    pub fn new(task: impl Into<String>) -> Self {
        Scatter {
            task: task.into(),
            items: Vec::new(),
            chunk: false,
            meta: Metadata::new(),
            progress: None,
        }
    }

    /// Sets the data items (replacing any set before).
    pub fn data<T: Serialize>(mut self, items: &[T]) -> Result<Self, PatternError> {
        self.items = items
            .iter()
            .map(|item| Payload::encode(item).map_err(PatternError::Encode))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Chunk mode: each transport gets one contiguous part of the list, as a list.
    #[must_use]
    pub fn chunk(mut self, chunk: bool) -> Self {
        self.chunk = chunk;
        self
    }

    /// Metadata for every request.
    #[must_use]
    pub fn meta(mut self, meta: Metadata) -> Self {
        self.meta = meta;
        self
    }

    /// Calls `report` after every finished request of a gather.
    #[must_use]
    pub fn on_progress(mut self, report: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }

    /// Sends the items to `transports` (`&slaves` for a `SlaveArray`, `&workers[..2]`,
    /// `slaves.iter().filter(..)`, owned transports, …) and waits for every reply (one per
    /// item, or one per non-empty part in chunk mode), in input order. With no items it
    /// sends nothing and returns no replies; with items and no transports it is
    /// [`PatternError::NoTransports`].
    pub async fn gather(
        &self,
        transports: impl IntoIterator<Item: IntoTransport>,
    ) -> Result<Replies, PatternError> {
        if self.items.is_empty() {
            return Ok(Replies::default());
        }
        let transports = collect_transports(transports, "scatter")?;
        // Straight to each transport: a call on the `Arc` would box a second future per send.
        let transports: Vec<&dyn Transport> = transports.iter().map(|t| &**t).collect();
        let jobs: Vec<(&dyn Transport, Payload)> = if self.chunk {
            let mut start = 0;
            chunk_sizes(self.items.len(), transports.len())
                .into_iter()
                .zip(transports.iter().copied())
                .filter(|(size, _)| *size > 0)
                .map(|(size, transport)| {
                    let part = Payload::sequence(&self.items[start..start + size]);
                    start += size;
                    (transport, part)
                })
                .collect()
        } else {
            self.items
                .iter()
                .enumerate()
                .map(|(i, item)| (transports[i % transports.len()], item.clone()))
                .collect()
        };
        let tracker = Tracker::new(self.progress.clone(), Some(jobs.len()));
        let sends = jobs.into_iter().map(|(transport, payload)| {
            tracker.track(transport.send(&self.task, payload, self.meta.clone()))
        });
        gather(sends).await
    }
}
