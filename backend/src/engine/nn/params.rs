//! Trainable parameters with an explicit owner.
//!
//! Gradient-modulation methods scale "the gradients of modality m". Which parameters those
//! are is recorded here when each parameter is created, never inferred from its name: the
//! official MLB code matched names and so also scaled a shared fusion parameter.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Conv2d, Conv2dConfig, Linear};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

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
    /// A modality's encoder.
    Encoder,
    /// A unimodal head.
    Head,
    /// The fusion layer.
    Fusion,
}

/// A named parameter, its owner and its role.
#[derive(Clone, Debug)]
pub struct Param {
    /// Unique name, as in checkpoints (`encoder0.0.weight`).
    pub name: String,
    /// The modality it belongs to, or shared.
    pub owner: Owner,
    /// What part of the model it is in.
    pub role: Role,
    /// Its value.
    pub var: Var,
}

/// Creates parameters from a seeded generator and remembers who owns each.
///
/// Candle's CPU random generator cannot be seeded, so initial values are drawn here to make
/// runs reproducible.
pub struct ParamStore {
    params: Vec<Param>,
    /// State that is not trained but must be saved with the model (batch-norm statistics).
    buffers: Vec<(String, Var)>,
    rng: StdRng,
    device: Device,
}

impl ParamStore {
    /// An empty store drawing initial values from `seed`, on `device`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            params: Vec::new(),
            buffers: Vec::new(),
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

    /// A square `kernel` convolution without bias, drawn as torchvision's ResNet does:
    /// normal with std sqrt(2 / fan_out) (Kaiming, fan-out mode).
    pub fn conv2d(
        &mut self,
        name: &str,
        owner_role: (Owner, Role),
        (in_channels, out_channels): (usize, usize),
        kernel: usize,
        config: Conv2dConfig,
    ) -> Result<Conv2d> {
        let std = (2.0 / (out_channels * kernel * kernel) as f32).sqrt();
        let shape = [out_channels, in_channels, kernel, kernel];
        let weight = self.normal(&format!("{name}.weight"), owner_role, &shape, std)?;
        Ok(Conv2d::new(weight, None, config))
    }

    /// A parameter drawn uniformly from `[-bound, bound)`.
    pub fn uniform(
        &mut self,
        name: &str,
        owner_role: (Owner, Role),
        shape: &[usize],
        bound: f32,
    ) -> Result<Tensor> {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| self.rng.random_range(-bound..bound))
            .collect();
        self.push(name, owner_role, values, shape)
    }

    /// A parameter drawn from N(0, std^2).
    pub fn normal(
        &mut self,
        name: &str,
        owner_role: (Owner, Role),
        shape: &[usize],
        std: f32,
    ) -> Result<Tensor> {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| std * self.rng.sample::<f32, _>(StandardNormal))
            .collect();
        self.push(name, owner_role, values, shape)
    }

    /// A parameter with every entry `value` (normalisation scales and shifts).
    pub fn constant(
        &mut self,
        name: &str,
        owner_role: (Owner, Role),
        shape: &[usize],
        value: f32,
    ) -> Result<Tensor> {
        let count = shape.iter().product();
        self.push(name, owner_role, vec![value; count], shape)
    }

    /// Untrained state saved with the model; starts at `value` everywhere.
    pub fn buffer(&mut self, name: &str, shape: &[usize], value: f32) -> Result<Tensor> {
        let count: usize = shape.iter().product();
        let var = Var::from_tensor(&Tensor::from_vec(vec![value; count], shape, &self.device)?)?;
        let tensor = var.as_tensor().clone();
        self.buffers.push((name.to_owned(), var));
        Ok(tensor)
    }

    fn push(
        &mut self,
        name: &str,
        (owner, role): (Owner, Role),
        values: Vec<f32>,
        shape: &[usize],
    ) -> Result<Tensor> {
        assert!(
            self.params.iter().all(|p| p.name != name),
            "parameter {name} created twice"
        );
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

    /// Every trainable parameter, in creation order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Every buffer with its name.
    pub fn buffers(&self) -> &[(String, Var)] {
        &self.buffers
    }

    /// Where the parameters live.
    pub fn device(&self) -> &Device {
        &self.device
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

    /// The squared L2 norm of the gradients of each modality's parameters, as scalars on the
    /// device: the step reads them back with its other numbers, in one transfer.
    pub fn squared_gradient_norms(
        &self,
        grads: &GradStore,
        modalities: usize,
    ) -> Result<Vec<Tensor>> {
        (0..modalities)
            .map(|m| self.squared_norm(grads, |p| p.owner == Owner::Modality(m)))
            .collect()
    }

    /// Sum of the squared gradient entries of the parameters `include` accepts, reduced on
    /// the device (a float32 scalar there).
    fn squared_norm(&self, grads: &GradStore, include: impl Fn(&Param) -> bool) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for param in self.params.iter().filter(|p| include(p)) {
            if let Some(grad) = grads.get(param.var.as_tensor()) {
                let sum = grad.to_dtype(DType::F32)?.sqr()?.sum_all()?;
                total = Some(match total {
                    Some(t) => (t + sum)?,
                    None => sum,
                });
            }
        }
        total.map_or_else(|| Tensor::zeros((), DType::F32, &self.device), Ok)
    }

    /// Scales every gradient so that their joint L2 norm is at most `max_norm`, as
    /// `torch.nn.utils.clip_grad_norm_`.
    pub fn clip_gradient_norm(&self, grads: &mut GradStore, max_norm: f64) -> Result<()> {
        let sum = self.squared_norm(grads, |_| true)?.to_scalar::<f32>()? as f64;
        let scale = max_norm / (sum.sqrt() + 1e-6);
        if scale >= 1.0 {
            return Ok(());
        }
        for param in &self.params {
            if let Some(grad) = grads.remove(param.var.as_tensor()) {
                grads.insert(param.var.as_tensor(), (grad * scale)?);
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
