//! Exact dense attention: every query attends to every key it may see.
//!
//! Why it exists: it is the exact baseline the sparse backend is measured
//! and tested against (with `W >= N - 1` sparse must equal dense,
//! `docs/attention.md`), and the backend to pick when sequences are short
//! enough that `O(N^2)` is cheap. It ignores the sparse-pattern fields of the config (`window`,
//! `global_tokens`, `log_stride`, `landmarks`): causal query `i` attends to
//! every key `j <= i`, non-causal queries to every key.
//!
//! The computation is flash-attention style online softmax over tiles of
//! keys (modules `prefill` and `decode`), so memory stays
//! `O(N * heads * head_dim)` and no score matrix is ever built. On `x86_64`
//! the same kernels also run with AVX2 or AVX-512 when the CPU has them
//! (module `dispatch`, detected at run time without `std`).
//!
//! Non-finite inputs (NaN, ±Inf) follow `docs/non-finite.md`: every
//! output element is non-finite exactly when the reference backend's
//! (f64, IEEE) computation over the same candidates makes it so, and no
//! bad value reaches a row that cannot see it. The vector kernels are only
//! trusted with rows whose query and candidates are finite and small
//! enough that no f32 score can overflow; every other row, and every row
//! whose fast result came out non-finite anyway, is recomputed by module
//! `exact`, which spells the definition out in f64.
//!
//! **Invariant:** inputs are validated with `aether_domain::check` before
//! any work, and a streaming step touches the cache only through
//! `KvCache::append`, so every `Err` leaves the cache unchanged. A
//! streaming step allocates nothing.
#![no_std]

extern crate alloc;

mod decode;
mod dispatch;
mod exact;
mod lanes;
mod prefill;

use aether_domain::{
    AttentionBackend, AttentionError, ConfigError, HeadConfig, KvCache, Tensor, TensorView, check,
};

/// A copy of the kernels, by the vector instructions it is compiled for.
///
/// Why public: tests and benchmarks in other crates need to run every copy
/// this CPU has (each is a separate compilation of the same source, so each
/// can break on its own); production code just uses [`DenseBackend::new`],
/// which picks [`Isa::detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The compilation target's baseline; runs anywhere.
    Portable,
    /// `x86_64` AVX2 (eight query rows per vector).
    Avx2,
    /// `x86_64` AVX-512F: sixteen query rows per vector in prefill (a step
    /// runs the AVX2 copy, whose eight lanes already cover its rows).
    Avx512,
}

impl Isa {
    /// Every copy, narrowest first (available on this CPU or not).
    pub const ALL: [Self; 3] = [Self::Portable, Self::Avx2, Self::Avx512];

    /// Whether this CPU (and OS) can run this copy.
    #[must_use]
    pub fn is_available(self) -> bool {
        dispatch::is_available(self)
    }

    /// The widest available copy.
    #[must_use]
    pub fn detect() -> Self {
        Self::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.is_available())
            .unwrap_or(Self::Portable)
    }
}

/// The copy a [`DenseBackend`] was asked to run needs instructions this
/// CPU lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaUnavailable(pub Isa);

impl core::fmt::Display for IsaUnavailable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "instruction set {:?} is not available on this CPU",
            self.0
        )
    }
}

impl core::error::Error for IsaUnavailable {}

/// Exact (dense) attention for one [`HeadConfig`], MHA or GQA/MQA, causal or
/// not, prefill and streaming decode.
#[derive(Debug, Clone)]
pub struct DenseBackend {
    config: HeadConfig,
    /// Which copy of the kernel runs, chosen once from the CPU's features.
    isa: Isa,
}

/// What the kernels need to know about the head, copied out of the config
/// so the hot loops see plain numbers.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// `q_heads / kv_heads`.
    group: usize,
    /// Values per head.
    dim: usize,
    /// Causal masking.
    causal: bool,
    /// `1 / sqrt(dim)`.
    scale: f32,
    /// `1 / sqrt(dim)` in f64, for the exact path (as the reference).
    exact_scale: f64,
}

impl DenseBackend {
    /// A dense backend for `config`.
    ///
    /// # Errors
    /// The config's first [`ConfigError`] (zero heads or dims, block size 0,
    /// `kv_heads` not dividing `q_heads`).
    pub fn new(config: HeadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            isa: Isa::detect(),
        })
    }

    /// The same backend running `isa`'s copy of the kernels, so tests and
    /// benchmarks can compare the copies.
    ///
    /// # Errors
    /// [`IsaUnavailable`] when this CPU cannot run `isa`.
    pub fn with_isa(self, isa: Isa) -> Result<Self, IsaUnavailable> {
        if isa.is_available() {
            Ok(Self { isa, ..self })
        } else {
            Err(IsaUnavailable(isa))
        }
    }

    /// The copy of the kernels this backend runs.
    #[must_use]
    pub const fn isa(&self) -> Isa {
        self.isa
    }

    /// The kernel's view of the (validated) config.
    fn head(&self) -> Head {
        let dim = self.config.head_dim;
        Head {
            group: self.config.group_size(),
            dim,
            causal: self.config.causal,
            scale: 1.0 / libm::sqrtf(dim as f32),
            exact_scale: 1.0 / libm::sqrt(dim as f64),
        }
    }
}

impl AttentionBackend for DenseBackend {
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
        let head = self.head();
        let mut out = Tensor::zeros(q.seq(), self.config.q_heads, head.dim)?;
        if q.seq() == 0 {
            return Ok(out);
        }
        dispatch::prefill(self.isa, &head, q, k, v, &mut out)?;
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
        cache.append(k.as_slice(), v.as_slice())?;
        dispatch::step(self.isa, &self.head(), q.as_slice(), cache, out);
        if cache.tracks_attention() {
            decode::record_attention(&self.head(), q.as_slice(), cache);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
