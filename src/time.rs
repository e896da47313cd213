//! Timeouts without a timer per request: a core-local coarse clock and a sweeper.
//!
//! Every bounded wait on the request path (a client head or body read, a connect,
//! an upstream response read, a write) goes through a connection's [`Deadline`].
//! Arming it writes a tick number into a core-local slot; nothing is registered with
//! the runtime's timer wheel and no clock is read. One sweeper task per core runs
//! every [`TICK`] (woken by the ticker thread, so the cores run without monoio's
//! timer driver), counts the tick and wakes the waits whose tick has come. Deadlines
//! are counted in sweeps, not read off a clock, so a stalled core makes timeouts
//! late, never early: a wait fires after at least its limit, and normally within
//! two ticks of it. In exchange the request path saves timer registrations and
//! clock reads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the sweeper runs; also the coarse clock's resolution.
pub const TICK: Duration = Duration::from_millis(TICK_MS);
const TICK_MS: u64 = 50;

const UNARMED: u64 = u64::MAX;

/// The bounded future's deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// One core's coarse clock and the deadlines its connections have armed.
pub struct Timers {
    epoch: Instant,
    /// Milliseconds since `epoch`, as of the last sweep.
    now_ms: Cell<u64>,
    /// Sweeps so far.
    ticks: Cell<u64>,
    slots: RefCell<Vec<Weak<Slot>>>,
    /// Tasks waiting for the next sweep.
    tick_waiters: RefCell<Vec<Waker>>,
}

struct Slot {
    /// The sweep at which the wait fails; `UNARMED` when idle.
    deadline_tick: Cell<u64>,
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            epoch: Instant::now(),
            now_ms: Cell::new(0),
            ticks: Cell::new(0),
            slots: RefCell::new(Vec::new()),
            tick_waiters: RefCell::new(Vec::new()),
        }
    }
}

impl Timers {
    /// The coarse time: at most one [`TICK`] behind the real clock.
    pub fn now(&self) -> Instant {
        self.epoch + Duration::from_millis(self.now_ms.get())
    }

    /// The sweep by which at least `limit` will have passed from now: every sweep
    /// is at least a [`TICK`] after the one before, and the current tick may be
    /// nearly over, hence the one extra.
    pub fn deadline_tick(&self, limit: Duration) -> u64 {
        // u64 arithmetic: this runs for every bounded read and write.
        let ms = limit.as_secs().saturating_mul(1000) + u64::from(limit.subsec_millis());
        let n = ms.div_ceil(TICK_MS);
        self.ticks.get().saturating_add(n + 1)
    }

    /// Advances the coarse clock and fails every wait whose tick has come.
    /// Dropped connections' slots are forgotten here.
    pub fn sweep(&self) {
        self.now_ms.set(
            Instant::now()
                .saturating_duration_since(self.epoch)
                .as_millis() as u64,
        );
        let tick = self.ticks.get() + 1;
        self.ticks.set(tick);
        self.slots.borrow_mut().retain(|weak| {
            let Some(slot) = weak.upgrade() else {
                return false;
            };
            if slot.deadline_tick.get() <= tick && !slot.fired.get() {
                slot.fired.set(true);
                if let Some(w) = slot.waker.borrow_mut().take() {
                    w.wake();
                }
            }
            true
        });
        for w in self.tick_waiters.take() {
            w.wake();
        }
    }

    /// Sweeps so far: the core's clock in ticks.
    pub fn ticks(&self) -> u64 {
        self.ticks.get()
    }

    /// Resolves at the next sweep: a sleep of about one tick for code that polls
    /// (shutdown, drain, accept back-off) without the runtime's timer driver.
    pub fn next_tick(&self) -> NextTick<'_> {
        NextTick {
            timers: self,
            target: self.ticks.get() + 1,
        }
    }
}

/// See [`Timers::next_tick`].
pub struct NextTick<'a> {
    timers: &'a Timers,
    target: u64,
}

impl Future for NextTick<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.timers.ticks.get() >= self.target {
            return Poll::Ready(());
        }
        self.timers
            .tick_waiters
            .borrow_mut()
            .push(cx.waker().clone());
        Poll::Pending
    }
}

/// The deadline one connection's current wait runs under.
pub struct Deadline {
    timers: Rc<Timers>,
    slot: Rc<Slot>,
}

impl Deadline {
    /// The core's timers, for deadlines shared by several waits.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    pub fn new(timers: &Rc<Timers>) -> Deadline {
        let slot = Rc::new(Slot {
            deadline_tick: Cell::new(UNARMED),
            fired: Cell::new(false),
            waker: RefCell::new(None),
        });
        timers.slots.borrow_mut().push(Rc::downgrade(&slot));
        Deadline {
            timers: timers.clone(),
            slot,
        }
    }

    /// Runs `fut` for at least `limit` (normally at most `limit` plus two ticks).
    pub fn within<F: Future>(&mut self, limit: Duration, fut: F) -> Bounded<'_, F> {
        let tick = self.timers.deadline_tick(limit);
        self.at_tick(tick, fut)
    }

    /// Runs `fut` until at least `at` (reads the clock: for deadlines set earlier).
    pub fn until<F: Future>(&mut self, at: Instant, fut: F) -> Bounded<'_, F> {
        let tick = self
            .timers
            .deadline_tick(at.saturating_duration_since(Instant::now()));
        self.at_tick(tick, fut)
    }

    /// Runs `fut` until sweep `tick` (from [`Timers::deadline_tick`]): one deadline
    /// for several waits.
    pub fn at_tick<F: Future>(&mut self, tick: u64, fut: F) -> Bounded<'_, F> {
        self.slot.deadline_tick.set(tick);
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
            this.slot.deadline_tick.set(UNARMED);
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
    fn a_stalled_sweeper_fires_late_never_early() {
        let timers = Rc::new(Timers::default());
        let d = Deadline::new(&timers);
        // 100 ms is two ticks, plus one for the tick already under way.
        let tick = timers.deadline_tick(Duration::from_millis(100));
        assert_eq!(tick, 3);
        d.slot.deadline_tick.set(tick);
        // However late each sweep runs, two sweeps are not enough...
        timers.sweep();
        timers.sweep();
        assert!(!d.slot.fired.get());
        // ...the third is.
        timers.sweep();
        assert!(d.slot.fired.get());
    }

    #[test]
    fn bounds_rearms_and_forgets() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let timers = Rc::new(Timers::default());
            let t = timers.clone();
            monoio::spawn(async move {
                loop {
                    monoio::time::sleep(TICK).await;
                    t.sweep();
                }
            });
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
