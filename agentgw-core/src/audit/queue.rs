//! A bounded queue between the request path and a background delivery task.
//!
//! `push` never blocks and never waits: when the queue is full (delivery lags) or no Tokio
//! runtime is running, the event is dropped and counted in
//! `agentgateway_audit_dropped_total{sink}`. The delivery task starts on the first event, on
//! the runtime that handles the traffic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::AuditEvent;
use crate::metrics::AUDIT_DROPPED_TOTAL;

/// The delivery task of a queue, given the receiving end.
pub(crate) type Worker =
    Box<dyn FnOnce(mpsc::Receiver<AuditEvent>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Counts `count` events of `sink` that were not delivered.
pub(crate) fn count_dropped(sink: &'static str, count: usize) {
    metrics::counter!(AUDIT_DROPPED_TOTAL, "sink" => sink).increment(count as u64);
}

pub(crate) struct Queue {
    sink: &'static str,
    sender: mpsc::Sender<AuditEvent>,
    started: AtomicBool,
    pending: Mutex<Option<(mpsc::Receiver<AuditEvent>, Worker)>>,
}

impl Queue {
    pub(crate) fn new(sink: &'static str, capacity: usize, worker: Worker) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self {
            sink,
            sender,
            started: AtomicBool::new(false),
            pending: Mutex::new(Some((receiver, worker))),
        }
    }

    pub(crate) fn push(&self, event: &AuditEvent) {
        if !self.started.load(Ordering::Acquire) && !self.start() {
            count_dropped(self.sink, 1);
            return;
        }
        if self.sender.try_send(event.clone()).is_err() {
            count_dropped(self.sink, 1);
        }
    }

    /// Spawns the delivery task on the current runtime; `false` when there is none.
    fn start(&self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((receiver, worker)) = pending.take() {
            runtime.spawn(worker(receiver));
            self.started.store(true, Ordering::Release);
        }
        true
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("sink", &self.sink)
            .field("capacity", &self.sender.max_capacity())
            .field("started", &self.started.load(Ordering::Relaxed))
            .finish()
    }
}
