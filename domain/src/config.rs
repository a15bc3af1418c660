//! The attention head's configuration (`HeadConfig`; `docs/attention.md`,
//! "Head configuration").
//!
//! The same struct is read from TOML by the host, built in code by the
//! firmware, and consulted by every backend, so its field names are the
//! TOML keys and its validation is the single source of truth for "is this
//! head computable".

use alloc::vec;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Which implementation computes attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Fast subquadratic kernel over the sparse candidate set
    /// (`docs/attention.md`).
    Sparse,
    /// Exact attention over every (causal) token.
    Dense,
    /// Naive enumeration of the sparse candidate set; the test oracle.
    Reference,
}

/// Element type of the streaming KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheDtype {
    /// 4 bytes per element; step equals prefill to f32 rounding.
    #[default]
    F32,
    /// 2 bytes per element (IEEE binary16): half the memory per tracked
    /// person, at the cost of rounding cached keys and values.
    F16,
}

impl CacheDtype {
    /// Bytes per cached element.
    #[must_use]
    pub const fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }
}

/// What a full streaming cache does with the next token. Opt-in: by
/// default a full cache refuses the token with a typed error, so no
/// context is ever lost silently.
///
/// Read through `EvictionRepr`: serde ignores extra keys beside the tag
/// of an internally tagged *unit* variant even under
/// `deny_unknown_fields`, so `{ policy = "sliding_window", recent = 64 }`
/// would load silently as if `recent` meant something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(
    tag = "policy",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "EvictionRepr"
)]
pub enum Eviction {
    /// Refuse the token ([`AttentionError::CacheFull`](crate::AttentionError::CacheFull)).
    #[default]
    None,
    /// Evict the oldest token: the cache holds the most recent `capacity`.
    SlidingWindow,
    /// H2O: always keep the `recent` newest tokens; beyond them evict the
    /// token with the least attention mass accumulated over all steps so
    /// far (ties: the oldest).
    HeavyHitter {
        /// Newest tokens never evicted; at least 1 and below the capacity.
        recent: usize,
    },
}

/// How [`Eviction`] is written: the same tags, but every variant a struct
/// variant, so `deny_unknown_fields` refuses an unknown key in any of them
/// (it only applies to variants that have fields).
#[derive(Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
enum EvictionRepr {
    None {},
    SlidingWindow {},
    HeavyHitter { recent: usize },
}

impl From<EvictionRepr> for Eviction {
    fn from(repr: EvictionRepr) -> Self {
        match repr {
            EvictionRepr::None {} => Self::None,
            EvictionRepr::SlidingWindow {} => Self::SlidingWindow,
            EvictionRepr::HeavyHitter { recent } => Self::HeavyHitter { recent },
        }
    }
}

/// Shape and sparsity pattern of one attention head group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// Which backend computes attention.
    pub backend: BackendKind,
    /// Query heads.
    pub q_heads: usize,
    /// Key/value heads; must divide `q_heads`.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Local window W: tokens within W positions of the query attend.
    pub window: usize,
    /// Landmark block size B.
    pub block_size: usize,
    /// Causal attention (queries see only the past and themselves).
    pub causal: bool,
    /// Tokens every query attends to (when causally visible).
    #[serde(default = "default_global_tokens")]
    pub global_tokens: Vec<usize>,
    /// Attend to `i ± 2^k`.
    #[serde(default = "enabled")]
    pub log_stride: bool,
    /// Attend to landmark block means outside the window.
    #[serde(default = "enabled")]
    pub landmarks: bool,
    /// Element type of streaming caches (`"f32"` or `"f16"`).
    #[serde(default)]
    pub cache_dtype: CacheDtype,
    /// Eviction policy of streaming caches, e.g.
    /// `eviction = { policy = "heavy_hitter", recent = 64 }`.
    #[serde(default)]
    pub eviction: Eviction,
}

fn default_global_tokens() -> Vec<usize> {
    vec![0]
}

