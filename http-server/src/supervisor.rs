//! The service's background tasks (the outbox relay, the consumers, the view
//! follower): each runs supervised, so that one that ends or panics before shutdown
//! is logged and restarted with backoff instead of leaving a dead pipeline behind a
//! service that says it is ready. A task that runs but cannot do its work (a consumer
//! the group left without partitions, say) reports itself stuck through
//! [`Pipeline::stuck_reporter`]. What they are doing is visible: readiness's `pipeline`
//! check fails while one is down or stuck, the gauge `pipeline_stalled{task}` is 1
//! meanwhile, and at shutdown [`Pipeline::unfinished`] names those still stopping.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The first wait before a task is restarted; it doubles with each failure in a row,
/// up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A task that ran this long before it stopped counts as healthy again: its next
/// restart waits [`FIRST_BACKOFF`] only.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What a supervised task is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// It runs.
    Running,
    /// It runs but says it cannot do its work, for `reason`, until it says otherwise
    /// or is restarted.
    Stuck {
        /// What keeps it from working, in its own words.
        reason: String,
    },
    /// It ended or panicked before shutdown, for `reason`, and is restarted soon.
    Restarting {
        /// What happened to it (it ended, failed with an error, panicked).
        reason: String,
    },
    /// It stopped for shutdown.
    Stopped,
}

/// The supervised tasks of one service and what each is doing; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    tasks: Arc<Mutex<BTreeMap<&'static str, TaskState>>>,
}

impl Pipeline {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the task `name`, made by `make`, in a task of its own until `shutdown`;
    /// whenever it ends (or fails, or panics) before shutdown, it is logged, marked
    /// down, and made and started again after a backoff (from half a second,
    /// doubling up to 30 s while it keeps failing). The returned handle completes
    /// once the task stopped for shutdown.
    ///
    /// The task must return when `shutdown` is cancelled, after finishing what it has
    /// in hand; one that ends by itself before is presumed broken.
    pub fn supervise<F, Fut>(&self, name: &'static str, shutdown: &CancellationToken, make: F) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.set(name, TaskState::Running);
        tokio::spawn(supervise(self.clone(), name, shutdown.clone(), make))
    }

