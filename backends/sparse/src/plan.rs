//! The kernel's reading of the candidate set (`docs/attention.md`): a contiguous window
//! plus a few *extras* (tokens and landmark blocks outside it).
//!
//! Why it exists: the fast kernel never materialises a query's candidate
//! list the way [`SparsePattern::candidates_into`] does (that sorts `W + log
//! N` indices per query, which would cost more than the attention itself).
//! It handles the window as one contiguous run of keys and enumerates only
//! what lies outside it, in `O(log N)` per query with no allocation. All
//! structural facts (window bounds, globals, landmark pivots) come from the
//! domain's [`SparsePattern`]; the tests prove that window ∪ extras equals
//! `candidates_into` exactly, and [`edge_count`] equals
//! [`SparsePattern::edge_count`].
//!
//! **Invariant:** each candidate is reported once: extras never repeat a
//! window token, and a global that is also a log-stride token is reported
//! only as the stride.

use aether_domain::SparsePattern;

/// Something a query attends to besides its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extra {
    /// A token outside the window (global or log-stride).
    Token(usize),
    /// A landmark block: the mean of the block's keys and values.
    Landmark(usize),
}

/// Calls `visit` for every extra of query `i` among `n` tokens: globals
/// outside the window, log-stride tokens outside the window, then landmark
/// blocks. Nothing for `i >= n`.
#[inline]
pub(crate) fn for_each_extra(
    pattern: &SparsePattern,
    i: usize,
    n: usize,
    mut visit: impl FnMut(Extra),
) {
    for_each_global(pattern, i, n, |g| visit(Extra::Token(g)));
    for_each_stride(pattern, i, n, |j| visit(Extra::Token(j)));
    for_each_landmark(pattern, i, n, |b| visit(Extra::Landmark(b)));
}

/// The global tokens query `i` attends to as extras: visible, outside the
/// window, and not already a log-stride token of `i`.
#[inline]
pub(crate) fn for_each_global(
    pattern: &SparsePattern,
    i: usize,
    n: usize,
    mut visit: impl FnMut(usize),
) {
    if i >= n {
        return;
    }
    for &g in pattern.globals() {
        // Globals are sorted: nothing later is visible either.
        if g >= n || (pattern.causal() && g > i) {
            break;
        }
        if global_is_extra(pattern, g, i, n) {
            visit(g);
        }
    }
}

/// Whether global token `g` is an extra of query `i`: visible, outside the
/// window, and not a log-stride token of `i` (which would count it twice).
#[inline]
pub(crate) fn global_is_extra(pattern: &SparsePattern, g: usize, i: usize, n: usize) -> bool {
    i < n && Query::new(pattern, i, n).global_is_extra(pattern, g)
}

/// One query position with its window bounds, so repeated questions about
/// it (asked per stride, per global) cost no more calls into the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Query {
    /// Position.
    pub(crate) i: usize,
    /// Sequence length.
    pub(crate) n: usize,
    /// First window token.
    pub(crate) lo: usize,
    /// Last window token.
    pub(crate) hi: usize,
}

impl Query {
    /// Query `i < n` of `pattern`.
    pub(crate) fn new(pattern: &SparsePattern, i: usize, n: usize) -> Self {
        let (lo, hi) = pattern.window_bounds(i, n);
        Self { i, n, lo, hi }
    }

    /// See [`global_is_extra`].
    #[inline]
    pub(crate) fn global_is_extra(&self, pattern: &SparsePattern, g: usize) -> bool {
        if g >= self.n || (pattern.causal() && g > self.i) {
            return false;
        }
        let in_window = self.lo <= g && g <= self.hi;
        let is_stride = pattern.log_stride() && g.abs_diff(self.i).is_power_of_two();
        !in_window && !is_stride
    }

    /// Every log-stride extra of this query: `i - s` for powers of two
    /// `i - lo < s <= i`, then (non-causal) `i + s` for `hi - i < s < n - i`.
    #[inline]
    pub(crate) fn for_each_stride(&self, pattern: &SparsePattern, mut visit: impl FnMut(Stride)) {
        if !pattern.log_stride() {
            return;
        }
        let mut stride = (self.i - self.lo + 1).checked_next_power_of_two();
        while let Some(s) = stride.filter(|&s| s <= self.i) {
            visit(Stride::Left(s));
            stride = s.checked_mul(2);
        }
        if !pattern.causal() {
            let mut stride = (self.hi - self.i + 1).checked_next_power_of_two();
            while let Some(s) = stride.filter(|&s| s < self.n - self.i) {
                visit(Stride::Right(s));
                stride = s.checked_mul(2);
            }
        }
    }
}

/// The log-stride tokens `i ± 2^k` of query `i` outside its window.
#[inline]
pub(crate) fn for_each_stride(
    pattern: &SparsePattern,
    i: usize,
    n: usize,
    mut visit: impl FnMut(usize),
) {
    if i >= n || !pattern.log_stride() {
        return;
    }
    Query::new(pattern, i, n).for_each_stride(pattern, |stride| {
        visit(match stride {
            Stride::Left(s) => i - s,
            Stride::Right(s) => i + s,
        });
    });
}

/// A log-stride offset from a query: `i - s` or `i + s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stride {
    /// `i - s`.
    Left(usize),
    /// `i + s` (non-causal only).
    Right(usize),
}

