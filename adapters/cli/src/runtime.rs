//! Turning a blob and a head config into a runnable model.
//!
//! `classify` and `demo` both need "these weights, this backend"; this
//! module is the one place that decides which head config applies (the
//! blob's own heads with the AETHER defaults for everything else, unless a
//! TOML file says otherwise) and that wraps the errors of the model and the
//! engine with the file they concern. The backend itself is always built
//! by the engine's composition root, [`Backend::from_config`]; the CLI
//! never matches on a backend kind to construct one.
//!
//! Every file argument may be `-` for standard input; the readers here
//! handle that so each command does not have to.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use aether_domain::{BackendKind, Eviction, HeadConfig};
use aether_engine::Backend;
use aether_engine::toml_config::{self, ConfigLoadError, HeadShape};
use aether_model::TemporalModel;
use aether_rvne::{FileError, Header, MAX_BLOB_LEN, RvneBlob, RvneView};

use crate::csv::{is_stdin, origin_of};
use crate::error::CliError;

/// The model type every command runs: whichever backend the config chose.
pub(crate) type Model = TemporalModel<Backend>;

/// Reads and validates a `.rvne` file; `-` reads standard input.
pub(crate) fn read_blob(path: &Path) -> Result<RvneBlob, CliError> {
    if !is_stdin(path) {
        return RvneBlob::read_file(path).map_err(CliError::Blob);
    }
    let name = PathBuf::from(origin_of(path));
    // As for a file: read at most one byte more than any blob can be, so
    // a wrong pipe cannot make the host allocate without bound.
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_BLOB_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| {
            CliError::Blob(FileError::Read {
                path: name.clone(),
                source,
            })
        })?;
    if bytes.len() as u64 > MAX_BLOB_LEN {
        return Err(CliError::Blob(FileError::TooLarge {
            path: name,
            len: bytes.len() as u64,
        }));
    }
    RvneBlob::from_bytes(bytes)
        .map_err(|source| CliError::Blob(FileError::Format { path: name, source }))
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

/// The head config from `--config` if given (`-`: standard input), else
/// [`default_config`]; with a string naming where it came from, for error
/// messages. A TOML may leave out the blob's shape keys (`q_heads`,
/// `kv_heads`, `head_dim`): they are taken from `header`.
pub(crate) fn head_config(
    header: Header,
    config: Option<&Path>,
) -> Result<(HeadConfig, String), CliError> {
    let Some(path) = config else {
        return Ok((default_config(header), "the default head config".to_owned()));
    };
    let shape = Some(HeadShape {
        q_heads: usize::from(header.n_q_heads),
        kv_heads: usize::from(header.n_kv_heads),
        head_dim: usize::from(header.head_dim),
    });
    let origin = origin_of(path);
    let config = if is_stdin(path) {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| ConfigLoadError::unreadable(origin.clone(), &e))?;
        toml_config::from_toml_str_with(&text, shape).map_err(|e| e.with_origin(&origin))?
    } else {
        toml_config::from_toml_file_with(path, shape)?
    };
    Ok((config, origin))
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
    let weights = view.to_weights().map_err(|source| CliError::Format {
        what: format!("decoding the weights of {model_name}"),
        source,
    })?;
    TemporalModel::new(weights, backend)
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
    parts.push(format!(
        "cache {}, eviction {}",
        match config.cache_dtype {
            aether_domain::CacheDtype::F32 => "f32",
            aether_domain::CacheDtype::F16 => "f16",
        },
        eviction_name(config.eviction)
    ));
    parts.join(", ")
}

/// The eviction policy as written in TOML (`heavy_hitter (recent 64)`).
pub(crate) fn eviction_name(eviction: Eviction) -> String {
    match eviction {
        Eviction::None => "none".to_owned(),
        Eviction::SlidingWindow => "sliding_window".to_owned(),
        Eviction::HeavyHitter { recent } => format!("heavy_hitter (recent {recent})"),
    }
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

/// `Exists` when `path` is there and `--force` was not given: every
/// command that writes a file refuses to overwrite one by default.
pub(crate) fn refuse_overwrite(path: &Path, force: bool) -> Result<(), CliError> {
    if path.exists() && !force {
        return Err(CliError::Exists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Writes `text` to `path`, or to `out` when there is no path or it is
/// `-`. Returns the path written, so the caller can report it (a report
/// on standard output would corrupt text written there).
pub(crate) fn write_text<'p>(
    out: &mut dyn std::io::Write,
    path: Option<&'p Path>,
    force: bool,
    text: &str,
) -> Result<Option<&'p Path>, CliError> {
    match path.filter(|path| !is_stdin(path)) {
        None => {
            out.write_all(text.as_bytes())?;
            Ok(None)
        }
        Some(path) => {
            refuse_overwrite(path, force)?;
            std::fs::write(path, text).map_err(|source| CliError::Write {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(Some(path))
        }
    }
}

/// The model version and, for version 2, its options
/// (`docs/model.md`), as `inspect` and `demo` print them: the shape alone
/// no longer says which model a blob holds.
pub(crate) fn describe_version(header: Header) -> String {
    let o = header.options;
    if o.is_v1() {
        return "model version 1".to_owned();
    }
    let mut text = format!(
        "model version 2: norm {}, conv_taps {}, mlp_hidden {}",
        match o.norm {
            aether_model::Norm::None => "none",
            aether_model::Norm::Layer => "layer",
            aether_model::Norm::Rms => "rms",
        },
        o.conv_taps,
        o.mlp_hidden
    );
    // Centring and pooling are named only when on, so a model without
    // them reads as it did before they existed.
    if o.centre_shift > 0 {
        text += &format!(
            ", centring 2^-{} (gain 2^{})",
            o.centre_shift, o.centre_gain_log2
        );
    }
    if o.pool_shift > 0 {
        text += &format!(", pooled readout 2^-{}", o.pool_shift);
    }
    text
}

/// `f32` or `f16`.
pub(crate) const fn element_name(header: Header) -> &'static str {
    match header.element_type {
        aether_rvne::ElementType::F32 => "f32",
        aether_rvne::ElementType::F16 => "f16",
    }
}
