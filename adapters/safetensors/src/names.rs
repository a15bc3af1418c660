//! Tensor names and metadata keys of a compatible file
//! (`docs/safetensors.md`).
//!
//! Why one module: the writer and the reader must spell every name the
//! same way, and the reader must map each name to exactly one matrix — so
//! `layers.01.wq` is refused rather than read as a second `layers.1.wq`.

use aether_model::{MatrixKind, WeightMatrix};

/// The classifier's tensor name.
pub const CLASSIFIER: &str = "classifier";

/// The `format` metadata value that marks a file as ours.
pub const FORMAT: &str = "aether-temporal";

/// The `version` metadata value: the model version of `docs/model.md`.
pub const MODEL_VERSION: &str = "1";

pub(crate) const KEY_FORMAT: &str = "format";
pub(crate) const KEY_VERSION: &str = "version";
pub(crate) const KEY_Q_HEADS: &str = "n_q_heads";
pub(crate) const KEY_KV_HEADS: &str = "n_kv_heads";

const LAYER_PREFIX: &str = "layers.";

/// The suffix of a layer's matrix: `wq`, `wk`, `wv` or `wo` for the
/// projections (the version-1 file). The version-2 kinds have names
/// reserved for when the mapping carries them; a reader refuses them today.
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

/// The tensor name of one projection of `layer`: `layers.{layer}.wq` and
/// so on.
#[must_use]
pub fn layer_tensor_name(layer: usize, kind: MatrixKind) -> String {
    format!("{LAYER_PREFIX}{layer}.{}", kind_suffix(kind))
}

/// The tensor name of `matrix`.
pub(crate) fn tensor_name(matrix: WeightMatrix) -> String {
    match matrix {
        WeightMatrix::Layer { layer, kind } => layer_tensor_name(layer, kind),
        WeightMatrix::FinalNormScale => "final_norm_scale".to_owned(),
        WeightMatrix::FinalNormShift => "final_norm_shift".to_owned(),
        WeightMatrix::Classifier => CLASSIFIER.to_owned(),
    }
}

/// The matrix a tensor name stands for, or `None` when the name is not one
/// of ours. Layer numbers are canonical decimals (no sign, no leading
/// zero), so each matrix has exactly one name.
pub(crate) fn parse_tensor_name(name: &str) -> Option<WeightMatrix> {
    if name == CLASSIFIER {
        return Some(WeightMatrix::Classifier);
    }
    let rest = name.strip_prefix(LAYER_PREFIX)?;
    let (number, suffix) = rest.split_once('.')?;
    let layer = parse_canonical(number)?;
    let kind = MatrixKind::PROJECTIONS
        .into_iter()
        .find(|&kind| kind_suffix(kind) == suffix)?;
    Some(WeightMatrix::Layer { layer, kind })
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
            for kind in MatrixKind::PROJECTIONS {
                let matrix = WeightMatrix::Layer { layer, kind };
                assert_eq!(parse_tensor_name(&tensor_name(matrix)), Some(matrix));
            }
        }
        assert_eq!(
            parse_tensor_name(&tensor_name(WeightMatrix::Classifier)),
            Some(WeightMatrix::Classifier)
        );
        assert_eq!(layer_tensor_name(3, MatrixKind::Output), "layers.3.wo");
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
            "",
        ] {
            assert_eq!(parse_tensor_name(name), None, "{name}");
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
