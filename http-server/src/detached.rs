//! A service a test runs on a runtime and a thread of its own (feature
//! `test-support`).
//!
//! A test's own runtime, when the test ends, waits for every blocking task still
//! running; a service without a broker has some (metadata requests that wait out their
//! timeout), which made every such test seconds longer. A service on its own runtime
//! is asked to stop when the test drops its handle, and nobody waits for it.

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

/// Asks the service to stop when dropped.
#[derive(Debug)]
pub struct DetachedService {
    _stop: oneshot::Sender<()>,
}

/// Runs `serve` on a new two-worker runtime on a thread of its own. `serve` gets the
/// future that completes when the returned handle is dropped (its shutdown signal);
/// once it returns, the runtime is dropped without waiting for blocking tasks.
pub fn run_detached<F, Fut>(serve: F) -> DetachedService
where
    F: FnOnce(BoxFuture<'static, ()>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the service under test");
        runtime.block_on(serve(stopped.map(|_| ()).boxed()));
        runtime.shutdown_background();
    });
    DetachedService { _stop: stop }
}
