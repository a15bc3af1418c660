//! Typed errors for every way a caller can hand the domain bad input.
//!
//! Each variant names the offending field or tensor so a message alone tells
//! the user what to fix; adapters convert these into their own error types
//! (exit codes, `esp_err_t`) at the edge, never the other way round.

use crate::cache::CacheLayout;

/// A tensor's data does not fit the shape it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// `heads` or `dim` is zero; a tensor with no features is never meaningful.
    #[error("tensor `{axis}` must be at least 1")]
    ZeroExtent {
        /// `"heads"` or `"dim"`.
        axis: &'static str,
    },
    /// `seq * heads * dim` does not fit in `usize`.
    #[error("tensor shape {seq}x{heads}x{dim} overflows usize")]
    Overflow {
        /// Sequence length.
        seq: usize,
        /// Head count.
        heads: usize,
        /// Head dimension.
        dim: usize,
    },
    /// The data length is not `seq * heads * dim`.
    #[error("tensor data has {actual} values but shape {seq}x{heads}x{dim} needs {expected}")]
    LengthMismatch {
        /// Sequence length.
        seq: usize,
        /// Head count.
        heads: usize,
        /// Head dimension.
        dim: usize,
        /// `seq * heads * dim`.
        expected: usize,
        /// Values supplied.
        actual: usize,
    },
}

/// A [`HeadConfig`](crate::HeadConfig) breaks one of the validation rules.
///
/// One variant per rule; [`ConfigError::field`] names the config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `q_heads` is 0.
    #[error("`q_heads` must be at least 1")]
    ZeroQueryHeads,
    /// `kv_heads` is 0.
    #[error("`kv_heads` must be at least 1")]
    ZeroKeyValueHeads,
    /// `head_dim` is 0.
    #[error("`head_dim` must be at least 1")]
    ZeroHeadDim,
    /// `block_size` is 0 (landmark blocks would be empty).
    #[error("`block_size` must be at least 1")]
    ZeroBlockSize,
    /// A heavy-hitter eviction policy that keeps no recent token (the token
    /// being appended must survive its own step).
    #[error("`eviction.recent` must be at least 1")]
    ZeroRecent,
    /// `kv_heads` does not divide `q_heads`, so query heads cannot be grouped.
    #[error("`kv_heads` ({kv_heads}) must divide `q_heads` ({q_heads})")]
    GroupRatio {
        /// Configured query heads.
        q_heads: usize,
        /// Configured key/value heads.
        kv_heads: usize,
    },
}

impl ConfigError {
    /// The config key this error is about, as spelled in TOML.
    #[must_use]
    pub const fn field(&self) -> &'static str {
        match self {
            Self::ZeroQueryHeads => "q_heads",
            Self::ZeroKeyValueHeads | Self::GroupRatio { .. } => "kv_heads",
            Self::ZeroHeadDim => "head_dim",
            Self::ZeroBlockSize => "block_size",
            Self::ZeroRecent => "eviction.recent",
        }
    }
}

/// Which input of an attention call an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// Queries.
    Query,
    /// Keys.
    Key,
    /// Values.
    Value,
    /// The caller-supplied output buffer.
    Output,
}

impl core::fmt::Display for Operand {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Query => "q",
            Self::Key => "k",
            Self::Value => "v",
            Self::Output => "output",
        })
    }
}

/// Everything that can go wrong in a backend call.
///
/// Backends validate all inputs before touching a cache, so any `Err` means
/// the cache is exactly as it was before the call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttentionError {
    /// A tensor could not be built.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// The backend's config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tensor has the wrong number of heads for this config.
    #[error("`{operand}` has {actual} heads but the config needs {expected}")]
    HeadCount {
        /// Which tensor.
        operand: Operand,
        /// Heads the config requires.
        expected: usize,
        /// Heads supplied.
        actual: usize,
    },
    /// A tensor has the wrong head dimension for this config.
    #[error("`{operand}` has head_dim {actual} but the config needs {expected}")]
    HeadDim {
        /// Which tensor.
        operand: Operand,
        /// `head_dim` of the config.
        expected: usize,
        /// Dimension supplied.
        actual: usize,
    },
    /// q, k and v disagree on the sequence length.
    #[error("sequence lengths differ: q {q}, k {k}, v {v}")]
    SequenceMismatch {
        /// Query tokens.
        q: usize,
        /// Key tokens.
        k: usize,
        /// Value tokens.
        v: usize,
    },
    /// A streaming step was given more or less than one token.
    #[error("`step` takes exactly one token but `{operand}` has {seq}")]
    StepNotOneToken {
        /// Which tensor.
        operand: Operand,
        /// Tokens supplied.
        seq: usize,
    },
    /// Streaming needs causal attention: a future token cannot be attended to.
    #[error("`step` needs a causal config (`causal = true`)")]
    StepNotCausal,
    /// The cache has no room and no eviction policy was configured.
    #[error("KV cache is full ({capacity} tokens) and no eviction policy is configured")]
    CacheFull {
        /// The cache's capacity in tokens.
        capacity: usize,
    },
    /// The cache was made for a different head shape.
    #[error("KV cache was made for {actual:?} but this backend needs {expected:?}")]
    CacheLayoutMismatch {
        /// The backend's layout.
        expected: CacheLayout,
        /// The cache's layout.
        actual: CacheLayout,
    },
    /// A cache of zero tokens was requested.
    #[error("KV cache capacity must be at least 1")]
    ZeroCapacity,
    /// A heavy-hitter cache whose recent tokens fill it has no room for a
    /// heavy hitter.
    #[error(
        "heavy-hitter eviction keeps {recent} recent tokens; the capacity ({capacity}) must exceed it"
    )]
    RecentNotBelowCapacity {
        /// `eviction.recent`.
        recent: usize,
        /// Requested capacity.
        capacity: usize,
    },
    /// Memory for a cache or buffer could not be reserved.
    #[error("could not allocate {bytes} bytes")]
    OutOfMemory {
        /// Bytes requested.
        bytes: usize,
    },
    /// An f16 cache was handed a finite key or value element that f16
    /// rounds to infinity (`|x| >= 65520`). Refused rather than stored as
    /// infinity so that an overflow is a visible input error instead of a
    /// silent non-finite row; NaN and ±inf themselves are stored as given.
    /// The first offending element is named (keys before values).
    #[error(
        "`{operand}` at position {position}, kv head {kv_head}, element {index} is {value}, \
         which an f16 cache would store as infinity (finite values must have |x| < 65520)"
    )]
    F16Overflow {
        /// [`Operand::Key`] or [`Operand::Value`].
        operand: Operand,
        /// The position the token would have had.
        position: usize,
        /// Key/value head of the element.
        kv_head: usize,
        /// Index of the element within the head (`< head_dim`).
        index: usize,
        /// The offending f32 value.
        value: f32,
    },
    /// [`KvCache::undo_append`](crate::KvCache::undo_append) was called
    /// with no append to take back.
    #[error(
        "no append to undo: the KV cache is new or cleared, or its last append was already undone"
    )]
    NothingToUndo,
    /// An output buffer has the wrong length.
    #[error("output buffer has {actual} values but {expected} are needed")]
    OutputLength {
        /// Values needed.
        expected: usize,
        /// Values supplied.
        actual: usize,
    },
}
