//! Progress reports from patterns that run many tasks.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Answer, PatternError, Replies, Reply};

/// How far a pattern run has got.
///
/// ```
/// use distio_patterns::Progress;
/// let p = Progress { completed: 3, total: Some(10), errors: 1 };
/// assert_eq!(p.fraction(), Some(0.3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Tasks finished so far (with a value or an error).
    pub completed: usize,
    /// Tasks in the run, when known in advance.
    pub total: Option<usize>,
    /// Finished tasks that failed.
    pub errors: usize,
}

impl Progress {
    /// `completed / total`, when the total is known and not zero.
    pub fn fraction(&self) -> Option<f64> {
        self.total
            .filter(|&t| t > 0)
            .map(|t| self.completed as f64 / t as f64)
    }
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Counts one run's completions and reports each to the callback.
pub(crate) struct Tracker {
    callback: Option<ProgressFn>,
    total: Option<usize>,
    completed: AtomicUsize,
    errors: AtomicUsize,
}

impl Tracker {
    pub(crate) fn new(callback: Option<ProgressFn>, total: Option<usize>) -> Self {
        Tracker {
            callback,
            total,
            completed: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
        }
    }

    /// Runs one send and records how it finished.
    pub(crate) async fn track(
        &self,
        send: impl Future<Output = Result<Reply, PatternError>>,
    ) -> Result<Reply, PatternError> {
        let result = send.await;
        self.finished(result.as_ref().map_or(true, |reply| !reply.is_ok()));
        result
    }

    /// Records one finished task.
    fn finished(&self, failed: bool) {
        let errors = if failed {
            self.errors.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.errors.load(Ordering::Relaxed)
        };
        let completed = self.completed.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(callback) = &self.callback {
            callback(Progress {
                completed,
                total: self.total,
                errors,
            });
        }
    }
}

/// The replies of sends run together, in order; the first error (in order) if any failed
/// outright.
pub(crate) async fn gather<F>(sends: impl IntoIterator<Item = F>) -> Result<Replies, PatternError>
where
    F: Future<Output = Result<Reply, PatternError>>,
{
    futures_util::future::join_all(sends)
        .await
        .into_iter()
        .collect()
}
