//! The non-finite policy (`docs/non-finite.md`) on every instruction set:
//! a NaN or infinity reaches exactly the output elements the reference
//! backend says it reaches, and no others.
//!
//! Why separate from `tests.rs`: these pin the bugs where masked lanes
//! multiplied a non-finite value by zero (prefill) and where the SIMD step
//! kernels dropped NaN scores (their `max` ignored NaN), so a regression
//! names the policy directly.

use alloc::vec::Vec;

use aether_domain::{AttentionBackend, CacheDtype, HeadConfig, KvCache, Tensor};
use aether_reference::ReferenceBackend;

use crate::Isa;
use crate::SparseBackend;
use crate::tests::{TOLERANCE, available_isas, tensor, token};

/// A sparse backend for `config` on each instruction set this CPU has.
fn on_every_isa(config: &HeadConfig) -> impl Iterator<Item = (Isa, SparseBackend)> + '_ {
    available_isas().into_iter().map(move |isa| {
        let backend = SparseBackend::new(config.clone())
            .unwrap()
            .with_isa(isa)
            .unwrap();
        (isa, backend)
    })
}

/// `got` has non-finite elements exactly where `want` has, and the finite
/// ones agree to [`TOLERANCE`].
fn assert_same_propagation(got: &[f32], want: &[f32], dim: usize, what: &str) {
    assert_eq!(got.len(), want.len());
    for (e, (g, w)) in got.iter().zip(want).enumerate() {
        let (row, d) = (e / dim, e % dim);
        assert_eq!(
            g.is_finite(),
            w.is_finite(),
            "{what}: element {d} of row {row}: got {g}, reference {w}"
        );
        if w.is_finite() {
            assert!(
                (g - w).abs() <= TOLERANCE,
                "{what}: element {d} of row {row}: got {g}, reference {w}"
            );
        }
    }
}

fn issue_config() -> HeadConfig {
    HeadConfig {
        q_heads: 4,
        kv_heads: 4,
        head_dim: 32,
        window: 7,
        block_size: 5,
        causal: true,
        global_tokens: alloc::vec![0],
        ..HeadConfig::default_aether()
    }
}

/// Prefill of the reported shape (N = 200) with one element of token 100
/// set to `bad` in `operand` (1: key, 2: value) against the reference on
/// every ISA.
fn check_prefill_injection(operand: usize, head: usize, dim: usize) {
    let config = issue_config();
    let n = 200;
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut t = [
            tensor(1, n, 4, 32),
            tensor(2, n, 4, 32),
            tensor(3, n, 4, 32),
        ];
        t[operand].row_mut(100, head)[dim] = bad;
        let [q, k, v] = &t;
        let reference = ReferenceBackend::new(config.clone()).unwrap();
        let want = reference.forward(q.view(), k.view(), v.view()).unwrap();
        for (isa, sparse) in on_every_isa(&config) {
            let got = sparse.forward(q.view(), k.view(), v.view()).unwrap();
            assert_same_propagation(
                got.as_slice(),
                want.as_slice(),
                32,
                &alloc::format!("{isa:?} operand {operand} [100][{head}][{dim}] = {bad}"),
            );
        }
    }
}

/// The reported case: `v[100][0][3]` = NaN or +Inf, N = 200. Before the
/// fix, head 0 rows 127–131, 137–151, … came out NaN on every ISA (masked
/// lanes of a tile multiplied the value by a zero weight) although their
/// candidate sets hold neither token 100 nor its block.
#[test]
fn prefill_value_injection_reaches_only_its_candidates() {
    check_prefill_injection(2, 0, 3);
}

/// A non-finite key element: rows that use token 100 (or its block) go NaN
/// as the reference says (or drop it, for a -Inf score); nothing else
/// changes. Before the fix the AVX2 prefill dropped a NaN key.
#[test]
fn prefill_key_injection_reaches_only_its_candidates() {
    check_prefill_injection(1, 2, 7);
}

fn step_all(
    backend: &impl AttentionBackend,
    config: &HeadConfig,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dtype: CacheDtype,
) -> Vec<f32> {
    let config = HeadConfig {
        cache_dtype: dtype,
        ..config.clone()
    };
    let n = q.seq();
    let mut cache = KvCache::new(n, aether_domain::CacheLayout::of(&config)).unwrap();
    let mut out = Vec::new();
    let mut row = alloc::vec![0.0; config.q_heads * config.head_dim];
    for i in 0..n {
        backend
            .step_into(token(q, i), token(k, i), token(v, i), &mut cache, &mut row)
            .unwrap();
        out.extend_from_slice(&row);
    }
    out
}

/// A NaN key or query reached the SIMD step kernels' `max`, which dropped
/// it: the row came out finite, as if the candidate had weight 0, while
/// the portable kernel and the reference gave NaN.
#[test]
fn step_propagates_like_the_reference_on_every_isa() {
    let config = HeadConfig {
        causal: true,
        ..issue_config()
    };
    let n = 60;
    for (operand, bad) in [
        (0, f32::NAN),
        (1, f32::NAN),
        (1, f32::INFINITY),
        (1, f32::NEG_INFINITY),
        (2, f32::NAN),
        (2, f32::INFINITY),
        (0, f32::INFINITY),
    ] {
        let mut t = [
            tensor(7, n, 4, 32),
            tensor(8, n, 4, 32),
            tensor(9, n, 4, 32),
        ];
        t[operand].row_mut(30, 0)[1] = bad;
        let [q, k, v] = &t;
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            let config = HeadConfig {
                cache_dtype: dtype,
                ..config.clone()
            };
            let reference = ReferenceBackend::new(config.clone()).unwrap();
            let want = step_all(&reference, &config, q, k, v, dtype);
            for (isa, sparse) in on_every_isa(&config) {
                let got = step_all(&sparse, &config, q, k, v, dtype);
                assert_same_propagation(
                    &got,
                    &want,
                    32,
                    &alloc::format!("{isa:?} {dtype:?} operand {operand} = {bad}"),
                );
            }
        }
    }
}

/// Finite inputs whose f32 scores overflow: the reference (f64) gives a
/// finite answer, so must every ISA.
#[test]
fn overflowing_scores_fall_back_to_the_exact_path() {
    let config = issue_config();
    let n = 40;
    let mut q = tensor(10, n, 4, 32);
    let k = tensor(11, n, 4, 32);
    let v = tensor(12, n, 4, 32);
    for x in q.as_mut_slice() {
        *x *= 1e38;
    }
    let reference = ReferenceBackend::new(config.clone()).unwrap();
    let want = reference.forward(q.view(), k.view(), v.view()).unwrap();
    assert!(want.as_slice().iter().all(|x| x.is_finite()));
    for (isa, sparse) in on_every_isa(&config) {
        let got = sparse.forward(q.view(), k.view(), v.view()).unwrap();
        assert_same_propagation(
            got.as_slice(),
            want.as_slice(),
            32,
            &alloc::format!("{isa:?} prefill, q x 1e38"),
        );
        let got = step_all(&sparse, &config, &q, &k, &v, CacheDtype::F32);
        assert_same_propagation(
            &got,
            want.as_slice(),
            32,
            &alloc::format!("{isa:?} step, q x 1e38"),
        );
    }
}
