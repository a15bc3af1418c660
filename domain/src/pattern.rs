//! The sparse candidate pattern (`docs/attention.md`), as pure functions.
//!
//! A query at position `i` attends to a set of *tokens* (local window,
//! global tokens, log-stride positions `i ± 2^k`) and to a set of *landmark
//! blocks* (the mean key/value of a whole block of B tokens lying outside
//! the window). Every backend and test asks this module what the set is, so
//! there is exactly one reading of the definition in code.
//!
//! **Invariant:** in causal mode the candidates of position `i` depend only
//! on `i` and the config, never on the sequence length `n`. Streaming decode
//! equals prefill because of this.

use alloc::vec::Vec;

use crate::config::HeadConfig;
use crate::error::ConfigError;

/// The candidates of one query position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Key positions, ascending, each at most once.
    pub tokens: Vec<usize>,
    /// Landmark block indices, ascending, each at most once.
    pub landmark_blocks: Vec<usize>,
}

impl Candidates {
    /// Edges of this query: tokens plus landmark blocks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tokens.len() + self.landmark_blocks.len()
    }

    /// True when the query attends to nothing (only for `i >= n`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sparsity pattern of a validated [`HeadConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparsePattern {
    window: usize,
    block_size: usize,
    causal: bool,
    /// Sorted and deduplicated, so membership tests and counts are exact.
    globals: Vec<usize>,
    log_stride: bool,
    landmarks: bool,
}

/// Bit length of `x`: the number of `2^k <= x` (0 for `x == 0`).
const fn bit_length(x: usize) -> usize {
    (usize::BITS - x.leading_zeros()) as usize
}

impl SparsePattern {
    /// The pattern of `config`.
    ///
    /// # Errors
    /// The config's first [`ConfigError`]; an invalid config (block size 0,
    /// say) has no pattern.
    pub fn new(config: &HeadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut globals = config.global_tokens.clone();
        globals.sort_unstable();
        globals.dedup();
        Ok(Self {
            window: config.window,
            block_size: config.block_size,
            causal: config.causal,
            globals,
            log_stride: config.log_stride,
            landmarks: config.landmarks,
        })
    }

    /// Window W.
    #[must_use]
    pub const fn window(&self) -> usize {
        self.window
    }

    /// Block size B (at least 1).
    #[must_use]
    pub const fn block_size(&self) -> usize {
        self.block_size
    }

    /// Causal mode.
    #[must_use]
    pub const fn causal(&self) -> bool {
        self.causal
    }

    /// Global tokens, sorted and unique.
    #[must_use]
    pub fn globals(&self) -> &[usize] {
        &self.globals
    }

    /// Whether log-stride tokens are candidates.
    #[must_use]
    pub const fn log_stride(&self) -> bool {
        self.log_stride
    }

    /// Whether landmark blocks are candidates.
    #[must_use]
    pub const fn landmarks(&self) -> bool {
        self.landmarks
    }

    /// Blocks covering `n` tokens; the last may be partial.
    #[must_use]
    pub const fn block_count(&self, n: usize) -> usize {
        n.div_ceil(self.block_size)
    }

    /// Token range `[start, end)` of block `b` within `n` tokens.
    #[must_use]
    pub fn block_tokens(&self, b: usize, n: usize) -> core::ops::Range<usize> {
        let start = b.saturating_mul(self.block_size).min(n);
        start..start.saturating_add(self.block_size).min(n)
    }

    /// Inclusive window `[lo, hi]` of query `i` (`i < n`).
    #[must_use]
    pub fn window_bounds(&self, i: usize, n: usize) -> (usize, usize) {
        let lo = i.saturating_sub(self.window);
        let hi = if self.causal {
            i
        } else {
            i.saturating_add(self.window).min(n.saturating_sub(1))
        };
        (lo, hi)
    }

    /// Whether global token `g` is visible to query `i` of `n`.
    const fn global_visible(&self, g: usize, i: usize, n: usize) -> bool {
        g < n && (!self.causal || g <= i)
    }

    /// The last whole block before the window of `i`, if any (`p` in
    /// `docs/attention.md`):
    /// the largest `b` with `(b+1)B - 1 < i - W`.
    #[must_use]
    pub const fn last_block_before_window(&self, i: usize) -> Option<usize> {
        match i.checked_sub(self.window) {
            Some(gap) if gap >= self.block_size => Some(gap / self.block_size - 1),
            _ => None,
        }
    }

