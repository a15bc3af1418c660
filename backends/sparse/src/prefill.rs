//! The prefill kernel: tiles of queries against the union of their windows,
//! with the extras scored in the same lane layout.
//!
//! Why it is shaped this way: a query's window is a contiguous run of keys,
//! and consecutive queries' windows overlap almost entirely. So the kernel
//! takes [`TILE`] consecutive query positions of every query head sharing a
//! KV head (the GQA group) as *rows*, and scores them against the union of
//! their windows as a small matrix product with the rows in the vector
//! lanes: `S[j][row] = Σ_d K[j][d] · Qᵀ[d][row]`. Each key element is
//! broadcast once and multiplied into every row of the group, so a KV row is
//! read once per group, not once per head, and only the tile's queries are
//! ever transposed. Softmax runs per lane (no horizontal reductions), masked
//! to each row's own window; the value pass broadcasts each weight into
//! row-major accumulators (`acc[row][d] += w · V[j][d]`).
//!
//! The `O(log N)` extras use the same layout:
//! - globals and landmark block means are one key for many positions of the
//!   tile: they are *shared rows*, masked per position (landmarks are
//!   shared when the tile's positions fall into at most
//!   [`MAX_LANDMARK_RUNS`] runs of equal landmark pivots, which is always
//!   the case for `block_size >= TILE`; otherwise they are scored per
//!   position);
//! - the log-stride token `i - 2^k` of consecutive positions are
//!   consecutive keys: a *diagonal*. Its keys are transposed in registers
//!   once per group and scored with vertical multiply-adds.
//!
//! The plan of a tile (window bounds, diagonals, shared rows) is the same
//! for every KV head, so tiles are the outer loop and heads the inner one.
//!
//! Memory: a [`Workspace`] is allocated once per call: tile-sized scratch
//! (independent of N), the window chunk (capped at [`CHUNK`] keys; wider
//! windows stream through it with an online softmax), and the landmark
//! means of every block and KV head (`2 · N/B · kv_heads · dim` floats).
//! Nothing is `O(N²)`, nothing is allocated per query.
//!
//! **Invariant:** the candidates of every query are exactly its window
//! (masked per row) plus [`plan::for_each_extra`], each counted once;
//! padding rows and lanes are masked out and never reach the output.

// Without a vector baseline only `rows` and the shared pieces (workspace,
// landmark means) are used; the tile kernel is not instantiated.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")),
    allow(dead_code)
)]

use alloc::vec::Vec;

use aether_domain::{AttentionError, SparsePattern};

use crate::plan::{self, Extra};
use crate::simd::Simd;

mod rows;
pub(crate) use rows::run as run_rows;

/// Consecutive query positions processed together (a multiple of every
/// ISA's lane count).
pub(crate) const TILE: usize = 16;
/// Most window keys scored at once; wider windows are streamed.
const CHUNK: usize = 256;
/// Key rows of a chunk are padded to a multiple of this (every score
/// micro-kernel handles a multiple of 4 keys).
const KEY_PAD: usize = 4;
/// Buffers read as whole vectors are padded to a multiple of this (the
/// widest ISA's lanes).
const VECTOR_PAD: usize = 16;
/// Most runs of distinct landmark pivots in a tile for which landmarks are
/// scored as shared rows; beyond it they are scored per position.
const MAX_LANDMARK_RUNS: usize = 4;
/// Running maximum before any candidate: finite, so `exp(m_old - m_new)`
/// is `exp(0)` rather than NaN while a row has seen nothing yet.
const NO_SCORE: f32 = -1.0e30;

/// One prefill call: the validated inputs and their geometry.
pub(crate) struct Problem<'a> {
    /// The candidate pattern.
    pub(crate) pattern: &'a SparsePattern,
    /// Queries, `[n][q_heads][dim]`.
    pub(crate) q: &'a [f32],
    /// Keys, `[n][kv_heads][dim]`.
    pub(crate) k: &'a [f32],
    /// Values, `[n][kv_heads][dim]`.
    pub(crate) v: &'a [f32],
    /// Tokens.
    pub(crate) n: usize,
    /// Query heads.
    pub(crate) q_heads: usize,
    /// Key/value heads.
    pub(crate) kv_heads: usize,
    /// Values per head.
    pub(crate) dim: usize,
}

impl Problem<'_> {
    fn group(&self) -> usize {
        self.q_heads / self.kv_heads
    }

    /// Score rows per tile: the group's heads times [`TILE`] positions.
    fn rows(&self) -> usize {
        self.group() * TILE
    }

    /// Keys scored at once: the widest tile window union, capped.
    fn chunk_len(&self) -> usize {
        let w = self.pattern.window();
        let span = if self.pattern.causal() {
            w.saturating_add(TILE)
        } else {
            w.saturating_mul(2).saturating_add(TILE)
        };
        span.min(self.n).clamp(1, CHUNK).next_multiple_of(KEY_PAD)
    }

    /// Most log-stride distances (each a diagonal row of a tile).
    fn max_diagonals(&self) -> usize {
        let bits = (usize::BITS - self.n.leading_zeros()) as usize;
        if self.pattern.causal() {
            bits
        } else {
            2 * bits
        }
    }
}

/// Scratch of one prefill call, allocated once.
struct Scratch {
    /// Queries of the tile, transposed and scaled: `[dim][rows]`.
    qt: Vec<f32>,
    /// Scores, then weights, of the window chunk: `[chunk][rows]`.
    st: Vec<f32>,
    /// Output accumulators of the tile, row-major: `[rows][dim]`.
    acc: Vec<f32>,
    /// Running maximum per row.
    max: Vec<f32>,
    /// Running softmax denominator per row.
    sum: Vec<f32>,
    /// This chunk's maximum, then its rescale factor, per row.
    factor: Vec<f32>,
    /// First window key of each tile position, relative to the chunk.
    lo: Vec<f32>,
    /// Last window key of each tile position, relative to the chunk.
    hi: Vec<f32>,
    /// A row of zeros standing in for queries past the end.
    zeros: Vec<f32>,
    /// Extras' scores, then weights, of one query: `[group][extras_stride]`.
    xs: Vec<f32>,
    /// Row stride of `xs` (a multiple of [`VECTOR_PAD`]).
    extras_stride: usize,
    /// The per-position extras of one query.
    extras: Vec<Extra>,
    /// The extras shared across the tile.
    shared: Vec<Extra>,
    /// For each shared extra, the positions (bits) that attend to it.
    shared_bits: Vec<u32>,
    /// Log-stride diagonals of the tile: position `t` attends to key
    /// `base + t` when bit `t` is set.
    diagonals: Vec<(isize, u32)>,
    /// Sum of `x · 0` over every query and output element seen: zero
    /// exactly when all were finite.
    probe: f32,
}

/// Everything a prefill call allocates, once.
pub(crate) struct Workspace {
    scratch: Scratch,
    landmarks: Landmarks,
    /// Set by the tile kernel when it saw every query and output element
    /// finite, so the non-finite policy's check need not re-read them.
    pub(crate) vouched: bool,
}

impl Workspace {
    /// The buffers of `problem`.
    ///
    /// # Errors
    /// [`AttentionError::OutOfMemory`] when a buffer cannot be reserved.
    pub(crate) fn new(problem: &Problem<'_>) -> Result<Self, AttentionError> {
        Ok(Self {
            scratch: Scratch::new(problem)?,
            landmarks: Landmarks::new(problem)?,
            vouched: false,
        })
    }
}

