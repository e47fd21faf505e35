//! A multimodal model with one MLP encoder per modality, a linear unimodal head per
//! modality and a late (linear) fusion head.
//!
//! The fusion layer f = sum_m A_m z_m + b is built as one bias-free slice A_m per modality
//! plus a shared bias, so each slice is owned by its modality (see [`Owner`]).

use candle_core::{Result, Tensor};
use candle_nn::{Linear, Module};

use super::params::{Owner, ParamStore, Role};

/// Output of one forward pass.
pub struct Outputs {
    /// Logits of each modality's own head, `[batch, classes]`.
    pub unimodal: Vec<Tensor>,
    /// Logits of the fusion head, `[batch, classes]`: the fusion bias plus every part.
    pub fused: Tensor,
    /// Each modality's share A_m z_m of the fused logits (what OGM scores).
    pub fusion_parts: Vec<Tensor>,
}

struct Encoder {
    hidden: Linear,
    output: Linear,
}

impl Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.apply(&self.hidden)?.relu()?.apply(&self.output)?.relu()
    }
}

pub struct LateFusionMlp {
    encoders: Vec<Encoder>,
    heads: Vec<Linear>,
    fusion_slices: Vec<Linear>,
    fusion_bias: Tensor,
}

impl LateFusionMlp {
    /// `input_dims[m]` is modality m's feature size; every encoder maps to `hidden` features.
    pub fn new(
        store: &mut ParamStore,
        input_dims: &[usize],
        hidden: usize,
        classes: usize,
    ) -> Result<Self> {
        let mut encoders = Vec::new();
        let mut heads = Vec::new();
        let mut fusion_slices = Vec::new();
        let fusion_in = hidden * input_dims.len();
        for (m, &dim) in input_dims.iter().enumerate() {
            let owner = Owner::Modality(m);
            let encoder = (owner, Role::Encoder);
            encoders.push(Encoder {
                hidden: store.linear(&format!("encoder{m}.0"), encoder, dim, hidden, true)?,
                output: store.linear(&format!("encoder{m}.1"), encoder, hidden, hidden, true)?,
            });
            let head = (owner, Role::Head);
            heads.push(store.linear(&format!("head{m}"), head, hidden, classes, true)?);
            // Initialised with the fan-in of the whole concatenation, as one nn.Linear would be.
            let bound = 1.0 / (fusion_in as f32).sqrt();
            let slice = store.uniform(
                &format!("fusion.slice{m}"),
                (owner, Role::Fusion),
                &[classes, hidden],
                bound,
            )?;
            fusion_slices.push(Linear::new(slice, None));
        }
        let bound = 1.0 / (fusion_in as f32).sqrt();
        let fusion_bias = store.uniform(
            "fusion.bias",
            (Owner::Shared, Role::Fusion),
            &[classes],
            bound,
        )?;
        Ok(Self {
            encoders,
            heads,
            fusion_slices,
            fusion_bias,
        })
    }

    /// With `probe_heads`, the unimodal heads see detached features: they are trained as
    /// linear probes and send no gradient into the encoders (joint training).
    pub fn forward(&self, inputs: &[Tensor], probe_heads: bool) -> Result<Outputs> {
        let mut unimodal = Vec::with_capacity(inputs.len());
        let mut fusion_parts = Vec::with_capacity(inputs.len());
        let mut fused = self.fusion_bias.unsqueeze(0)?;
        for (m, x) in inputs.iter().enumerate() {
            let z = self.encoders[m].forward(x)?;
            let head_input = if probe_heads { z.detach() } else { z.clone() };
            unimodal.push(self.heads[m].forward(&head_input)?);
            let part = self.fusion_slices[m].forward(&z)?;
            fused = fused.broadcast_add(&part)?;
            fusion_parts.push(part);
        }
        Ok(Outputs {
            unimodal,
            fused,
            fusion_parts,
        })
    }

    /// The shared bias b of the fusion layer, `[classes]`.
    pub fn fusion_bias(&self) -> &Tensor {
        &self.fusion_bias
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn every_parameter_has_the_owner_of_its_branch() -> Result<()> {
        let mut store = ParamStore::new(0, &Device::Cpu);
        LateFusionMlp::new(&mut store, &[3, 5], 4, 2)?;
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
                ("fusion.slice0", m0, fusion),
                ("encoder1.0.weight", m1, encoder),
                ("encoder1.0.bias", m1, encoder),
                ("encoder1.1.weight", m1, encoder),
                ("encoder1.1.bias", m1, encoder),
                ("head1.weight", m1, head),
                ("head1.bias", m1, head),
                ("fusion.slice1", m1, fusion),
                ("fusion.bias", Owner::Shared, fusion),
            ]
        );
        Ok(())
    }

    #[test]
    fn probe_heads_send_no_gradient_to_the_encoders() -> Result<()> {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let model = LateFusionMlp::new(&mut store, &[3, 3], 4, 2)?;
        let x = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?;
        let out = model.forward(&[x.clone(), x], true)?;
        let grads = out.unimodal[0].sum_all()?.backward()?;
        let params = store.params();
        assert!(
            grads.get(params[0].var.as_tensor()).is_none(),
            "encoder got a gradient"
        );
        assert!(
            grads.get(params[4].var.as_tensor()).is_some(),
            "head got no gradient"
        );
        Ok(())
    }
}
