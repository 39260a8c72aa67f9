//! `inventory`: the inventory service.

use inventory_saga::{Application, Inventory, InventoryCommands};

// Events are JSON: decoding and folding them allocates a lot, and mimalloc is much
// faster at that than the system allocator (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    service_kit::main_with::<Application, Inventory, InventoryCommands>()
}
