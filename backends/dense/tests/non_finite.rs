//! The non-finite policy (`docs/non-finite.md`) on every copy of the dense
//! kernels this CPU runs: a NaN or infinity reaches exactly the output
//! elements the reference backend (window covering every token, no
//! landmarks, strides or globals: dense attention in f64) says it reaches,
//! no row that cannot see it changes by a single bit, and finite inputs
//! whose f32 scores overflow still give the reference's finite result.
//!
//! Why an integration test: it drives the backend only through its public
//! API, including `DenseBackend::with_isa`, the way the workspace's
//! conformance tests do.

use aether_dense::{DenseBackend, Isa};
use aether_domain::{
    AttentionBackend, BackendKind, CacheDtype, Eviction, HeadConfig, Tensor, TensorView,
};
use aether_reference::ReferenceBackend;
use proptest::prelude::*;

/// Finite outputs against the f64 reference: the fast rows sum a few
/// hundred f32 products and renormalise per tile (a few ulp on O(1)
/// outputs); the bar of `docs/quality.md`.
const TOLERANCE: f32 = 1e-5;

const BAD: [f32; 3] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];

/// A dense config and the reference config computing the same attention.
fn configs(
    q_heads: usize,
    kv_heads: usize,
    head_dim: usize,
    causal: bool,
    n: usize,
) -> (HeadConfig, HeadConfig) {
    let reference = HeadConfig {
        backend: BackendKind::Reference,
        q_heads,
        kv_heads,
        head_dim,
        causal,
        window: n + 1,
        global_tokens: vec![],
        log_stride: false,
        landmarks: false,
        ..HeadConfig::default_aether()
    };
    let dense = HeadConfig {
        backend: BackendKind::Dense,
        ..reference.clone()
    };
    (dense, reference)
}

fn tensor(seed: u64, seq: usize, heads: usize, dim: usize) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..seq * heads * dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    Tensor::new(data, seq, heads, dim).unwrap()
}

/// One dense backend per copy of the kernels this CPU can run.
fn every_isa(config: &HeadConfig) -> Vec<DenseBackend> {
    let backends: Vec<DenseBackend> = Isa::ALL
        .into_iter()
        .filter(|isa| isa.is_available())
        .map(|isa| {
            DenseBackend::new(config.clone())
                .unwrap()
                .with_isa(isa)
                .unwrap()
        })
        .collect();
    assert!(backends.iter().any(|b| b.isa() == Isa::Portable));
    backends
}

/// `got` is non-finite exactly where `want` is, and the finite elements
/// agree to [`TOLERANCE`] (NaN and ±Inf are not told apart).
fn assert_same_propagation(got: &[f32], want: &[f32], dim: usize, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
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

/// Token `i` of `t` as a one-token view.
fn token(t: &Tensor, i: usize) -> TensorView<'_> {
    TensorView::new(t.view().token(i), 1, t.heads(), t.dim()).unwrap()
}

/// Every step's output, streaming all of `q`, `k`, `v` through a fresh
/// cache of `backend` (capacity `capacity`, so eviction may kick in).
fn stream(
    backend: &impl AttentionBackend,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    capacity: usize,
) -> Vec<f32> {
    let mut cache = backend.make_cache(capacity).unwrap();
    let mut out = Vec::new();
    for i in 0..q.seq() {
        let step = backend
            .step(token(q, i), token(k, i), token(v, i), &mut cache)
            .unwrap();
        out.extend_from_slice(step.as_slice());
    }
    out
}

