//! The frame reader: one frame per line, `input_dim` comma-separated floats.
//!
//! Feature frames come from loggers, spreadsheets and scripts, so the reader
//! is forgiving where nothing can be misread (blank lines, `#` comments —
//! whole-line or trailing —, spaces around fields, CRLF line ends, a UTF-8
//! byte-order mark) and strict where a mistake would silently change the
//! model's input: every line must have exactly `input_dim` fields, each a
//! number that is finite as an `f32`. Errors name the file, the line and
//! (for a bad field) the column and field number, so the user can jump
//! straight to the problem. No third-party CSV crate: the format is this
//! small, and quoting or headers would only be ways to get it wrong.
//!
//! Two ways in: [`read_frames`] reads a whole file (prefill needs every
//! frame before it starts), and [`FrameReader`] hands out one frame per
//! line as it arrives, for streaming from a pipe that may never close.
//! Both use the same row parser, so they accept and refuse the same text.

use std::fmt;
use std::io::{self, BufRead, Read as _};
use std::path::Path;

/// Frames read from a CSV, row-major `[frames][input_dim]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frames {
    values: Vec<f32>,
    input_dim: usize,
    /// 1-based source line of each frame.
    lines: Vec<usize>,
}

impl Frames {
    /// Number of frames.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }

    /// Frame `index` (`input_dim` values).
    pub(crate) fn frame(&self, index: usize) -> &[f32] {
        &self.values[index * self.input_dim..(index + 1) * self.input_dim]
    }

    /// Frames `range`, row-major.
    pub(crate) fn span(&self, range: std::ops::Range<usize>) -> &[f32] {
        &self.values[range.start * self.input_dim..range.end * self.input_dim]
    }

    /// Source line of frame `index` (1-based).
    pub(crate) fn line(&self, index: usize) -> usize {
        self.lines[index]
    }
}

/// Why a frames CSV was refused. `Display` is one line starting with the
/// file (and line, and column) it is about.
#[derive(Debug)]
pub(crate) enum CsvError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    Read {
        /// The file as the user named it.
        origin: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A line has the wrong number of fields.
    FieldCount {
        /// The file as the user named it.
        origin: String,
        /// 1-based line.
        line: usize,
        /// `input_dim` of the model.
        expected: usize,
        /// Fields on the line.
        found: usize,
        /// The line ends in a comma (a common cause of one extra field).
        trailing_comma: bool,
    },
    /// A field is empty or not a number.
    NotANumber {
        /// The file as the user named it.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based character column where the field starts.
        column: usize,
        /// 1-based field number.
        field: usize,
        /// The field's text, trimmed.
        text: String,
    },
    /// A field is a number but not a finite `f32` (`nan`, `inf`, `1e39`).
    NotFinite {
        /// The file as the user named it.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based character column where the field starts.
        column: usize,
        /// 1-based field number.
        field: usize,
        /// The field's text, trimmed.
        text: String,
    },
    /// No line holds a frame.
    NoFrames {
        /// The file as the user named it.
        origin: String,
    },
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { origin, source } => write!(f, "cannot read {origin}: {source}"),
            Self::FieldCount {
                origin,
                line,
                expected,
                found,
                trailing_comma,
            } => {
                write!(
                    f,
                    "{origin}:{line}: expected {expected} values, found {found}"
                )?;
                if *trailing_comma {
                    f.write_str(" (the line ends with a comma)")?;
                }
                Ok(())
            }
            Self::NotANumber {
                origin,
                line,
                column,
                field,
                text,
            } => {
                if text.is_empty() {
                    write!(f, "{origin}:{line}:{column}: field {field} is empty")
                } else {
                    write!(
                        f,
                        "{origin}:{line}:{column}: field {field}: `{text}` is not a number"
                    )
                }
            }
            Self::NotFinite {
                origin,
                line,
                column,
                field,
                text,
            } => write!(
                f,
                "{origin}:{line}:{column}: field {field}: `{text}` is not a finite f32"
            ),
            Self::NoFrames { origin } => write!(
                f,
                "{origin}: no frames (every line is blank or a `#` comment)"
            ),
        }
    }
}

