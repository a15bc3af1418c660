//! The tiled online-softmax kernel (flash-attention style) behind both
//! prefill and streaming decode.
//!
//! Why it exists: exact attention needs every score of a query row, but not
//! all at once. Keys are taken [`TILE`] at a time; each tile's scores go into
//! a small stack array, the row's running max is updated once per tile, the
//! earlier accumulator is rescaled once per tile, and the tile's weighted
//! values are added. No `N x N` score matrix ever exists: prefill memory is
//! the output plus `O(N * head_dim)` of packed keys and values.
//!
//! Several query rows that read the same key/value head are processed
//! together (a "block" of `R` rows): every key and value loaded from memory
//! is used `R` times. Rows are ordered position-major, then by head within
//! the group, so for GQA/MQA a block is the group of query heads sharing one
//! KV head, and for MHA it is `R` consecutive positions.
//!
//! Everything here is `#[inline(always)]` over fixed-size lane arrays, so
//! [`crate::dispatch`] can instantiate the same source once for the baseline
//! target and once inside an AVX2 `#[target_feature]` function.
//!
//! **Invariant:** a row's output is a convex combination of the values of
//! exactly the keys `0..=limit` of that row (causal: `limit = i`); masked and
//! padding keys get weight zero.

use alloc::vec::Vec;

use aether_domain::numerics::{self, LANES};
use aether_domain::{AttentionError, KvCache, Tensor, TensorView};

use crate::lanes::Lanes;

/// Keys per tile. 32 keys amortise the per-tile max/rescale work over
/// `32 * R` dot products while the tile's scores (`R * 32` floats) still fit
/// in a few hundred bytes of stack.
pub(crate) const TILE: usize = 32;

/// Query rows processed together in prefill. Eight rows cover a GQA group
/// of up to eight heads in one pass, and for MHA reuse each loaded key and
/// value eight times; the accumulators still fit the 16 AVX registers.
pub(crate) const BLOCK_ROWS: usize = 8;

/// Lane groups per tile.
const KEY_CHUNKS: usize = TILE / LANES;

/// The scores (later the weights) of one row over one tile, lane-grouped.
type TileRow = [Lanes; KEY_CHUNKS];

/// What a kernel needs to know about the head, copied out of the config so
/// the hot loops see plain integers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    /// `q_heads / kv_heads`.
    pub(crate) group: usize,
    /// Values per head.
    pub(crate) dim: usize,
    /// Causal masking.
    pub(crate) causal: bool,
    /// `1 / sqrt(dim)`.
    pub(crate) scale: f32,
}

impl Head {
    /// Vector chunks per head row, the last one zero-padded.
    const fn dim_chunks(&self) -> usize {
        self.dim.div_ceil(LANES)
    }
}

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

/// Sets the scores of keys after each row's limit to `-inf`.
#[inline(always)]
fn mask<const R: usize>(scores: &mut [TileRow; R], first_key: usize, limits: &[usize; R]) {
    for r in 0..R {
        for (chunk_index, chunk) in scores[r].iter_mut().enumerate() {
            *chunk = chunk.mask_after(first_key + chunk_index * LANES, limits[r]);
        }
    }
}

/// One KV head's keys and values, repacked so the kernel streams them with
/// unit stride and no tails.
///
/// Keys are transposed within a tile, `[tile][key chunk][d][lane]`, so a
/// tile's scores are lane-parallel multiply-adds with no horizontal sums.
/// Values are `[tile][dim chunk][key][lane]`, the head dim zero-padded to a
/// whole number of chunks. Padding keys past the sequence end are zero.
#[derive(Debug, Default)]
pub(crate) struct PackedHead {
    keys: Vec<Lanes>,
    values: Vec<Lanes>,
}

/// Reserves `len` lane vectors, as a typed error rather than an abort.
fn try_resize(buffer: &mut Vec<Lanes>, len: usize) -> Result<(), AttentionError> {
    buffer.clear();
    buffer
        .try_reserve_exact(len)
        .map_err(|_| AttentionError::OutOfMemory {
            bytes: len.saturating_mul(core::mem::size_of::<Lanes>()),
        })?;
    buffer.resize(len, Lanes::ZERO);
    Ok(())
}

/// `a * b * c`, or an out-of-memory error naming an impossible size.
fn checked_product(a: usize, b: usize, c: usize) -> Result<usize, AttentionError> {
    a.checked_mul(b)
        .and_then(|x| x.checked_mul(c))
        .ok_or(AttentionError::OutOfMemory { bytes: usize::MAX })
}

/// Prefill scratch: the packed head plus one block's queries and
/// accumulators. Allocated once per `forward` and reused for every KV head.
#[derive(Debug)]
pub(crate) struct Scratch {
    packed: PackedHead,
    /// One block's queries, transposed `[d][row]` and pre-scaled.
    queries: Vec<f32>,
    /// One block's accumulators, `[row][dim chunk]`.
    accumulators: Vec<Lanes>,
}

