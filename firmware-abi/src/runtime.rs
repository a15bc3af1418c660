//! The bare-metal runtime: a global allocator over C `malloc`/`free` and
//! a panic handler that calls C `abort()`.
//!
//! Why: on the ESP32 the firmware is C, and its heap is ESP-IDF's
//! (`malloc` there is `heap_caps_malloc`); Rust must allocate from the
//! same heap, not a private arena, so the device's heap budget and
//! diagnostics see every byte. A panic cannot be reported or unwound on
//! bare metal, so it ends the program the way C would (`abort()`: on
//! ESP-IDF a logged reset). Both are registered only when
//! `target_os = "none"` and feature `bare-metal-runtime` is on; on an OS
//! std supplies them. [`CMalloc`] itself is compiled everywhere so the
//! host tests exercise its alignment arithmetic against the real libc
//! `malloc`.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use core::ptr;

unsafe extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
}

/// The alignment `malloc` is trusted to give. C promises
/// `_Alignof(max_align_t)` (8 on RV32), but ESP-IDF's heap is documented
/// to guarantee only 4 on some chips; 4 is what every libc we link gives,
/// so anything stricter is over-allocated here instead of trusted.
const MALLOC_ALIGN: usize = 4;

/// Bytes kept before an over-aligned block: the pointer `malloc` returned,
/// which `dealloc` hands back to `free`.
const HEADER: usize = core::mem::size_of::<*mut u8>();

/// Offset from a `malloc` result at address `raw` to the first address
/// that is `align`-aligned and leaves [`HEADER`] bytes before it. At most
/// `HEADER + align - 1`, so `size + align + HEADER` bytes always suffice.
/// `align` is a power of two (a `Layout` guarantees it).
const fn aligned_offset(raw: usize, align: usize) -> usize {
    let start = raw.wrapping_add(HEADER);
    let aligned = start.wrapping_add(align - 1) & !(align - 1);
    aligned.wrapping_sub(raw)
}

/// `GlobalAlloc` over C `malloc`/`free`. Alignments up to
/// [`MALLOC_ALIGN`] go straight to `malloc`; larger ones (Rust asks for
/// them rarely: SIMD-aligned buffers, `u64` on some targets) over-allocate
/// by `align + HEADER` and keep `malloc`'s pointer just before the block.
/// Works with any C library that has `malloc` and `free` (no
/// `aligned_alloc`/`memalign` needed, which not every ESP-IDF heap
/// configuration offers).
#[derive(Debug, Clone, Copy, Default)]
pub struct CMalloc;

// SAFETY: `alloc` returns either null or a block of at least
// `layout.size()` bytes aligned to `layout.align()` that nothing else
// uses (a fresh `malloc` block, or a window inside one), and `dealloc`
// frees exactly the `malloc` block behind a pointer `alloc` returned for
// the same layout.
unsafe impl GlobalAlloc for CMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: plain C call; any size is valid input to `malloc`.
            return unsafe { malloc(layout.size()) }.cast();
        }
        let Some(total) = layout
            .size()
            .checked_add(layout.align())
            .and_then(|n| n.checked_add(HEADER))
        else {
            return ptr::null_mut();
        };
        // SAFETY: plain C call.
        let raw: *mut u8 = unsafe { malloc(total) }.cast();
        if raw.is_null() {
            return raw;
        }
        let offset = aligned_offset(raw as usize, layout.align());
        // SAFETY: `offset ≤ HEADER + align - 1`, so the aligned block and
        // its `size` bytes lie inside the `total`-byte allocation.
        let block = unsafe { raw.add(offset) };
        // SAFETY: `offset ≥ HEADER`, so the header slot is inside the
        // allocation too.
        let slot = unsafe { block.sub(HEADER) }.cast::<*mut u8>();
        // SAFETY: `HEADER` writable bytes of our allocation; unaligned
        // write, as `MALLOC_ALIGN` may be less than a pointer's alignment.
        unsafe { slot.write_unaligned(raw) };
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: `block` came from `malloc` in `alloc` (same layout).
            unsafe { free(block.cast()) };
            return;
        }
        // SAFETY: `alloc` kept HEADER bytes of the same allocation before
        // every over-aligned block.
        let slot = unsafe { block.sub(HEADER) }.cast::<*mut u8>();
        // SAFETY: `alloc` stored `malloc`'s pointer there.
        let raw = unsafe { slot.read_unaligned() };
        // SAFETY: `raw` is the `malloc` block behind `block`, freed once.
        unsafe { free(raw.cast()) };
    }
}

#[cfg(all(target_os = "none", feature = "bare-metal-runtime", not(test)))]
mod bare_metal {
    //! The registrations, bare metal only.

    /// Every Rust allocation goes to the firmware's C heap.
    #[global_allocator]
    static ALLOCATOR: super::CMalloc = super::CMalloc;

    unsafe extern "C" {
        fn abort() -> !;
    }

    /// No panic is reachable from C input (see `ffi`); if one happens
    /// anyway (a bug, or an allocation failure inside the model), stop the
    /// program as C would rather than continue with broken state.
    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        // SAFETY: `abort` takes no arguments and never returns.
        unsafe { abort() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_align_and_leave_room_for_the_header() {
        for raw in (0..256).map(|i| 0x1000 + 4 * i) {
            for align in [8, 16, 32, 64, 4096] {
                let offset = aligned_offset(raw, align);
                assert_eq!((raw + offset) % align, 0);
                assert!(offset >= HEADER && offset < HEADER + align, "{raw} {align}");
            }
        }
    }

    #[test]
    fn allocates_every_alignment_from_libc() {
        for align in [1, 2, 4, 8, 16, 64, 256, 4096] {
            for size in [1, 3, 8, 100, 5000] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero size; freed below with the same layout.
                let block = unsafe { CMalloc.alloc(layout) };
                assert!(!block.is_null());
                assert_eq!(block as usize % align, 0, "size {size} align {align}");
                // SAFETY: `size` writable bytes.
                unsafe { block.write_bytes(0xA5, size) };
                // SAFETY: allocated above with `layout`.
                unsafe { CMalloc.dealloc(block, layout) };
            }
        }
    }
}
