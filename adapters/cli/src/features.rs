//! `aether features`: an ESP32's raw CSI log in, the model's feature frames
//! out.
//!
//! The model reads feature frames (`docs/csi-features.md`); a board prints
//! raw CSI lines between its boot log. This command is the bridge on the
//! host, built on the same `aether-csi` code the firmware runs, so a frame
//! computed here from a capture is bit for bit the frame the device would
//! have classified. Its two outputs are the two inputs the rest of the CLI
//! takes: the frames CSV of `aether classify --frames` and, with
//! `--label`/`--sequence`, the labelled CSV of `aether train --data`
//! (`docs/training-data.md`).
//!
//! A serial line is noisy, so reading is forgiving where nothing is lost
//! and loud where something is: lines that are not CSI are counted and
//! skipped, a broken CSI line is reported with its line number and skipped
//! (or stops the run with `--strict`), a packet the extractor refuses is
//! reported once per reason and counted. The summary on stderr says what
//! happened to every line. The input is read line by line, never to the
//! end first, so a serial port (`/dev/ttyUSB0`, or `-` with the port piped
//! in) works as the input; [`CsiFrames`] is also what
//! `aether classify --stream --csi` reads.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use aether_csi::{
    CsiError, Extractor, FeatureConfig, FieldChoice, FieldProblem, Grid, LogError, LogFormat,
    LogParser, MAX_CSI_LEN, Parsed,
};
use clap::{Args, ValueEnum};

use crate::csv::{is_stdin, origin_of};
use crate::error::CliError;

/// Arguments of `aether features`.
#[derive(Debug, Args)]
pub(crate) struct FeaturesArgs {
    /// The raw CSI log: esp-csi `csi_recv` or ESP32-CSI-Tool serial output,
    /// boot log and all; `-` reads standard input (a serial port piped in).
    /// A serial device path such as /dev/ttyUSB0 works as a file.
    #[arg(long, value_name = "FILE")]
    pub(crate) csi: PathBuf,
    /// Where the frames go; `-` or no --out is standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Append to --out instead of replacing it. A labelled CSV's header is
    /// written only when the file is new or empty, and must match the
    /// file's when it is not.
    #[arg(long, requires = "out")]
    append: bool,
    /// Write the labelled training CSV (`label,sequence,f0,...`) with this
    /// class name on every frame, instead of bare frames.
    #[arg(long, value_name = "NAME", requires = "sequence", value_parser = parse_name)]
    label: Option<String>,
    /// The recording's sequence id in the labelled CSV (with --label).
    #[arg(long, value_name = "ID", requires = "label", value_parser = parse_name)]
    sequence: Option<String>,
    #[command(flatten)]
    pub(crate) options: CsiOptions,
}

/// How a CSI log becomes frames: shared by `features` and
/// `classify --stream --csi`, so the frames a model was trained on and the
/// frames it classifies are cut the same way from the same flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct CsiOptions {
    /// Values per frame: the kept subcarriers are cut into this many bands
    /// (1..=48). A model's input_dim must equal it.
    #[arg(long, value_name = "N", default_value_t = 16, requires = "csi",
          value_parser = clap::value_parser!(u16).range(1..=48))]
    pub(crate) bands: u16,
    /// Frames per second (1..=1000): packets are averaged into, or
    /// interpolated across, intervals of this rate.
    #[arg(long, value_name = "HZ", default_value_t = 50, requires = "csi",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) rate: u32,
    /// The training field read: `auto` (the HT-LTF when the packet has
    /// one, else the LLTF) or `lltf` (always the LLTF, which every packet
    /// carries: for a stream mixing non-HT and HT packets).
    #[arg(long, value_name = "FIELD", default_value = "auto", requires = "csi")]
    pub(crate) field: Field,
    /// Stop at the first malformed CSI line instead of reporting and
    /// skipping it.
    #[arg(long, requires = "csi")]
    pub(crate) strict: bool,
}

/// `--field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Field {
    /// The HT-LTF when present, else the LLTF.
    Auto,
    /// Always the LLTF.
    Lltf,
}

impl CsiOptions {
    /// The extractor config these flags select (the rest at its defaults).
    fn config(&self) -> FeatureConfig {
        FeatureConfig {
            bands: usize::from(self.bands),
            frame_rate_hz: self.rate,
            field: match self.field {
                Field::Auto => FieldChoice::HtLtfWhenPresent,
                Field::Lltf => FieldChoice::Lltf,
            },
            ..FeatureConfig::default()
        }
    }
}

