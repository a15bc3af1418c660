//! The KV cache that streaming decode appends to, one token at a time.
//!
//! Keys and values live in fixed *slots* (all memory is reserved at
//! creation, so a decode step never allocates), stored as f32 or f16 as
//! the head config says. Besides the rows, the cache keeps for each recent
//! landmark block the running sum of its keys and values, so a landmark
//! mean costs one division per element instead of a pass over the block;
//! appending a token updates one block sum, which keeps each decode step
//! independent of the stream length.
//!
//! # Positions and eviction
//! Positions are absolute: the n-th appended token has position n-1,
//! whatever was evicted before it. A decode step for position `t` takes the
//! candidate set of `t` (`docs/attention.md`) and keeps only what the cache
//! retains:
//! - a token candidate `j` counts iff [`KvCache::slot`] finds it;
//! - a landmark block counts iff [`KvCache::landmark`] finds its summary.
//!   The cache holds the summaries of the `⌈capacity/B⌉ + 1` most recent
//!   blocks and drops a block's summary as soon as any of its tokens is
//!   evicted, so a retained summary is always the mean of B retained tokens.
//!
//! Without eviction nothing is ever dropped (positions below the capacity
//! all fit), so decode equals prefill. Sliding-window eviction keeps the
//! newest `capacity` tokens; heavy-hitter (H2O) eviction keeps the
//! `recent` newest plus the tokens with the most attention mass, which the
//! backends report through [`KvCache::record_attention`].
//!
//! The cache is shaped by a head ([`CacheLayout::of`]) so a caller cannot
//! pair it with a backend of another shape without the backend noticing.
//!
//! # Non-finite values
//! An f32 cache stores whatever it is given. An f16 cache stores NaN and
//! ±inf as such but refuses a finite value that f16 would round to
//! infinity ([`AttentionError::F16Overflow`]): overflow is an input error,
//! not a silent infinity. [`KvCache::non_finite_rows`] counts the retained
//! tokens holding a NaN or ±inf, so a kernel can keep a fast path that
//! assumes finite rows without scanning.
//!
//! # Undo
//! [`KvCache::undo_append`] takes back the last successful append and the
//! attention recorded since, so a caller that appended to several caches
//! for one step (the model: one per layer) can retract the step when a
//! later stage fails. Each append saves what it overwrites: its slot's old
//! rows (one row copy, in storage dtype), flag and position, the block id
//! an eviction dropped, the index entries it moved, and (heavy-hitter) all
//! attention masses, so records made after it are undone too. The landmark
//! sums need no copy: the ring writes an entry's new sums into a spare
//! buffer and swaps, so the old ones stay intact. All of it is reserved at
//! creation: `2 × token_len` stored elements plus one spare `2 ×
//! token_len` f32 sum buffer per cache, 1 byte of non-finite flag per
//! slot, and (heavy-hitter only) per slot a usize of index journal and an
//! f32 of saved mass.
//!
//! **Invariant:** every operation validates before it mutates; an `Err`
//! leaves the cache exactly as it was (the undo record included).
//!
//! **Invariant:** a cache reserves all its memory at creation; `append`,
//! `record_attention` and `undo_append` never allocate, on clones too
//! (tested with a counting allocator, every policy and dtype).
//!
//! **Invariant:** after a successful `undo_append` the cache equals (`==`,
//! bit for bit) a clone taken just before the undone append, and behaves
//! as that clone would; undo is available once per successful append and
//! not after `clear` (property-tested over random operations, every policy
//! and dtype).
//!
//! **Invariant:** an f16 cache never stores an infinity it was not given;
//! the overflow check reads the f32 input before any (possibly F16C)
//! narrowing, so every ISA accepts and refuses the same tokens.
//!
//! **Invariant:** [`KvCache::non_finite_rows`] equals the number of
//! retained slots whose stored key or value rows hold a non-finite element,
//! after every operation (property-tested against a brute-force count for
//! every policy and dtype).

use alloc::vec::Vec;

use half::f16;

use crate::config::{CacheDtype, Eviction, HeadConfig};
use crate::error::{AttentionError, ConfigError, Operand, ShapeError};
use crate::f16_conv::{self, NarrowFn};
use crate::numerics::{self, LANES};

/// The head shape and storage policy a cache is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheLayout {
    /// Key/value heads per token.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Landmark block size.
    pub block_size: usize,
    /// Element type of the stored rows.
    pub dtype: CacheDtype,
    /// What a full cache does.
    pub eviction: Eviction,
}

impl CacheLayout {
    /// The layout a backend with `config` needs.
    #[must_use]
    pub const fn of(config: &HeadConfig) -> Self {
        Self {
            kv_heads: config.kv_heads,
            head_dim: config.head_dim,
            block_size: config.block_size,
            dtype: config.cache_dtype,
            eviction: config.eviction,
        }
    }

