//! The prefill kernel: tiles of queries against the union of their windows,
//! plus a short per-query pass over the extras.
//!
//! Why it is shaped this way: a query's window is a contiguous run of keys,
//! and consecutive queries' windows overlap almost entirely. So the kernel
//! takes [`TILE`] consecutive query positions of every query head sharing a
//! KV head (the GQA group) as *rows*, and computes their scores against the
//! union of their windows as a small matrix product, with the rows in the
//! vector lanes: `S^T[j][row] = Σ_d K[j][d] · Qᵀ[d][row]`. Each key element
//! is broadcast once and multiplied into every row of the group, so a KV row
//! is read once per group, not once per head, and no key or value is ever
//! transposed (only the tile's queries, once). Softmax then runs down the
//! columns (per lane: no horizontal reductions), masked to each row's own
//! window, and the value product accumulates `Oᵀ[d][row]` the same way.
//!
//! The few extras of each query (globals and log-stride tokens outside the
//! window, landmark block means: `O(log N)`) differ per query, so they are
//! handled row by row first; their running maximum seeds the window's
//! online softmax and their weighted values are merged at the end.
//!
//! Memory: scratch is allocated once per call, sized by the tile, the
//! window (capped at [`CHUNK`] keys; wider windows stream through it with an
//! online softmax) and one KV head's landmark means; nothing is `O(N²)` and
//! nothing is allocated per query.
//!
//! **Invariant:** the candidates of every query are exactly its window
//! (masked per row) plus [`plan::for_each_extra`]; padding rows and lanes
//! are masked out and never reach the output.

use alloc::vec::Vec;

use aether_domain::{AttentionError, SparsePattern};

use crate::plan::{self, Extra};
use crate::simd::Simd;

/// Consecutive query positions processed together (a multiple of every
/// ISA's lane count).
pub(crate) const TILE: usize = 16;
/// Most window keys scored at once; wider windows are streamed.
const CHUNK: usize = 256;
/// Key rows are padded to a multiple of this (the widest micro-kernel).
const KEY_PAD: usize = 16;
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
}

