//! The non-finite policy (`docs/non-finite.md`), one property for every
//! backend and every instruction set this machine has.
//!
//! NaN, +∞ and −∞ are injected at random positions of q, k and v; each
//! fast backend's output must be non-finite in exactly the elements where
//! the reference's is, and agree with it to [`EXACT`] everywhere else —
//! prefill and streaming step, MHA/GQA/MQA, causal and non-causal, windows
//! small and wider than the kernels' chunks (the sparse prefill scores 256
//! window keys per chunk, its step 56–72 candidates).
//!
//! The ISAs are forced through each backend's `with_isa`, so the portable
//! copy (the one the ESP32 runs) is checked on an x86 host as well as the
//! AVX2 and AVX-512 copies.

use aether_dense::DenseBackend;
use aether_domain::{AttentionBackend, CacheDtype, CacheLayout, HeadConfig, KvCache, Tensor};
use aether_reference::ReferenceBackend;
use aether_sparse::SparseBackend;
use aether_tests::{Rng, arb_head, random_tensor, token};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Finite elements against the f64 reference: the conformance suite's bar
/// (f32 accumulation order and the polynomial `exp`, ~30x headroom).
const EXACT: f32 = 1e-5;

/// Value range of the finite inputs (peaked softmaxes, as in conformance).
const SCALE: f32 = 2.0;

/// Cases per property: each case runs every backend on every ISA, and the
/// suite must stay at a few seconds in a debug build.
const CASES: u32 = 40;

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

/// Which operand an injection hits.
#[derive(Debug, Clone, Copy)]
enum Operand {
    Query,
    Key,
    Value,
}

/// One non-finite value at `(token, head, dim)` of an operand (indices are
/// reduced modulo the real shape).
#[derive(Debug, Clone, Copy)]
struct Injection {
    operand: Operand,
    token: usize,
    head: usize,
    dim: usize,
    value: f32,
}

fn arb_injection() -> impl Strategy<Value = Injection> {
    (
        prop_oneof![
            Just(Operand::Query),
            Just(Operand::Key),
            Just(Operand::Value)
        ],
        any::<usize>(),
        any::<usize>(),
        any::<usize>(),
        prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)],
    )
        .prop_map(|(operand, token, head, dim, value)| Injection {
            operand,
            token,
            head,
            dim,
            value,
        })
}

/// A random head ([`arb_head`]) with this suite's windows.
fn arb_config(causal: Option<bool>) -> impl Strategy<Value = HeadConfig> {
    arb_head(
        prop_oneof![6 => 0usize..=12, 1 => 60usize..=120, 1 => 241usize..=300],
        causal,
    )
}

struct Inputs {
    q: Tensor,
    k: Tensor,
    v: Tensor,
}

fn inputs(config: &HeadConfig, n: usize, seed: u64, injections: &[Injection]) -> Inputs {
    let mut rng = Rng::new(seed);
    let mut x = Inputs {
        q: random_tensor(&mut rng, n, config.q_heads, config.head_dim, SCALE),
        k: random_tensor(&mut rng, n, config.kv_heads, config.head_dim, SCALE),
        v: random_tensor(&mut rng, n, config.kv_heads, config.head_dim, SCALE),
    };
    for injection in injections {
        let t = match injection.operand {
            Operand::Query => &mut x.q,
            Operand::Key => &mut x.k,
            Operand::Value => &mut x.v,
        };
        let (token, head) = (injection.token % n, injection.head % t.heads());
        let dim = injection.dim % t.dim();
        t.row_mut(token, head)[dim] = injection.value;
    }
    x
}

/// A fast backend under test, with the ISA it was forced to.
struct Subject {
    name: String,
    family: Family,
    backend: Box<dyn AttentionBackend>,
}

/// Which oracle a subject is held to.
#[derive(Clone, Copy)]
enum Family {
    /// The reference on the same config.
    Sparse = 0,
    /// The reference on a window covering every token (no landmarks then
    /// exist): dense attention.
    Dense = 1,
}

/// Every fast backend on every ISA this CPU has. Sparse is compared with
/// the reference on the same config; dense with the reference on a window
/// covering every token (no landmarks then exist).
fn subjects(config: &HeadConfig) -> Vec<Subject> {
    let mut list = Vec::new();
    for isa in aether_sparse::Isa::ALL {
        if let Ok(backend) = SparseBackend::new(config.clone())
            .expect("valid config")
            .with_isa(isa)
        {
            list.push(Subject {
                name: format!("sparse {isa:?}"),
                family: Family::Sparse,
                backend: Box::new(backend),
            });
        }
    }
    for isa in aether_dense::Isa::ALL {
        if let Ok(backend) = DenseBackend::new(config.clone())
            .expect("valid config")
            .with_isa(isa)
        {
            list.push(Subject {
                name: format!("dense {isa:?}"),
                family: Family::Dense,
                backend: Box::new(backend),
            });
        }
    }
    list
}