impl Workspace {
    /// Whether the fast path's f32 mean of `block` (KV head `kv_head`) is
    /// finite in keys and values (an f32 sum of large finite rows can
    /// overflow; the exact path then recomputes the rows that use it).
    pub(crate) fn landmark_is_finite(&self, kv_head: usize, block: usize, dim: usize) -> bool {
        let (keys, values) = self.landmarks.head(kv_head);
        let row = block * dim..(block + 1) * dim;
        keys.get(row.clone()).is_none_or(crate::exact::all_finite)
            && values.get(row).is_none_or(crate::exact::all_finite)
    }
}

/// Landmark means of every block and KV head, computed once per call.
struct Landmarks {
    /// Key means: `[kv_head][block][dim]`.
    keys: Vec<f32>,
    /// Value means: `[kv_head][block][dim]`.
    values: Vec<f32>,
    /// KV heads the buffers are split into.
    kv_heads: usize,
    /// Blocks `0..filled` hold their means.
    filled: usize,
    /// One block's means of every head, before the scatter to `keys` /
    /// `values`: `[kv_heads · dim]`.
    row: Vec<f32>,
}

impl Landmarks {
    /// Room for `problem`'s landmark means (none when landmarks are off).
    ///
    /// # Errors
    /// [`AttentionError::OutOfMemory`] when a buffer cannot be reserved.
    fn new(problem: &Problem<'_>) -> Result<Self, AttentionError> {
        let len = if problem.pattern.landmarks() {
            problem.pattern.block_count(problem.n) * problem.kv_heads * problem.dim
        } else {
            0
        };
        Ok(Self {
            keys: buffer(len, 0.0)?,
            values: buffer(len, 0.0)?,
            kv_heads: problem.kv_heads,
            filled: 0,
            row: buffer(
                (problem.kv_heads * problem.dim).next_multiple_of(VECTOR_PAD),
                0.0,
            )?,
        })
    }

    /// Computes the key and value means of every block and KV head of
    /// `problem` (nothing when landmarks are off).
    #[inline(always)]
    pub(crate) fn fill<S: Simd>(&mut self, s: S, problem: &Problem<'_>) {
        if problem.pattern.landmarks() {
            self.fill_upto(s, problem, problem.pattern.block_count(problem.n));
        }
    }

    /// Computes the means of blocks `filled..upto` (every KV head), so a
    /// causal prefill can produce each block just as its tiles reach it,
    /// while its rows are still in cache from the window pass (one pass
    /// over K and V in memory rather than two).
    ///
    /// A token row is `kv_heads · dim` contiguous floats, so a block's
    /// rows are summed whole (every head at once, contiguous vectors) into
    /// `row` and scattered to the per-head layout.
    #[inline(always)]
    fn fill_upto<S: Simd>(&mut self, s: S, problem: &Problem<'_>, upto: usize) {
        let dim = problem.dim;
        let width = problem.kv_heads * dim;
        let blocks = problem.pattern.block_count(problem.n);
        let len = blocks * dim;
        let upto = upto.min(blocks);
        while self.filled < upto {
            let block = self.filled;
            let tokens = problem.pattern.block_tokens(block, problem.n);
            let inverse = 1.0 / tokens.len() as f32;
            for (data, means) in [(problem.k, &mut self.keys), (problem.v, &mut self.values)] {
                let rows = &data[tokens.start * width..tokens.end * width];
                block_mean(s, rows, inverse, &mut self.row[..width]);
                for head in 0..problem.kv_heads {
                    means[head * len + block * dim..][..dim]
                        .copy_from_slice(&self.row[head * dim..][..dim]);
                }
            }
            self.filled += 1;
        }
    }

    /// Key and value means of KV head `head`, `[block][dim]` each.
    fn head(&self, head: usize) -> (&[f32], &[f32]) {
        let len = self.keys.len() / self.kv_heads_or_one();
        (
            &self.keys[head * len..][..len],
            &self.values[head * len..][..len],
        )
    }

    fn kv_heads_or_one(&self) -> usize {
        self.kv_heads.max(1)
    }
}

fn buffer<T: Clone>(len: usize, fill: T) -> Result<Vec<T>, AttentionError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| AttentionError::OutOfMemory {
            bytes: len.saturating_mul(core::mem::size_of::<T>()),
        })?;
    v.resize(len, fill);
    Ok(v)
}

/// An empty vector with room for `capacity` items (pushes up to it never
/// allocate).
fn reserved<T>(capacity: usize) -> Result<Vec<T>, AttentionError> {
    let mut v = Vec::new();
    v.try_reserve_exact(capacity)
        .map_err(|_| AttentionError::OutOfMemory {
            bytes: capacity.saturating_mul(core::mem::size_of::<T>()),
        })?;
    Ok(v)
}

impl Scratch {
    /// Scratch for `problem`.
    ///
    /// # Errors
    /// [`AttentionError::OutOfMemory`] when a buffer cannot be reserved.
    fn new(problem: &Problem<'_>) -> Result<Self, AttentionError> {
        let rows = problem.rows();
        let dim = problem.dim;
        let max_extras = plan::max_extras(problem.pattern, problem.n);
        let extras_stride = max_extras.max(1).next_multiple_of(VECTOR_PAD);
        let extras = reserved(max_extras)?;
        let max_shared = problem.pattern.globals().len()
            + MAX_LANDMARK_RUNS * plan::max_landmarks(problem.pattern, problem.n);
        let shared = reserved(max_shared)?;
        let max_diagonals = problem.max_diagonals();
        let chunk_rows = problem
            .chunk_len()
            .max(max_shared.next_multiple_of(KEY_PAD) + max_diagonals);
        Ok(Self {
            qt: buffer(dim.next_multiple_of(VECTOR_PAD) * rows, 0.0)?,
            st: buffer(chunk_rows * rows, 0.0)?,
            acc: buffer(rows * dim, 0.0)?,
            max: buffer(rows, 0.0)?,
            sum: buffer(rows, 0.0)?,
            factor: buffer(rows, 0.0)?,
            lo: buffer(TILE, 0.0)?,
            hi: buffer(TILE, 0.0)?,
            zeros: buffer(dim.next_multiple_of(VECTOR_PAD), 0.0)?,
            xs: buffer(problem.group() * extras_stride, 0.0)?,
            extras_stride,
            extras,
            shared,
            shared_bits: reserved(max_shared)?,
            diagonals: reserved(max_diagonals)?,
            probe: 0.0,
        })
    }
}

/// The rows of one KV head in a `[n][kv_heads][dim]` tensor.
#[derive(Clone, Copy)]
struct HeadRows<'a> {
    data: &'a [f32],
    stride: usize,
    offset: usize,
    dim: usize,
    last: usize,
}

impl<'a> HeadRows<'a> {
    /// Head `head`'s rows of `data`.
    ///
    /// # Panics
    /// If `data` is not `n * kv_heads * dim` values or `head` is not below
    /// `kv_heads` (the invariant [`row`](Self::row) relies on).
    fn new(data: &'a [f32], problem: &Problem<'_>, head: usize) -> Self {
        assert_eq!(data.len(), problem.n * problem.kv_heads * problem.dim);
        assert!(head < problem.kv_heads && problem.n > 0);
        Self {
            data,
            stride: problem.kv_heads * problem.dim,
            offset: head * problem.dim,
            dim: problem.dim,
            last: problem.n - 1,
        }
    }

    /// Row `j`; positions past the end read the last row (padding, always
    /// masked out).
    #[inline(always)]
    fn row(&self, j: usize) -> &'a [f32] {
        let start = j.min(self.last) * self.stride + self.offset;
        // SAFETY: `j.min(last) < n` and `offset + dim <= stride` (head <
        // kv_heads, asserted in `new`), so `start + dim <= n * stride`,
        // which is `data.len()` (asserted in `new`). The hot loops call this
        // per key and per value; the check would cost as much as the
        // multiply-adds it guards.
        unsafe { self.data.get_unchecked(start..start + self.dim) }
    }

    /// Values `d0..d0 + len` of row `j` (as [`row`](Self::row)).
    ///
    /// # Panics
    /// If `d0 + len > dim`.
    #[inline(always)]
    fn row_part(&self, j: usize, d0: usize, len: usize) -> &'a [f32] {
        assert!(d0 + len <= self.dim);
        let start = j.min(self.last) * self.stride + self.offset + d0;
        // SAFETY: as in `row`, with `d0 + len <= dim` just asserted.
        unsafe { self.data.get_unchecked(start..start + len) }
    }
}