impl Scratch {
    /// Scratch for `seq` tokens of `head`.
    ///
    /// # Errors
    /// [`AttentionError::OutOfMemory`] when a buffer cannot be reserved.
    pub(crate) fn try_new(seq: usize, head: &Head) -> Result<Self, AttentionError> {
        let tiles = seq.div_ceil(TILE);
        let mut scratch = Self {
            packed: PackedHead::default(),
            queries: Vec::new(),
            accumulators: Vec::new(),
        };
        try_resize(
            &mut scratch.packed.keys,
            checked_product(tiles, KEY_CHUNKS, head.dim)?,
        )?;
        try_resize(
            &mut scratch.packed.values,
            checked_product(tiles, head.dim_chunks(), TILE)?,
        )?;
        try_resize(
            &mut scratch.accumulators,
            checked_product(BLOCK_ROWS, head.dim_chunks(), 1)?,
        )?;
        let queries = checked_product(BLOCK_ROWS, head.dim, 1)?;
        scratch
            .queries
            .try_reserve_exact(queries)
            .map_err(|_| AttentionError::OutOfMemory {
                bytes: queries.saturating_mul(core::mem::size_of::<f32>()),
            })?;
        scratch.queries.resize(queries, 0.0);
        Ok(scratch)
    }
}

impl PackedHead {
    /// Repacks KV head `kv_head` of `k` and `v` (buffers already sized by
    /// [`Scratch::try_new`] for this sequence length).
    fn fill(&mut self, k: TensorView<'_>, v: TensorView<'_>, kv_head: usize, head: &Head) {
        let dim = head.dim;
        let dim_chunks = head.dim_chunks();
        self.keys.fill(Lanes::ZERO);
        self.values.fill(Lanes::ZERO);
        for j in 0..k.seq() {
            let (tile, in_tile) = (j / TILE, j % TILE);
            let key_base = (tile * KEY_CHUNKS + in_tile / LANES) * dim;
            for (d, &x) in k.row(j, kv_head).iter().enumerate() {
                self.keys[key_base + d].0[in_tile % LANES] = x;
            }
            for (d, &x) in v.row(j, kv_head).iter().enumerate() {
                let chunk = tile * dim_chunks + d / LANES;
                self.values[chunk * TILE + in_tile].0[d % LANES] = x;
            }
        }
    }

    /// Tile `tile`'s transposed keys: `KEY_CHUNKS` runs of `dim` vectors.
    #[inline(always)]
    fn key_tile(&self, tile: usize, dim: usize) -> &[Lanes] {
        let len = KEY_CHUNKS * dim;
        &self.keys[tile * len..(tile + 1) * len]
    }

    /// Tile `tile`'s values: `dim_chunks` runs of [`TILE`] vectors.
    #[inline(always)]
    fn value_tile(&self, tile: usize, dim_chunks: usize) -> &[Lanes] {
        let len = dim_chunks * TILE;
        &self.values[tile * len..(tile + 1) * len]
    }
}

/// Scores of `R` pre-scaled, transposed query rows against one packed tile.
#[inline(always)]
fn packed_scores<const R: usize>(key_tile: &[Lanes], queries: &[[f32; R]]) -> [TileRow; R] {
    let dim = queries.len();
    let mut scores = [[Lanes::ZERO; KEY_CHUNKS]; R];
    for chunk in 0..KEY_CHUNKS {
        let keys = &key_tile[chunk * dim..(chunk + 1) * dim];
        let mut acc = [Lanes::ZERO; R];
        for (&key, query) in keys.iter().zip(queries) {
            for r in 0..R {
                acc[r] = acc[r].add_scaled(query[r], key);
            }
        }
        for r in 0..R {
            scores[r][chunk] = acc[r];
        }
    }
    scores
}

/// `acc[r] = alpha[r] * acc[r] + sum_j weights[r][j] * value[j]` over one
/// packed tile, one dim chunk at a time so the `R` accumulators of a chunk
/// stay in registers across the tile's keys.
#[inline(always)]
fn accumulate_packed<const R: usize>(
    accumulators: &mut [Lanes],
    alpha: [f32; R],
    weights: &[TileRow; R],
    value_tile: &[Lanes],
    dim_chunks: usize,
) {
    let (value_chunks, _) = value_tile.as_chunks::<TILE>();
    for (chunk, values) in value_chunks.iter().enumerate().take(dim_chunks) {
        let mut acc: [Lanes; R] =
            core::array::from_fn(|r| accumulators[r * dim_chunks + chunk].scale(alpha[r]));
        for (j, &value) in values.iter().enumerate() {
            for r in 0..R {
                acc[r] = acc[r].add_scaled(weights[r][j / LANES].0[j % LANES], value);
            }
        }
        for r in 0..R {
            accumulators[r * dim_chunks + chunk] = acc[r];
        }
    }
}

