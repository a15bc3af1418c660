//! Conversion between the trainer's tensors and the kernel model's
//! weights type (`aether_model::ModelWeights`: a shape and every weight as
//! f32 in the body order of `docs/model.md`).
//!
//! Why one module: this is the only place the trainer touches
//! `aether-model`, so a change to that crate's API is adapted here.
//! Export is one function and import is one function.

use aether_domain::HeadConfig;
use aether_model::{ModelShape, ModelWeights};
use candle_core::DType;

use crate::TrainError;
use crate::net::{Architecture, ModelOptions, TemporalNet};

impl TemporalNet {
    /// The weights as the kernel model reads them: f32 in body order plus
    /// the shape (D, Hq, Hkv, d, L, C).
    ///
    /// # Errors
    /// [`TrainError::Weights`] when the shape is not a kernel model (it
    /// always is for a validated architecture).
    pub fn to_weights(&self) -> Result<ModelWeights, TrainError> {
        let a = self.architecture();
        let shape = ModelShape {
            input_dim: a.input_dim,
            n_q_heads: a.head.q_heads,
            n_kv_heads: a.head.kv_heads,
            head_dim: a.head.head_dim,
            n_layers: a.n_layers,
            n_classes: a.n_classes,
        };
        // f64 → f32 rounds to nearest, exactly what a f32 model holds.
        let values = self.body()?.into_iter().map(|v| v as f32).collect();
        ModelWeights::new(shape, values).map_err(|e| TrainError::Weights(e.to_string()))
    }

    /// A trainer model holding `weights` (e.g. to fine-tune an imported
    /// model), with attention pattern `head` and `options`.
    ///
    /// # Errors
    /// [`TrainError::Weights`] when the weights' heads are not `head`'s;
    /// the errors of [`TemporalNet::new`].
    pub fn from_weights(
        weights: &ModelWeights,
        head: HeadConfig,
        options: ModelOptions,
        dtype: DType,
    ) -> Result<Self, TrainError> {
        let shape = weights.shape();
        let heads = (shape.n_q_heads, shape.n_kv_heads, shape.head_dim);
        if heads != (head.q_heads, head.kv_heads, head.head_dim) {
            return Err(TrainError::Weights(format!(
                "the weights have q_heads {}, kv_heads {}, head_dim {}; the head config has \
                 {}, {}, {}",
                heads.0, heads.1, heads.2, head.q_heads, head.kv_heads, head.head_dim
            )));
        }
        let architecture = Architecture {
            input_dim: shape.input_dim,
            n_classes: shape.n_classes,
            n_layers: shape.n_layers,
            head,
            options,
        };
        let values: Vec<f64> = weights.values().iter().map(|&v| f64::from(v)).collect();
        Self::from_body(architecture, &values, dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_then_import_is_the_identity() {
        let architecture = Architecture {
            input_dim: 5,
            n_classes: 3,
            n_layers: 2,
            head: HeadConfig {
                q_heads: 2,
                kv_heads: 1,
                head_dim: 4,
                ..HeadConfig::default_aether()
            },
            options: ModelOptions::default(),
        };
        let net = TemporalNet::new(architecture.clone(), 11, DType::F32).unwrap();
        let weights = net.to_weights().unwrap();
        assert_eq!(weights.values().len(), architecture.weight_count());
        // Body order: the first value is Wq[0][0] of layer 0, the last is
        // Wc[D-1][C-1].
        let first = net.vars()[0].as_tensor().flatten_all().unwrap();
        assert_eq!(weights.values()[0], first.to_vec1::<f32>().unwrap()[0]);
        let back = TemporalNet::from_weights(
            &weights,
            architecture.head.clone(),
            ModelOptions::default(),
            DType::F32,
        )
        .unwrap();
        assert_eq!(back.to_weights().unwrap(), weights);
    }

    #[test]
    fn import_refuses_other_heads() {
        let net = TemporalNet::new(
            Architecture {
                input_dim: 3,
                n_classes: 2,
                n_layers: 1,
                head: HeadConfig::default_aether(),
                options: ModelOptions::default(),
            },
            1,
            DType::F32,
        )
        .unwrap();
        let weights = net.to_weights().unwrap();
        let other = HeadConfig {
            kv_heads: 2,
            ..HeadConfig::default_aether()
        };
        let err = TemporalNet::from_weights(&weights, other, ModelOptions::default(), DType::F32)
            .unwrap_err();
        assert!(err.to_string().contains("kv_heads 1"), "{err}");
    }
}
