//! Work over many runs on several threads: a connection is not shared between threads, so each
//! worker opens its own to the same store (file or PostgreSQL database).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Store, StoreError, StoreLocation};

/// Runs `work(store, i)` for every `i` in `0..len` on `jobs` threads, each with its own
/// connection to the store at `location` (`Err` if it could not open it), calling `done` after
/// each; returns the results in index order.
pub fn on_workers<R: Send>(
    location: &StoreLocation,
    len: usize,
    jobs: usize,
    done: &(dyn Fn() + Sync),
    work: impl Fn(&Result<Store, StoreError>, usize) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(len));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, len.max(1)) {
            scope.spawn(|| {
                let store = Store::open_location(location);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= len {
                        break;
                    }
                    let result = work(&store, i);
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((i, result));
                    done();
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
