//! Every pattern over the in-process transport.

use distio_patterns::prelude::*;
use distio_patterns::{
    InProcess, Intercept, IntoTransport, Parallel, PatternError, Pick, Pipeline, Progress, Scatter,
    SharedTransport, Workpool, chunk_sizes, shared,
};
use distio_proto::{ErrorKind, Metadata};
use distio_slave::{TaskContext, TaskRegistry};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type R<T> = Result<T, distio_slave::TaskFailure>;

/// Tasks shared by the tests; `calls` counts runs of "count", `log` records "record" data,
/// `running`/`peak` track concurrency of "busy".
#[derive(Default)]
struct Probe {
    calls: AtomicUsize,
    log: Mutex<Vec<u64>>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

fn registry(probe: Arc<Probe>) -> TaskRegistry {
    let mut tasks = TaskRegistry::new();
    tasks
        .register("square", |n: u64, _| async move { R::Ok(n * n) })
        .unwrap();
    tasks
        .register("add one", |n: u64, _| async move { R::Ok(n + 1) })
        .unwrap();
    tasks
        .register("sum", |ns: Vec<u64>, _| async move {
            R::Ok(ns.iter().sum::<u64>())
        })
        .unwrap();
    tasks
        .register("echo list", |ns: Vec<u64>, _| async move { R::Ok(ns) })
        .unwrap();
    tasks
        .register("who", |_: (), ctx: TaskContext| async move {
            R::Ok(ctx.slave().id())
        })
        .unwrap();
    tasks
        .register("fail", |_: (), _| async move {
            R::<()>::Err(distio_slave::TaskFailure::new("step failed"))
        })
        .unwrap();
    tasks
        .register("panic", |_: (), _| async move {
            if std::env::var_os("NEVER_SET_DISTIO").is_none() {
                panic!("deliberate");
            }
            R::Ok(())
        })
        .unwrap();
    tasks
        .register("reject", |_: u64, _| async move {
            R::<u64>::Err(distio_slave::TaskFailure::new("step failed"))
        })
        .unwrap();
    let p = Arc::clone(&probe);
    tasks
        .register("count", move |n: u64, _| {
            p.calls.fetch_add(1, Ordering::SeqCst);
            async move { R::Ok(n) }
        })
        .unwrap();
    let p = Arc::clone(&probe);
    tasks
        .register("record", move |n: u64, _| {
            p.log.lock().unwrap().push(n);
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                R::Ok(n)
            }
        })
        .unwrap();
    let p = Arc::clone(&probe);
    tasks
        .register("busy", move |ms: u64, _| {
            let p = Arc::clone(&p);
            async move {
                let now = p.running.fetch_add(1, Ordering::SeqCst) + 1;
                p.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                p.running.fetch_sub(1, Ordering::SeqCst);
                R::Ok(ms)
            }
        })
        .unwrap();
    tasks
}

fn workers(n: usize) -> (Vec<InProcess>, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    (InProcess::many(n, registry(Arc::clone(&probe))), probe)
}

// ----- transport -----

