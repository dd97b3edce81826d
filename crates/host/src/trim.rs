//! Giving memory back to the system once a burst is over.
//!
//! A burst of requests (3 000 slow clients, say) makes glibc's allocator take memory for
//! their buffers; when they are freed, glibc gives back on its own only what lies at the top
//! of a heap, and the rest stays resident, interleaved with the few allocations still alive:
//! notify stayed well above idle after its slow clients closed, whatever `GLIBC_TUNABLES`
//! said. `malloc_trim(0)` returns every whole free page of every arena
//! (`madvise(MADV_DONTNEED)`), which gave most of it back at once (both measured in
//! docs/PERFORMANCE.md, "Slow clients (section `slow`)", "Back near idle").
//!
//! So the server trims once it is idle again after having served: a check every
//! [`CHECK_EVERY`] sees whether any request came since the last trim and none is in flight.
//! It costs a walk over the arenas (milliseconds) at most once per check, only when idle.
//! On other C libraries (musl, macOS) it does nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How often idleness is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Counts requests, and trims the heap when they stop.
#[derive(Default)]
pub struct Trimmer {
    requests: AtomicU64,
}

impl Trimmer {
    /// A request arrived.
    pub fn seen(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs until dropped with its task: trims after each burst once `in_flight` holds all
    /// of its `max` permits again.
    pub async fn run(self: Arc<Self>, in_flight: Arc<Semaphore>, max: usize) {
        let mut trimmed_at = 0;
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let seen = self.requests.load(Ordering::Relaxed);
            if seen != trimmed_at && in_flight.available_permits() >= max {
                trimmed_at = seen;
                release_free_memory();
            }
        }
    }
}

/// Returns the allocator's free pages to the system (glibc); nothing elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and may be called at any time from any thread;
    // glibc locks each arena while it walks it.
    unsafe {
        libc::malloc_trim(0);
    }
}