/// Where query `i`'s landmark blocks hang from: the last block before the
/// window and (non-causal) the first after it. Queries with equal pivots
/// have equal landmark sets.
#[inline]
pub(crate) fn landmark_pivots(
    pattern: &SparsePattern,
    i: usize,
    n: usize,
) -> (Option<usize>, Option<usize>) {
    if i >= n || !pattern.landmarks() {
        return (None, None);
    }
    (
        pattern.last_block_before_window(i),
        pattern.first_block_after_window(i, n),
    )
}

/// The landmark blocks of query `i`: `p, p-1, p-2, p-4, ...` below the
/// window and (non-causal) `q, q+1, q+2, q+4, ...` above it.
#[inline]
pub(crate) fn for_each_landmark(
    pattern: &SparsePattern,
    i: usize,
    n: usize,
    mut visit: impl FnMut(usize),
) {
    let (below, above) = landmark_pivots(pattern, i, n);
    if let Some(p) = below {
        visit(p);
        let mut stride = 1usize;
        while stride <= p {
            visit(p - stride);
            stride = stride.saturating_mul(2);
        }
    }
    if let Some(q) = above {
        let blocks = pattern.block_count(n);
        visit(q);
        let mut stride = 1usize;
        while stride < blocks - q {
            visit(q + stride);
            stride = stride.saturating_mul(2);
        }
    }
}

/// Upper bound on the extras of any query among `n` tokens: the globals,
/// one stride per bit of `n` on each side, and one landmark per bit of the
/// block count plus the pivot, on each side.
pub(crate) fn max_extras(pattern: &SparsePattern, n: usize) -> usize {
    let bits = (usize::BITS - n.leading_zeros()) as usize;
    pattern.globals().len() + 2 * bits + max_landmarks(pattern, n)
}

/// Upper bound on the landmark blocks of any query among `n` tokens: a
/// pivot plus one block per bit of the block count, below the window and
/// (non-causal) above it.
pub(crate) fn max_landmarks(pattern: &SparsePattern, n: usize) -> usize {
    if !pattern.landmarks() {
        return 0;
    }
    let blocks = pattern.block_count(n);
    let per_side = (usize::BITS - blocks.leading_zeros()) as usize + 1;
    if pattern.causal() {
        per_side
    } else {
        2 * per_side
    }
}

/// Edges of a prefill of `n` tokens per head, counted the way the kernel
/// enumerates them (window length plus extras).
pub(crate) fn edge_count(pattern: &SparsePattern, n: usize) -> u64 {
    let mut edges = 0u64;
    for i in 0..n {
        let (lo, hi) = pattern.window_bounds(i, n);
        edges += (hi - lo + 1) as u64;
        for_each_extra(pattern, i, n, |_| edges += 1);
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_domain::{Candidates, HeadConfig};
    use alloc::vec::Vec;

    fn patterns() -> Vec<SparsePattern> {
        let mut out = Vec::new();
        for causal in [true, false] {
            for (window, block_size) in [(0, 1), (1, 1), (3, 2), (32, 16), (5, 7), (200, 4)] {
                for globals in [alloc::vec![], alloc::vec![0], alloc::vec![0, 5, 17, 5, 64]] {
                    for (log_stride, landmarks) in [(true, true), (false, true), (true, false)] {
                        out.push(
                            SparsePattern::new(&HeadConfig {
                                window,
                                block_size,
                                causal,
                                global_tokens: globals.clone(),
                                log_stride,
                                landmarks,
                                ..HeadConfig::default_aether()
                            })
                            .unwrap(),
                        );
                    }
                }
            }
        }
        out
    }

    /// Window ∪ extras is exactly the domain's candidate set, with no
    /// candidate reported twice.
    #[test]
    fn window_and_extras_are_the_candidate_set() {
        let mut expected = Candidates::default();
        for pattern in patterns() {
            for n in [1, 2, 9, 33, 100] {
                for i in 0..n {
                    pattern.candidates_into(i, n, &mut expected);
                    let (lo, hi) = pattern.window_bounds(i, n);
                    let mut tokens: Vec<usize> = (lo..=hi).collect();
                    let mut blocks = Vec::new();
                    let mut count = 0;
                    for_each_extra(&pattern, i, n, |extra| {
                        count += 1;
                        match extra {
                            Extra::Token(j) => tokens.push(j),
                            Extra::Landmark(b) => blocks.push(b),
                        }
                    });
                    assert!(count <= max_extras(&pattern, n));
                    assert!(blocks.len() <= max_landmarks(&pattern, n));
                    let reported = tokens.len() + blocks.len();
                    tokens.sort_unstable();
                    blocks.sort_unstable();
                    assert_eq!(tokens, expected.tokens, "{pattern:?} n {n} i {i}");
                    assert_eq!(blocks, expected.landmark_blocks, "{pattern:?} n {n} i {i}");
                    assert_eq!(
                        reported,
                        expected.len(),
                        "duplicate, {pattern:?} n {n} i {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn edge_count_matches_the_domain() {
        for pattern in patterns() {
            for n in [0, 1, 17, 64, 257] {
                assert_eq!(
                    edge_count(&pattern, n),
                    pattern.edge_count(n),
                    "{pattern:?}"
                );
            }
        }
    }
}
