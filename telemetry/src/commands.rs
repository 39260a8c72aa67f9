//! Counting commands: how many of each type were accepted, refused by a rule, lost
//! to concurrent writers, or failed.

use crate::names;

/// How a command ended; the `result` label of [`names::COMMANDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandResult {
    /// Committed (possibly deciding no events, e.g. a redelivery).
    Accepted,
    /// A business rule refused it.
    Rejected,
    /// Concurrent writers won every retry.
    Conflict,
    /// The store failed.
    Failed,
}

impl CommandResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Conflict => "conflict",
            Self::Failed => "failed",
        }
    }
}

/// Counts one command of type `command` on an `aggregate` that ended with `result`.
pub fn record_command(aggregate: &'static str, command: &'static str, result: CommandResult) {
    metrics::counter!(names::COMMANDS, "aggregate" => aggregate, "command" => command, "result" => result.as_str())
        .increment(1);
}

/// Counts `events` appended to aggregates of type `aggregate`.
pub fn record_events_appended(aggregate: &'static str, events: u64) {
    metrics::counter!(names::EVENTS_APPENDED, "aggregate" => aggregate).increment(events);
}

/// How a commit reached the database; the `path` label of [`names::COMMITS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPath {
    /// One statement appended the events and wrote the read model's rows.
    Statement,
    /// A transaction of several statements (the read model read first, keyed state,
    /// snapshots).
    Transaction,
}

impl CommitPath {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Statement => "statement",
            Self::Transaction => "transaction",
        }
    }
}

/// Counts one commit to aggregates of type `aggregate` that took `path`.
pub fn record_commit(aggregate: &'static str, path: CommitPath) {
    metrics::counter!(names::COMMITS, "aggregate" => aggregate, "path" => path.as_str()).increment(1);
}

/// How many commits to aggregates of type `aggregate` this process counted, in one
/// statement and in a transaction, as its recorder renders them (0 before the first,
/// or without the recorder). For tests of which path commits take.
pub fn commits_by_path(aggregate: &str) -> (u64, u64) {
    let text = crate::recorder::render();
    let count = |path: CommitPath| {
        let line = format!(r#"{}{{aggregate="{aggregate}",path="{}"}} "#, names::COMMITS, path.as_str());
        text.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |n| n.parse().expect("a count"))
    };
    (count(CommitPath::Statement), count(CommitPath::Transaction))
}

/// The `result` of a command, from what the service answered: `Ok` is accepted,
/// else `classify` names the error's kind.
pub fn result_of<T, E>(outcome: &Result<T, E>, classify: impl FnOnce(&E) -> CommandResult) -> CommandResult {
    outcome.as_ref().err().map_or(CommandResult::Accepted, classify)
}

/// Awaits `execution`, the execution of one `command` on an `aggregate`, and counts
/// it under the result `classify` gives its error (accepted when it succeeded).
pub async fn counted<T, E>(
    aggregate: &'static str,
    command: &'static str,
    classify: impl FnOnce(&E) -> CommandResult,
    execution: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let outcome = execution.await;
    record_command(aggregate, command, result_of(&outcome, classify));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_counted_by_path() {
        crate::prometheus();
        assert_eq!(commits_by_path("PathTally"), (0, 0), "none yet");
        record_commit("PathTally", CommitPath::Statement);
        record_commit("PathTally", CommitPath::Statement);
        record_commit("PathTally", CommitPath::Transaction);
        record_commit("OtherTally", CommitPath::Transaction);
        assert_eq!(commits_by_path("PathTally"), (2, 1));
    }

    #[tokio::test]
    async fn each_execution_is_counted_under_its_result() {
        crate::prometheus();
        let classify = |error: &&str| {
            if *error == "conflict" { CommandResult::Conflict } else { CommandResult::Rejected }
        };
        let accepted = counted("Tally", "Count", classify, async { Ok::<_, &str>(1) }).await;
        let conflict = counted("Tally", "Count", classify, async { Err::<u8, _>("conflict") }).await;
        assert_eq!((accepted, conflict), (Ok(1), Err("conflict")), "the outcome passes through");
        let text = crate::recorder::render();
        for result in ["accepted", "conflict"] {
            let line = format!(r#"commands_total{{aggregate="Tally",command="Count",result="{result}"}} 1"#);
            assert!(text.contains(&line), "{line} in {text}");
        }
    }
}