    /// Values per cached token for keys (and again for values).
    #[must_use]
    pub const fn token_len(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Bytes of key and value rows per cached token:
    /// `2 × kv_heads × head_dim × element size`. Block sums add
    /// `2 × kv_heads × head_dim × 4` bytes per B tokens (always f32: sums
    /// of many rows need the precision).
    #[must_use]
    pub const fn bytes_per_token(&self) -> usize {
        2 * self.token_len() * self.dtype.size()
    }
}

/// One cached row (or a run of rows), in its stored element type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Row<'a> {
    /// f32 storage.
    F32(&'a [f32]),
    /// f16 storage.
    F16(&'a [f16]),
}

impl Row<'_> {
    /// Elements in the row.
    #[must_use]
    pub const fn len(&self) -> usize {
        match self {
            Self::F32(r) => r.len(),
            Self::F16(r) => r.len(),
        }
    }

    /// True for an empty row.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `q · row`, in f32 (f16 elements widened exactly, [`LANES`] at a time).
    ///
    /// # Panics
    /// In debug builds, if the lengths differ.
    #[inline(always)]
    #[must_use]
    pub fn dot(&self, q: &[f32]) -> f32 {
        match self {
            Self::F32(r) => numerics::dot(q, r),
            Self::F16(r) => {
                debug_assert_eq!(q.len(), r.len());
                let mut acc = [0.0f32; LANES];
                let mut wide = [0.0f32; LANES];
                let mut q_chunks = q.chunks_exact(LANES);
                let mut r_chunks = r.chunks_exact(LANES);
                for (qc, rc) in (&mut q_chunks).zip(&mut r_chunks) {
                    f16_conv::widen_slice(rc, &mut wide);
                    for lane in 0..LANES {
                        acc[lane] += qc[lane] * wide[lane];
                    }
                }
                let mut sum = 0.0f32;
                for (x, h) in q_chunks.remainder().iter().zip(r_chunks.remainder()) {
                    sum += x * f16_conv::widen(*h);
                }
                acc.iter().fold(sum, |s, a| s + a)
            }
        }
    }

    /// `out += weight * row`.
    ///
    /// # Panics
    /// In debug builds, if the lengths differ.
    #[inline(always)]
    pub fn add_scaled_to(&self, out: &mut [f32], weight: f32) {
        match self {
            Self::F32(r) => numerics::axpy(out, weight, r),
            Self::F16(r) => {
                debug_assert_eq!(out.len(), r.len());
                let mut wide = [0.0f32; LANES];
                let mut o_chunks = out.chunks_exact_mut(LANES);
                let mut r_chunks = r.chunks_exact(LANES);
                for (oc, rc) in (&mut o_chunks).zip(&mut r_chunks) {
                    f16_conv::widen_slice(rc, &mut wide);
                    numerics::axpy(oc, weight, &wide);
                }
                for (o, h) in o_chunks
                    .into_remainder()
                    .iter_mut()
                    .zip(r_chunks.remainder())
                {
                    *o += weight * f16_conv::widen(*h);
                }
            }
        }
    }

    /// Widens the row into `out` (exact for both types).
    ///
    /// # Panics
    /// If `out.len() != self.len()`.
    #[inline]
    pub fn to_f32(&self, out: &mut [f32]) {
        match self {
            Self::F32(r) => out.copy_from_slice(r),
            Self::F16(r) => f16_conv::widen_slice(r, out),
        }
    }
}

/// The summary of one landmark block: sums over its B tokens' rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Landmark<'a> {
    /// Sum of the block's keys, `kv_heads * head_dim` values.
    pub key_sum: &'a [f32],
    /// Sum of the block's values, `kv_heads * head_dim` values.
    pub value_sum: &'a [f32],
    /// Tokens summed (B for a whole block).
    pub count: usize,
}

#[derive(Debug, Clone)]
enum Store {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// Bit for bit, so a NaN row equals itself (caches are compared by
/// contents; IEEE equality would make a cache holding NaN unequal to its
/// own clone).
impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::F32(a), Self::F32(b)) => same_bits(a, b),
            (Self::F16(a), Self::F16(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            _ => false,
        }
    }
}

impl Store {
    fn zeroed(dtype: CacheDtype, values: usize) -> Result<Self, AttentionError> {
        Ok(match dtype {
            CacheDtype::F32 => Self::F32(zeroed(values, 0.0)?),
            CacheDtype::F16 => Self::F16(zeroed(values, f16::ZERO)?),
        })
    }

    fn rows(&self, start: usize, len: usize) -> Row<'_> {
        match self {
            Self::F32(v) => Row::F32(&v[start..start + len]),
            Self::F16(v) => Row::F16(&v[start..start + len]),
        }
    }

    fn all(&self) -> Row<'_> {
        match self {
            Self::F32(v) => Row::F32(v),
            Self::F16(v) => Row::F16(v),
        }
    }

    /// Stores `x` at `start` (f16 through `narrow`) and writes what was
    /// stored (rounded for f16) to `stored`, so block sums add exactly the
    /// cached values.
    fn write(&mut self, start: usize, x: &[f32], stored: &mut [f32], narrow: NarrowFn) {
        match self {
            Self::F32(v) => {
                v[start..start + x.len()].copy_from_slice(x);
                stored.copy_from_slice(x);
            }
            Self::F16(v) => narrow(x, &mut v[start..start + x.len()], stored),
        }
    }

    /// Copies the `into.len()` elements at `start` into `into` (same dtype).
    fn save(&self, start: usize, into: &mut Self) {
        match (self, into) {
            (Self::F32(v), Self::F32(d)) => {
                let len = d.len();
                d.copy_from_slice(&v[start..start + len]);
            }
            (Self::F16(v), Self::F16(d)) => {
                let len = d.len();
                d.copy_from_slice(&v[start..start + len]);
            }
            _ => unreachable!("an undo row has its cache's dtype"),
        }
    }

    /// Writes `from` back at `start` (same dtype); the inverse of `save`.
    fn restore(&mut self, start: usize, from: &Self) {
        match (self, from) {
            (Self::F32(v), Self::F32(s)) => v[start..start + s.len()].copy_from_slice(s),
            (Self::F16(v), Self::F16(s)) => v[start..start + s.len()].copy_from_slice(s),
            _ => unreachable!("an undo row has its cache's dtype"),
        }
    }
}

