//! Streaming decode: attention of the newest position over the cache.
//!
//! Why it is separate from prefill: one query at a time has no tile to
//! share keys across positions, and it must not allocate (it runs on the
//! firmware's decode path). It walks the same candidate set as prefill
//! (the window of the last position, then [`plan::for_each_extra`]; causal
//! candidates depend only on the position, so this equals prefill), with
//! landmark means taken from the cache's running block sums: a landmark's
//! score is `q · sum / len` and its value `sum / len`, so no mean is ever
//! materialised. Candidates stream through a fixed-size batch on the stack
//! with an online softmax, so the work is `O(W + log T)` and the stack use
//! bounded whatever the window.
//!
//! **Invariant:** the query heads of a KV group are processed together
//! (up to [`HEAD_BLOCK`] at a time), so each cached row is read once per
//! block of heads.

use aether_domain::{KvCache, SparsePattern, numerics};

use crate::plan::{self, Extra};

/// Query heads scored together against each cached row.
const HEAD_BLOCK: usize = 8;
/// Candidates scored before the online softmax folds them in.
const BATCH: usize = 32;
/// Running maximum before any candidate (finite: see `prefill::NO_SCORE`).
const NO_SCORE: f32 = -1.0e30;

/// The head geometry a step needs.
pub(crate) struct StepHead<'a> {
    /// The candidate pattern (causal).
    pub(crate) pattern: &'a SparsePattern,
    /// Query heads.
    pub(crate) q_heads: usize,
    /// Key/value heads.
    pub(crate) kv_heads: usize,
    /// Values per head.
    pub(crate) dim: usize,
}

/// Online-softmax state of one block of query heads.
struct Block<'a> {
    head: &'a StepHead<'a>,
    cache: &'a KvCache,
    kv_head: usize,
    /// Scaled query rows of the block, `heads * dim` values.
    q: &'a [f32],
    /// Output rows of the block; accumulators until the final division.
    out: &'a mut [f32],
    heads: usize,
    scale: f32,
    max: [f32; HEAD_BLOCK],
    sum: [f32; HEAD_BLOCK],
    batch: [Extra; BATCH],
    len: usize,
    weights: [[f32; BATCH]; HEAD_BLOCK],
}

/// Key or value row of a candidate and the factor that turns it into the
/// candidate's vector (1 for a token, `1 / len` for a block sum).
fn source(cache: &KvCache, kv_head: usize, candidate: Extra, keys: bool) -> (&[f32], f32) {
    match candidate {
        Extra::Token(j) if keys => (cache.key(j, kv_head), 1.0),
        Extra::Token(j) => (cache.value(j, kv_head), 1.0),
        Extra::Landmark(b) => {
            let inverse = 1.0 / cache.block_len(b) as f32;
            if keys {
                (cache.block_key_sum(b, kv_head), inverse)
            } else {
                (cache.block_value_sum(b, kv_head), inverse)
            }
        }
    }
}

impl Block<'_> {
    fn push(&mut self, candidate: Extra) {
        self.batch[self.len] = candidate;
        self.len += 1;
        if self.len == BATCH {
            self.flush();
        }
    }

    /// Folds the batched candidates into the running softmax.
    fn flush(&mut self) {
        let dim = self.head.dim;
        let len = self.len;
        for c in 0..len {
            let (key, factor) = source(self.cache, self.kv_head, self.batch[c], true);
            for h in 0..self.heads {
                let q = &self.q[h * dim..][..dim];
                self.weights[h][c] = numerics::dot(q, key) * (self.scale * factor);
            }
        }
        for h in 0..self.heads {
            let scores = &mut self.weights[h][..len];
            let max = scores.iter().copied().fold(self.max[h], f32::max);
            let correction = numerics::exp(self.max[h] - max);
            self.max[h] = max;
            let mut total = 0.0;
            for x in scores.iter_mut() {
                *x = numerics::exp(*x - max);
                total += *x;
            }
            self.sum[h] = self.sum[h] * correction + total;
            numerics::scale(&mut self.out[h * dim..][..dim], correction);
        }
        for c in 0..len {
            let candidate = self.batch[c];
            let (value, factor) = source(self.cache, self.kv_head, candidate, false);
            for h in 0..self.heads {
                let weight = self.weights[h][c] * factor;
                numerics::axpy(&mut self.out[h * dim..][..dim], weight, value);
            }
        }
        self.len = 0;
    }
}

/// Writes the output of the newest cached position (`cache.len() - 1`,
/// whose k/v were just appended) for every query head; `q` and `out` hold
/// `q_heads * dim` values.
pub(crate) fn attend(head: &StepHead<'_>, q: &[f32], cache: &KvCache, out: &mut [f32]) {
    let Some(i) = cache.len().checked_sub(1) else {
        return;
    };
    let n = i + 1;
    let dim = head.dim;
    let group = head.q_heads / head.kv_heads;
    let scale = 1.0 / libm::sqrtf(dim as f32);
    let (lo, hi) = head.pattern.window_bounds(i, n);
    for kv_head in 0..head.kv_heads {
        let mut first = kv_head * group;
        let end = first + group;
        while first < end {
            let heads = HEAD_BLOCK.min(end - first);
            let rows = first * dim..(first + heads) * dim;
            let block_out = &mut out[rows.clone()];
            block_out.fill(0.0);
            let mut block = Block {
                head,
                cache,
                kv_head,
                q: &q[rows],
                out: block_out,
                heads,
                scale,
                max: [NO_SCORE; HEAD_BLOCK],
                sum: [0.0; HEAD_BLOCK],
                batch: [Extra::Token(0); BATCH],
                len: 0,
                weights: [[0.0; BATCH]; HEAD_BLOCK],
            };
            for j in lo..=hi {
                block.push(Extra::Token(j));
            }
            plan::for_each_extra(head.pattern, i, n, |extra| block.push(extra));
            block.flush();
            for h in 0..heads {
                let inverse = 1.0 / block.sum[h];
                numerics::scale(&mut block.out[h * dim..][..dim], inverse);
            }
            first += heads;
        }
    }
}
