//! The fast sparse backend: the attention of `docs/attention.md` in `O(N (W + log N))` time.
//!
//! Why it exists: this is the product's kernel. It computes exactly the
//! candidate set of the domain's [`SparsePattern`] (local window, global
//! tokens, log-stride tokens, landmark block means; non-causal mirrors), for
//! MHA and GQA/MQA, and matches the reference backend to 1e-5.
//!
//! How it is fast (module `prefill`): queries are processed in tiles of
//! consecutive positions, all query heads of a KV group together, against
//! the union of their windows as a small vectorised matrix product with the
//! softmax running down the lanes; the `O(log N)` extras (globals,
//! landmark means, log-stride "diagonals") are scored in the same lane
//! layout. The kernel is written once over a tiny vector
//! vocabulary (module `simd`) and compiled for AVX-512, AVX2+FMA and portable
//! Rust; the widest instruction set the CPU supports is picked at
//! construction ([`Isa`]; detection reads CPUID directly, so the crate
//! stays `no_std` and needs no `std` feature).
//!
//! Streaming decode (module `step`) walks the same candidates for the newest
//! position using the cache's block sums, allocation-free.
//!
//! **Invariant:** candidate structure comes from [`SparsePattern`] only
//! (window bounds, globals, landmark pivots); module `plan` turns it into the
//! kernel's window-plus-extras form and its tests prove the two equal.
//! Inputs are validated with `aether_domain::check` before any work, and a
//! step touches the cache only through `KvCache::append`.
#![no_std]

extern crate alloc;

mod exact;
#[cfg(test)]
mod non_finite_tests;
mod plan;
mod prefill;
mod simd;
mod step;
#[cfg(target_arch = "x86_64")]
mod step_x86;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use aether_domain::{
    AttentionBackend, AttentionError, ConfigError, HeadConfig, KvCache, SparsePattern, Tensor,
    TensorView, check,
};

/// A vector instruction set the prefill kernel can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// One query at a time over exactly its candidates, plain scalar Rust:
    /// for cores without vector units (the ESP32s), where the tile
    /// kernel's emulated lanes cost an instruction each. Runs anywhere.
    Scalar,
    /// The tile kernel in plain Rust, auto-vectorised where the target
    /// allows (SSE2/NEON baselines); runs anywhere.
    Portable,
    /// `x86_64` AVX2 with FMA (8 lanes).
    Avx2,
    /// `x86_64` AVX-512F (16 lanes).
    Avx512,
}

impl Isa {
    /// Every instruction set, narrowest first.
    pub const ALL: [Self; 4] = [Self::Scalar, Self::Portable, Self::Avx2, Self::Avx512];

    /// Whether this CPU (and OS) can run the kernel with this instruction
    /// set.
    #[must_use]
    pub fn is_available(self) -> bool {
        Kernel::of(self).is_some()
    }

    /// The widest available instruction set: on a target whose baseline
    /// has no vector unit ([`HAS_VECTOR_BASELINE`] false), [`Isa::Scalar`].
    #[must_use]
    pub fn detect() -> Self {
        if !HAS_VECTOR_BASELINE {
            return Self::Scalar;
        }
        Self::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.is_available())
            .unwrap_or(Self::Scalar)
    }
}

/// Whether every CPU of the compilation target has 128-bit vectors the
/// portable tile kernel auto-vectorises to (x86's SSE2, AArch64's NEON).
/// Elsewhere — RISC-V without V, Xtensa, Cortex-M — a lane is an
/// instruction and [`Isa::Scalar`] does less work, so the tile kernel is
/// not compiled there at all ([`Isa::Portable`] is unavailable): it would
/// be about 60 KiB of flash no device calls.
pub const HAS_VECTOR_BASELINE: bool = cfg!(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64"
));

/// The instruction set a [`SparseBackend`] was asked to use is not
/// supported by this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("instruction set {0:?} is not available on this CPU")]
pub struct IsaUnavailable(pub Isa);

/// A detected instruction set: holding the token proves detection ran.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    Scalar,
    #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"))]
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2(x86::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(x86::Avx512),
}

impl Kernel {
    fn of(isa: Isa) -> Option<Self> {
        match isa {
            Isa::Scalar => Some(Self::Scalar),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"))]
            Isa::Portable => Some(Self::Portable),
            #[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
            Isa::Portable => None,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::Avx2::detect().map(Self::Avx2),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::Avx512::detect().map(Self::Avx512),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => None,
        }
    }

    const fn isa(self) -> Isa {
        match self {
            Self::Scalar => Isa::Scalar,
            #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"))]
            Self::Portable => Isa::Portable,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(_) => Isa::Avx2,
            #[cfg(target_arch = "x86_64")]
            Self::Avx512(_) => Isa::Avx512,
        }
    }