/// `len` copies of `zero`, reserved fallibly so running out of memory is
/// the typed [`AttentionError::OutOfMemory`] rather than an abort.
pub(crate) fn zeroed<T: Clone>(len: usize, zero: T) -> Result<Vec<T>, AttentionError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| AttentionError::OutOfMemory {
            bytes: len.saturating_mul(core::mem::size_of::<T>()),
        })?;
    v.resize(len, zero);
    Ok(v)
}

/// Marks a ring entry that holds no block.
const NO_BLOCK: usize = usize::MAX;

/// Running sums of the most recent blocks, in a ring indexed `block % len`.
///
/// Entry `e`'s sums live in buffer `buffer_of[e]` of a pool holding one
/// buffer more than there are entries. Why the spare: an append writes the
/// entry's new sums (old + row) into the spare and swaps the two indices,
/// which costs what adding in place would, yet leaves the old sums intact,
/// so undoing the append is an index swap and exact (subtracting the row
/// again would not be: float addition does not round-trip).
#[derive(Debug, Clone)]
struct LandmarkRing {
    block: Vec<usize>,
    count: Vec<usize>,
    buffer_of: Vec<usize>,
    /// The pool buffer no entry uses.
    spare: usize,
    /// `entries + 1` buffers of `token_len` sums each.
    key_sums: Vec<f32>,
    value_sums: Vec<f32>,
    token_len: usize,
}

/// Entry by entry, sums bit for bit (see [`Store`]'s `PartialEq`); the
/// spare buffer and which pool buffer holds which entry are not contents.
impl PartialEq for LandmarkRing {
    fn eq(&self, other: &Self) -> bool {
        self.block == other.block
            && self.count == other.count
            && self.token_len == other.token_len
            && (0..self.block.len()).all(|e| {
                let (a, b) = (self.range(e), other.range(e));
                same_bits(&self.key_sums[a.clone()], &other.key_sums[b.clone()])
                    && same_bits(&self.value_sums[a], &other.value_sums[b])
            })
    }
}

/// How to take back one [`LandmarkRing::add`].
#[derive(Debug, Clone, Copy)]
struct RingUndo {
    entry: usize,
    /// The entry's block and count before the add.
    block: usize,
    count: usize,
    /// The add wrote new sums (it returns early for a dropped summary).
    swapped: bool,
}

impl LandmarkRing {
    fn new(entries: usize, token_len: usize) -> Result<Self, AttentionError> {
        let values = entries
            .checked_add(1)
            .and_then(|buffers| buffers.checked_mul(token_len))
            .ok_or(ShapeError::Overflow {
                seq: entries,
                heads: 1,
                dim: token_len,
            })?;
        let mut buffer_of = zeroed(entries, 0)?;
        for (e, b) in buffer_of.iter_mut().enumerate() {
            *b = e;
        }
        Ok(Self {
            block: zeroed(entries, NO_BLOCK)?,
            count: zeroed(entries, 0)?,
            buffer_of,
            spare: entries,
            key_sums: zeroed(values, 0.0)?,
            value_sums: zeroed(values, 0.0)?,
            token_len,
        })
    }

    /// Where entry `e`'s sums are in the pool.
    #[inline]
    fn range(&self, e: usize) -> core::ops::Range<usize> {
        let b = self.buffer_of[e];
        b * self.token_len..(b + 1) * self.token_len
    }

    /// Adds one token's stored rows to `block`'s sums (starting them when
    /// it is the block's first token) through the spare buffer, and says
    /// how to undo that.
    fn add(&mut self, block: usize, first_of_block: bool, k: &[f32], v: &[f32]) -> RingUndo {
        let entry = block % self.block.len();
        let mut undo = RingUndo {
            entry,
            block: self.block[entry],
            count: self.count[entry],
            swapped: false,
        };
        if first_of_block {
            self.block[entry] = block;
            self.count[entry] = 0;
        } else if self.block[entry] != block {
            return undo; // summary already dropped by an eviction
        }
        let (old, new) = (self.buffer_of[entry], self.spare);
        let len = self.token_len;
        sum_into(&mut self.key_sums, old, new, len, k, first_of_block);
        sum_into(&mut self.value_sums, old, new, len, v, first_of_block);
        self.buffer_of[entry] = new;
        self.spare = old;
        self.count[entry] += 1;
        undo.swapped = true;
        undo
    }

    /// Puts the entry back as it was before the `add` that returned `undo`.
    fn undo(&mut self, undo: RingUndo) {
        let entry = undo.entry;
        if undo.swapped {
            core::mem::swap(&mut self.buffer_of[entry], &mut self.spare);
        }
        self.block[entry] = undo.block;
        self.count[entry] = undo.count;
    }

