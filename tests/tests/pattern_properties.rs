//! Property tests of the candidate pattern itself (`docs/attention.md`),
//! over random configs: the invariants every backend and the streaming
//! path rely on.

use aether_domain::{BackendKind, HeadConfig, SparsePattern};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        // Pure integer arithmetic: 512 cases take milliseconds.
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

fn arb_pattern(causal: Option<bool>) -> impl Strategy<Value = SparsePattern> {
    (
        0usize..40,
        1usize..12,
        any::<bool>(),
        proptest::collection::vec(0usize..80, 0..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(window, block_size, c, globals, log_stride, landmarks)| {
                SparsePattern::new(&HeadConfig {
                    backend: BackendKind::Reference,
                    window,
                    block_size,
                    causal: causal.unwrap_or(c),
                    global_tokens: globals,
                    log_stride,
                    landmarks,
                    ..HeadConfig::default_aether()
                })
                .expect("valid")
            },
        )
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Causal candidates depend only on the position, never on the
    /// sequence length: the invariant that makes streaming equal prefill.
    #[test]
    fn causal_candidates_ignore_sequence_length(
        p in arb_pattern(Some(true)), i in 0usize..300, extra in 1usize..300,
    ) {
        prop_assert_eq!(p.candidates(i, i + 1), p.candidates(i, i + extra));
    }

    /// Tokens are sorted, unique and in range; the window and the visible
    /// globals are always in; strides are exactly `i ± 2^k` when enabled.
    #[test]
    fn tokens_are_a_sorted_set_holding_window_globals_and_strides(
        p in arb_pattern(None), n in 1usize..300, i_frac in 0.0f64..1.0,
    ) {
        let i = ((n as f64 * i_frac) as usize).min(n - 1);
        let c = p.candidates(i, n);
        prop_assert!(c.tokens.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(c.tokens.iter().all(|&j| j < n && (!p.causal() || j <= i)));
        let (lo, hi) = p.window_bounds(i, n);
        prop_assert!((lo..=hi).all(|j| c.tokens.binary_search(&j).is_ok()));
        for &g in p.globals() {
            if g < n && (!p.causal() || g <= i) {
                prop_assert!(c.tokens.binary_search(&g).is_ok(), "visible global {} missing", g);
            }
        }
        if p.log_stride() {
            let mut s = 1usize;
            while s <= i {
                prop_assert!(c.tokens.binary_search(&(i - s)).is_ok());
                s *= 2;
            }
        }
        // Nothing else: every token is window, global or stride.
        for &j in &c.tokens {
            let stride = p.log_stride() && j != i && j.abs_diff(i).is_power_of_two();
            prop_assert!((lo..=hi).contains(&j) || p.globals().contains(&j) || stride, "stray {}", j);
        }
    }

    /// Landmark blocks lie entirely outside the window, and are exactly the
    /// p, p-1, p-2, p-4, ... on the left (`docs/attention.md`).
    #[test]
    fn landmarks_lie_outside_the_window(
        p in arb_pattern(None), n in 1usize..300, i_frac in 0.0f64..1.0,
    ) {
        let i = ((n as f64 * i_frac) as usize).min(n - 1);
        let c = p.candidates(i, n);
        let (lo, hi) = p.window_bounds(i, n);
        for &b in &c.landmark_blocks {
            let tokens = p.block_tokens(b, n);
            prop_assert!(!tokens.is_empty());
            prop_assert!(tokens.end <= lo || tokens.start > hi, "block {} overlaps the window", b);
            prop_assert!(!p.causal() || tokens.end <= i);
        }
        let left: Vec<usize> = c.landmark_blocks.iter().copied().filter(|&b| p.block_tokens(b, n).end <= lo).collect();
        let expected: Vec<usize> = match (p.landmarks(), p.last_block_before_window(i)) {
            (true, Some(last)) => {
                let mut v = vec![last];
                let mut s = 1;
                while s <= last {
                    v.push(last - s);
                    s *= 2;
                }
                v.sort_unstable();
                v
            }
            _ => Vec::new(),
        };
        prop_assert_eq!(left, expected);
    }

    /// The arithmetic count equals the enumeration, so edge counts are exact.
    #[test]
    fn counts_equal_enumeration(p in arb_pattern(None), n in 1usize..200) {
        let enumerated: u64 = (0..n).map(|i| p.candidates(i, n).len() as u64).sum();
        prop_assert_eq!(p.edge_count(n), enumerated);
    }

    /// With W >= N-1 every token is in the window and no landmark exists.
    #[test]
    fn covering_window_is_dense(
        window in 0usize..60, block_size in 1usize..10, causal in any::<bool>(), n in 1usize..60,
    ) {
        prop_assume!(window + 1 >= n);
        let p = SparsePattern::new(&HeadConfig {
            window,
            block_size,
            causal,
            ..HeadConfig::default_aether()
        })
        .unwrap();
        for i in 0..n {
            let c = p.candidates(i, n);
            let all: Vec<usize> = if causal { (0..=i).collect() } else { (0..n).collect() };
            prop_assert_eq!(c.tokens, all);
            prop_assert!(c.landmark_blocks.is_empty());
        }
    }
}
