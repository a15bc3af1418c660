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
//! The tiles only run when the cache holds no non-finite element; a query
//! head whose query is not finite, whose scores left the f32 range, or
//! whose result came out non-finite is recomputed by [`exact::attend`]
//! (allocation-free too), so a step follows the same non-finite policy as
//! prefill and the reference.
//!
//! **Invariant:** the same tile boundaries as prefill (multiples of
//! [`TILE`] from position 0), so a step's output equals prefill's at the
//! same position to float rounding.

use aether_domain::KvCache;
use aether_domain::numerics::{self, LANES};

use crate::lanes::{Lanes, Vector};
use crate::prefill::TILE;
use crate::{Head, exact};

/// Lane groups per tile.
const KEY_CHUNKS: usize = TILE / LANES;

/// The scores (later the weights) of one row over one tile, lane-grouped.
type TileRow = [Lanes; KEY_CHUNKS];

/// Running max, running sum and smallest score of the rows of one block.
struct OnlineSoftmax<const R: usize> {
    max: [f32; R],
    sum: [f32; R],
    /// Why: a score that overflowed to `-inf` silently gets weight 0 here,
    /// while its f64 value may matter; seeing it sends the row to the exact
    /// path. (`+inf` and NaN scores already make the result NaN.)
    low: [f32; R],
}

impl<const R: usize> OnlineSoftmax<R> {
    const fn new() -> Self {
        Self {
            max: [f32::NEG_INFINITY; R],
            sum: [0.0; R],
            low: [f32::INFINITY; R],
        }
    }

