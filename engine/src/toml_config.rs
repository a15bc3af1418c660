//! Loading a [`HeadConfig`] from TOML, with errors a user can act on.
//!
//! Users swap backends by editing a TOML file, so a mistake there must be
//! reported as "which key, which line, what is wrong" — for syntax errors,
//! unknown keys, wrong types and values that fail the domain's validation
//! alike. The `toml` crate locates parse errors by byte span; validation
//! errors name a field, which is located by re-reading the document with
//! spans.

use std::fmt;
use std::path::Path;

use aether_domain::HeadConfig;
use toml::de::DeTable;

/// What kind of mistake the TOML holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML.
    Syntax,
    /// A key `HeadConfig` does not have.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong type (or an unknown backend name).
    WrongType,
    /// A well-typed value that breaks a validation rule.
    InvalidValue,
}

/// A config that could not be loaded, located in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLoadError {
    /// What went wrong.
    pub kind: LoadErrorKind,
    /// The key concerned, when there is one.
    pub key: Option<String>,
    /// 1-based line, when the problem has a place in the text.
    pub line: Option<usize>,
    /// 1-based column (in characters), with `line`.
    pub column: Option<usize>,
    /// The file name, when loaded from a file.
    pub origin: Option<String>,
    /// Human-readable detail.
    pub message: String,
}

impl fmt::Display for ConfigLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.origin.as_deref().unwrap_or("<config>"))?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigLoadError {}

/// Parses and validates a config from TOML text.
///
/// # Errors
/// A [`ConfigLoadError`] of kind `Syntax`, `UnknownKey`, `MissingKey`,
/// `WrongType` or `InvalidValue`, naming the key and line where possible.
pub fn from_toml_str(text: &str) -> Result<HeadConfig, ConfigLoadError> {
    let config: HeadConfig = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
    config.validate().map_err(|e| {
        let place = key_span(text, e.field()).map(|span| line_column(text, span.start));
        ConfigLoadError {
            kind: LoadErrorKind::InvalidValue,
            key: Some(e.field().to_owned()),
            line: place.map(|(line, _)| line),
            column: place.map(|(_, column)| column),
            origin: None,
            message: e.to_string(),
        }
    })?;
    Ok(config)
}

/// Reads, parses and validates a config file.
///
/// # Errors
/// As [`from_toml_str`], plus `Io` when the file cannot be read; every error
/// carries the path as its origin.
pub fn from_toml_file(path: &Path) -> Result<HeadConfig, ConfigLoadError> {
    let origin = Some(path.display().to_string());
    let text = std::fs::read_to_string(path).map_err(|e| ConfigLoadError {
        kind: LoadErrorKind::Io,
        key: None,
        line: None,
        column: None,
        origin: origin.clone(),
        message: format!("cannot read: {e}"),
    })?;
    from_toml_str(&text).map_err(|e| ConfigLoadError { origin, ..e })
}

/// The first backtick-quoted word of a serde message (the field name in
/// "unknown field `x`" and "missing field `x`").
fn quoted(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

fn parse_error(text: &str, error: &toml::de::Error) -> ConfigLoadError {
    let message = error.message().trim().to_owned();
    let span = error.span();
    let (kind, key) = if message.starts_with("unknown field") {
        (LoadErrorKind::UnknownKey, quoted(&message))
    } else if message.starts_with("missing field") {
        (LoadErrorKind::MissingKey, quoted(&message))
    } else if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("unknown variant")
    {
        let key = span.as_ref().and_then(|s| key_at(text, s.start));
        (LoadErrorKind::WrongType, key)
    } else {
        (LoadErrorKind::Syntax, None)
    };
    let place = span.map(|s| line_column(text, s.start));
    ConfigLoadError {
        kind,
        key,
        line: place.map(|(line, _)| line),
        column: place.map(|(_, column)| column),
        origin: None,
        message,
    }
}

/// The top-level key whose name or value covers byte `offset`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let table = DeTable::parse(text).ok()?;
    table.get_ref().iter().find_map(|(key, value)| {
        let covers = key.span().contains(&offset)
            || value.span().contains(&offset)
            || value.span().end == offset;
        covers.then(|| key.get_ref().to_string())
    })
}