    fn prefill(
        self,
        problem: &prefill::Problem<'_>,
        work: &mut prefill::Workspace,
        out: &mut [f32],
    ) -> Result<(), AttentionError> {
        match self {
            Self::Scalar => prefill::run_rows(problem, work, out),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"))]
            Self::Portable => {
                prefill::run(simd::Portable, problem, work, out);
                Ok(())
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(s) => {
                // SAFETY: the token exists only because AVX2 and FMA were
                // detected, the sole requirement of the target-feature
                // function.
                unsafe { prefill_avx2(s, problem, work, out) };
                Ok(())
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx512(s) => {
                // SAFETY: the token exists only because AVX-512F was detected.
                unsafe { prefill_avx512(s, problem, work, out) };
                Ok(())
            }
        }
    }
}

/// [`prefill::run`] compiled with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn prefill_avx2(
    s: x86::Avx2,
    problem: &prefill::Problem<'_>,
    work: &mut prefill::Workspace,
    out: &mut [f32],
) {
    prefill::run(s, problem, work, out);
}

/// [`prefill::run`] compiled with AVX-512F (and the AVX2/FMA it implies).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn prefill_avx512(
    s: x86::Avx512,
    problem: &prefill::Problem<'_>,
    work: &mut prefill::Workspace,
    out: &mut [f32],
) {
    prefill::run(s, problem, work, out);
}

/// Fast sparse attention for one [`HeadConfig`]: MHA or GQA/MQA, causal or
/// not, prefill and (causal) streaming decode.
#[derive(Debug, Clone)]
pub struct SparseBackend {
    config: HeadConfig,
    pattern: SparsePattern,
    kernel: Kernel,
}

impl SparseBackend {
    /// A sparse backend for `config`, using the widest instruction set the
    /// CPU supports.
    ///
    /// # Errors
    /// The config's first [`ConfigError`].
    pub fn new(config: HeadConfig) -> Result<Self, ConfigError> {
        let pattern = SparsePattern::new(&config)?;
        let kernel = Kernel::of(Isa::detect()).unwrap_or(Kernel::Scalar);
        Ok(Self {
            config,
            pattern,
            kernel,
        })
    }

    /// The same backend running prefill with instruction set `isa` (for
    /// tests and benchmarks that compare them).
    ///
    /// # Errors
    /// [`IsaUnavailable`] when this CPU cannot run `isa`.
    pub fn with_isa(self, isa: Isa) -> Result<Self, IsaUnavailable> {
        let kernel = Kernel::of(isa).ok_or(IsaUnavailable(isa))?;
        Ok(Self { kernel, ..self })
    }

    /// The instruction set prefill runs with.
    #[must_use]
    pub const fn isa(&self) -> Isa {
        self.kernel.isa()
    }

    /// The candidate pattern this backend computes.
    #[must_use]
    pub const fn pattern(&self) -> &SparsePattern {
        &self.pattern
    }

    /// Edges (query–candidate pairs) of a prefill of `n` tokens **per query
    /// head**, counted the way the kernel enumerates candidates (window
    /// length plus extras). Equals [`SparsePattern::edge_count`]; multiply
    /// by `q_heads` for the whole call.
    #[must_use]
    pub fn edge_count(&self, n: usize) -> u64 {
        plan::edge_count(&self.pattern, n)
    }
}

impl AttentionBackend for SparseBackend {
    fn config(&self) -> &HeadConfig {
        &self.config
    }

    fn forward(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
    ) -> Result<Tensor, AttentionError> {
        check::prefill(&self.config, q, k, v)?;
        let problem = prefill::Problem {
            pattern: &self.pattern,
            q: q.as_slice(),
            k: k.as_slice(),
            v: v.as_slice(),
            n: q.seq(),
            q_heads: self.config.q_heads,
            kv_heads: self.config.kv_heads,
            dim: self.config.head_dim,
        };
        let mut out = Tensor::zeros(q.seq(), self.config.q_heads, self.config.head_dim)?;
        if q.seq() == 0 {
            return Ok(out);
        }
        let mut work = prefill::Workspace::new(&problem)?;
        self.kernel
            .prefill(&problem, &mut work, out.as_mut_slice())?;
        exact::repair_prefill(
            &problem,
            |kv_head, block| work.landmark_is_finite(kv_head, block, problem.dim),
            work.vouched,
            out.as_mut_slice(),
        )?;
        Ok(out)
    }

    fn step_into(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        cache: &mut KvCache,
        out: &mut [f32],
    ) -> Result<(), AttentionError> {
        check::step(&self.config, q, k, v, cache, out)?;
        cache.append_with(
            k.as_slice(),
            v.as_slice(),
            step::narrow_fn(self.kernel.isa()),
        )?;
        let head = step::StepHead {
            pattern: &self.pattern,
            q_heads: self.config.q_heads,
            kv_heads: self.config.kv_heads,
            dim: self.config.head_dim,
        };
        // The fast kernels only when the cache holds nothing non-finite
        // (O(1): the cache counts such rows), and their result only when
        // every score was trustworthy (a non-finite query shows up there as
        // NaN scores) and the output is finite; otherwise the exact path
        // (`docs/non-finite.md`).
        let q = q.as_slice();
        if cache.non_finite_rows() == 0 {
            let scores_trusted = step::attend(&head, self.kernel.isa(), q, cache, out);
            if !scores_trusted || !exact::all_finite(out) {
                exact::step(&head, q, cache, out);
            }
        } else {
            exact::step(&head, q, cache, out);
        }
        if cache.tracks_attention() {
            step::record_attention(&head, q, cache);
        }
        Ok(())
    }
}
