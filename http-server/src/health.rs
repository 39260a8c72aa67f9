//! Health probes: `/health/live` (the process serves) and `/health/ready` (every
//! dependency this instance needs is usable: the database with its migrations
//! applied and taking writes, the broker, the event pipeline, whatever a service
//! adds). Kept free of `rdkafka`: a service passes its broker check in as a closure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use migrations::Pooled;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use telemetry::repeats::{REPEAT_WINDOW, shape};
use utoipa::ToSchema;

use crate::supervisor::Pipeline;
use crate::{ApiResponse, ErrorResponse};

/// How long one check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), Down>> + Send + Sync>;

/// Why a check is down: `reason` is logged; `detail`, when there is one, is safe to
/// show the prober (task names, ages) and is answered too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Down {
    reason: String,
    detail: Option<String>,
}

impl Down {
    fn logged(reason: String) -> Self {
        Self { reason, detail: None }
    }

    fn answered(detail: String) -> Self {
        Self { reason: detail.clone(), detail: Some(detail) }
    }
}

/// The named checks `/health/ready` runs, all at once, on every probe.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
    log: Arc<Mutex<DownLog>>,
}

/// What readiness logged of the checks that are down. A prober asks every few
/// seconds, and each unready answer was a WARN line: 120 a minute in a test polling
/// twice a second. A check is logged when it goes down, again when why changes (in more
/// than its numbers) or once a [`REPEAT_WINDOW`] while it stays down, and when it is up
/// again; the probes in between at DEBUG.
#[derive(Debug, Default)]
struct DownLog {
    down: HashMap<&'static str, Logged>,
}

#[derive(Debug)]
struct Logged {
    since: Instant,
    at: Instant,
    reason: String,
}

impl DownLog {
    fn record(&mut self, name: &'static str, outcome: &Result<(), Down>, now: Instant) {
        let down = match outcome {
            Ok(()) => {
                if let Some(logged) = self.down.remove(name) {
                    let down_for = now.duration_since(logged.since);
                    tracing::info!(dependency = name, ?down_for, "up again");
                }
                return;
            }
            Err(down) => down,
        };
        let reason = shape(&down.reason);
        match self.down.get_mut(name) {
            Some(logged) if logged.reason == reason && now.duration_since(logged.at) < REPEAT_WINDOW => {
                tracing::debug!(dependency = name, reason = %down.reason, "not ready");
            }
            Some(logged) => {
                let down_for = now.duration_since(logged.since);
                tracing::warn!(dependency = name, reason = %down.reason, ?down_for, "not ready");
                (logged.at, logged.reason) = (now, reason);
            }
            None => {
                tracing::warn!(dependency = name, reason = %down.reason, "not ready");
                self.down.insert(name, Logged { since: now, at: now, reason });
            }
        }
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.checks.iter().map(|(name, _)| name)).finish()
    }
}

impl Readiness {
    /// No checks: always ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the check `name`: `Ok` when usable, else why not (logged, not answered).
    /// A check that takes longer than two seconds is down.
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(check().map(|outcome| outcome.map_err(Down::logged))))));
        self
    }

    /// Adds the check `pipeline`: down while a background task of `pipeline` is down
    /// (see [`Pipeline::supervise`]), or while the oldest event the relay has not
    /// published, as `oldest_unpublished` measures it, was committed longer than
    /// `stall_after` ago: the relay is then not publishing, whatever its task says. A
    /// measurement that fails (the database away) counts as no stall: the `database`
    /// check reports that. The answer names the tasks down and the age.
    pub fn pipeline<F, Fut>(mut self, pipeline: Pipeline, stall_after: Duration, oldest_unpublished: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Duration>, String>> + Send + 'static,
    {
        let oldest_unpublished = Arc::new(oldest_unpublished);
        let check = move || {
            let (pipeline, oldest_unpublished) = (pipeline.clone(), oldest_unpublished.clone());
            async move {
                let mut problems = Vec::new();
                if let Err(tasks) = pipeline.check() {
                    problems.push(tasks);
                }
                match oldest_unpublished().await {
                    Ok(Some(age)) if age > stall_after => problems.push(format!(
                        "the oldest unpublished event was committed {} s ago (bound {} s)",
                        age.as_secs(),
                        stall_after.as_secs_f64()
                    )),
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%error, "cannot measure the age of the oldest unpublished event"),
                }
                if problems.is_empty() { Ok(()) } else { Err(Down::answered(problems.join("; "))) }
            }
            .boxed()
        };
        self.checks.push(("pipeline", Arc::new(check)));
        self
    }

    /// Adds the check `database`: `pool` answers, every migration of `migrator` is
    /// applied to the schema the pool works in, and it takes writes (it is not
    /// read-only, and its disk has room).
    pub fn database(self, pool: PgPool, migrator: &'static Migrator) -> Self {
        self.check("database", move || database_ready(pool.clone(), migrator))
    }

    /// Runs every check; the names of those down, with why.
    async fn run(&self) -> Vec<(&'static str, Result<(), Down>)> {
        join_all(self.checks.iter().map(|(name, check)| async move {
            let outcome = tokio::time::timeout(CHECK_TIMEOUT, check())
                .await
                .unwrap_or_else(|_| Err(Down::logged(format!("no answer within {CHECK_TIMEOUT:?}"))));
            (*name, outcome)
        }))
        .await
    }
}