/// Rows (keys or values) a kernel reads by index. A trait with
/// `#[inline(always)]` impls rather than closures: closures are not
/// force-inlined, and one left out-of-line splits the vector code.
trait Rows {
    /// Row `j` (`dim` values).
    fn row(&self, j: usize) -> &[f32];

    /// Values `d0..d0 + len` of row `j`.
    #[inline(always)]
    fn part(&self, j: usize, d0: usize, len: usize) -> &[f32] {
        &self.row(j)[d0..][..len]
    }
}

/// Window keys or values: rows `start + j` of a head.
struct Window<'a> {
    rows: HeadRows<'a>,
    start: usize,
}

impl Rows for Window<'_> {
    #[inline(always)]
    fn row(&self, j: usize) -> &[f32] {
        self.rows.row(self.start + j)
    }

    #[inline(always)]
    fn part(&self, j: usize, d0: usize, len: usize) -> &[f32] {
        self.rows.row_part(self.start + j, d0, len)
    }
}

/// Keys or values of a list of extras (rows past the end repeat the last
/// one; they are masked out).
struct Extras<'a> {
    extras: &'a [Extra],
    rows: HeadRows<'a>,
    landmarks: &'a [f32],
}

impl Rows for Extras<'_> {
    #[inline(always)]
    fn row(&self, e: usize) -> &[f32] {
        match self.extras[e.min(self.extras.len() - 1)] {
            Extra::Token(j) => self.rows.row(j),
            Extra::Landmark(b) => &self.landmarks[b * self.rows.dim..][..self.rows.dim],
        }
    }
}

/// Which lanes (rows of a tile) attend to key row `j`.
trait LaneMask<S: Simd> {
    /// The mask of the vector of rows starting at row `col`.
    fn mask(&self, s: S, j: usize, col: usize) -> S::M;
}

/// Window masks: row `t` attends to `lo[t] <= j <= hi[t]`.
struct RangeMask<'a> {
    lo: &'a [f32],
    hi: &'a [f32],
}

impl<S: Simd> LaneMask<S> for RangeMask<'_> {
    #[inline(always)]
    fn mask(&self, s: S, j: usize, col: usize) -> S::M {
        let t = col % TILE;
        s.in_range(
            s.splat(j as f32),
            s.load(&self.lo[t..]),
            s.load(&self.hi[t..]),
        )
    }
}

/// Shared-extra masks: bit `t` of row `j`'s bits.
struct BitsMask<'a> {
    bits: &'a [u32],
}

impl<S: Simd> LaneMask<S> for BitsMask<'_> {
    #[inline(always)]
    fn mask(&self, s: S, j: usize, col: usize) -> S::M {
        let bits = self.bits.get(j).copied().unwrap_or(0);
        s.mask_from_bits(bits >> (col % TILE))
    }
}

/// Which key rows of a chunk a block of positions can attend to, so the
/// weighted-value pass skips rows whose weights are all zero for it.
trait KeySpan {
    /// Key rows (of `key_rows`) that positions `first..=last` may attend to.
    fn span(&self, first: usize, last: usize, key_rows: usize) -> core::ops::Range<usize>;
}

impl KeySpan for RangeMask<'_> {
    #[inline(always)]
    fn span(&self, first: usize, last: usize, key_rows: usize) -> core::ops::Range<usize> {
        // Window bounds grow with the position: the block's union runs from
        // its first position's start to its last position's end. Bounds
        // are small exact integers (or +-inf / -1 for empty rows).
        let lo = self.lo[first].max(0.0);
        let hi = self.hi[last] + 1.0;
        if hi <= lo {
            return 0..0;
        }
        (lo as usize).min(key_rows)..(hi as usize).min(key_rows)
    }
}

/// Every key row: for the shared extras, whose positions are arbitrary.
struct AllKeys;

impl KeySpan for AllKeys {
    #[inline(always)]
    fn span(&self, _: usize, _: usize, key_rows: usize) -> core::ops::Range<usize> {
        0..key_rows
    }
}

/// Runs the whole prefill with instruction set `s`, writing `out`
/// (`[n][q_heads][dim]`, overwritten).
#[inline(always)]
pub(crate) fn run<S: Simd>(s: S, problem: &Problem<'_>, work: &mut Workspace, out: &mut [f32]) {
    if problem.n == 0 {
        return;
    }
    // Causal: a tile's landmark blocks all end before its window, so each
    // block's means are computed when the tiles reach it (its rows are
    // being read for the window anyway). Otherwise a tile may look ahead:
    // every block first.
    let causal = problem.pattern.causal();
    if !causal {
        work.landmarks.fill(s, problem);
    }
    let Workspace {
        scratch,
        landmarks,
        vouched,
    } = work;
    scratch.probe = 0.0;
    let mut first = 0;
    while first < problem.n {
        // The tile's plan (window bounds, extras) is the same for every KV
        // head: work it out once.
        let positions = TILE.min(problem.n - first);
        if causal && problem.pattern.landmarks() {
            let end = first + positions;
            landmarks.fill_upto(s, problem, end.div_ceil(problem.pattern.block_size()));
        }
        let mut queries = [plan::Query {
            i: 0,
            n: problem.n,
            lo: 0,
            hi: 0,
        }; TILE];
        for (t, query) in queries.iter_mut().enumerate().take(positions) {
            *query = plan::Query::new(problem.pattern, first + t, problem.n);
        }
        let mut landmarks_shared = true;
        for head in 0..problem.kv_heads {
            let (landmark_keys, landmark_values) = landmarks.head(head);
            let tile = Tile {
                problem,
                head,
                first,
                positions,
                keys: HeadRows::new(problem.k, problem, head),
                values: HeadRows::new(problem.v, problem, head),
                queries,
                landmark_keys,
                landmark_values,
            };
            if head == 0 {
                landmarks_shared = tile.collect_shared(scratch);
            }
            tile.run(s, scratch, landmarks_shared, out);
        }
        first += TILE;
    }
    *vouched = scratch.probe == 0.0;
}

/// `mean = inverse · Σ rows` over the `mean.len()`-wide rows of `rows`,
/// up to four vectors summed in registers across the rows (no
/// store-to-load chain through `mean` per row).
#[inline(always)]
fn block_mean<S: Simd>(s: S, rows: &[f32], inverse: f32, mean: &mut [f32]) {
    let width = mean.len();
    let body = width - width % S::LANES;
    let mut d = 0;
    while d < body {
        let vectors = ((body - d) / S::LANES).min(4);
        match vectors {
            4 => block_mean_part::<S, 4>(s, rows, inverse, mean, d),
            3 => block_mean_part::<S, 3>(s, rows, inverse, mean, d),
            2 => block_mean_part::<S, 2>(s, rows, inverse, mean, d),
            _ => block_mean_part::<S, 1>(s, rows, inverse, mean, d),
        }
        d += vectors * S::LANES;
    }
    for (d, x) in mean.iter_mut().enumerate().skip(body) {
        let total: f32 = rows.chunks_exact(width).map(|row| row[d]).sum();
        *x = total * inverse;
    }
}