    /// Drops `block`'s summary if it is held; returns the entry and the
    /// block it held before, for [`set_block`](Self::set_block) to undo.
    fn drop_block(&mut self, block: usize) -> (usize, usize) {
        let entry = block % self.block.len();
        let before = self.block[entry];
        if before == block {
            self.block[entry] = NO_BLOCK;
        }
        (entry, before)
    }

    fn set_block(&mut self, entry: usize, block: usize) {
        self.block[entry] = block;
    }

    fn get(&self, block: usize) -> Option<Landmark<'_>> {
        let entry = block % self.block.len();
        (self.block[entry] == block).then(|| {
            let range = self.range(entry);
            Landmark {
                key_sum: &self.key_sums[range.clone()],
                value_sum: &self.value_sums[range],
                count: self.count[entry],
            }
        })
    }

    fn clear(&mut self) {
        self.block.fill(NO_BLOCK);
    }
}

/// Pool buffer `new` = buffer `old` + `x`, or `0 + x` when `fresh` (what
/// adding to zeroed sums gives, `-0` included), for buffers of `len` sums
/// in `pool`; `old != new`.
#[inline]
fn sum_into(pool: &mut [f32], old: usize, new: usize, len: usize, x: &[f32], fresh: bool) {
    let (from, to) = if old < new {
        let (lo, hi) = pool.split_at_mut(new * len);
        (&lo[old * len..(old + 1) * len], &mut hi[..len])
    } else {
        let (lo, hi) = pool.split_at_mut(old * len);
        (&hi[..len], &mut lo[new * len..(new + 1) * len])
    };
    if fresh {
        for (t, x) in to.iter_mut().zip(x) {
            *t = 0.0 + x;
        }
    } else {
        for ((t, f), x) in to.iter_mut().zip(from).zip(x) {
            *t = f + x;
        }
    }
}

/// Heavy-hitter bookkeeping: which position each slot holds, an index from
/// position to slot, and each slot's accumulated attention mass.
#[derive(Debug, Clone)]
struct HeavyHitters {
    recent: usize,
    position_of_slot: Vec<usize>,
    mass: Vec<f32>,
    index: crate::position_index::PositionIndex,
    /// What undoing the last append needs; not part of the contents.
    undo: HeavyUndo,
}

/// The heavy-hitter side of the last append, reserved at creation.
#[derive(Debug)]
struct HeavyUndo {
    /// The slot's position before the append.
    position: usize,
    /// The position the append evicted, if any.
    evicted: Option<usize>,
    /// Index entry the new position took (for `PositionIndex::vacate`).
    inserted_at: usize,
    /// Index entries the eviction's removal moved (capacity reserved).
    moved: Vec<usize>,
    /// Every slot's mass before the append. Why a copy of all of them
    /// rather than a journal of the records since: backends record once
    /// per query head per candidate, many more calls than slots, so a
    /// journal would overflow or need a check on every call (measured:
    /// 12 -> 22 instructions per `record_attention`), while one memcpy
    /// of `capacity` floats per append is small beside the O(capacity)
    /// victim scan a full heavy-hitter cache does on every append anyway.
    mass: Vec<f32>,
}

/// Keeps the reserved capacity of `moved` (a derived clone would shrink it
/// to its length, and the clone's evictions would then allocate).
impl Clone for HeavyUndo {
    fn clone(&self) -> Self {
        let mut moved = Vec::with_capacity(self.moved.capacity());
        moved.extend_from_slice(&self.moved);
        Self {
            position: self.position,
            evicted: self.evicted,
            inserted_at: self.inserted_at,
            moved,
            mass: self.mass.clone(),
        }
    }
}

/// Bit for bit (see [`Store`]'s `PartialEq`).
impl PartialEq for HeavyHitters {
    fn eq(&self, other: &Self) -> bool {
        self.recent == other.recent
            && self.position_of_slot == other.position_of_slot
            && same_bits(&self.mass, &other.mass)
            && self.index == other.index
    }
}

impl HeavyHitters {
    fn new(recent: usize, capacity: usize) -> Result<Self, AttentionError> {
        let mut moved = Vec::new();
        moved
            .try_reserve_exact(capacity)
            .map_err(|_| AttentionError::OutOfMemory {
                bytes: capacity.saturating_mul(core::mem::size_of::<usize>()),
            })?;
        Ok(Self {
            recent,
            position_of_slot: zeroed(capacity, 0)?,
            mass: zeroed(capacity, 0.0)?,
            index: crate::position_index::PositionIndex::new(capacity)?,
            undo: HeavyUndo {
                position: 0,
                evicted: None,
                inserted_at: 0,
                moved,
                mass: zeroed(capacity, 0.0)?,
            },
        })
    }

    /// Puts `position` in `slot` with zero mass, `evicted` leaving the
    /// index, and records how to undo it.
    fn replace(&mut self, slot: usize, position: usize, evicted: Option<usize>) {
        let undo = &mut self.undo;
        undo.position = self.position_of_slot[slot];
        undo.mass.copy_from_slice(&self.mass);
        undo.evicted = evicted;
        if let Some(evicted) = evicted {
            self.index.remove(evicted, &mut undo.moved);
        }
        undo.inserted_at = self.index.insert(position, slot);
        self.position_of_slot[slot] = position;
        self.mass[slot] = 0.0;
    }

