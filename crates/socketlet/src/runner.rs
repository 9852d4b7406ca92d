//! Running handler futures without a task per event when they do not need one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};

/// Polls `fut` once on the current thread; if it is not finished, spawns the rest as a task.
///
/// Most handlers (answer an ack, join a room, emit) finish on their first poll: they run in
/// arrival order and cost no task. A handler that awaits something continues as its own task,
/// so it never holds up the connection that delivered the event. The first poll uses a no-op
/// waker; the spawned task polls again at once with its real waker, so no wake-up is lost.
pub(crate) fn run_detached<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    run_boxed(Box::pin(fut));
}

/// [`run_detached`] for a future that is boxed already (event handlers return one), so that it
/// is not boxed twice.
pub(crate) fn run_boxed(mut fut: Pin<Box<dyn Future<Output = ()> + Send>>) {
    let mut cx = Context::from_waker(Waker::noop());
    if fut.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(fut);
    }
}
