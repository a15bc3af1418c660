//! `ruv_temporal_kernel_self_test`: a known-answer check that the fast
//! sparse kernel, as compiled for this device, agrees with the reference.
//!
//! Why: the firmware runs the sparse backend's portable code on an ISA the
//! host tests never execute natively (ESP32 RISC-V or Xtensa soft/hard
//! float); a miscompilation or a float-ABI mismatch would show up as
//! wrong logits, not as a crash. This runs both backends on one fixed,
//! small input (every part of the pattern used: window, landmarks,
//! log-strides, a global token, MQA grouping), prefill and streaming, and
//! compares them element by element.

use alloc::vec::Vec;

use aether_domain::{AttentionBackend, BackendKind, HeadConfig, Tensor, TensorView};
use aether_reference::ReferenceBackend;
use aether_sparse::SparseBackend;

use crate::codes::Error;

/// Tokens of the fixed input: several landmark blocks and log-strides
/// beyond the window.
const SEQ: usize = 40;
/// Agreement required, as in the conformance suite for f32 kernels
/// against the f64 reference (`docs/quality.md`): absolute plus relative.
const TOLERANCE: f32 = 1e-5;

/// The small head the check runs: 4 query heads over 2 KV heads, dim 8,
/// window 4, blocks of 4, causal.
fn config(backend: BackendKind) -> HeadConfig {
    HeadConfig {
        backend,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 8,
        window: 4,
        block_size: 4,
        ..HeadConfig::default_aether()
    }
}

/// Deterministic values in [-1, 1): a 32-bit LCG, so the input is the
/// same on every target without tables in flash.
fn filled(seed: u32, len: usize) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // The top 24 bits are exact in f32.
            #[allow(clippy::cast_precision_loss)]
            let unit = (state >> 8) as f32 / (1u32 << 24) as f32;
            unit * 2.0 - 1.0
        })
        .collect()
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= TOLERANCE * (1.0 + b.abs())
}

/// Runs the check.
///
/// # Errors
/// [`Error::SelfTestFailed`] when any output element differs (or either
/// backend refuses the fixed input, which would be the same defect).
pub(crate) fn run() -> Result<(), Error> {
    compare().map_err(|_| Error::SelfTestFailed)?
}

/// `Ok(Ok(()))` when sparse prefill and sparse streaming both equal the
/// reference; the outer error is any backend refusal.
fn compare() -> Result<Result<(), Error>, aether_domain::AttentionError> {
    let (fast, reference) = (
        SparseBackend::new(config(BackendKind::Sparse))?,
        ReferenceBackend::new(config(BackendKind::Reference))?,
    );
    let (qh, kvh, d) = (4, 2, 8);
    let q = Tensor::new(filled(1, SEQ * qh * d), SEQ, qh, d)?;
    let k = Tensor::new(filled(2, SEQ * kvh * d), SEQ, kvh, d)?;
    let v = Tensor::new(filled(3, SEQ * kvh * d), SEQ, kvh, d)?;
    let expected = reference.forward(q.view(), k.view(), v.view())?;
    let prefill = fast.forward(q.view(), k.view(), v.view())?;
    let same = |got: &[f32], want: &[f32]| {
        got.len() == want.len() && got.iter().zip(want).all(|(&g, &w)| close(g, w))
    };
    if !same(prefill.as_slice(), expected.as_slice()) {
        return Ok(Err(Error::SelfTestFailed));
    }
    let mut cache = fast.make_cache(SEQ)?;
    let mut out = [0.0_f32; 4 * 8];
    for t in 0..SEQ {
        fast.step_into(
            token(&q, t)?,
            token(&k, t)?,
            token(&v, t)?,
            &mut cache,
            &mut out,
        )?;
        if !same(&out, expected.view().token(t)) {
            return Ok(Err(Error::SelfTestFailed));
        }
    }
    Ok(Ok(()))
}

/// Token `t` of `x` as a one-token view.
fn token(x: &Tensor, t: usize) -> Result<TensorView<'_>, aether_domain::ShapeError> {
    let view = x.view();
    TensorView::new(view.token(t), 1, view.heads(), view.dim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_on_this_machine() {
        assert_eq!(run(), Ok(()));
    }

    #[test]
    fn the_input_is_not_trivial() {
        let values = filled(1, 64);
        assert!(values.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(values.iter().any(|&v| v < -0.5) && values.iter().any(|&v| v > 0.5));
    }

    #[test]
    fn a_wrong_answer_is_caught() {
        assert!(close(1.0, 1.0 + 1e-6));
        assert!(!close(1.0, 1.001));
        assert!(!close(f32::NAN, 1.0));
    }
}