/// Byte span of top-level key `name`.
fn key_span(text: &str, name: &str) -> Option<core::ops::Range<usize>> {
    let table = DeTable::parse(text).ok()?;
    table
        .get_ref()
        .iter()
        .find(|(key, _)| key.get_ref().as_ref() == name)
        .map(|(key, _)| key.span())
}

/// 1-based line and character column of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_domain::BackendKind;

    const VALID: &str = "\
backend = \"dense\"
q_heads = 8
kv_heads = 2
head_dim = 16
window = 64
block_size = 32
causal = false
";

    fn with_line(line: &str) -> String {
        format!("{VALID}{line}\n")
    }

    #[test]
    fn valid_config_gets_defaults() {
        let c = from_toml_str(VALID).unwrap();
        assert_eq!(c.backend, BackendKind::Dense);
        assert_eq!((c.q_heads, c.kv_heads, c.head_dim), (8, 2, 16));
        assert_eq!((c.window, c.block_size, c.causal), (64, 32, false));
        assert_eq!(c.global_tokens, [0]);
        assert!(c.log_stride && c.landmarks);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = from_toml_str(&with_line("windw = 3")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::UnknownKey);
        assert_eq!(e.key.as_deref(), Some("windw"));
        assert_eq!((e.line, e.column), (Some(8), Some(1)));
        assert!(
            e.to_string()
                .starts_with("<config>:8:1: key `windw`: unknown field")
        );
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let text = VALID.replace("head_dim = 16", "head_dim = \"sixteen\"");
        let e = from_toml_str(&text).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::WrongType);
        assert_eq!(e.key.as_deref(), Some("head_dim"));
        assert_eq!(e.line, Some(4));
    }

    #[test]
    fn unknown_backend_is_a_wrong_type_on_its_line() {
        let text = VALID.replace("\"dense\"", "\"fast\"");
        let e = from_toml_str(&text).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::WrongType);
        assert_eq!(e.key.as_deref(), Some("backend"));
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn invalid_values_name_key_and_line() {
        let cases = [
            ("q_heads = 8", "q_heads = 0", "q_heads", 2),
            ("kv_heads = 2", "kv_heads = 3", "kv_heads", 3),
            ("head_dim = 16", "head_dim = 0", "head_dim", 4),
            ("block_size = 32", "block_size = 0", "block_size", 6),
        ];
        for (from, to, key, line) in cases {
            let e = from_toml_str(&VALID.replace(from, to)).unwrap_err();
            assert_eq!(e.kind, LoadErrorKind::InvalidValue, "{to}");
            assert_eq!(e.key.as_deref(), Some(key));
            assert_eq!((e.line, e.column), (Some(line), Some(1)), "{to}");
        }
    }

    #[test]
    fn missing_key_is_named() {
        let e = from_toml_str(&VALID.replace("window = 64\n", "")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::MissingKey);
        assert_eq!(e.key.as_deref(), Some("window"));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = from_toml_str(&with_line("causal = = true")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Syntax);
        assert_eq!(e.line, Some(8));
    }

    #[test]
    fn file_errors_carry_the_path() {
        let dir = std::env::temp_dir().join(format!("aether-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("head.toml");
        std::fs::write(&path, with_line("extra = 1")).unwrap();
        let e = from_toml_file(&path).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::UnknownKey);
        assert_eq!(
            e.origin.as_deref(),
            Some(path.display().to_string().as_str())
        );
        assert!(e.to_string().contains("head.toml:8:1"));
        std::fs::write(&path, VALID).unwrap();
        assert_eq!(from_toml_file(&path).unwrap().head_dim, 16);
        let missing = from_toml_file(&dir.join("absent.toml")).unwrap_err();
        assert_eq!(missing.kind, LoadErrorKind::Io);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
