//! Appending, recording attention and undoing never allocate, on a new
//! cache and on a clone of one (whose reserves a derived `Clone` would
//! shrink), for every policy and dtype, with records made the way the
//! backends make them: once per query head per candidate.

extern crate std;

use core::cell::Cell;
use std::alloc::{GlobalAlloc, Layout, System};

use super::*;

std::thread_local! {
    /// Allocations made by this thread (tests run on several threads).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting allocations per thread.
struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, so the
// `GlobalAlloc` contract holds as it does for `System`; the counter is a
// const-initialised thread-local `Cell` (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: as `dealloc` for `ptr`, and the caller's `new_size`
        // contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Appends 50 tokens; after each, records every retained slot four times
/// (four query heads) and undoes every third append.
fn exercise(c: &mut KvCache, k: &[f32], v: &[f32]) {
    for t in 0..50 {
        if c.append(k, v).is_err() {
            c.clear();
            continue;
        }
        for _head in 0..4 {
            for slot in 0..c.retained() {
                c.record_attention(slot, 0.25 + (slot + t) as f32 * 0.01);
            }
        }
        if t % 3 == 0 {
            c.undo_append().unwrap();
        }
    }
}

#[test]
fn append_record_and_undo_never_allocate() {
    for eviction in [
        Eviction::None,
        Eviction::SlidingWindow,
        Eviction::HeavyHitter { recent: 3 },
    ] {
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            let layout = CacheLayout {
                kv_heads: 2,
                head_dim: 4,
                block_size: 3,
                dtype,
                eviction,
            };
            let k: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
            let mut v = k.clone();
            v[5] = f32::NAN;
            let mut c = KvCache::new(16, layout).unwrap();
            let mut copy = c.clone();
            let start = allocations();
            exercise(&mut c, &k, &v);
            exercise(&mut copy, &k, &v);
            assert_eq!(allocations() - start, 0, "{eviction:?} {dtype:?}");
            // A clone of a cache that has been used keeps its reserves too.
            let mut copy = c.clone();
            let start = allocations();
            exercise(&mut copy, &k, &v);
            assert_eq!(allocations() - start, 0, "clone, {eviction:?} {dtype:?}");
        }
    }
}
