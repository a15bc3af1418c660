//! The exact path: one query row computed literally as the non-finite
//! policy defines it (`docs/non-finite.md`).
//!
//! Why it exists: the fast kernels are free to reorder, mask and vectorise
//! because for finite inputs that only moves rounding. With a NaN or an
//! infinity those tricks are no longer harmless — a masked lane multiplies a
//! value by a zero weight (0 × NaN = NaN leaks into rows that never chose
//! the token), a vector `max` drops a NaN score, a clamped `exp` turns
//! NaN into a number — and f32 scores of large finite inputs can overflow
//! where the f64 definition does not. Rather than make every kernel
//! bit-careful, the backend sends each affected row here: scores in f64,
//! the maximum ignoring NaN, `exp`, the sum, the weighted values, exactly
//! the reference's arithmetic, so every ISA gives the same non-finite
//! elements. It is slow (each candidate is re-scored a few times) and
//! allocation-free, and only runs for rows the fast path cannot vouch for.

use alloc::vec::Vec;

use aether_domain::{AttentionError, KvCache, Row, SparsePattern, f16_conv};

use crate::plan::Extra;
use crate::prefill::Problem;
use crate::step::{self, StepHead};

/// Output values computed per pass over the candidates (f64 accumulators
/// on the stack, so nothing is allocated whatever the head dimension).
const PIECE: usize = 16;

/// Where a row's candidates come from: each candidate's key and value,
/// element by element, widened to f64 (landmarks as block means).
pub(crate) trait Candidates {
    /// A candidate (token or landmark block).
    type Candidate: Copy;
    /// Calls `visit` for every candidate, in a fixed order.
    fn for_each(&self, visit: impl FnMut(Self::Candidate));
    /// Element `d` of candidate `c`'s key.
    fn key(&self, c: Self::Candidate, d: usize) -> f64;
    /// Element `d` of candidate `c`'s value.
    fn value(&self, c: Self::Candidate, d: usize) -> f64;
}

/// Attention of `query` over `candidates`, written to `out` (same length):
/// `s_c = (q · k_c) / sqrt(dim)` in f64, `m = max s_c` ignoring NaN,
/// `w_c = exp(s_c - m)`, `out = Σ w_c v_c / Σ w_c`. IEEE arithmetic does
/// the rest: a NaN score makes every weight's sum NaN, a `+∞` score gives
/// `∞ - ∞`, a `-∞` score a weight of exactly 0.
pub(crate) fn attend<C: Candidates>(candidates: &C, query: &[f32], out: &mut [f32]) {
    let dim = query.len();
    let scale = 1.0 / libm::sqrt(dim as f64);
    let score = |c: C::Candidate| {
        let dot: f64 = (0..dim)
            .map(|d| f64::from(query[d]) * candidates.key(c, d))
            .sum();
        dot * scale
    };
    let mut max = f64::NEG_INFINITY;
    candidates.for_each(|c| max = max.max(score(c)));
    let mut total = 0.0;
    candidates.for_each(|c| total += libm::exp(score(c) - max));
    for (piece, out) in out.chunks_mut(PIECE).enumerate() {
        let first = piece * PIECE;
        let mut acc = [0.0f64; PIECE];
        candidates.for_each(|c| {
            let weight = libm::exp(score(c) - max);
            for (t, acc) in acc.iter_mut().enumerate().take(out.len()) {
                *acc += weight * candidates.value(c, first + t);
            }
        });
        for (o, acc) in out.iter_mut().zip(acc) {
            *o = (acc / total) as f32;
        }
    }
}

/// Element `d` of a cached row, widened.
fn element(row: Row<'_>, d: usize) -> f64 {
    match row {
        Row::F32(r) => f64::from(r[d]),
        Row::F16(r) => f64::from(f16_conv::widen(r[d])),
    }
}

/// True when every element of `x` is finite. Branch-free over the slice
/// (`x * 0` is 0 for finite `x` and NaN otherwise, and NaN is sticky in a
/// sum), so it vectorises: the check costs a fraction of a pass over the
/// data, cheap next to the attention it guards.
pub(crate) fn all_finite(x: &[f32]) -> bool {
    const LANES: usize = 16;
    let (chunks, tail) = x.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for chunk in chunks {
        for l in 0..LANES {
            acc[l] += chunk[l] * 0.0;
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a += v * 0.0;
    }
    acc.iter().sum::<f32>() == 0.0
}

/// A prefill row's candidates: tokens of `k`/`v` and landmark blocks whose
/// key and value are the mean of their tokens' rows (in f64, as the
/// definition says; the fast path's f32 means are not reused).
pub(crate) struct PrefillCandidates<'a> {
    /// The validated prefill.
    pub(crate) problem: &'a Problem<'a>,
    /// KV head of the query head being recomputed.
    pub(crate) kv_head: usize,
    /// The query's candidate set.
    pub(crate) set: &'a aether_domain::Candidates,
}

