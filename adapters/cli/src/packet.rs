//! `aether packet`: read and make the 40-byte classification packets the
//! firmware sends (`docs/packet.md`).
//!
//! `decode` is what the host that receives packets runs: it reads a file or
//! a live pipe, binary (back-to-back 40-byte packets) or hex text (one
//! packet per line), and writes and flushes one line per packet as it
//! arrives. The first bad packet ends the run with one error line naming
//! where it is (packet index and byte offset, or hex line) and the failed
//! check of `aether_packet::decode`. `encode` makes packets from logits so
//! that users and tests can feed `decode` without a device.
//!
//! Errors are this module's [`Failure`], carried by `CliError::Packet` and
//! printed like every other error (one line, exit status 1; a closed
//! output pipe stays quiet).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use aether_packet::{MAGIC, PACKET_LEN, Packet, PacketError, decode, encode};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::EXIT_STATUS;
use crate::csv::{is_stdin, origin_of};
use crate::error::CliError;

/// Arguments of `aether packet`.
#[derive(Debug, Args)]
pub(crate) struct PacketArgs {
    #[command(subcommand)]
    command: PacketCommand,
}

#[derive(Debug, Subcommand)]
enum PacketCommand {
    /// Read packets (binary or hex) and print one line per packet; the
    /// first bad packet is an error naming where it is and which check
    /// failed.
    #[command(after_help = EXIT_STATUS)]
    Decode(DecodeArgs),
    /// Make one packet from logits (argmax and margin computed as the
    /// firmware does); binary on standard output unless --hex.
    #[command(after_help = EXIT_STATUS)]
    Encode(EncodeArgs),
}

/// Arguments of `aether packet decode`.
#[derive(Debug, Args)]
struct DecodeArgs {
    /// Packets to read; `-` (the default) reads standard input. Binary
    /// input is a stream of 40-byte packets; hex input is one packet per
    /// line (80 hex digits, whitespace ignored, `#` starts a comment).
    /// Without --hex or --binary, input starting with byte 0x07 (the
    /// magic's first byte) is binary, input starting with a hex digit,
    /// whitespace or `#` is hex, and anything else is binary.
    #[arg(value_name = "FILE", default_value = "-")]
    file: PathBuf,
    /// Output: `text` (one aligned line per packet) or `json` (JSON Lines,
    /// one object per packet).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    format: Format,
    /// Read the input as hex text, whatever its first byte.
    #[arg(long, conflicts_with = "binary")]
    hex: bool,
    /// Read the input as binary packets, whatever its first byte.
    #[arg(long)]
    binary: bool,
}

/// How `decode` writes packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `seq 7  node 3  ts_us 123  argmax 2 of 4  top_logit 2.5  margin 0.75`.
    Text,
    /// JSON Lines: `{"index":0,"node_id":3,"seq":7,...}`.
    Json,
}

/// Arguments of `aether packet encode`.
#[derive(Debug, Args)]
struct EncodeArgs {
    /// The classifier's logits, comma-separated: 2 to 255 finite numbers.
    #[arg(long, value_name = "L,...", value_parser = parse_logits, allow_hyphen_values = true)]
    logits: Logits,
    /// Sensor node id (0-255).
    #[arg(long, value_name = "N", default_value_t = 0)]
    node: u8,
    /// Packet sequence number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seq: u32,
    /// Timestamp in microseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    ts_us: u64,
    /// Write the packet as one line of 80 hex digits instead of 40 bytes.
    #[arg(long)]
    hex: bool,
}

/// Logits from `--logits`, already known to make a packet.
#[derive(Debug, Clone, PartialEq)]
struct Logits(Vec<f32>);

