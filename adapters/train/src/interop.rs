//! Conversion between the trainer's tensors and the kernel model's
//! weights type (`aether_model::ModelWeights`: a shape and every weight as
//! f32 in the body order of `docs/model.md`).
//!
//! Why one module: this is the only place the trainer touches
//! `aether-model`, so a change to that crate's API is adapted here.
//! Export is one function and import is one function; the version-2
//! options travel in the shape.

use aether_domain::HeadConfig;
use aether_model::{ModelShape, ModelWeights};
use candle_core::DType;

use crate::TrainError;
use crate::net::{Architecture, ModelOptions, Norm, TemporalNet};

impl From<Norm> for aether_model::Norm {
    fn from(norm: Norm) -> Self {
        match norm {
            Norm::None => Self::None,
            Norm::Layer => Self::Layer,
            Norm::Rms => Self::Rms,
        }
    }
}

impl From<aether_model::Norm> for Norm {
    fn from(norm: aether_model::Norm) -> Self {
        match norm {
            aether_model::Norm::None => Self::None,
            aether_model::Norm::Layer => Self::Layer,
            aether_model::Norm::Rms => Self::Rms,
        }
    }
}

/// Why two option types: the trainer's is read from configurations
/// (serde, lowercase norm names) and the kernel's is `no_std` without
/// serde; they hold the same six values.
impl From<&ModelOptions> for aether_model::ModelOptions {
    fn from(options: &ModelOptions) -> Self {
        Self {
            norm: options.norm.into(),
            conv_taps: options.conv_taps,
            mlp_hidden: options.mlp_hidden,
            centre_shift: options.centre_shift,
            centre_gain_log2: options.centre_gain_log2,
            pool_shift: options.pool_shift,
        }
    }
}

impl From<aether_model::ModelOptions> for ModelOptions {
    fn from(options: aether_model::ModelOptions) -> Self {
        Self {
            norm: options.norm.into(),
            conv_taps: options.conv_taps,
            mlp_hidden: options.mlp_hidden,
            centre_shift: options.centre_shift,
            centre_gain_log2: options.centre_gain_log2,
            pool_shift: options.pool_shift,
        }
    }
}

impl Architecture {
    /// The kernel's shape of this architecture (its options included).
    #[must_use]
    pub fn model_shape(&self) -> ModelShape {
        ModelShape {
            input_dim: self.input_dim,
            n_q_heads: self.head.q_heads,
            n_kv_heads: self.head.kv_heads,
            head_dim: self.head.head_dim,
            n_layers: self.n_layers,
            n_classes: self.n_classes,
            options: (&self.options).into(),
        }
    }
}

impl TemporalNet {
    /// The weights as the kernel model reads them: f32 in body order
    /// (`docs/model.md`, "Body order, version 2") plus the shape (D, Hq,
    /// Hkv, d, L, C and the options).
    ///
    /// # Errors
    /// [`TrainError::Weights`] when the shape is not a kernel model (it
    /// always is for a validated architecture).
    pub fn to_weights(&self) -> Result<ModelWeights, TrainError> {
        // f64 → f32 rounds to nearest, exactly what a f32 model holds.
        let values = self.body()?.into_iter().map(|v| v as f32).collect();
        ModelWeights::new(self.architecture().model_shape(), values)
            .map_err(|e| TrainError::Weights(e.to_string()))
    }

