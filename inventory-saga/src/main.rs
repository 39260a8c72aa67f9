//! `inventory`: the inventory service.

use inventory_saga::{Application, Inventory, InventoryCommands};

// mimalloc (see the allocator crate).
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

fn main() -> anyhow::Result<std::process::ExitCode> {
    service_kit::main_with::<Application, Inventory, InventoryCommands>()
}