impl PrefillCandidates<'_> {
    fn element(&self, data: &[f32], j: usize, d: usize) -> f64 {
        let p = self.problem;
        f64::from(data[(j * p.kv_heads + self.kv_head) * p.dim + d])
    }

    fn mean(&self, data: &[f32], block: usize, d: usize) -> f64 {
        let tokens = self.problem.pattern.block_tokens(block, self.problem.n);
        let count = tokens.len() as f64;
        tokens.map(|j| self.element(data, j, d)).sum::<f64>() / count
    }
}

impl Candidates for PrefillCandidates<'_> {
    type Candidate = Extra;

    fn for_each(&self, mut visit: impl FnMut(Extra)) {
        self.set.tokens.iter().for_each(|&j| visit(Extra::Token(j)));
        self.set
            .landmark_blocks
            .iter()
            .for_each(|&b| visit(Extra::Landmark(b)));
    }

    fn key(&self, c: Extra, d: usize) -> f64 {
        match c {
            Extra::Token(j) => self.element(self.problem.k, j, d),
            Extra::Landmark(b) => self.mean(self.problem.k, b, d),
        }
    }

    fn value(&self, c: Extra, d: usize) -> f64 {
        match c {
            Extra::Token(j) => self.element(self.problem.v, j, d),
            Extra::Landmark(b) => self.mean(self.problem.v, b, d),
        }
    }
}

/// Makes a fast prefill's `out` obey the policy: recomputes exactly every
/// row whose query, candidate keys or values (landmark means included) are
/// not all finite, or whose fast result is not finite. `landmark_finite`
/// says whether the fast path's f32 mean of a block (per KV head) was
/// finite: an f32 sum of large finite rows can overflow where the f64
/// mean does not. `vouched` is the kernel's word that every query and
/// output element is finite (it saw them all in registers).
///
/// With finite inputs this costs no pass over memory beyond what the
/// kernel could not vouch for: with landmarks on, finite block means
/// imply finite K and V (every token is in a block, and an f32 sum with a
/// non-finite term is not finite); only when something is non-finite are
/// the candidate sets walked.
///
/// # Errors
/// [`AttentionError::OutOfMemory`] when the bookkeeping cannot be reserved.
pub(crate) fn repair_prefill(
    problem: &Problem<'_>,
    landmark_finite: impl Fn(usize, usize) -> bool,
    vouched: bool,
    out: &mut [f32],
) -> Result<(), AttentionError> {
    let p = problem;
    let (dim, kv_heads) = (p.dim, p.kv_heads);
    let group = p.q_heads / kv_heads;
    let blocks = if p.pattern.landmarks() {
        p.pattern.block_count(p.n)
    } else {
        0
    };
    let marks_finite = (0..kv_heads).all(|g| (0..blocks).all(|b| landmark_finite(g, b)));
    let kv_finite = || (blocks > 0 && marks_finite) || (all_finite(p.k) && all_finite(p.v));
    let mut set = aether_domain::Candidates::default();
    if marks_finite && (vouched || all_finite(p.q)) && kv_finite() {
        if vouched || all_finite(out) {
            return Ok(());
        }
        // Only overflow can have spoilt a row.
        for (r, row) in out.chunks_exact_mut(dim).enumerate() {
            if !all_finite(row) {
                let (i, h) = (r / p.q_heads, r % p.q_heads);
                p.pattern.candidates_into(i, p.n, &mut set);
                recompute(p, &set, i, h, row);
            }
        }
        return Ok(());
    }
    // Which token rows (per KV head) and blocks are non-finite.
    let mut bad_token = flags(p.n * kv_heads)?;
    for (t, bad) in bad_token.iter_mut().enumerate() {
        let row = t * dim..(t + 1) * dim;
        *bad = !all_finite(&p.k[row.clone()]) || !all_finite(&p.v[row]);
    }
    let mut bad_block = flags(blocks * kv_heads)?;
    for b in 0..blocks {
        for g in 0..kv_heads {
            bad_block[b * kv_heads + g] = !landmark_finite(g, b)
                || p.pattern
                    .block_tokens(b, p.n)
                    .any(|j| bad_token[j * kv_heads + g]);
        }
    }
    for i in 0..p.n {
        p.pattern.candidates_into(i, p.n, &mut set);
        for g in 0..kv_heads {
            let touched = set.tokens.iter().any(|&j| bad_token[j * kv_heads + g])
                || set
                    .landmark_blocks
                    .iter()
                    .any(|&b| bad_block[b * kv_heads + g]);
            for h in g * group..(g + 1) * group {
                let r = i * p.q_heads + h;
                let row = &mut out[r * dim..(r + 1) * dim];
                if touched || !all_finite(&p.q[r * dim..(r + 1) * dim]) || !all_finite(row) {
                    recompute(p, &set, i, h, row);
                }
            }
        }
    }
    Ok(())
}

