//! The domain's pattern function against the pattern vectors.
//!
//! `data/vectors/pattern.json` was written by a second, independent program
//! from the definition in `docs/attention.md` (see `data/vectors/README.md`);
//! agreeing with it exactly is the evidence that `SparsePattern` reads the
//! definition the way a second person does.

use aether_domain::{BackendKind, HeadConfig, SparsePattern};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
    edge_counts: Vec<EdgeCount>,
}

#[derive(Deserialize)]
struct VectorConfig {
    window: usize,
    block_size: usize,
    causal: bool,
    global_tokens: Vec<usize>,
    log_stride: bool,
    landmarks: bool,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    n: usize,
    config: VectorConfig,
    queries: Vec<Query>,
    edge_count: u64,
}

#[derive(Deserialize)]
struct Query {
    i: usize,
    tokens: Vec<usize>,
    landmark_blocks: Vec<usize>,
}

#[derive(Deserialize)]
struct EdgeCount {
    shape: String,
    config: VectorConfig,
    n: usize,
    edge_count_per_head: u64,
}

fn pattern(c: &VectorConfig) -> SparsePattern {
    SparsePattern::new(&HeadConfig {
        backend: BackendKind::Reference,
        q_heads: 1,
        kv_heads: 1,
        head_dim: 1,
        window: c.window,
        block_size: c.block_size,
        causal: c.causal,
        global_tokens: c.global_tokens.clone(),
        log_stride: c.log_stride,
        landmarks: c.landmarks,
        ..HeadConfig::default_aether()
    })
    .expect("vector configs are valid")
}

fn vectors() -> Vectors {
    let text = include_str!("../data/vectors/pattern.json");
    serde_json::from_str(text).expect("pattern.json parses")
}

#[test]
fn candidate_sets_match_the_vectors() {
    let vectors = vectors();
    assert_eq!(vectors.cases.len(), 7, "every case of the file is checked");
    let mut queries = 0;
    for case in &vectors.cases {
        let p = pattern(&case.config);
        for q in &case.queries {
            let got = p.candidates(q.i, case.n);
            assert_eq!(got.tokens, q.tokens, "{} i={} tokens", case.name, q.i);
            assert_eq!(
                got.landmark_blocks, q.landmark_blocks,
                "{} i={} landmark blocks",
                case.name, q.i
            );
            assert_eq!(p.candidate_count(q.i, case.n), got.len());
            queries += 1;
        }
        assert_eq!(
            p.edge_count(case.n),
            case.edge_count,
            "{} edge count",
            case.name
        );
    }
    assert!(queries > 200, "only {queries} queries checked");
}

#[test]
fn shape_edge_counts_match_the_vectors() {
    let vectors = vectors();
    assert_eq!(vectors.edge_counts.len(), 6);
    for e in &vectors.edge_counts {
        assert_eq!(
            pattern(&e.config).edge_count(e.n),
            e.edge_count_per_head,
            "shape {} n {}",
            e.shape,
            e.n
        );
    }
}
