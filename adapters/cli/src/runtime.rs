//! Turning a blob and a head config into a runnable model.
//!
//! `classify` and `demo` both need "these weights, this backend"; this
//! module is the one place that decides which head config applies (the
//! blob's own heads with the AETHER defaults for everything else, unless a
//! TOML file says otherwise) and that wraps the errors of the model and the
//! engine with the file they concern. The backend itself is always built
//! by the engine's composition root, [`Backend::from_config`]; the CLI
//! never matches on a backend kind to construct one.

use std::path::Path;

use aether_domain::{BackendKind, HeadConfig};
use aether_engine::{Backend, toml_config};
use aether_model::TemporalModel;
use aether_rvne::{Header, RvneBlob, RvneView};

use crate::error::CliError;

/// The model type every command runs: whichever backend the config chose.
pub(crate) type Model = TemporalModel<Backend>;

/// Reads and validates a `.rvne` file.
pub(crate) fn read_blob(path: &Path) -> Result<RvneBlob, CliError> {
    RvneBlob::read_file(path).map_err(CliError::Blob)
}

/// The head config for a blob when the user gave none: the AETHER default
/// (sparse, window 32, block 16, causal, token 0 global) with the blob's
/// own query heads, KV heads and head dim, so any valid blob runs.
pub(crate) fn default_config(header: Header) -> HeadConfig {
    HeadConfig {
        q_heads: usize::from(header.n_q_heads),
        kv_heads: usize::from(header.n_kv_heads),
        head_dim: usize::from(header.head_dim),
        ..HeadConfig::default_aether()
    }
}

/// The head config from `--config` if given, else [`default_config`];
/// with a string naming where it came from, for error messages.
pub(crate) fn head_config(
    header: Header,
    config: Option<&Path>,
) -> Result<(HeadConfig, String), CliError> {
    match config {
        Some(path) => Ok((
            toml_config::from_toml_file(path)?,
            path.display().to_string(),
        )),
        None => Ok((
            default_config(header),
            "default head config (from the blob header)".to_owned(),
        )),
    }
}

/// The config with another backend, everything else unchanged.
pub(crate) fn with_backend(config: &HeadConfig, backend: BackendKind) -> HeadConfig {
    HeadConfig {
        backend,
        ..config.clone()
    }
}

/// Builds the model: the engine picks the backend, the model checks that
/// the blob's heads are the config's ([`aether_model::ModelError::HeadMismatch`])
/// and that every weight is finite.
///
/// `model_name` and `config_origin` name the two inputs in errors.
pub(crate) fn build(
    view: RvneView<'_>,
    config: HeadConfig,
    model_name: &str,
    config_origin: &str,
) -> Result<Model, CliError> {
    let backend = Backend::from_config(config).map_err(|source| CliError::Config {
        origin: config_origin.to_owned(),
        source,
    })?;
    TemporalModel::new(view, backend)
        .map_err(|e| CliError::model(format!("{model_name} with {config_origin}"), e))
}

/// The lowercase name of a backend, as written in TOML.
pub(crate) const fn backend_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Sparse => "sparse",
        BackendKind::Dense => "dense",
        BackendKind::Reference => "reference",
    }
}

/// One line describing a head config: backend and pattern parameters.
pub(crate) fn describe_config(config: &HeadConfig) -> String {
    let mut parts = vec![format!(
        "backend {}, q_heads {}, kv_heads {}, head_dim {}",
        backend_name(config.backend),
        config.q_heads,
        config.kv_heads,
        config.head_dim
    )];
    if config.backend != BackendKind::Dense {
        parts.push(format!(
            "window {}, block {}, globals {:?}, log-stride {}, landmarks {}",
            config.window,
            config.block_size,
            config.global_tokens,
            on_off(config.log_stride),
            on_off(config.landmarks)
        ));
    }
    parts.push(
        if config.causal {
            "causal"
        } else {
            "non-causal"
        }
        .to_owned(),
    );
    parts.join(", ")
}

const fn on_off(flag: bool) -> &'static str {
    if flag { "on" } else { "off" }
}

/// The six shape fields, named, in `--shape` order, and the element type.
pub(crate) fn describe_shape(header: Header) -> String {
    format!(
        "input_dim {}, q_heads {}, kv_heads {}, head_dim {}, layers {}, classes {}, {}",
        header.input_dim,
        header.n_q_heads,
        header.n_kv_heads,
        header.head_dim,
        header.n_layers,
        header.n_classes,
        element_name(header)
    )
}

/// `f32` or `f16`.
pub(crate) const fn element_name(header: Header) -> &'static str {
    match header.element_type {
        aether_rvne::ElementType::F32 => "f32",
        aether_rvne::ElementType::F16 => "f16",
    }
}
