//! How the workpool shares tasks: among transports that are not equal (one hangs, or dies),
//! and among callers. Every check is on what was sent where, never on how long anything
//! took.

use async_trait::async_trait;
use distio_patterns::prelude::*;
use distio_patterns::{
    Balance, InProcess, PatternError, Reply, SharedTransport, Transport, Workpool, shared,
};
use distio_proto::{ErrorKind, Metadata, Payload, TaskError};
use distio_slave::TaskRegistry;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

const TASKS: u64 = 30;

/// "square", which waits for a permit of `gate` first if there is one.
fn squares(gate: Option<Arc<Semaphore>>) -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    tasks
        .register("square", move |n: u64, _| {
            let gate = gate.clone();
            async move {
                if let Some(gate) = gate {
                    gate.acquire().await?.forget();
                }
                Ok(n * n)
            }
        })
        .unwrap();
    tasks
}

/// Transport 0 holds every task until `gate` lets it through; 1 and 2 answer at once.
fn one_hanging(gate: &Arc<Semaphore>) -> Vec<SharedTransport> {
    vec![
        shared(InProcess::new(0, squares(Some(Arc::clone(gate))))),
        shared(InProcess::new(1, squares(None))),
        shared(InProcess::new(2, squares(None))),
    ]
}

/// A transport whose slave exits at its `lives`-th request: that request, and any after
/// it, answer `SlaveExited`.
struct Mortal {
    inner: InProcess,
    lives: AtomicUsize,
}

#[async_trait]
impl Transport for Mortal {
    fn id(&self) -> u64 {
        self.inner.id()
    }
    fn name(&self) -> String {
        self.inner.name()
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
        let left = self.lives.fetch_sub(1, Ordering::SeqCst);
        if left > 1 {
            return self.inner.send(task, payload, meta).await;
        }
        self.lives.store(0, Ordering::SeqCst);
        let gone = TaskError::new(ErrorKind::SlaveExited, "the slave exited");
        Ok(Reply::new(
            self.id(),
            self.name(),
            task,
            Err(gone),
            Duration::ZERO,
        ))
    }
}

fn counts(pool: &Workpool) -> Vec<usize> {
    pool.sent_counts().into_iter().map(|(_, n)| n).collect()
}