/// Values `d0..d0 + DV * LANES` of [`block_mean`].
#[inline(always)]
fn block_mean_part<S: Simd, const DV: usize>(
    s: S,
    rows: &[f32],
    inverse: f32,
    mean: &mut [f32],
    d0: usize,
) {
    let width = mean.len();
    let mut sum = [s.zero(); DV];
    for row in rows.chunks_exact(width) {
        let row = &row[d0..][..DV * S::LANES];
        for (dv, sum) in sum.iter_mut().enumerate() {
            *sum = s.add(*sum, s.load(&row[dv * S::LANES..]));
        }
    }
    let scale = s.splat(inverse);
    for (dv, sum) in sum.into_iter().enumerate() {
        s.store(&mut mean[d0 + dv * S::LANES..], s.mul(sum, scale));
    }
}

/// Positions `first..first + positions` of every query head of KV head
/// `head`: the rows of one tile.
struct Tile<'a> {
    problem: &'a Problem<'a>,
    head: usize,
    first: usize,
    /// Real positions in the tile (fewer than [`TILE`] only at the end).
    positions: usize,
    keys: HeadRows<'a>,
    values: HeadRows<'a>,
    /// The positions with their window bounds (first `positions` valid).
    queries: [plan::Query; TILE],
    /// This head's landmark key means, `[block][dim]`.
    landmark_keys: &'a [f32],
    /// This head's landmark value means, `[block][dim]`.
    landmark_values: &'a [f32],
}

/// Bit `t` set for tile positions `from..=to`.
const fn lane_bits(from: usize, to: usize) -> u32 {
    let upto = if to + 1 >= 32 {
        u32::MAX
    } else {
        (1 << (to + 1)) - 1
    };
    upto & !((1u32 << from) - 1)
}

