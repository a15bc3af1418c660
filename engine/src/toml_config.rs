//! Loading a [`HeadConfig`] from TOML, with errors a user can act on.
//!
//! Users swap backends by editing a TOML file, so a mistake there must be
//! reported as "which key, which line, what is wrong" — for syntax errors,
//! unknown keys (at the top level or inside `eviction`), wrong types and
//! values that fail the domain's validation alike. The `toml` crate
//! locates parse errors by byte span; validation errors name a field
//! (`eviction.recent`), which is located by re-reading the document with
//! spans.
//!
//! A config is written for some weights, and the weights already fix the
//! attention shape; repeating `q_heads`, `kv_heads` and `head_dim` in the
//! TOML only adds a way to disagree with the blob. So a loader given the
//! blob's [`HeadShape`] takes those keys from it when the TOML leaves them
//! out (a TOML that names them must still match, which the model checks).
//! Likewise a key the chosen backend ignores is optional for it: the dense
//! backend attends to every token, so its TOML may omit `window` and
//! `block_size`. Both are filled in before the domain's own `Deserialize`
//! runs, so `HeadConfig` stays the single definition of the keys.

use std::fmt;
use std::path::Path;

use aether_domain::HeadConfig;
use serde::Deserialize as _;
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

impl ConfigLoadError {
    /// `origin` could not be read.
    #[must_use]
    pub fn unreadable(origin: impl Into<String>, error: &std::io::Error) -> Self {
        Self {
            kind: LoadErrorKind::Io,
            key: None,
            line: None,
            column: None,
            origin: Some(origin.into()),
            message: format!("cannot read: {error}"),
        }
    }

    /// The same error, naming `origin` (a file name, `<stdin>`) as its source.
    #[must_use]
    pub fn with_origin(self, origin: impl Into<String>) -> Self {
        Self {
            origin: Some(origin.into()),
            ..self
        }
    }
}

/// The attention shape that the weights fix: what a TOML may leave out
/// when it is loaded for a particular blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadShape {
    /// Query heads.
    pub q_heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
}

/// Parses and validates a config from TOML text. Every key without a
/// serde default is required, except `window` and `block_size` for the
/// dense backend (which ignores them).
///
/// # Errors
/// A [`ConfigLoadError`] of kind `Syntax`, `UnknownKey`, `MissingKey`,
/// `WrongType` or `InvalidValue`, naming the key and line where possible.
pub fn from_toml_str(text: &str) -> Result<HeadConfig, ConfigLoadError> {
    from_toml_str_with(text, None)
}

