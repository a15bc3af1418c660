//! The KV cache that streaming decode appends to, one token at a time.
//!
//! Besides keys and values it keeps, per landmark block, the running sum of
//! the block's keys and values, so a landmark mean costs one division per
//! element instead of a pass over the block: appending a token updates one
//! block sum, which keeps each decode step independent of the cache length.
//!
//! The cache is shaped by a head ([`CacheLayout::of`]) so a caller cannot
//! pair it with a backend of another shape without the backend noticing.
//!
//! **Invariant:** every operation validates before it mutates; an `Err`
//! leaves the cache exactly as it was.

use alloc::vec::Vec;

use crate::config::HeadConfig;
use crate::error::{AttentionError, ConfigError, ShapeError};

/// The head shape a cache is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheLayout {
    /// Key/value heads per token.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Landmark block size.
    pub block_size: usize,
}

impl CacheLayout {
    /// The layout a backend with `config` needs.
    #[must_use]
    pub const fn of(config: &HeadConfig) -> Self {
        Self {
            kv_heads: config.kv_heads,
            head_dim: config.head_dim,
            block_size: config.block_size,
        }
    }

    /// Values per cached token for keys (and again for values).
    #[must_use]
    pub const fn token_len(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// An append-only f32 cache of keys, values and per-block sums.
#[derive(Debug, Clone, PartialEq)]
pub struct KvCache {
    layout: CacheLayout,
    capacity: usize,
    len: usize,
    keys: Vec<f32>,
    values: Vec<f32>,
    block_key_sums: Vec<f32>,
    block_value_sums: Vec<f32>,
}

fn reserve(buffer: &mut Vec<f32>, values: usize) -> Result<(), AttentionError> {
    buffer
        .try_reserve_exact(values)
        .map_err(|_| AttentionError::OutOfMemory {
            bytes: values.saturating_mul(core::mem::size_of::<f32>()),
        })
}

impl KvCache {
    /// An empty cache for `capacity` tokens of `layout`, with all memory
    /// reserved up front (a decode step never allocates).
    ///
    /// # Errors
    /// [`AttentionError::ZeroCapacity`]; [`AttentionError::Config`] for a
    /// zero `kv_heads`, `head_dim` or `block_size`;
    /// [`AttentionError::Shape`] when the size overflows;
    /// [`AttentionError::OutOfMemory`] when the reservation fails.
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
        let overflow = ShapeError::Overflow {
            seq: capacity,
            heads: layout.kv_heads,
            dim: layout.head_dim,
        };
        let token_values = capacity.checked_mul(layout.token_len()).ok_or(overflow)?;
        let block_values = capacity
            .div_ceil(layout.block_size)
            .checked_mul(layout.token_len())
            .ok_or(overflow)?;
        let mut cache = Self {
            layout,
            capacity,
            len: 0,
            keys: Vec::new(),
            values: Vec::new(),
            block_key_sums: Vec::new(),
            block_value_sums: Vec::new(),
        };
        reserve(&mut cache.keys, token_values)?;
        reserve(&mut cache.values, token_values)?;
        reserve(&mut cache.block_key_sums, block_values)?;
        reserve(&mut cache.block_value_sums, block_values)?;
        Ok(cache)
    }

    /// The head shape this cache holds.
    #[must_use]
    pub const fn layout(&self) -> CacheLayout {
        self.layout
    }

    /// Tokens the cache can hold.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tokens cached so far; the next appended token gets position `len`.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// No token cached yet.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// No room for another token.
    #[must_use]
    pub const fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Appends one token's keys and values (`kv_heads * head_dim` each) and
    /// adds them to their block's sums.
    ///
    /// # Errors
    /// [`AttentionError::Shape`] when `k` or `v` has the wrong length,
    /// [`AttentionError::CacheFull`] when there is no room. Either way the
    /// cache is unchanged.
    pub fn append(&mut self, k: &[f32], v: &[f32]) -> Result<(), AttentionError> {
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
        if self.is_full() {
            return Err(AttentionError::CacheFull {
                capacity: self.capacity,
            });
        }
        if self.len.is_multiple_of(self.layout.block_size) {
            self.block_key_sums.extend_from_slice(k);
            self.block_value_sums.extend_from_slice(v);
        } else {
            let start = self.block_key_sums.len() - token_len;
            add_assign(&mut self.block_key_sums[start..], k);
            add_assign(&mut self.block_value_sums[start..], v);
        }
        self.keys.extend_from_slice(k);
        self.values.extend_from_slice(v);
        self.len += 1;
        Ok(())
    }

    /// Forgets every token; capacity and layout stay.
    pub fn clear(&mut self) {
        self.len = 0;
        self.keys.clear();
        self.values.clear();
        self.block_key_sums.clear();
        self.block_value_sums.clear();
    }

    fn row(data: &[f32], layout: CacheLayout, index: usize, head: usize) -> &[f32] {
        assert!(head < layout.kv_heads, "kv head {head} out of range");
        let start = (index * layout.kv_heads + head) * layout.head_dim;
        &data[start..start + layout.head_dim]
    }

    /// Key of `head` at `position`.
    ///
    /// # Panics
    /// If `position >= len` or `head >= kv_heads`.
    #[must_use]
    pub fn key(&self, position: usize, head: usize) -> &[f32] {
        Self::row(&self.keys, self.layout, position, head)
    }

    /// Value of `head` at `position`.
    ///
    /// # Panics
    /// If `position >= len` or `head >= kv_heads`.
    #[must_use]
    pub fn value(&self, position: usize, head: usize) -> &[f32] {
        Self::row(&self.values, self.layout, position, head)
    }

    /// Tokens cached so far in block `block` (0 for a block not started).
    #[must_use]
    pub fn block_len(&self, block: usize) -> usize {
        let start = block.saturating_mul(self.layout.block_size);
        self.len.saturating_sub(start).min(self.layout.block_size)
    }

    /// Sum of the keys of `head` over the cached tokens of `block`.
    ///
    /// # Panics
    /// If `block` has no cached token or `head >= kv_heads`.
    #[must_use]
    pub fn block_key_sum(&self, block: usize, head: usize) -> &[f32] {
        Self::row(&self.block_key_sums, self.layout, block, head)
    }

    /// Sum of the values of `head` over the cached tokens of `block`.
    ///
    /// # Panics
    /// If `block` has no cached token or `head >= kv_heads`.
    #[must_use]
    pub fn block_value_sum(&self, block: usize, head: usize) -> &[f32] {
        Self::row(&self.block_value_sums, self.layout, block, head)
    }
}

fn add_assign(sum: &mut [f32], x: &[f32]) {
    for (s, x) in sum.iter_mut().zip(x) {
        *s += x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: CacheLayout = CacheLayout {
        kv_heads: 2,
        head_dim: 1,
        block_size: 2,
    };

    #[test]
    fn block_sums_track_appends() {
        let mut c = KvCache::new(3, LAYOUT).unwrap();
        c.append(&[1.0, 10.0], &[2.0, 20.0]).unwrap();
        c.append(&[3.0, 30.0], &[4.0, 40.0]).unwrap();
        c.append(&[5.0, 50.0], &[6.0, 60.0]).unwrap();
        assert_eq!(c.block_key_sum(0, 1), &[40.0]);
        assert_eq!(c.block_value_sum(0, 0), &[6.0]);
        assert_eq!(c.block_key_sum(1, 0), &[5.0]);
        assert_eq!((c.block_len(0), c.block_len(1), c.block_len(2)), (2, 1, 0));
        assert_eq!(c.key(2, 1), &[50.0]);
        assert_eq!(c.value(1, 0), &[4.0]);
    }

    #[test]
    fn full_cache_is_a_typed_error_and_unchanged() {
        let mut c = KvCache::new(1, LAYOUT).unwrap();
        c.append(&[1.0, 2.0], &[3.0, 4.0]).unwrap();
        let before = c.clone();
        assert_eq!(
            c.append(&[1.0, 2.0], &[3.0, 4.0]),
            Err(AttentionError::CacheFull { capacity: 1 })
        );
        assert_eq!(c, before);
    }

    #[test]
    fn wrong_token_length_is_rejected() {
        let mut c = KvCache::new(2, LAYOUT).unwrap();
        let err = c.append(&[1.0], &[3.0, 4.0]).unwrap_err();
        assert!(matches!(
            err,
            AttentionError::Shape(ShapeError::LengthMismatch {
                expected: 2,
                actual: 1,
                ..
            })
        ));
        assert!(c.is_empty());
    }

    #[test]
    fn bad_construction_is_rejected() {
        assert_eq!(KvCache::new(0, LAYOUT), Err(AttentionError::ZeroCapacity));
        let zero_block = CacheLayout {
            block_size: 0,
            ..LAYOUT
        };
        assert_eq!(
            KvCache::new(4, zero_block),
            Err(AttentionError::Config(ConfigError::ZeroBlockSize))
        );
        assert!(matches!(
            KvCache::new(usize::MAX, LAYOUT),
            Err(AttentionError::Shape(ShapeError::Overflow { .. }))
        ));
        let mut c = KvCache::new(4, LAYOUT).unwrap();
        c.append(&[1.0, 2.0], &[3.0, 4.0]).unwrap();
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.capacity(), 4);
    }
}
