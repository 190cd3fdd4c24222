//! Which shard of a striped counter the current thread writes to.
//!
//! Each worker thread gets its own index, so two cores never bounce one cache line
//! between them; a scrape sums the shards.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shards per striped counter: enough for one per core on common machines.
pub(crate) fn count() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().clamp(1, 64))
}

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's shard among `of`.
pub(crate) fn index(of: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let i = INDEX.with(|c| {
        let mut i = c.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed);
            c.set(i);
        }
        i
    });
    i % of.max(1)
}