    /// Replaces a tile of scaled scores (the first `count` real, the rest
    /// masked = `-inf`) by their softmax weights relative to the updated
    /// running max, and returns per row the factor that rescales everything
    /// accumulated before.
    #[inline(always)]
    fn absorb(&mut self, scores: &mut [TileRow; R], count: usize) -> [f32; R] {
        let mut alpha = [1.0f32; R];
        for r in 0..R {
            let row = &mut scores[r];
            let mut lane_max = Lanes::NEG_INFINITY;
            let mut lane_min = Lanes([f32::INFINITY; LANES]);
            for chunk in row.iter() {
                lane_max = lane_max.max(*chunk);
                lane_min = lane_min.min(*chunk);
            }
            let tile_max = lane_max.horizontal_max();
            let tile_min = if count == TILE {
                lane_min.horizontal_min()
            } else {
                // The last tile: only its real scores count.
                row.iter()
                    .flat_map(|chunk| chunk.0)
                    .take(count)
                    .fold(f32::INFINITY, |low, s| if s < low { s } else { low })
            };
            if tile_min < self.low[r] {
                self.low[r] = tile_min;
            }
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

    /// Bit `r` set: some score of row `r` left the finite f32 range.
    fn out_of_range(&self) -> u32 {
        (0..R).fold(0, |bits, r| {
            let in_range = self.low[r] > f32::NEG_INFINITY && self.max[r] < f32::INFINITY;
            bits | (u32::from(!in_range) << r)
        })
    }
}

/// Streaming decode of `R` query heads sharing KV head `kv_head` over every
/// cached position; `queries` are the raw query rows, `out` their `R *
/// dim` output values (used as the accumulator, so nothing is allocated).
/// Returns a bit per row whose scores left the f32 range.
#[inline(always)]
fn step_rows<const R: usize>(
    head: &Head,
    cache: &KvCache,
    kv_head: usize,
    queries: [&[f32]; R],
    out: &mut [f32],
) -> u32 {
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
        let alpha = softmax.absorb(&mut scores, count);
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
    softmax.out_of_range()
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
) -> u32 {
    let dim = head.dim;
    let queries: [&[f32]; R] =
        core::array::from_fn(|r| &q[(first + r) * dim..(first + r + 1) * dim]);
    step_rows::<R>(
        head,
        cache,
        kv_head,
        queries,
        &mut out[first * dim..(first + R) * dim],
    )
}

/// Which KV heads' retained keys and values are all finite, as a bit per
/// head (all set for a clean cache). Why per head: a bad element of one
/// head is a candidate of that head's query heads only, and the others must
/// come out exactly as if it were not there, tiles and all. The per-head
/// scan costs about one step, and only runs when the cache is not clean.
fn finite_kv_heads(cache: &KvCache) -> u64 {
    // O(1): the cache keeps the count of retained non-finite tokens exact.
    if cache.non_finite_rows() == 0 {
        return u64::MAX;
    }
    let retained = cache.retained();
    (0..cache.layout().kv_heads.min(64)).fold(0, |bits, kv_head| {
        let finite = (0..retained).all(|slot| {
            exact::row_is_finite(cache.key(slot, kv_head))
                && exact::row_is_finite(cache.value(slot, kv_head))
        });
        bits | (u64::from(finite) << kv_head)
    })
}

/// Whether bit `kv_head` of [`finite_kv_heads`] is set (heads past 64 count
/// as not finite: they take the exact path, which is always right).
fn is_finite_head(bits: u64, kv_head: usize) -> bool {
    kv_head < 64 && bits & (1 << kv_head) != 0
}

/// Streaming decode of the query token `q` (`q_heads * dim` values) over
/// every cached position, into `out` (same length). Each group's query
/// heads are taken up to eight at a time, so each cached key and value is
/// read once per group for groups of up to eight heads. Rows the tiles
/// cannot be trusted with are recomputed exactly (module docs).
#[inline(always)]
pub(crate) fn step(head: &Head, q: &[f32], cache: &KvCache, out: &mut [f32]) {
    let dim = head.dim;
    let finite_heads = finite_kv_heads(cache);
    let kv_heads = cache.layout().kv_heads;
    for kv_head in 0..kv_heads {
        let finite_head = is_finite_head(finite_heads, kv_head);
        let mut first = kv_head * head.group;
        let end = first + head.group;
        while first < end {
            // Bit r: row `first + r` scored out of the f32 range (only
            // meaningful when the tiles ran; at most eight rows then).
            let (taken, out_of_range) = if !finite_head {
                (end - first, 0)
            } else {
                match end - first {
                    8.. => (8, step_chunk::<8>(head, q, cache, kv_head, first, out)),
                    4..=7 => (4, step_chunk::<4>(head, q, cache, kv_head, first, out)),
                    2 | 3 => (2, step_chunk::<2>(head, q, cache, kv_head, first, out)),
                    _ => (1, step_chunk::<1>(head, q, cache, kv_head, first, out)),
                }
            };
            for r in 0..taken {
                let h = first + r;
                let query = &q[h * dim..(h + 1) * dim];
                let row = &mut out[h * dim..(h + 1) * dim];
                let trusted = finite_head
                    && out_of_range & (1 << r) == 0
                    && exact::all_finite(query)
                    && exact::all_finite(row);
                if !trusted {
                    exact::attend(
                        query,
                        head.exact_scale,
                        cache.retained(),
                        |slot| cache.key(slot, kv_head),
                        |slot| cache.value(slot, kv_head),
                        row,
                    );
                }
            }
            first += taken;
        }
    }
}

/// Heavy-hitter bookkeeping: adds to each retained token's attention mass
/// its softmax weight, summed over the query heads of `q`. Three passes
/// (max, sum, record) per head, so a step with heavy-hitter eviction costs
/// about three times one without; only called when the cache tracks mass.
/// A head whose f32 weights cannot be trusted (same tests as [`step`])
/// records the exact f64 weights instead, so the masses, and with them
/// what gets evicted, follow the reference.
pub(crate) fn record_attention(head: &Head, q: &[f32], cache: &mut KvCache) {
    let dim = head.dim;
    let len = cache.retained();
    let finite_heads = finite_kv_heads(cache);
    for (h, query) in q.chunks_exact(dim).enumerate() {
        let kv_head = h / head.group;
        let score = |cache: &KvCache, slot: usize| cache.key(slot, kv_head).dot(query) * head.scale;
        let (low, max) = (0..len)
            .map(|s| score(cache, s))
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(low, max), s| {
                (low.min(s), max.max(s))
            });
        let sum: f32 = (0..len).map(|s| numerics::exp(score(cache, s) - max)).sum();
        // A NaN score (overflow) makes `sum` NaN; `low`/`max` catch ±inf.
        let trusted = is_finite_head(finite_heads, kv_head)
            && exact::all_finite(query)
            && low > f32::NEG_INFINITY
            && max < f32::INFINITY
            && sum.is_finite();
        if trusted {
            for slot in 0..len {
                let weight = numerics::exp(score(cache, slot) - max) / sum;
                cache.record_attention(slot, weight);
            }
            continue;
        }
        let exact_score = |cache: &KvCache, slot: usize| {
            exact::score(query, cache.key(slot, kv_head), head.exact_scale)
        };
        let max = (0..len)
            .map(|s| exact_score(cache, s))
            .fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = (0..len)
            .map(|s| libm::exp(exact_score(cache, s) - max))
            .sum();
        for slot in 0..len {
            let weight = libm::exp(exact_score(cache, slot) - max) / total;
            cache.record_attention(slot, weight as f32);
        }
    }
}
