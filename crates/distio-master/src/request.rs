//! Sending requests: to one slave ([`Exec`]) or to many at once ([`Broadcast`]).

use distio_proto::{ErrorKind, Frame, Metadata, Payload, Request, TaskError};
use futures_util::future::{BoxFuture, join_all};
use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::core::SlaveCore;
use crate::defaults::Effective;
use crate::direct::DirectWriter;
use crate::{MasterError, Response, ResponseArray, Slave};

macro_rules! metadata_setters {
    () => {
        /// Sets this request's timeout (`Duration::ZERO`: explicitly none). Overrides the
        /// slave's and the master's defaults.
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.meta.timeout = Some(timeout);
            self
        }

        /// Sets this request's catch-all flag: when on, an error response is returned as
        /// `Err(MasterError::Task)`. Overrides the slave's and the master's defaults.
        pub fn catch_all(mut self, catch_all: bool) -> Self {
            self.meta.catch_all = Some(catch_all);
            self
        }

        /// Replaces this request's metadata with `meta` (the caller's copy is untouched).
        pub fn meta(mut self, meta: Metadata) -> Self {
            self.meta = meta;
            self
        }
    };
}

/// A request to one slave; `.await` it to send it and get the [`Response`].
///
/// Made by [`Slave::exec`]. Without catch-all, an error the slave (or the link, or a
/// timeout) produced comes back as `Ok(response)` with [`Response::error`] set; with
/// catch-all it comes back as `Err(MasterError::Task)`.
#[must_use = "a request is sent when it is awaited"]
pub struct Exec {
    slave: Slave,
    task: String,
    payload: Result<Payload, MasterError>,
    meta: Metadata,
}

impl Exec {
    pub(crate) fn new(slave: Slave, task: String, payload: Result<Payload, MasterError>) -> Self {
        Exec {
            slave,
            task,
            payload,
            meta: Metadata::new(),
        }
    }

    metadata_setters!();

    /// Sends the request and waits for its response (same as `.await`).
    pub async fn send(self) -> Result<Response, MasterError> {
        let payload = self.payload?;
        dispatch(self.slave, self.task, payload, self.meta).await
    }
}

impl IntoFuture for Exec {
    type Output = Result<Response, MasterError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// One request sent to several slaves at once; `.await` it for a [`ResponseArray`] in the
/// order of the slaves. The data is encoded once and the same bytes go to every slave.
///
/// Made by [`Master::tell`](crate::Master::tell) and [`SlaveArray::exec`](crate::SlaveArray::exec).
#[must_use = "a broadcast is sent when it is awaited"]
pub struct Broadcast {
    slaves: Result<Vec<Slave>, MasterError>,
    task: String,
    payload: Result<Payload, MasterError>,
    meta: Metadata,
}

impl Broadcast {
    pub(crate) fn new(
        slaves: Result<Vec<Slave>, MasterError>,
        task: String,
        payload: Result<Payload, MasterError>,
    ) -> Self {
        Broadcast {
            slaves,
            task,
            payload,
            meta: Metadata::new(),
        }
    }

    metadata_setters!();

    /// Sends the request to every slave and waits for all responses (same as `.await`).
    ///
    /// With catch-all on, the first error response (in slave order) is returned as `Err`.
    pub async fn send(self) -> Result<ResponseArray, MasterError> {
        let slaves = self.slaves?;
        if slaves.is_empty() {
            return Err(MasterError::NoTargets);
        }
        let payload = self.payload?;
        let sends = slaves
            .into_iter()
            .map(|slave| dispatch(slave, self.task.clone(), payload.clone(), self.meta.clone()));
        join_all(sends)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map(ResponseArray::from)
    }
}

impl IntoFuture for Broadcast {
    type Output = Result<ResponseArray, MasterError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// Removes a pending entry when its request is abandoned (timed out, or the caller dropped
/// the future); disarmed once the entry has been consumed.
struct Forget<'a> {
    core: &'a SlaveCore,
    id: u64,
    armed: bool,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.core.forget(self.id);
        }
    }
}

/// A flush the request owns: finished by [`HandOver::finish`], or handed to the link's
/// writer task if the request is dropped first.
struct HandOver<'a>(Option<&'a std::sync::Arc<DirectWriter>>);

impl HandOver<'_> {
    async fn finish(mut self, core: &SlaveCore) {
        if let Some(writer) = self.0 {
            let result = writer.finish().await;
            self.0 = None;
            if let Err(err) = result {
                core.write_failed(err);
            }
        }
    }
}

