//! The kernel's reading of the SPEC §3 candidate set: a contiguous window
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
    if i >= n {
        return;
    }
    let (lo, hi) = pattern.window_bounds(i, n);
    let causal = pattern.causal();
    for &g in pattern.globals() {
        // Globals are sorted: nothing later is visible either.
        if g >= n || (causal && g > i) {
            break;
        }
        let in_window = lo <= g && g <= hi;
        let is_stride = pattern.log_stride() && g.abs_diff(i).is_power_of_two();
        if !in_window && !is_stride {
            visit(Extra::Token(g));
        }
    }
    if pattern.log_stride() {
        // Left strides outside the window: i - s < lo, i.e. s > i - lo.
        let mut stride = (i - lo + 1).checked_next_power_of_two();
        while let Some(s) = stride.filter(|&s| s <= i) {
            visit(Extra::Token(i - s));
            stride = s.checked_mul(2);
        }
        if !causal {
            // Right strides outside the window: s > hi - i, i + s < n.
            let mut stride = (hi - i + 1).checked_next_power_of_two();
            while let Some(s) = stride.filter(|&s| s < n - i) {
                visit(Extra::Token(i + s));
                stride = s.checked_mul(2);
            }
        }
    }
    if pattern.landmarks() {
        if let Some(p) = pattern.last_block_before_window(i) {
            visit(Extra::Landmark(p));
            let mut stride = 1usize;
            while stride <= p {
                visit(Extra::Landmark(p - stride));
                stride = stride.saturating_mul(2);
            }
        }
        if let Some(q) = pattern.first_block_after_window(i, n) {
            let blocks = pattern.block_count(n);
            visit(Extra::Landmark(q));
            let mut stride = 1usize;
            while stride < blocks - q {
                visit(Extra::Landmark(q + stride));
                stride = stride.saturating_mul(2);
            }
        }
    }
}

/// Upper bound on the extras of any query among `n` tokens: the globals,
/// one stride per bit of `n` on each side, and one landmark per bit of the
/// block count plus the pivot, on each side.
pub(crate) fn max_extras(pattern: &SparsePattern, n: usize) -> usize {
    let bits = |x: usize| (usize::BITS - x.leading_zeros()) as usize;
    pattern.globals().len() + 2 * bits(n) + 2 * (bits(pattern.block_count(n)) + 1)
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
