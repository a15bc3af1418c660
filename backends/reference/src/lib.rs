//! The reference backend: the attention of `docs/attention.md` written the
//! obvious way.
//!
//! For every query it asks the domain's [`SparsePattern`] for the candidate
//! set, builds each candidate's key and value (landmark means computed from
//! the block's tokens on the spot), and takes a softmax in f64. Nothing is
//! cached, fused or vectorised: this crate is the oracle the fast backends
//! are tested against, so clarity beats speed everywhere.
//!
//! **Invariant:** the candidate set is exactly `SparsePattern::candidates`;
//! this crate has no pattern logic of its own.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;

use aether_domain::{
    AttentionBackend, AttentionError, Candidates, ConfigError, HeadConfig, KvCache, Row,
    SparsePattern, Tensor, TensorView, check,
};

/// Naive attention over the sparse candidate pattern (`docs/attention.md`).
#[derive(Debug, Clone)]
pub struct ReferenceBackend {
    config: HeadConfig,
    pattern: SparsePattern,
}

impl ReferenceBackend {
    /// A reference backend for `config`.
    ///
    /// # Errors
    /// The config's first [`ConfigError`].
    pub fn new(config: HeadConfig) -> Result<Self, ConfigError> {
        let pattern = SparsePattern::new(&config)?;
        Ok(Self { config, pattern })
    }
}

/// Where a query's keys and values come from: a prefill tensor pair or a
/// streaming cache. Positions are absolute; rows come back widened to f64.
trait KeyValueSource {
    fn key(&self, position: usize, head: usize) -> Vec<f64>;
    fn value(&self, position: usize, head: usize) -> Vec<f64>;
}

fn widen(row: &[f32]) -> Vec<f64> {
    row.iter().map(|&x| f64::from(x)).collect()
}

struct Prefill<'a> {
    k: TensorView<'a>,
    v: TensorView<'a>,
}

impl KeyValueSource for Prefill<'_> {
    fn key(&self, position: usize, head: usize) -> Vec<f64> {
        widen(self.k.row(position, head))
    }
    fn value(&self, position: usize, head: usize) -> Vec<f64> {
        widen(self.v.row(position, head))
    }
}

/// Reads the cache through its slot lookup; the caller only asks for
/// retained positions.
impl KeyValueSource for KvCache {
    fn key(&self, position: usize, head: usize) -> Vec<f64> {
        decode(KvCache::key(self, retained_slot(self, position), head))
    }
    fn value(&self, position: usize, head: usize) -> Vec<f64> {
        decode(KvCache::value(self, retained_slot(self, position), head))
    }
}

fn retained_slot(cache: &KvCache, position: usize) -> usize {
    cache
        .slot(position)
        .unwrap_or_else(|| panic!("position {position} is not retained"))
}

fn decode(row: Row<'_>) -> Vec<f64> {
    let mut out = alloc::vec![0.0f32; row.len()];
    row.to_f32(&mut out);
    widen(&out)
}

/// The mean of `rows`, in f64.
fn mean(rows: impl ExactSizeIterator<Item = Vec<f64>>, dim: usize) -> Vec<f64> {
    let count = rows.len() as f64;
    let mut sum = alloc::vec![0.0f64; dim];
    for row in rows {
        for (s, x) in sum.iter_mut().zip(row) {
            *s += x;
        }
    }
    sum.iter().map(|s| s / count).collect()
}

impl ReferenceBackend {
    /// Attention of one query row over `candidates` (positions `< n`),
    /// written to `out`. Returns the softmax weight of each token
    /// candidate, in the order of `candidates.tokens`.
    fn attend(
        &self,
        query: &[f32],
        kv_head: usize,
        candidates: &Candidates,
        n: usize,
        source: &impl KeyValueSource,
        out: &mut [f32],
    ) -> Vec<f64> {
        let dim = self.config.head_dim;
        let mut keys: Vec<Vec<f64>> = Vec::new();
        let mut values: Vec<Vec<f64>> = Vec::new();
        for &j in &candidates.tokens {
            keys.push(source.key(j, kv_head));
            values.push(source.value(j, kv_head));
        }
        for &b in &candidates.landmark_blocks {
            let block = self.pattern.block_tokens(b, n);
            keys.push(mean(block.clone().map(|j| source.key(j, kv_head)), dim));
            values.push(mean(block.map(|j| source.value(j, kv_head)), dim));
        }
        let scale = 1.0 / libm::sqrt(dim as f64);
        let scores: Vec<f64> = keys
            .iter()
            .map(|key| {
                let dot: f64 = query.iter().zip(key).map(|(&q, k)| f64::from(q) * k).sum();
                dot * scale
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| libm::exp(s - max)).collect();
        let total: f64 = weights.iter().sum();
        for (d, o) in out.iter_mut().enumerate() {
            let acc: f64 = weights.iter().zip(&values).map(|(w, v)| w * v[d]).sum();
            *o = (acc / total) as f32;
        }
        weights[..candidates.tokens.len()]
            .iter()
            .map(|w| w / total)
            .collect()
    }
}

impl AttentionBackend for ReferenceBackend {
    fn config(&self) -> &HeadConfig {
        &self.config
    }