/// The reported case: q_heads 4, kv_heads 4, head_dim 32, causal, N 200,
/// an element of token 100's key or value NaN or ±Inf. Before the fix,
/// rows 96-99 of the value's head came out non-finite in the element it
/// was injected in: they share a block of rows and a tile of keys with
/// token 100, masked for them, but the masked lane still multiplied its
/// value by a zero weight. Now rows before 100 are bit for bit the clean
/// result, and the rows from 100 on match the reference.
#[test]
fn issue_injection_at_token_100_reaches_only_rows_that_see_it() {
    let n = 200;
    let (config, reference_config) = configs(4, 4, 32, true, n);
    let reference = ReferenceBackend::new(reference_config).unwrap();
    let q = tensor(1, n, 4, 32);
    let clean_k = tensor(2, n, 4, 32);
    let clean_v = tensor(3, n, 4, 32);
    let backends = every_isa(&config);
    let clean: Vec<Tensor> = backends
        .iter()
        .map(|b| b.forward(q.view(), clean_k.view(), clean_v.view()).unwrap())
        .collect();
    for operand in ["k", "v"] {
        for bad in BAD {
            let (mut k, mut v) = (clean_k.clone(), clean_v.clone());
            let target = if operand == "k" { &mut k } else { &mut v };
            target.row_mut(100, 1)[5] = bad;
            let want = reference.forward(q.view(), k.view(), v.view()).unwrap();
            for (backend, clean) in backends.iter().zip(&clean) {
                let what = format!("{:?} {operand}[100][1][5] = {bad}", backend.isa());
                let got = backend.forward(q.view(), k.view(), v.view()).unwrap();
                for i in 96..100 {
                    assert_eq!(got.row(i, 1), clean.row(i, 1), "{what}: row {i} changed");
                }
                let before = 100 * 4 * 32;
                assert_eq!(
                    &got.as_slice()[..before],
                    &clean.as_slice()[..before],
                    "{what}: rows before 100 changed"
                );
                assert_same_propagation(got.as_slice(), want.as_slice(), 32, &what);
                // Every row that sees a bad value element has a non-zero
                // weight on it here, so the check above is not vacuous.
                if operand == "v" {
                    assert!((100..n).all(|i| !got.row(i, 1)[5].is_finite()), "{what}");
                }
            }
        }
    }
}

/// The whole of token 100 bad, in every head: rows before 100 stay the
/// clean result bit for bit, and every element of every later row is
/// non-finite (what the reference gives: a bad value element has non-zero
/// weight, and a key of infinities meets a mixed-sign query as `inf -
/// inf`). Checked without the reference to keep the test fast; the
/// single-element test above compares with it.
#[test]
fn issue_whole_token_100_injection_reaches_only_later_rows() {
    let n = 200;
    let (config, _) = configs(4, 4, 32, true, n);
    let q = tensor(1, n, 4, 32);
    let clean_k = tensor(2, n, 4, 32);
    let clean_v = tensor(3, n, 4, 32);
    for backend in every_isa(&config) {
        let clean = backend
            .forward(q.view(), clean_k.view(), clean_v.view())
            .unwrap();
        for operand in ["k", "v"] {
            for bad in BAD {
                let (mut k, mut v) = (clean_k.clone(), clean_v.clone());
                let target = if operand == "k" { &mut k } else { &mut v };
                for head in 0..4 {
                    target.row_mut(100, head).fill(bad);
                }
                let what = format!("{:?} {operand}[100] = {bad}", backend.isa());
                let got = backend.forward(q.view(), k.view(), v.view()).unwrap();
                let before = 100 * 4 * 32;
                assert_eq!(
                    &got.as_slice()[..before],
                    &clean.as_slice()[..before],
                    "{what}: rows before 100 changed"
                );
                let after = &got.as_slice()[before..];
                assert!(after.iter().all(|x| !x.is_finite()), "{what}");
            }
        }
    }
}

/// The same injection, streamed: each step equals the reference step, and
/// steps before token 100 equal the clean run bit for bit.
#[test]
fn issue_injection_at_token_100_streams_like_the_reference() {
    let n = 110;
    let (config, reference_config) = configs(4, 4, 32, true, n);
    let reference = ReferenceBackend::new(reference_config).unwrap();
    let q = tensor(11, n, 4, 32);
    let clean_k = tensor(12, n, 4, 32);
    let clean_v = tensor(13, n, 4, 32);
    for backend in every_isa(&config) {
        let isa = backend.isa();
        let clean = stream(&backend, &q, &clean_k, &clean_v, n);
        for operand in ["k", "v"] {
            for bad in BAD {
                let (mut k, mut v) = (clean_k.clone(), clean_v.clone());
                let target = if operand == "k" { &mut k } else { &mut v };
                target.row_mut(100, 2)[31] = bad;
                let what = format!("{isa:?} step {operand}[100] = {bad}");
                let got = stream(&backend, &q, &k, &v, n);
                let before = 100 * 4 * 32;
                assert_eq!(&got[..before], &clean[..before], "{what}");
                // Heads 0, 1 and 3 never see the bad element: bit for bit.
                for i in 100..n {
                    for head in [0, 1, 3] {
                        let row = (i * 4 + head) * 32;
                        assert_eq!(
                            &got[row..row + 32],
                            &clean[row..row + 32],
                            "{what}: step {i} head {head}"
                        );
                    }
                }
                let want = stream(&reference, &q, &k, &v, n);
                assert_same_propagation(&got, &want, 32, &what);
            }
        }
    }
}

