//! Timeouts without a timer per request: a core-local coarse clock and a sweeper.
//!
//! Every bounded wait on the request path (a client head or body read, a connect,
//! an upstream response read) goes through a connection's [`Deadline`]. Arming it
//! writes a number into a core-local slot; nothing is registered with the runtime's
//! timer wheel and no clock is read. One sweeper task per core ticks every
//! [`TICK`], advances the coarse clock and wakes the waits whose deadline passed.
//! A timeout therefore fires between its limit and its limit plus two ticks, which
//! is what idle, header and response timeouts need; in exchange the request path
//! saves two timer registrations and several clock reads per request.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the sweeper runs; also the coarse clock's resolution.
pub const TICK: Duration = Duration::from_millis(50);

const UNARMED: u64 = u64::MAX;

/// The bounded future's deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// One core's coarse clock and the deadlines its connections have armed.
pub struct Timers {
    epoch: Instant,
    /// Milliseconds since `epoch`, as of the last tick.
    now_ms: Cell<u64>,
    slots: RefCell<Vec<Weak<Slot>>>,
}

struct Slot {
    /// Milliseconds since the epoch at which the wait fails; `UNARMED` when idle.
    deadline_ms: Cell<u64>,
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            epoch: Instant::now(),
            now_ms: Cell::new(0),
            slots: RefCell::new(Vec::new()),
        }
    }
}

impl Timers {
    /// The coarse time: at most one [`TICK`] behind the real clock.
    pub fn now(&self) -> Instant {
        self.epoch + Duration::from_millis(self.now_ms.get())
    }

    fn ms_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Advances the coarse clock and fails every wait whose deadline has passed.
    /// Dropped connections' slots are forgotten here.
    pub fn sweep(&self) {
        let now = self.ms_of(Instant::now());
        self.now_ms.set(now);
        self.slots.borrow_mut().retain(|weak| {
            let Some(slot) = weak.upgrade() else {
                return false;
            };
            if slot.deadline_ms.get() <= now && !slot.fired.get() {
                slot.fired.set(true);
                if let Some(w) = slot.waker.borrow_mut().take() {
                    w.wake();
                }
            }
            true
        });
    }

    /// Runs the sweeper for as long as the core's runtime runs.
    pub async fn run(self: Rc<Self>) {
        loop {
            monoio::time::sleep(TICK).await;
            self.sweep();
        }
    }
}

/// The deadline one connection's current wait runs under.
pub struct Deadline {
    timers: Rc<Timers>,
    slot: Rc<Slot>,
}

impl Deadline {
    pub fn new(timers: &Rc<Timers>) -> Deadline {
        let slot = Rc::new(Slot {
            deadline_ms: Cell::new(UNARMED),
            fired: Cell::new(false),
            waker: RefCell::new(None),
        });
        timers.slots.borrow_mut().push(Rc::downgrade(&slot));
        Deadline {
            timers: timers.clone(),
            slot,
        }
    }

    /// Runs `fut` for at least `limit` (at most `limit` plus two ticks).
    pub fn within<F: Future>(&mut self, limit: Duration, fut: F) -> Bounded<'_, F> {
        // One tick added: the coarse clock may be up to a tick behind.
        let ms = self.timers.now_ms.get() + (limit + TICK).as_millis() as u64;
        self.arm(ms, fut)
    }

    /// Runs `fut` until about `at` (no earlier).
    pub fn until<F: Future>(&mut self, at: Instant, fut: F) -> Bounded<'_, F> {
        let ms = self.timers.ms_of(at) + 1;
        self.arm(ms, fut)
    }

    fn arm<F: Future>(&mut self, ms: u64, fut: F) -> Bounded<'_, F> {
        self.slot.deadline_ms.set(ms);
        self.slot.fired.set(false);
        Bounded {
            slot: &self.slot,
            fut,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future bounded by a [`Deadline`]; disarms it when done.
    pub struct Bounded<'a, F> {
        slot: &'a Slot,
        #[pin]
        fut: F,
    }

    impl<F> PinnedDrop for Bounded<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            this.slot.deadline_ms.set(UNARMED);
        }
    }
}

impl<F: Future> Future for Bounded<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if this.slot.fired.get() {
            return Poll::Ready(Err(Elapsed));
        }
        let mut waker = this.slot.waker.borrow_mut();
        match waker.as_ref() {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_rearms_and_forgets() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let timers = Rc::new(Timers::default());
            monoio::spawn(timers.clone().run());
            let mut d = Deadline::new(&timers);
            let started = Instant::now();
            let slow = monoio::time::sleep(Duration::from_millis(400));
            assert_eq!(
                d.within(Duration::from_millis(60), slow).await,
                Err(Elapsed)
            );
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(60), "{took:?}");
            // Re-armed, the same deadline lets a quick future finish...
            let quick = monoio::time::sleep(Duration::from_millis(5));
            assert_eq!(d.within(Duration::from_millis(500), quick).await, Ok(()));
            // ...and a finished wait is disarmed: a later sweep does not fire it.
            monoio::time::sleep(Duration::from_millis(150)).await;
            assert!(!d.slot.fired.get());
            let until = Instant::now() + Duration::from_millis(60);
            let slow = monoio::time::sleep(Duration::from_millis(400));
            assert_eq!(d.until(until, slow).await, Err(Elapsed));
            drop(d);
            timers.sweep();
            assert!(timers.slots.borrow().is_empty());
        });
    }
}
