//! Heap use of the C ABI on the host, counted by a global allocator: a
//! push (of a frame or of a raw CSI packet) allocates nothing, and the peak of init + classify with the
//! default model and a 256-frame ring is measured and printed (the device
//! budget is 64 KB; see the crate README for the numbers and what
//! dominates them).
//!
//! Only the measuring thread's allocations count (a thread-local switch):
//! the test harness allocates on its own threads at any time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use aether_csi::sim::{self, SimConfig, SimPacket};
use aether_rvne::{DEFAULT_SEED, ElementType, Header, RvneBlob};
use ruv_temporal::{
    RUV_TEMPORAL_OK, ruv_temporal_classify, ruv_temporal_destroy, ruv_temporal_init,
    ruv_temporal_push, ruv_temporal_push_csi,
};

/// The system allocator, counting live bytes, their peak and calls.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted (const-initialised
    /// and without a destructor, so reading it never allocates).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.with(Cell::get)
}

// SAFETY: forwards every call to `System` unchanged; the counters only
// observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.alloc(layout) };
        if !block.is_null() && counted() {
            CALLS.fetch_add(1, Ordering::SeqCst);
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if counted() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(block, layout) };
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resets the peak to the live bytes now; returns them.
fn mark() -> usize {
    let live = LIVE.load(Ordering::SeqCst);
    PEAK.store(live, Ordering::SeqCst);
    live
}

/// Heap of one context with a `window`-frame ring: (bytes held after
/// init, extra peak bytes during one classify of a full ring). Also checks
/// that push and push_csi allocate nothing and classify and destroy free
/// everything.
fn measure(blob: &[u8], window: u32, packets: &[SimPacket]) -> (usize, usize) {
    let frame: Vec<f32> = (0..16_u8).map(|i| f32::from(i) / 16.0 - 0.5).collect();
    let mut logits = [0.0_f32; 4];

    let base = mark();
    let mut ctx = ptr::null_mut();
    // SAFETY: `blob` outlives the context (destroyed below).
    let code = unsafe { ruv_temporal_init(blob.as_ptr(), blob.len(), 16, window, 4, &mut ctx) };
    assert_eq!(code, RUV_TEMPORAL_OK);
    let init_peak = PEAK.load(Ordering::SeqCst) - base;
    let after_init = LIVE.load(Ordering::SeqCst) - base;
    assert_eq!(init_peak, after_init, "init frees nothing it allocated");

    let calls = CALLS.load(Ordering::SeqCst);
    for _ in 0..window + 3 {
        // SAFETY: live context, 16 floats.
        let code = unsafe { ruv_temporal_push(ctx, frame.as_ptr()) };
        assert_eq!(code, RUV_TEMPORAL_OK);
    }
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        calls,
        "ruv_temporal_push allocated"
    );
    let mut frames_total = 0;
    for packet in packets {
        let mut frames = 0;
        // SAFETY: live context; `buf.len()` readable bytes; `frames`
        // writable.
        let code = unsafe {
            ruv_temporal_push_csi(
                ctx,
                packet.buf.as_ptr(),
                256,
                packet.fields.sig_mode,
                packet.fields.cwb,
                packet.fields.secondary,
                packet.fields.stbc,
                packet.timestamp_us,
                &mut frames,
            )
        };
        assert_eq!(code, RUV_TEMPORAL_OK);
        frames_total += frames;
    }
    assert!(frames_total > 90, "{frames_total} CSI frames");
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        calls,
        "ruv_temporal_push_csi allocated"
    );

    let before_classify = mark();
    // SAFETY: live context, 4 writable floats.
    let code = unsafe { ruv_temporal_classify(ctx, logits.as_mut_ptr(), 4) };
    assert_eq!(code, RUV_TEMPORAL_OK);
    let classify_extra = PEAK.load(Ordering::SeqCst) - before_classify;
    assert_eq!(
        LIVE.load(Ordering::SeqCst),
        before_classify,
        "classify leaked"
    );

    // SAFETY: live context, not used again.
    unsafe { ruv_temporal_destroy(ctx) };
    assert_eq!(
        LIVE.load(Ordering::SeqCst),
        base,
        "destroy freed everything"
    );
    (after_init, classify_extra)
}

#[test]
fn heap_of_init_push_and_classify() {
    let blob = RvneBlob::random(Header::default_aether(ElementType::F32), DEFAULT_SEED)
        .expect("blob")
        .into_bytes();
    // Two seconds of HT20 packets (256 bytes), made before counting starts.
    let packets = sim::generate(&SimConfig {
        duration_s: 2.0,
        ..SimConfig::default()
    });
    assert!(packets.iter().all(|packet| packet.buf.len() == 256));
    COUNTED.with(|counted| counted.set(true));
    let mut peak_256 = 0;
    for window in [16, 64, 256] {
        let (held, classify) = measure(&blob, window, &packets);
        let peak = held + classify;
        println!(
            "heap, default f32 model, window {window}: held after init {held} B, classify \
             adds {classify} B at its peak; peak {peak} B ({} KiB)",
            peak / 1024
        );
        peak_256 = peak;
    }
    // A regression bound, not the device budget (64 KiB, which this
    // misses; see the README): about 1.4x today's 428 KiB.
    assert!(peak_256 < 600 * 1024, "heap peak grew to {peak_256} B");
}
