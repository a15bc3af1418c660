//! Which x86 vector extensions the CPU *and* the operating system support.
//!
//! Why in the domain crate: every kernel with AVX2/AVX-512 copies (the
//! dense backend, the model's projections) must ask the same question the
//! same way, and the crates are `no_std`, where `is_x86_feature_detected!`
//! (a `std` macro) is not available. So the answer is read from CPUID and
//! XCR0 through `core::arch`, once, and cached.

/// The vector extensions a `#[target_feature]` copy may rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86Levels {
    /// AVX2 (with AVX and the OS saving YMM state).
    pub avx2: bool,
    /// AVX-512F (with AVX2 and the OS saving opmask and ZMM state).
    pub avx512: bool,
}

#[cfg(target_arch = "x86_64")]
mod detect {
    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    use core::sync::atomic::{AtomicU8, Ordering};

    use super::X86Levels;

    const DETECTED: u8 = 1;
    const AVX2: u8 = 2;
    const AVX512: u8 = 4;

    /// Cached detection result (0 = not detected yet); racing first calls
    /// store the same value.
    static LEVELS: AtomicU8 = AtomicU8::new(0);

    pub(super) fn cached() -> X86Levels {
        let mut bits = LEVELS.load(Ordering::Relaxed);
        if bits & DETECTED == 0 {
            let detected = detect();
            bits = DETECTED
                | if detected.avx2 { AVX2 } else { 0 }
                | if detected.avx512 { AVX512 } else { 0 };
            LEVELS.store(bits, Ordering::Relaxed);
        }
        X86Levels {
            avx2: bits & AVX2 != 0,
            avx512: bits & AVX512 != 0,
        }
    }

    /// CPUID leaf 1 (AVX, OSXSAVE), XCR0 (register state the OS saves) and
    /// leaf 7 (AVX2, AVX-512F), as the Intel SDM prescribes.
    fn detect() -> X86Levels {
        const NONE: X86Levels = X86Levels {
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
        // SAFETY: XGETBV needs the XSAVE feature enabled by the OS, which
        // is exactly what the OSXSAVE bit checked above reports.
        let xcr0 = unsafe { _xgetbv(0) };
        if xcr0 & XMM_YMM_STATE != XMM_YMM_STATE {
            return NONE;
        }
        let extended = __cpuid_count(7, 0).ebx;
        let avx2 = extended & AVX2_BIT != 0;
        X86Levels {
            avx2,
            avx512: avx2
                && extended & AVX512F_BIT != 0
                && xcr0 & OPMASK_ZMM_STATE == OPMASK_ZMM_STATE,
        }
    }
}

/// What this CPU and OS support, detected on the first call and cached.
/// On other architectures: nothing.
#[must_use]
pub fn x86_levels() -> X86Levels {
    #[cfg(target_arch = "x86_64")]
    {
        detect::cached()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        X86Levels {
            avx2: false,
            avx512: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx512_implies_avx2_and_the_cache_agrees_with_itself() {
        let first = x86_levels();
        assert!(!first.avx512 || first.avx2);
        assert_eq!(x86_levels(), first);
    }
}
