//! How results are printed, shared by `classify` and `demo`.
//!
//! One formatter for a classification (argmax, margin, logits) keeps the
//! two commands' output identical, so what a user learns from the demo
//! reads the same in `classify`, and scripts (and the tests) can parse
//! both. Logits are printed with seven decimals: at the magnitudes a
//! temporal model produces that is f32 precision, so a printed streaming
//! result can be compared with a printed prefill result to 1e-6.
//!
//! `classify` also writes JSON Lines and CSV ([`Output`]) for programs
//! rather than people: there, floats are written in full (the shortest
//! text that reads back as the same f32), and field names are a stable
//! interface documented in the CLI's README.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

use crate::classify::Format;

/// The decision a classification makes: the top class and by how much.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decision {
    /// Index of the largest logit (the lowest index on a tie).
    pub(crate) argmax: usize,
    /// Largest logit minus the second largest (0 on a tie).
    pub(crate) margin: f32,
}

impl Decision {
    /// The decision for `logits` (at least two, as every valid blob has).
    pub(crate) fn of(logits: &[f32]) -> Self {
        let mut argmax = 0;
        for (index, &value) in logits.iter().enumerate() {
            if value > logits[argmax] {
                argmax = index;
            }
        }
        let runner_up = logits
            .iter()
            .enumerate()
            .filter(|&(index, _)| index != argmax)
            .map(|(_, &value)| value)
            .fold(f32::NEG_INFINITY, f32::max);
        let margin = if runner_up.is_finite() {
            logits[argmax] - runner_up
        } else {
            0.0
        };
        Self { argmax, margin }
    }
}

/// `argmax 2  margin 0.0123456  logits [+0.1234567, -0.0123456]`.
pub(crate) fn decision_and_logits(logits: &[f32]) -> String {
    let decision = Decision::of(logits);
    format!(
        "argmax {}  margin {:.7}  logits {}",
        decision.argmax,
        decision.margin,
        logits_list(logits)
    )
}

/// One classification result: a segment (prefill) or a frame (streaming).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a> {
    /// Index of the segment (0 without `--segment`).
    pub(crate) segment: usize,
    /// First frame of the sequence classified (the segment's first).
    pub(crate) first_frame: usize,
    /// Last frame classified: the one whose logits these are.
    pub(crate) last_frame: usize,
    /// 1-based input line of `last_frame`.
    pub(crate) line: usize,
    /// The logits.
    pub(crate) logits: &'a [f32],
    /// Streaming (one row per frame) rather than prefill (per segment):
    /// decides the text layout only.
    pub(crate) streaming: bool,
}

/// A JSON Lines record; field order and names are the documented format.
#[derive(Serialize)]
struct Record<'a> {
    segment: usize,
    first_frame: usize,
    last_frame: usize,
    line: usize,
    argmax: usize,
    class: Option<&'a str>,
    margin: f32,
    logits: &'a [f32],
}

/// Where `classify` writes its results, in the chosen format.
pub(crate) struct Output<'a> {
    out: &'a mut dyn Write,
    format: Format,
    classes: Option<&'a [String]>,
    n_classes: usize,
}

impl<'a> Output<'a> {
    /// Results for a model with `n_classes` classes, named by `classes`
    /// when given (as many names as classes).
    pub(crate) fn new(
        out: &'a mut dyn Write,
        format: Format,
        classes: Option<&'a [String]>,
        n_classes: usize,
    ) -> Self {
        Self {
            out,
            format,
            classes,
            n_classes,
        }
    }

    /// A `# ...` line describing the run (text only: the machine formats
    /// carry results and nothing else).
    pub(crate) fn comment(&mut self, text: &str) -> io::Result<()> {
        match self.format {
            Format::Text => writeln!(self.out, "# {text}"),
            Format::Json | Format::Csv => Ok(()),
        }
    }

    /// The CSV header row (nothing for the other formats).
    pub(crate) fn header(&mut self) -> io::Result<()> {
        if self.format != Format::Csv {
            return Ok(());
        }
        write!(
            self.out,
            "segment,first_frame,last_frame,line,argmax,class,margin"
        )?;
        for index in 0..self.n_classes {
            write!(self.out, ",logit_{index}")?;
        }
        writeln!(self.out)
    }

