//! What the OMS counts about its commands: a name per command type, and the result
//! of an execution (the metric names themselves are in `telemetry::names`).

use domain::order::{OrderCommand, OrderError};
use eventstore::ExecuteError;
use telemetry::CommandResult;

/// The `command` label of `command`.
pub fn command_type(command: &OrderCommand) -> &'static str {
    match command {
        OrderCommand::PlaceOrder(_) => "PlaceOrder",
        OrderCommand::UpdateOrder(_) => "UpdateOrder",
        OrderCommand::RecordItemOutcome(_) => "RecordItemOutcome",
    }
}

/// The `result` label of a failed execution.
pub fn failure(error: &ExecuteError<OrderError>) -> CommandResult {
    match error {
        ExecuteError::Rejected(_) => CommandResult::Rejected,
        ExecuteError::Conflict => CommandResult::Conflict,
        ExecuteError::Store(_) => CommandResult::Failed,
    }
}
