//! [`SendBatch`]: keyed sends from outside the pool, buffered per worker and
//! handed over in batches.
//!
//! A thread outside the pool that sends many small keyed messages pays, per
//! message, one atomic claim on the target inbox and one wake check. A
//! `SendBatch` keeps one buffer per worker, routes each message with the
//! pool's partitioner into its owner's buffer, and sends a buffer with
//! [`PoolSender::send_batch`] when it is full — one claim and one wake
//! check per batch. Order per (sender, worker) is kept. Messages wait in the
//! buffer until it fills or [`flush`](SendBatch::flush) is called, so flush
//! before you wait for their effect.

use std::hash::Hash;

use crate::{PoolSender, SendError, WorkerId};

/// Per-worker buffers of outgoing messages from one external thread.
///
/// ```
/// use shardpool::prelude::*;
/// use shardpool::SendBatch;
/// # #[derive(Default)] struct Count(u64);
/// # impl Worker for Count {
/// #     type Msg = u64;
/// #     fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) { self.0 += 1; }
/// # }
/// let pool = Pool::start(PoolConfig::default().workers(2).affinity(Affinity::None), |_| Count::default())?;
/// let mut batch = SendBatch::new(pool.sender(), 64);
/// for key in 0..1000u64 {
///     batch.send_keyed(&key, key)?;
/// }
/// batch.flush()?;                       // send what is still buffered
/// let workers = pool.shutdown()?;
/// assert_eq!(workers.iter().map(|w| w.0).sum::<u64>(), 1000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping a `SendBatch` flushes it (errors are ignored then: call
/// [`flush`](SendBatch::flush) to see them).
pub struct SendBatch<M: Send + 'static> {
    tx: PoolSender<M>,
    buffers: Box<[Vec<M>]>,
    limit: usize,
}

impl<M: Send + 'static> SendBatch<M> {
    /// Buffers of `per_worker` messages (at least 1) for each worker of
    /// `tx`'s pool.
    pub fn new(tx: PoolSender<M>, per_worker: usize) -> Self {
        let limit = per_worker.max(1);
        let buffers = (0..tx.workers())
            .map(|_| Vec::with_capacity(limit))
            .collect();
        SendBatch { tx, buffers, limit }
    }

    /// Buffers `msg` for `worker`; sends that worker's buffer when it is
    /// full (blocking while the inbox is full). On error the unsent messages
    /// stay buffered; `NoSuchWorker` hands `msg` back.
    pub fn send_to(&mut self, worker: WorkerId, msg: M) -> Result<(), SendError<M>> {
        let Some(buffer) = self.buffers.get_mut(worker.index()) else {
            return Err(SendError::NoSuchWorker(msg));
        };
        buffer.push(msg);
        if buffer.len() >= self.limit {
            if let Err(e) = self.tx.send_batch(worker, buffer) {
                // Hand back the newest message; older ones stay buffered.
                let msg = buffer.pop().expect("just pushed");
                return Err(e.map(|()| msg));
            }
        }
        Ok(())
    }

    /// Buffers `msg` for the worker that owns `key`.
    pub fn send_keyed<K: Hash + ?Sized>(&mut self, key: &K, msg: M) -> Result<(), SendError<M>> {
        let worker = self.tx.worker_for(key);
        self.send_to(worker, msg)
    }

    /// Sends every buffered message. On error the unsent ones stay buffered.
    pub fn flush(&mut self) -> Result<(), SendError<()>> {
        for (w, buffer) in self.buffers.iter_mut().enumerate() {
            if !buffer.is_empty() {
                self.tx.send_batch(WorkerId::from(w), buffer)?;
            }
        }
        Ok(())
    }

    /// Messages buffered and not yet sent.
    pub fn buffered(&self) -> usize {
        self.buffers.iter().map(Vec::len).sum()
    }
}

impl<M: Send + 'static> Drop for SendBatch<M> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<M: Send + 'static> std::fmt::Debug for SendBatch<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("workers", &self.buffers.len())
            .field("per_worker", &self.limit)
            .field("buffered", &self.buffered())
            .finish()
    }
}