    /// Every task with what it is doing, by name.
    pub fn states(&self) -> BTreeMap<&'static str, TaskState> {
        self.lock().clone()
    }

    /// The tasks down (waiting to be restarted) or stuck, with why, by name.
    pub fn stalled(&self) -> Vec<(&'static str, String)> {
        self.lock()
            .iter()
            .filter_map(|(name, state)| match state {
                TaskState::Restarting { reason } | TaskState::Stuck { reason } => Some((*name, reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// How the running task `name` says it is stuck (`Some(why)`) or working again
    /// (`None`). A report while the task is not running (restarting, stopped) is stale
    /// and changes nothing; a restart clears the stuck state.
    pub fn stuck_reporter(&self, name: &'static str) -> impl Fn(Option<String>) + Send + Sync + Clone + 'static {
        let pipeline = self.clone();
        move |reason| {
            let mut tasks = pipeline.lock();
            let next = match (tasks.get(name), reason) {
                (Some(TaskState::Running | TaskState::Stuck { .. }), Some(reason)) => TaskState::Stuck { reason },
                (Some(TaskState::Stuck { .. }), None) => TaskState::Running,
                _ => return,
            };
            record(name, &next);
            tasks.insert(name, next);
        }
    }

    /// The tasks that have not stopped yet (at shutdown: those still finishing).
    pub fn unfinished(&self) -> Vec<&'static str> {
        self.lock().iter().filter(|(_, state)| **state != TaskState::Stopped).map(|(name, _)| *name).collect()
    }

    /// `Ok` while no task is down or stuck, else which are and why (for readiness).
    pub fn check(&self) -> Result<(), String> {
        let described: Vec<String> = self
            .lock()
            .iter()
            .filter_map(|(name, state)| match state {
                TaskState::Restarting { reason } => Some(format!("{name} {reason}; restarting")),
                TaskState::Stuck { reason } => Some(format!("{name} {reason}")),
                _ => None,
            })
            .collect();
        if described.is_empty() { Ok(()) } else { Err(described.join("; ")) }
    }

    fn set(&self, name: &'static str, state: TaskState) {
        record(name, &state);
        self.lock().insert(name, state);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, TaskState>> {
        // The map stays consistent whatever panicked while holding it: every change
        // is a single insert.
        self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reports `state` of task `name` on the gauge `pipeline_stalled{task}`.
fn record(name: &str, state: &TaskState) {
    telemetry::pipeline::record_task_stalled(
        name,
        matches!(state, TaskState::Restarting { .. } | TaskState::Stuck { .. }),
    );
}

/// The supervised tasks of one running service: started with [`Supervisor::spawn`],
/// stopped together with [`Supervisor::stop`].
#[derive(Debug)]
pub struct Supervisor {
    pipeline: Pipeline,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Supervisor {
    /// No tasks yet; their states go to `pipeline`.
    pub fn new(pipeline: &Pipeline) -> Self {
        Self { pipeline: pipeline.clone(), shutdown: CancellationToken::new(), tasks: Vec::new() }
    }

    /// Runs the task `name` under supervision (see [`Pipeline::supervise`]); `make`
    /// gets the token that [`Supervisor::stop`] cancels.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, mut make: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let token = self.shutdown.clone();
        self.tasks.push(self.pipeline.supervise(name, &self.shutdown, move || make(token.clone())));
    }

    /// Asks every task to stop and waits until they did or `deadline` passed; the
    /// names of those that had not stopped by then (left running: the process is
    /// about to exit).
    pub async fn stop(self, deadline: tokio::time::Instant) -> Vec<&'static str> {
        self.shutdown.cancel();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout_at(deadline, all).await.is_ok() {
            return Vec::new();
        }
        self.pipeline.unfinished()
    }
}

async fn supervise<F, Fut>(pipeline: Pipeline, name: &'static str, shutdown: CancellationToken, mut make: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut failures = 0u32;
    loop {
        pipeline.set(name, TaskState::Running);
        let started = Instant::now();
        // A task of its own, so that a panic ends it, not the supervisor.
        let outcome = tokio::spawn(make()).await;
        let reason = match outcome {
            Ok(Ok(())) => "ended".to_owned(),
            Ok(Err(error)) => format!("failed: {error:#}"),
            Err(error) if error.is_panic() => format!("panicked: {}", panic_message(error.into_panic())),
            Err(_) => "was cancelled".to_owned(),
        };
        if shutdown.is_cancelled() {
            if reason != "ended" {
                tracing::warn!(task = name, %reason, "a pipeline task did not stop cleanly at shutdown");
            }
            pipeline.set(name, TaskState::Stopped);
            return;
        }
        failures = if started.elapsed() >= HEALTHY_RUN { 1 } else { failures + 1 };
        let backoff = restart_backoff(failures);
        tracing::error!(task = name, %reason, failures, restart_in_ms = backoff.as_millis() as u64, "a pipeline task stopped before shutdown; restarting it");
        pipeline.set(name, TaskState::Restarting { reason });
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => {
                pipeline.set(name, TaskState::Stopped);
                return;
            }
        }
    }
}

/// The wait before restarting a task that failed `failures` times in a row (1 for
/// the first failure).
fn restart_backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16))).min(MAX_BACKOFF)
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn restarts_back_off_from_half_a_second_to_thirty() {
        let waits: Vec<u64> = [1, 2, 3, 7, 8, 100].iter().map(|f| restart_backoff(*f).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 30_000, 30_000, 30_000]);
    }

    #[tokio::test]
    async fn a_task_that_panics_is_reported_down_then_restarted() {
        let pipeline = Pipeline::new();
        let shutdown = CancellationToken::new();
        let starts = Arc::new(AtomicU32::new(0));
        let handle = pipeline.supervise("flaky", &shutdown, {
            let (starts, shutdown) = (starts.clone(), shutdown.clone());
            move || {
                let (starts, shutdown) = (starts.clone(), shutdown.clone());
                async move {
                    if starts.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("boom");
                    }
                    shutdown.cancelled().await;
                    Ok(())
                }
            }
        });
        let started = Instant::now();
        while pipeline.stalled().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "never reported down");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let down_at = Instant::now();
        assert_eq!(pipeline.stalled(), [("flaky", "panicked: boom".to_owned())], "down after the panic");
        let down = pipeline.check().expect_err("readiness fails while it is down");
        assert!(down.contains("flaky panicked: boom"), "{down}");

        while starts.load(Ordering::SeqCst) < 2 {
            assert!(started.elapsed() < Duration::from_secs(5), "never restarted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            down_at.elapsed() >= FIRST_BACKOFF - Duration::from_millis(50),
            "restarted after the backoff, not at once: {:?}",
            down_at.elapsed()
        );
        assert_eq!(pipeline.states()["flaky"], TaskState::Running);
        assert_eq!(pipeline.check(), Ok(()));

        shutdown.cancel();
        handle.await.expect("the supervisor ends");
        assert_eq!(pipeline.states()["flaky"], TaskState::Stopped);
        assert!(pipeline.unfinished().is_empty());
    }

    #[tokio::test]
    async fn a_task_that_ends_or_fails_before_shutdown_is_restarted_with_growing_backoff() {
        let pipeline = Pipeline::new();
        let shutdown = CancellationToken::new();
        let starts = Arc::new(AtomicU32::new(0));
        let handle = pipeline.supervise("quitter", &shutdown, {
            let starts = starts.clone();
            move || {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                async move { if n.is_multiple_of(2) { Ok(()) } else { Err(anyhow::anyhow!("no broker")) } }
            }
        });
        // Starts at 0, then after 0.5 s, 1 s and 2 s of backoff: the fourth start at
        // 3.5 s, the fifth not before 7.5 s.
        tokio::time::sleep(Duration::from_millis(3800)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 4);
        assert_eq!(pipeline.stalled(), [("quitter", "failed: no broker".to_owned())]);
        shutdown.cancel();
        handle.await.expect("the supervisor ends during the backoff");
        assert_eq!(pipeline.states()["quitter"], TaskState::Stopped);
    }

    #[tokio::test]
    async fn a_running_task_that_says_it_is_stuck_fails_readiness_until_it_works_again_or_restarts() {
        let pipeline = Pipeline::new();
        let shutdown = CancellationToken::new();
        let starts = Arc::new(AtomicU32::new(0));
        let (end_first_run, first_run_ends) = tokio::sync::oneshot::channel::<()>();
        let first_run_ends = Arc::new(Mutex::new(Some(first_run_ends)));
        let handle = pipeline.supervise("consumer", &shutdown, {
            let (starts, shutdown) = (starts.clone(), shutdown.clone());
            move || {
                let ends = first_run_ends.lock().expect("lock").take();
                let (starts, shutdown) = (starts.clone(), shutdown.clone());
                async move {
                    starts.fetch_add(1, Ordering::SeqCst);
                    match ends {
                        Some(ends) => drop(ends.await),
                        None => shutdown.cancelled().await,
                    }
                    Ok(())
                }
            }
        });
        let report = pipeline.stuck_reporter("consumer");
        assert_eq!(pipeline.check(), Ok(()));

        report(Some("holds no partition for 10 s".to_owned()));
        assert_eq!(pipeline.stalled(), [("consumer", "holds no partition for 10 s".to_owned())]);
        assert_eq!(pipeline.check(), Err("consumer holds no partition for 10 s".to_owned()));
        report(None);
        assert_eq!(pipeline.states()["consumer"], TaskState::Running, "working again");
        assert_eq!(pipeline.check(), Ok(()));

        // A restart clears it: the new run has not said anything yet.
        report(Some("stuck".to_owned()));
        end_first_run.send(()).expect("the first run waits");
        let started = Instant::now();
        while starts.load(Ordering::SeqCst) < 2 || pipeline.states()["consumer"] != TaskState::Running {
            assert!(started.elapsed() < Duration::from_secs(5), "never restarted: {:?}", pipeline.states());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pipeline.check(), Ok(()));

        // A report after the task stopped is stale.
        shutdown.cancel();
        handle.await.expect("the supervisor ends");
        report(Some("late".to_owned()));
        assert_eq!(pipeline.states()["consumer"], TaskState::Stopped);
    }

    #[tokio::test]
    async fn a_task_still_stopping_at_shutdown_is_named_unfinished() {
        let pipeline = Pipeline::new();
        let shutdown = CancellationToken::new();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(Mutex::new(Some(released)));
        let handle = pipeline.supervise("slow", &shutdown, move || {
            let released = released.lock().expect("lock").take();
            async move {
                if let Some(released) = released {
                    let _ = released.await;
                }
                Ok(())
            }
        });
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pipeline.unfinished(), ["slow"], "still finishing what it has in hand");
        release.send(()).expect("the task waits");
        handle.await.expect("the supervisor ends");
        assert!(pipeline.unfinished().is_empty());
    }
}
