//! Trainable parameters with an explicit owner.
//!
//! Gradient-modulation methods scale "the gradients of modality m". Which parameters those
//! are is recorded here when each parameter is created, never inferred from its name: the
//! official MLB code matched names and so also scaled a shared fusion parameter.

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};
use candle_nn::Linear;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Who a parameter belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The encoder, unimodal head or fusion slice of one modality.
    Modality(usize),
    /// Parameters every modality feeds, such as the fusion bias.
    Shared,
}

/// Which part of the model a parameter is in; methods such as OGM modulate only encoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Encoder,
    Head,
    Fusion,
}

/// A named parameter, its owner and its role.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub owner: Owner,
    pub role: Role,
    pub var: Var,
}

/// Creates parameters from a seeded generator and remembers who owns each.
///
/// Candle's CPU random generator cannot be seeded, so initial values are drawn here to make
/// runs reproducible.
pub struct ParamStore {
    params: Vec<Param>,
    rng: StdRng,
    device: Device,
}

impl ParamStore {
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            params: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            device: device.clone(),
        }
    }

    /// A `[out, in]` weight (and `[out]` bias) drawn like PyTorch's `nn.Linear`:
    /// uniform in +-1/sqrt(in).
    pub fn linear(
        &mut self,
        name: &str,
        (owner, role): (Owner, Role),
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Result<Linear> {
        let bound = 1.0 / (in_dim as f32).sqrt();
        let weight = self.uniform(
            &format!("{name}.weight"),
            (owner, role),
            &[out_dim, in_dim],
            bound,
        )?;
        let bias = if bias {
            Some(self.uniform(&format!("{name}.bias"), (owner, role), &[out_dim], bound)?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias))
    }

    /// A parameter drawn uniformly from `[-bound, bound)`.
    pub fn uniform(
        &mut self,
        name: &str,
        (owner, role): (Owner, Role),
        shape: &[usize],
        bound: f32,
    ) -> Result<Tensor> {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| self.rng.random_range(-bound..bound))
            .collect();
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, &self.device)?)?;
        let tensor = var.as_tensor().clone();
        self.params.push(Param {
            name: name.to_owned(),
            owner,
            role,
            var,
        });
        Ok(tensor)
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|p| p.var.clone()).collect()
    }

    /// Multiplies the gradient of every parameter owned by modality m by `coefficients[m]`;
    /// shared parameters are left alone.
    pub fn scale_gradients(&self, grads: &mut GradStore, coefficients: &[f64]) -> Result<()> {
        for param in &self.params {
            let Owner::Modality(m) = param.owner else {
                continue;
            };
            let k = coefficients[m];
            if k == 1.0 {
                continue;
            }
            if let Some(grad) = grads.remove(param.var.as_tensor()) {
                grads.insert(param.var.as_tensor(), (grad * k)?);
            }
        }
        Ok(())
    }

    /// Number of scalar parameters, for reports.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn same_seed_gives_same_parameters() {
        let draw = |seed| {
            let mut store = ParamStore::new(seed, &Device::Cpu);
            let layer = store
                .linear("l", (Owner::Shared, Role::Fusion), 4, 3, true)
                .unwrap();
            layer
                .weight()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(7).iter().all(|w| w.abs() <= 0.5));
    }

    #[test]
    fn scaling_touches_exactly_the_owned_gradients() -> Result<()> {
        let mut store = ParamStore::new(0, &Device::Cpu);
        let a = store.linear("a", (Owner::Modality(0), Role::Encoder), 2, 2, false)?;
        let b = store.linear("b", (Owner::Modality(1), Role::Head), 2, 2, false)?;
        let s = store.uniform("s", (Owner::Shared, Role::Fusion), &[2], 1.0)?;
        let x = Tensor::ones((1, 2), DType::F32, &Device::Cpu)?;
        let loss = (x.apply(&a)?.sum_all()? + x.apply(&b)?.sum_all()? + s.sum_all()?)?;
        let mut grads = loss.backward()?;
        store.scale_gradients(&mut grads, &[0.5, 2.0])?;
        // d loss / d w = 1 for every weight entry, so the scaled gradients are exactly k.
        let grad = |t: &Tensor| grads.get(t).unwrap().flatten_all()?.to_vec1::<f32>();
        assert_eq!(grad(a.weight())?, [0.5; 4]);
        assert_eq!(grad(b.weight())?, [2.0; 4]);
        assert_eq!(grad(&s)?, [1.0; 2]);
        Ok(())
    }
}