/// As [`from_toml_str`], for weights of `shape` when given: `q_heads`,
/// `kv_heads` and `head_dim` then default to the shape's.
///
/// # Errors
/// As [`from_toml_str`].
pub fn from_toml_str_with(
    text: &str,
    shape: Option<HeadShape>,
) -> Result<HeadConfig, ConfigLoadError> {
    let mut root = DeTable::parse(text).map_err(|e| parse_error(text, &e))?;
    let defaults = defaults(root.get_ref(), shape);
    let defaults = DeTable::parse(&defaults).map_err(|e| parse_error(&defaults, &e))?;
    for (key, value) in defaults.into_inner() {
        if !root.get_ref().contains_key(key.get_ref().as_ref()) {
            root.get_mut().insert(key, value);
        }
    }
    let config = HeadConfig::deserialize(toml::de::Deserializer::from(root)).map_err(|e| {
        let mut error = parse_error(text, &e);
        if error.kind == LoadErrorKind::MissingKey {
            error
                .message
                .push_str(&missing_key_hint(error.key.as_deref(), shape));
        }
        error
    })?;
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

/// The keys a TOML may leave out, as a TOML document: the shape keys
/// from `shape`, and for the dense backend the pattern keys it ignores
/// (with the AETHER defaults, so a dense config switched to sparse behaves
/// like the default head). The caller adds only keys `root` lacks, so keys
/// the TOML gives are never touched; a default has no place in the user's
/// text, but it is valid by construction, so no error ever points at it.
fn defaults(root: &DeTable<'_>, shape: Option<HeadShape>) -> String {
    let mut keys = Vec::new();
    if let Some(shape) = shape {
        keys.extend([
            ("q_heads", shape.q_heads),
            ("kv_heads", shape.kv_heads),
            ("head_dim", shape.head_dim),
        ]);
    }
    let dense = root
        .get("backend")
        .and_then(|value| value.get_ref().as_str())
        == Some("dense");
    if dense {
        let aether = HeadConfig::default_aether();
        keys.extend([("window", aether.window), ("block_size", aether.block_size)]);
    }
    keys.iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect()
}

/// Why a key is required, for the ones that are sometimes optional.
fn missing_key_hint(key: Option<&str>, shape: Option<HeadShape>) -> String {
    match key {
        Some("q_heads" | "kv_heads" | "head_dim") if shape.is_none() => {
            " (it is optional only when the config is loaded for a blob, whose heads it takes)"
                .to_owned()
        }
        Some("window" | "block_size") => {
            " (the sparse and reference backends need it; only dense may leave it out)".to_owned()
        }
        _ => String::new(),
    }
}

/// Reads, parses and validates a config file.
///
/// # Errors
/// As [`from_toml_str`], plus `Io` when the file cannot be read; every error
/// carries the path as its origin.
pub fn from_toml_file(path: &Path) -> Result<HeadConfig, ConfigLoadError> {
    from_toml_file_with(path, None)
}

/// As [`from_toml_file`], for weights of `shape` (see [`from_toml_str_with`]).
///
/// # Errors
/// As [`from_toml_file`].
pub fn from_toml_file_with(
    path: &Path,
    shape: Option<HeadShape>,
) -> Result<HeadConfig, ConfigLoadError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigLoadError::unreadable(origin.clone(), &e))?;
    from_toml_str_with(&text, shape).map_err(|e| e.with_origin(origin))
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
    let mut place = span.clone().map(|s| line_column(text, s.start));
    let (kind, key) = if message.starts_with("unknown field") {
        // The span covers the key, or (inside `eviction`, which serde
        // buffers before it reads the tag) the whole table: name the key
        // by its path and point at the key itself.
        let field = quoted(&message);
        let parent = span
            .as_ref()
            .and_then(|s| key_at(text, s.start))
            .filter(|parent| Some(parent) != field.as_ref());
        let key = match (parent, field) {
            (Some(parent), Some(field)) => Some(format!("{parent}.{field}")),
            (_, field) => field,
        };
        if let Some(span) = key.as_deref().and_then(|key| key_span(text, key)) {
            place = Some(line_column(text, span.start));
        }
        (LoadErrorKind::UnknownKey, key)
    } else if message.starts_with("missing field") {
        // A missing key has no place; the span (if any) is the table's.
        let field = quoted(&message);
        let parent = span
            .as_ref()
            .and_then(|s| key_at(text, s.start))
            .filter(|_| span.as_ref().is_some_and(|s| s.start > 0));
        let key = match (parent, field) {
            (Some(parent), Some(field)) => Some(format!("{parent}.{field}")),
            (_, field) => field,
        };
        if key.as_deref().is_some_and(|key| !key.contains('.')) {
            place = None;
        }
        (LoadErrorKind::MissingKey, key)
    } else if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("unknown variant")
        // toml's own word for a non-string, non-table enum (`backend = 3`).
        || message.starts_with("wanted ")
    {
        let key = span.as_ref().and_then(|s| key_at(text, s.start));
        (LoadErrorKind::WrongType, key)
    } else {
        (LoadErrorKind::Syntax, None)
    };
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

