//! Containment of panics: a future wrapper that turns a panic during `poll` into an
//! error result, so one connection's bug never unwinds through the core's runtime.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls `F`, catching panics. After a panic the inner future is dropped.
pub struct CatchUnwind<F> {
    inner: Option<Pin<Box<F>>>,
}

impl<F: Future> CatchUnwind<F> {
    pub fn new(f: F) -> Self {
        CatchUnwind {
            inner: Some(Box::pin(f)),
        }
    }
}

/// The panic happened; its payload has been logged by the panic hook.
#[derive(Debug)]
pub struct Panicked;

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `CatchUnwind` holds the future boxed, so it is Unpin itself.
        let this = self.get_mut();
        let Some(fut) = this.inner.as_mut() else {
            return Poll::Ready(Err(Panicked));
        };
        // AssertUnwindSafe: after a panic the future is dropped and never polled
        // again, so no broken invariant of it can be observed.
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => {
                this.inner = None;
                Poll::Ready(Ok(v))
            }
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => {
                this.inner = None;
                Poll::Ready(Err(Panicked))
            }
        }
    }
}

impl<F: Future> Unpin for CatchUnwind<F> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn a_panicking_task_leaves_the_runtime_serving() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let survived = Rc::new(Cell::new(false));
            let bad = monoio::spawn(CatchUnwind::new(async {
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                panic!("boom");
            }));
            let s = survived.clone();
            let good = monoio::spawn(CatchUnwind::new(async move {
                monoio::time::sleep(std::time::Duration::from_millis(5)).await;
                s.set(true);
                7
            }));
            assert!(bad.await.is_err());
            assert_eq!(good.await.unwrap(), 7);
            assert!(survived.get());
        });
    }
}