impl Tile<'_> {
    /// The tile's real positions.
    fn queries(&self) -> &[plan::Query] {
        &self.queries[..self.positions]
    }

    /// Offset in q / out of the group's first head at position `i`.
    fn group_offset(&self, i: usize) -> usize {
        let p = self.problem;
        (i * p.q_heads + self.head * p.group()) * p.dim
    }

    #[inline(always)]
    fn run<S: Simd>(&self, s: S, scratch: &mut Scratch, landmarks_shared: bool, out: &mut [f32]) {
        self.transpose_queries(s, scratch);
        self.per_query(s, scratch, !landmarks_shared);
        // Accumulators start at zero unless per-position landmarks wrote
        // them: then the first chunk's rescale can be skipped.
        self.extras_chunk(s, scratch, !landmarks_shared);
        self.window(s, scratch);
        // Divide by the softmax denominators, into the output.
        // The output is probed on its way out, as the queries were.
        let (dim, group) = (self.problem.dim, self.problem.group());
        let mut probe = (s.zero(), 0.0);
        for t in 0..self.positions {
            let out_group = &mut out[self.group_offset(self.first + t)..][..group * dim];
            for (g, o) in out_group.chunks_exact_mut(dim).enumerate() {
                let row = g * TILE + t;
                let inverse = 1.0 / scratch.sum[row];
                let acc = &scratch.acc[row * dim..][..dim];
                scale_into(s, o, acc, inverse, &mut probe);
            }
        }
        scratch.probe += s.reduce_add(probe.0) + probe.1;
    }

    /// `qt[d][row] = q[row][d] / sqrt(dim)`, zero rows past the end.
    #[inline(always)]
    fn transpose_queries<S: Simd>(&self, s: S, scratch: &mut Scratch) {
        let p = self.problem;
        let (dim, rows) = (p.dim, p.rows());
        let padded_dim = dim.next_multiple_of(S::LANES);
        let zeros = &scratch.zeros[..padded_dim];
        for g in 0..p.group() {
            let mut src: [&[f32]; TILE] = [zeros; TILE];
            for (t, row) in src.iter_mut().enumerate().take(self.positions) {
                *row = &p.q[self.group_offset(self.first + t) + g * dim..][..dim];
            }
            for lanes in 0..TILE / S::LANES {
                let src = &src[lanes * S::LANES..][..S::LANES];
                let column = g * TILE + lanes * S::LANES;
                let body = dim - dim % S::LANES;
                let mut d = 0;
                while d < body {
                    s.transpose(src, d, &mut scratch.qt[d * rows + column..], rows);
                    d += S::LANES;
                }
                for d in body..dim {
                    for (r, row) in src.iter().enumerate() {
                        scratch.qt[d * rows + column + r] = row.get(d).copied().unwrap_or(0.0);
                    }
                }
            }
        }
        let scale = s.splat(1.0 / libm::sqrtf(dim as f32));
        // The queries pass through registers here anyway: probing them
        // (`x · 0` is NaN exactly for a non-finite `x`) saves the
        // non-finite policy a pass over q in memory.
        let zero = s.zero();
        let mut probe = zero;
        for chunk in scratch.qt[..dim * rows].chunks_exact_mut(S::LANES) {
            let x = s.load(chunk);
            probe = s.fma(x, zero, probe);
            s.store(chunk, s.mul(x, scale));
        }
        scratch.probe += s.reduce_add(probe);
    }

    /// Lists the tile's extras in the forms the lane layout can score: the
    /// log-stride *diagonals* (stride `s` of consecutive positions hits
    /// consecutive keys), and the extras that are one key for many
    /// positions, with the positions that attend to each: the global
    /// tokens, and the landmark blocks when the positions fall into at most
    /// [`MAX_LANDMARK_RUNS`] runs of equal landmark pivots (always, for
    /// `block_size >= TILE`). Returns whether landmarks were listed.
    fn collect_shared(&self, scratch: &mut Scratch) -> bool {
        let p = self.problem;
        let (pattern, n) = (p.pattern, p.n);
        let (shared, shared_bits) = (&mut scratch.shared, &mut scratch.shared_bits);
        shared.clear();
        shared_bits.clear();
        scratch.diagonals.clear();
        let last = self.first + self.positions - 1;
        // Per position, its strides set its bit in the diagonal of that
        // distance (bit-length of the stride indexes the diagonal).
        let mut left = [0u32; usize::BITS as usize];
        let mut right = [0u32; usize::BITS as usize];
        for (t, query) in self.queries().iter().enumerate() {
            query.for_each_stride(pattern, |stride| match stride {
                plan::Stride::Left(s) => left[s.trailing_zeros() as usize] |= 1 << t,
                plan::Stride::Right(s) => right[s.trailing_zeros() as usize] |= 1 << t,
            });
        }
        // Positions and strides are far below isize::MAX (they index a
        // slice), so these conversions are exact.
        let first = self.first as isize;
        for (k, (&left, &right)) in left.iter().zip(&right).enumerate() {
            let stride = 1isize << k;
            if left != 0 {
                scratch.diagonals.push((first - stride, left));
            }
            if right != 0 {
                scratch.diagonals.push((first + stride, right));
            }
        }
        for &g in pattern.globals() {
            if g >= n || (pattern.causal() && g > last) {
                break;
            }
            let mut bits = 0;
            for (t, query) in self.queries().iter().enumerate() {
                if query.global_is_extra(pattern, g) {
                    bits |= 1 << t;
                }
            }
            if bits != 0 {
                shared.push(Extra::Token(g));
                shared_bits.push(bits);
            }
        }
        if !pattern.landmarks() {
            return true;
        }
        let mut runs = 0;
        let mut t = 0;
        while t < self.positions {
            let pivots = plan::landmark_pivots(pattern, self.first + t, n);
            let mut end = t;
            while end + 1 < self.positions
                && plan::landmark_pivots(pattern, self.first + end + 1, n) == pivots
            {
                end += 1;
            }
            runs += 1;
            t = end + 1;
        }
        if runs > MAX_LANDMARK_RUNS {
            return false;
        }
        let mut t = 0;
        while t < self.positions {
            let pivots = plan::landmark_pivots(pattern, self.first + t, n);
            let mut end = t;
            while end + 1 < self.positions
                && plan::landmark_pivots(pattern, self.first + end + 1, n) == pivots
            {
                end += 1;
            }
            let bits = lane_bits(t, end);
            plan::for_each_landmark(pattern, self.first + t, n, |b| {
                shared.push(Extra::Landmark(b));
                shared_bits.push(bits);
            });
            t = end + 1;
        }
        true
    }

    /// Row by row, the landmark blocks when they differ too much per
    /// position to share (`block_size` well below [`TILE`]): scores, their
    /// max (which seeds the row's running max), weights and weighted values
    /// (into `acc`). Without them, it only resets the rows' state.
    #[inline(always)]
    fn per_query<S: Simd>(&self, s: S, scratch: &mut Scratch, with_landmarks: bool) {
        let p = self.problem;
        let (dim, group) = (p.dim, p.group());
        let scale = 1.0 / libm::sqrtf(dim as f32);
        let stride = scratch.extras_stride;
        if !with_landmarks {
            scratch.max.fill(NO_SCORE);
            scratch.sum.fill(0.0);
            scratch.acc.fill(0.0);
            return;
        }
        for t in 0..TILE {
            let i = self.first + t;
            scratch.extras.clear();
            if t < self.positions && with_landmarks {
                plan::for_each_landmark(p.pattern, i, p.n, |b| {
                    scratch.extras.push(Extra::Landmark(b));
                });
            }
            let count = scratch.extras.len();
            if count == 0 {
                for g in 0..group {
                    let row = g * TILE + t;
                    scratch.max[row] = NO_SCORE;
                    scratch.sum[row] = 0.0;
                    scratch.acc[row * dim..][..dim].fill(0.0);
                }
                continue;
            }
            let q_group = &p.q[self.group_offset(i)..][..group * dim];
            let landmark_keys = self.landmark_keys;
            for (e, &extra) in scratch.extras.iter().enumerate() {
                let key = match extra {
                    Extra::Token(j) => self.keys.row(j),
                    Extra::Landmark(b) => &landmark_keys[b * dim..][..dim],
                };
                for (g, q) in q_group.chunks_exact(dim).enumerate() {
                    scratch.xs[g * stride + e] = s.dot(q, key) * scale;
                }
            }
            let padded = count.next_multiple_of(S::LANES);
            for g in 0..group {
                let row = g * TILE + t;
                let xs = &mut scratch.xs[g * stride..][..padded];
                xs[count..].fill(f32::NEG_INFINITY);
                let mut max = s.splat(NO_SCORE);
                for chunk in xs.chunks_exact(S::LANES) {
                    max = s.max(max, s.load(chunk));
                }
                let max = s.reduce_max(max);
                let max_v = s.splat(max);
                let mut total = s.zero();
                for chunk in xs.chunks_exact_mut(S::LANES) {
                    let weight = s.exp(s.sub(s.load(chunk), max_v));
                    s.store(chunk, weight);
                    total = s.add(total, weight);
                }
                scratch.max[row] = max;
                scratch.sum[row] = s.reduce_add(total);
                let weights = &scratch.xs[g * stride..][..count];
                let acc = &mut scratch.acc[row * dim..][..dim];
                let values = Extras {
                    extras: &scratch.extras,
                    rows: self.values,
                    landmarks: self.landmark_values,
                };
                weighted_sum(s, acc, weights, &values);
            }
        }
    }

    /// The shared extras and the diagonals, as one chunk in the lane
    /// layout: shared rows scored like window keys (masked per position),
    /// diagonal rows from transposed key blocks.
    #[inline(always)]
    fn extras_chunk<S: Simd>(&self, s: S, scratch: &mut Scratch, accumulated: bool) {
        let p = self.problem;
        let (dim, rows) = (p.dim, p.rows());
        let shared = scratch.shared.len();
        let shared_rows = shared.next_multiple_of(KEY_PAD);
        let key_rows = shared_rows + scratch.diagonals.len();
        if key_rows == 0 {
            return;
        }
        let st = &mut scratch.st[..key_rows * rows];
        let (shared_st, diagonal_st) = st.split_at_mut(shared_rows * rows);
        let keys = Extras {
            extras: &scratch.shared,
            rows: self.keys,
            landmarks: self.landmark_keys,
        };
        let mask = BitsMask {
            bits: &scratch.shared_bits,
        };
        if shared > 0 {
            scores(
                s,
                &scratch.qt,
                rows,
                dim,
                &keys,
                &mask,
                shared_st,
                &mut scratch.factor,
            );
        } else {
            scratch.factor.fill(f32::NEG_INFINITY);
        }
        for (&(base, bits), st_row) in scratch
            .diagonals
            .iter()
            .zip(diagonal_st.chunks_exact_mut(rows))
        {
            if p.group() == 1 {
                self.diagonal_scores(s, base, bits, st_row, &mut scratch.factor);
            } else {
                self.diagonal_scores_transposed(
                    s,
                    base,
                    bits,
                    &scratch.qt,
                    &scratch.zeros,
                    st_row,
                    &mut scratch.factor,
                );
            }
        }
        softmax(
            s,
            st,
            rows,
            &mut scratch.max,
            &mut scratch.sum,
            &mut scratch.factor,
        );
        if accumulated {
            self.rescale(s, &scratch.factor, &mut scratch.acc);
        }
        let (shared_st, diagonal_st) = st.split_at(shared_rows * rows);
        if shared > 0 {
            let values = Extras {
                extras: &scratch.shared,
                rows: self.values,
                landmarks: self.landmark_values,
            };
            weighted_values(
                s,
                shared_st,
                rows,
                dim,
                self.positions,
                &values,
                &AllKeys,
                &mut scratch.acc,
            );
        }
        self.diagonal_values(s, &scratch.diagonals, diagonal_st, &mut scratch.acc);
    }

    /// One diagonal's scores: position `t` against key `base + t`, for
    /// every head of the group (masked by `bits`), into `st_row`, and maxed
    /// into `chunk_max`. Each position's query row (row-major, as given)
    /// is multiplied into its key lane by lane, and the `LANES` products
    /// of a vector of positions are summed horizontally all at once
    /// ([`Simd::transpose_sum`]), which lands the scores in the lane layout.
    #[inline(always)]
    fn diagonal_scores<S: Simd>(
        &self,
        s: S,
        base: isize,
        bits: u32,
        st_row: &mut [f32],
        chunk_max: &mut [f32],
    ) {
        let p = self.problem;
        let (dim, group) = (p.dim, p.group());
        let body = dim - dim % S::LANES;
        let masked = s.splat(f32::NEG_INFINITY);
        let scale = s.splat(1.0 / libm::sqrtf(dim as f32));
        for t0 in (0..TILE).step_by(S::LANES) {
            for g in 0..group {
                let mut products = [s.zero(); 16];
                let mut tails = [0.0f32; 16];
                for (r, product) in products.iter_mut().enumerate().take(S::LANES) {
                    let t = t0 + r;
                    if bits >> t & 1 == 0 {
                        continue;
                    }
                    // A set bit means `base + t` is on the sequence and `t`
                    // is a real position.
                    let key = self.keys.row(base.wrapping_add_unsigned(t) as usize);
                    let q = &p.q[self.group_offset(self.first + t) + g * dim..][..dim];
                    let mut acc = s.zero();
                    let mut d = 0;
                    while d < body {
                        acc = s.fma(s.load(&q[d..]), s.load(&key[d..]), acc);
                        d += S::LANES;
                    }
                    *product = acc;
                    tails[r] = q[body..].iter().zip(&key[body..]).map(|(q, k)| q * k).sum();
                }
                let sums = s.add(s.transpose_sum(&products), s.load(&tails));
                let col = g * TILE + t0;
                let valid = s.mask_from_bits(bits >> t0);
                let x = s.select(valid, s.mul(sums, scale), masked);
                s.store(&mut st_row[col..], x);
                let max = s.max(s.load(&chunk_max[col..]), x);
                s.store(&mut chunk_max[col..], max);
            }
        }
    }

    /// [`diagonal_scores`](Self::diagonal_scores) for groups of several
    /// heads: the `LANES` keys of a vector of positions are
    /// transposed in registers once, then each head of the group costs one
    /// vertical multiply-add per dim against the tile's transposed,
    /// pre-scaled queries.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn diagonal_scores_transposed<S: Simd>(
        &self,
        s: S,
        base: isize,
        bits: u32,
        qt: &[f32],
        zeros: &[f32],
        st_row: &mut [f32],
        chunk_max: &mut [f32],
    ) {
        let p = self.problem;
        let (dim, rows, group) = (p.dim, p.rows(), p.group());
        let body = dim - dim % S::LANES;
        let masked = s.splat(f32::NEG_INFINITY);
        for t0 in (0..TILE).step_by(S::LANES) {
            let mut src: [&[f32]; 16] = [zeros; 16];
            for (r, row) in src.iter_mut().enumerate().take(S::LANES) {
                if bits >> (t0 + r) & 1 != 0 {
                    // A set bit means `base + t` is on the sequence.
                    *row = self.keys.row(base.wrapping_add_unsigned(t0 + r) as usize);
                }
            }
            for g in 0..group {
                s.store(&mut st_row[g * TILE + t0..], s.zero());
            }
            let mut keys = [s.zero(); 16];
            let mut d0 = 0;
            while d0 < body {
                s.transpose_into(&src, d0, &mut keys);
                for g in 0..group {
                    let col = g * TILE + t0;
                    let mut acc = s.load(&st_row[col..]);
                    for (c, &k) in keys[..S::LANES].iter().enumerate() {
                        acc = s.fma(s.load(&qt[(d0 + c) * rows + col..]), k, acc);
                    }
                    s.store(&mut st_row[col..], acc);
                }
                d0 += S::LANES;
            }
            for g in 0..group {
                let col = g * TILE + t0;
                for (r, key) in src[..S::LANES].iter().enumerate() {
                    for d in body..dim {
                        st_row[col + r] +=
                            qt[d * rows + col + r] * key.get(d).copied().unwrap_or(0.0);
                    }
                }
                let valid = s.mask_from_bits(bits >> t0);
                let x = s.select(valid, s.load(&st_row[col..]), masked);
                s.store(&mut st_row[col..], x);
                let max = s.max(s.load(&chunk_max[col..]), x);
                s.store(&mut chunk_max[col..], max);
            }
        }
    }

    /// The diagonals' weighted values: row `(g, t)` gains, for each
    /// diagonal, its weight times value `base + t`, accumulated in
    /// registers across diagonals (one load and store per row).
    #[inline(always)]
    fn diagonal_values<S: Simd>(
        &self,
        s: S,
        diagonals: &[(isize, u32)],
        st: &[f32],
        acc: &mut [f32],
    ) {
        let p = self.problem;
        let (dim, rows) = (p.dim, p.rows());
        let body = dim - dim % S::LANES;
        for t in 0..self.positions {
            for g in 0..p.group() {
                let row = g * TILE + t;
                let acc = &mut acc[row * dim..][..dim];
                let mut d = 0;
                while d < body {
                    let vectors = ((body - d) / S::LANES).min(4);
                    let block = DiagonalBlock {
                        diagonals,
                        st,
                        row,
                        t,
                        d0: d,
                    };
                    match vectors {
                        4 => self.diagonal_block::<S, 4>(s, &block, acc),
                        3 => self.diagonal_block::<S, 3>(s, &block, acc),
                        2 => self.diagonal_block::<S, 2>(s, &block, acc),
                        _ => self.diagonal_block::<S, 1>(s, &block, acc),
                    }
                    d += vectors * S::LANES;
                }
                for (e, &(base, bits)) in diagonals.iter().enumerate() {
                    if bits >> t & 1 == 0 {
                        continue;
                    }
                    let value = self.values.row(base.wrapping_add_unsigned(t) as usize);
                    let w = st[e * rows + row];
                    for (a, v) in acc[body..].iter_mut().zip(&value[body..]) {
                        *a += w * v;
                    }
                }
            }
        }
    }

    /// One row's dims `d0..d0 + DV * LANES` of
    /// [`diagonal_values`](Self::diagonal_values).
    #[inline(always)]
    fn diagonal_block<S: Simd, const DV: usize>(
        &self,
        s: S,
        block: &DiagonalBlock<'_>,
        acc: &mut [f32],
    ) {
        let rows = self.problem.rows();
        let width = DV * S::LANES;
        let acc = &mut acc[block.d0..][..width];
        let mut sum = [s.zero(); DV];
        for (dv, sum) in sum.iter_mut().enumerate() {
            *sum = s.load(&acc[dv * S::LANES..]);
        }
        for (e, &(base, bits)) in block.diagonals.iter().enumerate() {
            if bits >> block.t & 1 == 0 {
                continue;
            }
            // A set bit means `base + t` is on the sequence.
            let j = base.wrapping_add_unsigned(block.t) as usize;
            let value = &self.values.row(j)[block.d0..][..width];
            let w = s.splat(block.st[e * rows + block.row]);
            for (dv, sum) in sum.iter_mut().enumerate() {
                *sum = s.fma(w, s.load(&value[dv * S::LANES..]), *sum);
            }
        }
        for (dv, sum) in sum.into_iter().enumerate() {
            s.store(&mut acc[dv * S::LANES..], sum);
        }
    }

    /// Scales each real row's accumulator by its `factor`.
    #[inline(always)]
    fn rescale<S: Simd>(&self, s: S, factor: &[f32], acc: &mut [f32]) {
        let p = self.problem;
        let dim = p.dim;
        for g in 0..p.group() {
            for t in 0..self.positions {
                let row = g * TILE + t;
                let acc = &mut acc[row * dim..][..dim];
                let f = factor[row];
                let mut chunks = acc.chunks_exact_mut(S::LANES);
                for chunk in &mut chunks {
                    s.store(chunk, s.mul(s.load(chunk), s.splat(f)));
                }
                for x in chunks.into_remainder() {
                    *x *= f;
                }
            }
        }
    }

    /// The window: the union of the tile's windows, in chunks of keys.
    #[inline(always)]
    fn window<S: Simd>(&self, s: S, scratch: &mut Scratch) {
        let p = self.problem;
        let (dim, rows) = (p.dim, p.rows());
        let union_lo = self.queries()[0].lo;
        let union_hi = self.queries()[self.positions - 1].hi;
        let chunk_len = p.chunk_len();
        let mut start = union_lo;
        while start <= union_hi {
            let end = (start + chunk_len).min(union_hi + 1);
            let key_rows = (end - start).next_multiple_of(KEY_PAD);
            for t in 0..TILE {
                let (lo, hi) = if t < self.positions {
                    let (lo, hi) = (self.queries[t].lo, self.queries[t].hi);
                    let lo = lo.saturating_sub(start) as f32;
                    let hi = if hi < start {
                        -1.0
                    } else {
                        (hi.min(end - 1) - start) as f32
                    };
                    (lo, hi)
                } else {
                    (f32::INFINITY, f32::NEG_INFINITY)
                };
                scratch.lo[t] = lo;
                scratch.hi[t] = hi;
            }
            let mask = RangeMask {
                lo: &scratch.lo,
                hi: &scratch.hi,
            };
            let st = &mut scratch.st[..key_rows * rows];
            let keys = Window {
                rows: self.keys,
                start,
            };
            scores(
                s,
                &scratch.qt,
                rows,
                dim,
                &keys,
                &mask,
                st,
                &mut scratch.factor,
            );
            let values = Window {
                rows: self.values,
                start,
            };
            let state = RowState {
                max: &mut scratch.max,
                sum: &mut scratch.sum,
                factor: &mut scratch.factor,
                acc: &mut scratch.acc,
            };
            let mask = RangeMask {
                lo: &scratch.lo,
                hi: &scratch.hi,
            };
            self.fold_chunk(s, st, &values, &mask, state);
            start = end;
        }
    }

    /// Folds a scored chunk (maxima in `factor`) into the rows: softmax
    /// update, rescale of the earlier accumulation, weighted values.
    #[inline(always)]
    fn fold_chunk<S: Simd>(
        &self,
        s: S,
        st: &mut [f32],
        values: &impl Rows,
        span: &impl KeySpan,
        state: RowState<'_>,
    ) {
        let p = self.problem;
        let (dim, rows) = (p.dim, p.rows());
        softmax(s, st, rows, state.max, state.sum, state.factor);
        self.rescale(s, state.factor, state.acc);
        weighted_values(s, st, rows, dim, self.positions, values, span, state.acc);
    }
}

