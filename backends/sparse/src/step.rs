//! Streaming decode: attention of the newest position over the cache.
//!
//! Why it is separate from prefill: one query at a time has no tile of
//! positions to share keys across, the cache may hold its rows in f16 and
//! in any slot order (eviction), and a step must not allocate (it runs on
//! the firmware's decode path). What a step can share is the KV row: all
//! query heads of a block read each cached row once.
//!
//! How a step runs ([`run`]):
//! 1. **Candidates.** The window of the newest position `i` is a contiguous
//!    run of positions; without eviction or with a sliding window their
//!    slots are contiguous too (at most two runs around the ring), so they
//!    are written as a run, not looked up one by one (heavy-hitter caches
//!    look each position up). The `O(log T)` extras come from
//!    [`plan::for_each_extra`], landmarks as the cache's f32 block sums
//!    (score `q · sum / count`, value `sum / count`: no mean is ever
//!    materialised). Causal candidates depend only on the position, so
//!    this equals prefill.
//! 2. **Chunks.** Candidates are gathered into a fixed-size [`Chunk`] on the
//!    stack (slots and landmark summaries). When everything fits, which is
//!    the usual case (`W + log T` candidates), it is gathered once and
//!    reused by every block of query heads; a larger window streams
//!    through several chunks with an online softmax, so the stack use stays
//!    bounded whatever the window.
//! 3. **Kernels.** Per chunk and block of up to four query heads a
//!    [`Kernel`] computes the scores, folds them into the running softmax
//!    and accumulates the values. [`Portable`] (any target, the ESP32s
//!    included) widens rows through the cache's [`Row`] API; on `x86_64`
//!    `step_x86` does the same with AVX2, FMA and F16C (f16 rows converted
//!    in registers), picked at run time.
//!
//! Per step this is `O(W + log T)` work and no allocation. Heavy-hitter
//! caches also get each token candidate's softmax weight
//! ([`record_attention`], a plain second walk: H2O steps are `O(C)`
//! anyway).
//!
//! Inlining: on `x86_64` the per-block functions are `inline(always)` so
//! they inline into the `#[target_feature]` kernels (a call out of one
//! would lose AVX); elsewhere they are plain `inline`, because forcing six
//! head-block instantiations into one function cost 27 KiB of flash on
//! RISC-V (`cargo xtask size`) for no measured gain.
//!
//! **Invariant:** the query heads of a block are processed together, so
//! each cached row is read once per block (four heads, or fewer for the
//! last block of a head count that is not a multiple of four).

use core::cell::Cell;

use aether_domain::f16_conv::{self, NarrowFn};
use aether_domain::{Eviction, KvCache, Landmark, Row, SparsePattern, numerics};

use crate::Isa;
use crate::plan::{self, Extra};

/// Running maximum before any candidate (finite: see `prefill::NO_SCORE`).
pub(crate) const NO_SCORE: f32 = -1.0e30;

/// Largest unscaled score magnitude the kernels are trusted with. Beyond
/// it a score may be infinite, NaN (the SIMD `max` drops NaN and the
/// vector `exp` clamps) or below the padding lanes' [`NO_SCORE`], which
/// would then win the maximum; such steps go to the exact path. Real
/// inputs never come near: it takes elements around 1e14. Checked as the
/// sum of the magnitudes of a chunk's scores over a block of heads
/// (stricter than each score: one add per vector, and NaN propagates).
pub(crate) const TRUSTED_SCORE: f32 = 1.0e29;

/// Score entries past a chunk's last candidate: a chunk of `CAP`-entry
/// score rows holds at most `CAP - SLACK` candidates, so a kernel may store
/// a whole vector of 8 scores at any candidate index without a partial
/// (length-checked) copy. Entries past the candidates are ignored.
pub(crate) const SLACK: usize = 8;

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

