//! The patterns over real slave processes.

#[path = "../../distio-master/tests/common/mod.rs"]
mod common;

use common::{slave_options, within};
use distio_master::{Master, SlaveArray};
use distio_patterns::prelude::*;
use distio_patterns::{
    Intercept, Parallel, PatternError, Pick, Pipeline, Reply, Scatter, Workpool,
};
use distio_proto::ErrorKind;
use std::time::Duration;

async fn ready_slaves(master: &Master, n: usize) -> SlaveArray {
    let slaves = within(master.spawn_many(n, slave_options())).await.unwrap();
    for slave in &slaves {
        within(slave.ready()).await.unwrap();
    }
    slaves
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_pipeline_and_scatter_over_slaves() {
    let master = Master::new();
    let slaves = ready_slaves(&master, 2).await;

    let mut parallel = Parallel::new();
    // Borrowed: a `&Slave` and a `&SlaveArray`.
    parallel.add("square", &3u64, &slaves[0]).unwrap();
    parallel
        .add("square", &4u64, Pick::least_busy(&slaves))
        .unwrap();
    let runs = within(parallel.times(5)).await.unwrap();
    assert!(
        runs.iter()
            .all(|r| r.values::<u64>().unwrap() == vec![9, 16])
    );

    let pipeline = Pipeline::new()
        .step("square", &slaves[0])
        .intercept(|reply| {
            let n: u64 = reply.value().unwrap();
            Intercept::continue_with(reply, &(n + 1))
        })
        .step("square", slaves[1].clone());
    assert_eq!(
        within(pipeline.execute(&3u64))
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        100
    );

    let data: Vec<u64> = (1..=9).collect();
    let squares = within(Scatter::new("square").data(&data).unwrap().gather(&slaves))
        .await
        .unwrap();
    assert_eq!(
        squares.values::<u64>().unwrap(),
        data.iter().map(|n| n * n).collect::<Vec<_>>()
    );
    let sources: Vec<u64> = squares.iter().map(|r| r.source()).collect();
    assert_eq!(sources[..2], slaves.ids()[..]);

    // A borrowed slice of slaves, an iterator of `&Slave`, an owned array.
    let scatter = Scatter::new("square").data(&data[..4]).unwrap();
    for replies in [
        within(scatter.gather(&slaves[1..])).await.unwrap(),
        within(scatter.gather(slaves.iter().rev())).await.unwrap(),
        within(scatter.gather(slaves.clone())).await.unwrap(),
    ] {
        assert_eq!(replies.values::<u64>().unwrap(), vec![1, 4, 9, 16]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workpool_over_equal_slaves_is_fair() {
    let master = Master::new();
    let slaves = ready_slaves(&master, 3).await;
    let pool = Workpool::new(&slaves).unwrap();
    let replies = within(pool.run_all("sleep", &[20u64; 31])).await.unwrap();
    assert!(replies.errors().is_empty());
    let counts: Vec<usize> = pool.sent_counts().into_iter().map(|(_, n)| n).collect();
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{counts:?}"
    );
}

const LOAD: u64 = 3000;

/// Most tasks sent to one slave minus fewest, after checking the counts against the slaves'
/// replies.
fn spread(pool: &Workpool, replies: &[Reply]) -> usize {
    let counts = pool.sent_counts();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<usize>(), replies.len());
    for &(id, sent) in &counts {
        let answered = replies.iter().filter(|r| r.source() == id).count();
        assert_eq!(answered, sent, "slave {id}: sent vs answered");
    }
    let counts: Vec<usize> = counts.into_iter().map(|(_, n)| n).collect();
    counts.iter().max().unwrap() - counts.iter().min().unwrap()
}

/// `LOAD` quick tasks through one `run_all`.
async fn load_run_all(pool: &Workpool) -> usize {
    let items: Vec<u64> = (0..LOAD).collect();
    let replies = within(pool.run_all("square", &items)).await.unwrap();
    assert!(replies.errors().is_empty(), "{:?}", replies.errors());
    assert_eq!(
        replies.values::<u64>().unwrap(),
        items.iter().map(|n| n * n).collect::<Vec<_>>()
    );
    spread(pool, &replies.into_vec())
}

/// `LOAD` quick tasks through as many concurrent `run`s, each in its own tokio task.
async fn load_many_runs(pool: &Workpool) -> usize {
    let runs: Vec<_> = (0..LOAD)
        .map(|n| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run("square", &n).await })
        })
        .collect();
    let mut replies = Vec::new();
    for (n, run) in (0..LOAD).zip(runs) {
        let reply = within(run).await.unwrap().unwrap();
        assert_eq!(reply.value::<u64>().unwrap(), n * n);
        replies.push(reply);
    }
    spread(pool, &replies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workpool_counts_differ_by_at_most_one_under_load() {
    let master = Master::new();
    let slaves = ready_slaves(&master, 3).await;
    let pool = || Workpool::new(slaves.iter().cloned()).unwrap();
    let spread_all = load_run_all(&pool()).await;
    let spread_runs = load_many_runs(&pool()).await;
    assert!(
        spread_all <= 1 && spread_runs <= 1,
        "run_all spread {spread_all}, concurrent runs spread {spread_runs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workpool_counts_differ_by_at_most_max_in_flight_under_load() {
    let master = Master::new();
    let slaves = ready_slaves(&master, 3).await;
    for k in [2, 4] {
        let pool = || {
            Workpool::new(slaves.iter().cloned())
                .unwrap()
                .max_in_flight(k)
                .unwrap()
        };
        let spread_all = load_run_all(&pool()).await;
        let spread_runs = load_many_runs(&pool()).await;
        assert!(
            spread_all <= k && spread_runs <= k,
            "max_in_flight {k}: run_all spread {spread_all}, concurrent runs spread {spread_runs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_killed_during_a_workpool_run_fails_its_task_and_the_pool_goes_on() {
    let master = Master::new();
    let slaves = ready_slaves(&master, 3).await;
    let victim_pid = slaves[1].pid().unwrap();
    let pool = Workpool::new(slaves.iter().cloned()).unwrap();
    let run = tokio::spawn({
        let pool = pool.clone();
        async move { pool.run_all("sleep", &[300u64; 12]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::process::Command::new("kill")
        .args(["-9", &victim_pid.to_string()])
        .status()
        .unwrap();
    let replies = within(run).await.unwrap().unwrap();
    let errors = replies.errors();
    assert_eq!(
        errors.len(),
        1,
        "only the task in flight on the killed slave fails"
    );
    assert_eq!(errors[0].kind, ErrorKind::SlaveExited);
    assert_eq!(replies.values::<u64>().unwrap().len(), 11);
    assert_eq!(pool.live(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retry_a_killed_slaves_task_runs_elsewhere() {
    let master = Master::new();
    let slaves = ready_slaves(&master, 2).await;
    let victim_pid = slaves[0].pid().unwrap();
    let pool = Workpool::new(slaves.iter().cloned())
        .unwrap()
        .retry_on_exit(true);
    let run = tokio::spawn({
        let pool = pool.clone();
        async move { pool.run_all("sleep", &[300u64; 6]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::process::Command::new("kill")
        .args(["-9", &victim_pid.to_string()])
        .status()
        .unwrap();
    let replies = within(run).await.unwrap().unwrap();
    assert!(replies.errors().is_empty(), "{:?}", replies.errors());
    assert_eq!(replies.len(), 6);
    assert_eq!(pool.live(), 1, "the killed slave gets no more work");
    assert!(replies.iter().any(|r| r.source() == slaves[1].id()));

    // With every slave gone, queued work fails clearly instead of hanging.
    slaves[1].kill(distio_master::Signal::KILL).await.unwrap();
    within(slaves[1].exited()).await;
    let err = within(pool.run("sleep", &1u64)).await;
    match err {
        Err(PatternError::PoolExhausted { .. }) => {}
        Ok(reply) => assert_eq!(reply.error().unwrap().kind, ErrorKind::Closed),
        Err(other) => panic!("unexpected {other}"),
    }
    let err = within(pool.run("sleep", &1u64)).await.unwrap_err();
    assert!(matches!(err, PatternError::PoolExhausted { .. }), "{err}");
}
