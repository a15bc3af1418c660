//! The prefill benchmark: our sparse and dense backends against the
//! published `ruvllm_sparse_attention` 0.1.1 kernels, same inputs, same run.
//!
//! Why these shapes: shape A is the AETHER head (4 query heads, dim 32,
//! window 32, block 16) as MHA and as MQA; shape B is ruvllm's own default
//! pattern (window 128, block 64) at 8 heads of dim 64. Both sides get the
//! same window, block size, global token 0, log-stride and landmarks. The
//! two crates read those settings differently (ruvllm's landmark set is its
//! own), so each side's GFLOP/s uses its own edge count and both counts are
//! reported; the headline ratio is plain wall-clock time.

use aether_dense::DenseBackend;
use aether_domain::{AttentionBackend, HeadConfig, Tensor};
use aether_sparse::SparseBackend;
use ruvllm_sparse_attention::{
    AttentionBackend as _, SparseAttentionConfig, SubquadraticSparseAttention, Tensor3,
    dense_attention,
};

use crate::alloc_counter;
use crate::inputs::random;
use crate::peak::{self, Peak};
use crate::timing::{Repetitions, median_ms};

/// One benchmarked head shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Name in tables and JSON (`A-mha`, `A-mqa`, `B`).
    pub(crate) name: &'static str,
    /// Query heads.
    pub(crate) q_heads: usize,
    /// Key/value heads.
    pub(crate) kv_heads: usize,
    /// Values per head.
    pub(crate) head_dim: usize,
    /// Local window W.
    pub(crate) window: usize,
    /// Landmark block size B.
    pub(crate) block_size: usize,
    /// Sequence lengths to run.
    pub(crate) lengths: &'static [usize],
}

/// The shapes of the brief: A as MHA and MQA, and B.
pub(crate) const SHAPES: [Shape; 3] = [
    Shape {
        name: "A-mha",
        q_heads: 4,
        kv_heads: 4,
        head_dim: 32,
        window: 32,
        block_size: 16,
        lengths: &[256, 1024, 4096, 8192],
    },
    Shape {
        name: "A-mqa",
        q_heads: 4,
        kv_heads: 1,
        head_dim: 32,
        window: 32,
        block_size: 16,
        lengths: &[256, 1024, 4096, 8192],
    },
    Shape {
        name: "B",
        q_heads: 8,
        kv_heads: 8,
        head_dim: 64,
        window: 128,
        block_size: 64,
        lengths: &[1024, 4096],
    },
];

impl Shape {
    /// Our head config (causal, global token 0, log-stride, landmarks).
    pub(crate) fn config(&self) -> HeadConfig {
        HeadConfig {
            q_heads: self.q_heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            window: self.window,
            block_size: self.block_size,
            causal: true,
            global_tokens: vec![0],
            log_stride: true,
            landmarks: true,
            ..HeadConfig::default_aether()
        }
    }

    /// ruvllm's config with the same settings.
    fn ruvllm_config(&self) -> SparseAttentionConfig {
        SparseAttentionConfig {
            window: self.window,
            block_size: self.block_size,
            global_tokens: vec![0],
            causal: true,
            use_log_stride: true,
            use_landmarks: true,
            sort_candidates: false,
        }
    }
}

/// A benchmarked implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    /// `aether_sparse::SparseBackend::forward`.
    Sparse,
    /// `aether_dense::DenseBackend::forward`.
    Dense,
    /// ruvllm `SubquadraticSparseAttention::forward` (MHA) / `forward_gqa`.
    Ruvllm,
    /// ruvllm `dense_attention` (K/V repeated per query head for MQA: it
    /// has no GQA form).
    RuvllmDense,
}

impl Impl {
    /// Every implementation, in table order.
    pub(crate) const ALL: [Self; 4] = [Self::Sparse, Self::Dense, Self::Ruvllm, Self::RuvllmDense];

    /// Name in tables and JSON.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Sparse => "sparse",
            Self::Dense => "dense",
            Self::Ruvllm => "ruvllm",
            Self::RuvllmDense => "ruvllm-dense",
        }
    }

    const fn is_dense(self) -> bool {
        matches!(self, Self::Dense | Self::RuvllmDense)
    }
}

/// One timed (shape, N, implementation).
#[derive(Debug, Clone)]
pub(crate) struct Measurement {
    /// Shape name.
    pub(crate) shape: &'static str,
    /// Sequence length.
    pub(crate) n: usize,
    /// Implementation.
    pub(crate) imp: Impl,
    /// Median wall-clock milliseconds.
    pub(crate) median_ms: f64,
    /// Query–candidate pairs of the whole call (all query heads), as this
    /// implementation defines its pattern.
    pub(crate) edges: u64,
    /// Values per head (for the flop count).
    pub(crate) head_dim: usize,
}