    /// Reverses the last `replace` into `slot` and every mass recorded
    /// since.
    fn undo(&mut self, slot: usize) {
        let undo = &mut self.undo;
        self.mass.copy_from_slice(&undo.mass);
        self.position_of_slot[slot] = undo.position;
        self.index.vacate(undo.inserted_at);
        if let Some(evicted) = undo.evicted {
            self.index.unremove(evicted, slot, &undo.moved);
        }
    }

    /// The H2O victim for a full cache about to take `position`: the
    /// least-mass token older than the `recent` newest (ties: the oldest),
    /// as `(slot, position)`. `None` only if every token is protected,
    /// which `recent < capacity` rules out.
    fn victim(&self, position: usize) -> Option<(usize, usize)> {
        // After this append, positions position+1-recent ..= position are
        // the protected recent ones.
        let protected_from = (position + 1).saturating_sub(self.recent);
        // (slot, position, mass) of the best so far; carrying its mass
        // saves a bounds-checked reload per slot in this O(C) scan.
        let mut best: Option<(usize, usize, f32)> = None;
        for (slot, (&p, &mass)) in self.position_of_slot.iter().zip(&self.mass).enumerate() {
            if p >= protected_from {
                continue;
            }
            let better = best.is_none_or(|(_, best_position, best_mass)| {
                mass < best_mass || (mass == best_mass && p < best_position)
            });
            if better {
                best = Some((slot, p, mass));
            }
        }
        best.map(|(slot, p, _)| (slot, p))
    }
}

/// An f32/f16 cache of keys, values and landmark block sums.
///
/// Two caches are equal when their contents are the same bit for bit:
/// layout, capacity, length, every slot's rows (stale ones included),
/// landmark sums, heavy-hitter positions, index and masses. A NaN row
/// equals the same NaN; `0.0` and `-0.0` differ. Scratch buffers are not
/// compared.
#[derive(Debug, Clone)]
pub struct KvCache {
    layout: CacheLayout,
    capacity: usize,
    /// Tokens appended so far = the position the next token gets.
    appended: usize,
    keys: Store,
    values: Store,
    landmarks: LandmarkRing,
    heavy: Option<HeavyHitters>,
    /// Per slot: whether its stored key or value rows hold a NaN or ±inf.
    /// Kept for every slot ever written (stale ones too), so it always
    /// describes the rows in storage.
    non_finite: Vec<bool>,
    /// Retained slots whose `non_finite` flag is set.
    non_finite_rows: usize,
    /// One token's rows as stored (rounded for f16), reused by `append`.
    stored_k: Vec<f32>,
    stored_v: Vec<f32>,
    /// What undoing the last append needs (the heavy-hitter part lives in
    /// [`HeavyHitters`]); not part of the contents.
    undo: Undo,
}

/// The state an append overwrote, saved by the append itself into buffers
/// reserved at creation, so [`KvCache::undo_append`] restores it exactly
/// and without allocating.
#[derive(Debug, Clone)]
struct Undo {
    /// The last successful append has not been undone or cleared since.
    armed: bool,
    /// The slot the append wrote.
    slot: usize,
    /// The append evicted the token in `slot` (it was retained).
    evicted: bool,
    /// `slot`'s rows before the append, in storage dtype (`token_len`).
    keys: Store,
    values: Store,
    /// `slot`'s non-finite flag before the append.
    non_finite: bool,
    /// How to take back the append's landmark-ring change.
    ring: RingUndo,
    /// The ring entry the eviction touched and the block it held before.
    dropped: Option<(usize, usize)>,
}

impl PartialEq for KvCache {
    fn eq(&self, other: &Self) -> bool {
        self.layout == other.layout
            && self.capacity == other.capacity
            && self.appended == other.appended
            && self.keys == other.keys
            && self.values == other.values
            && self.landmarks == other.landmarks
            && self.heavy == other.heavy
            && self.non_finite == other.non_finite
            && self.non_finite_rows == other.non_finite_rows
    }
}

impl KvCache {
    /// An empty cache for `capacity` tokens of `layout`, with all memory
    /// reserved up front (a decode step never allocates).
    ///
    /// # Errors
    /// [`AttentionError::ZeroCapacity`]; [`AttentionError::Config`] for a
    /// zero `kv_heads`, `head_dim`, `block_size` or `eviction.recent`;
    /// [`AttentionError::RecentNotBelowCapacity`]; [`AttentionError::Shape`]
    /// when the size overflows; [`AttentionError::OutOfMemory`].
    pub fn new(capacity: usize, layout: CacheLayout) -> Result<Self, AttentionError> {
        if capacity == 0 {
            return Err(AttentionError::ZeroCapacity);
        }
        if layout.kv_heads == 0 {
            return Err(ConfigError::ZeroKeyValueHeads.into());
        }
        if layout.head_dim == 0 {
            return Err(ConfigError::ZeroHeadDim.into());
        }
        if layout.block_size == 0 {
            return Err(ConfigError::ZeroBlockSize.into());
        }
        if let Eviction::HeavyHitter { recent } = layout.eviction {
            if recent == 0 {
                return Err(ConfigError::ZeroRecent.into());
            }
            if recent >= capacity {
                return Err(AttentionError::RecentNotBelowCapacity { recent, capacity });
            }
        }
        let token_len = layout.token_len();
        let values = capacity
            .checked_mul(token_len)
            .ok_or(ShapeError::Overflow {
                seq: capacity,
                heads: layout.kv_heads,
                dim: layout.head_dim,
            })?;
        let heavy = match layout.eviction {
            Eviction::HeavyHitter { recent } => Some(HeavyHitters::new(recent, capacity)?),
            Eviction::None | Eviction::SlidingWindow => None,
        };
        Ok(Self {
            layout,
            capacity,
            appended: 0,
            keys: Store::zeroed(layout.dtype, values)?,
            values: Store::zeroed(layout.dtype, values)?,
            landmarks: LandmarkRing::new(capacity.div_ceil(layout.block_size) + 1, token_len)?,
            heavy,
            non_finite: zeroed(capacity, false)?,
            non_finite_rows: 0,
            stored_k: zeroed(token_len, 0.0)?,
            stored_v: zeroed(token_len, 0.0)?,
            undo: Undo {
                armed: false,
                slot: 0,
                evicted: false,
                keys: Store::zeroed(layout.dtype, token_len)?,
                values: Store::zeroed(layout.dtype, token_len)?,
                non_finite: false,
                ring: RingUndo {
                    entry: 0,
                    block: NO_BLOCK,
                    count: 0,
                    swapped: false,
                },
                dropped: None,
            },
        })
    }

