//! The multimodal model every method trains: an encoder and a linear unimodal head per
//! modality, and a fusion head over all encoders' features.

use balancelab_shared::{FusionKind, ModelConfig};
use candle_core::{Result, Tensor};
use candle_nn::{Linear, Module};

use super::encoder::Encoder;
use super::fusion::Fusion;
use super::params::{Owner, ParamStore, Role};

/// Output of one forward pass.
pub struct Outputs {
    /// Logits u_m of each modality's own head, `[batch, classes]`.
    pub unimodal: Vec<Tensor>,
    /// Logits f of the fusion head, `[batch, classes]`.
    pub fused: Tensor,
    /// Each modality's share A_m z_m of the fused logits (late fusion only).
    pub fusion_parts: Option<Vec<Tensor>>,
    /// Each encoder's features z_m, `[batch, dim_m]`.
    pub features: Vec<Tensor>,
}

/// How a forward pass runs.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    /// Batch norm uses batch statistics and updates its running ones.
    pub train: bool,
    /// The unimodal heads see detached features: they are trained as linear probes and
    /// send no gradient into the encoders (methods that train on the fused loss only).
    pub probe_heads: bool,
}

impl Pass {
    /// Evaluation: running statistics, heads as probes.
    pub const EVAL: Pass = Pass {
        train: false,
        probe_heads: true,
    };
}

/// One encoder and one unimodal head per modality, and a fusion over the encoders.
pub struct MultimodalModel {
    encoders: Vec<Encoder>,
    heads: Vec<Linear>,
    fusion: Fusion,
    fusion_kind: FusionKind,
    /// The modality whose head's logits are the fused output ([`MultimodalModel::alone`]).
    alone: Option<usize>,
}

impl MultimodalModel {
    /// `input_shapes[m]` is modality m's sample shape. `cosine_scale` makes the late fusion
    /// MMCosine's.
    pub fn new(
        store: &mut ParamStore,
        config: &ModelConfig,
        input_shapes: &[Vec<usize>],
        classes: usize,
        cosine_scale: Option<f64>,
    ) -> Result<Self> {
        let feature_dim = config.feature_dim as usize;
        let mut encoders = Vec::new();
        let mut heads = Vec::new();
        let mut dims = Vec::new();
        for (m, shape) in input_shapes.iter().enumerate() {
            let encoder = Encoder::new(store, m, &config.encoder, shape, feature_dim)?;
            let dim = Encoder::output_dim(&config.encoder, feature_dim);
            let head = (Owner::Modality(m), Role::Head);
            heads.push(store.linear(&format!("head{m}"), head, dim, classes, true)?);
            encoders.push(encoder);
            dims.push(dim);
        }
        let fusion = Fusion::new(store, config.fusion, &dims, classes, cosine_scale)?;
        Ok(Self {
            encoders,
            heads,
            fusion,
            fusion_kind: config.fusion,
            alone: None,
        })
    }

    /// The model of a unimodal run: modality `m`'s head, trained on its encoder's features,
    /// gives the fused output, and the fusion is left out.
    pub fn alone(self, m: Option<usize>) -> Self {
        Self { alone: m, ..self }
    }

    /// Each encoder's features z_m.
    pub fn features(&self, inputs: &[Tensor], train: bool) -> Result<Vec<Tensor>> {
        (self.encoders.iter().zip(inputs))
            .map(|(encoder, x)| encoder.forward(x, train))
            .collect()
    }

