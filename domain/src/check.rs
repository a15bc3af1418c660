//! Input validation shared by every backend.
//!
//! Each backend calls these before doing any work, so all backends reject
//! the same inputs with the same errors (the conformance suite relies on
//! it) and no backend can touch a cache with inputs that would fail later.

use crate::cache::{CacheLayout, KvCache};
use crate::config::HeadConfig;
use crate::error::{AttentionError, Operand};
use crate::tensor::TensorView;

fn heads_and_dim(
    operand: Operand,
    t: TensorView<'_>,
    heads: usize,
    dim: usize,
) -> Result<(), AttentionError> {
    if t.heads() != heads {
        return Err(AttentionError::HeadCount {
            operand,
            expected: heads,
            actual: t.heads(),
        });
    }
    if t.dim() != dim {
        return Err(AttentionError::HeadDim {
            operand,
            expected: dim,
            actual: t.dim(),
        });
    }
    Ok(())
}

fn operands(
    config: &HeadConfig,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
) -> Result<(), AttentionError> {
    config.validate()?;
    heads_and_dim(Operand::Query, q, config.q_heads, config.head_dim)?;
    heads_and_dim(Operand::Key, k, config.kv_heads, config.head_dim)?;
    heads_and_dim(Operand::Value, v, config.kv_heads, config.head_dim)
}

/// Validates prefill (self-attention) inputs: head counts and dims match
/// the config and q, k, v have the same number of tokens.
///
/// # Errors
/// [`AttentionError::Config`], [`AttentionError::HeadCount`],
/// [`AttentionError::HeadDim`] or [`AttentionError::SequenceMismatch`].
pub fn prefill(
    config: &HeadConfig,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
) -> Result<(), AttentionError> {
    operands(config, q, k, v)?;
    if q.seq() != k.seq() || k.seq() != v.seq() {
        return Err(AttentionError::SequenceMismatch {
            q: q.seq(),
            k: k.seq(),
            v: v.seq(),
        });
    }
    Ok(())
}

/// Validates streaming-step inputs: a causal config, one token in each of
/// q, k, v, a cache of this head's layout, and an output buffer of
/// `q_heads * head_dim` values.
///
/// Whether the cache has room is the cache's own check (at append time,
/// still before anything changes).
///
/// # Errors
/// [`AttentionError::StepNotCausal`], [`AttentionError::StepNotOneToken`],
/// [`AttentionError::CacheLayoutMismatch`], [`AttentionError::OutputLength`]
/// and everything [`prefill`] returns for mismatched heads or dims.
pub fn step(
    config: &HeadConfig,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
    cache: &KvCache,
    out: &[f32],
) -> Result<(), AttentionError> {
    operands(config, q, k, v)?;
    if !config.causal {
        return Err(AttentionError::StepNotCausal);
    }
    for (operand, t) in [(Operand::Query, q), (Operand::Key, k), (Operand::Value, v)] {
        if t.seq() != 1 {
            return Err(AttentionError::StepNotOneToken {
                operand,
                seq: t.seq(),
            });
        }
    }
    let expected = CacheLayout::of(config);
    if cache.layout() != expected {
        return Err(AttentionError::CacheLayoutMismatch {
            expected,
            actual: cache.layout(),
        });
    }
    let out_len = config.q_heads * config.head_dim;
    if out.len() != out_len {
        return Err(AttentionError::OutputLength {
            expected: out_len,
            actual: out.len(),
        });
    }
    Ok(())
}
