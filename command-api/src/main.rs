//! `oms`: the Order Management Service.

// Events are JSON: decoding and folding them allocates a lot, and mimalloc is much
// faster at that than the system allocator (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    service_kit::main::<command_api::Application, command_api::Oms>()
}