/// Which row and dims [`Tile::diagonal_block`] accumulates.
struct DiagonalBlock<'a> {
    diagonals: &'a [(isize, u32)],
    /// The diagonals' weights, `[diagonal][rows]`.
    st: &'a [f32],
    row: usize,
    t: usize,
    d0: usize,
}

/// The per-row softmax state a chunk updates.
struct RowState<'a> {
    max: &'a mut [f32],
    sum: &'a mut [f32],
    factor: &'a mut [f32],
    acc: &'a mut [f32],
}

/// `out = acc * factor`, adding `out · 0` to `probe` (vector body,
/// scalar tail): NaN there exactly when an output element is not finite.
#[inline(always)]
fn scale_into<S: Simd>(s: S, out: &mut [f32], acc: &[f32], factor: f32, probe: &mut (S::V, f32)) {
    let f = s.splat(factor);
    let zero = s.zero();
    let mut out_chunks = out.chunks_exact_mut(S::LANES);
    let mut acc_chunks = acc.chunks_exact(S::LANES);
    for (o, a) in (&mut out_chunks).zip(&mut acc_chunks) {
        let x = s.mul(s.load(a), f);
        probe.0 = s.fma(x, zero, probe.0);
        s.store(o, x);
    }
    for (o, a) in out_chunks
        .into_remainder()
        .iter_mut()
        .zip(acc_chunks.remainder())
    {
        *o = a * factor;
        probe.1 += *o * 0.0;
    }
}

