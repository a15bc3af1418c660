//! The prefill kernel: tiled online softmax (flash-attention style) with
//! query rows in the lanes of each vector.
//!
//! Why it exists: exact attention needs every score of a query row, but not
//! all at once. Keys are taken [`TILE`] at a time; a tile's scores live in
//! a small stack array, each row's running max is updated once per tile,
//! the earlier accumulator is rescaled once per tile, and the tile's
//! weighted values are added. No `N x N` score matrix ever exists: memory
//! is the output plus `O(N * head_dim)` of packed keys and values.
//!
//! Query rows that read the same KV head form a block and occupy the lanes
//! of every vector (eight with [`Lanes`](crate::lanes::Lanes), sixteen in
//! the AVX-512 copy): lane `r` of a score vector is row `r`'s score
//! against one key. Rows are ordered position-major, then by head
//! within the group, so for GQA/MQA a block holds the query heads sharing
//! one KV head (a whole group in one pass, for groups up to the lane
//! count), and for MHA consecutive positions. This layout makes every
//! loaded key and value serve a whole block of rows, and makes all the softmax bookkeeping (max, rescale
//! factor, sum) plain lane-wise vector operations with no horizontal
//! reductions; a tile's 32 exponentials are independent vector operations.
//!
//! Everything is `#[inline(always)]` straight-line code, generic over the
//! [`Vector`] width, so [`crate::dispatch`] can compile the same source for
//! the baseline target and again inside AVX2 / AVX-512 `#[target_feature]`
//! functions.
//!
//! Non-finite inputs never enter the tiles: packing replaces a token whose
//! key or value is not finite (or whose key is so large its squared norm
//! overflows) by zeros, and a query row that is not finite, or large enough
//! that a score might overflow f32, runs as zeros. Those rows, every row
//! that can see a replaced token, and any row whose fast result is not
//! finite are then recomputed by [`crate::exact`]. Why not just mask:
//! masked lanes of a shared tile still multiply their value by a zero
//! weight, and `0 * inf` is NaN, which is how a bad future token used to
//! leak into earlier rows of its tile.
//!
//! **Invariant:** a row's output is a convex combination of the values of
//! exactly the keys `0..=limit` of that row (causal: `limit = i`); masked
//! and padding keys get weight zero, and the tiles hold only finite values,
//! so a row's output depends on nothing outside its candidates.

use alloc::vec::Vec;

use aether_domain::{AttentionError, Row, Tensor, TensorView, numerics};

use crate::lanes::Vector;
use crate::{Head, exact};

/// Keys per tile. 32 keys amortise the per-tile max and rescale over 256
/// row-key pairs while a tile's scores (32 vectors, 1 KiB) stay in L1.
pub(crate) const TILE: usize = 32;

/// `$body` once for each listed index, as straight-line code.
///
/// Why not a `for` loop: LLVM's loop vectoriser may vectorise a short loop
/// over keys or dims *across* its iterations (gathers and interleaved
/// shuffles), which measured several times slower than the straight-line
/// code the SLP vectoriser turns into one vector operation per iteration.
/// Why not a closure: a closure with a large body (an 8-lane `exp`) may not
/// be inlined, and then runs without the target features of its caller.
macro_rules! unroll {
    ([$($index:literal)*] $i:ident => $body:expr) => {{
        $({
            let $i = $index;
            $body;
        })*
    }};
}

/// Keys whose scores one pass of [`tile_scores`] accumulates, and dims one
/// pass of [`accumulate`] accumulates: eight vector accumulators, which
/// fit the registers next to the operands on AVX2 (16) and AVX-512 (32).
const PASS: usize = 8;

/// Most query rows a block can hold (the widest vector's lanes).
const MAX_ROWS: usize = 16;

const _: () = assert!(TILE.is_multiple_of(PASS), "`unroll!` lists cover one pass");

/// Largest `|q|^2 |k|^2` (scaled query, any key of the head) the fast path
/// accepts: by Cauchy–Schwarz every partial sum of a score is then at most
/// `1e38` in magnitude, below `f32::MAX` (3.4e38) with room for rounding,
/// and `s - max` stays above `-2e38`. Rows beyond it take the exact path.
const SCORE_BOUND_SQUARED: f64 = 1e76;