/// The candidate rows of one chunk, as a kernel reads them.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// Cached tokens: row `c` (for KV offset `o`) is
    /// `storage[slots[c] * stride + o..][..dim]`.
    Tokens {
        /// The cache's keys or values, `[capacity][kv_heads][dim]`.
        storage: Row<'a>,
        /// Slot of each candidate.
        slots: &'a [usize],
        /// Values per slot (`kv_heads * dim`).
        stride: usize,
    },
    /// Landmark blocks: row `c` is `sum[o..][..dim] / count` of `marks[c]`.
    Sums {
        /// The blocks' summaries.
        marks: &'a [Landmark<'a>],
        /// Key sums (`true`) or value sums.
        keys: bool,
    },
}

impl Rows<'_> {
    /// Candidates.
    #[inline(always)]
    pub(crate) const fn len(&self) -> usize {
        match self {
            Self::Tokens { slots, .. } => slots.len(),
            Self::Sums { marks, .. } => marks.len(),
        }
    }

    /// Row `c` at KV offset `offset`, with the factor that turns it into the
    /// candidate's vector (1 for a token, `1 / count` for a block sum).
    #[inline(always)]
    fn row(&self, c: usize, offset: usize, dim: usize) -> (Row<'_>, f32) {
        match *self {
            Self::Tokens {
                storage,
                slots,
                stride,
            } => (sub_row(storage, slots[c] * stride + offset, dim), 1.0),
            Self::Sums { marks, keys } => {
                let mark = &marks[c];
                let sum = if keys { mark.key_sum } else { mark.value_sum };
                (
                    Row::F32(&sum[offset..offset + dim]),
                    1.0 / mark.count as f32,
                )
            }
        }
    }
}

/// Elements `start..start + len` of `row`.
///
/// # Panics
/// If the range is out of bounds.
#[inline(always)]
fn sub_row(row: Row<'_>, start: usize, len: usize) -> Row<'_> {
    match row {
        Row::F32(r) => Row::F32(&r[start..start + len]),
        Row::F16(r) => Row::F16(&r[start..start + len]),
    }
}

/// A block of `H` consecutive query heads.
pub(crate) struct Heads<'a, const H: usize> {
    /// Their query rows, `H * dim` values.
    pub(crate) q: &'a [f32],
    /// Offset of each head's KV row within a token (`kv_head * dim`).
    pub(crate) offsets: [usize; H],
    /// Values per head.
    pub(crate) dim: usize,
}

/// Online-softmax state of a block of heads.
pub(crate) struct Softmax<const H: usize> {
    /// Largest scaled score so far.
    pub(crate) max: [f32; H],
    /// Sum of `exp(score - max)` so far.
    pub(crate) sum: [f32; H],
}

/// The arithmetic of a step, once per instruction set.
///
/// `SHARED` says every head of the block reads the same KV head (MQA, or a
/// GQA group), so a row may be loaded and widened once for all of them.
pub(crate) trait Kernel: Copy {
    /// `scores[h][first + c] = factor_c * (q_h · row_c)` for every
    /// candidate `c` of `rows` (key rows). May overwrite up to [`SLACK`]
    /// entries past the last candidate.
    fn scores<const H: usize, const CAP: usize, const SHARED: bool>(
        self,
        rows: &Rows<'_>,
        heads: &Heads<'_, H>,
        first: usize,
        scores: &mut [[f32; CAP]; H],
    );

    /// Scales the first `len` scores of each head by `scale`, folds them
    /// into `state` and replaces them with their unnormalised weights
    /// `exp(score - max)`. `started` says an earlier chunk already
    /// contributed; only then is the returned factor meaningful: what each
    /// head's output so far must be multiplied by (`exp(old max - new
    /// max)`). The flag is whether the scores were trustworthy (see
    /// [`TRUSTED_SCORE`]: the sum of their magnitudes over the block's
    /// heads is finite and below it), checked on the unscaled scores in
    /// the same pass instead of a separate one.
    fn fold<const H: usize, const CAP: usize>(
        self,
        scores: &mut [[f32; CAP]; H],
        len: usize,
        scale: f32,
        state: &mut Softmax<H>,
        started: bool,
    ) -> ([f32; H], bool);

