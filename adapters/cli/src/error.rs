//! Every way a command can fail, and how each failure becomes one line.
//!
//! A command-line tool is judged by its errors: the user should read one
//! line on stderr that says which file, which line or check, and what is
//! wrong, and the exit status should say "usage" (2) or "runtime" (1).
//! Every command returns [`CliError`]; `main` prints it through
//! [`report`], which guarantees the single line (messages from other crates
//! are flattened if they ever span several) and the exit code. Usage errors
//! found by clap go through [`usage`], which flattens clap's multi-line
//! report the same way.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use aether_domain::ConfigError;
use aether_engine::toml_config::ConfigLoadError;
use aether_model::ModelError;
use aether_rvne::{FileError, RvneError};

use crate::csv::CsvError;

/// Exit status of a runtime failure (a bad file, a failed check).
const RUNTIME_FAILURE: u8 = 1;

/// Why a command failed. Each variant's `Display` is one line, without the
/// leading `error: `.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A `.rvne` file could not be read, or failed a format check.
    Blob(FileError),
    /// A blob could not be made (writer error); or a bundled blob failed.
    Format {
        /// What was being made or read.
        what: String,
        /// The format's error.
        source: RvneError,
    },
    /// `init` would overwrite an existing file without `--force`.
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// An output file could not be written.
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Standard output could not be written (a closed pipe is not reported).
    Output(io::Error),
    /// A frames CSV could not be read.
    Csv(CsvError),
    /// A head config TOML could not be loaded.
    ConfigFile(ConfigLoadError),
    /// A head config (from the blob's header) was refused by the backend.
    Config {
        /// Where the config came from.
        origin: String,
        /// The first broken rule.
        source: ConfigError,
    },
    /// The model refused the weights, the config or the frames.
    Model {
        /// What the model was doing, e.g. `model.rvne with head.toml`.
        context: String,
        /// The model's error.
        source: ModelError,
    },
    /// A demo self-check failed: backends or paths disagree.
    Check(String),
    /// `--classes` names another number of classes than the model has.
    ClassCount {
        /// Names given.
        given: usize,
        /// The model file, as named.
        model: String,
        /// Classes of the model.
        classes: usize,
    },
    /// A stream's KV cache is full and the head config has no eviction
    /// policy: the message names both ways out.
    CacheFull {
        /// Model and input line, e.g. `model.rvne on <stdin>:70`.
        at: String,
        /// The frame that did not fit (0-based).
        frame: usize,
        /// The cache's capacity in frames.
        capacity: usize,
    },
    /// `aether packet` failed: unreadable input or a bad packet.
    Packet(crate::packet::Failure),
    /// Training data could not be read or split.
    Dataset(aether_dataset::DatasetError),
    /// Training failed (bad settings, a non-finite loss).
    Train(aether_train::TrainError),
    /// A safetensors file could not be read or written.
    Safetensors(aether_safetensors::SafetensorsError),
    /// A model card beside a model is not one, or does not fit it.
    Sidecar {
        /// The card.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `aether gate` said no: a criterion failed (the table on standard
    /// output has the numbers), or the data cannot be gated.
    Gate(String),
    /// A dense or reference prefill longer than the documented limit,
    /// without `--force`.
    TooLong {
        /// `dense` or `reference`.
        backend: &'static str,
        /// Why it is slow.
        why: &'static str,
        /// Frames per classification.
        frames: usize,
        /// The limit.
        limit: usize,
    },
    /// An input (a CSI log) could not be read.
    Input {
        /// The input as the user named it.
        origin: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A CSI line is malformed and `--strict` makes that fatal.
    CsiLine {
        /// The log as the user named it.
        origin: String,
        /// 1-based line.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The feature extractor refused its configuration.
    CsiConfig(aether_csi::CsiError),
    /// A feature frame came out non-finite: never written, never classified.
    NonFiniteFeature {
        /// The log as the user named it.
        origin: String,
        /// 1-based line of the packet that completed the frame.
        line: usize,
        /// The band (0-based).
        band: usize,
    },
    /// A CSI log gave no frame at all.
    NoCsiFrames {
        /// The log as the user named it.
        origin: String,
        /// Lines read.
        lines: u64,
        /// CSI lines among them.
        packets: u64,
    },
    /// `--append` to a labelled CSV whose header is not this run's.
    AppendHeader {
        /// The file.
        path: PathBuf,
        /// Its first line (shortened).
        found: String,
        /// This run's header (shortened).
        expected: String,
    },
    /// The model reads frames of another size than `--bands` makes.
    BandsMismatch {
        /// The model file, as named.
        model: String,
        /// The model's input_dim.
        input_dim: usize,
        /// `--bands`.
        bands: usize,
    },
}

impl CliError {
    /// A model error with what was being done.
    pub(crate) fn model(context: impl Into<String>, source: ModelError) -> Self {
        Self::Model {
            context: context.into(),
            source,
        }
    }

    /// Whether this is a write to a reader that went away (`| head`):
    /// not an error worth a message.
    fn is_closed_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl From<aether_dataset::DatasetError> for CliError {
    fn from(e: aether_dataset::DatasetError) -> Self {
        Self::Dataset(e)
    }
}

impl From<aether_train::TrainError> for CliError {
    fn from(e: aether_train::TrainError) -> Self {
        Self::Train(e)
    }
}

impl From<aether_safetensors::SafetensorsError> for CliError {
    fn from(e: aether_safetensors::SafetensorsError) -> Self {
        Self::Safetensors(e)
    }
}

impl From<CsvError> for CliError {
    fn from(e: CsvError) -> Self {
        Self::Csv(e)
    }
}

impl From<ConfigLoadError> for CliError {
    fn from(e: ConfigLoadError) -> Self {
        Self::ConfigFile(e)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        Self::Output(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blob(FileError::Format { path, source }) => write!(
                f,
                "{}: not a valid .rvne blob: {}",
                path.display(),
                describe_check(source)
            ),
            Self::Blob(e) => write!(f, "{e}"),
            Self::Packet(e) => write!(f, "{e}"),
            Self::Format { what, source } => write!(f, "{what}: {}", describe_check(source)),
            Self::Exists { path } => write!(
                f,
                "{} already exists; pass --force to overwrite it",
                path.display()
            ),
            Self::Write { path, source } => write!(f, "cannot write {}: {source}", path.display()),
            Self::Output(e) => write!(f, "cannot write to standard output: {e}"),
            Self::Csv(e) => write!(f, "{e}"),
            Self::Dataset(e) => write!(f, "{e}"),
            Self::Train(e) => write!(f, "training failed: {e}"),
            Self::Safetensors(e) => write!(f, "{e}"),
            Self::Sidecar { path, why } => {
                write!(f, "{}: not a usable model card: {why}", path.display())
            }
            Self::ConfigFile(e) => write!(f, "{e}"),
            Self::Config { origin, source } => {
                write!(f, "{origin}: key `{}`: {source}", source.field())
            }
            Self::Model { context, source } => write!(f, "{context}: {source}"),
            Self::Check(message) => write!(f, "demo check failed: {message}"),
            Self::Gate(message) => write!(f, "{message}"),
            Self::ClassCount {
                given,
                model,
                classes,
            } => write!(
                f,
                "--classes names {given} classes but {model} has {classes}"
            ),
            Self::CacheFull {
                at,
                frame,
                capacity,
            } => write!(
                f,
                "{at}: frame {frame} does not fit: the KV cache is full ({capacity} frames) and \
                 the head config has no eviction policy; pass a larger --capacity, or set \
                 `eviction = {{ policy = \"sliding_window\" }}` (or `heavy_hitter`) in the \
                 --config TOML"
            ),
            Self::Input { origin, source } => write!(f, "cannot read {origin}: {source}"),
            Self::CsiLine { origin, line, why } => write!(
                f,
                "{origin}:{line}: malformed CSI line: {why} (without --strict it would be \
                 reported and skipped)"
            ),
            Self::CsiConfig(e) => write!(f, "{e}"),
            Self::NonFiniteFeature { origin, line, band } => write!(
                f,
                "{origin}:{line}: feature band {band} came out non-finite; the frame is not \
                 written or classified"
            ),
            Self::NoCsiFrames {
                origin,
                lines,
                packets,
            } => write!(
                f,
                "{origin}: no feature frames from {packets} CSI packets in {lines} lines (the \
                 summary above says why; an esp-csi csi_recv or ESP32-CSI-Tool log has \
                 `CSI_DATA,` lines)"
            ),
            Self::AppendHeader {
                path,
                found,
                expected,
            } => write!(
                f,
                "{}: cannot append: its header is `{found}`, these frames need `{expected}` \
                 (another --bands?)",
                path.display()
            ),
            Self::BandsMismatch {
                model,
                input_dim,
                bands,
            } => write!(
                f,
                "{model} reads frames of {input_dim} values but --bands makes {bands}; pass \
                 --bands {input_dim}, or use a model trained on {bands}-band features"
            ),
            Self::TooLong {
                backend,
                why,
                frames,
                limit,
            } => write!(
                f,
                "the {backend} backend over {frames} frames per classification would take very \
                 long ({why}); above {limit} frames it runs only with --force. Alternatives: \
                 backend = \"sparse\", --segment N, or --stream"
            ),
        }
    }
}

/// Which parse check an error comes from: its number (1–8, the order the
/// parser runs them, as listed in `docs/rvne-format.md`, "Parse checks, in
/// order") and a short name. `None` for writer and
/// accessor errors.
pub(crate) const fn parse_check(error: &RvneError) -> Option<(u8, &'static str)> {
    Some(match error {
        RvneError::TooShort { .. } => (1, "minimum length"),
        RvneError::BadMagic { .. } => (2, "magic"),
        RvneError::UnsupportedVersion { .. } => (3, "version"),
        RvneError::ReservedFlagBits { .. } | RvneError::ReservedByte { .. } => (4, "reserved bits"),
        RvneError::LengthMismatch { .. } => (5, "total length"),
        RvneError::CrcMismatch { .. } => (6, "CRC"),
        RvneError::ZeroDimension { .. }
        | RvneError::GroupRatio { .. }
        | RvneError::NoLayers
        | RvneError::TooFewClasses { .. }
        | RvneError::BadNorm { .. }
        | RvneError::ReservedOptionBytes
        | RvneError::ConvTaps => (7, "header rules"),
        RvneError::SizeOverflow | RvneError::WeightsLenMismatch { .. } => (8, "weights length"),
        _ => return None,
    })
}

/// `check 6 of 8 (CRC) failed: CRC mismatch: ...` for a parse error, the
/// bare message otherwise.
fn describe_check(error: &RvneError) -> String {
    match parse_check(error) {
        Some((number, name)) => format!("check {number} of 8 ({name}) failed: {error}"),
        None => error.to_string(),
    }
}

/// Joins the non-empty lines of `message` with `; `, so a message from
/// another crate can never break the one-line rule.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Prints a runtime error as one `error: ...` line and returns exit status 1.
/// A closed standard output (the reader of a pipe quit) exits quietly.
pub(crate) fn report(error: &CliError) -> ExitCode {
    if error.is_closed_pipe() {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {}", one_line(&error.to_string()));
    ExitCode::from(RUNTIME_FAILURE)
}

/// Handles a clap parse failure: help and version go to stdout as clap
/// prints them (exit 0); a usage error becomes one line (exit 2).
pub(crate) fn usage(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Printing help can only fail if stdout is gone; nothing to add.
            let _ = error.print();
        }
        _ => {
            // clap renders "error: ...", a blank line, tips, "Usage: ..." and
            // "For more information, try '--help'."; keep the substance.
            let rendered = error.render().to_string();
            let substance: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .filter(|line| {
                    !line.is_empty()
                        && !line.starts_with("Usage:")
                        && !line.starts_with("For more information")
                })
                .collect();
            let line = substance.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            eprintln!("error: {line} (see --help)");
        }
    }
    // clap's own statuses: 0 for help/version, 2 for usage errors.
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parse_error_names_its_check_in_spec_order() {
        let errors = [
            RvneError::TooShort { len: 3 },
            RvneError::BadMagic { found: 0 },
            RvneError::UnsupportedVersion { found: 2 },
            RvneError::ReservedFlagBits { flags: 2 },
            RvneError::ReservedByte { value: 1 },
            RvneError::LengthMismatch {
                declared: 30,
                actual: 29,
            },
            RvneError::CrcMismatch {
                stored: 1,
                computed: 2,
            },
            RvneError::ZeroDimension { field: "head_dim" },
            RvneError::GroupRatio {
                n_q_heads: 4,
                n_kv_heads: 3,
            },
            RvneError::NoLayers,
            RvneError::TooFewClasses { n_classes: 1 },
            RvneError::SizeOverflow,
            RvneError::WeightsLenMismatch {
                expected: 8,
                actual: 4,
            },
        ];
        let numbers: Vec<u8> = errors
            .iter()
            .map(|e| parse_check(e).map_or(0, |(n, _)| n))
            .collect();
        assert_eq!(numbers, [1, 2, 3, 4, 4, 5, 6, 7, 7, 7, 7, 8, 8]);
        for e in errors {
            assert!(e.is_format_error());
        }
        assert_eq!(parse_check(&RvneError::NoLayers), Some((7, "header rules")));
        assert_eq!(
            parse_check(&RvneError::LayerOutOfRange {
                layer: 3,
                n_layers: 2
            }),
            None
        );
    }

    #[test]
    fn one_line_flattens() {
        assert_eq!(one_line("a\n\n  b \n"), "a; b");
        assert_eq!(one_line("single"), "single");
    }

    #[test]
    fn messages_are_one_line() {
        let e = CliError::Format {
            what: "bundled model".into(),
            source: RvneError::CrcMismatch {
                stored: 0x1234_5678,
                computed: 0x9ABC_DEF0,
            },
        };
        assert_eq!(
            e.to_string(),
            "bundled model: check 6 of 8 (CRC) failed: CRC mismatch: stored 0x12345678, \
             computed 0x9ABCDEF0"
        );
    }
}