/// Parses `--logits`: comma-separated numbers that
/// [`Packet::from_logits`] accepts, so a bad list is a usage error (exit 2)
/// with the library's reason.
fn parse_logits(text: &str) -> Result<Logits, String> {
    let logits = text
        .split(',')
        .enumerate()
        .map(|(index, field)| {
            let field = field.trim();
            field
                .parse::<f32>()
                .map_err(|_| format!("logit {index} `{field}` is not a number"))
        })
        .collect::<Result<Vec<f32>, String>>()?;
    Packet::from_logits(&logits, 0, 0, 0).map_err(|e| e.to_string())?;
    Ok(Logits(logits))
}

/// Runs `aether packet ...`.
///
/// # Errors
/// The first failure, as a [`CliError`].
pub(crate) fn run(args: &PacketArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.command {
        PacketCommand::Decode(args) => run_decode(args, out),
        PacketCommand::Encode(args) => run_encode(args, out),
    }
    .map_err(CliError::from)
}

impl From<Failure> for CliError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Output(e) => Self::Output(e),
            other => Self::Packet(other),
        }
    }
}

/// Why `aether packet` failed. Each `Display` is one line without the
/// leading `error: `.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The input could not be opened or read.
    Read {
        /// The file, or `<stdin>`.
        origin: String,
        /// What the OS said.
        source: io::Error,
    },
    /// Standard output could not be written.
    Output(io::Error),
    /// A packet failed a decode check.
    Packet {
        /// `FILE: packet 2 at byte 80` or `FILE:5: packet 2`.
        at: String,
        /// The failed check.
        source: PacketError,
    },
    /// Binary input ended part-way through a packet.
    Truncated {
        /// The file, or `<stdin>`.
        origin: String,
        /// Index of the partial packet.
        index: usize,
        /// Bytes of it that arrived.
        len: usize,
    },
    /// A hex line is not hex.
    Hex {
        /// `FILE:LINE` or `FILE:LINE:COLUMN`.
        at: String,
        /// What is wrong.
        what: String,
        /// Whether hex was guessed from the first byte (then the message
        /// says how to force binary).
        guessed: bool,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { origin, source } => write!(f, "cannot read {origin}: {source}"),
            Self::Output(e) => write!(f, "cannot write to standard output: {e}"),
            Self::Packet { at, source } => match source.check() {
                Some((number, name)) => {
                    write!(f, "{at}: check {number} of 6 ({name}) failed: {source}")
                }
                None => write!(f, "{at}: {source}"),
            },
            Self::Truncated { origin, index, len } => write!(
                f,
                "{origin}: packet {index} at byte {}: the input ends after {len} of its \
                 {PACKET_LEN} bytes (a trailing partial packet)",
                index * PACKET_LEN
            ),
            Self::Hex { at, what, guessed } => {
                write!(f, "{at}: {what}")?;
                if *guessed {
                    write!(
                        f,
                        " (read as hex because the input does not start with byte 0x07; \
                         pass --binary for binary packets)"
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// The input's encoding, given or detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Binary,
    /// Hex text; `guessed` when detected rather than forced by `--hex`.
    Hex {
        guessed: bool,
    },
}

/// The magic's first byte on the wire (it is little-endian).
const MAGIC_FIRST_BYTE: u8 = MAGIC.to_le_bytes()[0];

/// Decides how to read input whose first byte is `first`. A valid binary
/// stream starts with 0x07 and valid hex text with a hex digit, whitespace
/// or `#`, so valid input of either kind is never misread; only a binary
/// stream whose very first byte is corrupted into one of those characters
/// is read as hex, and its error message then names `--binary`.
fn detect(first: u8) -> Encoding {
    if first != MAGIC_FIRST_BYTE
        && (first.is_ascii_hexdigit() || first.is_ascii_whitespace() || first == b'#')
    {
        Encoding::Hex { guessed: true }
    } else {
        Encoding::Binary
    }
}

fn run_decode(args: &DecodeArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let origin = origin_of(&args.file);
    let read_error = |source| Failure::Read {
        origin: origin.clone(),
        source,
    };
    let mut input = open(&args.file).map_err(read_error)?;
    let encoding = if args.hex {
        Encoding::Hex { guessed: false }
    } else if args.binary {
        Encoding::Binary
    } else {
        // Peek without consuming; an empty input holds no packets.
        match input.fill_buf().map_err(read_error)?.first() {
            None => return Ok(()),
            Some(&first) => detect(first),
        }
    };
    let mut printer = Printer {
        out,
        format: args.format,
    };
    match encoding {
        Encoding::Binary => decode_binary(&mut *input, &origin, &mut printer),
        Encoding::Hex { guessed } => decode_hex(&mut *input, &origin, guessed, &mut printer),
    }
}

/// Standard input for `-`, else the file, buffered.
fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    if is_stdin(path) {
        return Ok(Box::new(io::stdin().lock()));
    }
    Ok(Box::new(BufReader::new(File::open(path)?)))
}

/// Reads back-to-back 40-byte packets until the input ends.
fn decode_binary(
    input: &mut dyn BufRead,
    origin: &str,
    printer: &mut Printer<'_>,
) -> Result<(), Failure> {
    let mut buffer = [0_u8; PACKET_LEN];
    for index in 0.. {
        let len = read_up_to(input, &mut buffer).map_err(|source| Failure::Read {
            origin: origin.to_owned(),
            source,
        })?;
        if len == 0 {
            break;
        }
        if len < PACKET_LEN {
            return Err(Failure::Truncated {
                origin: origin.to_owned(),
                index,
                len,
            });
        }
        let packet = decode(&buffer).map_err(|source| Failure::Packet {
            at: format!("{origin}: packet {index} at byte {}", index * PACKET_LEN),
            source,
        })?;
        printer.print(index, &packet)?;
    }
    Ok(())
}

/// Fills `buffer` unless the input ends first; returns the bytes read. A
/// pipe delivers a packet in pieces, so one `read` is not enough.
fn read_up_to(input: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads one packet per non-blank line of hex text.
fn decode_hex(
    input: &mut dyn BufRead,
    origin: &str,
    guessed: bool,
    printer: &mut Printer<'_>,
) -> Result<(), Failure> {
    let mut line = Vec::new();
    let mut index = 0;
    for number in 1.. {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|source| Failure::Read {
                origin: origin.to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        let bytes = hex_bytes(&line).map_err(|(column, what)| Failure::Hex {
            at: match column {
                Some(column) => format!("{origin}:{number}:{column}"),
                None => format!("{origin}:{number}"),
            },
            what,
            guessed,
        })?;
        if bytes.is_empty() {
            continue;
        }
        let packet = decode(&bytes).map_err(|source| Failure::Packet {
            at: format!("{origin}:{number}: packet {index}"),
            source,
        })?;
        printer.print(index, &packet)?;
        index += 1;
    }
    Ok(())
}

/// The bytes of one hex line: `#` starts a comment, ASCII whitespace is
/// ignored anywhere. `Err` is the 1-based column (when one character is at
/// fault) and what is wrong.
fn hex_bytes(line: &[u8]) -> Result<Vec<u8>, (Option<usize>, String)> {
    let content = line.split(|&b| b == b'#').next().unwrap_or_default();
    let mut nibbles = Vec::with_capacity(2 * PACKET_LEN);
    for (column, &byte) in content.iter().enumerate() {
        if byte.is_ascii_whitespace() {
            continue;
        }
        let nibble = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => {
                let shown = if byte.is_ascii_graphic() {
                    format!("`{}`", char::from(byte))
                } else {
                    format!("byte 0x{byte:02X}")
                };
                return Err((Some(column + 1), format!("{shown} is not a hex digit")));
            }
        };
        nibbles.push(nibble);
    }
    if nibbles.len() % 2 == 1 {
        return Err((
            None,
            format!(
                "{} hex digits, an odd number; each byte is two digits",
                nibbles.len()
            ),
        ));
    }
    Ok(nibbles
        .chunks_exact(2)
        .map(|pair| (pair[0] << 4) | pair[1])
        .collect())
}

/// Writes decoded packets in the chosen format, flushing each so that a
/// pipe's reader sees a packet as soon as it is decoded.
struct Printer<'a> {
    out: &'a mut dyn Write,
    format: Format,
}

/// One JSON Lines record; the field names are part of the CLI's interface
/// (`docs/packet.md`).
#[derive(Serialize)]
struct Record {
    index: usize,
    node_id: u8,
    seq: u32,
    ts_us: u64,
    n_classes: u16,
    argmax: u8,
    top_logit: f32,
    margin: f32,
}

impl Printer<'_> {
    fn print(&mut self, index: usize, packet: &Packet) -> Result<(), Failure> {
        let line = match self.format {
            // `{:?}` is the shortest text that reads back as the same f32.
            Format::Text => format!(
                "seq {}  node {}  ts_us {}  argmax {} of {}  top_logit {:?}  margin {:?}",
                packet.seq,
                packet.node_id,
                packet.ts_us,
                packet.argmax,
                packet.n_classes,
                packet.top_logit,
                packet.top1_minus_top2
            ),
            // Decoded values are finite, so serialisation cannot fail.
            Format::Json => serde_json::to_string(&Record {
                index,
                node_id: packet.node_id,
                seq: packet.seq,
                ts_us: packet.ts_us,
                n_classes: packet.n_classes,
                argmax: packet.argmax,
                top_logit: packet.top_logit,
                margin: packet.top1_minus_top2,
            })
            .map_err(|e| Failure::Output(io::Error::other(e)))?,
        };
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(Failure::Output)
    }
}

fn run_encode(args: &EncodeArgs, out: &mut dyn Write) -> Result<(), Failure> {
    // `parse_logits` already ran `from_logits` on these logits.
    let packet =
        Packet::from_logits(&args.logits.0, args.node, args.ts_us, args.seq).map_err(|source| {
            Failure::Packet {
                at: "--logits".to_owned(),
                source,
            }
        })?;
    let bytes = encode(&packet);
    if args.hex {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(out, "{hex}").map_err(Failure::Output)
    } else {
        out.write_all(&bytes).map_err(Failure::Output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_never_misreads_valid_input() {
        assert_eq!(detect(0x07), Encoding::Binary);
        for first in b"0123456789abcdefABCDEF #\t\r\n" {
            assert_eq!(detect(*first), Encoding::Hex { guessed: true });
        }
        assert_eq!(detect(b'x'), Encoding::Binary);
        assert_eq!(detect(0x00), Encoding::Binary);
    }

    #[test]
    fn hex_lines() {
        assert_eq!(hex_bytes(b"0a Ff # comment zz\n"), Ok(vec![0x0A, 0xFF]));
        assert_eq!(hex_bytes(b"   # only a comment\r\n"), Ok(vec![]));
        assert_eq!(hex_bytes(b"0 a\t1b"), Ok(vec![0x0A, 0x1B]));
        assert_eq!(
            hex_bytes(b"0ag1"),
            Err((Some(3), "`g` is not a hex digit".to_owned()))
        );
        assert_eq!(
            hex_bytes(b"0\x01"),
            Err((Some(2), "byte 0x01 is not a hex digit".to_owned()))
        );
        assert_eq!(
            hex_bytes(b"abc"),
            Err((
                None,
                "3 hex digits, an odd number; each byte is two digits".to_owned()
            ))
        );
    }

    #[test]
    fn logits_are_checked_by_the_library() {
        assert_eq!(parse_logits("1, -2.5,3"), Ok(Logits(vec![1.0, -2.5, 3.0])));
        assert_eq!(
            parse_logits("1,x").unwrap_err(),
            "logit 1 `x` is not a number"
        );
        assert_eq!(
            parse_logits("1,nan").unwrap_err(),
            "logit 1 is NaN; logits must be finite"
        );
        assert!(parse_logits("1").unwrap_err().contains("2 to 255 logits"));
    }
}