    /// The first block entirely after the window of `i` (non-causal only),
    /// if it exists within `n` tokens.
    #[must_use]
    pub fn first_block_after_window(&self, i: usize, n: usize) -> Option<usize> {
        if self.causal {
            return None;
        }
        let q = i.saturating_add(self.window) / self.block_size + 1;
        (q < self.block_count(n)).then_some(q)
    }

    /// Fills `out` with the candidates of query `i` in a sequence of `n`
    /// tokens, reusing its buffers. Empty when `i >= n`.
    pub fn candidates_into(&self, i: usize, n: usize, out: &mut Candidates) {
        out.tokens.clear();
        out.landmark_blocks.clear();
        if i >= n {
            return;
        }
        let (lo, hi) = self.window_bounds(i, n);
        out.tokens.extend(lo..=hi);
        for &g in &self.globals {
            if self.global_visible(g, i, n) && !(lo..=hi).contains(&g) {
                out.tokens.push(g);
            }
        }
        if self.log_stride {
            let mut stride = 1usize;
            while stride <= i {
                if i - stride < lo {
                    out.tokens.push(i - stride);
                }
                stride = stride.saturating_mul(2);
            }
            if !self.causal {
                let mut stride = 1usize;
                while stride <= n - 1 - i {
                    if i + stride > hi {
                        out.tokens.push(i + stride);
                    }
                    stride = stride.saturating_mul(2);
                }
            }
        }
        out.tokens.sort_unstable();
        out.tokens.dedup();

        if self.landmarks {
            if let Some(p) = self.last_block_before_window(i) {
                out.landmark_blocks.push(p);
                let mut stride = 1usize;
                while stride <= p {
                    out.landmark_blocks.push(p - stride);
                    stride = stride.saturating_mul(2);
                }
            }
            if let Some(q) = self.first_block_after_window(i, n) {
                let blocks = self.block_count(n);
                out.landmark_blocks.push(q);
                let mut stride = 1usize;
                while q + stride < blocks {
                    out.landmark_blocks.push(q + stride);
                    stride = stride.saturating_mul(2);
                }
            }
            out.landmark_blocks.sort_unstable();
        }
    }

    /// The candidates of query `i` in a sequence of `n` tokens.
    #[must_use]
    pub fn candidates(&self, i: usize, n: usize) -> Candidates {
        let mut out = Candidates::default();
        self.candidates_into(i, n, &mut out);
        out
    }

    /// Number of candidates of query `i`, computed arithmetically (no
    /// enumeration), so edge counts of long sequences are cheap and exact.
    #[must_use]
    pub fn candidate_count(&self, i: usize, n: usize) -> usize {
        if i >= n {
            return 0;
        }
        let (lo, hi) = self.window_bounds(i, n);
        let mut count = hi - lo + 1;
        if self.log_stride {
            // Left strides outside the window: lo - 1 >= i - s, i.e. i - lo < s <= i.
            count += bit_length(i) - bit_length(i - lo);
            if !self.causal {
                // Right strides outside the window: hi - i < s <= n - 1 - i.
                count += bit_length(n - 1 - i) - bit_length(hi - i);
            }
        }
        for &g in &self.globals {
            let outside = !(lo..=hi).contains(&g);
            let on_stride = self.log_stride && g.abs_diff(i).is_power_of_two();
            if self.global_visible(g, i, n) && outside && !on_stride {
                count += 1;
            }
        }
        if self.landmarks {
            if let Some(p) = self.last_block_before_window(i) {
                count += 1 + bit_length(p);
            }
            if let Some(q) = self.first_block_after_window(i, n) {
                count += 1 + bit_length(self.block_count(n) - 1 - q);
            }
        }
        count
    }