    /// `out_h += weights[h][first + c] * factor_c * row_c` for every
    /// candidate `c` of `rows` (value rows); `out` holds the block's `H`
    /// output rows.
    fn accumulate<const H: usize, const CAP: usize, const SHARED: bool>(
        self,
        rows: &Rows<'_>,
        heads: &Heads<'_, H>,
        first: usize,
        weights: &[[f32; CAP]; H],
        out: &mut [f32],
    );
}

/// Plain Rust through the cache's [`Row`] API: runs anywhere.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Kernel for Portable {
    #[cfg_attr(target_arch = "x86_64", inline(always))]
    #[cfg_attr(not(target_arch = "x86_64"), inline)]
    fn scores<const H: usize, const CAP: usize, const SHARED: bool>(
        self,
        rows: &Rows<'_>,
        heads: &Heads<'_, H>,
        first: usize,
        scores: &mut [[f32; CAP]; H],
    ) {
        let dim = heads.dim;
        for c in 0..rows.len() {
            for (h, scores) in scores.iter_mut().enumerate() {
                let (row, factor) = rows.row(c, heads.offsets[h], dim);
                scores[first + c] = row.dot(&heads.q[h * dim..][..dim]) * factor;
            }
        }
    }

    #[cfg_attr(target_arch = "x86_64", inline(always))]
    #[cfg_attr(not(target_arch = "x86_64"), inline)]
    fn fold<const H: usize, const CAP: usize>(
        self,
        scores: &mut [[f32; CAP]; H],
        len: usize,
        scale: f32,
        state: &mut Softmax<H>,
        started: bool,
    ) -> ([f32; H], bool) {
        let trusted = scores
            .iter()
            .all(|s| crate::exact::sum_abs_below(&s[..len], TRUSTED_SCORE));
        let mut correction = [1.0; H];
        for (h, scores) in scores.iter_mut().enumerate() {
            let scores = &mut scores[..len];
            let mut max = state.max[h];
            for x in scores.iter_mut() {
                *x *= scale;
                max = max.max(*x);
            }
            if started {
                correction[h] = numerics::exp(state.max[h] - max);
            }
            state.max[h] = max;
            let mut total = 0.0;
            for x in scores.iter_mut() {
                *x = numerics::exp(*x - max);
                total += *x;
            }
            state.sum[h] = if started {
                state.sum[h] * correction[h] + total
            } else {
                total
            };
        }
        (correction, trusted)
    }

    #[cfg_attr(target_arch = "x86_64", inline(always))]
    #[cfg_attr(not(target_arch = "x86_64"), inline)]
    fn accumulate<const H: usize, const CAP: usize, const SHARED: bool>(
        self,
        rows: &Rows<'_>,
        heads: &Heads<'_, H>,
        first: usize,
        weights: &[[f32; CAP]; H],
        out: &mut [f32],
    ) {
        let dim = heads.dim;
        for c in 0..rows.len() {
            for (h, out) in out.chunks_exact_mut(dim).enumerate() {
                let (row, factor) = rows.row(c, heads.offsets[h], dim);
                row.add_scaled_to(out, weights[h][first + c] * factor);
            }
        }
    }
}