impl Drop for HandOver<'_> {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take() {
            writer.hand_over();
        }
    }
}

/// Sends one request to `slave` and waits for the outcome.
pub(crate) async fn dispatch(
    slave: Slave,
    task: String,
    payload: Payload,
    mut meta: Metadata,
) -> Result<Response, MasterError> {
    let core = slave.core();
    let effective = Effective::resolve(&meta, &core.defaults, &core.master_defaults);
    let started = Instant::now();
    let id = core.next_request_id();
    let (outcome, task) = match core.refusal() {
        Some(refusal) => (Err(refusal), task),
        None => {
            effective.apply(&mut meta);
            let frame = Frame::Request(Request {
                id,
                task,
                payload,
                meta,
            });
            check_size(core, &frame)?;
            let outcome = send_and_wait(core, id, &frame, effective.timeout).await;
            // The frame was only borrowed: its task name moves on into the response.
            (outcome, request_of(frame).task)
        }
    };
    let response = Response {
        slave: slave.clone(),
        request_id: id,
        task,
        outcome,
        started,
        duration: started.elapsed(),
    };
    match response.outcome {
        Err(ref error) if effective.catch_all => Err(MasterError::Task {
            slave: response.slave.id(),
            task: response.task,
            error: error.clone(),
        }),
        _ => Ok(response),
    }
}

async fn send_and_wait(
    core: &SlaveCore,
    id: u64,
    frame: &Frame,
    timeout: Option<Duration>,
) -> Result<Payload, TaskError> {
    let task = &request_ref(frame).task;
    let (answer, pending) = core.register(id)?;
    // Until the request is answered or drained, dropping it (or timing out) forgets it.
    let mut forget = Forget {
        core,
        id,
        armed: true,
    };
    // Alone, the request is written at once. With others in flight it is part of a burst:
    // the first sender to find the link idle yields once, so the requests its task sends
    // meanwhile queue behind it, then writes them all with one system call.
    match core.send_frame_batched(frame, pending > 1) {
        Ok(None) => {}
        Ok(Some((writer, deferred))) => {
            let handover = HandOver(Some(writer));
            if deferred {
                tokio::task::yield_now().await;
            }
            handover.finish(core).await;
        }
        Err(err) => {
            return Err(TaskError::new(
                ErrorKind::Closed,
                format!("request {id} (task \"{task}\") could not be sent: {err}"),
            ));
        }
    }
    core.sent.fetch_add(1, Ordering::Relaxed);
    let timed_out = |limit: Duration| {
        TaskError::new(
            ErrorKind::TimedOut,
            format!("request {id} (task \"{task}\") to {core} timed out after {limit:?}"),
        )
    };
    let answered = match timeout {
        None => answer.await,
        // Boxed: most requests have no timeout, and an inline timer would make every
        // request's future several times larger.
        Some(limit) => match Box::pin(tokio::time::timeout(limit, answer)).await {
            // The slave enforces the same limit and may report it first: same error.
            Ok(Ok(Err(error))) if error.kind == ErrorKind::TimedOut => Ok(Err(timed_out(limit))),
            Ok(answered) => answered,
            // `forget` stays armed: the entry goes, and a late answer finds nothing.
            Err(_elapsed) => return Err(timed_out(limit)),
        },
    };
    // Answered (the reader removed the entry) or drained (the link ended): nothing to undo.
    forget.armed = false;
    answered.unwrap_or_else(|_| Err(core.gone_error()))
}

/// The request in a frame [`dispatch`] built as one.
fn request_ref(frame: &Frame) -> &Request {
    match frame {
        Frame::Request(request) => request,
        _ => unreachable!("dispatch only builds request frames"),
    }
}

/// [`request_ref`], by value.
fn request_of(frame: Frame) -> Request {
    match frame {
        Frame::Request(request) => request,
        _ => unreachable!("dispatch only builds request frames"),
    }
}

/// Refuses a request too large for one frame before it is queued. Small requests (the
/// usual case) are cleared by an upper bound without walking the frame.
fn check_size(core: &SlaveCore, frame: &Frame) -> Result<(), MasterError> {
    let request = request_ref(frame);
    let extra: usize = request
        .meta
        .extra
        .iter()
        .map(|(k, v)| k.len() + v.len() + 16)
        .sum();
    let bound = request.payload.len() + request.task.len() + extra + 64;
    if bound <= core.codec.max_frame_len() {
        return Ok(());
    }
    core.codec
        .encoded_len(frame)
        .map(drop)
        .map_err(|source| MasterError::TooLarge {
            task: request.task.clone(),
            source,
        })
}
