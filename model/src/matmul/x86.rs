//! CPU detection and the AVX2 / AVX-512 copies of the projection kernel.
//!
//! The CPU detection is the domain's (`aether_domain::cpu`), the one the
//! dense backend's kernels use too.
//!
//! **Invariant:** a `#[target_feature]` copy is only called after
//! [`levels`] confirmed the feature. The copies differ only in tile widths
//! and instruction selection, never in the arithmetic of one output (see
//! the parent module), so which copy runs does not change a bit.

use aether_domain::cpu::x86_levels as levels;

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
