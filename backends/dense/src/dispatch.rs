//! Runs the kernels with the widest vector instructions the CPU offers.
//!
//! Why it exists: `x86_64` binaries are built for the SSE2 baseline, which
//! gives the kernels 4-wide vectors, while nearly every x86_64 CPU in use
//! has AVX2 (8-wide: one [`Lanes`](crate::lanes::Lanes) per register). The
//! kernels are written once, `#[inline(always)]`; this module compiles them
//! a second time inside `#[target_feature(enable = "avx2")]` functions and
//! picks that copy when the CPU supports it. Detection reads CPUID and XCR0
//! through `core::arch`, because the crate is `no_std` and
//! `is_x86_feature_detected!` lives in `std`. On every other architecture
//! (the ESP32 stand-ins included) only the portable copy exists.
//!
//! AVX-512 was tried (16-lane vectors) and left out: LLVM's vectorisers
//! turned the same source into gathers or 4-wide code there, slower than
//! AVX2 (measured; see the crate's report), and 8 lanes already make a
//! block of eight query rows.
//!
//! **Invariant:** a `#[target_feature]` copy is only ever called after the
//! detection in this module confirmed the feature, whatever [`Isa`] a
//! caller asks for; both copies compute the same arithmetic in the same
//! order, only instruction selection differs.

use aether_domain::{AttentionError, KvCache, Tensor, TensorView};

use crate::prefill::{self, Scratch};
use crate::{Head, decode};

/// An instruction set the kernels have a copy for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The compilation target's baseline.
    Portable,
    /// AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    /// Whether this CPU can run the copy.
    pub(crate) fn is_supported(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => x86::has_avx2(),
        }
    }

    /// The widest supported copy.
    pub(crate) fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if x86::has_avx2() {
            return Self::Avx2;
        }
        Self::Portable
    }

    /// Every copy this build has (supported or not).
    #[cfg(test)]
    pub(crate) const ALL: &[Self] = &[
        Self::Portable,
        #[cfg(target_arch = "x86_64")]
        Self::Avx2,
    ];
}

/// Prefill of every head with `isa`'s copy of the kernel (the portable one
/// when the CPU lacks `isa`).
///
/// # Errors
/// [`AttentionError::OutOfMemory`] when scratch cannot be reserved.
pub(crate) fn prefill(
    isa: Isa,
    head: &Head,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
    out: &mut Tensor,
) -> Result<(), AttentionError> {
    let mut scratch = Scratch::try_new(q.seq(), head)?;
    for kv_head in 0..k.heads() {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if isa.is_supported() => {
                x86::prefill_head_avx2(head, q, k, v, kv_head, &mut scratch, out);
            }
            _ => prefill::prefill_head(head, q, k, v, kv_head, &mut scratch, out),
        }
    }
    Ok(())
}

/// Streaming decode (see [`decode::step`]) with `isa`'s copy of the kernel
/// (the portable one when the CPU lacks `isa`).
pub(crate) fn step(isa: Isa, head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if isa.is_supported() => x86::step_avx2(head, q, cache, out),
        _ => decode::step(head, q, cache, out),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2 detection and the AVX2 copies of the kernels. The wrappers are
    //! safe functions that check the (cached) detection themselves.

    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    use core::sync::atomic::{AtomicU8, Ordering};

    use aether_domain::{KvCache, Tensor, TensorView};

    use crate::prefill::{self, Scratch};
    use crate::{Head, decode};

    const UNKNOWN: u8 = 0;
    const ABSENT: u8 = 1;
    const PRESENT: u8 = 2;

    /// Cached detection result; racing first calls store the same value.
    static AVX2: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Whether AVX2 instructions may be executed (detected on first call).
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

    /// The AVX2 copy of one KV head's prefill.
    pub(super) fn prefill_head_avx2(
        head: &Head,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        kv_head: usize,
        scratch: &mut Scratch,
        out: &mut Tensor,
    ) {
        #[target_feature(enable = "avx2")]
        fn run(
            head: &Head,
            q: TensorView<'_>,
            k: TensorView<'_>,
            v: TensorView<'_>,
            kv_head: usize,
            scratch: &mut Scratch,
            out: &mut Tensor,
        ) {
            prefill::prefill_head(head, q, k, v, kv_head, scratch, out);
        }
        assert!(has_avx2(), "AVX2 copy called without AVX2");
        // SAFETY: the assertion above confirmed (CPUID and XCR0) that the
        // CPU executes AVX2 and the OS saves YMM state.
        unsafe { run(head, q, k, v, kv_head, scratch, out) }
    }

    /// The AVX2 copy of the streaming step.
    pub(super) fn step_avx2(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
        #[target_feature(enable = "avx2")]
        fn run(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
            decode::step(head, q, cache, out);
        }
        assert!(has_avx2(), "AVX2 copy called without AVX2");
        // SAFETY: the assertion above confirmed that the CPU executes AVX2
        // and the OS saves YMM state.
        unsafe { run(head, q, cache, out) }
    }
}
