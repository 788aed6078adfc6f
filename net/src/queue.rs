//! The bounded outbound queue of one peer.
//!
//! Policy when full: **drop the oldest**. The queue holds at most `max_len` messages and
//! `max_bytes` bytes; a new message evicts queued messages from the front until it fits, and
//! every eviction is counted. Consensus tolerates loss and its newest messages (current view,
//! highest height) are the useful ones, so a peer that was away or slow gets the latest
//! traffic rather than a backlog of stale votes. Memory per peer stays below `max_bytes`.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    msgs: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
}

/// A bounded multi-producer, single-consumer queue with drop-oldest overflow.
#[derive(Debug)]
pub(crate) struct OutQueue {
    inner: Mutex<Inner>,
    max_len: usize,
    max_bytes: usize,
    /// Signalled when a message is pushed (one consumer: the peer's sender task).
    data: Notify,
    /// Signalled when messages are taken or the queue closes (waiting producers).
    space: Notify,
}

/// What [`OutQueue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued; `evicted` older messages were dropped to make room.
    Queued { evicted: usize },
    /// The network is shut down.
    Closed,
}

impl OutQueue {
    /// An empty queue. `max_bytes` must be at least the largest message pushed.
    pub(crate) fn new(max_len: usize, max_bytes: usize) -> Self {
        OutQueue {
            inner: Mutex::new(Inner::default()),
            max_len: max_len.max(1),
            max_bytes,
            data: Notify::new(),
            space: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the deque inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg`, evicting the oldest messages if it would not fit.
    pub(crate) fn push(&self, msg: Bytes) -> Pushed {
        let mut q = self.lock();
        if q.closed {
            return Pushed::Closed;
        }
        let mut evicted = 0;
        while !q.msgs.is_empty()
            && (q.msgs.len() >= self.max_len || q.bytes + msg.len() > self.max_bytes)
        {
            if let Some(old) = q.msgs.pop_front() {
                q.bytes -= old.len();
                evicted += 1;
            }
        }
        q.bytes += msg.len();
        q.msgs.push_back(msg);
        drop(q);
        self.data.notify_one();
        Pushed::Queued { evicted }
    }

    /// Queues `msg` only if it fits without evicting anything; waits for room otherwise.
    /// `Pushed::Closed` if the queue closes first.
    pub(crate) async fn push_wait(&self, msg: Bytes) -> Pushed {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut q = self.lock();
                if q.closed {
                    return Pushed::Closed;
                }
                if q.msgs.is_empty()
                    || (q.msgs.len() < self.max_len && q.bytes + msg.len() <= self.max_bytes)
                {
                    q.bytes += msg.len();
                    q.msgs.push_back(msg);
                    drop(q);
                    self.data.notify_one();
                    return Pushed::Queued { evicted: 0 };
                }
            }
            notified.await;
        }
    }

    /// Takes queued messages from the front, at most `max_msgs` and (beyond the first)
    /// `max_bytes` bytes.
    pub(crate) fn pop_batch(&self, max_msgs: usize, max_bytes: usize, out: &mut Vec<Bytes>) {
        let mut q = self.lock();
        let mut bytes = 0;
        while out.len() < max_msgs {
            match q.msgs.front() {
                Some(m) if out.is_empty() || bytes + m.len() <= max_bytes => {
                    bytes += m.len();
                    if let Some(m) = q.msgs.pop_front() {
                        q.bytes -= m.len();
                        out.push(m);
                    }
                }
                _ => break,
            }
        }
        drop(q);
        if !out.is_empty() {
            self.space.notify_waiters();
        }
    }

    /// Waits until something may have been pushed since the last wait.
    pub(crate) async fn wait_data(&self) {
        self.data.notified().await
    }

    /// Messages queued now.
    pub(crate) fn len(&self) -> usize {
        self.lock().msgs.len()
    }

    /// Empties the queue and refuses further pushes; wakes waiting producers.
    pub(crate) fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.msgs.clear();
        q.bytes = 0;
        drop(q);
        self.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    #[test]
    fn drops_oldest_by_count_and_by_bytes() {
        let q = OutQueue::new(3, 100);
        for i in 0..5 {
            let evicted = if i < 3 { 0 } else { 1 };
            assert_eq!(q.push(msg(i, 10)), Pushed::Queued { evicted });
        }
        let mut out = Vec::new();
        q.pop_batch(10, usize::MAX, &mut out);
        assert_eq!(out.iter().map(|m| m[0]).collect::<Vec<_>>(), vec![2, 3, 4]);

        let q = OutQueue::new(100, 100);
        q.push(msg(1, 40));
        q.push(msg(2, 40));
        assert_eq!(q.push(msg(3, 60)), Pushed::Queued { evicted: 1 });
        assert_eq!(q.len(), 2);
        assert_eq!(q.push(msg(4, 100)), Pushed::Queued { evicted: 2 });
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn batches_respect_limits() {
        let q = OutQueue::new(100, 10_000);
        for i in 0..10 {
            q.push(msg(i, 100));
        }
        let mut out = Vec::new();
        q.pop_batch(4, usize::MAX, &mut out);
        assert_eq!(out.len(), 4);
        out.clear();
        q.pop_batch(100, 250, &mut out);
        assert_eq!(out.len(), 2);
        out.clear();
        // The first message always goes, whatever its size.
        q.pop_batch(100, 1, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(q.len(), 3);
        q.close();
        assert_eq!(q.push(msg(0, 1)), Pushed::Closed);
        assert_eq!(q.len(), 0);
    }

    #[tokio::test]
    async fn push_wait_waits_for_room() {
        let q = std::sync::Arc::new(OutQueue::new(1, 100));
        q.push(msg(1, 1));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.push_wait(msg(2, 1)).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        let mut out = Vec::new();
        q.pop_batch(1, usize::MAX, &mut out);
        assert_eq!(waiter.await.unwrap(), Pushed::Queued { evicted: 0 });
        assert_eq!(q.len(), 1);
        q.close();
        assert_eq!(q.push_wait(msg(3, 1)).await, Pushed::Closed);
    }
}