    /// A unimodal run's outputs: head `alone`'s logits are the fused output (the only path
    /// a gradient takes); every head's logits, its own included, are detached bookkeeping,
    /// the others' heads probes of their encoders.
    fn forward_alone(&self, alone: usize, features: Vec<Tensor>) -> Result<Outputs> {
        let fused = self.heads[alone].forward(&features[alone])?;
        let unimodal = (features.iter().zip(&self.heads).enumerate())
            .map(|(m, (z, head))| match m == alone {
                true => Ok(fused.detach()),
                false => head.forward(&z.detach()),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Outputs {
            unimodal,
            fused,
            fusion_parts: None,
            features,
        })
    }

    /// Fused and unimodal logits of a batch, one input per modality.
    pub fn forward(&self, inputs: &[Tensor], pass: Pass) -> Result<Outputs> {
        let features = self.features(inputs, pass.train)?;
        if let Some(alone) = self.alone {
            return self.forward_alone(alone, features);
        }
        let decision = self.fusion_kind == FusionKind::Decision;
        let mut unimodal = Vec::with_capacity(features.len());
        for (z, head) in features.iter().zip(&self.heads) {
            // Decision fusion's heads are part of the fused path: never detach their input.
            let probe = pass.probe_heads && !decision;
            unimodal.push(head.forward(&if probe { z.detach() } else { z.clone() })?);
        }
        let fused = self.fusion.forward(&features, &unimodal)?;
        if decision && pass.probe_heads {
            // Their own losses are bookkeeping then: no gradient from them.
            unimodal = unimodal.iter().map(Tensor::detach).collect();
        }
        Ok(Outputs {
            unimodal,
            fused: fused.logits,
            fusion_parts: fused.parts,
            features,
        })
    }

    /// The shared bias b of a late fusion layer, `[classes]`.
    pub fn fusion_bias(&self) -> Option<&Tensor> {
        self.fusion.late_bias()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancelab_shared::EncoderConfig;
    use candle_core::{DType, Device};

    fn model(fusion: FusionKind, modalities: usize) -> Result<(ParamStore, MultimodalModel)> {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let config = ModelConfig {
            fusion,
            feature_dim: 8,
            ..ModelConfig::default()
        };
        let shapes = vec![vec![3]; modalities];
        let model = MultimodalModel::new(&mut store, &config, &shapes, 2, None)?;
        Ok((store, model))
    }

    #[test]
    fn encoders_and_heads_belong_to_their_modality() -> Result<()> {
        let (store, _) = model(FusionKind::Late, 2)?;
        let owners: Vec<(&str, Owner, Role)> = store
            .params()
            .iter()
            .map(|p| (p.name.as_str(), p.owner, p.role))
            .collect();
        let (m0, m1) = (Owner::Modality(0), Owner::Modality(1));
        let (encoder, head, fusion) = (Role::Encoder, Role::Head, Role::Fusion);
        assert_eq!(
            owners,
            [
                ("encoder0.0.weight", m0, encoder),
                ("encoder0.0.bias", m0, encoder),
                ("encoder0.1.weight", m0, encoder),
                ("encoder0.1.bias", m0, encoder),
                ("head0.weight", m0, head),
                ("head0.bias", m0, head),
                ("encoder1.0.weight", m1, encoder),
                ("encoder1.0.bias", m1, encoder),
                ("encoder1.1.weight", m1, encoder),
                ("encoder1.1.bias", m1, encoder),
                ("head1.weight", m1, head),
                ("head1.bias", m1, head),
                ("fusion.slice0", m0, fusion),
                ("fusion.slice1", m1, fusion),
                ("fusion.bias", Owner::Shared, fusion),
            ]
        );
        Ok(())
    }

    /// The fusion parameters of `kind` with their owners.
    fn fusion_owners(kind: FusionKind, modalities: usize) -> Result<Vec<(String, Owner)>> {
        let (store, _) = model(kind, modalities)?;
        Ok(store
            .params()
            .iter()
            .filter(|p| p.role == Role::Fusion)
            .map(|p| (p.name.clone(), p.owner))
            .collect())
    }

    #[test]
    fn every_fusion_owns_its_parameters_explicitly() -> Result<()> {
        let (m0, m1, m2, shared) = (
            Owner::Modality(0),
            Owner::Modality(1),
            Owner::Modality(2),
            Owner::Shared,
        );
        let names = |list: &[(&str, Owner)]| -> Vec<(String, Owner)> {
            list.iter().map(|(n, o)| (n.to_string(), *o)).collect()
        };
        let linear = |name: &str, owner| {
            [
                (format!("{name}.weight"), owner),
                (format!("{name}.bias"), owner),
            ]
        };
        let mut mid: Vec<(String, Owner)> = Vec::new();
        for (name, owner) in [
            ("fusion.projection0", m0),
            ("fusion.projection1", m1),
            ("fusion.projection2", m2),
            ("fusion.hidden", shared),
            ("fusion.out", shared),
        ] {
            mid.extend(linear(name, owner));
        }
        assert_eq!(fusion_owners(FusionKind::Mid, 3)?, mid);
        let mut film = linear("fusion.film", m0).to_vec();
        film.extend(linear("fusion.out", shared));
        assert_eq!(fusion_owners(FusionKind::Film, 2)?, film);
        // The official code's name match also scaled a gated-fusion layer; here the gate is
        // the first modality's, the gated value the second's, and the output layer shared.
        let mut gated = linear("fusion.gate", m0).to_vec();
        gated.extend(linear("fusion.value", m1));
        gated.extend(linear("fusion.out", shared));
        assert_eq!(fusion_owners(FusionKind::Gated, 2)?, gated);
        let tf = fusion_owners(FusionKind::Transformer, 2)?;
        let owner_of = |name: &str| tf.iter().find(|(n, _)| n == name).map(|(_, o)| *o);
        assert_eq!(owner_of("fusion.projection1.weight"), Some(m1));
        assert_eq!(owner_of("fusion.embedding0"), Some(m0));
        assert_eq!(owner_of("fusion.cls"), Some(shared));
        assert_eq!(owner_of("fusion.block.qkv.weight"), Some(shared));
        assert_eq!(owner_of("fusion.out.weight"), Some(shared));
        assert_eq!(tf.iter().filter(|(_, o)| *o != shared).count(), 6, "{tf:?}");
        assert_eq!(fusion_owners(FusionKind::Decision, 3)?, names(&[]));
        Ok(())
    }

    #[test]
    fn every_fusion_runs_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for kind in FusionKind::ALL {
            let (store, model) = model(kind, 2)?;
            let x = Tensor::randn(0f32, 1.0, (4, 3), &dev)?;
            let out = model.forward(
                &[x.clone(), (x * 2.0)?],
                Pass {
                    train: true,
                    probe_heads: false,
                },
            )?;
            assert_eq!(out.fused.dims(), [4, 2], "{kind:?}");
            let grads = out.fused.sum_all()?.backward()?;
            // Each modality's encoder receives gradient through the fusion.
            for m in 0..2 {
                let first = store
                    .params()
                    .iter()
                    .find(|p| p.owner == Owner::Modality(m))
                    .unwrap();
                assert!(grads.get(first.var.as_tensor()).is_some(), "{kind:?} m{m}");
            }
        }
        Ok(())
    }

    #[test]
    fn probe_heads_send_no_gradient_to_the_encoders() -> Result<()> {
        for kind in [FusionKind::Late, FusionKind::Decision] {
            let (store, model) = model(kind, 2)?;
            let x = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?;
            let out = model.forward(&[x.clone(), x], Pass::EVAL)?;
            let grads = out.unimodal[0].sum_all()?.backward()?;
            let encoder = &store.params()[0];
            assert!(grads.get(encoder.var.as_tensor()).is_none(), "{kind:?}");
        }
        Ok(())
    }

    #[test]
    fn resnet_model_uses_512_wide_features() -> Result<()> {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let config = ModelConfig {
            encoder: EncoderConfig::Resnet18,
            ..ModelConfig::default()
        };
        let shapes = [vec![1, 16, 16], vec![2, 3, 16, 16]];
        let model = MultimodalModel::new(&mut store, &config, &shapes, 6, None)?;
        let dev = Device::Cpu;
        let inputs = [
            Tensor::zeros((2, 1, 16, 16), DType::F32, &dev)?,
            Tensor::zeros((2, 2, 3, 16, 16), DType::F32, &dev)?,
        ];
        let out = model.forward(&inputs, Pass::EVAL)?;
        assert_eq!(out.fused.dims(), [2, 6]);
        let head = store
            .params()
            .iter()
            .find(|p| p.name == "head0.weight")
            .unwrap();
        assert_eq!(head.var.dims(), [6, 512]);
        Ok(())
    }
}
