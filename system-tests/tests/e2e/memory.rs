//! How the services use the machine's memory, as the binaries run: transparent huge
//! pages are off for their processes, so that what the allocator returns after a burst
//! leaves resident memory (docs/benchmarks.md, "Transparent huge pages off").

use system_tests::ProcessSystem;

/// The `THP_enabled` value of `/proc/<process>/status`: "0" when the process turned
/// transparent huge pages off for itself (or inherited that).
fn huge_pages_enabled(process: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).expect("reading a process status");
    let line = status.lines().find(|line| line.starts_with("THP_enabled:")).expect("a THP_enabled line (Linux 5.0+)");
    line.trim_start_matches("THP_enabled:").trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_run_with_transparent_huge_pages_off() {
    assert_eq!(
        huge_pages_enabled("self"),
        "1",
        "the test runs with them allowed (its children would inherit a 0), so a 0 below is the services' own doing"
    );
    let system = ProcessSystem::start(1, &[]).await.expect("starting both services as processes");
    for service in [&system.oms, &system.inventory] {
        let pid = service.pid().expect("the service runs").to_string();
        assert_eq!(huge_pages_enabled(&pid), "0", "{} keeps transparent huge pages off", service.binary_name());
    }
}