/// Writes the output of the newest cached position (`cache.len() - 1`,
/// whose k/v were just appended) for every query head; `q` and `out` hold
/// `q_heads * dim` values. `isa` is the backend's instruction set:
/// [`Isa::Avx512`] runs the AVX-512 kernel and [`Isa::Avx2`] the AVX2 one
/// when this CPU also has F16C (and FMA); anything else runs [`Portable`].
///
/// Returns `false` when a score was not finite (overflow of large finite
/// inputs): the kernels' `max` and `exp` are not IEEE-faithful there, so
/// `out` must then be recomputed by the exact path.
pub(crate) fn attend(
    head: &StepHead<'_>,
    isa: Isa,
    q: &[f32],
    cache: &KvCache,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::step_x86::{self, Avx2F16c, Avx512F16c};
        if isa == Isa::Avx512
            && let Some(token) = Avx512F16c::get()
        {
            // SAFETY: the token exists only after AVX-512F, AVX2, FMA and
            // F16C were detected, the target features of the function.
            return unsafe { step_x86::avx512::attend(token, head, q, cache, out) };
        }
        if matches!(isa, Isa::Avx2 | Isa::Avx512)
            && let Some(token) = Avx2F16c::get()
        {
            // SAFETY: the token exists only after AVX2, FMA and F16C were
            // detected, the target features `step_x86::attend` enables.
            return unsafe { step_x86::attend(token, head, q, cache, out) };
        }
    }
    let _ = isa;
    run::<Portable, 56, 16>(Portable, head, q, cache, out)
}

/// How this backend's appends narrow rows into an f16 cache: F16C when
/// `isa` is a vector one and the CPU has it, else the portable conversion.
/// Both give the same bits.
pub(crate) fn narrow_fn(isa: Isa) -> NarrowFn {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512) {
        return crate::step_x86::narrow_f16c;
    }
    let _ = isa;
    f16_conv::narrow_widen_slice
}

/// Which positions of the newest query's window the cache holds, and how to
/// find their slots.
struct Window {
    /// Newest position.
    i: usize,
    /// First window position that may be retained.
    first: usize,
    /// Last window position (`i`).
    last: usize,
    /// Slot of `first` when retained positions sit in consecutive slots
    /// (modulo the capacity); `None` when each must be looked up.
    first_slot: Option<usize>,
}

impl Window {
    fn of(pattern: &SparsePattern, cache: &KvCache, i: usize) -> Self {
        let (lo, last) = pattern.window_bounds(i, i + 1);
        match cache.layout().eviction {
            // Positions sit at `position mod capacity` (without eviction
            // nothing wraps), and the retained ones are the newest
            // `retained()`, so the window's retained part is one run.
            Eviction::None | Eviction::SlidingWindow => {
                let first = lo.max(cache.len() - cache.retained());
                Self {
                    i,
                    first,
                    last,
                    first_slot: cache.slot(first),
                }
            }
            Eviction::HeavyHitter { .. } => Self {
                i,
                first: lo,
                last,
                first_slot: None,
            },
        }
    }
}

/// How far a chunked walk over the candidates has got.
#[derive(Clone, Copy)]
struct Cursor {
    /// Next window position.
    position: usize,
    /// Its slot, when the window is a run.
    slot: usize,
    /// Extras (in [`plan::for_each_extra`] order) already taken.
    extras: usize,
}

impl Cursor {
    const fn start(window: &Window) -> Self {
        Self {
            position: window.first,
            slot: match window.first_slot {
                Some(slot) => slot,
                None => 0,
            },
            extras: 0,
        }
    }
}

/// A placeholder summary for unused entries of [`Chunk::marks`].
const NO_MARK: Landmark<'static> = Landmark {
    key_sum: &[],
    value_sum: &[],
    count: 0,
};

/// Up to `CAP - SLACK` retained candidates of one position, at most
/// `MARKS` of them landmark blocks.
struct Chunk<'c, const CAP: usize, const MARKS: usize> {
    slots: [usize; CAP],
    tokens: usize,
    marks: [Landmark<'c>; MARKS],
    mark_count: usize,
}

impl<'c, const CAP: usize, const MARKS: usize> Chunk<'c, CAP, MARKS> {
    /// Candidates a chunk takes.
    const ROOM: usize = CAP - SLACK;

    const fn new() -> Self {
        Self {
            slots: [0; CAP],
            tokens: 0,
            marks: [NO_MARK; MARKS],
            mark_count: 0,
        }
    }

    const fn len(&self) -> usize {
        self.tokens + self.mark_count
    }

    fn clear(&mut self) {
        self.tokens = 0;
        self.mark_count = 0;
    }