/// Waits (up to 30 s) until the pool's sent counts satisfy `done`.
async fn counts_until(pool: &Workpool, done: impl Fn(&[usize]) -> bool) -> Vec<usize> {
    for _ in 0..3000 {
        let now = counts(pool);
        if done(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("sent counts stuck at {:?}", counts(pool));
}

async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("the workpool stalled for 30 s")
}

fn spawn_run_all(pool: &Workpool) -> tokio::task::JoinHandle<Result<Vec<u64>, PatternError>> {
    let pool = pool.clone();
    tokio::spawn(async move {
        let items: Vec<u64> = (0..TASKS).collect();
        pool.run_all("square", &items).await?.values::<u64>()
    })
}

fn all_squares() -> Vec<u64> {
    (0..TASKS).map(|n| n * n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_counts_hold_free_transports_back_while_one_hangs() {
    for k in [1, 2] {
        let gate = Arc::new(Semaphore::new(0));
        let pool = Workpool::new(one_hanging(&gate))
            .unwrap()
            .max_in_flight(k)
            .unwrap();
        let run = spawn_run_all(&pool);
        // Transport 0 holds its k tasks; 1 and 2, though free, get k more each, then wait.
        let held = vec![k, 2 * k, 2 * k];
        assert_eq!(counts_until(&pool, |c| c == held).await, held);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(counts(&pool), held, "max_in_flight {k}: held back");
        gate.add_permits(TASKS as usize);
        assert_eq!(within(run).await.unwrap().unwrap(), all_squares());
        let c = counts(&pool);
        assert_eq!(c.iter().sum::<usize>(), TASKS as usize);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= k,
            "{c:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_transport_holds_the_others_back_only_for_a_bounded_time() {
    let gate = Arc::new(Semaphore::new(0));
    let pool = Workpool::new(one_hanging(&gate))
        .unwrap()
        .max_hold_back(Duration::from_millis(100));
    let run = spawn_run_all(&pool);
    // Transport 0 never answers until the end; after the hold-back, 1 and 2 take the rest.
    let c = counts_until(&pool, |c| c.iter().sum::<usize>() == TASKS as usize).await;
    assert_eq!(c[0], 1, "{c:?}");
    gate.add_permits(1);
    assert_eq!(within(run).await.unwrap().unwrap(), all_squares());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_free_lets_the_faster_transports_take_more() {
    let gate = Arc::new(Semaphore::new(0));
    let pool = Workpool::new(one_hanging(&gate))
        .unwrap()
        .balance(Balance::FirstFree);
    let run = spawn_run_all(&pool);
    // Everything but the one task transport 0 holds goes to 1 and 2.
    let c = counts_until(&pool, |c| c.iter().sum::<usize>() == TASKS as usize).await;
    assert_eq!(c[0], 1, "{c:?}");
    gate.add_permits(1);
    assert_eq!(within(run).await.unwrap().unwrap(), all_squares());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_dying_mid_run_does_not_stall_even_counts() {
    for retry in [false, true] {
        let transports: Vec<SharedTransport> = vec![
            shared(InProcess::new(0, squares(None))),
            shared(Mortal {
                inner: InProcess::new(1, squares(None)),
                lives: AtomicUsize::new(5),
            }),
            shared(InProcess::new(2, squares(None))),
        ];
        let pool = Workpool::new(transports).unwrap().retry_on_exit(retry);
        let items: Vec<u64> = (0..300).collect();
        let replies = within(pool.run_all("square", &items)).await.unwrap();
        assert_eq!(replies.len(), 300);
        let errors = replies.errors();
        if retry {
            assert!(errors.is_empty(), "{errors:?}");
        } else {
            assert_eq!(errors.len(), 1, "only the task it died under fails");
            assert_eq!(errors[0].kind, ErrorKind::SlaveExited);
        }
        assert_eq!(pool.live(), 2);
        let c = counts(&pool);
        assert_eq!(c[1], 5, "sent 4 answered tasks and the one it died under");
        assert!(c[0].abs_diff(c[2]) <= 1, "the live ones stay even: {c:?}");
        assert_eq!(c.iter().sum::<usize>(), 300 + usize::from(retry));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_queued_during_a_run_all_is_not_put_behind_the_whole_list() {
    let gate = Arc::new(Semaphore::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = TaskRegistry::new();
    let (g, l) = (Arc::clone(&gate), Arc::clone(&log));
    tasks
        .register("record", move |n: u64, _| {
            let (gate, log) = (Arc::clone(&g), Arc::clone(&l));
            async move {
                gate.acquire().await?.forget();
                log.lock().unwrap().push(n);
                Ok(n)
            }
        })
        .unwrap();
    let pool = Workpool::new([InProcess::new(0, tasks)]).unwrap();
    let items: Vec<u64> = (0..10).collect();
    let late = async {
        counts_until(&pool, |c| c == [1]).await;
        let mut run = std::pin::pin!(pool.run("record", &99u64));
        // Queued behind item 0, which holds the only slot.
        assert!(
            futures_util::future::poll_immediate(&mut run)
                .await
                .is_none()
        );
        gate.add_permits(100);
        run.await
    };
    let (all, late) = within(async { tokio::join!(pool.run_all("record", &items), late) }).await;
    assert_eq!(all.unwrap().values::<u64>().unwrap(), items);
    assert_eq!(late.unwrap().value::<u64>().unwrap(), 99);
    assert_eq!(
        *log.lock().unwrap(),
        [0, 99, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        "served in the order asked"
    );
}