    /// One result line.
    pub(crate) fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        let decision = Decision::of(row.logits);
        let class = self.classes.map(|names| names[decision.argmax].as_str());
        match self.format {
            Format::Text => {
                if row.streaming {
                    write!(self.out, "frame {}  ", row.last_frame)?;
                } else {
                    write!(
                        self.out,
                        "segment {}  frames {}-{}  ",
                        row.segment, row.first_frame, row.last_frame
                    )?;
                }
                write!(self.out, "argmax {}  ", decision.argmax)?;
                if let Some(class) = class {
                    write!(self.out, "class {class}  ")?;
                }
                writeln!(
                    self.out,
                    "margin {:.7}  logits {}",
                    decision.margin,
                    logits_list(row.logits)
                )
            }
            Format::Json => {
                let record = Record {
                    segment: row.segment,
                    first_frame: row.first_frame,
                    last_frame: row.last_frame,
                    line: row.line,
                    argmax: decision.argmax,
                    class,
                    margin: decision.margin,
                    logits: row.logits,
                };
                serde_json::to_writer(&mut *self.out, &record).map_err(io::Error::from)?;
                writeln!(self.out)
            }
            Format::Csv => {
                write!(
                    self.out,
                    "{},{},{},{},{},{},{}",
                    row.segment,
                    row.first_frame,
                    row.last_frame,
                    row.line,
                    decision.argmax,
                    csv_field(class.unwrap_or("")),
                    decision.margin
                )?;
                for value in row.logits {
                    write!(self.out, ",{value}")?;
                }
                writeln!(self.out)
            }
        }
    }

    /// Flushes, so a streamed result reaches a pipe's reader now.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A CSV field, quoted (RFC 4180) when it holds a quote, comma or line end.
fn csv_field(text: &str) -> String {
    if text.contains(['"', ',', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// `[+0.1234567, -0.0123456]`.
pub(crate) fn logits_list(logits: &[f32]) -> String {
    let mut out = String::from("[");
    for (index, value) in logits.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{value:+.7}");
    }
    out.push(']');
    out
}

/// `41244` as `41,244`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Largest absolute difference between two equally long slices.
pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_picks_the_first_maximum_and_its_margin() {
        assert_eq!(
            Decision::of(&[0.5, 2.0, -1.0, 1.5]),
            Decision {
                argmax: 1,
                margin: 0.5
            }
        );
        assert_eq!(
            Decision::of(&[1.0, 1.0]),
            Decision {
                argmax: 0,
                margin: 0.0
            }
        );
    }

    #[test]
    fn formats() {
        assert_eq!(logits_list(&[0.25, -1.0]), "[+0.2500000, -1.0000000]");
        assert_eq!(
            decision_and_logits(&[0.25, -1.0]),
            "argmax 0  margin 1.2500000  logits [+0.2500000, -1.0000000]"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(41_244), "41,244");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 1.0]), 1.0);
    }

    fn render(format: Format, classes: Option<&[String]>, streaming: bool) -> String {
        let mut bytes = Vec::new();
        let mut output = Output::new(&mut bytes, format, classes, 2);
        output.comment("a run").unwrap();
        output.header().unwrap();
        output
            .row(&Row {
                segment: 1,
                first_frame: 4,
                last_frame: 7,
                line: 9,
                logits: &[0.25, -1.0],
                streaming,
            })
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn each_format_writes_the_same_result() {
        let names = ["still".to_owned(), "a \"b\"".to_owned()];
        assert_eq!(
            render(Format::Text, None, false),
            "# a run\nsegment 1  frames 4-7  argmax 0  margin 1.2500000  logits [+0.2500000, \
             -1.0000000]\n"
        );
        assert_eq!(
            render(Format::Text, Some(&names), true),
            "# a run\nframe 7  argmax 0  class still  margin 1.2500000  logits [+0.2500000, \
             -1.0000000]\n"
        );
        assert_eq!(
            render(Format::Json, Some(&names), true),
            "{\"segment\":1,\"first_frame\":4,\"last_frame\":7,\"line\":9,\"argmax\":0,\
             \"class\":\"still\",\"margin\":1.25,\"logits\":[0.25,-1.0]}\n"
        );
        assert_eq!(
            render(Format::Csv, None, false),
            "segment,first_frame,last_frame,line,argmax,class,margin,logit_0,logit_1\n\
             1,4,7,9,0,,1.25,0.25,-1\n"
        );
        assert_eq!(csv_field("a \"b\""), "\"a \"\"b\"\"\"");
        assert_eq!(csv_field("x,y"), "\"x,y\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