    /// Adds the candidates after `cursor` until the chunk is full; true
    /// when none is left.
    fn fill(
        &mut self,
        pattern: &SparsePattern,
        cache: &'c KvCache,
        window: &Window,
        cursor: &mut Cursor,
    ) -> bool {
        if cursor.position <= window.last {
            let room = Self::ROOM - self.len();
            if window.first_slot.is_some() {
                let take = (window.last + 1 - cursor.position).min(room);
                let capacity = cache.capacity();
                let mut slot = cursor.slot;
                for s in &mut self.slots[self.tokens..self.tokens + take] {
                    *s = slot;
                    slot += 1;
                    if slot == capacity {
                        slot = 0;
                    }
                }
                self.tokens += take;
                cursor.position += take;
                cursor.slot = slot;
            } else {
                while cursor.position <= window.last && self.len() < Self::ROOM {
                    if let Some(slot) = cache.slot(cursor.position) {
                        self.slots[self.tokens] = slot;
                        self.tokens += 1;
                    }
                    cursor.position += 1;
                }
            }
            if cursor.position <= window.last {
                return false;
            }
        }
        let mut seen = 0;
        let mut stopped = false;
        plan::for_each_extra(pattern, window.i, window.i + 1, |extra| {
            if stopped {
                return;
            }
            if seen < cursor.extras {
                seen += 1;
                return;
            }
            let fits = match extra {
                Extra::Token(j) => {
                    let fits = self.len() < Self::ROOM;
                    if let (true, Some(slot)) = (fits, cache.slot(j)) {
                        self.slots[self.tokens] = slot;
                        self.tokens += 1;
                    }
                    fits
                }
                Extra::Landmark(b) => {
                    let fits = self.len() < Self::ROOM && self.mark_count < MARKS;
                    if let (true, Some(mark)) = (fits, cache.landmark(b)) {
                        self.marks[self.mark_count] = mark;
                        self.mark_count += 1;
                    }
                    fits
                }
            };
            if fits {
                seen += 1;
                cursor.extras = seen;
            } else {
                stopped = true;
            }
        });
        !stopped
    }
}

/// Asks the memory system for the key and value rows of the chunk's
/// candidates past the first `window` tokens, before any is read.
///
/// Why: those are the `O(log T)` rows far behind the newest position. In a
/// long stream, or with many tracks stepped in turn, they are cold, and a
/// miss each taken one after another inside the score loop is most of a
/// step; issued together, the misses overlap. The window is one contiguous
/// run, which the hardware prefetcher follows by itself. (With heavy-hitter
/// eviction `window` over-counts the window's retained tokens and a few
/// extras go unprefetched: this is only a hint.)
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_extras<const CAP: usize, const MARKS: usize>(
    cache: &KvCache,
    chunk: &Chunk<'_, CAP, MARKS>,
    window: usize,
) {
    let stride = cache.layout().token_len();
    let slots = chunk.slots.get(window..chunk.tokens).unwrap_or(&[]);
    for storage in [cache.keys(), cache.values()] {
        for &slot in slots {
            prefetch(sub_row(storage, slot * stride, stride));
        }
    }
    for mark in &chunk.marks[..chunk.mark_count] {
        prefetch(Row::F32(mark.key_sum));
        prefetch(Row::F32(mark.value_sum));
    }
}

/// Prefetches every cache line of `row` into all cache levels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch(row: Row<'_>) {
    use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    /// Bytes per cache line on every x86_64 core in use.
    const LINE: usize = 64;
    let (start, bytes) = match row {
        Row::F32(r) => (r.as_ptr().cast::<i8>(), size_of_val(r)),
        Row::F16(r) => (r.as_ptr().cast::<i8>(), size_of_val(r)),
    };
    for offset in (0..bytes).step_by(LINE) {
        // SAFETY: SSE is part of the x86_64 baseline; a prefetch is a hint
        // that never faults, and the address is inside `row` anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
    }
}

