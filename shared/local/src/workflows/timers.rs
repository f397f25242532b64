//! Timers on the injectable [`Clock`]: Wait states, retry back-off, task timeouts and
//! heartbeats sleep here, never on the wall clock, so tests move a `ManualClock` and call
//! [`Timers::fire_due`] instead of sleeping. In `payops up` a driver task fires them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use payops_app::ports::Clock;
use tokio::sync::{Notify, oneshot};

/// Longest the driver sleeps between looks at the clock (a system clock can jump).
pub const DRIVER_POLL_MAX_MS: u64 = 1_000;

type Key = (DateTime<Utc>, u64);

/// Runs when a timer fires, before its sleeper is woken (the executor marks the sleeping frame
/// busy at that instant, so "is anything runnable?" never sees a gap).
pub type OnFire = Box<dyn FnOnce() + Send>;

/// A registered sleeper: how to wake it, and what to run first.
type Sleeper = (oneshot::Sender<()>, Option<OnFire>);

pub struct Timers {
    clock: Arc<dyn Clock>,
    pending: Mutex<BTreeMap<Key, Sleeper>>,
    seq: AtomicU64,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map stays consistent even if a holder panicked: each operation is one insert/remove.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a timer whose sleeper went away (its future was dropped: the frame was cancelled).
struct Registration<'t> {
    timers: &'t Timers,
    key: Key,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        lock(&self.timers.pending).remove(&self.key);
    }
}

/// A registered timer; dropping it cancels the timer.
pub struct TimerWait<'t> {
    pending: Option<(oneshot::Receiver<()>, Registration<'t>)>,
}

impl TimerWait<'_> {
    /// Completes when the timer fires.
    pub async fn wait(self) {
        if let Some((rx, _registration)) = self.pending {
            // Err means the sender was dropped, which only happens after firing or removal.
            let _ = rx.await;
        }
    }
}

impl Timers {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Timers {
            clock,
            pending: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Completes at `deadline` by the clock (at once if it has passed).
    pub async fn sleep_until(&self, deadline: DateTime<Utc>) {
        self.sleep_until_with(deadline, None).await;
    }

    /// Like `sleep_until`; `on_fire` runs when the timer fires (not when it is cancelled).
    pub async fn sleep_until_with(&self, deadline: DateTime<Utc>, on_fire: Option<OnFire>) {
        self.register(deadline, on_fire).wait().await;
    }

    /// Registers a timer now (it shows in `next_deadline` before this returns) and returns
    /// the wait for it. A frame registers its timers before it counts as parked: otherwise
    /// an observer on another thread could see it idle with no timer pending, and conclude
    /// that the execution is stuck. A deadline already passed gives a wait that is over.
    pub fn register(&self, deadline: DateTime<Utc>, on_fire: Option<OnFire>) -> TimerWait<'_> {
        if self.clock.now() >= deadline {
            return TimerWait { pending: None };
        }
        let (tx, rx) = oneshot::channel();
        let key = (deadline, self.seq.fetch_add(1, Ordering::Relaxed));
        lock(&self.pending).insert(key, (tx, on_fire));
        let registration = Registration { timers: self, key };
        self.changed.notify_one();
        // The clock may have passed the deadline between the check and the insert.
        if self.clock.now() >= deadline {
            return TimerWait { pending: None };
        }
        TimerWait {
            pending: Some((rx, registration)),
        }
    }

    /// Wakes every sleeper whose deadline has passed; returns how many.
    pub fn fire_due(&self) -> usize {
        let now = self.clock.now();
        let due: Vec<Sleeper> = {
            let mut pending = lock(&self.pending);
            let later = pending.split_off(&(now, u64::MAX));
            std::mem::replace(&mut *pending, later)
                .into_values()
                .collect()
        };
        let n = due.len();
        for (tx, on_fire) in due {
            if let Some(f) = on_fire {
                f();
            }
            // The sleeper may be gone (cancelled); nothing to wake then.
            let _ = tx.send(());
        }
        n
    }

    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        lock(&self.pending).keys().next().map(|(t, _)| *t)
    }

    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Fires timers as the clock passes them, until the returned task is aborted.
    pub fn spawn_driver(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let timers = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                timers.fire_due();
                let wait_ms = match timers.next_deadline() {
                    Some(d) => (d - timers.clock.now())
                        .num_milliseconds()
                        .clamp(1, DRIVER_POLL_MAX_MS as i64) as u64,
                    None => DRIVER_POLL_MAX_MS,
                };
                tokio::select! {
                    _ = tokio::time::sleep(StdDuration::from_millis(wait_ms)) => {}
                    _ = timers.changed.notified() => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use payops_app::ports::ManualClock;

    #[tokio::test]
    async fn fires_only_due_timers() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let clock = Arc::new(ManualClock::new(start));
        let timers = Arc::new(Timers::new(clock.clone()));
        let t = Arc::clone(&timers);
        let sleeper =
            tokio::spawn(async move { t.sleep_until(start + Duration::seconds(10)).await });
        while timers.pending() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::seconds(5));
        assert_eq!(timers.fire_due(), 0);
        assert!(!sleeper.is_finished());
        clock.advance(Duration::seconds(5));
        assert_eq!(timers.fire_due(), 1);
        sleeper.await.expect("sleeper ends");
        // A past deadline returns at once.
        timers.sleep_until(start).await;
    }

    #[test]
    fn a_registered_timer_is_pending_at_once_and_gone_when_dropped() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let timers = Timers::new(Arc::new(ManualClock::new(start)));
        let wait = timers.register(start + Duration::seconds(3), None);
        assert_eq!(timers.next_deadline(), Some(start + Duration::seconds(3)));
        drop(wait);
        assert_eq!(timers.pending(), 0);
        let _past = timers.register(start, None);
        assert_eq!(timers.pending(), 0, "a passed deadline registers nothing");
    }

    #[tokio::test]
    async fn cancelled_sleepers_leave_no_timer() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let timers = Timers::new(Arc::new(ManualClock::new(start)));
        let sleep = timers.sleep_until(start + Duration::seconds(1));
        tokio::select! {
            _ = sleep => panic!("cannot fire"),
            _ = tokio::task::yield_now() => {}
        }
        assert_eq!(timers.pending(), 0);
    }
}
