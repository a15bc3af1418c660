//! The composition root: the one place that knows every backend.
//!
//! A [`HeadConfig`] names a backend; [`Backend::from_config`] runs the
//! domain's selection rule and builds the matching implementation, and the
//! [`Backend`] enum forwards the [`AttentionBackend`] port to it with static
//! dispatch (a `match`, no `dyn`, usable on `no_std`). [`tracks`] runs many
//! independent streams over one backend. With the `std`
//! feature, `toml_config` loads a `HeadConfig` from TOML with errors that
//! name the key and line.
//!
//! **Invariant:** no other crate matches on [`BackendKind`] to construct a
//! backend; adding a backend means adding a variant here and nowhere else.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod toml_config;
pub mod tracks;

use aether_dense::DenseBackend;
use aether_domain::{
    AttentionBackend, AttentionError, BackendKind, ConfigError, HeadConfig, KvCache, Tensor,
    TensorView, select,
};
use aether_reference::ReferenceBackend;
use aether_sparse::SparseBackend;

/// Whichever backend the config selected.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The fast subquadratic kernel.
    Sparse(SparseBackend),
    /// Exact dense attention.
    Dense(DenseBackend),
    /// The naive oracle.
    Reference(ReferenceBackend),
}

impl Backend {
    /// Builds the backend `config` names, after validating it.
    ///
    /// # Errors
    /// The config's first [`ConfigError`].
    pub fn from_config(config: HeadConfig) -> Result<Self, ConfigError> {
        Ok(match select(&config)?.backend {
            BackendKind::Sparse => Self::Sparse(SparseBackend::new(config)?),
            BackendKind::Dense => Self::Dense(DenseBackend::new(config)?),
            BackendKind::Reference => Self::Reference(ReferenceBackend::new(config)?),
        })
    }

    /// Which backend this is.
    #[must_use]
    pub const fn kind(&self) -> BackendKind {
        match self {
            Self::Sparse(_) => BackendKind::Sparse,
            Self::Dense(_) => BackendKind::Dense,
            Self::Reference(_) => BackendKind::Reference,
        }
    }
}

impl From<SparseBackend> for Backend {
    fn from(backend: SparseBackend) -> Self {
        Self::Sparse(backend)
    }
}

impl From<DenseBackend> for Backend {
    fn from(backend: DenseBackend) -> Self {
        Self::Dense(backend)
    }
}

impl From<ReferenceBackend> for Backend {
    fn from(backend: ReferenceBackend) -> Self {
        Self::Reference(backend)
    }
}

/// Forwards one port method to the variant's backend.
///
/// `enum_dispatch` would generate this, but it can only dispatch a trait
/// whose definition it saw in the same crate, and the port must live in the
/// domain crate (see ARCHITECTURE.md, "Departures from the original plan").
macro_rules! forward {
    ($self:ident, $backend:ident => $call:expr) => {
        match $self {
            Backend::Sparse($backend) => $call,
            Backend::Dense($backend) => $call,
            Backend::Reference($backend) => $call,
        }
    };
}

impl AttentionBackend for Backend {
    fn config(&self) -> &HeadConfig {
        forward!(self, b => b.config())
    }

    fn forward(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
    ) -> Result<Tensor, AttentionError> {
        forward!(self, b => b.forward(q, k, v))
    }

    fn make_cache(&self, capacity: usize) -> Result<KvCache, AttentionError> {
        forward!(self, b => b.make_cache(capacity))
    }

    fn step_into(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        cache: &mut KvCache,
        out: &mut [f32],
    ) -> Result<(), AttentionError> {
        forward!(self, b => b.step_into(q, k, v, cache, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_selects_the_named_backend() {
        for kind in [
            BackendKind::Sparse,
            BackendKind::Dense,
            BackendKind::Reference,
        ] {
            let config = HeadConfig {
                backend: kind,
                ..HeadConfig::default_aether()
            };
            let backend = Backend::from_config(config.clone()).unwrap();
            assert_eq!(backend.kind(), kind);
            assert_eq!(backend.config(), &config);
        }
    }

    #[test]
    fn invalid_config_builds_nothing() {
        let config = HeadConfig {
            kv_heads: 3,
            ..HeadConfig::default_aether()
        };
        assert_eq!(
            Backend::from_config(config).unwrap_err(),
            ConfigError::GroupRatio {
                q_heads: 4,
                kv_heads: 3
            }
        );
    }
}
