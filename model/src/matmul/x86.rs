//! CPU detection and the AVX2 / AVX-512 copies of the projection kernel.
//!
//! Why here and not shared with the backends: the model depends on the
//! domain crate only, and detection is forty lines. It reads CPUID and
//! XCR0 through `core::arch` because the crate is `no_std`
//! (`is_x86_feature_detected!` lives in `std`).
//!
//! **Invariant:** a `#[target_feature]` copy is only called after
//! [`levels`] confirmed the feature. The copies differ only in tile widths
//! and instruction selection, never in the arithmetic of one output (see
//! the parent module), so which copy runs does not change a bit.

use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
use core::sync::atomic::{AtomicU8, Ordering};

/// What the CPU and OS support.
#[derive(Debug, Clone, Copy)]
struct Levels {
    avx2: bool,
    avx512: bool,
}

const DETECTED: u8 = 1;
const AVX2: u8 = 2;
const AVX512: u8 = 4;

/// Cached detection result (0 = not detected yet); racing first calls
/// store the same value.
static LEVELS: AtomicU8 = AtomicU8::new(0);

/// The supported levels, detected on the first call.
fn levels() -> Levels {
    let mut bits = LEVELS.load(Ordering::Relaxed);
    if bits & DETECTED == 0 {
        let detected = detect();
        bits = DETECTED
            | if detected.avx2 { AVX2 } else { 0 }
            | if detected.avx512 { AVX512 } else { 0 };
        LEVELS.store(bits, Ordering::Relaxed);
    }
    Levels {
        avx2: bits & AVX2 != 0,
        avx512: bits & AVX512 != 0,
    }
}

/// CPUID leaf 1 (AVX, OSXSAVE), XCR0 (register state the OS saves) and
/// leaf 7 (AVX2, AVX-512F), as the Intel SDM prescribes.
fn detect() -> Levels {
    const NONE: Levels = Levels {
        avx2: false,
        avx512: false,
    };
    const OSXSAVE: u32 = 1 << 27;
    const AVX: u32 = 1 << 28;
    const XMM_YMM_STATE: u64 = 0b110;
    const OPMASK_ZMM_STATE: u64 = 0b1110_0000;
    const AVX2_BIT: u32 = 1 << 5;
    const AVX512F_BIT: u32 = 1 << 16;
    if __cpuid(0).eax < 7 {
        return NONE;
    }
    let features = __cpuid(1).ecx;
    if features & OSXSAVE == 0 || features & AVX == 0 {
        return NONE;
    }
    // SAFETY: XGETBV needs the XSAVE feature enabled by the OS, which is
    // exactly what the OSXSAVE bit checked above reports.
    let xcr0 = unsafe { _xgetbv(0) };
    if xcr0 & XMM_YMM_STATE != XMM_YMM_STATE {
        return NONE;
    }
    let extended = __cpuid_count(7, 0).ebx;
    let avx2 = extended & AVX2_BIT != 0;
    Levels {
        avx2,
        avx512: avx2 && extended & AVX512F_BIT != 0 && xcr0 & OPMASK_ZMM_STATE == OPMASK_ZMM_STATE,
    }
}

/// The widest copy this CPU runs.
pub(super) fn matmul(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize, y: &mut [f32]) {
    let levels = levels();
    if levels.avx512 {
        // SAFETY: `levels` confirmed (CPUID and XCR0) that the CPU
        // executes AVX-512F and the OS saves opmask and ZMM state.
        unsafe { avx512(x, n, w, rows, cols, y) }
    } else if levels.avx2 {
        // SAFETY: `levels` confirmed that the CPU executes AVX2 and the OS
        // saves YMM state.
        unsafe { avx2(x, n, w, rows, cols, y) }
    } else {
        super::portable(x, n, w, rows, cols, y);
    }
}

/// Tiles of 64, 16 and 8 outputs: eight, two and one YMM registers.
#[target_feature(enable = "avx2")]
fn avx2(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize, y: &mut [f32]) {
    super::kernel::<64, 16, 8>(x, n, w, rows, cols, y);
}

/// Tiles of 128, 32 and 16 outputs: eight, two and one ZMM registers.
#[target_feature(enable = "avx512f")]
fn avx512(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize, y: &mut [f32]) {
    super::kernel::<128, 32, 16>(x, n, w, rows, cols, y);
}
