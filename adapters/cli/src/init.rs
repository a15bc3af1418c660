//! `aether init`: write a deterministic random-init `.rvne` model.
//!
//! Until a trained model exists, a seeded random blob is what the firmware
//! and the host tools run on; it must be reproducible byte for byte (same
//! shape and seed, same file, on every machine) so that a checksum of it
//! means something. The bytes come from [`RvneBlob::random`]; this module
//! only parses the shape and seed, refuses to overwrite a file by accident
//! and reports what it wrote.

use std::io::Write;
use std::path::PathBuf;

use aether_rvne::{DEFAULT_SEED, ElementType, HEADER_LEN, Header, RvneBlob};
use clap::Args;

use crate::csv::is_stdin;
use crate::error::CliError;
use crate::report::thousands;
use crate::runtime::describe_shape;
use crate::runtime::refuse_overwrite;

/// Arguments of `aether init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The .rvne file to write; `-` writes the blob to standard output
    /// (and prints no report, so the output is the blob alone).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Model shape: input_dim,q_heads,kv_heads,head_dim,layers,classes.
    #[arg(long, value_name = "D,HQ,HKV,HD,L,C", default_value = "16,4,1,32,2,4", value_parser = parse_shape)]
    shape: Shape,
    /// Store weights as f16 (half the size) instead of f32.
    #[arg(long)]
    f16: bool,
    /// Seed of the xorshift64* generator (decimal or 0x-hex; 0 means the default).
    #[arg(long, value_name = "N", default_value = "0xC5110007DEADBEEF", value_parser = parse_seed)]
    seed: u64,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// The six shape numbers of a header, validated by the format's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape([u16; 6]);

/// Shape field names, in `--shape` order (the header's order).
const SHAPE_FIELDS: [&str; 6] = [
    "input_dim",
    "q_heads",
    "kv_heads",
    "head_dim",
    "layers",
    "classes",
];

impl Shape {
    /// The header for this shape and element type.
    const fn header(self, element_type: ElementType) -> Header {
        let [
            input_dim,
            n_q_heads,
            n_kv_heads,
            head_dim,
            n_layers,
            n_classes,
        ] = self.0;
        Header {
            input_dim,
            n_q_heads,
            n_kv_heads,
            head_dim,
            n_layers,
            n_classes,
            element_type,
            options: aether_model::ModelOptions::V1,
        }
    }
}

/// Parses `--shape`: six comma-separated whole numbers forming a header the
/// format accepts (non-zero dims, kv_heads divides q_heads, layers >= 1,
/// classes >= 2, weights small enough for the u32 `weights_len`).
pub(crate) fn parse_shape(text: &str) -> Result<Shape, String> {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    if fields.len() != SHAPE_FIELDS.len() {
        return Err(format!(
            "expected 6 comma-separated numbers ({}), found {}",
            SHAPE_FIELDS.join(","),
            fields.len()
        ));
    }
    let mut numbers = [0_u16; 6];
    for ((number, field), name) in numbers.iter_mut().zip(&fields).zip(SHAPE_FIELDS) {
        *number = field
            .parse()
            .map_err(|_| format!("{name} `{field}` is not a whole number from 0 to 65535"))?;
    }
    let shape = Shape(numbers);
    // f32 is the larger element type: if its blob fits, the f16 one does.
    shape
        .header(ElementType::F32)
        .blob_len()
        .map_err(|e| e.to_string())?;
    Ok(shape)
}

/// Parses `--seed`: decimal, or hexadecimal with a `0x` prefix.
pub(crate) fn parse_seed(text: &str) -> Result<u64, String> {
    let digits = text.replace('_', "");
    let parsed = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    };
    parsed.map_err(|_| format!("`{text}` is not a 64-bit unsigned number (decimal or 0x-hex)"))
}

/// Writes the blob and reports it.
pub(crate) fn run(args: &InitArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let element_type = if args.f16 {
        ElementType::F16
    } else {
        ElementType::F32
    };
    let header = args.shape.header(element_type);
    let blob = RvneBlob::random(header, args.seed).map_err(|source| CliError::Format {
        what: format!("cannot make a blob of shape {}", describe_shape(header)),
        source,
    })?;
    if is_stdin(&args.out) {
        // Standard output carries the blob, so the report would corrupt
        // it; `aether inspect -` at the other end of the pipe shows it.
        out.write_all(blob.as_bytes())?;
        return Ok(());
    }
    refuse_overwrite(&args.out, args.force)?;
    blob.write_file(&args.out).map_err(CliError::Blob)?;

    let view = blob.view();
    let bytes = blob.as_bytes().len();
    let weight_bytes = view.weight_bytes().len();
    // xorshift's zero state is a fixed point, so the generator maps seed 0
    // to the default seed; say which seed was really used.
    let seed = if args.seed == 0 {
        DEFAULT_SEED
    } else {
        args.seed
    };
    writeln!(out, "wrote {}", args.out.display())?;
    writeln!(
        out,
        "  bytes   {} ({HEADER_LEN} header + {} weights + 4 CRC)",
        thousands(bytes),
        thousands(weight_bytes)
    )?;
    writeln!(out, "  shape   {}", describe_shape(header))?;
    writeln!(out, "  params  {}", thousands(view.weight_count()))?;
    writeln!(
        out,
        "  init    uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)), xorshift64* seed 0x{seed:016X}"
    )?;
    writeln!(out, "  crc     0x{:08X}", view.crc())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_shape_is_the_aether_header() {
        let shape = parse_shape("16,4,1,32,2,4").unwrap();
        assert_eq!(
            shape.header(ElementType::F32),
            Header::default_aether(ElementType::F32)
        );
        assert_eq!(parse_shape(" 16, 4,1 ,32,2,4").unwrap(), shape);
    }

    #[test]
    fn bad_shapes_say_why() {
        let cases = [
            ("16,4,1,32,2", "expected 6 comma-separated numbers"),
            ("16,4,1,32,2,4,1", "found 7"),
            ("16,4,x,32,2,4", "kv_heads `x` is not a whole number"),
            ("16,4,1,32,2,70000", "classes `70000` is not a whole number"),
            ("16,4,-1,32,2,4", "kv_heads `-1`"),
            ("0,4,1,32,2,4", "`input_dim` is 0"),
            ("16,4,3,32,2,4", "must divide"),
            ("16,4,1,32,0,4", "`n_layers` is 0"),
            ("16,4,1,32,2,1", "at least 2 classes"),
            ("65535,65535,65535,65535,65535,65535", "more weight bytes"),
        ];
        for (text, expected) in cases {
            let error = parse_shape(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn seeds_in_decimal_and_hex() {
        assert_eq!(parse_seed("42"), Ok(42));
        assert_eq!(parse_seed("0xC5110007DEADBEEF"), Ok(DEFAULT_SEED));
        assert_eq!(parse_seed("0xC511_0007_DEAD_BEEF"), Ok(DEFAULT_SEED));
        assert!(parse_seed("-1").is_err());
        assert!(parse_seed("0x1_0000_0000_0000_0000").is_err());
    }
}
