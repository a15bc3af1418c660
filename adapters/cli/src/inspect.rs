//! `aether inspect`: what is in a `.rvne` file, or why it is not one.
//!
//! The first question about a model file on a bench or in a bug report is
//! "what shape, which element type, is it intact?". A valid file gets its
//! header, attention layout, parameter count, every matrix with its size
//! and value range, the byte budget and the CRC (stored and recomputed
//! here, independently of the parser). A bad file gets exactly one line:
//! the first SPEC §5 check it fails, numbered, with the parser's own
//! error — the parser runs the checks in SPEC order, so this is the
//! earliest problem, not an arbitrary one — and a non-zero exit.

use std::io::Write;
use std::path::PathBuf;

use aether_rvne::{FOOTER_LEN, HEADER_LEN, Header, Matrix, MatrixKind, VERSION};
use clap::Args;

use crate::error::CliError;
use crate::report::thousands;
use crate::runtime::{element_name, read_blob};

/// Arguments of `aether inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The .rvne file to inspect.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Prints the report for a valid file; a bad file is an error naming its
/// first failing check.
pub(crate) fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let blob = read_blob(&args.file)?;
    let view = blob.view();
    let header = view.header();
    let bytes = view.as_bytes();
    let covered = &bytes[..bytes.len() - FOOTER_LEN];
    let computed = crc32fast::hash(covered);

    writeln!(out, "file        {}", args.file.display())?;
    writeln!(
        out,
        "format      .rvne version {VERSION}, flags 0x{:02X}: weights {} ({} bytes each)",
        bytes[6],
        element_name(header),
        header.element_type.size()
    )?;
    writeln!(
        out,
        "header      input_dim {}, q_heads {}, kv_heads {}, head_dim {}, layers {}, classes {}",
        header.input_dim,
        header.n_q_heads,
        header.n_kv_heads,
        header.head_dim,
        header.n_layers,
        header.n_classes
    )?;
    writeln!(out, "attention   {}", attention_layout(header))?;
    writeln!(out, "parameters  {}", thousands(view.weight_count()))?;
    writeln!(
        out,
        "matrices    row-major [in][out], y = x·W, in body order"
    )?;
    for layer in view.layers() {
        for kind in MatrixKind::BODY_ORDER {
            let name = format!("layer {} {}", layer.index(), matrix_name(kind));
            matrix_line(out, &name, layer.matrix(kind))?;
        }
    }
    matrix_line(out, "classifier Wc", view.classifier())?;
    let weight_bytes = view.weight_bytes().len();
    writeln!(
        out,
        "bytes       {} total = {HEADER_LEN} header + {} weights (weights_len) + {FOOTER_LEN} CRC",
        thousands(bytes.len()),
        thousands(weight_bytes)
    )?;
    let crc_status = if computed == view.crc() {
        "ok"
    } else {
        "MISMATCH"
    };
    writeln!(
        out,
        "crc         stored 0x{:08X}, computed 0x{computed:08X}: {crc_status}",
        view.crc()
    )?;
    match view.first_non_finite() {
        None => {
            writeln!(out, "weights     all finite")?;
            writeln!(out, "status      ok: passes all 8 format checks")?;
        }
        Some(index) => {
            let count = view.weights().filter(|w| !w.is_finite()).count();
            writeln!(
                out,
                "weights     {} NaN or infinite (first at body index {index})",
                thousands(count)
            )?;
            writeln!(
                out,
                "status      the format is valid, but the model refuses non-finite weights"
            )?;
        }
    }
    Ok(())
}

/// `MQA: 4 query heads share 1 KV head` and the like.
fn attention_layout(header: Header) -> String {
    let (q, kv) = (header.n_q_heads, header.n_kv_heads);
    if q == kv {
        format!("MHA: {q} query heads, each with its own KV head")
    } else if kv == 1 {
        format!("MQA: {q} query heads share 1 KV head")
    } else {
        format!(
            "GQA: {q} query heads in {kv} groups of {} per KV head",
            q / kv
        )
    }
}

const fn matrix_name(kind: MatrixKind) -> &'static str {
    match kind {
        MatrixKind::Query => "Wq",
        MatrixKind::Key => "Wk",
        MatrixKind::Value => "Wv",
        MatrixKind::Output => "Wo",
    }
}

/// One matrix: name, shape, parameters, bytes and value range.
fn matrix_line(out: &mut dyn Write, name: &str, matrix: Matrix<'_>) -> std::io::Result<()> {
    let (min, max) = matrix
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), w| {
            (lo.min(w), hi.max(w))
        });
    writeln!(
        out,
        "  {name:<16} {:<11} {:>9} params {:>9} bytes   range [{min:+.4}, {max:+.4}]",
        format!("[{}][{}]", matrix.rows(), matrix.cols()),
        thousands(matrix.len()),
        thousands(matrix.as_bytes().len()),
    )
}
