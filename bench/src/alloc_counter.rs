//! A counting global allocator, so the benchmark can report the peak heap a
//! call needs beyond its output.
//!
//! Why: `docs/quality.md` asks for peak prefill memory as a measured
//! number, and the sparse kernel promises scratch within 5% of the input
//! bytes. Wrapping the system allocator with two atomics (bytes live now,
//! most bytes live since the last reset) measures exactly that, with no
//! sampling and no dependency. The counters cost two relaxed atomic operations per
//! allocation, which none of the timed kernels do in their hot loops.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes currently allocated.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// Most bytes allocated at once since the last [`reset_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting.
pub(crate) struct CountingAllocator;

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract: `layout` has non-zero size.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract: `layout` has non-zero size.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract: `ptr` came from this allocator (so from
        // `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract: `ptr` came from `System` with `layout`,
        // `new_size` is non-zero and does not overflow when aligned.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

/// Runs `f` and returns its result with the peak number of bytes allocated
/// during the call beyond what was live when it started.
pub(crate) fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = f();
    let peak = PEAK.load(Ordering::Relaxed);
    (result, peak.saturating_sub(before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_peak_of_a_call() {
        let (len, peak) = peak_during(|| {
            let a = vec![0u8; 1 << 20];
            let b = vec![1u8; 1 << 19];
            a.len() + b.len()
        });
        assert_eq!(len, 3 << 19);
        // Other test threads may allocate too, so only a lower bound holds.
        assert!(peak >= 3 << 19, "{peak}");
    }
}