/// Finite inputs whose f32 scores overflow (query and key elements near
/// 1e20, products 1e40 > f32::MAX): the reference's f64 scores are finite,
/// so is its result, and so must ours be, on every copy, in prefill and
/// streaming.
#[test]
fn overflowing_scores_of_finite_inputs_give_the_reference_result() {
    let (n, dim) = (40, 8);
    for causal in [true, false] {
        let (config, reference_config) = configs(2, 1, dim, causal, n);
        let reference = ReferenceBackend::new(reference_config).unwrap();
        let mut q = tensor(21, n, 2, dim);
        let mut k = tensor(22, n, 1, dim);
        let v = tensor(23, n, 1, dim);
        for i in (0..n).step_by(3) {
            q.row_mut(i, i % 2).iter_mut().for_each(|x| *x *= 1e20);
        }
        for j in (1..n).step_by(4) {
            k.row_mut(j, 0).iter_mut().for_each(|x| *x *= 1e20);
        }
        let want = reference.forward(q.view(), k.view(), v.view()).unwrap();
        assert!(want.as_slice().iter().all(|x| x.is_finite()));
        for backend in every_isa(&config) {
            let what = format!("{:?} causal {causal}", backend.isa());
            let got = backend.forward(q.view(), k.view(), v.view()).unwrap();
            assert_same_propagation(got.as_slice(), want.as_slice(), dim, &what);
            if causal {
                let got = stream(&backend, &q, &k, &v, n);
                let want = stream(&reference, &q, &k, &v, n);
                assert!(want.iter().all(|x| x.is_finite()));
                assert_same_propagation(&got, &want, dim, &format!("{what} step"));
            }
        }
    }
}

/// A score whose f32 dot product overflows to `-inf` part-way although
/// its true value is 0, the largest of the row: weight 0 in f32, nearly
/// all the weight in f64. Nothing in the fast result is non-finite, so
/// only the score-range check can send the row to the exact path.
#[test]
fn a_score_overflowing_to_minus_infinity_is_recomputed() {
    let dim = 16;
    let (config, reference_config) = configs(1, 1, dim, true, 2);
    let reference = ReferenceBackend::new(reference_config).unwrap();
    // Products -3e38, -3e38 in one accumulator lane (their sum overflows),
    // +1.5e38 four times in two others: exactly 0 in f64.
    let mut query = vec![0.0f32; dim];
    let mut big_key = vec![0.0f32; dim];
    for (d, key) in [
        (0, -3e19f32),
        (8, -3e19),
        (1, 1.5e19),
        (9, 1.5e19),
        (2, 1.5e19),
        (10, 1.5e19),
    ] {
        query[d] = 1e19;
        big_key[d] = key;
    }
    let mut small_key = vec![0.0f32; dim];
    small_key[0] = -1e-19; // score -1 / 4
    let q = Tensor::new([query.clone(), query].concat(), 2, 1, dim).unwrap();
    let k = Tensor::new([small_key, big_key].concat(), 2, 1, dim).unwrap();
    let v = Tensor::new((0..2 * dim).map(|x| x as f32).collect(), 2, 1, dim).unwrap();
    let want = reference.forward(q.view(), k.view(), v.view()).unwrap();
    for backend in every_isa(&config) {
        let what = format!("{:?}", backend.isa());
        let got = backend.forward(q.view(), k.view(), v.view()).unwrap();
        assert_same_propagation(got.as_slice(), want.as_slice(), dim, &what);
        let got = stream(&backend, &q, &k, &v, 2);
        assert_same_propagation(&got, want.as_slice(), dim, &format!("{what} step"));
    }
}

/// One injected element: operand (0 q, 1 k, 2 v), token, head and dim as
/// fractions of the shape, and which non-finite value.
type Injection = (usize, f64, f64, f64, usize);

fn inject(q: &mut Tensor, k: &mut Tensor, v: &mut Tensor, injections: &[Injection]) {
    for &(operand, token, head, dim, bad) in injections {
        let t = match operand {
            0 => &mut *q,
            1 => &mut *k,
            _ => &mut *v,
        };
        let pick = |fraction: f64, len: usize| ((fraction * len as f64) as usize).min(len - 1);
        let (i, h, d) = (
            pick(token, t.seq()),
            pick(head, t.heads()),
            pick(dim, t.dim()),
        );
        t.row_mut(i, h)[d] = BAD[bad];
    }
}