async fn database_ready(pool: PgPool, migrator: &'static Migrator) -> Result<(), String> {
    let latest = migrator.iter().map(|m| m.version).max();
    // A server that answers but refuses writes (a standby, a primary demoted, read-only
    // by configuration) fails every command and stalls the pipeline: not ready. Its
    // transactions say so, in the same round trip.
    let (applied, read_only): (Option<i64>, bool) = sqlx::query_as(
        "SELECT max(version), current_setting('transaction_read_only') = 'on' FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(&pool)
    .await
    .map_err(|e| format!("cannot read the migration history: {e}"))?;
    if read_only {
        return Err("the server is read-only: it refuses writes".to_owned());
    }
    match (latest, applied) {
        (Some(latest), Some(applied)) if applied >= latest => {}
        (None, _) => {}
        (Some(latest), applied) => return Err(format!("migrations pending: latest is {latest}, applied {applied:?}")),
    }
    takes_writes(&pool).await
}

/// Whether the database takes a write that needs new space. A server whose disk is
/// full answers reads and connections, and even updates that fit in pages it has,
/// while every order it is asked to store fails (SQLSTATE 53100). In a transaction
/// rolled back, the probe creates a temporary table (a new, empty file, in the
/// database's default tablespace) and inserts a row, which must give the file its first
/// page: that fails exactly when new space cannot be had. A temporary table belongs to
/// its session, so no two probes, of this instance or another, wait on each other;
/// nothing is left behind.
async fn takes_writes(pool: &PgPool) -> Result<(), String> {
    let mut connection = Pooled::acquire(pool).await.map_err(|e| format!("cannot connect: {e}"))?;
    let mut transaction = connection.begin().await.map_err(|e| format!("cannot begin a transaction: {e}"))?;
    // One round trip. Not prepared: it names a table each probe creates anew. The
    // temporary table goes where the database's own tables do, whatever
    // `temp_tablespaces` says.
    sqlx::query(
        "DO $$ BEGIN \
           PERFORM set_config('temp_tablespaces', '', true); \
           CREATE TEMPORARY TABLE pg_temp.write_probe (probed_at timestamptz); \
           INSERT INTO pg_temp.write_probe VALUES (now()); \
         END $$",
    )
    .persistent(false)
    .execute(&mut *transaction)
    .await
    .map_err(|e| format!("cannot write: {e}"))?;
    transaction.rollback().await.map_err(|e| format!("cannot roll the write probe back: {e}"))
}

/// The answer of a health probe.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `live` or `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Each dependency checked, and `up`.
    #[schema(example = json!({"database": "up", "broker": "up"}))]
    pub checks: std::collections::BTreeMap<&'static str, &'static str>,
}

/// `GET /health/live`: the process serves requests.
#[utoipa::path(get, path = "/health/live", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process serves requests; nothing else is checked.", body = crate::openapi::Success<Health>,
        example = json!({"success": true, "data": {"status": "live", "checks": {}}, "error": null}))))]