/// Parses a class name or sequence id the labelled CSV can carry and give
/// back: not empty, no comma or line break, no surrounding white space
/// (the dataset reader's rules).
fn parse_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("it is empty".to_owned())
    } else if text.contains(',') {
        Err("it contains a comma, the labelled CSV's separator".to_owned())
    } else if text.contains(['\n', '\r']) {
        Err("it contains a line break".to_owned())
    } else if text.trim() != text {
        Err("it has white space around it, which the CSV reader trims".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// One frame handed out by [`CsiFrames`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CsiFrame<'a> {
    /// The band values.
    pub(crate) values: &'a [f32],
    /// The 1-based log line whose packet completed the frame (the last
    /// line for the frame the end of the input closes).
    pub(crate) line: usize,
    /// The extractor's segment: it starts again after a silence.
    pub(crate) segment: u32,
}

/// What happened to the lines of a log so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LineCounts {
    lines: u64,
    csi: u64,
    headers: u64,
    not_csi: u64,
    malformed: u64,
    esp_csi: bool,
    csi_tool: bool,
    /// Packets refused by the extractor, per reason: layout, grid, silent.
    rejected: [u64; 3],
}

/// Frames from a CSI log, one at a time, as the log arrives: a line is read
/// only when the frames of the lines before it have all been handed out.
pub(crate) struct CsiFrames {
    reader: BufReader<Box<dyn Read>>,
    origin: String,
    strict: bool,
    parser: LogParser,
    extractor: Extractor,
    /// The I/Q values of the line being read.
    iq: Vec<i8>,
    text: Vec<u8>,
    counts: LineCounts,
    /// Frames the last line produced (row-major), their segments, and the
    /// next one to hand out.
    pending: Vec<f32>,
    segments: Vec<u32>,
    next: usize,
    pending_line: usize,
    ended: bool,
}

