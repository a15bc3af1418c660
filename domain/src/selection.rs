//! The selection rule: which backend and which head path a config gets.
//!
//! A pure function of the config (tract's "candidates → pick" idea), so the
//! choice is testable without running any kernel and cannot drift between
//! the host, the firmware and the tests.

use crate::config::{BackendKind, HeadConfig};
use crate::error::ConfigError;

/// How query heads map onto key/value heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionPath {
    /// One KV head per query head (`q_heads == kv_heads`).
    MultiHead,
    /// `group` query heads share each KV head (`kv_heads < q_heads`);
    /// MQA is the case `kv_heads == 1`.
    GroupedQuery {
        /// `q_heads / kv_heads`, at least 2.
        group: usize,
    },
}

/// The outcome of [`select`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// The backend named by the config.
    pub backend: BackendKind,
    /// The head path implied by the head counts.
    pub path: AttentionPath,
}

/// Picks the backend and head path for `config`.
///
/// # Errors
/// The config's first [`ConfigError`] if it is invalid; an invalid config has
/// no path.
pub const fn select(config: &HeadConfig) -> Result<Selection, ConfigError> {
    if let Err(e) = config.validate() {
        return Err(e);
    }
    let group = config.group_size();
    let path = if group == 1 {
        AttentionPath::MultiHead
    } else {
        AttentionPath::GroupedQuery { group }
    };
    Ok(Selection {
        backend: config.backend,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_table() {
        use AttentionPath::{GroupedQuery, MultiHead};
        use BackendKind::{Dense, Reference, Sparse};
        let table: [(BackendKind, usize, usize, Result<Selection, ConfigError>); 8] = [
            (
                Sparse,
                4,
                4,
                Ok(Selection {
                    backend: Sparse,
                    path: MultiHead,
                }),
            ),
            (
                Sparse,
                4,
                1,
                Ok(Selection {
                    backend: Sparse,
                    path: GroupedQuery { group: 4 },
                }),
            ),
            (
                Sparse,
                8,
                2,
                Ok(Selection {
                    backend: Sparse,
                    path: GroupedQuery { group: 4 },
                }),
            ),
            (
                Dense,
                1,
                1,
                Ok(Selection {
                    backend: Dense,
                    path: MultiHead,
                }),
            ),
            (
                Dense,
                6,
                3,
                Ok(Selection {
                    backend: Dense,
                    path: GroupedQuery { group: 2 },
                }),
            ),
            (
                Reference,
                2,
                2,
                Ok(Selection {
                    backend: Reference,
                    path: MultiHead,
                }),
            ),
            (
                Sparse,
                4,
                3,
                Err(ConfigError::GroupRatio {
                    q_heads: 4,
                    kv_heads: 3,
                }),
            ),
            (
                Dense,
                2,
                4,
                Err(ConfigError::GroupRatio {
                    q_heads: 2,
                    kv_heads: 4,
                }),
            ),
        ];
        for (backend, q_heads, kv_heads, expected) in table {
            let config = HeadConfig {
                backend,
                q_heads,
                kv_heads,
                ..HeadConfig::default_aether()
            };
            assert_eq!(
                select(&config),
                expected,
                "{backend:?} q{q_heads} kv{kv_heads}"
            );
        }
    }
}