/// Scratch of one prefill call, allocated once.
pub(crate) struct Scratch {
    /// Queries of the tile, transposed and scaled: `[dim][rows]`.
    qt: Vec<f32>,
    /// Scores, then probabilities, of the window chunk: `[chunk][rows]`.
    st: Vec<f32>,
    /// Window part of the output, transposed: `[dim][rows]`.
    outt: Vec<f32>,
    /// Running maximum per row.
    max: Vec<f32>,
    /// Running softmax denominator per row.
    sum: Vec<f32>,
    /// Factor still owed to the extras' weighted values per row.
    extra_scale: Vec<f32>,
    /// First window key of each tile position, relative to the chunk.
    lo: Vec<f32>,
    /// Last window key of each tile position, relative to the chunk.
    hi: Vec<f32>,
    /// Extras' scores, then weights, of one query: `[group][extras_stride]`.
    xs: Vec<f32>,
    /// Row stride of `xs` (a multiple of [`KEY_PAD`]).
    extras_stride: usize,
    /// The extras of one query.
    extras: Vec<Extra>,
    /// Landmark key means of one KV head: `[blocks][dim]`.
    landmark_keys: Vec<f32>,
    /// Landmark value means of one KV head: `[blocks][dim]`.
    landmark_values: Vec<f32>,
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

impl Scratch {
    /// Scratch for `problem`.
    ///
    /// # Errors
    /// [`AttentionError::OutOfMemory`] when a buffer cannot be reserved.
    pub(crate) fn new(problem: &Problem<'_>) -> Result<Self, AttentionError> {
        let rows = problem.rows();
        let dim = problem.dim;
        let max_extras = plan::max_extras(problem.pattern, problem.n);
        let extras_stride = max_extras.max(1).next_multiple_of(KEY_PAD);
        let landmarks = if problem.pattern.landmarks() {
            problem.pattern.block_count(problem.n) * dim
        } else {
            0
        };
        let mut extras = Vec::new();
        extras
            .try_reserve_exact(max_extras)
            .map_err(|_| AttentionError::OutOfMemory {
                bytes: max_extras * core::mem::size_of::<Extra>(),
            })?;
        Ok(Self {
            qt: buffer(dim * rows, 0.0)?,
            st: buffer(problem.chunk_len() * rows, 0.0)?,
            outt: buffer(dim * rows, 0.0)?,
            max: buffer(rows, 0.0)?,
            sum: buffer(rows, 0.0)?,
            extra_scale: buffer(rows, 0.0)?,
            lo: buffer(TILE, 0.0)?,
            hi: buffer(TILE, 0.0)?,
            xs: buffer(problem.group() * extras_stride, 0.0)?,
            extras_stride,
            extras,
            landmark_keys: buffer(landmarks, 0.0)?,
            landmark_values: buffer(landmarks, 0.0)?,
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
    fn new(data: &'a [f32], problem: &Problem<'_>, head: usize) -> Self {
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
        &self.data[start..start + self.dim]
    }
}

/// Runs the whole prefill with instruction set `s`, writing `out`
/// (`[n][q_heads][dim]`, overwritten).
#[inline(always)]
pub(crate) fn run<S: Simd>(s: S, problem: &Problem<'_>, scratch: &mut Scratch, out: &mut [f32]) {
    if problem.n == 0 {
        return;
    }
    for head in 0..problem.kv_heads {
        let keys = HeadRows::new(problem.k, problem, head);
        let values = HeadRows::new(problem.v, problem, head);
        if problem.pattern.landmarks() {
            landmark_means(s, problem, keys, &mut scratch.landmark_keys);
            landmark_means(s, problem, values, &mut scratch.landmark_values);
        }
        let mut first = 0;
        while first < problem.n {
            tile(s, problem, head, first, keys, values, scratch, out);
            first += TILE;
        }
    }
}

/// Means of every block of `rows` (a trailing partial block averages the
/// tokens it has).
#[inline(always)]
fn landmark_means<S: Simd>(s: S, problem: &Problem<'_>, rows: HeadRows<'_>, out: &mut [f32]) {
    let dim = problem.dim;
    for (block, mean) in out.chunks_exact_mut(dim).enumerate() {
        let tokens = problem.pattern.block_tokens(block, problem.n);
        let inverse = 1.0 / tokens.len() as f32;
        mean.fill(0.0);
        for j in tokens {
            s.axpy(mean, 1.0, rows.row(j));
        }
        for x in mean.iter_mut() {
            *x *= inverse;
        }
    }
}

/// Attention of positions `first..first + TILE` for every query head of KV
/// head `head`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<S: Simd>(
    s: S,
    problem: &Problem<'_>,
    head: usize,
    first: usize,
    keys: HeadRows<'_>,
    values: HeadRows<'_>,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let pattern = problem.pattern;
    let (n, dim, group) = (problem.n, problem.dim, problem.group());
    let rows = problem.rows();
    let scale = 1.0 / libm::sqrtf(dim as f32);
    let positions = TILE.min(n - first);
    let group_len = group * dim;
    let group_offset = |i: usize| (i * problem.q_heads + head * group) * dim;

    // Queries, transposed to [dim][row] and pre-scaled; padding rows zero.
    for t in 0..TILE {
        for g in 0..group {
            let row = g * TILE + t;
            if t < positions {
                let q = &problem.q[group_offset(first + t) + g * dim..][..dim];
                for (d, &x) in q.iter().enumerate() {
                    scratch.qt[d * rows + row] = x * scale;
                }
            } else {
                for d in 0..dim {
                    scratch.qt[d * rows + row] = 0.0;
                }
            }
        }
    }

    // Extras, row by row: scores, their max, weights, weighted values (into
    // the output rows, which serve as accumulators until the end).
    for t in 0..TILE {
        if t >= positions {
            for g in 0..group {
                scratch.max[g * TILE + t] = NO_SCORE;
                scratch.sum[g * TILE + t] = 0.0;
            }
            continue;
        }
        let i = first + t;
        scratch.extras.clear();
        plan::for_each_extra(pattern, i, n, |extra| scratch.extras.push(extra));
        let out_group = &mut out[group_offset(i)..][..group_len];
        out_group.fill(0.0);
        let count = scratch.extras.len();
        if count == 0 {
            for g in 0..group {
                scratch.max[g * TILE + t] = NO_SCORE;
                scratch.sum[g * TILE + t] = 0.0;
            }
            continue;
        }
        let q_group = &problem.q[group_offset(i)..][..group_len];
        let stride = scratch.extras_stride;
        let key_of = |extra: Extra| match extra {
            Extra::Token(j) => keys.row(j),
            Extra::Landmark(b) => &scratch.landmark_keys[b * dim..][..dim],
        };
        for (e, &extra) in scratch.extras.iter().enumerate() {
            let key = key_of(extra);
            for (g, q) in q_group.chunks_exact(dim).enumerate() {
                scratch.xs[g * stride + e] = s.dot(q, key) * scale;
            }
        }
        let padded = count.next_multiple_of(S::LANES);
        for g in 0..group {
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
                let p = s.exp(s.sub(s.load(chunk), max_v));
                s.store(chunk, p);
                total = s.add(total, p);
            }
            scratch.max[g * TILE + t] = max;
            scratch.sum[g * TILE + t] = s.reduce_add(total);
        }
        for (e, &extra) in scratch.extras.iter().enumerate() {
            let value = match extra {
                Extra::Token(j) => values.row(j),
                Extra::Landmark(b) => &scratch.landmark_values[b * dim..][..dim],
            };
            for (g, o) in out_group.chunks_exact_mut(dim).enumerate() {
                s.axpy(o, scratch.xs[g * stride + e], value);
            }
        }
    }

    // The window, as chunks of the union of the tile's windows.
    scratch.outt.fill(0.0);
    scratch.extra_scale.fill(1.0);
    let union_lo = pattern.window_bounds(first, n).0;
    let union_hi = pattern.window_bounds(first + positions - 1, n).1;
    let chunk_len = problem.chunk_len();
    let mut start = union_lo;
    while start <= union_hi {
        let end = (start + chunk_len).min(union_hi + 1);
        let padded = (end - start).next_multiple_of(KEY_PAD);
        for t in 0..TILE {
            let (lo, hi) = if t < positions {
                let (lo, hi) = pattern.window_bounds(first + t, n);
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
        let st = &mut scratch.st[..padded * rows];
        scores(s, &scratch.qt, rows, dim, keys, start, st);
        let state = RowState {
            max: &mut scratch.max,
            sum: &mut scratch.sum,
            extra_scale: &mut scratch.extra_scale,
        };
        softmax_chunk(
            s,
            st,
            rows,
            dim,
            state,
            &scratch.lo,
            &scratch.hi,
            &mut scratch.outt,
        );
        weighted_values(s, st, rows, dim, values, start, &mut scratch.outt);
        start = end;
    }

    // Merge: (extras' values · owed factor + window values) / denominator.
    for t in 0..positions {
        let out_group = &mut out[group_offset(first + t)..][..group_len];
        for (g, o) in out_group.chunks_exact_mut(dim).enumerate() {
            let row = g * TILE + t;
            let inverse = 1.0 / scratch.sum[row];
            let owed = scratch.extra_scale[row];
            for (d, x) in o.iter_mut().enumerate() {
                *x = (*x * owed + scratch.outt[d * rows + row]) * inverse;
            }
        }
    }
}

/// The per-row softmax state the window chunks update.
struct RowState<'a> {
    max: &'a mut [f32],
    sum: &'a mut [f32],
    extra_scale: &'a mut [f32],
}

/// `st[j][row] = Qᵀ[·][row] · K[start + j]` for the padded chunk.
#[inline(always)]
fn scores<S: Simd>(
    s: S,
    qt: &[f32],
    rows: usize,
    dim: usize,
    keys: HeadRows<'_>,
    start: usize,
    st: &mut [f32],
) {
    let vectors = rows / S::LANES;
    match (
        S::ACCUMULATORS >= 16,
        vectors.is_multiple_of(4),
        vectors.is_multiple_of(2),
    ) {
        (true, true, _) => score_pass::<S, 4, 4>(s, qt, rows, dim, keys, start, st),
        (true, false, true) => score_pass::<S, 2, 8>(s, qt, rows, dim, keys, start, st),
        (true, false, false) => score_pass::<S, 1, 16>(s, qt, rows, dim, keys, start, st),
        (false, true, _) => score_pass::<S, 4, 2>(s, qt, rows, dim, keys, start, st),
        (false, false, true) => score_pass::<S, 2, 4>(s, qt, rows, dim, keys, start, st),
        (false, false, false) => score_pass::<S, 1, 8>(s, qt, rows, dim, keys, start, st),
    }
}

/// [`scores`] with `VR` row vectors and `KB` keys per register block.
#[inline(always)]
fn score_pass<S: Simd, const VR: usize, const KB: usize>(
    s: S,
    qt: &[f32],
    rows: usize,
    dim: usize,
    keys: HeadRows<'_>,
    start: usize,
    st: &mut [f32],
) {
    let width = VR * S::LANES;
    let key_rows = st.len() / rows;
    let mut col = 0;
    while col < rows {
        let mut jb = 0;
        while jb < key_rows {
            let block: [&[f32]; KB] = core::array::from_fn(|kb| &keys.row(start + jb + kb)[..dim]);
            let mut acc = [[s.zero(); VR]; KB];
            for d in 0..dim {
                let q = &qt[d * rows + col..][..width];
                let qv: [S::V; VR] = core::array::from_fn(|vr| s.load(&q[vr * S::LANES..]));
                for kb in 0..KB {
                    let k = s.splat(block[kb][d]);
                    for vr in 0..VR {
                        acc[kb][vr] = s.fma(qv[vr], k, acc[kb][vr]);
                    }
                }
            }
            for (kb, acc) in acc.iter().enumerate() {
                let dst = &mut st[(jb + kb) * rows + col..][..width];
                for (vr, &a) in acc.iter().enumerate() {
                    s.store(&mut dst[vr * S::LANES..], a);
                }
            }
            jb += KB;
        }
        col += width;
    }
}

/// Masks each row to its window, folds the chunk into the row's running
/// max and denominator, rescales what was accumulated before, and turns the
/// scores into weights (in place).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn softmax_chunk<S: Simd>(
    s: S,
    st: &mut [f32],
    rows: usize,
    dim: usize,
    state: RowState<'_>,
    lo: &[f32],
    hi: &[f32],
    outt: &mut [f32],
) {
    let key_rows = st.len() / rows;
    let per_head = TILE / S::LANES;
    for v in 0..rows / S::LANES {
        let col = v * S::LANES;
        let tcol = (v % per_head) * S::LANES;
        let (lo, hi) = (s.load(&lo[tcol..]), s.load(&hi[tcol..]));
        let old = s.load(&state.max[col..]);
        let mut max = old;
        let mut j_v = s.zero();
        let one = s.splat(1.0);
        let masked = s.splat(f32::NEG_INFINITY);
        for j in 0..key_rows {
            let cell = &mut st[j * rows + col..];
            let x = s.select(s.in_range(j_v, lo, hi), s.load(cell), masked);
            s.store(cell, x);
            max = s.max(max, x);
            j_v = s.add(j_v, one);
        }
        let correction = s.exp(s.sub(old, max));
        let mut total = s.zero();
        for j in 0..key_rows {
            let cell = &mut st[j * rows + col..];
            let p = s.exp(s.sub(s.load(cell), max));
            s.store(cell, p);
            total = s.add(total, p);
        }
        s.store(&mut state.max[col..], max);
        let sum = s.fma(s.load(&state.sum[col..]), correction, total);
        s.store(&mut state.sum[col..], sum);
        let owed = s.mul(s.load(&state.extra_scale[col..]), correction);
        s.store(&mut state.extra_scale[col..], owed);
        for d in 0..dim {
            let cell = &mut outt[d * rows + col..];
            s.store(cell, s.mul(s.load(cell), correction));
        }
    }
}

/// `outt[d][row] += Σ_j V[start + j][d] · st[j][row]`.
#[inline(always)]
fn weighted_values<S: Simd>(
    s: S,
    st: &[f32],
    rows: usize,
    dim: usize,
    values: HeadRows<'_>,
    start: usize,
    outt: &mut [f32],
) {
    let vectors = rows / S::LANES;
    match (
        S::ACCUMULATORS >= 16,
        vectors.is_multiple_of(4),
        vectors.is_multiple_of(2),
    ) {
        (true, true, _) => value_pass::<S, 4, 4>(s, st, rows, dim, values, start, outt),
        (true, false, true) => value_pass::<S, 2, 8>(s, st, rows, dim, values, start, outt),
        (true, false, false) => value_pass::<S, 1, 16>(s, st, rows, dim, values, start, outt),
        (false, true, _) => value_pass::<S, 4, 2>(s, st, rows, dim, values, start, outt),
        (false, false, true) => value_pass::<S, 2, 4>(s, st, rows, dim, values, start, outt),
        (false, false, false) => value_pass::<S, 1, 8>(s, st, rows, dim, values, start, outt),
    }
}

/// [`weighted_values`] with `VR` row vectors and `DB` dims per register
/// block; dims past the last whole block go one at a time.
#[inline(always)]
fn value_pass<S: Simd, const VR: usize, const DB: usize>(
    s: S,
    st: &[f32],
    rows: usize,
    dim: usize,
    values: HeadRows<'_>,
    start: usize,
    outt: &mut [f32],
) {
    let width = VR * S::LANES;
    let body = dim - dim % DB;
    let mut col = 0;
    while col < rows {
        let mut d0 = 0;
        while d0 < body {
            value_block::<S, VR, DB>(s, st, rows, col, d0, values, start, outt);
            d0 += DB;
        }
        while d0 < dim {
            value_block::<S, VR, 1>(s, st, rows, col, d0, values, start, outt);
            d0 += 1;
        }
        col += width;
    }
}

/// Dims `d0..d0 + DB` of row vectors `col..col + VR * LANES`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn value_block<S: Simd, const VR: usize, const DB: usize>(
    s: S,
    st: &[f32],
    rows: usize,
    col: usize,
    d0: usize,
    values: HeadRows<'_>,
    start: usize,
    outt: &mut [f32],
) {
    let width = VR * S::LANES;
    let key_rows = st.len() / rows;
    let mut acc: [[S::V; VR]; DB] = core::array::from_fn(|dd| {
        let src = &outt[(d0 + dd) * rows + col..][..width];
        core::array::from_fn(|vr| s.load(&src[vr * S::LANES..]))
    });
    for j in 0..key_rows {
        let p_row = &st[j * rows + col..][..width];
        let p: [S::V; VR] = core::array::from_fn(|vr| s.load(&p_row[vr * S::LANES..]));
        let value = &values.row(start + j)[d0..d0 + DB];
        for dd in 0..DB {
            let x = s.splat(value[dd]);
            for vr in 0..VR {
                acc[dd][vr] = s.fma(p[vr], x, acc[dd][vr]);
            }
        }
    }
    for (dd, acc) in acc.iter().enumerate() {
        let dst = &mut outt[(d0 + dd) * rows + col..][..width];
        for (vr, &a) in acc.iter().enumerate() {
            s.store(&mut dst[vr * S::LANES..], a);
        }
    }
}
