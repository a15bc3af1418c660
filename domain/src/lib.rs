//! The domain of aether-temporal: what attention means here, independent of
//! how any backend computes it.
//!
//! Everything a backend, adapter or test needs to agree on lives in this
//! crate: the tensor layout, the head configuration and its validation, the
//! backend-selection rule, the sparse candidate pattern, the KV cache that
//! streaming decode appends to, and the [`AttentionBackend`] port. Their
//! definitions are `docs/attention.md` and `docs/streaming.md`.
//!
//! **Invariant:** this crate depends on no other workspace crate and never
//! on `std` (it is `no_std` + `alloc`), so the firmware can use all of it.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod cache;
pub mod check;
pub mod config;
pub mod cpu;
pub mod error;
pub mod f16_conv;
pub mod numerics;
pub mod pattern;
pub mod port;
mod position_index;
pub mod selection;
pub mod tensor;

pub use cache::{CacheLayout, KvCache, Landmark, Row};
pub use config::{BackendKind, CacheDtype, Eviction, HeadConfig};
pub use error::{AttentionError, ConfigError, ShapeError};
/// The f16 type of [`Row::F16`], re-exported so backends need not name `half`.
pub use half::f16;
pub use pattern::{Candidates, SparsePattern};
pub use port::AttentionBackend;
pub use selection::{AttentionPath, Selection, select};
pub use tensor::{Shape, Tensor, TensorView};