/// Byte span of the key at dotted `path` (`window`, `eviction.recent`).
fn key_span(text: &str, path: &str) -> Option<core::ops::Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (key, value) = table
            .iter()
            .find(|(key, _)| key.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            return Some(key.span());
        }
        table = value.get_ref().as_table()?;
    }
    None
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
    use aether_domain::{BackendKind, Eviction};

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
        let sparse = VALID.replace("\"dense\"", "\"sparse\"");
        let e = from_toml_str(&sparse.replace("window = 64\n", "")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::MissingKey);
        assert_eq!(e.key.as_deref(), Some("window"));
    }

    #[test]
    fn missing_shape_keys_need_a_shape() {
        let text = VALID
            .replace("q_heads = 8\n", "")
            .replace("kv_heads = 2\n", "")
            .replace("head_dim = 16\n", "");
        let e = from_toml_str(&text).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::MissingKey);
        assert_eq!(e.key.as_deref(), Some("q_heads"));
        assert_eq!((e.line, e.column), (None, None));
        assert!(e.message.contains("loaded for a blob"), "{e}");
        let shape = HeadShape {
            q_heads: 4,
            kv_heads: 1,
            head_dim: 32,
        };
        let c = from_toml_str_with(&text, Some(shape)).unwrap();
        assert_eq!((c.q_heads, c.kv_heads, c.head_dim), (4, 1, 32));
        // Keys the TOML gives win over the shape (the model then checks
        // that they match the blob).
        let c = from_toml_str_with(VALID, Some(shape)).unwrap();
        assert_eq!((c.q_heads, c.kv_heads, c.head_dim), (8, 2, 16));
    }

    #[test]
    fn dense_may_omit_the_pattern_keys_others_may_not() {
        let text = VALID
            .replace("window = 64\n", "")
            .replace("block_size = 32\n", "");
        let c = from_toml_str(&text).unwrap();
        let aether = HeadConfig::default_aether();
        assert_eq!(c.backend, BackendKind::Dense);
        assert_eq!((c.window, c.block_size), (aether.window, aether.block_size));
        for backend in ["sparse", "reference"] {
            let e = from_toml_str(&text.replace("dense", backend)).unwrap_err();
            assert_eq!(e.kind, LoadErrorKind::MissingKey, "{backend}");
            assert_eq!(e.key.as_deref(), Some("window"));
            assert!(e.message.contains("only dense may leave it out"), "{e}");
        }
        // A wrong-typed backend is reported as such, not as a missing window.
        let e = from_toml_str(&text.replace("\"dense\"", "3")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::WrongType, "{e}");
        assert_eq!(e.key.as_deref(), Some("backend"));
    }

    #[test]
    fn unknown_key_in_any_eviction_variant_names_key_and_line() {
        for policy in [
            "policy = \"none\"",
            "policy = \"sliding_window\"",
            "policy = \"heavy_hitter\", recent = 4",
        ] {
            let inline = with_line(&format!("eviction = {{ {policy}, extra = 1 }}"));
            let e = from_toml_str(&inline).unwrap_err();
            assert_eq!(e.kind, LoadErrorKind::UnknownKey, "{policy}");
            assert_eq!(e.key.as_deref(), Some("eviction.extra"), "{policy}");
            assert_eq!(e.line, Some(8), "{policy}");
            let column = "eviction = { ".len() + policy.len() + ", ".len() + 1;
            assert_eq!(e.column, Some(column), "{policy}");
            assert!(
                e.to_string().starts_with(&format!(
                    "<config>:8:{column}: key `eviction.extra`: unknown"
                )),
                "{e}"
            );

            let table = with_line(&format!(
                "[eviction]\n{}\nextra = 1",
                policy.replace(", ", "\n")
            ));
            let e = from_toml_str(&table).unwrap_err();
            assert_eq!(e.kind, LoadErrorKind::UnknownKey, "{policy}");
            assert_eq!(e.key.as_deref(), Some("eviction.extra"), "{policy}");
            let line = 9 + policy.matches(", ").count() + 1;
            assert_eq!((e.line, e.column), (Some(line), Some(1)), "{table}");
        }
    }

    #[test]
    fn eviction_policies_load() {
        let c = from_toml_str(&with_line("eviction = { policy = \"sliding_window\" }")).unwrap();
        assert_eq!(c.eviction, Eviction::SlidingWindow);
        let c = from_toml_str(&with_line(
            "eviction = { policy = \"heavy_hitter\", recent = 5 }",
        ))
        .unwrap();
        assert_eq!(c.eviction, Eviction::HeavyHitter { recent: 5 });
        let c = from_toml_str(&with_line("eviction = { policy = \"none\" }")).unwrap();
        assert_eq!(c.eviction, Eviction::None);
        let e = from_toml_str(&with_line("eviction = { policy = \"heavy_hitter\" }")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::MissingKey);
        assert_eq!(e.key.as_deref(), Some("eviction.recent"));
        assert_eq!(e.line, Some(8));
        let e = from_toml_str(&with_line(
            "eviction = { policy = \"heavy_hitter\", recent = 0 }",
        ))
        .unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::InvalidValue);
        assert_eq!(e.key.as_deref(), Some("eviction.recent"));
        assert_eq!((e.line, e.column), (Some(8), Some(39)));
        let e = from_toml_str(&with_line("eviction = { policy = \"lru\" }")).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::WrongType);
        assert_eq!(e.key.as_deref(), Some("eviction"));
        assert_eq!(e.line, Some(8));
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
