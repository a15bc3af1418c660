//! Tensor names and metadata keys of a compatible file
//! (`docs/safetensors.md`).
//!
//! Why one module: the writer and the reader must spell every name the
//! same way, and the reader must map each name to exactly one matrix — so
//! `layers.01.wq` is refused rather than read as a second `layers.1.wq`.

use aether_model::{MatrixKind, Norm, WeightMatrix};

/// The classifier's tensor name.
pub const CLASSIFIER: &str = "classifier";

/// The `format` metadata value that marks a file as ours.
pub const FORMAT: &str = "aether-temporal";

/// The `version` metadata value of a model without options: model
/// version 1 of `docs/model.md`.
pub const MODEL_VERSION: &str = "1";

/// The `version` metadata value of a model with any version-2 option on
/// (`docs/model.md`, "Version 2: options").
pub const MODEL_VERSION_2: &str = "2";

/// The final norm's `γ`, `[D]` (version 2, with a norm).
pub const FINAL_NORM_SCALE: &str = "final_norm_scale";

/// The final norm's `β`, `[D]` (version 2, layer norm only).
pub const FINAL_NORM_SHIFT: &str = "final_norm_shift";

pub(crate) const KEY_FORMAT: &str = "format";
pub(crate) const KEY_VERSION: &str = "version";
pub(crate) const KEY_Q_HEADS: &str = "n_q_heads";
pub(crate) const KEY_KV_HEADS: &str = "n_kv_heads";
pub(crate) const KEY_NORM: &str = "norm";
pub(crate) const KEY_CONV_TAPS: &str = "conv_taps";
pub(crate) const KEY_MLP_HIDDEN: &str = "mlp_hidden";
pub(crate) const KEY_CENTRE_SHIFT: &str = "centre_shift";
pub(crate) const KEY_CENTRE_GAIN_LOG2: &str = "centre_gain_log2";
pub(crate) const KEY_POOL_SHIFT: &str = "pool_shift";

const LAYER_PREFIX: &str = "layers.";

/// The suffix of a layer's matrix: `wq`, `wk`, `wv` or `wo` for the
/// projections (every version), the others for the version-2 kinds.
const fn kind_suffix(kind: MatrixKind) -> &'static str {
    match kind {
        MatrixKind::Query => "wq",
        MatrixKind::Key => "wk",
        MatrixKind::Value => "wv",
        MatrixKind::Output => "wo",
        MatrixKind::Norm1Scale => "norm1_scale",
        MatrixKind::Norm1Shift => "norm1_shift",
        MatrixKind::Conv => "conv",
        MatrixKind::Norm2Scale => "norm2_scale",
        MatrixKind::Norm2Shift => "norm2_shift",
        MatrixKind::Up => "w1",
        MatrixKind::UpBias => "b1",
        MatrixKind::Down => "w2",
        MatrixKind::DownBias => "b2",
    }
}

/// The tensor name of one of `layer`'s matrices: `layers.{layer}.wq`,
/// `layers.{layer}.norm1_scale` and so on.
#[must_use]
pub fn layer_tensor_name(layer: usize, kind: MatrixKind) -> String {
    format!("{LAYER_PREFIX}{layer}.{}", kind_suffix(kind))
}

/// The tensor name of `matrix`.
pub(crate) fn tensor_name(matrix: WeightMatrix) -> String {
    match matrix {
        WeightMatrix::Layer { layer, kind } => layer_tensor_name(layer, kind),
        WeightMatrix::FinalNormScale => FINAL_NORM_SCALE.to_owned(),
        WeightMatrix::FinalNormShift => FINAL_NORM_SHIFT.to_owned(),
        WeightMatrix::Classifier => CLASSIFIER.to_owned(),
    }
}

/// The matrix a tensor name stands for, or `None` when the name is not one
/// of ours. Layer numbers are canonical decimals (no sign, no leading
/// zero), so each matrix has exactly one name.
pub(crate) fn parse_tensor_name(name: &str) -> Option<WeightMatrix> {
    match name {
        CLASSIFIER => return Some(WeightMatrix::Classifier),
        FINAL_NORM_SCALE => return Some(WeightMatrix::FinalNormScale),
        FINAL_NORM_SHIFT => return Some(WeightMatrix::FinalNormShift),
        _ => {}
    }
    let rest = name.strip_prefix(LAYER_PREFIX)?;
    let (number, suffix) = rest.split_once('.')?;
    let layer = parse_canonical(number)?;
    let kind = MatrixKind::BODY_ORDER
        .into_iter()
        .find(|&kind| kind_suffix(kind) == suffix)?;
    Some(WeightMatrix::Layer { layer, kind })
}