/// What every block of heads of one step shares.
struct Step<'s, 'c> {
    head: &'s StepHead<'s>,
    cache: &'c KvCache,
    window: Window,
    q: &'s [f32],
    scale: f32,
    /// All candidates fit the first chunk, which is then reused.
    single: bool,
    /// Cleared when a score was not finite (see [`attend`]).
    finite: Cell<bool>,
}

/// The whole step with kernel `K`, score rows of `CAP` entries (a multiple
/// of 8; chunks of `CAP - SLACK` candidates) of which at most `MARKS` are
/// landmarks. Inlined so that a
/// `#[target_feature]` entry point compiles all of it with its features.
#[cfg_attr(target_arch = "x86_64", inline(always))]
#[cfg_attr(not(target_arch = "x86_64"), inline)]
pub(crate) fn run<K: Kernel, const CAP: usize, const MARKS: usize>(
    kernel: K,
    head: &StepHead<'_>,
    q: &[f32],
    cache: &KvCache,
    out: &mut [f32],
) -> bool {
    const { assert!(CAP.is_multiple_of(8) && CAP > SLACK && MARKS > 0 && MARKS <= CAP - SLACK) };
    let Some(i) = cache.len().checked_sub(1) else {
        return true;
    };
    let window = Window::of(head.pattern, cache, i);
    let mut chunk = Chunk::<CAP, MARKS>::new();
    let mut cursor = Cursor::start(&window);
    let single = chunk.fill(head.pattern, cache, &window, &mut cursor);
    #[cfg(target_arch = "x86_64")]
    prefetch_extras(cache, &chunk, window.last + 1 - window.first);
    let step = Step {
        head,
        cache,
        window,
        q,
        scale: 1.0 / libm::sqrtf(head.dim as f32),
        single,
        finite: Cell::new(true),
    };
    let mut first = 0;
    while first < head.q_heads {
        first += match head.q_heads - first {
            4.. => block::<K, 4, CAP, MARKS>(kernel, &step, first, &mut chunk, out),
            2 | 3 => block::<K, 2, CAP, MARKS>(kernel, &step, first, &mut chunk, out),
            _ => block::<K, 1, CAP, MARKS>(kernel, &step, first, &mut chunk, out),
        };
    }
    step.finite.get()
}

/// Query heads `first..first + H`; returns `H`.
#[cfg_attr(target_arch = "x86_64", inline(always))]
#[cfg_attr(not(target_arch = "x86_64"), inline)]
fn block<'c, K: Kernel, const H: usize, const CAP: usize, const MARKS: usize>(
    kernel: K,
    step: &Step<'_, 'c>,
    first: usize,
    chunk: &mut Chunk<'c, CAP, MARKS>,
    out: &mut [f32],
) -> usize {
    let dim = step.head.dim;
    let group = step.head.q_heads / step.head.kv_heads;
    let mut offsets = [0; H];
    for (h, offset) in offsets.iter_mut().enumerate() {
        *offset = (first + h) / group * dim;
    }
    let heads = Heads {
        q: &step.q[first * dim..(first + H) * dim],
        offsets,
        dim,
    };
    let out = &mut out[first * dim..(first + H) * dim];
    if offsets.iter().all(|&o| o == offsets[0]) {
        heads_block::<K, H, CAP, MARKS, true>(kernel, step, &heads, chunk, out);
    } else {
        heads_block::<K, H, CAP, MARKS, false>(kernel, step, &heads, chunk, out);
    }
    H
}

#[cfg_attr(target_arch = "x86_64", inline(always))]
#[cfg_attr(not(target_arch = "x86_64"), inline)]
fn heads_block<
    'c,
    K: Kernel,
    const H: usize,
    const CAP: usize,
    const MARKS: usize,
    const SHARED: bool,
