//! The streaming-decode kernel: one query token against every cached
//! position, with the same tiled online softmax as prefill.
//!
//! Why it exists separately from [`crate::prefill`]: a step has only the
//! query heads of one token, which may be a single row (MHA), so it cannot
//! fill a vector of rows; and the keys live in the caller's
//! [`KvCache`], which cannot be repacked without allocating. Here each
//! group's query heads (up to eight at a time) walk the cache in tiles of
//! [`TILE`] keys: scores by dot product into a stack array, one running-max
//! update and one rescale per tile, then the weighted values added straight
//! into the caller's output buffer. Cost O(T) per step, no allocation.
//!
//! **Invariant:** the same tile boundaries as prefill (multiples of
//! [`TILE`] from position 0), so a step's output equals prefill's at the
//! same position to float rounding.

use aether_domain::KvCache;
use aether_domain::numerics::{self, LANES};

use crate::Head;
use crate::lanes::{Lanes, Vector};
use crate::prefill::TILE;

/// Lane groups per tile.
const KEY_CHUNKS: usize = TILE / LANES;

/// The scores (later the weights) of one row over one tile, lane-grouped.
type TileRow = [Lanes; KEY_CHUNKS];

/// Running max and running sum of the rows of one block.
struct OnlineSoftmax<const R: usize> {
    max: [f32; R],
    sum: [f32; R],
}

impl<const R: usize> OnlineSoftmax<R> {
    const fn new() -> Self {
        Self {
            max: [f32::NEG_INFINITY; R],
            sum: [0.0; R],
        }
    }

    /// Replaces a tile of scaled, masked scores (masked = `-inf`) by their
    /// softmax weights relative to the updated running max, and returns per
    /// row the factor that rescales everything accumulated before.
    #[inline(always)]
    fn absorb(&mut self, scores: &mut [TileRow; R]) -> [f32; R] {
        let mut alpha = [1.0f32; R];
        for r in 0..R {
            let row = &mut scores[r];
            let mut lane_max = Lanes::NEG_INFINITY;
            for chunk in row.iter() {
                lane_max = lane_max.max(*chunk);
            }
            let tile_max = lane_max.horizontal_max();
            let new_max = if tile_max > self.max[r] {
                tile_max
            } else {
                self.max[r]
            };
            if new_max == f32::NEG_INFINITY {
                // Every key so far is masked for this row (cannot happen for
                // a valid limit, but keeps the arithmetic free of inf - inf).
                *row = [Lanes::ZERO; KEY_CHUNKS];
                continue;
            }
            alpha[r] = numerics::exp(self.max[r] - new_max);
            let mut lane_sum = Lanes::ZERO;
            for chunk in row.iter_mut() {
                *chunk = chunk.exp_minus(new_max);
                lane_sum = lane_sum.add(*chunk);
            }
            self.sum[r] = self.sum[r] * alpha[r] + lane_sum.horizontal_sum();
            self.max[r] = new_max;
        }
        alpha
    }

    /// `1 / sum` per row: the final normalisation.
    fn inverse_sums(&self) -> [f32; R] {
        self.sum.map(|s| 1.0 / s)
    }
}

/// Streaming decode of `R` query heads sharing KV head `kv_head` over every
/// cached position; `queries` are the raw query rows, `out` their `R *
/// dim` output values (used as the accumulator, so nothing is allocated).
#[inline(always)]
fn step_rows<const R: usize>(
    head: &Head,
    cache: &KvCache,
    kv_head: usize,
    queries: [&[f32]; R],
    out: &mut [f32],
) {
    let dim = head.dim;
    out.fill(0.0);
    let mut softmax = OnlineSoftmax::<R>::new();
    // Slots 0..retained hold every retained token (in position order when
    // nothing was evicted, so tiles match prefill's).
    let len = cache.retained();
    let mut first_key = 0;
    while first_key < len {
        let count = TILE.min(len - first_key);
        let mut scores = [[Lanes::NEG_INFINITY; KEY_CHUNKS]; R];
        for j in 0..count {
            let key = cache.key(first_key + j, kv_head);
            for r in 0..R {
                scores[r][j / LANES].0[j % LANES] = key.dot(queries[r]) * head.scale;
            }
        }
        let alpha = softmax.absorb(&mut scores);
        for (r, row) in out.chunks_exact_mut(dim).enumerate() {
            numerics::scale(row, alpha[r]);
        }
        for j in 0..count {
            let value = cache.value(first_key + j, kv_head);
            for (r, row) in out.chunks_exact_mut(dim).enumerate() {
                value.add_scaled_to(row, scores[r][j / LANES].0[j % LANES]);
            }
        }
        first_key += count;
    }
    let inverse = softmax.inverse_sums();
    for (r, row) in out.chunks_exact_mut(dim).enumerate() {
        numerics::scale(row, inverse[r]);
    }
}

/// Streaming decode of query heads `first..first + R` (all in KV head
/// `kv_head`'s group).
#[inline(always)]
fn step_chunk<const R: usize>(
    head: &Head,
    q: &[f32],
    cache: &KvCache,
    kv_head: usize,
    first: usize,
    out: &mut [f32],
) {
    let dim = head.dim;
    let queries: [&[f32]; R] =
        core::array::from_fn(|r| &q[(first + r) * dim..(first + r + 1) * dim]);
    step_rows::<R>(
        head,
        cache,
        kv_head,
        queries,
        &mut out[first * dim..(first + R) * dim],
    );
}

/// Streaming decode of the query token `q` (`q_heads * dim` values) over
/// every cached position, into `out` (same length). Each group's query
/// heads are taken up to eight at a time, so each cached key and value is
/// read once per group for groups of up to eight heads.
#[inline(always)]
pub(crate) fn step(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
    let kv_heads = cache.layout().kv_heads;
    for kv_head in 0..kv_heads {
        let mut first = kv_head * head.group;
        let end = first + head.group;
        while first < end {
            let taken = match end - first {
                8.. => {
                    step_chunk::<8>(head, q, cache, kv_head, first, out);
                    8
                }
                4..=7 => {
                    step_chunk::<4>(head, q, cache, kv_head, first, out);
                    4
                }
                2 | 3 => {
                    step_chunk::<2>(head, q, cache, kv_head, first, out);
                    2
                }
                _ => {
                    step_chunk::<1>(head, q, cache, kv_head, first, out);
                    1
                }
            };
            first += taken;
        }
    }
}

/// Heavy-hitter bookkeeping: adds to each retained token's attention mass
/// its softmax weight, summed over the query heads of `q`. Three passes
/// (max, sum, record) per head, so a step with heavy-hitter eviction costs
/// about three times one without; only called when the cache tracks mass.
pub(crate) fn record_attention(head: &Head, q: &[f32], cache: &mut KvCache) {
    let dim = head.dim;
    let len = cache.retained();
    for (h, query) in q.chunks_exact(dim).enumerate() {
        let kv_head = h / head.group;
        let score = |cache: &KvCache, slot: usize| cache.key(slot, kv_head).dot(query) * head.scale;
        let max = (0..len)
            .map(|s| score(cache, s))
            .fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = (0..len).map(|s| numerics::exp(score(cache, s) - max)).sum();
        for slot in 0..len {
            let weight = numerics::exp(score(cache, slot) - max) / sum;
            cache.record_attention(slot, weight);
        }
    }
}