/// Attention of `R` query rows (transposed, pre-scaled `queries`) with the
/// given key limits over a packed head; leaves the unnormalised outputs in
/// `accumulators` and returns the per-row normalisers.
#[inline(always)]
fn attend_block<const R: usize>(
    packed: &PackedHead,
    queries: &[[f32; R]],
    limits: [usize; R],
    accumulators: &mut [Lanes],
    dim_chunks: usize,
) -> [f32; R] {
    let dim = queries.len();
    accumulators.fill(Lanes::ZERO);
    let mut softmax = OnlineSoftmax::<R>::new();
    let last = limits.iter().copied().max().unwrap_or(0);
    let first_limit = limits.iter().copied().min().unwrap_or(0);
    for tile in 0..=last / TILE {
        let mut scores = packed_scores::<R>(packed.key_tile(tile, dim), queries);
        let first_key = tile * TILE;
        if first_key + TILE - 1 > first_limit {
            mask(&mut scores, first_key, &limits);
        }
        let alpha = softmax.absorb(&mut scores);
        accumulate_packed(
            accumulators,
            alpha,
            &scores,
            packed.value_tile(tile, dim_chunks),
            dim_chunks,
        );
    }
    softmax.inverse_sums()
}

/// One block of `R` rows starting at row `first_row` of KV head `kv_head`
/// (row `t` is position `t / group`, query head `kv_head * group + t %
/// group`), written to `out`.
#[inline(always)]
fn prefill_block<const R: usize>(
    head: &Head,
    q: TensorView<'_>,
    kv_head: usize,
    first_row: usize,
    scratch: &mut Scratch,
    out: &mut Tensor,
) {
    let dim = head.dim;
    let dim_chunks = head.dim_chunks();
    let seq = q.seq();
    let locate = |row: usize| (row / head.group, kv_head * head.group + row % head.group);
    let mut limits = [0usize; R];
    for (r, limit) in limits.iter_mut().enumerate() {
        let (position, query_head) = locate(first_row + r);
        *limit = if head.causal { position } else { seq - 1 };
        for (d, &x) in q.row(position, query_head).iter().enumerate() {
            scratch.queries[d * R + r] = x * head.scale;
        }
    }
    let (queries, _) = scratch.queries[..dim * R].as_chunks::<R>();
    let accumulators = &mut scratch.accumulators[..R * dim_chunks];
    let inverse = attend_block::<R>(&scratch.packed, queries, limits, accumulators, dim_chunks);
    for (r, inverse) in inverse.iter().enumerate() {
        let (position, query_head) = locate(first_row + r);
        let acc = &accumulators[r * dim_chunks..(r + 1) * dim_chunks];
        let acc = acc.iter().flat_map(|lanes| lanes.0);
        for (o, a) in out.row_mut(position, query_head).iter_mut().zip(acc) {
            *o = a * inverse;
        }
    }
}

/// Prefill of every query head that reads KV head `kv_head`: packs the
/// head's keys and values, then runs blocks of [`BLOCK_ROWS`] rows (the
/// remainder one row at a time).
#[inline(always)]
pub(crate) fn prefill_head(
    head: &Head,
    q: TensorView<'_>,
    k: TensorView<'_>,
    v: TensorView<'_>,
    kv_head: usize,
    scratch: &mut Scratch,
    out: &mut Tensor,
) {
    scratch.packed.fill(k, v, kv_head, head);
    let rows = q.seq() * head.group;
    let mut row = 0;
    while row + BLOCK_ROWS <= rows {
        prefill_block::<BLOCK_ROWS>(head, q, kv_head, row, scratch, out);
        row += BLOCK_ROWS;
    }
    while row < rows {
        prefill_block::<1>(head, q, kv_head, row, scratch, out);
        row += 1;
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
    let len = cache.len();
    let mut first_key = 0;
    while first_key < len {
        let count = TILE.min(len - first_key);
        let mut scores = [[Lanes::NEG_INFINITY; KEY_CHUNKS]; R];
        for j in 0..count {
            let key = cache.key(first_key + j, kv_head);
            for r in 0..R {
                scores[r][j / LANES].0[j % LANES] = numerics::dot(queries[r], key) * head.scale;
            }
        }
        let alpha = softmax.absorb(&mut scores);
        for (r, row) in out.chunks_exact_mut(dim).enumerate() {
            numerics::scale(row, alpha[r]);
        }
        for j in 0..count {
            let value = cache.value(first_key + j, kv_head);
            for (r, row) in out.chunks_exact_mut(dim).enumerate() {
                numerics::axpy(row, scores[r][j / LANES].0[j % LANES], value);
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
