//! `Deadline`: the one timer a connection owns, reset for each read it bounds.
//!
//! monoio's `timeout()` embeds a fresh `Sleep` (640 bytes, 128-byte aligned) in
//! every future that uses it; a request's futures carried several and were copied
//! on every construction. A connection only ever waits on one bounded read at a
//! time (client head, client body, upstream response), so it keeps one boxed
//! `Sleep` and moves its deadline. Moving a deadline later is an atomic update in
//! the timer wheel, not a re-registration.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use monoio::time::{Instant, Sleep};

/// The deadline passed before the bounded future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

pub struct Deadline {
    sleep: Pin<Box<Sleep>>,
}

impl Default for Deadline {
    fn default() -> Self {
        Self::new()
    }
}

impl Deadline {
    pub fn new() -> Deadline {
        // Unarmed until the first `until`: far in the future.
        let far = Instant::now() + Duration::from_secs(30 * 24 * 3600);
        Deadline {
            sleep: Box::pin(monoio::time::sleep_until(far)),
        }
    }

    /// Runs `fut` until `limit` from now.
    pub fn within<F: Future>(&mut self, limit: Duration, fut: F) -> Bounded<'_, F> {
        self.until(Instant::now() + limit, fut)
    }

    /// Runs `fut` until `at`.
    pub fn until<F: Future>(&mut self, at: Instant, fut: F) -> Bounded<'_, F> {
        self.sleep.as_mut().reset(at);
        Bounded {
            sleep: self.sleep.as_mut(),
            fut,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future bounded by a [`Deadline`].
    pub struct Bounded<'a, F> {
        sleep: Pin<&'a mut Sleep>,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Bounded<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_rearms() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut d = Deadline::new();
            let slow = monoio::time::sleep(Duration::from_millis(200));
            assert_eq!(
                d.within(Duration::from_millis(20), slow).await,
                Err(Elapsed)
            );
            // Re-armed later, the same deadline lets a quick future finish.
            let quick = monoio::time::sleep(Duration::from_millis(5));
            assert_eq!(d.within(Duration::from_millis(500), quick).await, Ok(()));
            // And fires again after being moved earlier.
            let slow = monoio::time::sleep(Duration::from_millis(200));
            assert_eq!(
                d.within(Duration::from_millis(10), slow).await,
                Err(Elapsed)
            );
        });
    }
}