/// `acc = Σ_e weights[e] * value(e)`, with the accumulators in registers
/// (up to four vectors at a time) rather than re-stored per term.
#[inline(always)]
fn weighted_sum<S: Simd>(s: S, acc: &mut [f32], weights: &[f32], value: &impl Rows) {
    let dim = acc.len();
    let body = dim - dim % S::LANES;
    let mut d = 0;
    while d < body {
        let vectors = ((body - d) / S::LANES).min(4);
        match vectors {
            4 => weighted_sum_block::<S, 4>(s, acc, weights, value, d),
            3 => weighted_sum_block::<S, 3>(s, acc, weights, value, d),
            2 => weighted_sum_block::<S, 2>(s, acc, weights, value, d),
            _ => weighted_sum_block::<S, 1>(s, acc, weights, value, d),
        }
        d += vectors * S::LANES;
    }
    for (d, a) in acc.iter_mut().enumerate().skip(body) {
        *a = weights
            .iter()
            .enumerate()
            .map(|(e, w)| w * value.row(e)[d])
            .sum();
    }
}

#[inline(always)]
fn weighted_sum_block<S: Simd, const DV: usize>(
    s: S,
    acc: &mut [f32],
    weights: &[f32],
    value: &impl Rows,
    d0: usize,
) {
    let mut sum = [s.zero(); DV];
    for (e, &w) in weights.iter().enumerate() {
        let v = &value.row(e)[d0..][..DV * S::LANES];
        let w = s.splat(w);
        for (dv, sum) in sum.iter_mut().enumerate() {
            *sum = s.fma(w, s.load(&v[dv * S::LANES..]), *sum);
        }
    }
    let acc = &mut acc[d0..][..DV * S::LANES];
    for (dv, sum) in sum.into_iter().enumerate() {
        s.store(&mut acc[dv * S::LANES..], sum);
    }
}

/// `st[j][row] = Qᵀ[·][row] · key(j)` for the padded chunk, `-inf` where
/// `mask(j, col)` clears the lane (for the vector of rows starting at
/// `col`), and each row's maximum into `chunk_max`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scores<S: Simd>(
    s: S,
    qt: &[f32],
    rows: usize,
    dim: usize,
    key: &impl Rows,
    mask: &impl LaneMask<S>,
    st: &mut [f32],
    chunk_max: &mut [f32],
) {
    let vectors = rows / S::LANES;
    let args = ScoreArgs { qt, rows, dim };
    match (
        S::ACCUMULATORS >= 16,
        vectors.is_multiple_of(4),
        vectors.is_multiple_of(2),
    ) {
        (true, true, _) => score_pass::<S, 4, 4>(s, &args, key, mask, st, chunk_max),
        (true, false, true) => score_pass::<S, 2, 8>(s, &args, key, mask, st, chunk_max),
        (true, false, false) => score_pass::<S, 1, 16>(s, &args, key, mask, st, chunk_max),
        (false, true, _) => score_pass::<S, 4, 2>(s, &args, key, mask, st, chunk_max),
        (false, false, true) => score_pass::<S, 2, 4>(s, &args, key, mask, st, chunk_max),
        (false, false, false) => score_pass::<S, 1, 8>(s, &args, key, mask, st, chunk_max),
    }
}

/// The transposed queries [`score_pass`] multiplies keys into.
struct ScoreArgs<'a> {
    qt: &'a [f32],
    rows: usize,
    dim: usize,
}

/// [`scores`] with `VR` row vectors and `KB` keys per register block.
#[inline(always)]
fn score_pass<S: Simd, const VR: usize, const KB: usize>(
    s: S,
    args: &ScoreArgs<'_>,
    key: &impl Rows,
    mask: &impl LaneMask<S>,
    st: &mut [f32],
    chunk_max: &mut [f32],
) {
    let rows = args.rows;
    let width = VR * S::LANES;
    let key_rows = st.len() / rows;
    let masked = s.splat(f32::NEG_INFINITY);
    let mut col = 0;
    while col < rows {
        let mut max = [masked; VR];
        let body = key_rows - key_rows % KB;
        let mut jb = 0;
        while jb < body {
            score_block::<S, VR, KB>(s, args, key, mask, col, jb, st, &mut max);
            jb += KB;
        }
        // A tail of 4 keys (key rows are a multiple of 4; KB is 4 or more,
        // or 2 on narrow ISAs where it divides 4).
        while jb < key_rows {
            if KB >= 4 {
                score_block::<S, VR, 4>(s, args, key, mask, col, jb, st, &mut max);
                jb += 4;
            } else {
                score_block::<S, VR, KB>(s, args, key, mask, col, jb, st, &mut max);
                jb += KB;
            }
        }
        for (vr, &m) in max.iter().enumerate() {
            s.store(&mut chunk_max[col + vr * S::LANES..], m);
        }
        col += width;
    }
}