/// The name of a file argument in messages: `<stdin>` for `-`.
pub(crate) fn origin_of(path: &Path) -> String {
    if is_stdin(path) {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Whether a file argument means standard input (or output): `-`.
pub(crate) fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Reads frames of `input_dim` values from `path`; `-` reads standard input.
pub(crate) fn read_frames(path: &Path, input_dim: usize) -> Result<Frames, CsvError> {
    let origin = origin_of(path);
    let read = if is_stdin(path) {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    let text = read.map_err(|source| CsvError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse_frames(&text, &origin, input_dim)
}

/// Parses CSV text; `origin` names it in errors.
pub(crate) fn parse_frames(text: &str, origin: &str, input_dim: usize) -> Result<Frames, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values = Vec::new();
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if parse_row(raw, origin, line, input_dim, &mut values)? {
            lines.push(line);
        }
    }
    if lines.is_empty() {
        return Err(CsvError::NoFrames {
            origin: origin.to_owned(),
        });
    }
    Ok(Frames {
        values,
        input_dim,
        lines,
    })
}

/// Parses line `line` (1-based, without its line end): appends its
/// `input_dim` values to `values` and returns `true`, or returns `false`
/// for a blank or comment line. On error `values` may hold part of the row.
fn parse_row(
    raw: &str,
    origin: &str,
    line: usize,
    input_dim: usize,
    values: &mut Vec<f32>,
) -> Result<bool, CsvError> {
    let data = raw.split_once('#').map_or(raw, |(data, _)| data);
    if data.trim().is_empty() {
        return Ok(false);
    }
    let found = data.split(',').count();
    if found != input_dim {
        return Err(CsvError::FieldCount {
            origin: origin.to_owned(),
            line,
            expected: input_dim,
            found,
            trailing_comma: data.trim_end().ends_with(','),
        });
    }
    let mut start = 0;
    for (field_index, field) in data.split(',').enumerate() {
        let text = field.trim();
        let leading = field.len() - field.trim_start().len();
        let column = raw[..start + leading].chars().count() + 1;
        start += field.len() + 1;
        let field = field_index + 1;
        let value: f32 = text.parse().map_err(|_| CsvError::NotANumber {
            origin: origin.to_owned(),
            line,
            column,
            field,
            text: text.to_owned(),
        })?;
        if !value.is_finite() {
            return Err(CsvError::NotFinite {
                origin: origin.to_owned(),
                line,
                column,
                field,
                text: text.to_owned(),
            });
        }
        values.push(value);
    }
    Ok(true)
}

/// Frames read one line at a time, as they arrive: nothing is read ahead
/// of the frame asked for, so a frame written to a pipe is classified
/// before the writer sends the next one (or closes the pipe).
pub(crate) struct FrameReader<R> {
    reader: R,
    origin: String,
    input_dim: usize,
    /// Lines read so far (the 1-based number of the last one).
    line: usize,
    /// Frames handed out so far.
    frames: usize,
    text: String,
    values: Vec<f32>,
}

impl<R: BufRead> FrameReader<R> {
    /// Reads frames of `input_dim` values from `reader`; `origin` names it
    /// in errors.
    pub(crate) fn new(reader: R, origin: String, input_dim: usize) -> Self {
        Self {
            reader,
            origin,
            input_dim,
            line: 0,
            frames: 0,
            text: String::new(),
            values: Vec::with_capacity(input_dim),
        }
    }

    /// The name of the input, as in errors.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// The next frame and its 1-based line; `None` at the end of the input.
    ///
    /// # Errors
    /// A [`CsvError`] for a bad line or a read failure, and
    /// [`CsvError::NoFrames`] when the input ends without a single frame.
    pub(crate) fn next_frame(&mut self) -> Result<Option<(&[f32], usize)>, CsvError> {
        loop {
            self.text.clear();
            let read = self
                .reader
                .read_line(&mut self.text)
                .map_err(|source| CsvError::Read {
                    origin: self.origin.clone(),
                    source,
                })?;
            if read == 0 {
                if self.frames == 0 {
                    return Err(CsvError::NoFrames {
                        origin: self.origin.clone(),
                    });
                }
                return Ok(None);
            }
            self.line += 1;
            let mut raw = self.text.strip_suffix('\n').unwrap_or(&self.text);
            raw = raw.strip_suffix('\r').unwrap_or(raw);
            if self.line == 1 {
                raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
            }
            self.values.clear();
            if parse_row(
                raw,
                &self.origin,
                self.line,
                self.input_dim,
                &mut self.values,
            )? {
                self.frames += 1;
                return Ok(Some((&self.values, self.line)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Frames, String> {
        parse_frames(text, "f.csv", 3).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_frames_skipping_blanks_and_comments() {
        let text = "\u{feff}# header comment\r\n1,2,3\r\n\n  \n 4 , -5.5,6e-1 # trailing\n#7,8,9\n";
        let frames = parse(text).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames.span(0..2), [1.0, 2.0, 3.0, 4.0, -5.5, 0.6]);
        assert_eq!(frames.frame(1), [4.0, -5.5, 0.6]);
        assert_eq!((frames.line(0), frames.line(1)), (2, 5));
    }

    #[test]
    fn wrong_field_count_names_the_line() {
        assert_eq!(
            parse("1,2,3\n1,2\n").unwrap_err(),
            "f.csv:2: expected 3 values, found 2"
        );
        assert_eq!(
            parse("1,2,3,\n").unwrap_err(),
            "f.csv:1: expected 3 values, found 4 (the line ends with a comma)"
        );
    }

    #[test]
    fn bad_numbers_name_line_column_and_field() {
        assert_eq!(
            parse("1,2,3\n1, x2 ,3\n").unwrap_err(),
            "f.csv:2:4: field 2: `x2` is not a number"
        );
        assert_eq!(parse("1,,3\n").unwrap_err(), "f.csv:1:3: field 2 is empty");
        assert_eq!(
            parse("1,2,NaN\n").unwrap_err(),
            "f.csv:1:5: field 3: `NaN` is not a finite f32"
        );
        assert_eq!(
            parse("1e39,2,3\n").unwrap_err(),
            "f.csv:1:1: field 1: `1e39` is not a finite f32"
        );
        assert_eq!(
            parse("-inf,2,3\n").unwrap_err(),
            "f.csv:1:1: field 1: `-inf` is not a finite f32"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(
            parse("1,2,3 \nμ,2,3\n").unwrap_err(),
            "f.csv:2:1: field 1: `μ` is not a number"
        );
        assert_eq!(
            parse("1,2,μ\n").unwrap_err(),
            "f.csv:1:5: field 3: `μ` is not a number"
        );
    }

    #[test]
    fn no_frames_is_an_error() {
        assert_eq!(
            parse("# only\n\n").unwrap_err(),
            "f.csv: no frames (every line is blank or a `#` comment)"
        );
    }

    #[test]
    fn the_frame_reader_accepts_and_refuses_what_the_file_reader_does() {
        let text = "\u{feff}# header comment\r\n1,2,3\r\n\n  \n 4 , -5.5,6e-1 # trailing\n#7,8,9\n";
        let mut reader = FrameReader::new(text.as_bytes(), "f.csv".into(), 3);
        assert_eq!(reader.origin(), "f.csv");
        let (frame, line) = reader.next_frame().unwrap().unwrap();
        assert_eq!((frame, line), (&[1.0, 2.0, 3.0][..], 2));
        let (frame, line) = reader.next_frame().unwrap().unwrap();
        assert_eq!((frame, line), (&[4.0, -5.5, 0.6][..], 5));
        assert!(reader.next_frame().unwrap().is_none());

        let mut reader = FrameReader::new("1,2,3\n1, x2 ,3\n".as_bytes(), "f.csv".into(), 3);
        assert!(reader.next_frame().unwrap().is_some());
        assert_eq!(
            reader.next_frame().unwrap_err().to_string(),
            "f.csv:2:4: field 2: `x2` is not a number"
        );
        let mut reader = FrameReader::new("# only\n\n".as_bytes(), "f.csv".into(), 3);
        assert_eq!(
            reader.next_frame().unwrap_err().to_string(),
            "f.csv: no frames (every line is blank or a `#` comment)"
        );
        // The last line needs no line end.
        let mut reader = FrameReader::new("1,2,3".as_bytes(), "f.csv".into(), 3);
        assert_eq!(reader.next_frame().unwrap().unwrap().1, 1);
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let e = read_frames(Path::new("/nonexistent/frames.csv"), 3).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/frames.csv: ")
        );
    }
}
