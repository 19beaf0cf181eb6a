//! The writes a coordinator has made and not yet seen settled, per partition,
//! in the order made. A write takes effect only once it and every earlier write
//! of its partition are reported, so effects follow log order.

use std::collections::{HashMap, VecDeque};

use crate::WriteId;

struct Queued<T> {
    id: WriteId,
    result: Option<i16>,
    write: T,
}

/// Writes that settled, in order: (id, outcome, what the write does).
pub(crate) type Settled<T> = Vec<(WriteId, i16, T)>;

/// Per-partition queues of in-flight writes carrying what each will do (`T`).
pub(crate) struct WriteQueue<T> {
    queues: HashMap<i32, VecDeque<Queued<T>>>,
}

impl<T> Default for WriteQueue<T> {
    fn default() -> Self {
        WriteQueue { queues: HashMap::new() }
    }
}

impl<T> WriteQueue<T> {
    pub fn push(&mut self, partition: i32, id: WriteId, write: T) {
        self.queues.entry(partition).or_default().push_back(Queued { id, result: None, write });
    }

    /// Records `id`'s outcome (the first report counts) and returns the partition
    /// and the writes now settled, in order, each with its outcome. Unknown ids
    /// (of a partition given up) settle nothing.
    pub fn complete(&mut self, id: WriteId, result: i16) -> Option<(i32, Settled<T>)> {
        let (&partition, queue) = self.queues.iter_mut().find(|(_, q)| q.iter().any(|w| w.id == id))?;
        if let Some(w) = queue.iter_mut().find(|w| w.id == id) {
            w.result.get_or_insert(result);
        }
        let mut done = Vec::new();
        while queue.front().is_some_and(|w| w.result.is_some()) {
            if let Some(w) = queue.pop_front() {
                done.push((w.id, w.result.unwrap_or(result), w.write));
            }
        }
        if queue.is_empty() {
            self.queues.remove(&partition);
        }
        Some((partition, done))
    }

    /// Drops a partition's writes (it is given up) and returns them.
    pub fn remove(&mut self, partition: i32) -> Vec<(WriteId, T)> {
        self.queues.remove(&partition).unwrap_or_default().into_iter().map(|w| (w.id, w.write)).collect()
    }

    pub fn iter(&self, partition: i32) -> impl Iterator<Item = &T> {
        self.queues.get(&partition).into_iter().flatten().map(|w| &w.write)
    }

    pub fn iter_mut(&mut self, partition: i32) -> impl Iterator<Item = &mut T> {
        self.queues.get_mut(&partition).into_iter().flatten().map(|w| &mut w.write)
    }
}
