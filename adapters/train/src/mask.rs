//! The attention pattern as tensors: an additive mask plus landmark
//! pseudo-tokens (`docs/training.md`, "The pattern as a mask").
//!
//! Why a mask: autograd needs the candidate set as ordinary tensor
//! arithmetic. A query row scores every token and every landmark
//! pseudo-token, and the mask adds 0 to candidates and [`MASKED`]
//! elsewhere, so after the softmax a non-candidate has weight exactly 0
//! (its `exp` underflows) and receives exactly zero gradient. The sparse
//! candidate sets come only from [`SparsePattern::candidates_into`]; this
//! module only writes down what it answers (`docs/attention.md`, "One
//! implementation").
//!
//! Landmark pseudo-tokens are the block means of the keys and values, a
//! fixed averaging matrix times k and v, so a landmark's gradient reaches
//! every token of its block as it should.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aether_domain::{BackendKind, Candidates, ConfigError, HeadConfig, SparsePattern};
use candle_core::{DType, Device, Tensor};

/// What a non-candidate's score gets added. Finite, so that a masked
/// score never meets `-inf - -inf = NaN` in the softmax, and so large that
/// `exp(MASKED + s - max)` is 0 in f32 and f64 for any score the model
/// can produce (scores are far below 1e8 in magnitude).
pub(crate) const MASKED: f64 = -1e9;

/// The pattern of one window length, as plain numbers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MaskPlan {
    /// Tokens in the window.
    pub(crate) n: usize,
    /// Landmark blocks some query attends to, ascending; score column
    /// `n + c` is block `blocks[c]`. Blocks no query uses get no column.
    pub(crate) blocks: Vec<usize>,
    /// `[n][n + blocks.len()]`, row-major: 0 for a candidate, [`MASKED`]
    /// elsewhere.
    pub(crate) bias: Vec<f64>,
    /// `[blocks.len()][n]`, row-major: row `c` is `1/len` on the tokens of
    /// block `blocks[c]` (a trailing partial block averages the tokens it
    /// has) and 0 elsewhere.
    pub(crate) averaging: Vec<f64>,
}

impl MaskPlan {
    /// The pattern `config` selects for `n` tokens: the sparse candidate
    /// sets for `sparse` and `reference` (the same set), every visible
    /// token and no landmark for `dense`.
    pub(crate) fn new(config: &HeadConfig, n: usize) -> Result<Self, ConfigError> {
        config.validate()?;
        match config.backend {
            BackendKind::Dense => Ok(Self::dense(config.causal, n)),
            BackendKind::Sparse | BackendKind::Reference => {
                Ok(Self::sparse(&SparsePattern::new(config)?, n))
            }
        }
    }

    /// Columns of the score matrix: tokens, then landmark pseudo-tokens.
    pub(crate) fn columns(&self) -> usize {
        self.n + self.blocks.len()
    }

    fn dense(causal: bool, n: usize) -> Self {
        let mut bias = vec![MASKED; n * n];
        for i in 0..n {
            let visible = if causal { i + 1 } else { n };
            bias[i * n..i * n + visible].fill(0.0);
        }
        Self {
            n,
            blocks: Vec::new(),
            bias,
            averaging: Vec::new(),
        }
    }

    fn sparse(pattern: &SparsePattern, n: usize) -> Self {
        let mut rows = Vec::with_capacity(n);
        let mut candidates = Candidates::default();
        let mut used = vec![false; pattern.block_count(n)];
        for i in 0..n {
            pattern.candidates_into(i, n, &mut candidates);
            for &b in &candidates.landmark_blocks {
                used[b] = true;
            }
            rows.push(candidates.clone());
        }
        let blocks: Vec<usize> = (0..used.len()).filter(|&b| used[b]).collect();
        let mut column_of = vec![usize::MAX; used.len()];
        for (c, &b) in blocks.iter().enumerate() {
            column_of[b] = n + c;
        }
        let columns = n + blocks.len();
        let mut bias = vec![MASKED; n * columns];
        for (i, row) in rows.iter().enumerate() {
            let out = &mut bias[i * columns..(i + 1) * columns];
            for &j in &row.tokens {
                out[j] = 0.0;
            }
            for &b in &row.landmark_blocks {
                out[column_of[b]] = 0.0;
            }
        }
        let mut averaging = vec![0.0; blocks.len() * n];
        for (c, &b) in blocks.iter().enumerate() {
            let tokens = pattern.block_tokens(b, n);
            let weight = 1.0 / tokens.len() as f64;
            averaging[c * n + tokens.start..c * n + tokens.end].fill(weight);
        }
        Self {
            n,
            blocks,
            bias,
            averaging,
        }
    }
}

/// A [`MaskPlan`] as tensors of one dtype.
#[derive(Debug, Clone)]
pub(crate) struct MaskTensors {
    /// `[n, columns]`.
    pub(crate) bias: Tensor,
    /// The last row of `bias`, `[1, columns]`: a layer that computes only
    /// the last query uses it.
    pub(crate) last_bias: Tensor,
    /// `[blocks, n]`, or `None` when no query attends to a landmark.
    pub(crate) averaging: Option<Tensor>,
}