impl CsiFrames {
    /// Opens `path` (`-`: standard input) with the extractor of `options`.
    pub(crate) fn open(path: &Path, options: &CsiOptions) -> Result<Self, CliError> {
        let origin = origin_of(path);
        let input: Box<dyn Read> = if is_stdin(path) {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).map_err(|source| CliError::Input {
                origin: origin.clone(),
                source,
            })?)
        };
        Self::new(input, origin, options)
    }

    /// Reads `input`, named `origin` in messages.
    fn new(input: Box<dyn Read>, origin: String, options: &CsiOptions) -> Result<Self, CliError> {
        let extractor = Extractor::new(options.config()).map_err(CliError::CsiConfig)?;
        Ok(Self {
            reader: BufReader::with_capacity(1 << 16, input),
            origin,
            strict: options.strict,
            parser: LogParser::new(),
            extractor,
            iq: vec![0; MAX_CSI_LEN],
            text: Vec::new(),
            counts: LineCounts::default(),
            pending: Vec::new(),
            segments: Vec::new(),
            next: 0,
            pending_line: 0,
            ended: false,
        })
    }

    /// The input's name in messages.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Values per frame.
    pub(crate) fn bands(&self) -> usize {
        self.extractor.config().bands
    }

    /// The next frame; `None` once the input has ended and every frame has
    /// been handed out.
    ///
    /// # Errors
    /// An unreadable input, a malformed line with `--strict`, and a frame
    /// that is not finite (which would poison a model's cache).
    pub(crate) fn next_frame(&mut self) -> Result<Option<CsiFrame<'_>>, CliError> {
        self.next_frame_with(&mut || Ok(()))
    }

    /// [`next_frame`](Self::next_frame), calling `idle` before every read
    /// that may wait for the writer (every byte read so far is used): the
    /// moment to flush buffered output, so a live reader sees each frame
    /// while a file is still written in large blocks.
    pub(crate) fn next_frame_with(
        &mut self,
        idle: &mut dyn FnMut() -> Result<(), CliError>,
    ) -> Result<Option<CsiFrame<'_>>, CliError> {
        while self.next == self.segments.len() {
            if self.ended {
                return Ok(None);
            }
            self.pending.clear();
            self.segments.clear();
            self.next = 0;
            if self.reader.buffer().is_empty() {
                idle()?;
            }
            self.read_line()?;
        }
        let d = self.bands();
        let index = self.next;
        self.next += 1;
        let values = &self.pending[index * d..(index + 1) * d];
        if let Some(band) = values.iter().position(|v| !v.is_finite()) {
            return Err(CliError::NonFiniteFeature {
                origin: self.origin.clone(),
                line: self.pending_line,
                band,
            });
        }
        Ok(Some(CsiFrame {
            values,
            line: self.pending_line,
            segment: self.segments[index],
        }))
    }

    /// Reads one line (or the end of the input) into the extractor,
    /// queueing the frames it completes.
    fn read_line(&mut self) -> Result<(), CliError> {
        let d = self.extractor.config().bands;
        let mut sink = |frame: &aether_csi::Frame<'_>| {
            self.pending.extend_from_slice(&frame.values[..d]);
            self.segments.push(frame.segment);
        };
        self.text.clear();
        let read = self
            .reader
            .read_until(b'\n', &mut self.text)
            .map_err(|source| CliError::Input {
                origin: self.origin.clone(),
                source,
            })?;
        if read == 0 {
            self.extractor.finish(&mut sink);
            self.ended = true;
            self.pending_line = usize::try_from(self.counts.lines).unwrap_or(usize::MAX);
            return Ok(());
        }
        self.counts.lines += 1;
        let line = usize::try_from(self.counts.lines).unwrap_or(usize::MAX);
        self.pending_line = line;
        match self.parser.parse_line(&self.text, &mut self.iq) {
            Ok(Parsed::Csi(record)) => {
                self.counts.csi += 1;
                note_format(&mut self.counts, record.format);
                if let Err(error) = self.extractor.push(&record.packet(), &mut sink) {
                    let kind = match error {
                        CsiError::UnsupportedLayout { .. } | CsiError::InvalidConfig { .. } => 0,
                        CsiError::GridChanged { .. } => 1,
                        CsiError::SilentPacket => 2,
                    };
                    self.counts.rejected[kind] += 1;
                    if self.counts.rejected[kind] == 1 {
                        let hint = if kind == 1 {
                            "; --field lltf reads the LLTF, which every packet carries"
                        } else {
                            ""
                        };
                        eprintln!(
                            "warning: {}:{line}: packet skipped: {error}{hint} (later packets \
                             refused for this reason are only counted)",
                            self.origin
                        );
                    }
                }
            }
            Ok(Parsed::Header(format)) => {
                self.counts.headers += 1;
                note_format(&mut self.counts, format);
            }
            Ok(Parsed::NotCsi) => self.counts.not_csi += 1,
            Err(error) => {
                self.counts.malformed += 1;
                if self.strict {
                    return Err(CliError::CsiLine {
                        origin: self.origin.clone(),
                        line,
                        why: describe(error),
                    });
                }
                eprintln!(
                    "warning: {}:{line}: malformed CSI line skipped: {}",
                    self.origin,
                    describe(error)
                );
            }
        }
        Ok(())
    }

    /// What happened to the log so far; `done` says what became of the
    /// frames (`written`, `classified`).
    pub(crate) fn summary(&self, done: &'static str) -> Summary {
        Summary {
            done,
            max_gap_ms: self.extractor.config().max_gap_us / 1000,
            origin: self.origin.clone(),
            counts: self.counts,
            stats: self.extractor.stats(),
            grid: self.extractor.grid(),
            bands: self.bands(),
            rate: self.extractor.config().frame_rate_hz,
        }
    }
}

/// Records that a line of `format` was seen.
fn note_format(counts: &mut LineCounts, format: LogFormat) {
    match format {
        LogFormat::EspCsi => counts.esp_csi = true,
        LogFormat::CsiTool => counts.csi_tool = true,
    }
}

/// A parser error in words (the crate's `Display` names field problems by
/// their Rust names).
fn describe(error: LogError) -> String {
    let problem = |p: FieldProblem| match p {
        FieldProblem::NotANumber => "not a number",
        FieldProblem::OutOfRange => "out of range",
    };
    match error {
        LogError::Field { column, problem: p } => format!("column `{column}` is {}", problem(p)),
        LogError::Data { index, problem: p } => {
            format!("data value {index} (from 0) is {}", problem(p))
        }
        other => other.to_string(),
    }
}

/// The totals printed on stderr when a log has been read.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    done: &'static str,
    max_gap_ms: u32,
    origin: String,
    counts: LineCounts,
    stats: aether_csi::Stats,
    grid: Option<Grid>,
    bands: usize,
    rate: u32,
}

