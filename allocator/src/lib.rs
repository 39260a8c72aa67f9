//! The services' memory allocator, and how a long-running service gives freed memory
//! back to the kernel.
//!
//! Events are JSON: decoding and folding them allocates a lot, and mimalloc is much
//! faster at that than the system allocator (docs/benchmarks.md). Left to its
//! defaults, though, it keeps what a burst freed: mimalloc 3 returns freed pages only
//! after a second, and its arenas' after ten, and the kernel may back its heap with
//! 2 MiB huge pages, each resident while any byte of it is in use. After a 30 s broker
//! outage at 250 orders/s, when both services handle the backlog in batches back to
//! back, that held them at 63-70 MB for seconds (docs/benchmarks.md); a container
//! limited to 64 MB would have been killed while healing. [`return_freed_memory_at_once`]
//! is what `serve` does about it.
//!
//! This crate holds the workspace's only unsafe code: one call into mimalloc.

pub use mimalloc::MiMalloc as Allocator;

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// mimalloc's number for its `purge_delay` option (`mi_option_e`, the same in mimalloc 2
/// and 3). The bindings name only some options, not this one; a test checks the number
/// against `MIMALLOC_PURGE_DELAY`, the variable mimalloc reads for it.
const PURGE_DELAY: mi_option_t = 15;

/// The environment variable mimalloc reads its purge delay from at start.
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

/// Makes this process return freed memory to the kernel at once: mimalloc purges
/// (decommits) a page as soon as it is free instead of after its delay, and the
/// kernel no longer gives this process transparent huge pages (memory touched before
/// keeps those it has, so call this early). Measured at 250 orders/s: the peaks after
/// a broker outage fell from 63-65 MB (OMS) and 69-70 MB (inventory) to 55-61 and
/// 46-61 MB, the steady state by 3-5 MB, and the CPU the services spent stayed within
/// the spread of the runs (huge pages alone had cut the OMS's from 66-71 MB to 51-53
/// MB, docs/benchmarks.md). For long-running services; short commands gain nothing
/// from it. An operator's `MIMALLOC_PURGE_DELAY` wins over the 0 set here (to compare
/// both on one binary, say). An error says only that huge pages could not be turned
/// off (the purge delay is settled before).
pub fn return_freed_memory_at_once() -> std::io::Result<()> {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_none() {
        // SAFETY: `mi_option_set` stores an integer in mimalloc's option table, which
        // mimalloc reads at each purge; it may be called at any time, from any thread.
        #[allow(unsafe_code)]
        unsafe {
            mi_option_set(PURGE_DELAY, 0)
        };
    }
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_thp_disable(true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// How long mimalloc waits before it returns a freed page, in milliseconds (0: at
    /// once; -1: never).
    fn purge_delay_ms() -> std::ffi::c_long {
        // SAFETY: `mi_option_get` reads an integer from mimalloc's option table (reading
        // its environment variable the first time); it may be called at any time.
        #[allow(unsafe_code)]
        unsafe {
            mi_option_get(PURGE_DELAY)
        }
    }

    /// Run by [`the_option_number_is_mimallocs_purge_delay`] in a child process with
    /// `MIMALLOC_PURGE_DELAY` set; alone it has nothing to compare with. The operator's
    /// delay is still in force after the call.
    #[test]
    #[ignore = "run by the_option_number_is_mimallocs_purge_delay in a child process"]
    fn reads_the_purge_delay_mimalloc_was_given() {
        let given: std::ffi::c_long =
            std::env::var(PURGE_DELAY_VARIABLE).expect("set by the parent test").parse().expect("a number");
        assert_eq!(purge_delay_ms(), given);
        return_freed_memory_at_once().expect("huge pages turned off");
        assert_eq!(purge_delay_ms(), given, "the operator's delay is kept");
    }

    #[test]
    fn the_option_number_is_mimallocs_purge_delay() {
        let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--ignored", "--exact", "tests::reads_the_purge_delay_mimalloc_was_given", "--nocapture"])
            .env(PURGE_DELAY_VARIABLE, "4321")
            .output()
            .expect("the test binary runs");
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
        assert!(printed.contains("1 passed"), "the child ran no test: {printed}");
    }

    #[test]
    fn after_it_freed_memory_is_returned_at_once() {
        return_freed_memory_at_once().expect("huge pages turned off");
        assert_eq!(purge_delay_ms(), 0);
        #[cfg(target_os = "linux")]
        assert!(nix::sys::prctl::get_thp_disable().expect("readable"));
    }
}