impl MaskTensors {
    fn new(plan: &MaskPlan, dtype: DType) -> candle_core::Result<Self> {
        let device = Device::Cpu;
        let (n, columns) = (plan.n, plan.columns());
        let bias = Tensor::from_slice(&plan.bias, (n, columns), &device)?.to_dtype(dtype)?;
        let last_bias = bias.narrow(0, n - 1, 1)?.contiguous()?;
        let averaging = if plan.blocks.is_empty() {
            None
        } else {
            Some(
                Tensor::from_slice(&plan.averaging, (plan.blocks.len(), n), &device)?
                    .to_dtype(dtype)?,
            )
        };
        Ok(Self {
            bias,
            last_bias,
            averaging,
        })
    }
}

/// Mask tensors per window length, built on first use.
///
/// Why cached: building a mask walks every query's candidate set, while
/// training runs thousands of batches of one window length.
#[derive(Debug)]
pub(crate) struct MaskCache {
    config: HeadConfig,
    dtype: DType,
    entries: Mutex<HashMap<usize, Arc<MaskTensors>>>,
}

impl MaskCache {
    /// A cache for `config`, whose pattern must be valid (checked by the
    /// caller, so that [`get`](Self::get) cannot fail on the config).
    pub(crate) fn new(config: HeadConfig, dtype: DType) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            dtype,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The masks of windows of `n` tokens (`n ≥ 1`).
    pub(crate) fn get(&self, n: usize) -> Result<Arc<MaskTensors>, crate::TrainError> {
        // A poisoned lock only means another thread panicked mid-insert;
        // the map holds complete entries only, so it is still usable.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = entries.get(&n) {
            return Ok(Arc::clone(found));
        }
        let plan = MaskPlan::new(&self.config, n)?;
        let tensors = Arc::new(MaskTensors::new(&plan, self.dtype)?);
        entries.insert(n, Arc::clone(&tensors));
        Ok(tensors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(backend: BackendKind, causal: bool) -> HeadConfig {
        HeadConfig {
            backend,
            window: 2,
            block_size: 4,
            causal,
            ..HeadConfig::default_aether()
        }
    }

    fn candidates_of_row(plan: &MaskPlan, i: usize) -> (Vec<usize>, Vec<usize>) {
        let row = &plan.bias[i * plan.columns()..(i + 1) * plan.columns()];
        let open = |j: &usize| row[*j] == 0.0;
        let tokens = (0..plan.n).filter(open).collect();
        let blocks = (plan.n..plan.columns())
            .filter(open)
            .map(|c| plan.blocks[c - plan.n])
            .collect();
        (tokens, blocks)
    }

    #[test]
    fn sparse_mask_opens_exactly_the_candidates() {
        for causal in [true, false] {
            let head = config(BackendKind::Sparse, causal);
            let pattern = SparsePattern::new(&head).unwrap();
            let n = 23;
            let plan = MaskPlan::new(&head, n).unwrap();
            for i in 0..n {
                let c = pattern.candidates(i, n);
                assert_eq!(
                    candidates_of_row(&plan, i),
                    (c.tokens, c.landmark_blocks),
                    "causal {causal} i {i}"
                );
            }
            // Every other entry is MASKED, never another value.
            assert!(plan.bias.iter().all(|&b| b == 0.0 || b == MASKED));
        }
    }

    #[test]
    fn reference_is_the_sparse_pattern() {
        let sparse = MaskPlan::new(&config(BackendKind::Sparse, true), 40).unwrap();
        let reference = MaskPlan::new(&config(BackendKind::Reference, true), 40).unwrap();
        assert_eq!(sparse, reference);
    }

    #[test]
    fn landmark_rows_average_their_block_including_a_partial_tail() {
        // Non-causal, n 11, B 4: blocks [0,4) [4,8) [8,11); query 0 takes
        // the partial block 2 as a landmark (docs/attention.md).
        let plan = MaskPlan::new(&config(BackendKind::Sparse, false), 11).unwrap();
        assert_eq!(plan.blocks, vec![0, 1, 2]);
        let row = |c: usize| &plan.averaging[c * 11..(c + 1) * 11];
        assert_eq!(row(0)[..5], [0.25, 0.25, 0.25, 0.25, 0.0]);
        assert_eq!(row(2)[7..], [0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
        for c in 0..3 {
            assert!((row(c).iter().sum::<f64>() - 1.0).abs() < 1e-15);
        }
    }

    #[test]
    fn causal_landmarks_are_whole_blocks_only() {
        // n 14, B 4: block 3 = [12,14) is partial and lies inside every
        // window that could see it, so it never becomes a column.
        let plan = MaskPlan::new(&config(BackendKind::Sparse, true), 14).unwrap();
        assert_eq!(plan.blocks, vec![0, 1]);
    }

    #[test]
    fn dense_mask_is_causal_without_landmarks() {
        let plan = MaskPlan::new(&config(BackendKind::Dense, true), 5).unwrap();
        assert!(plan.blocks.is_empty());
        for i in 0..5 {
            assert_eq!(candidates_of_row(&plan, i).0, (0..=i).collect::<Vec<_>>());
        }
        let plan = MaskPlan::new(&config(BackendKind::Dense, false), 5).unwrap();
        assert!(plan.bias.iter().all(|&b| b == 0.0));
    }

    #[test]
    fn cache_builds_each_length_once() {
        let cache = MaskCache::new(config(BackendKind::Sparse, true), DType::F32).unwrap();
        let a = cache.get(16).unwrap();
        let b = cache.get(16).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // i = 15: p = (15 - 2) / 4 - 1 = 2, so blocks 0, 1, 2 get columns.
        assert_eq!(a.bias.dims(), &[16, 16 + 3]);
        assert_eq!(a.last_bias.dims(), &[1, 19]);
    }
}