impl Summary {
    /// A log that gave no frame at all is an error (after the summary has
    /// said why): an empty output would only fail later, in `train` or
    /// `classify`, further from the cause.
    pub(crate) fn no_frames_error(&self) -> Result<(), CliError> {
        if self.stats.frames > 0 {
            return Ok(());
        }
        Err(CliError::NoCsiFrames {
            origin: self.origin.clone(),
            lines: self.counts.lines,
            packets: self.counts.csi,
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let s = &self.stats;
        let format = match (c.esp_csi, c.csi_tool) {
            (true, false) => "esp-csi (csi_recv)",
            (false, true) => "ESP32-CSI-Tool",
            (true, true) => "mixed: esp-csi and ESP32-CSI-Tool lines",
            (false, false) => "none (no CSI line or header)",
        };
        let grid = match self.grid {
            Some(Grid::Legacy20) => "LLTF, 48 subcarriers",
            Some(Grid::Ht20) => "HT-LTF 20 MHz, 52 subcarriers",
            Some(Grid::Ht40) => "HT-LTF 40 MHz, 108 subcarriers",
            None => "none",
        };
        let seconds = s.frames as f64 / f64::from(self.rate);
        writeln!(f, "summary of {}", self.origin)?;
        writeln!(f, "  log format        {format}")?;
        writeln!(f, "  lines read        {}", c.lines)?;
        writeln!(f, "  CSI packets       {} ({} used)", c.csi, s.packets)?;
        writeln!(f, "  header lines      {}", c.headers)?;
        writeln!(f, "  non-CSI lines     {} (skipped)", c.not_csi)?;
        writeln!(f, "  malformed lines   {} (skipped)", c.malformed)?;
        writeln!(
            f,
            "  rejected packets  {} (unsupported layout {}, grid changed {}, silent {})",
            c.rejected.iter().sum::<u64>(),
            c.rejected[0],
            c.rejected[1],
            c.rejected[2]
        )?;
        writeln!(f, "  duplicates        {} (dropped)", s.duplicates)?;
        writeln!(f, "  out of order      {} (dropped)", s.out_of_order)?;
        writeln!(
            f,
            "  restarts          {} (silences over {} ms)",
            s.restarts, self.max_gap_ms
        )?;
        writeln!(f, "  subcarriers       {grid}")?;
        writeln!(
            f,
            "  frames {:<10} {} ({} bands at {} Hz = {seconds:.2} s)",
            self.done, s.frames, self.bands, self.rate
        )?;
        write!(
            f,
            "  gaps              {} ({} interpolated frames)",
            s.gaps, s.gap_frames
        )
    }
}

/// The header of a labelled CSV with `bands` values.
fn labelled_header(bands: usize) -> String {
    let mut header = String::from("label,sequence");
    for k in 0..bands {
        header.push_str(&format!(",f{k}"));
    }
    header
}

/// Opens `--out` for appending: `Ok(true)` when the file already starts
/// with `header` (so it is not written again), `Ok(false)` when it is new
/// or empty, an error when it holds another header.
fn open_append(path: &Path, header: Option<&str>) -> Result<(File, bool), CliError> {
    let write_error = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    let mut has_header = false;
    if let Some(header) = header
        && let Ok(file) = File::open(path)
    {
        let mut first = String::new();
        BufReader::new(file)
            .take(64 * 1024)
            .read_line(&mut first)
            .map_err(write_error)?;
        let first = first.trim_start_matches('\u{feff}').trim_end();
        if !first.is_empty() {
            if first != header {
                return Err(CliError::AppendHeader {
                    path: path.to_owned(),
                    found: first.chars().take(80).collect(),
                    expected: header.chars().take(80).collect(),
                });
            }
            has_header = true;
        }
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(write_error)?;
    Ok((file, has_header))
}

/// Reads the log, writes the frames, prints the summary on stderr.
pub(crate) fn run(args: &FeaturesArgs, stdout: &mut dyn Write) -> Result<(), CliError> {
    let bands = usize::from(args.options.bands);
    let labels = args.label.as_deref().zip(args.sequence.as_deref());
    let header = labels.map(|_| labelled_header(bands));
    let out_path = args.out.as_deref().filter(|p| !is_stdin(p));
    // Opened before the log, so a bad --out fails before any reading.
    let (target, mut header_written): (Box<dyn Write + '_>, bool) = match out_path {
        None => (Box::new(stdout), false),
        Some(path) if args.append => {
            let (file, has_header) = open_append(path, header.as_deref())?;
            (Box::new(file), has_header)
        }
        Some(path) => {
            let file = File::create(path).map_err(|source| CliError::Write {
                path: path.to_owned(),
                source,
            })?;
            (Box::new(file), false)
        }
    };
    let write_error = |source: io::Error| match out_path {
        Some(path) => CliError::Write {
            path: path.to_owned(),
            source,
        },
        None => CliError::Output(source),
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, target);
    let mut frames = CsiFrames::open(&args.csi, &args.options)?;
    let mut row = String::new();
    let mut segment = 0;
    while let Some(frame) = frames.next_frame_with(&mut || out.flush().map_err(write_error))? {
        row.clear();
        if let Some((label, sequence)) = labels {
            if !header_written {
                row.push_str(header.as_deref().unwrap_or_default());
                row.push('\n');
                header_written = true;
            }
            row.push_str(label);
            row.push(',');
            row.push_str(sequence);
            row.push(',');
        } else if frame.segment != segment {
            // The frames CSV may carry comments; the labelled one may not.
            segment = frame.segment;
            row.push_str(&format!(
                "# segment {segment}: the log resumed after a silence; frame times restart\n"
            ));
        }
        for (k, value) in frame.values.iter().enumerate() {
            if k > 0 {
                row.push(',');
            }
            // Shortest round-trip text: reading it back gives the same bits.
            row.push_str(&value.to_string());
        }
        row.push('\n');
        out.write_all(row.as_bytes()).map_err(write_error)?;
    }
    out.flush().map_err(write_error)?;
    drop(out);
    let summary = frames.summary("written");
    eprintln!("{summary}");
    summary.no_frames_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> CsiOptions {
        CsiOptions {
            bands: 16,
            rate: 50,
            field: Field::Auto,
            strict: false,
        }
    }

    fn frames_of(log: &str, options: &CsiOptions) -> Result<(Vec<(usize, u32)>, Summary), String> {
        let mut frames = CsiFrames::new(
            Box::new(io::Cursor::new(log.as_bytes().to_vec())),
            "log".into(),
            options,
        )
        .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(frame) = frames.next_frame().map_err(|e| e.to_string())? {
            assert_eq!(frame.values.len(), 16);
            out.push((frame.line, frame.segment));
        }
        Ok((out, frames.summary("written")))
    }

    fn generated(seconds: f64, format: LogFormat) -> String {
        let packets = aether_csi::sim::generate(&aether_csi::sim::SimConfig {
            duration_s: seconds,
            drop_probability: 0.0,
            ..aether_csi::sim::SimConfig::default()
        });
        aether_csi::sim::write_log(&packets, format)
    }

    #[test]
    fn counts_every_line_and_numbers_frames_by_their_line() {
        let log = generated(1.0, LogFormat::EspCsi);
        let (frames, summary) = frames_of(&log, &options()).unwrap();
        let c = summary.counts;
        // 5 boot lines, the header, 100 packets, one driver message at 97.
        assert_eq!(
            (c.lines, c.csi, c.headers, c.not_csi, c.malformed),
            (107, 100, 1, 6, 0)
        );
        assert!(c.esp_csi && !c.csi_tool);
        // 100 packets at 100 Hz ± 2 ms span about 0.99 s: 50 frames at 50 Hz.
        assert_eq!(frames.len(), 50);
        assert_eq!(summary.stats.frames, 50);
        // Each frame is completed by a later packet's line, the last one by
        // the end of the input (the last line).
        assert!(frames.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(frames.last().map(|f| f.0), Some(107));
        assert!(frames.iter().all(|f| f.1 == 0));
    }

    #[test]
    fn malformed_lines_are_skipped_or_fatal() {
        let mut lines: Vec<String> = generated(0.5, LogFormat::CsiTool)
            .lines()
            .map(str::to_owned)
            .collect();
        lines[20] = lines[20].replacen(",[", ",x[", 1);
        let log = lines.join("\n");
        let (_, summary) = frames_of(&log, &options()).unwrap();
        assert_eq!(summary.counts.malformed, 1);
        assert!(summary.counts.csi_tool);
        let strict = CsiOptions {
            strict: true,
            ..options()
        };
        let error = frames_of(&log, &strict).unwrap_err();
        assert!(error.starts_with("log:21: malformed CSI line: "), "{error}");
    }

    #[test]
    fn names_follow_the_dataset_rules() {
        assert_eq!(parse_name("walk-01"), Ok("walk-01".to_owned()));
        assert!(parse_name("").is_err());
        assert!(parse_name("a,b").is_err());
        assert!(parse_name(" a").is_err());
        assert!(parse_name("a\nb").is_err());
        assert_eq!(labelled_header(3), "label,sequence,f0,f1,f2");
    }
}
