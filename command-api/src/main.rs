//! `oms`: the Order Management Service.

// mimalloc (see the allocator crate).
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

fn main() -> anyhow::Result<std::process::ExitCode> {
    service_kit::main::<command_api::Application, command_api::Oms>()
}
