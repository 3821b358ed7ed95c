//! Turns to send a scrape, given newest first. A scrape holds its share of the store until its
//! client has read it, so only a few run at once; a client that stops reading holds its turn
//! until the write stall limit drops it. Newest-first means a flood of such clients, queued
//! before, does not keep a Prometheus that asks now from its turn: it gets the next one free,
//! and the flood's oldest waiters give up first.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

#[derive(Debug)]
struct Queue {
    free: usize,
    /// Waiters, oldest first; each is handed its turn through its sender.
    waiting: Vec<(u64, oneshot::Sender<Turn>)>,
    next_id: u64,
}

/// A fixed number of turns.
#[derive(Debug)]
pub struct Turns {
    queue: Mutex<Queue>,
}

/// One turn; given to the newest waiter (or back) when dropped.
#[derive(Debug)]
pub struct Turn {
    turns: Option<Arc<Turns>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(turns) = self.turns.take() {
            turns.give_back();
        }
    }
}

impl Turns {
    /// `n` turns.
    pub fn new(n: usize) -> Arc<Turns> {
        Arc::new(Turns {
            queue: Mutex::new(Queue {
                free: n,
                waiting: Vec::new(),
                next_id: 0,
            }),
        })
    }

    /// A turn, waiting at most `wait` for one; None when none came.
    pub async fn take(self: &Arc<Self>, wait: Duration) -> Option<Turn> {
        let (id, rx) = {
            let mut q = self.queue.lock();
            if q.free > 0 {
                q.free -= 1;
                return Some(Turn {
                    turns: Some(Arc::clone(self)),
                });
            }
            let (tx, rx) = oneshot::channel();
            let id = q.next_id;
            q.next_id += 1;
            q.waiting.push((id, tx));
            (id, rx)
        };
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(turn)) => Some(turn),
            _ => {
                // Gave up; a turn sent meanwhile goes back (by dropping it) to the next waiter.
                self.queue.lock().waiting.retain(|(w, _)| *w != id);
                None
            }
        }
    }

    /// A turn is over: to the newest waiter still waiting, else back to the free ones.
    fn give_back(self: Arc<Self>) {
        let mut q = self.queue.lock();
        while let Some((_, tx)) = q.waiting.pop() {
            let turn = Turn {
                turns: Some(Arc::clone(&self)),
            };
            match tx.send(turn) {
                Ok(()) => return,
                // That waiter is gone: its turn comes back here; do not give it back twice.
                Err(mut turn) => {
                    turn.turns = None;
                }
            }
        }
        q.free += 1;
    }

    /// Turns free now.
    #[cfg(test)]
    fn free(&self) -> usize {
        self.queue.lock().free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_newest_waiter_gets_the_next_turn_and_turns_are_never_lost() {
        let turns = Turns::new(1);
        let held = turns.take(Duration::ZERO).await.unwrap();
        assert!(
            turns.take(Duration::from_millis(10)).await.is_none(),
            "none free"
        );
        let older = tokio::spawn({
            let turns = Arc::clone(&turns);
            async move { turns.take(Duration::from_millis(300)).await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let newer = tokio::spawn({
            let turns = Arc::clone(&turns);
            async move { turns.take(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        let newer = newer.await.unwrap();
        assert!(newer.is_some(), "the newest waiter got it");
        assert!(!older.await.unwrap(), "the older one gave up");
        drop(newer);
        assert_eq!(turns.free(), 1, "the turn came back");
    }
}