/// Row `(i, h)` of the prefill by the exact path.
fn recompute(
    p: &Problem<'_>,
    set: &aether_domain::Candidates,
    i: usize,
    h: usize,
    row: &mut [f32],
) {
    let r = i * p.q_heads + h;
    let candidates = PrefillCandidates {
        problem: p,
        kv_head: h / (p.q_heads / p.kv_heads),
        set,
    };
    attend(&candidates, &p.q[r * p.dim..(r + 1) * p.dim], row);
}

/// `len` false flags, reserved fallibly.
fn flags(len: usize) -> Result<Vec<bool>, AttentionError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| AttentionError::OutOfMemory { bytes: len })?;
    v.resize(len, false);
    Ok(v)
}

/// A step's candidates: the retained candidates of the newest position
/// `i`, tokens by slot and landmark blocks as the mean of their (retained)
/// tokens' stored rows, as the reference reads a cache.
pub(crate) struct StepCandidates<'a> {
    /// The head's pattern (causal).
    pub(crate) pattern: &'a SparsePattern,
    /// The cache, with position `i` appended.
    pub(crate) cache: &'a KvCache,
    /// The newest position.
    pub(crate) i: usize,
    /// KV head of the query head being computed.
    pub(crate) kv_head: usize,
}

/// A retained step candidate.
#[derive(Clone, Copy)]
pub(crate) enum Retained {
    /// A token, by slot.
    Slot(usize),
    /// A landmark block whose summary the cache retains.
    Block(usize),
}

impl StepCandidates<'_> {
    fn mean(&self, block: usize, d: usize, keys: bool) -> f64 {
        let mut sum = 0.0;
        let mut count = 0usize;
        for j in self.pattern.block_tokens(block, self.i + 1) {
            if let Some(slot) = self.cache.slot(j) {
                sum += self.row(slot, d, keys);
                count += 1;
            }
        }
        sum / count as f64
    }

    fn row(&self, slot: usize, d: usize, keys: bool) -> f64 {
        let row = if keys {
            self.cache.key(slot, self.kv_head)
        } else {
            self.cache.value(slot, self.kv_head)
        };
        element(row, d)
    }
}

impl Candidates for StepCandidates<'_> {
    type Candidate = Retained;

    fn for_each(&self, mut visit: impl FnMut(Retained)) {
        let window = self.pattern.window_bounds(self.i, self.i + 1);
        step::for_each_candidate(self.pattern, self.i, self.i + 1, window, |c| match c {
            Extra::Token(j) => {
                if let Some(slot) = self.cache.slot(j) {
                    visit(Retained::Slot(slot));
                }
            }
            Extra::Landmark(b) => {
                if self.cache.landmark(b).is_some() {
                    visit(Retained::Block(b));
                }
            }
        });
    }

    fn key(&self, c: Retained, d: usize) -> f64 {
        match c {
            Retained::Slot(slot) => self.row(slot, d, true),
            Retained::Block(b) => self.mean(b, d, true),
        }
    }

    fn value(&self, c: Retained, d: usize) -> f64 {
        match c {
            Retained::Slot(slot) => self.row(slot, d, false),
            Retained::Block(b) => self.mean(b, d, false),
        }
    }
}

/// The newest position's output for every query head by the exact path.
pub(crate) fn step(head: &StepHead<'_>, q: &[f32], cache: &KvCache, out: &mut [f32]) {
    let Some(i) = cache.len().checked_sub(1) else {
        return;
    };
    let group = head.q_heads / head.kv_heads;
    for (h, (query, row)) in q
        .chunks_exact(head.dim)
        .zip(out.chunks_exact_mut(head.dim))
        .enumerate()
    {
        let candidates = StepCandidates {
            pattern: head.pattern,
            cache,
            i,
            kv_head: h / group,
        };
        attend(&candidates, query, row);
    }
}

/// True when the magnitudes of `x` sum to less than `bound` (false for
/// NaN and infinities), so every element is below `bound`. A sum rather
/// than a comparison per element because it vectorises to one `and` and
/// one `add` per vector; the sum exceeding `bound` while every element is
/// below only sends a step to the (correct) exact path.
pub(crate) fn sum_abs_below(x: &[f32], bound: f32) -> bool {
    const LANES: usize = 16;
    let (chunks, tail) = x.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for chunk in chunks {
        for l in 0..LANES {
            acc[l] += chunk[l].abs();
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a += v.abs();
    }
    acc.iter().sum::<f32>() < bound
}