    /// The head shape and policy this cache holds.
    #[inline]
    #[must_use]
    pub const fn layout(&self) -> CacheLayout {
        self.layout
    }

    /// Tokens the cache can hold at once.
    #[inline]
    #[must_use]
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tokens appended so far; the next appended token gets position `len`.
    #[inline]
    #[must_use]
    pub const fn len(&self) -> usize {
        self.appended
    }

    /// No token appended yet.
    #[inline]
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.appended == 0
    }

    /// Tokens held now (at most the capacity); they fill slots `0..retained`.
    #[inline]
    #[must_use]
    pub const fn retained(&self) -> usize {
        if self.appended < self.capacity {
            self.appended
        } else {
            self.capacity
        }
    }

    /// Every slot is taken (an append will evict, or fail without eviction).
    #[inline]
    #[must_use]
    pub const fn is_full(&self) -> bool {
        self.appended >= self.capacity
    }

    /// Whether [`append`](Self::append) would accept another token.
    #[inline]
    #[must_use]
    pub const fn has_room(&self) -> bool {
        !self.is_full() || !matches!(self.layout.eviction, Eviction::None)
    }

    /// The slot holding `position`, or `None` when it was evicted or not yet
    /// appended.
    #[inline]
    #[must_use]
    pub fn slot(&self, position: usize) -> Option<usize> {
        if position >= self.appended {
            return None;
        }
        match self.layout.eviction {
            Eviction::None => Some(position),
            Eviction::SlidingWindow => {
                (position >= self.appended - self.retained()).then_some(position % self.capacity)
            }
            Eviction::HeavyHitter { .. } => self.heavy.as_ref()?.index.get(position),
        }
    }

    /// The position held in `slot` (`slot < retained()`).
    ///
    /// # Panics
    /// If `slot >= retained()`.
    #[must_use]
    pub fn position_of_slot(&self, slot: usize) -> usize {
        assert!(slot < self.retained(), "slot {slot} is empty");
        match (&self.heavy, self.layout.eviction) {
            (Some(heavy), _) => heavy.position_of_slot[slot],
            (None, Eviction::SlidingWindow) if self.appended > self.capacity => {
                // Slots hold positions appended - capacity .. appended, each at position % capacity.
                let oldest = self.appended - self.capacity;
                let offset = (slot + self.capacity - oldest % self.capacity) % self.capacity;
                oldest + offset
            }
            _ => slot,
        }
    }

    /// Key row of `head` in `slot`.
    ///
    /// # Panics
    /// If `slot >= capacity` or `head >= kv_heads`.
    #[inline]
    #[must_use]
    pub fn key(&self, slot: usize, head: usize) -> Row<'_> {
        assert!(head < self.layout.kv_heads, "kv head {head} out of range");
        let start = (slot * self.layout.kv_heads + head) * self.layout.head_dim;
        self.keys.rows(start, self.layout.head_dim)
    }

    /// Value row of `head` in `slot`.
    ///
    /// # Panics
    /// If `slot >= capacity` or `head >= kv_heads`.
    #[inline]
    #[must_use]
    pub fn value(&self, slot: usize, head: usize) -> Row<'_> {
        assert!(head < self.layout.kv_heads, "kv head {head} out of range");
        let start = (slot * self.layout.kv_heads + head) * self.layout.head_dim;
        self.values.rows(start, self.layout.head_dim)
    }

    /// All key slots, `[capacity][kv_heads][head_dim]`; slots at and past
    /// `retained()` are zero or stale.
    #[inline]
    #[must_use]
    pub fn keys(&self) -> Row<'_> {
        self.keys.all()
    }

    /// All value slots, laid out as [`keys`](Self::keys).
    #[inline]
    #[must_use]
    pub fn values(&self) -> Row<'_> {
        self.values.all()
    }

    /// The summary of landmark block `block`, if it is retained (see the
    /// module docs). A block still being filled reports its partial count.
    #[inline]
    #[must_use]
    pub fn landmark(&self, block: usize) -> Option<Landmark<'_>> {
        if block.checked_mul(self.layout.block_size)? >= self.appended {
            return None;
        }
        self.landmarks.get(block)
    }

    /// How many retained tokens have a NaN or ±inf in their stored key or
    /// value (any kv head). O(1): kept up to date by every append,
    /// eviction, [`clear`](Self::clear) and
    /// [`undo_append`](Self::undo_append). Why: a kernel whose fast path
    /// assumes finite rows can test `non_finite_rows() == 0` instead of
    /// scanning the cache; the count is exact, so the test is sound.
    #[inline]
    #[must_use]
    pub const fn non_finite_rows(&self) -> usize {
        self.non_finite_rows
    }

    /// Whether backends should report attention weights (heavy-hitter
    /// eviction); when false, [`record_attention`](Self::record_attention)
    /// is a no-op and need not be called.
    #[inline]
    #[must_use]
    pub const fn tracks_attention(&self) -> bool {
        self.heavy.is_some()
    }

    /// Adds `weight` (a softmax probability, summed over query heads) to the
    /// attention mass of the token in `slot`.
    /// [`undo_append`](Self::undo_append) takes back every record made
    /// since the last append too (the append saved all masses).
    #[inline]
    pub fn record_attention(&mut self, slot: usize, weight: f32) {
        if let Some(mass) = self.heavy.as_mut().and_then(|h| h.mass.get_mut(slot)) {
            *mass += weight;
        }
    }

    /// Accumulated attention mass of the token in `slot` (0 without
    /// heavy-hitter eviction).
    #[must_use]
    pub fn attention_mass(&self, slot: usize) -> f32 {
        self.heavy
            .as_ref()
            .and_then(|h| h.mass.get(slot).copied())
            .unwrap_or(0.0)
    }

    /// Appends one token's keys and values (`kv_heads * head_dim` each),
    /// evicting first if the policy says so, and returns the slot it took.
    ///
    /// An f32 cache stores every value as given; an f16 cache stores NaN
    /// and ±inf as such but refuses a finite element that f16 would round
    /// to infinity.
    ///
    /// # Errors
    /// Checked in this order, before anything is mutated:
    /// [`AttentionError::Shape`] when `k` or `v` has the wrong length;
    /// [`AttentionError::F16Overflow`] (f16 caches) for a finite element
    /// with `|x| >= 65520`, naming the first one (keys before values);
    /// [`AttentionError::CacheFull`] when the cache is full and has no
    /// eviction policy. Either way the cache is unchanged.
    pub fn append(&mut self, k: &[f32], v: &[f32]) -> Result<usize, AttentionError> {
        self.append_with(k, v, f16_conv::narrow_widen_slice)
    }

    /// [`append`](Self::append), narrowing rows for an f16 cache with
    /// `narrow` (unused for f32). Why: the domain's portable conversion is
    /// all any target gets by itself; a backend that detected F16C passes
    /// its vectorised one. `narrow` must compute exactly what
    /// [`f16_conv::narrow_widen_slice`] does.
    ///
    /// # Errors
    /// As [`append`](Self::append); the cache is unchanged on `Err`.
    pub fn append_with(
        &mut self,
        k: &[f32],
        v: &[f32],
        narrow: NarrowFn,
    ) -> Result<usize, AttentionError> {
        let token_len = self.layout.token_len();
        for data in [k, v] {
            if data.len() != token_len {
                return Err(ShapeError::LengthMismatch {
                    seq: 1,
                    heads: self.layout.kv_heads,
                    dim: self.layout.head_dim,
                    expected: token_len,
                    actual: data.len(),
                }
                .into());
            }
        }
        let f16 = self.layout.dtype == CacheDtype::F16;
        let (k_scan, v_scan) = (Scan::of(k, f16), Scan::of(v, f16));
        if f16 && (k_scan.f16_overflow || v_scan.f16_overflow) {
            return Err(self.f16_overflow(k, v));
        }
        let position = self.appended;
        let full = AttentionError::CacheFull {
            capacity: self.capacity,
        };
        let evicting = self.is_full();
        // Choose the slot (and victim) before touching anything.
        let (slot, evicted) = if !evicting {
            (position, None)
        } else if let Some(heavy) = &self.heavy {
            let (slot, evicted) = heavy.victim(position).ok_or(full)?;
            (slot, Some(evicted))
        } else if self.layout.eviction == Eviction::SlidingWindow {
            let evicted = position - self.capacity;
            (evicted % self.capacity, Some(evicted))
        } else {
            return Err(full);
        };
        // Nothing fails from here on. Save what this append overwrites.
        let start = slot * token_len;
        let undo = &mut self.undo;
        undo.slot = slot;
        undo.evicted = evicting;
        undo.non_finite = self.non_finite[slot];
        self.keys.save(start, &mut undo.keys);
        self.values.save(start, &mut undo.values);
        undo.dropped = evicted.map(|p| self.landmarks.drop_block(p / self.layout.block_size));
        if let Some(heavy) = &mut self.heavy {
            heavy.replace(slot, position, evicted);
        }
        // Stored rows are non-finite exactly where the input is: f32 stores
        // it as is, and f16 maps NaN to NaN, ±inf to ±inf and (overflow
        // having been refused) every other value to a finite half.
        let non_finite = k_scan.non_finite || v_scan.non_finite;
        if evicting {
            self.non_finite_rows -= usize::from(self.non_finite[slot]);
        }
        self.non_finite[slot] = non_finite;
        self.non_finite_rows += usize::from(non_finite);
        self.keys.write(start, k, &mut self.stored_k, narrow);
        self.values.write(start, v, &mut self.stored_v, narrow);
        let block_size = self.layout.block_size;
        self.undo.ring = self.landmarks.add(
            position / block_size,
            position.is_multiple_of(block_size),
            &self.stored_k,
            &self.stored_v,
        );
        self.appended += 1;
        self.undo.armed = true;
        Ok(slot)
    }

    /// Takes back the most recent successful [`append`](Self::append) (or
    /// [`append_with`](Self::append_with)) and every
    /// [`record_attention`](Self::record_attention) made since: afterwards
    /// the cache equals, bit for bit (`==`), a clone taken just before that
    /// append: length, positions and slots, every slot's rows, landmark
    /// sums and which are retained, attention masses, the heavy-hitter
    /// index and [`non_finite_rows`](Self::non_finite_rows). So the next
    /// append behaves exactly as it would have on that clone.
    ///
    /// Why: a caller that appends to several caches for one step (the
    /// model, one cache per layer) can take the step back if a later stage
    /// fails, leaving its stream unchanged. Available once per append;
    /// never allocates (the append saved the overwritten state into
    /// buffers reserved at creation).
    ///
    /// # Errors
    /// [`AttentionError::NothingToUndo`] when there is no append to take
    /// back: a new or [`clear`](Self::clear)ed cache, or the last append
    /// was already undone. The cache is unchanged then. A failed append
    /// does not count: the undo still takes back the last successful one.
    pub fn undo_append(&mut self) -> Result<(), AttentionError> {
        if !self.undo.armed {
            return Err(AttentionError::NothingToUndo);
        }
        let undo = &mut self.undo;
        undo.armed = false;
        let slot = undo.slot;
        if let Some(heavy) = &mut self.heavy {
            heavy.undo(slot);
        }
        let start = slot * self.layout.token_len();
        self.keys.restore(start, &undo.keys);
        self.values.restore(start, &undo.values);
        self.non_finite_rows -= usize::from(self.non_finite[slot]);
        if undo.evicted {
            self.non_finite_rows += usize::from(undo.non_finite);
        }
        self.non_finite[slot] = undo.non_finite;
        // Reverse order of the append: the sums' entry was changed after
        // the eviction dropped a block, so put it back first.
        self.landmarks.undo(undo.ring);
        if let Some((entry, block)) = undo.dropped {
            self.landmarks.set_block(entry, block);
        }
        self.appended -= 1;
        Ok(())
    }

    /// The [`AttentionError::F16Overflow`] for the first element of `k`,
    /// then `v`, that f16 rounds to infinity. Off the hot path: only called
    /// once a scan found one.
    #[cold]
    fn f16_overflow(&self, k: &[f32], v: &[f32]) -> AttentionError {
        let head_dim = self.layout.head_dim;
        let (operand, data) = if Scan::detailed(k).f16_overflow {
            (Operand::Key, k)
        } else {
            (Operand::Value, v)
        };
        let at = data
            .iter()
            .position(|&x| f16_conv::rounds_to_infinity(x))
            .unwrap_or(0);
        AttentionError::F16Overflow {
            operand,
            position: self.appended,
            kv_head: at / head_dim,
            index: at % head_dim,
            value: data.get(at).copied().unwrap_or(f32::NAN),
        }
    }

    /// Forgets every token; capacity and layout stay.
    ///
    /// Also forgets the last append: [`undo_append`](Self::undo_append)
    /// then fails until the next append.
    pub fn clear(&mut self) {
        self.appended = 0;
        self.non_finite_rows = 0;
        self.undo.armed = false;
        self.landmarks.clear();
        if let Some(heavy) = &mut self.heavy {
            heavy.index.clear();
            heavy.mass.fill(0.0);
        }
    }
}