    /// Edges of a whole prefill of `n` tokens, per head: the sum over
    /// queries of tokens plus landmark blocks.
    #[must_use]
    pub fn edge_count(&self, n: usize) -> u64 {
        (0..n).map(|i| self.candidate_count(i, n) as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeadConfig;
    use alloc::vec;

    fn aether(causal: bool) -> SparsePattern {
        SparsePattern::new(&HeadConfig {
            causal,
            ..HeadConfig::default_aether()
        })
        .unwrap()
    }

    /// Hand-computed for W 32, B 16, globals [0], causal.
    #[test]
    fn causal_hand_computed() {
        let p = aether(true);
        let c = p.candidates(0, 1000);
        assert_eq!((c.tokens, c.landmark_blocks), (vec![0], vec![]));
        let c = p.candidates(1, 1000);
        assert_eq!((c.tokens, c.landmark_blocks), (vec![0, 1], vec![]));
        // i = W: the window reaches token 0, every stride is inside it.
        let c = p.candidates(32, 1000);
        assert_eq!(c.tokens, (0..=32).collect::<Vec<_>>());
        assert!(c.landmark_blocks.is_empty());
        // i = W+1: window [1, 33]; token 0 is global; i-W = 1 < B: no landmark.
        let c = p.candidates(33, 1000);
        assert_eq!(c.tokens, (0..=33).collect::<Vec<_>>());
        assert!(c.landmark_blocks.is_empty());
        // i = 100: window [68, 100]; strides 99, 98, 96, 92, 84, 68 inside,
        // 36 outside; global 0. p = 68/16 - 1 = 3 (block 3 ends at 63 < 68),
        // landmarks 3, 2, 1.
        let c = p.candidates(100, 1000);
        let mut expected = vec![0, 36];
        expected.extend(68..=100);
        assert_eq!(c.tokens, expected);
        assert_eq!(c.landmark_blocks, vec![1, 2, 3]);
        // i = 48 + 32 = 80: first landmark appears (block 0 ends at 15 < 48... p = 3-1 = 2).
        assert_eq!(p.last_block_before_window(47), None);
        assert_eq!(p.last_block_before_window(48), Some(0));
        assert_eq!(p.last_block_before_window(63), Some(0));
        assert_eq!(p.last_block_before_window(64), Some(1));
    }

    #[test]
    fn causal_candidates_ignore_sequence_length() {
        let p = aether(true);
        for i in 0..200 {
            assert_eq!(p.candidates(i, i + 1), p.candidates(i, 5000), "i = {i}");
        }
    }

    /// Non-causal, W 2, B 4, n 11: blocks [0,4) [4,8) [8,11) (partial tail).
    #[test]
    fn noncausal_hand_computed() {
        let p = SparsePattern::new(&HeadConfig {
            window: 2,
            block_size: 4,
            causal: false,
            ..HeadConfig::default_aether()
        })
        .unwrap();
        // i = 0: window [0,2]; right strides 1,2 inside, 4, 8 outside.
        // Right landmarks: q = 2/4 + 1 = 1; blocks 1, 2.
        let c = p.candidates(0, 11);
        assert_eq!(c.tokens, vec![0, 1, 2, 4, 8]);
        assert_eq!(c.landmark_blocks, vec![1, 2]);
        // i = 10: window [8,10]; left strides 9, 8 inside, 6, 2 outside; global 0.
        // Left landmark: p = 8/4 - 1 = 1; blocks 1, 0. No block after.
        let c = p.candidates(10, 11);
        assert_eq!(c.tokens, vec![0, 2, 6, 8, 9, 10]);
        assert_eq!(c.landmark_blocks, vec![0, 1]);
        assert_eq!(p.block_tokens(2, 11), 8..11);
    }

    #[test]
    fn past_the_end_is_empty() {
        assert!(aether(true).candidates(10, 10).is_empty());
        assert_eq!(aether(false).candidate_count(10, 10), 0);
    }

    #[test]
    fn count_matches_enumeration() {
        for causal in [true, false] {
            for (w, b) in [(0, 1), (1, 1), (3, 2), (32, 16), (5, 7)] {
                let p = SparsePattern::new(&HeadConfig {
                    window: w,
                    block_size: b,
                    causal,
                    global_tokens: vec![0, 5, 17, 5],
                    ..HeadConfig::default_aether()
                })
                .unwrap();
                for n in [1, 2, 17, 64, 129] {
                    for i in 0..n {
                        assert_eq!(
                            p.candidate_count(i, n),
                            p.candidates(i, n).len(),
                            "causal {causal} w {w} b {b} n {n} i {i}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn window_covering_everything_has_no_landmarks() {
        let p = SparsePattern::new(&HeadConfig {
            window: 63,
            ..HeadConfig::default_aether()
        })
        .unwrap();
        for i in 0..64 {
            let c = p.candidates(i, 64);
            assert_eq!(c.tokens, (0..=i).collect::<Vec<_>>());
            assert!(c.landmark_blocks.is_empty());
        }
        assert_eq!(p.edge_count(64), 64 * 65 / 2);
    }
}
