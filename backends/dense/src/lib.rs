//! Exact dense attention: every query attends to every key it may see.
//!
//! Why it exists: it is the exact baseline the sparse backend is measured
//! and tested against (with `W >= N - 1` sparse must equal dense, SPEC §3),
//! and the backend to pick when sequences are short enough that `O(N^2)`
//! is cheap. It ignores the sparse-pattern fields of the config (`window`,
//! `global_tokens`, `log_stride`, `landmarks`): causal query `i` attends to
//! every key `j <= i`, non-causal queries to every key.
//!
//! The computation is flash-attention style online softmax over tiles of
//! keys (modules `prefill` and `decode`), so memory stays
//! `O(N * heads * head_dim)` and no score matrix is ever built. On `x86_64`
//! the same kernels also run with AVX2 or AVX-512 when the CPU has them
//! (module `dispatch`, detected at run time without `std`).
//!
//! **Invariant:** inputs are validated with `aether_domain::check` before
//! any work, and a streaming step touches the cache only through
//! `KvCache::append`, so every `Err` leaves the cache unchanged. A
//! streaming step allocates nothing.
#![no_std]

extern crate alloc;

mod decode;
mod dispatch;
mod lanes;
mod prefill;

use aether_domain::{
    AttentionBackend, AttentionError, ConfigError, HeadConfig, KvCache, Tensor, TensorView, check,
};

use crate::dispatch::Isa;

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
            isa: Isa::best(),
        })
    }

    /// This backend running `isa`'s copy of the kernels (tests compare them).
    #[cfg(test)]
    fn with_isa(&self, isa: Isa) -> Self {
        Self {
            config: self.config.clone(),
            isa,
        }
    }

    /// The kernel's view of the (validated) config.
    fn head(&self) -> Head {
        let dim = self.config.head_dim;
        Head {
            group: self.config.group_size(),
            dim,
            causal: self.config.causal,
            scale: 1.0 / libm::sqrtf(dim as f32),
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
