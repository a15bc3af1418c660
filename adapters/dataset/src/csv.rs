//! The labelled CSV format (`docs/training-data.md`, "Labelled CSV"):
//! how recordings travel between a capture tool, a hand edit and the
//! trainer, as text anyone can inspect.
//!
//! ```text
//! label,sequence,f0,f1,…,f{D-1}
//! still,rec-01,0.93,1.02,…
//! ```
//!
//! Rows of one sequence are consecutive; a sequence id that comes back
//! after another sequence is refused (it is far more likely two files
//! pasted together than one recording). Class indices follow the order in
//! which class names first appear.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use crate::{DatasetError, Recordings, Sequence};

/// Reads a labelled CSV file.
///
/// # Errors
/// [`DatasetError::Read`] when the file cannot be read (or is not UTF-8),
/// and every error of [`parse_labelled`], naming the file.
pub fn read_labelled(path: impl AsRef<Path>) -> Result<Recordings, DatasetError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_labelled(&text, &path.display().to_string())
}

/// Parses labelled CSV text; `source_name` is the file name the errors
/// report.
///
/// Accepted beyond the strict format: a UTF-8 byte-order mark, CRLF line
/// ends, a missing final newline, blank lines anywhere, and whitespace
/// around a field (trimmed). No quoting: a field cannot contain a comma.
///
/// # Errors
/// [`DatasetError::Csv`] naming file, line and column for: an empty text,
/// a bad header, a wrong field count, an empty label or sequence id, a
/// value that is not a number or not finite, a sequence id that reappears
/// after another sequence, and a header without data rows.
pub fn parse_labelled(text: &str, source_name: &str) -> Result<Recordings, DatasetError> {
    let error = |line: usize, column: usize, problem: String| DatasetError::Csv {
        file: source_name.to_owned(),
        line,
        column,
        problem,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
        .filter(|(_, line)| !line.trim().is_empty());

    let Some((header_line, header)) = lines.next() else {
        return Err(error(
            1,
            1,
            "empty file: expected the header `label,sequence,f0,…`".to_owned(),
        ));
    };
    let input_dim =
        parse_header(header).map_err(|(column, problem)| error(header_line, column, problem))?;
    let fields_per_row = input_dim + 2;

    let mut recordings = Recordings {
        input_dim,
        classes: Vec::new(),
        sequences: Vec::new(),
    };
    let mut class_index: HashMap<String, usize> = HashMap::new();
    // Ids of finished sequences, with the line their rows ended on.
    let mut finished: HashMap<String, usize> = HashMap::new();
    let mut last_line = header_line;
    for (line_number, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != fields_per_row {
            let column = fields.len().min(fields_per_row) + 1;
            return Err(error(
                line_number,
                column,
                format!(
                    "{} fields, the header has {fields_per_row} (label, sequence and {input_dim} values)",
                    fields.len()
                ),
            ));
        }
        let (label, id) = (fields[0], fields[1]);
        if label.is_empty() {
            return Err(error(line_number, 1, "empty label".to_owned()));
        }
        if id.is_empty() {
            return Err(error(line_number, 2, "empty sequence id".to_owned()));
        }
        let continues = recordings.sequences.last().is_some_and(|s| s.id == id);
        if !continues {
            if let Some(&ended) = finished.get(id) {
                let current = recordings.sequences.last().map_or("", |s| s.id.as_str());
                return Err(error(
                    line_number,
                    2,
                    format!(
                        "sequence `{id}` reappears after sequence `{current}` (its rows ended at line {ended}); a sequence's rows must be consecutive"
                    ),
                ));
            }
            if let Some(previous) = recordings.sequences.last() {
                finished.insert(previous.id.clone(), last_line);
            }
            recordings.sequences.push(Sequence {
                id: id.to_owned(),
                frames: Vec::new(),
                labels: Vec::new(),
            });
        }
        for (k, field) in fields[2..].iter().enumerate() {
            let column = k + 3;
            let value: f32 = field.parse().map_err(|_| {
                error(
                    line_number,
                    column,
                    format!("f{k}: `{field}` is not a number"),
                )
            })?;
            if !value.is_finite() {
                return Err(error(
                    line_number,
                    column,
                    format!("f{k}: `{field}` is not finite (NaN and infinities are refused)"),
                ));
            }
            if let Some(sequence) = recordings.sequences.last_mut() {
                sequence.frames.push(value);
            }
        }
        let next = recordings.classes.len();
        let label_index = *class_index.entry(label.to_owned()).or_insert(next);
        if label_index == next {
            recordings.classes.push(label.to_owned());
        }
        if let Some(sequence) = recordings.sequences.last_mut() {
            sequence.labels.push(label_index);
        }
        last_line = line_number;
    }
    if recordings.sequences.is_empty() {
        return Err(error(
            header_line + 1,
            1,
            "no data rows after the header".to_owned(),
        ));
    }
    Ok(recordings)
}

/// The header's `input_dim`, or the 1-based column and problem.
fn parse_header(header: &str) -> Result<usize, (usize, String)> {
    let fields: Vec<&str> = header.split(',').map(str::trim).collect();
    for (column, expected) in [(1, "label"), (2, "sequence")] {
        match fields.get(column - 1) {
            Some(&found) if found == expected => {}
            found => {
                return Err((
                    column,
                    format!(
                        "bad header: expected `{expected}`, found `{}` (the header is `label,sequence,f0,…,f{{D-1}}`)",
                        found.unwrap_or(&"")
                    ),
                ));
            }
        }
    }
    if fields.len() < 3 {
        return Err((
            3,
            "bad header: no feature columns (expected `f0` after `sequence`)".to_owned(),
        ));
    }
    for (k, found) in fields[2..].iter().enumerate() {
        if *found != format!("f{k}") {
            return Err((
                k + 3,
                format!("bad header: expected `f{k}`, found `{found}`"),
            ));
        }
    }
    Ok(fields.len() - 2)
}

/// Writes `recordings` as labelled CSV, one frame per row, values in
/// Rust's shortest round-trip `f32` formatting, so reading the text back
/// gives the same bits.
///
/// Reading back reproduces `recordings` exactly when its classes are
/// listed in order of first use and every class is used (the reader
/// numbers classes that way); otherwise the result differs only in the
/// class numbering.
///
/// # Errors
/// The errors of [`Recordings::validate`]; [`DatasetError::BadName`] for a
/// class name or sequence id that is empty, contains a comma or line
/// break, or has surrounding whitespace (the reader could not give it
/// back); [`DatasetError::BadSequence`] for a sequence without frames (it
/// would vanish); [`DatasetError::Write`] when `out` fails.
pub fn write_labelled(recordings: &Recordings, mut out: impl Write) -> Result<(), DatasetError> {
    recordings.validate()?;
    let used: HashSet<usize> = recordings
        .sequences
        .iter()
        .flat_map(|s| s.labels.iter().copied())
        .collect();
    for (index, class) in recordings.classes.iter().enumerate() {
        if used.contains(&index) {
            check_name("class name", class)?;
        }
    }
    for sequence in &recordings.sequences {
        check_name("sequence id", &sequence.id)?;
        if sequence.is_empty() {
            return Err(DatasetError::BadSequence {
                id: sequence.id.clone(),
                problem: "no frames: a CSV cannot hold an empty sequence".to_owned(),
            });
        }
    }
    let mut text = String::from("label,sequence");
    for k in 0..recordings.input_dim {
        text.push_str(&format!(",f{k}"));
    }
    text.push('\n');
    out.write_all(text.as_bytes())
        .map_err(DatasetError::Write)?;
    let dim = recordings.input_dim;
    for sequence in &recordings.sequences {
        for (frame, &label) in sequence.labels.iter().enumerate() {
            text.clear();
            text.push_str(&recordings.classes[label]);
            text.push(',');
            text.push_str(&sequence.id);
            for value in &sequence.frames[frame * dim..(frame + 1) * dim] {
                text.push_str(&format!(",{value}"));
            }
            text.push('\n');
            out.write_all(text.as_bytes())
                .map_err(DatasetError::Write)?;
        }
    }
    out.flush().map_err(DatasetError::Write)
}

fn check_name(kind: &'static str, name: &str) -> Result<(), DatasetError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains(',') {
        "it contains a comma"
    } else if name.contains(['\n', '\r']) {
        "it contains a line break"
    } else if name.trim() != name {
        "it has surrounding whitespace"
    } else {
        return Ok(());
    };
    Err(DatasetError::BadName {
        kind,
        name: name.to_owned(),
        reason,
    })
}
