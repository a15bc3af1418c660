//! Runs the kernel with the widest vector instructions the CPU offers.
//!
//! Why it exists: `x86_64` binaries are built for the SSE2 baseline, which
//! gives the kernel 4-wide vectors; nearly every x86_64 CPU in use has AVX2
//! (8-wide, and twice the registers' width for the same code). The kernel
//! is written once, `#[inline(always)]`; this module compiles it a second
//! time inside an `#[target_feature(enable = "avx2")]` function and picks
//! that copy when CPUID says the CPU and OS support AVX2. Detection uses
//! `core::arch` CPUID directly, because the crate is `no_std` and
//! `is_x86_feature_detected!` lives in `std`. On every other architecture
//! (the ESP32 stand-ins included) only the portable copy exists.
//!
//! **Invariant:** both copies compute the same arithmetic in the same order;
//! only instruction selection differs.

use aether_domain::{KvCache, Tensor, TensorView};

use crate::kernel::{self, Head, Scratch};

/// Prefill of the query heads of KV head `kv_head` (see
/// [`kernel::prefill_head`]).
pub(crate) fn prefill_head(
    head: &Head,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
    kv_head: usize,
    scratch: &mut Scratch,
    out: &mut Tensor,
) {
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx2() {
        // SAFETY: `has_avx2` confirmed through CPUID and XGETBV that the
        // CPU executes AVX2 instructions and the OS saves YMM state, which
        // is the only requirement of the target-feature function.
        unsafe { x86::prefill_head_avx2(head, q, k, v, kv_head, scratch, out) };
        return;
    }
    kernel::prefill_head(head, q, k, v, kv_head, scratch, out);
}

/// Streaming decode (see [`kernel::step`]).
pub(crate) fn step(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if x86::has_avx2() {
        // SAFETY: as in `prefill_head`: AVX2 support was detected at run
        // time.
        unsafe { x86::step_avx2(head, q, cache, out) };
        return;
    }
    kernel::step(head, q, cache, out);
}

/// The portable copies, callable directly so tests can compare them with
/// whatever [`prefill_head`] / [`step`] pick.
#[cfg(test)]
pub(crate) mod portable {
    use super::{Head, KvCache, Scratch, Tensor, TensorView, kernel};

    /// [`kernel::prefill_head`] compiled for the baseline target.
    pub(crate) fn prefill_head(
        head: &Head,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        kv_head: usize,
        scratch: &mut Scratch,
        out: &mut Tensor,
    ) {
        kernel::prefill_head(head, q, k, v, kv_head, scratch, out);
    }

    /// [`kernel::step`] compiled for the baseline target.
    pub(crate) fn step(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
        kernel::step(head, q, cache, out);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 detection and the AVX2 copies of the kernel entry points.

    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    use core::sync::atomic::{AtomicU8, Ordering};

    use aether_domain::{KvCache, Tensor, TensorView};

    use crate::kernel::{self, Head, Scratch};

    const UNKNOWN: u8 = 0;
    const ABSENT: u8 = 1;
    const PRESENT: u8 = 2;

    /// Cached detection result; racing first calls both store the same value.
    static AVX2: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Whether AVX2 instructions may be executed (cached after the first call).
    pub(super) fn has_avx2() -> bool {
        match AVX2.load(Ordering::Relaxed) {
            PRESENT => true,
            ABSENT => false,
            _ => {
                let present = detect_avx2();
                AVX2.store(if present { PRESENT } else { ABSENT }, Ordering::Relaxed);
                present
            }
        }
    }

    /// CPUID leaf 1 (AVX, OSXSAVE), XCR0 (XMM and YMM state enabled by the
    /// OS) and leaf 7 (AVX2), as the Intel SDM prescribes.
    fn detect_avx2() -> bool {
        const OSXSAVE: u32 = 1 << 27;
        const AVX: u32 = 1 << 28;
        const XMM_YMM_STATE: u64 = 0b110;
        const AVX2_BIT: u32 = 1 << 5;
        if __cpuid(0).eax < 7 {
            return false;
        }
        let features = __cpuid(1).ecx;
        if features & OSXSAVE == 0 || features & AVX == 0 {
            return false;
        }
        // SAFETY: XGETBV needs the XSAVE feature enabled by the OS, which
        // is exactly what the OSXSAVE bit checked above reports.
        let xcr0 = unsafe { _xgetbv(0) };
        if xcr0 & XMM_YMM_STATE != XMM_YMM_STATE {
            return false;
        }
        __cpuid_count(7, 0).ebx & AVX2_BIT != 0
    }

    /// [`kernel::prefill_head`] compiled with AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) fn prefill_head_avx2(
        head: &Head,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        kv_head: usize,
        scratch: &mut Scratch,
        out: &mut Tensor,
    ) {
        kernel::prefill_head(head, q, k, v, kv_head, scratch, out);
    }

    /// [`kernel::step`] compiled with AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) fn step_avx2(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
        kernel::step(head, q, cache, out);
    }
}
