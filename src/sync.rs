//! The crate's one way to take a `std` mutex.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering from poisoning: every value the crate keeps behind a mutex is
/// replaced or updated whole between statements, so a panic elsewhere never leaves it half-made.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
