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
//! keys ([`kernel`]), so memory stays `O(N * heads * head_dim)` and no score
//! matrix is ever built; on `x86_64` the same kernel also runs with AVX2 when
//! the CPU has it ([`dispatch`]).
//!
//! **Invariant:** inputs are validated with `aether_domain::check` before
//! any work, and a streaming step touches the cache only through
//! `KvCache::append`, so every `Err` leaves the cache unchanged. A
//! streaming step allocates nothing.
#![no_std]

extern crate alloc;

mod dispatch;
mod kernel;
mod lanes;

use aether_domain::{
    AttentionBackend, AttentionError, ConfigError, HeadConfig, KvCache, Tensor, TensorView, check,
};

use crate::kernel::{Head, Scratch};

/// Exact (dense) attention for one [`HeadConfig`], MHA or GQA/MQA, causal or
/// not, prefill and streaming decode.
#[derive(Debug, Clone)]
pub struct DenseBackend {
    config: HeadConfig,
}

impl DenseBackend {
    /// A dense backend for `config`.
    ///
    /// # Errors
    /// The config's first [`ConfigError`] (zero heads or dims, block size 0,
    /// `kv_heads` not dividing `q_heads`).
    pub fn new(config: HeadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
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
        let mut scratch = Scratch::try_new(q.seq(), &head)?;
        for kv_head in 0..self.config.kv_heads {
            dispatch::prefill_head(&head, q, k, v, kv_head, &mut scratch, &mut out);
        }
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
        dispatch::step(&self.head(), q.as_slice(), cache, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
