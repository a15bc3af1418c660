//! The sparse decode step allocates nothing, whatever the cache stores and
//! however it evicts (issue 4: "no per-step allocation").
//!
//! Why a test binary of its own: it installs a counting global allocator,
//! which must not see the other suites' threads. The one test here counts
//! only allocations made between its own calls (a single test, so no other
//! test thread of this binary runs meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use aether_domain::{AttentionBackend, CacheDtype, Eviction, HeadConfig, Tensor, TensorView};
use aether_sparse::SparseBackend;
use aether_tests::{Rng, random_tensor};

/// The system allocator, counting allocations and reallocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments,
// so `System`'s guarantees hold; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Token `t` of `x` as a one-token view (borrowed: no allocation).
fn one(x: &Tensor, t: usize) -> TensorView<'_> {
    TensorView::new(x.view().token(t), 1, x.heads(), x.dim()).expect("one token")
}

/// Every dtype and eviction policy, MHA and MQA, with a window both smaller
/// and larger than one step chunk: 300 steps into a 200-token cache (so the
/// evicting caches wrap), none of which allocates.
#[test]
fn sparse_steps_allocate_nothing() {
    let mut rng = Rng::new(41);
    for kv_heads in [1, 4] {
        for window in [32, 100] {
            for dtype in [CacheDtype::F32, CacheDtype::F16] {
                for eviction in [
                    Eviction::None,
                    Eviction::SlidingWindow,
                    Eviction::HeavyHitter { recent: 16 },
                ] {
                    let config = HeadConfig {
                        kv_heads,
                        window,
                        cache_dtype: dtype,
                        eviction,
                        ..HeadConfig::default_aether()
                    };
                    let steps = if eviction == Eviction::None { 200 } else { 300 };
                    let backend = SparseBackend::new(config.clone()).expect("valid config");
                    let mut cache = backend.make_cache(200).expect("cache");
                    let q = random_tensor(&mut rng, steps, config.q_heads, config.head_dim, 1.0);
                    let k = random_tensor(&mut rng, steps, kv_heads, config.head_dim, 1.0);
                    let v = random_tensor(&mut rng, steps, kv_heads, config.head_dim, 1.0);
                    let mut out = vec![0.0f32; config.q_heads * config.head_dim];
                    let before = ALLOCATIONS.load(Ordering::Relaxed);
                    for t in 0..steps {
                        backend
                            .step_into(one(&q, t), one(&k, t), one(&v, t), &mut cache, &mut out)
                            .expect("step");
                    }
                    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
                    assert_eq!(
                        allocated, 0,
                        "kv_heads {kv_heads}, window {window}, {dtype:?}, {eviction:?}"
                    );
                    assert_eq!(cache.len(), steps);
                    assert!(out.iter().all(|x| x.is_finite()));
                }
            }
        }
    }
}