const fn enabled() -> bool {
    true
}

impl HeadConfig {
    /// The AETHER temporal head: sparse, 4 query heads sharing 1 KV head
    /// (MQA), head_dim 32, window 32, block 16, causal, token 0 global.
    #[must_use]
    pub fn default_aether() -> Self {
        Self {
            backend: BackendKind::Sparse,
            q_heads: 4,
            kv_heads: 1,
            head_dim: 32,
            window: 32,
            block_size: 16,
            causal: true,
            global_tokens: default_global_tokens(),
            log_stride: true,
            landmarks: true,
            cache_dtype: CacheDtype::F32,
            eviction: Eviction::None,
        }
    }

    /// Checks every rule, in field order, and reports the first broken one.
    ///
    /// # Errors
    /// One [`ConfigError`] variant per rule: zero `q_heads`, zero
    /// `kv_heads`, zero `head_dim`, zero `block_size`, a heavy-hitter
    /// policy keeping zero recent tokens, and `kv_heads` not dividing
    /// `q_heads`.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.q_heads == 0 {
            return Err(ConfigError::ZeroQueryHeads);
        }
        if self.kv_heads == 0 {
            return Err(ConfigError::ZeroKeyValueHeads);
        }
        if self.head_dim == 0 {
            return Err(ConfigError::ZeroHeadDim);
        }
        if self.block_size == 0 {
            return Err(ConfigError::ZeroBlockSize);
        }
        if let Eviction::HeavyHitter { recent: 0 } = self.eviction {
            return Err(ConfigError::ZeroRecent);
        }
        if !self.q_heads.is_multiple_of(self.kv_heads) {
            return Err(ConfigError::GroupRatio {
                q_heads: self.q_heads,
                kv_heads: self.kv_heads,
            });
        }
        Ok(())
    }

    /// Query heads that share one KV head (`q_heads / kv_heads`).
    ///
    /// Meaningful only for a validated config.
    #[must_use]
    pub const fn group_size(&self) -> usize {
        self.q_heads / self.kv_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_aether_is_valid_mqa() {
        let c = HeadConfig::default_aether();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            (c.q_heads, c.kv_heads, c.head_dim, c.window, c.block_size),
            (4, 1, 32, 32, 16)
        );
        assert_eq!(c.global_tokens, [0]);
        assert!(c.causal && c.log_stride && c.landmarks);
        assert_eq!(c.backend, BackendKind::Sparse);
    }

    #[test]
    fn each_rule_has_its_own_error_naming_the_field() {
        let base = HeadConfig::default_aether();
        type Case = (fn(&mut HeadConfig), ConfigError, &'static str);
        let cases: [Case; 6] = [
            (
                |c| c.eviction = Eviction::HeavyHitter { recent: 0 },
                ConfigError::ZeroRecent,
                "eviction.recent",
            ),
            (|c| c.q_heads = 0, ConfigError::ZeroQueryHeads, "q_heads"),
            (
                |c| c.kv_heads = 0,
                ConfigError::ZeroKeyValueHeads,
                "kv_heads",
            ),
            (|c| c.head_dim = 0, ConfigError::ZeroHeadDim, "head_dim"),
            (
                |c| c.block_size = 0,
                ConfigError::ZeroBlockSize,
                "block_size",
            ),
            (
                |c| c.kv_heads = 3,
                ConfigError::GroupRatio {
                    q_heads: 4,
                    kv_heads: 3,
                },
                "kv_heads",
            ),
        ];
        for (mutate, expected, field) in cases {
            let mut c = base.clone();
            mutate(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err, expected);
            assert_eq!(err.field(), field);
            assert!(alloc::format!("{err}").contains(field));
        }
    }

    #[test]
    fn window_zero_is_valid() {
        let c = HeadConfig {
            window: 0,
            ..HeadConfig::default_aether()
        };
        assert_eq!(c.validate(), Ok(()));
    }
}