/// Rows (token, query head) that can see no injected key or value and
/// whose own query is finite: these must equal the clean run bit for bit.
fn untouched_rows(config: &HeadConfig, q: &Tensor, k: &Tensor, v: &Tensor) -> Vec<(usize, usize)> {
    let n = q.seq();
    let group = config.q_heads / config.kv_heads;
    let mut rows = Vec::new();
    for i in 0..n {
        let last = if config.causal { i } else { n - 1 };
        for h in 0..config.q_heads {
            let g = h / group;
            let sees_bad =
                (0..=last).any(|j| !k.row(j, g).iter().chain(v.row(j, g)).all(|x| x.is_finite()));
            if !sees_bad && q.row(i, h).iter().all(|x| x.is_finite()) {
                rows.push((i, h));
            }
        }
    }
    rows
}

fn shape() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        Just((1, 1)),
        Just((2, 2)),
        Just((4, 1)),
        Just((4, 2)),
        Just((3, 1))
    ]
}

fn injections() -> impl Strategy<Value = Vec<Injection>> {
    prop::collection::vec(
        (0..3usize, 0.0..1.0f64, 0.0..1.0f64, 0.0..1.0f64, 0..3usize),
        1..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Prefill with random injections: the non-finite elements are the
    /// reference's, finite ones agree, and rows that see nothing bad are
    /// the clean run bit for bit.
    #[test]
    fn prefill_follows_the_reference(
        (q_heads, kv_heads) in shape(),
        dim in prop_oneof![Just(1usize), Just(5), Just(8), Just(12)],
        n in 1usize..45,
        causal in any::<bool>(),
        seed in any::<u64>(),
        injected in injections(),
    ) {
        let (config, reference_config) = configs(q_heads, kv_heads, dim, causal, n);
        let reference = ReferenceBackend::new(reference_config).unwrap();
        let clean_q = tensor(seed, n, q_heads, dim);
        let clean_k = tensor(seed ^ 1, n, kv_heads, dim);
        let clean_v = tensor(seed ^ 2, n, kv_heads, dim);
        let (mut q, mut k, mut v) = (clean_q.clone(), clean_k.clone(), clean_v.clone());
        inject(&mut q, &mut k, &mut v, &injected);
        let want = reference.forward(q.view(), k.view(), v.view()).unwrap();
        let untouched = untouched_rows(&config, &q, &k, &v);
        for backend in every_isa(&config) {
            let what = format!("{:?} {injected:?}", backend.isa());
            let got = backend.forward(q.view(), k.view(), v.view()).unwrap();
            assert_same_propagation(got.as_slice(), want.as_slice(), dim, &what);
            let clean = backend
                .forward(clean_q.view(), clean_k.view(), clean_v.view())
                .unwrap();
            for &(i, h) in &untouched {
                prop_assert_eq!(got.row(i, h), clean.row(i, h), "{} row {} head {}", what, i, h);
            }
        }
    }

    /// Streaming with random injections, over f32 and f16 caches, with and
    /// without a sliding window: every step's non-finite elements are the
    /// reference step's, finite ones agree.
    #[test]
    fn step_follows_the_reference(
        (q_heads, kv_heads) in shape(),
        dim in prop_oneof![Just(1usize), Just(5), Just(8), Just(12)],
        n in 1usize..40,
        f16 in any::<bool>(),
        window in prop::option::of(2usize..20),
        seed in any::<u64>(),
        injected in injections(),
    ) {
        let (mut config, mut reference_config) = configs(q_heads, kv_heads, dim, true, n);
        for c in [&mut config, &mut reference_config] {
            c.cache_dtype = if f16 { CacheDtype::F16 } else { CacheDtype::F32 };
            if window.is_some() {
                c.eviction = Eviction::SlidingWindow;
            }
        }
        let capacity = window.unwrap_or(n);
        let reference = ReferenceBackend::new(reference_config).unwrap();
        let (mut q, mut k, mut v) = (
            tensor(seed, n, q_heads, dim),
            tensor(seed ^ 1, n, kv_heads, dim),
            tensor(seed ^ 2, n, kv_heads, dim),
        );
        inject(&mut q, &mut k, &mut v, &injected);
        let want = stream(&reference, &q, &k, &v, capacity);
        for backend in every_isa(&config) {
            let what = format!("{:?} {injected:?}", backend.isa());
            let got = stream(&backend, &q, &k, &v, capacity);
            assert_same_propagation(&got, &want, dim, &what);
        }
    }
}