impl Measurement {
    /// `edges * 4 * head_dim` flops (a multiply-add for the score and one
    /// for the value, per dimension) per second, in GFLOP/s.
    pub(crate) fn gflops(&self) -> f64 {
        self.edges as f64 * 4.0 * self.head_dim as f64 / (self.median_ms * 1e6)
    }

    /// Nanoseconds per edge.
    pub(crate) fn ns_per_edge(&self) -> f64 {
        self.median_ms * 1e6 / self.edges as f64
    }
}

/// Peak heap of our sparse prefill beyond its output.
#[derive(Debug, Clone)]
pub(crate) struct Memory {
    /// Shape name.
    pub(crate) shape: &'static str,
    /// Sequence length.
    pub(crate) n: usize,
    /// Peak bytes allocated during the call minus the output tensor.
    pub(crate) extra_bytes: usize,
    /// Bytes of q + k + v.
    pub(crate) qkv_bytes: usize,
}

/// Both kernels' edge counts at one (shape, N), per head.
#[derive(Debug, Clone)]
pub(crate) struct EdgeCounts {
    /// Shape name.
    pub(crate) shape: &'static str,
    /// Sequence length.
    pub(crate) n: usize,
    /// Ours: `SparsePattern::edge_count(n)` (= the kernel's own count).
    pub(crate) ours: u64,
    /// ruvllm's `estimate_sparse_edges(n)`.
    pub(crate) theirs: u64,
}

/// A numerical cross-check between implementations that must agree.
#[derive(Debug, Clone)]
pub(crate) struct Agreement {
    /// Shape name.
    pub(crate) shape: &'static str,
    /// Sequence length.
    pub(crate) n: usize,
    /// Max-abs difference of our dense and ruvllm's dense outputs.
    pub(crate) dense_max_abs: f32,
}

/// Everything one run produces.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// Timings.
    pub(crate) measurements: Vec<Measurement>,
    /// Peak heap of our sparse prefill.
    pub(crate) memory: Vec<Memory>,
    /// Edge counts of both sparse kernels.
    pub(crate) edges: Vec<EdgeCounts>,
    /// Cross-checks of the dense outputs.
    pub(crate) agreement: Vec<Agreement>,
    /// What was skipped or changed, and why.
    pub(crate) notes: Vec<String>,
    /// This core's measured multiply-add peak, the ceiling of GFLOP/s.
    pub(crate) peak: Option<Peak>,
}

/// How much to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// `--quick`: fewer repetitions, slow dense baselines skipped at 8192.
    pub(crate) quick: bool,
}

impl Plan {
    /// Repetitions for `imp` at length `n`, or `None` to skip it.
    fn repetitions(self, imp: Impl, n: usize) -> Option<Repetitions> {
        if !self.quick {
            return Some(Repetitions {
                warm_up: 1,
                measured: 5,
            });
        }
        match (imp.is_dense(), n) {
            (true, n) if n >= 8192 => None,
            // Seconds per run: the first run is warm enough.
            (true, n) if n >= 4096 => Some(Repetitions {
                warm_up: 0,
                measured: 1,
            }),
            _ => Some(Repetitions {
                warm_up: 1,
                measured: 5,
            }),
        }
    }
}

/// The inputs of one (shape, N) in both crates' tensor types.
struct Inputs {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// ruvllm tensors; for MQA/GQA `k`/`v` keep `kv_heads`.
    rq: Tensor3,
    rk: Tensor3,
    rv: Tensor3,
}

impl Inputs {
    fn new(shape: &Shape, n: usize) -> Self {
        let d = shape.head_dim;
        let q = random(1, n * shape.q_heads * d);
        let k = random(2, n * shape.kv_heads * d);
        let v = random(3, n * shape.kv_heads * d);
        let tensor = |data: &[f32], heads| Tensor::new(data.to_vec(), n, heads, d).expect("shape");
        let tensor3 =
            |data: &[f32], heads| Tensor3::from_vec(data.to_vec(), n, heads, d).expect("shape");
        Self {
            q: tensor(&q, shape.q_heads),
            k: tensor(&k, shape.kv_heads),
            v: tensor(&v, shape.kv_heads),
            rq: tensor3(&q, shape.q_heads),
            rk: tensor3(&k, shape.kv_heads),
            rv: tensor3(&v, shape.kv_heads),
        }
    }