/// What packing one KV head found out about its tokens.
#[derive(Debug, Clone, Copy)]
struct Packed {
    /// The first token whose key or value had to be replaced by zeros
    /// (`usize::MAX` when none was): every row that sees it is exact.
    first_replaced: usize,
    /// Largest squared norm of a kept key (for the score bound).
    max_key_norm: f32,
}

/// Prefill scratch, allocated once per `forward` and reused for every KV
/// head: one head's keys and values copied contiguous and zero-padded to
/// whole tiles, plus one block's transposed queries and accumulators.
#[derive(Debug)]
pub(crate) struct Scratch<V> {
    /// `[tile * TILE + j][d]`.
    keys: Vec<f32>,
    /// `[tile * TILE + j][d]`.
    values: Vec<f32>,
    /// `[d]`, lane `r` = row `r`'s query value, pre-scaled by 1/sqrt(dim).
    queries: Vec<V>,
    /// `[d]`, lane `r` = row `r`'s unnormalised output.
    accumulators: Vec<V>,
}

/// Sets `buffer` to `len` copies of `zero`, as a typed error rather than an
/// abort when memory runs out.
fn try_filled<T: Clone>(buffer: &mut Vec<T>, len: usize, zero: T) -> Result<(), AttentionError> {
    buffer
        .try_reserve_exact(len)
        .map_err(|_| AttentionError::OutOfMemory {
            bytes: len.saturating_mul(core::mem::size_of::<T>()),
        })?;
    buffer.resize(len, zero);
    Ok(())
}

impl<V: Vector> Scratch<V> {
    /// Scratch for `seq` tokens of `head`.
    ///
    /// # Errors
    /// [`AttentionError::OutOfMemory`] when a buffer cannot be reserved (or
    /// its size overflows).
    pub(crate) fn try_new(seq: usize, head: &Head) -> Result<Self, AttentionError> {
        let padded = seq
            .div_ceil(TILE)
            .checked_mul(TILE)
            .and_then(|tokens| tokens.checked_mul(head.dim))
            .ok_or(AttentionError::OutOfMemory { bytes: usize::MAX })?;
        let mut scratch = Self {
            keys: Vec::new(),
            values: Vec::new(),
            queries: Vec::new(),
            accumulators: Vec::new(),
        };
        try_filled(&mut scratch.keys, padded, 0.0)?;
        try_filled(&mut scratch.values, padded, 0.0)?;
        try_filled(&mut scratch.queries, head.dim, V::ZERO)?;
        try_filled(&mut scratch.accumulators, head.dim, V::ZERO)?;
        Ok(scratch)
    }

    /// Copies KV head `kv_head` of `k` and `v` in (the padding stays zero),
    /// replacing a token by zeros when its key's squared norm is not finite
    /// (a non-finite or huge element) or its value is not finite.
    ///
    /// Why the squared norm: one vectorised pass gives both the finiteness
    /// test and the bound that keeps scores from overflowing.
    #[inline(always)]
    fn pack(&mut self, k: TensorView<'_>, v: TensorView<'_>, kv_head: usize, dim: usize) -> Packed {
        let mut packed = Packed {
            first_replaced: usize::MAX,
            max_key_norm: 0.0,
        };
        let rows = self
            .keys
            .chunks_exact_mut(dim)
            .zip(self.values.chunks_exact_mut(dim));
        for (j, (key, value)) in rows.take(k.seq()).enumerate() {
            let (k_row, v_row) = (k.row(j, kv_head), v.row(j, kv_head));
            let key_norm = numerics::dot(k_row, k_row);
            if key_norm <= f32::MAX && exact::all_finite(v_row) {
                key.copy_from_slice(k_row);
                value.copy_from_slice(v_row);
                if key_norm > packed.max_key_norm {
                    packed.max_key_norm = key_norm;
                }
            } else {
                key.fill(0.0);
                value.fill(0.0);
                packed.first_replaced = packed.first_replaced.min(j);
            }
        }
        packed
    }
}

