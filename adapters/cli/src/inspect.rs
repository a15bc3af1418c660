//! `aether inspect`: what is in a `.rvne` file, or why it is not one.
//!
//! The first question about a model file on a bench or in a bug report is
//! "what shape, which element type, is it intact?". A valid file gets its
//! header, attention layout, parameter count, every matrix with its size
//! and value range, the byte budget and the CRC (stored and recomputed
//! here, independently of the parser). A bad file gets exactly one line:
//! the first parse check it fails, numbered as in `docs/rvne-format.md`
//! ("Parse checks, in order"), with the parser's own error — the parser
//! runs the checks in that order, so this is the earliest problem, not an
//! arbitrary one — and a non-zero exit.
//!
//! A file can pass every format check and still be useless: the format
//! allows NaN and infinite weights, which the model refuses, so such a
//! file gets its full report (the matrix lines say where each non-finite
//! weight is, rather than folding it into a range) and then an error
//! naming the first one, exit 1. Finite weights so large that unit-scale
//! frames can overflow f32 inside the model get a `warning:` line naming
//! the matrix (see [`overflow_warning`] for the exact criterion); the exit
//! stays 0, because the file is what it says it is.

use std::io::Write;
use std::path::PathBuf;

use aether_model::{ModelError, NonFiniteValue, WeightMatrix};
use aether_rvne::{FOOTER_LEN, Header, Matrix, MatrixKind, RvneView};
use clap::Args;

use crate::csv::origin_of;
use crate::error::CliError;
use crate::report::thousands;
use crate::runtime::{element_name, read_blob};

/// Arguments of `aether inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The .rvne file to inspect; `-` reads standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Prints the report for a valid file; a bad file is an error naming its
/// first failing check, and a file with a non-finite weight is an error
/// naming that weight (after the report).
pub(crate) fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let blob = read_blob(&args.file)?;
    let view = blob.view();
    let header = view.header();
    let bytes = view.as_bytes();
    let covered = &bytes[..bytes.len() - FOOTER_LEN];
    let computed = crc32fast::hash(covered);
    let name = origin_of(&args.file);

    writeln!(out, "file        {name}")?;
    writeln!(
        out,
        "format      .rvne version {}, flags 0x{:02X}: weights {} ({} bytes each)",
        header.version(),
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
    if !header.options.is_v1() {
        writeln!(
            out,
            "options     {} (docs/model.md)",
            crate::runtime::describe_version(header)
        )?;
    }
    writeln!(out, "attention   {}", attention_layout(header))?;
    writeln!(out, "parameters  {}", thousands(view.weight_count()))?;
    writeln!(
        out,
        "matrices    row-major [in][out], y = x·W, in body order"
    )?;
    for (id, matrix) in view.matrices() {
        matrix_line(out, id, matrix)?;
    }
    let weight_bytes = view.weight_bytes().len();
    writeln!(
        out,
        "bytes       {} total = {} header + {} weights (weights_len) + {FOOTER_LEN} CRC",
        thousands(bytes.len()),
        header.header_len(),
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
            let warning = overflow_warning(&view);
            if let Some(warning) = &warning {
                writeln!(out, "warning: {warning}")?;
            }
            writeln!(
                out,
                "status      ok: passes all 8 format checks{}",
                if warning.is_some() {
                    " (1 warning)"
                } else {
                    ""
                }
            )?;
            Ok(())
        }
        Some(index) => {
            let count = view.weights().filter(|w| !w.is_finite()).count();
            let error = non_finite_weight(&view, index);
            writeln!(
                out,
                "weights     {} NaN or infinite; the first is {}",
                thousands(count),
                describe_weight(&error)
            )?;
            writeln!(
                out,
                "status      the format is valid, but the model refuses non-finite weights"
            )?;
            Err(CliError::model(name, error))
        }
    }
}

/// The model's error for non-finite body weight `index`: the same
/// matrix, row and column `classify` would name.
fn non_finite_weight(view: &RvneView<'_>, index: usize) -> ModelError {
    let (matrix, row, col) =
        WeightMatrix::locate(&view.layout(), index).unwrap_or((WeightMatrix::Classifier, 0, 0));
    ModelError::NonFiniteWeight {
        index,
        matrix,
        row,
        col,
        value: NonFiniteValue::of(view.weight(index)).unwrap_or(NonFiniteValue::NaN),
    }
}

/// `NaN at layer 0 Wq [3][7] (body index 55)`.
fn describe_weight(error: &ModelError) -> String {
    match error {
        ModelError::NonFiniteWeight {
            index,
            matrix,
            row,
            col,
            value,
        } => format!("{value} at {matrix} [{row}][{col}] (body index {index})"),
        other => other.to_string(),
    }
}

/// Frames are unit-scale (features normalised to about ±1; even an
/// outlier rarely passes ±10): a model that can overflow on frames whose
/// values stay below this magnitude gets a warning.
const FRAME_SCALE_HEADROOM: f64 = 1000.0;