>(
    kernel: K,
    step: &Step<'_, 'c>,
    heads: &Heads<'_, H>,
    chunk: &mut Chunk<'c, CAP, MARKS>,
    out: &mut [f32],
) {
    out.fill(0.0);
    let mut state = Softmax {
        max: [NO_SCORE; H],
        sum: [0.0; H],
    };
    if step.single {
        process::<K, H, CAP, MARKS, SHARED>(kernel, step, heads, chunk, &mut state, false, out);
    } else {
        let mut cursor = Cursor::start(&step.window);
        let mut started = false;
        loop {
            chunk.clear();
            let done = chunk.fill(step.head.pattern, step.cache, &step.window, &mut cursor);
            process::<K, H, CAP, MARKS, SHARED>(
                kernel, step, heads, chunk, &mut state, started, out,
            );
            started = true;
            if done {
                break;
            }
        }
    }
    for (out, sum) in out.chunks_exact_mut(heads.dim).zip(state.sum) {
        numerics::scale(out, 1.0 / sum);
    }
}

/// Folds one chunk into a block's softmax and output; `started` when an
/// earlier chunk already contributed (its output then needs rescaling).
#[cfg_attr(target_arch = "x86_64", inline(always))]
#[cfg_attr(not(target_arch = "x86_64"), inline)]
fn process<K: Kernel, const H: usize, const CAP: usize, const MARKS: usize, const SHARED: bool>(
    kernel: K,
    step: &Step<'_, '_>,
    heads: &Heads<'_, H>,
    chunk: &Chunk<'_, CAP, MARKS>,
    state: &mut Softmax<H>,
    started: bool,
    out: &mut [f32],
) {
    let stride = step.head.kv_heads * step.head.dim;
    let slots = &chunk.slots[..chunk.tokens];
    let marks = &chunk.marks[..chunk.mark_count];
    let mut scores = [[0.0f32; CAP]; H];
    let keys = Rows::Tokens {
        storage: step.cache.keys(),
        slots,
        stride,
    };
    kernel.scores::<H, CAP, SHARED>(&keys, heads, 0, &mut scores);
    let key_sums = Rows::Sums { marks, keys: true };
    kernel.scores::<H, CAP, SHARED>(&key_sums, heads, chunk.tokens, &mut scores);
    let (correction, trusted) = kernel.fold(&mut scores, chunk.len(), step.scale, state, started);
    if !trusted {
        step.finite.set(false);
    }
    if started {
        for (out, c) in out.chunks_exact_mut(heads.dim).zip(correction) {
            numerics::scale(out, c);
        }
    }
    let values = Rows::Tokens {
        storage: step.cache.values(),
        slots,
        stride,
    };
    kernel.accumulate::<H, CAP, SHARED>(&values, heads, 0, &scores, out);
    let value_sums = Rows::Sums { marks, keys: false };
    kernel.accumulate::<H, CAP, SHARED>(&value_sums, heads, chunk.tokens, &scores, out);
}

/// The key row of a retained candidate, the factor that turns it into the
/// candidate's key (1 for a token, `1 / count` for a block sum) and the
/// token's slot; `None` when the candidate was evicted.
fn retained_key(
    cache: &KvCache,
    kv_head: usize,
    dim: usize,
    candidate: Extra,
) -> Option<(Row<'_>, f32, Option<usize>)> {
    match candidate {
        Extra::Token(j) => {
            let slot = cache.slot(j)?;
            Some((cache.key(slot, kv_head), 1.0, Some(slot)))
        }
        Extra::Landmark(b) => {
            let mark = cache.landmark(b)?;
            let row = &mark.key_sum[kv_head * dim..(kv_head + 1) * dim];
            Some((Row::F32(row), 1.0 / mark.count as f32, None))
        }
    }
}

/// Calls `visit` for every candidate of position `i` (of `n`): the window
/// `lo..=hi`, then the extra tokens and landmarks.
pub(crate) fn for_each_candidate(
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
/// `O(W + log T)` candidates); only called when the cache tracks mass,
/// whose steps cost `O(C)` for the eviction scan anyway.
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
            let (key, factor, slot) = retained_key(cache, kv_head, dim, candidate)?;
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

#[cfg(test)]
mod tests;