    fn forward(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
    ) -> Result<Tensor, AttentionError> {
        check::prefill(&self.config, q, k, v)?;
        let n = q.seq();
        let group = self.config.group_size();
        let mut out = Tensor::zeros(n, self.config.q_heads, self.config.head_dim)?;
        let source = Prefill { k, v };
        let mut candidates = Candidates::default();
        for i in 0..n {
            self.pattern.candidates_into(i, n, &mut candidates);
            for h in 0..self.config.q_heads {
                self.attend(
                    q.row(i, h),
                    h / group,
                    &candidates,
                    n,
                    &source,
                    out.row_mut(i, h),
                );
            }
        }
        Ok(out)
    }

    fn step_into(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        cache: &mut KvCache,
        out: &mut [f32],
    ) -> Result<(), AttentionError> {
        check::step(&self.config, q, k, v, cache, out)?;
        cache.append(k.as_slice(), v.as_slice())?;
        let i = cache.len() - 1;
        // The candidate set of position i, restricted to what the cache
        // retains (everything, without eviction).
        let mut candidates = self.pattern.candidates(i, i + 1);
        candidates.tokens.retain(|&j| cache.slot(j).is_some());
        candidates
            .landmark_blocks
            .retain(|&b| cache.landmark(b).is_some());
        let group = self.config.group_size();
        let dim = self.config.head_dim;
        let mut mass = alloc::vec![0.0f64; candidates.tokens.len()];
        for (h, out_row) in out.chunks_exact_mut(dim).enumerate() {
            let weights = self.attend(q.row(0, h), h / group, &candidates, i + 1, cache, out_row);
            mass.iter_mut().zip(weights).for_each(|(m, w)| *m += w);
        }
        if cache.tracks_attention() {
            for (&j, m) in candidates.tokens.iter().zip(mass) {
                if let Some(slot) = cache.slot(j) {
                    cache.record_attention(slot, m as f32);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// One head, dim 1, three tokens, dense-covering window: hand-computed softmax.
    #[test]
    fn hand_computed_attention() {
        let config = HeadConfig {
            q_heads: 1,
            kv_heads: 1,
            head_dim: 1,
            window: 8,
            ..HeadConfig::default_aether()
        };
        let backend = ReferenceBackend::new(config).unwrap();
        let q = Tensor::new(vec![0.0, 1.0, 2.0], 3, 1, 1).unwrap();
        let k = Tensor::new(vec![1.0, 2.0, 3.0], 3, 1, 1).unwrap();
        let v = Tensor::new(vec![10.0, 20.0, 30.0], 3, 1, 1).unwrap();
        let out = backend.forward(q.view(), k.view(), v.view()).unwrap();
        // i = 1: scores 1*1, 1*2 -> weights e^1, e^2.
        let (a, b) = (1f64.exp(), 2f64.exp());
        let expected1 = (10.0 * a + 20.0 * b) / (a + b);
        // i = 2: scores 2, 4, 6.
        let (a, b, c) = (2f64.exp(), 4f64.exp(), 6f64.exp());
        let expected2 = (10.0 * a + 20.0 * b + 30.0 * c) / (a + b + c);
        assert_eq!(out.as_slice()[0], 10.0);
        assert!((f64::from(out.as_slice()[1]) - expected1).abs() < 1e-5);
        assert!((f64::from(out.as_slice()[2]) - expected2).abs() < 1e-5);
    }

    /// A landmark's key and value are the block means: with W 0, B 2 and no
    /// strides or globals, query 4 sees itself and p = 4/2 - 1 = 1, so
    /// blocks 1 (tokens 2, 3) and 0 (tokens 0, 1).
    #[test]
    fn landmarks_use_block_means() {
        let config = HeadConfig {
            q_heads: 1,
            kv_heads: 1,
            head_dim: 1,
            window: 0,
            block_size: 2,
            global_tokens: vec![],
            log_stride: false,
            ..HeadConfig::default_aether()
        };
        let backend = ReferenceBackend::new(config).unwrap();
        let q = Tensor::new(vec![0.0; 5], 5, 1, 1).unwrap();
        let k = Tensor::new(vec![0.0; 5], 5, 1, 1).unwrap();
        let v = Tensor::new(vec![1.0, 3.0, 5.0, 7.0, 100.0], 5, 1, 1).unwrap();
        let out = backend.forward(q.view(), k.view(), v.view()).unwrap();
        // Zero scores: uniform over {token 4, block 0 mean 2, block 1 mean 6}.
        assert!((out.as_slice()[4] - (100.0 + 2.0 + 6.0) / 3.0).abs() < 1e-5);
    }
}