/// The oracles, indexed by [`Family`]: the reference on `config`, and on
/// a window covering all `n` tokens.
fn oracles(config: &HeadConfig, n: usize) -> [ReferenceBackend; 2] {
    let covering = HeadConfig {
        window: n,
        ..config.clone()
    };
    [config.clone(), covering].map(|c| ReferenceBackend::new(c).expect("valid config"))
}

/// `got` is non-finite exactly where `want` is; finite elements agree.
fn same_propagation(got: &[f32], want: &[f32], dim: usize) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("length {} vs {}", got.len(), want.len()));
    }
    for (e, (g, w)) in got.iter().zip(want).enumerate() {
        let agree = if w.is_finite() {
            (g - w).abs() <= EXACT
        } else {
            !g.is_finite()
        };
        if !agree {
            return Err(format!(
                "row {} element {}: got {g}, reference {w}",
                e / dim,
                e % dim
            ));
        }
    }
    Ok(())
}

fn prefill_case(
    config: &HeadConfig,
    n: usize,
    seed: u64,
    injections: &[Injection],
) -> Result<(), String> {
    let x = inputs(config, n, seed, injections);
    let wants = oracles(config, n).map(|oracle| {
        oracle
            .forward(x.q.view(), x.k.view(), x.v.view())
            .expect("valid inputs")
    });
    for subject in subjects(config) {
        let want = &wants[subject.family as usize];
        let got = subject
            .backend
            .forward(x.q.view(), x.k.view(), x.v.view())
            .expect("valid inputs");
        same_propagation(got.as_slice(), want.as_slice(), config.head_dim)
            .map_err(|e| format!("{} prefill: {e}", subject.name))?;
    }
    Ok(())
}

/// Every output of streaming `x` through `backend` one token at a time.
fn stream(backend: &dyn AttentionBackend, config: &HeadConfig, x: &Inputs) -> Vec<f32> {
    let n = x.q.seq();
    let mut cache = KvCache::new(n, CacheLayout::of(config)).expect("cache");
    let mut all = Vec::with_capacity(n * config.q_heads * config.head_dim);
    let mut out = vec![0.0; config.q_heads * config.head_dim];
    for i in 0..n {
        backend
            .step_into(
                token(&x.q, i).view(),
                token(&x.k, i).view(),
                token(&x.v, i).view(),
                &mut cache,
                &mut out,
            )
            .expect("step");
        all.extend_from_slice(&out);
    }
    all
}

fn step_case(
    config: &HeadConfig,
    n: usize,
    seed: u64,
    injections: &[Injection],
) -> Result<(), String> {
    let x = inputs(config, n, seed, injections);
    let wants = oracles(config, n).map(|oracle| stream(&oracle, config, &x));
    for subject in subjects(config) {
        let want = &wants[subject.family as usize];
        let got = stream(subject.backend.as_ref(), config, &x);
        same_propagation(&got, want, config.head_dim)
            .map_err(|e| format!("{} step ({:?}): {e}", subject.name, config.cache_dtype))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn prefill_propagates_exactly_like_the_reference(
        config in arb_config(None),
        n in 1usize..80,
        seed in any::<u64>(),
        injections in proptest::collection::vec(arb_injection(), 1..4),
    ) {
        let n = if config.window > 12 { n + config.window } else { n };
        prefill_case(&config, n, seed, &injections).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn step_propagates_exactly_like_the_reference(
        config in arb_config(Some(true)),
        f16 in any::<bool>(),
        n in 1usize..80,
        seed in any::<u64>(),
        injections in proptest::collection::vec(arb_injection(), 1..4),
    ) {
        let config = HeadConfig {
            cache_dtype: if f16 { CacheDtype::F16 } else { CacheDtype::F32 },
            ..config
        };
        let n = if config.window > 12 { n + config.window } else { n };
        step_case(&config, n, seed, &injections).map_err(TestCaseError::fail)?;
    }
}

/// Which copies the properties above ran on this machine (printed with
/// `--nocapture`, so the numbers quoted in notes are measured). At least the
/// portable copies of both backends always run.
#[test]
fn instruction_sets_under_test() {
    let config = HeadConfig::default_aether();
    let names: Vec<String> = subjects(&config).into_iter().map(|s| s.name).collect();
    println!(
        "non-finite properties: {CASES} cases each (prefill, step) on {}",
        names.join(", ")
    );
    assert!(names.contains(&"sparse Portable".to_string()));
    assert!(names.contains(&"dense Portable".to_string()));
}