    /// `t` with every KV head repeated for its query heads, so ruvllm's
    /// MHA-only `dense_attention` computes the GQA result.
    fn repeat_heads(t: &Tensor3, q_heads: usize) -> Tensor3 {
        if t.heads == q_heads {
            return t.clone();
        }
        let group = q_heads / t.heads;
        let mut out = Tensor3::zeros(t.seq, q_heads, t.dim);
        for i in 0..t.seq {
            for h in 0..q_heads {
                out.row_mut(i, h).copy_from_slice(t.row(i, h / group));
            }
        }
        out
    }
}

/// Runs every shape, length and implementation of `plan`, printing progress
/// to stderr.
pub(crate) fn run(plan: Plan) -> Results {
    let mut results = Results {
        peak: peak::measure(),
        ..Results::default()
    };
    if plan.quick {
        results.notes.push(
            "--quick: sparse kernels 5 measured runs after 1 warm-up; dense baselines \
             (ours and ruvllm's) run once at N = 4096 and are skipped at N = 8192"
                .to_string(),
        );
    }
    for shape in &SHAPES {
        for &n in shape.lengths {
            run_one(plan, shape, n, &mut results);
        }
    }
    results
}

fn run_one(plan: Plan, shape: &Shape, n: usize, results: &mut Results) {
    let inputs = Inputs::new(shape, n);
    let config = shape.config();
    let sparse = SparseBackend::new(config.clone()).expect("valid config");
    let dense = DenseBackend::new(config).expect("valid config");
    let ruvllm = SubquadraticSparseAttention::new(shape.ruvllm_config()).expect("valid config");
    let heads = shape.q_heads as u64;
    let ours_per_head = sparse.edge_count(n);
    let theirs_per_head = ruvllm.estimate_sparse_edges(n) as u64;
    let dense_per_head = (n as u64) * (n as u64 + 1) / 2;
    results.edges.push(EdgeCounts {
        shape: shape.name,
        n,
        ours: ours_per_head,
        theirs: theirs_per_head,
    });

    let (_, peak) = alloc_counter::peak_during(|| {
        sparse
            .forward(inputs.q.view(), inputs.k.view(), inputs.v.view())
            .expect("forward")
    });
    let output_bytes = inputs.q.as_slice().len() * 4;
    let qkv_bytes = (inputs.q.as_slice().len() + 2 * inputs.k.as_slice().len()) * 4;
    results.memory.push(Memory {
        shape: shape.name,
        n,
        extra_bytes: peak.saturating_sub(output_bytes),
        qkv_bytes,
    });

    let mut dense_out: Option<Vec<f32>> = None;
    let mut ruvllm_dense_out: Option<Vec<f32>> = None;
    for imp in Impl::ALL {
        let Some(reps) = plan.repetitions(imp, n) else {
            continue;
        };
        eprint!("prefill {:>5} N {:>5} {:<12} ", shape.name, n, imp.name());
        let (median_ms, edges) = match imp {
            Impl::Sparse => {
                let (ms, _) = median_ms(reps, || {
                    sparse
                        .forward(inputs.q.view(), inputs.k.view(), inputs.v.view())
                        .expect("forward")
                });
                (ms, ours_per_head * heads)
            }
            Impl::Dense => {
                let (ms, out) = median_ms(reps, || {
                    dense
                        .forward(inputs.q.view(), inputs.k.view(), inputs.v.view())
                        .expect("forward")
                });
                dense_out = Some(out.into_vec());
                (ms, dense_per_head * heads)
            }
            Impl::Ruvllm => {
                let mha = shape.q_heads == shape.kv_heads;
                let (ms, _) = median_ms(reps, || {
                    if mha {
                        ruvllm.forward(&inputs.rq, &inputs.rk, &inputs.rv)
                    } else {
                        ruvllm.forward_gqa(&inputs.rq, &inputs.rk, &inputs.rv)
                    }
                    .expect("forward")
                });
                (ms, theirs_per_head * heads)
            }
            Impl::RuvllmDense => {
                let k = Inputs::repeat_heads(&inputs.rk, shape.q_heads);
                let v = Inputs::repeat_heads(&inputs.rv, shape.q_heads);
                let (ms, out) = median_ms(reps, || {
                    dense_attention(&inputs.rq, &k, &v, true).expect("dense")
                });
                ruvllm_dense_out = Some(out.data);
                (ms, dense_per_head * heads)
            }
        };
        eprintln!("{median_ms:10.3} ms");
        results.measurements.push(Measurement {
            shape: shape.name,
            n,
            imp,
            median_ms,
            edges,
            head_dim: shape.head_dim,
        });
    }
    if let (Some(ours), Some(theirs)) = (dense_out, ruvllm_dense_out) {
        let dense_max_abs = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        results.agreement.push(Agreement {
            shape: shape.name,
            n,
            dense_max_abs,
        });
    }
}