/// Whether `matrix` is a vector (`γ`, `β` or a bias), stored as a 1-D `[n]`
/// tensor rather than the `[1, n]` matrix the body holds.
///
/// Why by kind and not by a row count of 1: a `[1, n]` projection (a model
/// with `D` = 1) is still a matrix, and PyTorch holds `LayerNorm.weight`
/// and `Linear.bias` as 1-D tensors, so this is the shape its users have.
pub(crate) const fn is_vector(matrix: WeightMatrix) -> bool {
    match matrix {
        WeightMatrix::Layer { kind, .. } => matches!(
            kind,
            MatrixKind::Norm1Scale
                | MatrixKind::Norm1Shift
                | MatrixKind::Norm2Scale
                | MatrixKind::Norm2Shift
                | MatrixKind::UpBias
                | MatrixKind::DownBias
        ),
        WeightMatrix::FinalNormScale | WeightMatrix::FinalNormShift => true,
        WeightMatrix::Classifier => false,
    }
}

/// The `norm` metadata value of `norm`.
pub(crate) const fn norm_name(norm: Norm) -> &'static str {
    match norm {
        Norm::None => "none",
        Norm::Layer => "layer",
        Norm::Rms => "rms",
    }
}

/// The norm a `norm` metadata value names; lowercase only, so each norm
/// has exactly one spelling, as each tensor has one name.
pub(crate) fn parse_norm(value: &str) -> Option<Norm> {
    [Norm::None, Norm::Layer, Norm::Rms]
        .into_iter()
        .find(|&norm| norm_name(norm) == value)
}

/// A canonical decimal: digits only, no leading zero except `0` itself, in
/// range of `usize`.
pub(crate) fn parse_canonical(text: &str) -> Option<usize> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_matrix() {
        for layer in [0, 1, 9, 10, 12345] {
            for kind in MatrixKind::BODY_ORDER {
                let matrix = WeightMatrix::Layer { layer, kind };
                assert_eq!(parse_tensor_name(&tensor_name(matrix)), Some(matrix));
            }
        }
        for matrix in [
            WeightMatrix::Classifier,
            WeightMatrix::FinalNormScale,
            WeightMatrix::FinalNormShift,
        ] {
            assert_eq!(parse_tensor_name(&tensor_name(matrix)), Some(matrix));
        }
        assert_eq!(layer_tensor_name(3, MatrixKind::Output), "layers.3.wo");
        assert_eq!(layer_tensor_name(0, MatrixKind::Up), "layers.0.w1");
        assert_eq!(layer_tensor_name(2, MatrixKind::DownBias), "layers.2.b2");
    }

    #[test]
    fn non_canonical_names_are_not_ours() {
        for name in [
            "layers.01.wq",
            "layers.+1.wq",
            "layers.-1.wq",
            "layers..wq",
            "layers.1.wq.weight",
            "layers.1.WQ",
            "layers.1",
            "layers.99999999999999999999999.wq",
            "Classifier",
            "classifier.weight",
            "model.layers.0.wq",
            "layers.0.final_norm_scale",
            "final_norm_scale.weight",
            "layers.0.norm1",
            "layers.0.conv.weight",
            "",
        ] {
            assert_eq!(parse_tensor_name(name), None, "{name}");
        }
    }

    #[test]
    fn vectors_are_the_scales_shifts_and_biases() {
        let vectors: Vec<_> = MatrixKind::BODY_ORDER
            .into_iter()
            .filter(|&kind| is_vector(WeightMatrix::Layer { layer: 0, kind }))
            .map(kind_suffix)
            .collect();
        assert_eq!(
            vectors,
            [
                "norm1_scale",
                "norm1_shift",
                "norm2_scale",
                "norm2_shift",
                "b1",
                "b2"
            ]
        );
        assert!(is_vector(WeightMatrix::FinalNormShift));
        assert!(!is_vector(WeightMatrix::Classifier));
    }

    #[test]
    fn norms_have_one_lowercase_spelling() {
        for norm in [Norm::None, Norm::Layer, Norm::Rms] {
            assert_eq!(parse_norm(norm_name(norm)), Some(norm));
        }
        for bad in ["Layer", "RMS", "layernorm", " rms", "", "0"] {
            assert_eq!(parse_norm(bad), None, "{bad}");
        }
    }

    #[test]
    fn canonical_decimals() {
        assert_eq!(parse_canonical("0"), Some(0));
        assert_eq!(parse_canonical("40"), Some(40));
        assert_eq!(parse_canonical("007"), None);
        assert_eq!(parse_canonical(" 4"), None);
        assert_eq!(parse_canonical("4.0"), None);
        assert_eq!(parse_canonical(""), None);
    }
}