/// Keys `jb..jb + KB` against row vectors `col..col + VR * LANES`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn score_block<S: Simd, const VR: usize, const KB: usize>(
    s: S,
    args: &ScoreArgs<'_>,
    key: &impl Rows,
    mask: &impl LaneMask<S>,
    col: usize,
    jb: usize,
    st: &mut [f32],
    max: &mut [S::V; VR],
) {
    let (qt, rows, dim) = (args.qt, args.rows, args.dim);
    let width = VR * S::LANES;
    let masked = s.splat(f32::NEG_INFINITY);
    let mut block: [&[f32]; KB] = [&[]; KB];
    for (kb, k) in block.iter_mut().enumerate() {
        *k = &key.row(jb + kb)[..dim];
    }
    let mut acc = [[s.zero(); VR]; KB];
    assert!(col + width <= rows);
    for (d, q) in qt[..dim * rows].chunks_exact(rows).enumerate() {
        let q = &q[col..col + width];
        let mut qv = [s.zero(); VR];
        for (vr, qv) in qv.iter_mut().enumerate() {
            *qv = s.load(&q[vr * S::LANES..]);
        }
        for kb in 0..KB {
            let k = s.splat(block[kb][d]);
            for vr in 0..VR {
                acc[kb][vr] = s.fma(qv[vr], k, acc[kb][vr]);
            }
        }
    }
    for (kb, acc) in acc.iter().enumerate() {
        let dst = &mut st[(jb + kb) * rows + col..][..width];
        for vr in 0..VR {
            let valid = mask.mask(s, jb + kb, col + vr * S::LANES);
            let x = s.select(valid, acc[vr], masked);
            s.store(&mut dst[vr * S::LANES..], x);
            max[vr] = s.max(max[vr], x);
        }
    }
}

/// Folds a scored chunk into the rows' running max and denominator, turns
/// the scores into weights (in place) and leaves in `factor` the rescale
/// each row's earlier accumulation needs (`factor` holds the chunk's
/// maxima on entry).
#[inline(always)]
fn softmax<S: Simd>(
    s: S,
    st: &mut [f32],
    rows: usize,
    max: &mut [f32],
    sum: &mut [f32],
    factor: &mut [f32],
) {
    for col in (0..rows).step_by(S::LANES) {
        let old = s.load(&max[col..]);
        let new = s.max(old, s.load(&factor[col..]));
        let correction = s.exp(s.sub(old, new));
        let mut total = s.zero();
        assert!(col + S::LANES <= rows);
        for row in st.chunks_exact_mut(rows) {
            let cell = &mut row[col..col + S::LANES];
            let weight = s.exp(s.sub(s.load(cell), new));
            s.store(cell, weight);
            total = s.add(total, weight);
        }
        s.store(&mut max[col..], new);
        let total = s.fma(s.load(&sum[col..]), correction, total);
        s.store(&mut sum[col..], total);
        s.store(&mut factor[col..], correction);
    }
}

/// `acc[row][d] += Σ_j st[j][row] · value(j)[d]` for the rows of real
/// positions.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn weighted_values<S: Simd>(
    s: S,
    st: &[f32],
    rows: usize,
    dim: usize,
    positions: usize,
    value: &impl Rows,
    span: &impl KeySpan,
    acc: &mut [f32],
) {
    let body = dim - dim % S::LANES;
    let key_rows = st.len() / rows;
    let mut d = 0;
    while d < body {
        let vectors = ((body - d) / S::LANES).min(4);
        let args = ValueArgs {
            st,
            rows,
            dim,
            d0: d,
        };
        for g in 0..rows / TILE {
            match (S::ACCUMULATORS >= 16, vectors) {
                (true, 4) => value_rows::<S, 4, 4>(s, &args, value, span, g, positions, acc),
                (true, 3) => value_rows::<S, 4, 3>(s, &args, value, span, g, positions, acc),
                (true, 2) => value_rows::<S, 8, 2>(s, &args, value, span, g, positions, acc),
                (true, _) => value_rows::<S, 16, 1>(s, &args, value, span, g, positions, acc),
                (false, 4) => value_rows::<S, 2, 4>(s, &args, value, span, g, positions, acc),
                (false, 3) => value_rows::<S, 2, 3>(s, &args, value, span, g, positions, acc),
                (false, 2) => value_rows::<S, 4, 2>(s, &args, value, span, g, positions, acc),
                (false, _) => value_rows::<S, 8, 1>(s, &args, value, span, g, positions, acc),
            }
        }
        d += vectors * S::LANES;
    }
    // Dims past the last whole vector (odd head_dim), one at a time.
    for g in 0..rows / TILE {
        for t in 0..positions {
            let row = g * TILE + t;
            for d in body..dim {
                let mut x = acc[row * dim + d];
                for j in 0..key_rows {
                    x += st[j * rows + row] * value.row(j)[d];
                }
                acc[row * dim + d] = x;
            }
        }
    }
}

/// The weights [`value_rows`] multiplies values by.
struct ValueArgs<'a> {
    st: &'a [f32],
    rows: usize,
    dim: usize,
    d0: usize,
}

/// Rows of head `g` in blocks of `RB` (then one at a time), `DV` vectors
/// of dims from `d0`.
#[inline(always)]
fn value_rows<S: Simd, const RB: usize, const DV: usize>(
    s: S,
    args: &ValueArgs<'_>,
    value: &impl Rows,
    span: &impl KeySpan,
    g: usize,
    positions: usize,
    acc: &mut [f32],
) {
    let key_rows = args.st.len() / args.rows;
    let mut t = 0;
    while t + RB <= positions {
        let keys = span.span(t, t + RB - 1, key_rows);
        value_block::<S, RB, DV>(s, args, value, keys, g * TILE + t, acc);
        t += RB;
    }
    while t < positions {
        let keys = span.span(t, t, key_rows);
        value_block::<S, 1, DV>(s, args, value, keys, g * TILE + t, acc);
        t += 1;
    }
}

/// Rows `row0..row0 + RB`, dims `d0..d0 + DV * LANES`: weights broadcast
/// from the chunk's rows, values loaded once per key.
#[inline(always)]
fn value_block<S: Simd, const RB: usize, const DV: usize>(
    s: S,
    args: &ValueArgs<'_>,
    value: &impl Rows,
    keys: core::ops::Range<usize>,
    row0: usize,
    acc: &mut [f32],
) {
    let (st, rows, dim, d0) = (args.st, args.rows, args.dim, args.d0);
    let width = DV * S::LANES;
    let mut sum = [[s.zero(); DV]; RB];
    for (rb, sum) in sum.iter_mut().enumerate() {
        let src = &acc[(row0 + rb) * dim + d0..][..width];
        for (dv, sum) in sum.iter_mut().enumerate() {
            *sum = s.load(&src[dv * S::LANES..]);
        }
    }
    assert!(row0 + RB <= rows);
    let first = keys.start;
    for (j, weights) in st[keys.start * rows..keys.end * rows]
        .chunks_exact(rows)
        .enumerate()
    {
        let v_row = value.part(first + j, d0, width);
        let mut v = [s.zero(); DV];
        for (dv, v) in v.iter_mut().enumerate() {
            *v = s.load(&v_row[dv * S::LANES..]);
        }
        let weights = &weights[row0..row0 + RB];
        for rb in 0..RB {
            let w = s.splat(weights[rb]);
            for dv in 0..DV {
                sum[rb][dv] = s.fma(w, v[dv], sum[rb][dv]);
            }
        }
    }
    for (rb, sum) in sum.iter().enumerate() {
        let dst = &mut acc[(row0 + rb) * dim + d0..][..width];
        for (dv, &x) in sum.iter().enumerate() {
            s.store(&mut dst[dv * S::LANES..], x);
        }
    }
}
