//! Runs the kernels with the widest vector instructions the CPU offers.
//!
//! Why it exists: `x86_64` binaries are built for the SSE2 baseline, which
//! gives the kernels 4-wide vectors, while nearly every x86_64 CPU in use
//! has AVX2 (8-wide) and many have AVX-512 (16-wide, 32 registers). The
//! kernels are written once, `#[inline(always)]`; this module compiles them
//! again inside `#[target_feature]` functions and picks the widest copy the
//! CPU supports. Detection reads CPUID and XCR0 through `core::arch`,
//! because the crate is `no_std` and `is_x86_feature_detected!` lives in
//! `std`. On every other architecture (the ESP32 stand-ins included) only
//! the portable copy exists.
//!
//! Measured on one AMD EPYC core (shape A, N = 4096, causal): portable
//! (SSE2) 6.7 ns, AVX2 2.1 ns, AVX-512 1.05 ns per query-key pair.
//!
//! **Invariant:** a `#[target_feature]` copy is only ever called after the
//! detection in this module confirmed the feature, whatever [`Isa`] a
//! caller asks for; the copies compute the same arithmetic, only the
//! instruction selection and the grouping of rows into blocks differ.

use aether_domain::{AttentionError, KvCache, Tensor, TensorView};

use crate::lanes::{Lanes, Vector};
use crate::prefill::{self, Scratch};
use crate::{Head, Isa, decode};

/// Whether this CPU can run `isa`'s copy (always false for the `x86_64`
/// copies on other architectures).
pub(crate) fn is_available(isa: Isa) -> bool {
    match isa {
        Isa::Portable => true,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::levels().avx2,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::levels().avx512,
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::Avx512 => false,
    }
}

/// `isa` if this CPU supports it, else [`Isa::Portable`]. A backend only
/// holds an available `isa`; this keeps the invariant local anyway.
fn or_portable(isa: Isa) -> Isa {
    if is_available(isa) {
        isa
    } else {
        Isa::Portable
    }
}

/// One KV head's prefill, as compiled for one instruction set.
type PrefillHead<V> =
    fn(&Head, TensorView<'_>, TensorView<'_>, TensorView<'_>, usize, &mut Scratch<V>, &mut Tensor);

/// Reserves scratch for vector type `V` and runs `run` for every KV head.
fn prefill_with<V: Vector>(
    run: PrefillHead<V>,
    head: &Head,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
    out: &mut Tensor,
) -> Result<(), AttentionError> {
    let mut scratch = Scratch::<V>::try_new(q.seq(), head)?;
    for kv_head in 0..k.heads() {
        run(head, q, k, v, kv_head, &mut scratch, out);
    }
    Ok(())
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
    match or_portable(isa) {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => prefill_with(x86::prefill_head_avx512, head, q, k, v, out),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => prefill_with(x86::prefill_head_avx2, head, q, k, v, out),
        // `or_portable` never yields these off x86_64; no panic path either.
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::Avx512 => prefill_with(prefill::prefill_head::<Lanes>, head, q, k, v, out),
        Isa::Portable => prefill_with(prefill::prefill_head::<Lanes>, head, q, k, v, out),
    }
}

/// Streaming decode (see [`decode::step`]) with `isa`'s copy of the kernel
/// (the portable one when the CPU lacks `isa`).
pub(crate) fn step(isa: Isa, head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
    match or_portable(isa) {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => x86::step_avx2(head, q, cache, out),
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::Avx512 => decode::step(head, q, cache, out),
        Isa::Portable => decode::step(head, q, cache, out),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX2 copies of the kernels (detection is the domain's). The wrappers are
    //! safe functions that check the (cached) detection themselves.

    use aether_domain::{KvCache, Tensor, TensorView};

    use crate::lanes::{Lanes, Lanes16};
    use crate::prefill::{self, Scratch};
    use crate::{Head, decode};

    /// What the CPU and OS support: the domain's one detection
    /// (`aether_domain::cpu`), cached there.
    pub(super) fn levels() -> aether_domain::cpu::X86Levels {
        aether_domain::cpu::x86_levels()
    }

    /// The AVX2 copy of one KV head's prefill.
    pub(super) fn prefill_head_avx2(
        head: &Head,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        kv_head: usize,
        scratch: &mut Scratch<Lanes>,
        out: &mut Tensor,
    ) {
        #[target_feature(enable = "avx2")]
        fn run(
            head: &Head,
            q: TensorView<'_>,
            k: TensorView<'_>,
            v: TensorView<'_>,
            kv_head: usize,
            scratch: &mut Scratch<Lanes>,
            out: &mut Tensor,
        ) {
            prefill::prefill_head(head, q, k, v, kv_head, scratch, out);
        }
        assert!(levels().avx2, "AVX2 copy called without AVX2");
        // SAFETY: the assertion above confirmed (CPUID and XCR0) that the
        // CPU executes AVX2 and the OS saves YMM state.
        unsafe { run(head, q, k, v, kv_head, scratch, out) }
    }

    /// The AVX-512 copy of one KV head's prefill.
    pub(super) fn prefill_head_avx512(
        head: &Head,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        kv_head: usize,
        scratch: &mut Scratch<Lanes16>,
        out: &mut Tensor,
    ) {
        #[target_feature(enable = "avx512f")]
        fn run(
            head: &Head,
            q: TensorView<'_>,
            k: TensorView<'_>,
            v: TensorView<'_>,
            kv_head: usize,
            scratch: &mut Scratch<Lanes16>,
            out: &mut Tensor,
        ) {
            prefill::prefill_head(head, q, k, v, kv_head, scratch, out);
        }
        assert!(levels().avx512, "AVX-512 copy called without AVX-512F");
        // SAFETY: the assertion above confirmed (CPUID and XCR0) that the
        // CPU executes AVX-512F and the OS saves opmask and ZMM state.
        unsafe { run(head, q, k, v, kv_head, scratch, out) }
    }

    /// The AVX2 copy of the streaming step.
    pub(super) fn step_avx2(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
        #[target_feature(enable = "avx2")]
        fn run(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
            decode::step(head, q, cache, out);
        }
        assert!(levels().avx2, "AVX2 copy called without AVX2");
        // SAFETY: the assertion above confirmed that the CPU executes AVX2
        // and the OS saves YMM state.
        unsafe { run(head, q, cache, out) }
    }
}