/// What a pass over an appended row finds.
#[derive(Clone, Copy, Default)]
struct Scan {
    /// Some element is NaN or ±inf.
    non_finite: bool,
    /// Some element is finite but rounds to infinity in f16.
    f16_overflow: bool,
}

impl Scan {
    /// Reads the f32 input before any narrowing, so every ISA decides
    /// alike. The common case (every element finite and, for f16, below
    /// the overflow threshold) costs one compare per element, OR-reduced
    /// so it vectorises; only a row that reaches the limit gets the
    /// two-flag pass.
    #[inline]
    fn of(x: &[f32], f16: bool) -> Self {
        let limit = if f16 {
            f16_conv::F16_OVERFLOW_THRESHOLD.to_bits()
        } else {
            f32::INFINITY.to_bits()
        };
        let mut reached = 0u32;
        for &e in x {
            reached |= u32::from(e.to_bits() & 0x7FFF_FFFF >= limit);
        }
        if reached == 0 {
            Self::default()
        } else {
            Self::detailed(x)
        }
    }

    #[cold]
    fn detailed(x: &[f32]) -> Self {
        Self {
            non_finite: x.iter().any(|e| !e.is_finite()),
            f16_overflow: x.iter().any(|&e| f16_conv::rounds_to_infinity(e)),
        }
    }
}

/// Equal lengths and equal bits element by element.
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests;