/// Whether unit-scale frames can overflow f32 in the model, and where.
///
/// Criterion: an upper bound on every value the forward pass computes,
/// per unit of frame scale (frames with every value in [-1, 1]),
/// propagated in f64 through the layers. For `y = x·W` with every
/// `|x[r]| <= b`, every `|y[c]|` (and every partial sum of it, so the
/// accumulation cannot overflow either) is at most `b · max_c Σ_r
/// |W[r][c]|`. Attention outputs are convex combinations of value rows
/// (softmax weights; landmarks are means), so they are bounded by the
/// values' bound. Per layer: `b_q = b·‖Wq‖`, `b_k = b·‖Wk‖`, `b_v =
/// b·‖Wv‖`, then the residual `b ← b + b_v·‖Wo‖`; the logits are bounded
/// by `b·‖Wc‖`; `b` starts at 1. Every bound is proportional to the frame
/// scale, so values after a matrix with bound `B` stay finite for every
/// frame whose values are below `f32::MAX / B` in magnitude (up to the last
/// bit of rounding).
///
/// The warning names the first matrix, in forward order, where that safe
/// frame scale falls below [`FRAME_SCALE_HEADROOM`], with the scale, and
/// the largest weight of the blob: the bound jumps where a huge weight's
/// effect is first multiplied (a huge Wv weight shows at Wo), so both are
/// needed to find the culprit. The bound is attained only by adversarial
/// frames, so it is pessimistic; `aether init`'s model is safe up to
/// frames of about 5e35, so a warning means weights near f32's range (a
/// corrupted or mis-scaled export), not an unlucky trained model.
fn overflow_warning(view: &RvneView<'_>) -> Option<String> {
    let limit = f64::from(f32::MAX) / FRAME_SCALE_HEADROOM;
    let mut bound = 1.0f64;
    let mut crossed = None;
    'layers: for layer in view.layers() {
        let at = |kind| WeightMatrix::Layer {
            layer: layer.index(),
            kind,
        };
        let values = bound * operator_norm(layer.wv());
        let after_wo = bound + values * operator_norm(layer.wo());
        for (kind, reached) in [
            (MatrixKind::Query, bound * operator_norm(layer.wq())),
            (MatrixKind::Key, bound * operator_norm(layer.wk())),
            (MatrixKind::Value, values),
            (MatrixKind::Output, after_wo),
        ] {
            if reached > limit {
                crossed = Some((at(kind), reached));
                break 'layers;
            }
        }
        bound = after_wo;
    }
    let logits = bound * operator_norm(view.classifier());
    let (matrix, reached) =
        crossed.or((logits > limit).then_some((WeightMatrix::Classifier, logits)))?;
    let (index, largest) = view
        .weights()
        .enumerate()
        .fold((0, 0.0f32), |best, (i, w)| {
            if w.abs() > best.1.abs() { (i, w) } else { best }
        });
    let (holder, row, col) =
        WeightMatrix::locate(&view.layout(), index).unwrap_or((WeightMatrix::Classifier, 0, 0));
    let safe_scale = f64::from(f32::MAX) / reached;
    Some(format!(
        "{matrix}: frames with values of magnitude {safe_scale:.2} or more can overflow f32 \
         after it (its output can reach {reached:.1e} times the frame scale), so classify can \
         fail with a non-finite error on near-unit-scale frames; the largest |weight| in the \
         blob is {largest:.1e} at {holder} [{row}][{col}]"
    ))
}

/// `max_c Σ_r |W[r][c]|` in f64: the largest `|y[c]|` of `y = x·W` over
/// inputs with every `|x[r]| <= 1`.
fn operator_norm(matrix: Matrix<'_>) -> f64 {
    let mut sums = vec![0.0f64; matrix.cols()];
    for (i, w) in matrix.iter().enumerate() {
        sums[i % matrix.cols()] += f64::from(w.abs());
    }
    sums.into_iter().fold(0.0, f64::max)
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

/// `+0.2497`, or `+3.0000e38` for a weight too large for fixed-point text
/// to stay readable.
fn weight_text(w: f32) -> String {
    if w.abs() < 1e5 {
        format!("{w:+.4}")
    } else {
        format!("{w:+.4e}")
    }
}

/// One matrix: name, shape, parameters, bytes and value range. The range
/// is over the finite weights; non-finite ones are counted and the first
/// is located, so a NaN is never hidden by `min`/`max` skipping it.
fn matrix_line(out: &mut dyn Write, id: WeightMatrix, matrix: Matrix<'_>) -> std::io::Result<()> {
    let (min, max) = matrix
        .iter()
        .filter(|w| w.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), w| {
            (lo.min(w), hi.max(w))
        });
    let range = if min <= max {
        format!("range [{}, {}]", weight_text(min), weight_text(max))
    } else {
        "range: no finite weight".to_owned()
    };
    let mut non_finite = matrix
        .iter()
        .enumerate()
        .filter_map(|(i, w)| NonFiniteValue::of(w).map(|value| (i, value)));
    let extra = match non_finite.next() {
        None => String::new(),
        Some((first, value)) => {
            let more = non_finite.count();
            format!(
                "; {value} at [{}][{}]{}",
                first / matrix.cols(),
                first % matrix.cols(),
                if more == 0 {
                    String::new()
                } else {
                    format!(" and {} more non-finite", thousands(more))
                }
            )
        }
    };
    writeln!(
        out,
        "  {:<16} {:<11} {:>9} params {:>9} bytes   {range}{extra}",
        id.to_string(),
        format!("[{}][{}]", matrix.rows(), matrix.cols()),
        thousands(matrix.len()),
        thousands(matrix.as_bytes().len()),
    )
}