/// Scores of the block's rows against the keys of one tile: `scores[j]`
/// lane `r` = `q_r . k_j / sqrt(dim)` (the queries are pre-scaled).
#[inline(always)]
fn tile_scores<V: Vector>(keys: &[f32], queries: &[V], scores: &mut [V; TILE]) {
    let dim = queries.len();
    for (pass, out) in scores.chunks_exact_mut(PASS).enumerate() {
        let base = pass * PASS * dim;
        let rows: [&[f32]; PASS] =
            core::array::from_fn(|j| &keys[base + j * dim..base + (j + 1) * dim]);
        let mut acc = [V::ZERO; PASS];
        for (d, &query) in queries.iter().enumerate() {
            unroll!([0 1 2 3 4 5 6 7] j => acc[j] = acc[j].add_scaled(rows[j][d], query));
        }
        out.copy_from_slice(&acc);
    }
}

/// The running softmax state of a block's rows, one row per lane.
struct OnlineSoftmax<V> {
    max: V,
    sum: V,
}

impl<V: Vector> OnlineSoftmax<V> {
    /// Turns a tile of scores (masked = `-inf`) into weights relative to
    /// the updated running max; returns the factor that rescales what was
    /// accumulated before.
    #[inline(always)]
    fn absorb(&mut self, scores: &mut [V; TILE]) -> V {
        // Four independent chains, so the reduction is not one long
        // dependency.
        let mut maxima = [V::NEG_INFINITY; 4];
        for chunk in scores.chunks_exact(4) {
            unroll!([0 1 2 3] c => maxima[c] = maxima[c].max(chunk[c]));
        }
        let tile_max = maxima[0].max(maxima[1]).max(maxima[2].max(maxima[3]));
        let new_max = self.max.max(tile_max);
        // From -inf (first tile) the factor is e^-inf = 0 and the sum is 0.
        let shift = new_max.finite_or_zero();
        let alpha = self.max.sub(shift).exp();
        let mut sums = [V::ZERO; 4];
        for chunk in scores.chunks_exact_mut(4) {
            unroll!([0 1 2 3] c => {
                chunk[c] = chunk[c].sub(shift).exp();
                sums[c] = sums[c].add(chunk[c]);
            });
        }
        let tile_sum = sums[0].add(sums[1]).add(sums[2].add(sums[3]));
        self.sum = self.sum.mul(alpha).add(tile_sum);
        self.max = new_max;
        alpha
    }
}

/// `acc[d] = alpha * acc[d] + sum_j weights[j] * v_j[d]` over one tile,
/// eight dims at a time so their accumulators stay in registers across the
/// tile's keys.
#[inline(always)]
fn accumulate<V: Vector>(values: &[f32], weights: &[V; TILE], alpha: V, accumulators: &mut [V]) {
    let dim = accumulators.len();
    let mut chunks = accumulators.chunks_exact_mut(PASS);
    for (chunk_index, chunk) in (&mut chunks).enumerate() {
        let first = chunk_index * PASS;
        let mut acc = [V::ZERO; PASS];
        unroll!([0 1 2 3 4 5 6 7] i => acc[i] = chunk[i].mul(alpha));
        for (j, &weight) in weights.iter().enumerate() {
            let value = &values[j * dim + first..j * dim + first + PASS];
            unroll!([0 1 2 3 4 5 6 7] i => acc[i] = acc[i].add_scaled(value[i], weight));
        }
        chunk.copy_from_slice(&acc);
    }
    let first = dim - chunks.into_remainder().len();
    for d in first..dim {
        let mut acc = accumulators[d].mul(alpha);
        for (j, &weight) in weights.iter().enumerate() {
            acc = acc.add_scaled(values[j * dim + d], weight);
        }
        accumulators[d] = acc;
    }
}

