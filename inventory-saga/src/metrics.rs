//! What the inventory service counts about its commands: a name per command type,
//! and the result of an execution (the metric names are in `telemetry::names`).

use domain::inventory::{ProductCommand, ProductError};
use eventstore::ExecuteError;
use telemetry::CommandResult;

/// The `command` label of `command`.
pub fn command_type(command: &ProductCommand) -> &'static str {
    match command {
        ProductCommand::AddProduct(_) => "AddProduct",
        ProductCommand::Restock { .. } => "Restock",
        ProductCommand::ReserveStock { .. } => "ReserveStock",
        ProductCommand::ReleaseStock { .. } => "ReleaseStock",
    }
}

/// The `result` label of a failed execution.
pub fn failure(error: &ExecuteError<ProductError>) -> CommandResult {
    match error {
        ExecuteError::Rejected(_) => CommandResult::Rejected,
        ExecuteError::Conflict => CommandResult::Conflict,
        ExecuteError::Store(_) => CommandResult::Failed,
    }
}
