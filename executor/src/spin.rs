//! A small spin lock for the parallel executor's very short critical sections (a few loads and
//! stores into memory the caller is about to touch anyway).
//!
//! Why not `std::sync::Mutex`: on x86 its unlock is an atomic swap, a full memory barrier that
//! makes the core wait until every store of the critical section (usually cache misses into
//! the multi-version memory) has reached the cache. Here unlocking is a plain release store,
//! so those stores drain while the worker goes on. Acquiring is one atomic swap either way.
//!
//! A waiter spins briefly and then yields its time slice, so a holder that the OS preempted
//! (the machine may be shared) gets the CPU back. A panic while the lock is held poisons it,
//! and the next `lock` panics too, as with `Mutex`: a panicking worker means a broken invariant.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Spins this many times before yielding the time slice between attempts.
const SPINS_BEFORE_YIELD: u32 = 64;

/// A value behind a spin lock.
#[derive(Default)]
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    poisoned: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a `SpinGuard`, and `lock` hands out at most one
// guard at a time (the `locked` flag is taken with an acquire swap and released with a release
// store when the guard drops), so sharing the lock between threads shares the value with one
// thread at a time, which needs `T: Send` and nothing more (as for `Mutex`).
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// Waits until no one else holds the lock and takes it.
    ///
    /// # Panics
    ///
    /// If a thread panicked while holding it.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if self.locked.swap(true, Ordering::Acquire) {
            self.lock_contended();
        }
        // The guard first: if the check panics, dropping it lets the lock go.
        let guard = SpinGuard { lock: self };
        assert!(
            !self.poisoned.load(Ordering::Relaxed),
            "executor lock poisoned by a panicking worker"
        );
        guard
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            // Wait with plain loads (the line stays shared) until the holder lets go.
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if !self.locked.swap(true, Ordering::Acquire) {
                return;
            }
        }
    }

    /// The value, through exclusive access (no locking needed).
    ///
    /// # Panics
    ///
    /// If a thread panicked while holding the lock.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        assert!(
            !*self.poisoned.get_mut(),
            "executor lock poisoned by a panicking worker"
        );
        self.value.get_mut()
    }
}

/// Access to the value of a held [`SpinLock`]; unlocks when dropped.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard exists only while its thread holds the lock (see `lock`), so no
        // other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the guard's only live borrow.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.lock.poisoned.store(true, Ordering::Relaxed);
        }
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_under_contention() {
        let lock = SpinLock::<u64>::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                });
            }
        });
        assert_eq!(*lock.lock(), 40_000);
    }

    #[test]
    fn a_panic_poisons() {
        let lock = SpinLock::<u64>::default();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.lock();
            panic!("boom");
        }));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| *lock.lock()));
        assert!(r.is_err());
    }
}