/// Attention of one block (rows in lanes; `limits[r]` = row `r`'s last
/// visible key) over the packed head. Leaves the unnormalised outputs in
/// `scratch.accumulators` and returns the per-row softmax denominators.
#[inline(always)]
fn attend_block<V: Vector>(scratch: &mut Scratch<V>, limits: &[usize]) -> V {
    let dim = scratch.queries.len();
    scratch.accumulators.fill(V::ZERO);
    let mut softmax = OnlineSoftmax {
        max: V::NEG_INFINITY,
        sum: V::ZERO,
    };
    let last = limits.iter().copied().max().unwrap_or(0);
    let first_limit = limits.iter().copied().min().unwrap_or(0);
    let tile_len = TILE * dim;
    for tile in 0..=last / TILE {
        let keys = &scratch.keys[tile * tile_len..(tile + 1) * tile_len];
        let values = &scratch.values[tile * tile_len..(tile + 1) * tile_len];
        let mut scores = [V::ZERO; TILE];
        tile_scores(keys, &scratch.queries, &mut scores);
        let first_key = tile * TILE;
        if first_key + TILE - 1 > first_limit {
            for (j, score) in scores.iter_mut().enumerate() {
                *score = score.mask_rows_after(first_key + j, limits);
            }
        }
        let alpha = softmax.absorb(&mut scores);
        accumulate(values, &scores, alpha, &mut scratch.accumulators);
    }
    softmax.sum
}

/// Prefill of every query head that reads KV head `kv_head`, written to
/// `out`: packs the head, then runs blocks of `V::LANES` rows (row `t` is
/// position `t / group`, query head `kv_head * group + t % group`; a short
/// last block repeats its last row in the spare lanes and discards them).
/// Rows the tiles cannot be trusted with (module docs) go through
/// [`exact::attend`] instead.
#[inline(always)]
pub(crate) fn prefill_head<V: Vector>(
    head: &Head,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
    kv_head: usize,
    scratch: &mut Scratch<V>,
    out: &mut Tensor,
) {
    let packed = scratch.pack(k, v, kv_head, head.dim);
    let seq = q.seq();
    let rows = seq * head.group;
    let locate = |row: usize| (row / head.group, kv_head * head.group + row % head.group);
    // The query norm a row may have for its scores to stay in range.
    let scale_squared = f64::from(head.scale) * f64::from(head.scale);
    let max_query_norm = SCORE_BOUND_SQUARED / (scale_squared * f64::from(packed.max_key_norm));
    let mut first_row = 0;
    while first_row < rows {
        let count = V::LANES.min(rows - first_row);
        let mut limits = [0usize; MAX_ROWS];
        let limits = &mut limits[..V::LANES];
        // Bit r: row r runs through the tiles (else through the exact path).
        let mut fast = 0u32;
        for (r, limit) in limits.iter_mut().enumerate() {
            let (position, query_head) = locate(first_row + r.min(count - 1));
            *limit = if head.causal { position } else { seq - 1 };
            let query = q.row(position, query_head);
            let query_norm = numerics::dot(query, query);
            // NaN compares false, so a NaN norm is not fast either.
            let trusted = f64::from(query_norm) <= max_query_norm
                && query_norm <= f32::MAX
                && *limit < packed.first_replaced;
            for (lane, &x) in scratch.queries.iter_mut().zip(query) {
                // A select, not `x * 0`: the query may be NaN or infinite.
                *lane.lane_mut(r) = if trusted { x * head.scale } else { 0.0 };
            }
            fast |= u32::from(trusted) << r;
        }
        let sums = if fast == 0 {
            V::ZERO
        } else {
            attend_block(scratch, limits)
        };
        for (r, &limit) in limits.iter().enumerate().take(count) {
            let (position, query_head) = locate(first_row + r);
            let row = out.row_mut(position, query_head);
            if fast & (1 << r) != 0 {
                let inverse = 1.0 / sums.lane(r);
                for (o, acc) in row.iter_mut().zip(&scratch.accumulators) {
                    *o = acc.lane(r) * inverse;
                }
                if exact::all_finite(row) {
                    continue;
                }
            }
            exact::attend(
                q.row(position, query_head),
                head.exact_scale,
                limit + 1,
                |j| Row::F32(k.row(j, kv_head)),
                |j| Row::F32(v.row(j, kv_head)),
                row,
            );
        }
        first_row += count;
    }
}
