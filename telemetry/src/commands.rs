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
    metrics::counter!(names::COMMANDS, "aggregate" => aggregate, "command" => command, "result" => result.as_str()).increment(1);
}