pub(crate) async fn live() -> ApiResponse<Health> {
    ApiResponse::ok(Health { status: "live", checks: Default::default() })
}

/// `GET /health/ready`: every dependency is usable; 503 naming those that are not.
#[utoipa::path(get, path = "/health/ready", tag = "operations", summary = "Readiness: database and broker",
    responses(
        (status = 200, description = "Every dependency is usable.", body = crate::openapi::Success<Health>,
            example = json!({"success": true, "data": {"status": "ready", "checks": {"database": "up", "broker": "up"}}, "error": null})),
        (status = 503, description = "A dependency is down; the message names it.", body = crate::openapi::Failure,
            example = json!({"success": false, "data": null, "error": "not ready: broker is down (database is up)"})),
    ))]
pub(crate) async fn ready(State(readiness): State<Readiness>) -> Result<ApiResponse<Health>, ErrorResponse> {
    let outcomes = readiness.run().await;
    {
        let mut log = readiness.log.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        for (name, outcome) in &outcomes {
            log.record(name, outcome, now);
        }
    }
    let down: Vec<&str> = outcomes.iter().filter(|(_, o)| o.is_err()).map(|(name, _)| *name).collect();
    if down.is_empty() {
        let checks = outcomes.iter().map(|(name, _)| (*name, "up")).collect();
        return Ok(ApiResponse::ok(Health { status: "ready", checks }));
    }
    let up: Vec<&str> = outcomes.iter().filter(|(_, o)| o.is_ok()).map(|(name, _)| *name).collect();
    let verb = if down.len() == 1 { "is" } else { "are" };
    let mut message = format!("not ready: {} {verb} down", down.join(" and "));
    if !up.is_empty() {
        message.push_str(&format!(" ({} {} up)", up.join(" and "), if up.len() == 1 { "is" } else { "are" }));
    }
    for (name, outcome) in &outcomes {
        if let Err(Down { detail: Some(detail), .. }) = outcome {
            message.push_str(&format!("; {name}: {detail}"));
        }
    }
    Err(ErrorResponse::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, message))
}

#[cfg(test)]
mod tests {
    use telemetry::testing::Written;

    use super::*;

    #[test]
    fn a_check_down_is_logged_when_it_goes_down_changes_or_a_minute_passed_and_when_it_is_up_again() {
        let written = Written::default();
        let writer = written.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let timed_out = |ms: u64| Err(Down::logged(format!("metadata fetch timed out after {ms} ms")));
        let refused = Err(Down::logged("connection refused".to_owned()));
        tracing::subscriber::with_default(subscriber, || {
            let mut log = DownLog::default();
            log.record("broker", &timed_out(1500), at(0));
            // Probes every few seconds: the same reason, numbers aside, is not repeated.
            for secs in [2, 5, 30, 59] {
                log.record("broker", &timed_out(1500 + secs), at(secs));
            }
            log.record("database", &Ok(()), at(59));
            log.record("broker", &timed_out(1600), at(60));
            log.record("broker", &refused, at(61));
            log.record("broker", &Ok(()), at(70));
            log.record("broker", &Ok(()), at(75));
            log.record("broker", &refused, at(80));
        });
        let text = written.text();
        let lines: Vec<&str> = text.lines().collect();
        let summary: Vec<String> = lines
            .iter()
            .map(|line| {
                let level = if line.contains(" WARN ") { "WARN" } else { "INFO" };
                let reason = line.split("reason=").nth(1).map_or("", |r| r.split(" down_for").next().unwrap_or(r));
                format!("{level} {reason}").trim_end().to_owned()
            })
            .collect();
        assert_eq!(
            summary,
            [
                "WARN metadata fetch timed out after 1500 ms",
                "WARN metadata fetch timed out after 1600 ms",
                "WARN connection refused",
                "INFO",
                "WARN connection refused",
            ],
            "{text}"
        );
        assert!(lines[1].contains("down_for=60s"), "a repeat says how long it has been down: {}", lines[1]);
        assert!(lines[3].contains("up again") && lines[3].contains("down_for=70s"), "{}", lines[3]);
        assert!(!lines[4].contains("down_for"), "down again is news, not a repeat: {}", lines[4]);
    }
}