#[tokio::test]
async fn in_process_transport_has_slave_semantics() {
    use distio_patterns::Transport;
    let (w, _) = workers(1);
    let unknown = w[0]
        .send("nope", distio_proto::Payload::empty(), Metadata::new())
        .await
        .unwrap();
    assert_eq!(unknown.error().unwrap().kind, ErrorKind::UnknownTask);
    let caught = w[0]
        .send(
            "fail",
            distio_proto::Payload::empty(),
            Metadata::new().with_catch_all(true),
        )
        .await;
    assert!(matches!(caught, Err(PatternError::Task { .. })));
    let slow = w[0]
        .send(
            "busy",
            distio_proto::Payload::encode(&5000u64).unwrap(),
            Metadata::new().with_timeout(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    assert_eq!(slow.error().unwrap().kind, ErrorKind::TimedOut);
    let panicked = w[0]
        .send("panic", distio_proto::Payload::empty(), Metadata::new())
        .await
        .unwrap();
    assert_eq!(panicked.error().unwrap().kind, ErrorKind::HandlerPanicked);
    assert_eq!(w[0].in_flight(), 0);
}

// ----- parallel -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_runs_adds_removes_and_repeats() {
    let (w, probe) = workers(2);
    let mut parallel = Parallel::new();
    let a = parallel.add("count", &1u64, w[0].clone()).unwrap();
    parallel.add("count", &2u64, w[1].clone()).unwrap();
    parallel
        .add("square", &3u64, Pick::least_busy(w.clone()))
        .unwrap();
    assert_eq!(
        parallel.execute().await.unwrap().values::<u64>().unwrap(),
        vec![1, 2, 9]
    );
    assert_eq!(parallel.execute().await.unwrap().len(), 3, "reusable");
    assert!(parallel.remove(a));
    assert!(!parallel.remove(a));
    assert_eq!(
        parallel.execute().await.unwrap().values::<u64>().unwrap(),
        vec![2, 9]
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 5);

    let seen = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let s = Arc::clone(&seen);
    parallel.on_progress(move |p| s.lock().unwrap().push(p));
    let runs = parallel.times(4).await.unwrap();
    assert_eq!(runs.len(), 4);
    assert!(
        runs.iter()
            .all(|r| r.values::<u64>().unwrap() == vec![2, 9])
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 8);
    assert_eq!(
        seen.last().unwrap(),
        &Progress {
            completed: 8,
            total: Some(8),
            errors: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_least_busy_spreads_work() {
    let (w, _) = workers(2);
    let mut parallel = Parallel::new();
    for _ in 0..4 {
        parallel
            .add("who", &(), Pick::least_busy(w.clone()))
            .unwrap();
    }
    let mut ids = parallel.execute().await.unwrap().values::<u64>().unwrap();
    ids.sort();
    assert_eq!(ids, vec![0, 0, 1, 1]);
}

#[tokio::test]
async fn parallel_misuse_is_a_clear_error() {
    let (w, _) = workers(1);
    let mut parallel = Parallel::new();
    assert!(matches!(
        parallel.execute().await,
        Err(PatternError::Empty { .. })
    ));
    let none: Vec<InProcess> = Vec::new();
    assert!(matches!(
        parallel.add("square", &1u64, Pick::least_busy(none)),
        Err(PatternError::NoTransports { .. })
    ));
    parallel.add("square", &1u64, w[0].clone()).unwrap();
    parallel
        .add_with_meta(
            "fail",
            &(),
            Metadata::new().with_catch_all(true),
            w[0].clone(),
        )
        .unwrap();
    assert!(matches!(
        parallel.execute().await,
        Err(PatternError::Task { .. })
    ));
}

// ----- pipeline -----

#[tokio::test]
async fn pipeline_feeds_each_value_to_the_next_step_and_is_reusable() {
    let (w, _) = workers(2);
    let pipeline = Pipeline::new()
        .step("add one", w[0].clone())
        .intercept(|reply| {
            let n: u64 = reply.value().unwrap();
            Intercept::continue_with(reply, &(n * 10))
        })
        .step("square", w[1].clone());
    let reply = pipeline.execute(&2u64).await.unwrap();
    assert_eq!(reply.value::<u64>().unwrap(), 900);
    assert_eq!(reply.source(), 1);
    assert_eq!(
        pipeline
            .execute(&0u64)
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        100
    );
}

/// A caller's own error type, returned by an intercept and recovered by type.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{value} is too large (limit {limit})")]
struct TooLarge {
    value: u64,
    limit: u64,
}

#[tokio::test]
async fn pipeline_intercept_finish_ends_early_with_a_value() {
    let (w, probe) = workers(1);
    let finished = Pipeline::new()
        .step("add one", &w[0])
        .intercept(|reply| Intercept::finish_with(reply, &777u64))
        .step("count", &w[0]);
    let reply = finished.execute(&1u64).await.unwrap();
    assert_eq!(reply.value::<u64>().unwrap(), 777);
    assert_eq!(
        reply.task(),
        "add one",
        "the reply of the step it ended after"
    );
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        0,
        "the step after Finish never runs"
    );

    let unchanged = Pipeline::new()
        .step("add one", &w[0])
        .intercept(Intercept::Finish)
        .step("count", &w[0]);
    assert_eq!(
        unchanged
            .execute(&1u64)
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        2
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn pipeline_intercept_fail_returns_the_typed_error() {
    let (w, probe) = workers(1);
    let limited = Pipeline::new()
        .step("add one", &w[0])
        .step("add one", &w[0])
        .intercept(|reply| match reply.value::<u64>() {
            Ok(value) if value > 10 => Intercept::fail(TooLarge { value, limit: 10 }),
            Ok(_) => Intercept::Continue(reply),
            Err(error) => Intercept::fail(error),
        })
        .step("count", &w[0]);
    assert_eq!(
        limited
            .execute(&1u64)
            .await
            .unwrap()
            .value::<u64>()
            .unwrap(),
        3
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 1);

    let err = limited.execute(&20u64).await.unwrap_err();
    let PatternError::InterceptFailed { step, error } = &err else {
        panic!("expected InterceptFailed, got {err}");
    };
    assert_eq!(*step, 1);
    assert_eq!(
        error.downcast_ref::<TooLarge>(),
        Some(&TooLarge {
            value: 22,
            limit: 10
        })
    );
    let source = std::error::Error::source(&err).expect("the intercept's error is the source");
    assert!(source.downcast_ref::<TooLarge>().is_some());
    assert!(err.to_string().contains("22 is too large"), "{err}");
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        1,
        "the step after Fail never runs"
    );

    let message = Pipeline::new()
        .step("add one", &w[0])
        .intercept(|_| Intercept::fail("not today"));
    let err = message.execute(&1u64).await.unwrap_err();
    assert!(
        matches!(&err, PatternError::InterceptFailed { step: 0, error } if error.to_string() == "not today"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_step_ends_the_pipeline_with_its_error() {
    let (w, probe) = workers(1);
    let pipeline = Pipeline::new()
        .step("add one", w[0].clone())
        .step("reject", w[0].clone())
        .step("count", w[0].clone());
    let err = pipeline.execute(&1u64).await.unwrap_err();
    assert!(
        matches!(&err, PatternError::Step { step: 1, task, error } if task == "reject" && error.message == "step failed"),
        "{err}"
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn pipeline_misuse_is_a_clear_error() {
    let (w, _) = workers(1);
    assert!(matches!(
        Pipeline::new().execute(&1u64).await,
        Err(PatternError::Empty { .. })
    ));
    let early = Pipeline::new()
        .intercept(Intercept::Continue)
        .step("square", w[0].clone());
    assert!(matches!(
        early.execute(&1u64).await,
        Err(PatternError::Invalid { .. })
    ));
}

// ----- workpool -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workpool_spreads_tasks_evenly_over_equal_slaves() {
    for (slaves, max) in [(2, 1), (3, 1), (4, 2), (5, 3)] {
        let (w, _) = workers(slaves);
        let pool = Workpool::new(w).unwrap().max_in_flight(max).unwrap();
        let tasks = 20 * slaves + 1;
        let replies = pool.run_all("busy", &vec![10u64; tasks]).await.unwrap();
        assert_eq!(replies.len(), tasks);
        let counts: Vec<usize> = pool.sent_counts().into_iter().map(|(_, n)| n).collect();
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        // One in flight (the default): at most one apart. N in flight: at most N apart.
        assert!(
            hi - lo <= max,
            "{slaves} slaves, max {max}: counts {counts:?}"
        );
        assert_eq!(counts.iter().sum::<usize>(), tasks);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workpool_queues_fifo_and_respects_max_in_flight() {
    let (w, probe) = workers(1);
    let pool = Workpool::new(w.clone()).unwrap();
    let replies = pool
        .run_all("record", &(0..30u64).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(
        replies.values::<u64>().unwrap(),
        (0..30).collect::<Vec<_>>()
    );
    assert_eq!(
        *probe.log.lock().unwrap(),
        (0..30).collect::<Vec<_>>(),
        "started in FIFO order"
    );

    let (w, probe) = workers(2);
    let pool = Workpool::new(w).unwrap().max_in_flight(3).unwrap();
    pool.run_all("busy", &[30u64; 24]).await.unwrap();
    assert_eq!(
        probe.peak.load(Ordering::SeqCst),
        6,
        "2 slaves x 3 in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workpool_while_loop_follows_its_predicate() {
    let (w, _) = workers(3);
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    let pool = Workpool::new(w).unwrap().on_progress(move |p| {
        s.store(p.completed, Ordering::SeqCst);
    });
    let replies = pool
        .run_while(|i, _| i < 30, "square", &3u64)
        .await
        .unwrap();
    assert_eq!(replies.len(), 30);
    assert_eq!(seen.load(Ordering::SeqCst), 30);
    // Stop once the replies so far hold enough.
    let replies = pool
        .run_while(|_, done| done.len() < 5, "square", &2u64)
        .await
        .unwrap();
    assert!(
        replies.len() >= 5 && replies.len() <= 5 + 3,
        "{}",
        replies.len()
    );
}

#[tokio::test]
async fn workpool_misuse_is_a_clear_error() {
    let none: Vec<InProcess> = Vec::new();
    assert!(matches!(
        Workpool::new(none),
        Err(PatternError::NoTransports { .. })
    ));
    let (w, _) = workers(1);
    assert!(matches!(
        Workpool::new(w).unwrap().max_in_flight(0),
        Err(PatternError::Invalid { .. })
    ));
}

// ----- scatter -----

#[test]
fn chunk_sizes_are_contiguous_and_differ_by_at_most_one() {
    for len in 0..=20 {
        for parts in 1..=5 {
            let sizes = chunk_sizes(len, parts);
            assert_eq!(sizes.len(), parts);
            assert_eq!(sizes.iter().sum::<usize>(), len, "{len} over {parts}");
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{len} over {parts}: {sizes:?}");
            assert!(
                sizes.windows(2).all(|w| w[0] >= w[1]),
                "larger parts first: {sizes:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_scatter_sends_contiguous_parts_in_order() {
    for len in 1..=20u64 {
        for slaves in 1..=5 {
            let (w, _) = workers(slaves);
            let data: Vec<u64> = (0..len).collect();
            let replies = Scatter::new("echo list")
                .chunk(true)
                .data(&data)
                .unwrap()
                .gather(&w)
                .await
                .unwrap();
            let parts = replies.values::<Vec<u64>>().unwrap();
            let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
            let expected: Vec<usize> = chunk_sizes(len as usize, slaves)
                .into_iter()
                .filter(|&s| s > 0)
                .collect();
            assert_eq!(sizes, expected, "{len} items over {slaves}");
            assert_eq!(parts.concat(), data, "contiguous, in input order");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scatter_round_robin_keeps_input_order_and_only_its_own_data() {
    let (w, _) = workers(3);
    let scatter = Scatter::new("square")
        .data(&[1u64, 2, 3, 4, 5, 6, 7])
        .unwrap();
    let replies = scatter.gather(&w).await.unwrap();
    assert_eq!(
        replies.values::<u64>().unwrap(),
        vec![1, 4, 9, 16, 25, 36, 49]
    );
    let sources: Vec<u64> = replies.iter().map(|r| r.source()).collect();
    assert_eq!(sources, vec![0, 1, 2, 0, 1, 2, 0]);
    let again = scatter.gather(&w).await.unwrap();
    assert_eq!(
        again.len(),
        7,
        "a second gather sends the same seven items, nothing more"
    );
}

#[tokio::test]
async fn scatter_misuse_is_a_clear_error() {
    let none: Vec<InProcess> = Vec::new();
    assert!(matches!(
        Scatter::new("square")
            .data(&[1u64])
            .unwrap()
            .gather(&none)
            .await,
        Err(PatternError::NoTransports { .. })
    ));
}

// ----- nothing to do -----

#[tokio::test]
async fn scatter_with_no_items_and_times_zero_are_empty_results() {
    let (w, probe) = workers(2);
    let empty: [u64; 0] = [];
    let scatter = Scatter::new("count").data(&empty).unwrap();
    assert!(scatter.gather(&w).await.unwrap().is_empty());
    assert!(
        Scatter::new("count")
            .chunk(true)
            .data(&empty)
            .unwrap()
            .gather(&w)
            .await
            .unwrap()
            .is_empty(),
        "chunk mode too"
    );
    let none: Vec<InProcess> = Vec::new();
    assert!(
        scatter.gather(&none).await.unwrap().is_empty(),
        "no items need no transport"
    );

    let mut parallel = Parallel::new();
    parallel.add("count", &1u64, &w[0]).unwrap();
    assert!(parallel.times(0).await.unwrap().is_empty());
    assert!(
        Parallel::new().times(0).await.unwrap().is_empty(),
        "no runs of an empty set"
    );
    assert!(
        Workpool::new(&w)
            .unwrap()
            .run_all("count", &empty)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(probe.calls.load(Ordering::SeqCst), 0, "nothing was sent");
}

// ----- borrowed transports -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pattern_accepts_borrowed_transports() {
    let (w, _) = workers(3);
    let shared_list: Vec<SharedTransport> = w.iter().map(shared).collect();

    // Parallel: a borrowed handle, a borrowed list, an iterator of borrowed handles.
    let mut parallel = Parallel::new();
    parallel.add("who", &(), &w[2]).unwrap();
    parallel.add("who", &(), Pick::one(&w[1])).unwrap();
    parallel.add("who", &(), Pick::least_busy(&w)).unwrap();
    parallel.add("who", &(), Pick::least_busy(&w[..1])).unwrap();
    parallel
        .add(
            "who",
            &(),
            Pick::least_busy(w.iter().filter(|t| t.handle().id() == 1)),
        )
        .unwrap();
    parallel.add("who", &(), &shared_list[0]).unwrap();
    let ids = parallel.execute().await.unwrap().values::<u64>().unwrap();
    assert_eq!(ids[..2], [2, 1]);
    assert_eq!(ids[3..], [0, 1, 0]);

    // Pipeline: borrowed handles, owned and shared ones mixed.
    let pipeline = Pipeline::new()
        .step("add one", &w[0])
        .step("add one", w[1].clone())
        .step("square", &shared_list[2]);
    let reply = pipeline.execute(&1u64).await.unwrap();
    assert_eq!(reply.value::<u64>().unwrap(), 9);
    assert_eq!(reply.source(), 2);

    // Workpool: a borrowed Vec, a borrowed slice, an iterator of borrowed handles, a
    // borrowed list of shared transports.
    for pool in [
        Workpool::new(&w).unwrap(),
        Workpool::new(&w[..]).unwrap(),
        Workpool::new(w.iter()).unwrap(),
        Workpool::new(&shared_list).unwrap(),
    ] {
        let replies = pool.run_all("who", &[(); 6]).await.unwrap();
        let mut ids = replies.values::<u64>().unwrap();
        ids.sort();
        assert_eq!(ids, vec![0, 0, 1, 1, 2, 2]);
    }
    assert_eq!(Workpool::new(w.iter().skip(1)).unwrap().live(), 2);

    // Scatter: the same shapes.
    let scatter = Scatter::new("who").data(&[(); 4]).unwrap();
    for sources in [
        scatter.gather(&w).await.unwrap(),
        scatter.gather(&w[..]).await.unwrap(),
        scatter.gather(w.iter()).await.unwrap(),
        scatter.gather([&w[0], &w[1], &w[2]]).await.unwrap(),
        scatter.gather(&shared_list).await.unwrap(),
    ]
    .iter()
    .map(|replies| replies.values::<u64>().unwrap())
    {
        assert_eq!(sources, vec![0, 1, 2, 0]);
    }
    assert_eq!(
        scatter
            .gather([&w[1]])
            .await
            .unwrap()
            .values::<u64>()
            .unwrap(),
        vec![1; 4],
        "a single borrowed transport"
    );

    // The owned transports are still there, and still usable.
    assert_eq!(
        w.iter()
            .map(|t| t.into_transport().id())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
}
