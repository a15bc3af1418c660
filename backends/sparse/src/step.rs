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

use aether_domain::{KvCache, Row, SparsePattern, numerics};

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
    batch: [Resolved; BATCH],
    len: usize,
    weights: [[f32; BATCH]; HEAD_BLOCK],
}

/// A candidate found in the cache: a slot, or a retained landmark block.
#[derive(Clone, Copy)]
enum Resolved {
    Slot(usize),
    Landmark(usize),
}

/// Looks `candidate` up in the cache; `None` when it was evicted.
fn resolve(cache: &KvCache, candidate: Extra) -> Option<Resolved> {
    match candidate {
        Extra::Token(j) => cache.slot(j).map(Resolved::Slot),
        Extra::Landmark(b) => cache.landmark(b).map(|_| Resolved::Landmark(b)),
    }
}

/// Key or value row of a resolved candidate and the factor that turns it
/// into the candidate's vector (1 for a token, `1 / count` for a block sum).
fn source(
    cache: &KvCache,
    kv_head: usize,
    dim: usize,
    candidate: Resolved,
    keys: bool,
) -> (Row<'_>, f32) {
    match candidate {
        Resolved::Slot(slot) if keys => (cache.key(slot, kv_head), 1.0),
        Resolved::Slot(slot) => (cache.value(slot, kv_head), 1.0),
        Resolved::Landmark(b) => match cache.landmark(b) {
            Some(mark) => {
                let sum = if keys { mark.key_sum } else { mark.value_sum };
                let row = &sum[kv_head * dim..(kv_head + 1) * dim];
                (Row::F32(row), 1.0 / mark.count as f32)
            }
            // Resolved just before, with no append in between.
            None => (Row::F32(&[]), 0.0),
        },
    }
}

impl Block<'_> {
    fn push(&mut self, candidate: Extra) {
        let Some(candidate) = resolve(self.cache, candidate) else {
            return;
        };
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
            let (key, factor) = source(self.cache, self.kv_head, dim, self.batch[c], true);
            for h in 0..self.heads {
                let q = &self.q[h * dim..][..dim];
                self.weights[h][c] = key.dot(q) * (self.scale * factor);
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
            let (value, factor) = source(self.cache, self.kv_head, dim, candidate, false);
            for h in 0..self.heads {
                let weight = self.weights[h][c] * factor;
                value.add_scaled_to(&mut self.out[h * dim..][..dim], weight);
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
                batch: [Resolved::Slot(0); BATCH],
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

/// Calls `visit` for every candidate of position `i` (of `n`): the window
/// `lo..=hi`, then the extra tokens and landmarks.
fn for_each_candidate(
    pattern: &SparsePattern,
    i: usize,
    n: usize,
    (lo, hi): (usize, usize),
    mut visit: impl FnMut(Extra),
) {
    for j in lo..=hi {
        visit(Extra::Token(j));
    }
    plan::for_each_extra(pattern, i, n, visit);
}

/// Heavy-hitter bookkeeping: adds to each retained token candidate of the
/// newest position its softmax weight, summed over the query heads of `q`.
/// Recomputes the scores (max, sum, record: three walks of the
/// `O(W + log T)` candidates); only called when the cache tracks mass.
pub(crate) fn record_attention(head: &StepHead<'_>, q: &[f32], cache: &mut KvCache) {
    let Some(i) = cache.len().checked_sub(1) else {
        return;
    };
    let n = i + 1;
    let dim = head.dim;
    let group = head.q_heads / head.kv_heads;
    let scale = 1.0 / libm::sqrtf(dim as f32);
    let window = head.pattern.window_bounds(i, n);
    for (h, query) in q.chunks_exact(dim).enumerate() {
        let kv_head = h / group;
        // A retained candidate's score, with its slot when it is a token.
        let score = |cache: &KvCache, candidate: Extra| {
            let resolved = resolve(cache, candidate)?;
            let (key, factor) = source(cache, kv_head, dim, resolved, true);
            let slot = match resolved {
                Resolved::Slot(slot) => Some(slot),
                Resolved::Landmark(_) => None,
            };
            Some((key.dot(query) * scale * factor, slot))
        };
        let mut max = NO_SCORE;
        for_each_candidate(head.pattern, i, n, window, |c| {
            if let Some((s, _)) = score(cache, c) {
                max = max.max(s);
            }
        });
        let mut sum = 0.0f32;
        for_each_candidate(head.pattern, i, n, window, |c| {
            if let Some((s, _)) = score(cache, c) {
                sum += numerics::exp(s - max);
            }
        });
        for_each_candidate(head.pattern, i, n, window, |c| {
            if let Some((s, Some(slot))) = score(cache, c) {
                cache.record_attention(slot, numerics::exp(s - max) / sum);
            }
        });
    }
}