    /// A trainer model holding `weights` (e.g. to fine-tune an imported
    /// model), with attention pattern `head`; the options are the
    /// weights' own.
    ///
    /// # Errors
    /// [`TrainError::Weights`] when the weights' heads are not `head`'s;
    /// the errors of [`TemporalNet::new`].
    pub fn from_weights(
        weights: &ModelWeights,
        head: HeadConfig,
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
            options: shape.options.into(),
        };
        let values: Vec<f64> = weights.values().iter().map(|&v| f64::from(v)).collect();
        Self::from_body(architecture, &values, dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn architecture(options: ModelOptions) -> Architecture {
        Architecture {
            input_dim: 5,
            n_classes: 3,
            n_layers: 2,
            head: HeadConfig {
                q_heads: 2,
                kv_heads: 1,
                head_dim: 4,
                ..HeadConfig::default_aether()
            },
            options,
        }
    }

    fn all_options(norm: Norm) -> ModelOptions {
        ModelOptions {
            norm,
            conv_taps: 3,
            mlp_hidden: 4,
            centre_shift: 3,
            centre_gain_log2: 1,
            pool_shift: 2,
        }
    }

    #[test]
    fn export_then_import_is_the_identity() {
        for options in [
            ModelOptions::default(),
            all_options(Norm::Layer),
            all_options(Norm::Rms),
        ] {
            let architecture = architecture(options);
            let net = TemporalNet::new(architecture.clone(), 11, DType::F32).unwrap();
            let weights = net.to_weights().unwrap();
            assert_eq!(weights.values().len(), architecture.weight_count());
            // The last value is Wc[D-1][C-1] in every version.
            let last = net
                .vars()
                .last()
                .unwrap()
                .as_tensor()
                .flatten_all()
                .unwrap();
            assert_eq!(
                weights.values().last(),
                last.to_vec1::<f32>().unwrap().last()
            );
            let back =
                TemporalNet::from_weights(&weights, architecture.head.clone(), DType::F32).unwrap();
            assert_eq!(back.architecture(), &architecture);
            assert_eq!(back.to_weights().unwrap(), weights);
        }
    }

    #[test]
    fn the_body_order_is_the_kernel_layout() {
        // The trainer lists its tensors in `Architecture::parts`, the
        // kernel in `Layout`: two writings of one order, compared here
        // tensor by tensor for every combination of options.
        for norm in [Norm::None, Norm::Layer, Norm::Rms] {
            for conv_taps in [0, 2, 3] {
                for mlp_hidden in [0, 1, 4] {
                    let a = architecture(ModelOptions {
                        norm,
                        conv_taps,
                        mlp_hidden,
                        ..ModelOptions::default()
                    });
                    let layout = a.model_shape().layout().unwrap();
                    let kernel: Vec<(usize, usize)> =
                        layout.spans().map(|s| (s.rows, s.cols)).collect();
                    assert_eq!(a.matrix_shapes(), kernel, "{:?}", a.options);
                    assert_eq!(a.weight_count(), layout.weight_count());
                }
            }
        }
    }

    #[test]
    fn version_2_init_is_identity_conv_unit_norms_and_zero_biases() {
        // D 5, K 3, H 4, layer norm: layer 0 is γ1 β1 Wconv Wq Wk Wv Wo γ2
        // β2 W1 b1 W2 b2.
        let net = TemporalNet::new(architecture(all_options(Norm::Layer)), 2, DType::F64).unwrap();
        let v = |i: usize| {
            net.vars()[i]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        assert_eq!(v(0), vec![1.0; 5]);
        assert_eq!(v(1), vec![0.0; 5]);
        let conv = v(2);
        assert_eq!(&conv[..5], &[1.0; 5]);
        assert_eq!(&conv[5..], &[0.0; 10]);
        assert_eq!(v(7), vec![1.0; 5]);
        assert_eq!(v(8), vec![0.0; 5]);
        assert!(v(9).iter().all(|w| w.abs() < 1.0 / 5f64.sqrt()));
        assert!(v(9).iter().any(|&w| w != 0.0));
        assert_eq!(v(10), vec![0.0; 4]);
        assert!(v(11).iter().all(|w| w.abs() < 0.5));
        assert_eq!(v(12), vec![0.0; 5]);
    }

    #[test]
    fn options_leave_the_first_layers_attention_bits_unchanged() {
        // Norms and the convolution draw nothing, so layer 0's Wq..Wo
        // are version 1's bits whatever those options are.
        let v1 = TemporalNet::new(architecture(ModelOptions::default()), 7, DType::F32).unwrap();
        let v2 = TemporalNet::new(architecture(all_options(Norm::Rms)), 7, DType::F32).unwrap();
        for i in 0..4 {
            // RMS: γ1, Wconv, then Wq at index 2.
            let a = v1.vars()[i].as_tensor().flatten_all().unwrap();
            let b = v2.vars()[i + 2].as_tensor().flatten_all().unwrap();
            assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
        }
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
        let err = TemporalNet::from_weights(&weights, other, DType::F32).unwrap_err();
        assert!(err.to_string().contains("kv_heads 1"), "{err}");
    }
}
