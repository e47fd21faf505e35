//! Batch normalisation over `[n, c, h, w]` with PyTorch's semantics, and every forward path
//! a layer of ours takes through it: alone or followed by a ReLU, ending a ResNet block
//! (`relu(bn(x) + residual)`), or ending a CNN block (`max_pool(relu(bn(x)))`).
//!
//! Training on the CPU in float32 runs one fused kernel per path ([`crate::engine::ops`]);
//! evaluation and other devices use candle_nn's BatchNorm and Candle's ops. Either way the
//! running statistics follow PyTorch: momentum 0.1, unbiased running variance.

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{BatchNorm, ModuleT};

use crate::engine::ops::add_relu::add_relu;
use crate::engine::ops::batch_norm::batch_norm_train;
use crate::engine::ops::bn_add_relu::batch_norm_add_relu_train;
use crate::engine::ops::bn_relu_pool::{self, batch_norm_relu_pool_train};
use crate::engine::ops::max_pool::{pool, Window};

/// PyTorch's default momentum of the running statistics.
const MOMENTUM: f64 = 0.1;

/// A `BatchNorm2d` layer: affine parameters and running statistics per channel.
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    /// The same parameters and buffers, for evaluation and non-CPU devices.
    fallback: BatchNorm,
}

impl BatchNorm2d {
    /// `running_mean` and `running_var` must be variables (they are updated in place).
    pub fn new(
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
        eps: f64,
    ) -> Result<Self> {
        let channels = weight.dim(0)?;
        let fallback = BatchNorm::new(
            channels,
            running_mean.clone(),
            running_var.clone(),
            weight.clone(),
            bias.clone(),
            eps,
        )?;
        Ok(Self {
            weight,
            bias,
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            eps,
            fallback,
        })
    }

    /// Normalised `x` (batch statistics when training, running ones otherwise), then a ReLU
    /// if `relu`.
    pub fn forward(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        if !(train && fused_kernels_apply(x)) {
            let y = self.fallback.forward_t(x, train)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let (y, stats) = batch_norm_train(x, &self.weight, &self.bias, self.eps, relu)?;
        self.update_running(&stats, x)?;
        Ok(y)
    }

    /// `relu(self.forward(x) + residual)`.
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        if !(train && fused_kernels_apply(x)) || x.shape() != residual.shape() {
            return add_relu(&self.forward(x, train, false)?, residual);
        }
        let (y, stats) =
            batch_norm_add_relu_train(x, &self.weight, &self.bias, residual, self.eps)?;
        self.update_running(&stats, x)?;
        Ok(y)
    }

    /// `max_pool(relu(self.forward(x)), window)`.
    pub fn forward_relu_pool(&self, x: &Tensor, train: bool, window: Window) -> Result<Tensor> {
        if !(train && fused_kernels_apply(x) && bn_relu_pool::fits(x, window)) {
            return pool(&self.forward(x, train, true)?, window);
        }
        let (y, stats) = batch_norm_relu_pool_train(x, &self.weight, &self.bias, self.eps, window)?;
        self.update_running(&stats, x)?;
        Ok(y)
    }

    /// PyTorch's running-statistics update from the batch `stats` (`[mean; c]` then
    /// `[var; c]`, biased) of `x`.
    fn update_running(&self, stats: &[f32], x: &Tensor) -> Result<()> {
        let channels = self.weight.dim(0)?;
        let (n, _, h, w) = x.dims4()?;
        let count = (n * h * w) as f32;
        let device = x.device();
        let mean = Tensor::from_slice(&stats[..channels], channels, device)?;
        let unbiased = count / (count - 1.0).max(1.0);
        let var = (Tensor::from_slice(&stats[channels..2 * channels], channels, device)?
            * f64::from(unbiased))?;
        self.running_mean
            .set(&((self.running_mean.as_tensor() * (1.0 - MOMENTUM))? + (mean * MOMENTUM)?)?)?;
        self.running_var
            .set(&((self.running_var.as_tensor() * (1.0 - MOMENTUM))? + (var * MOMENTUM)?)?)?;
        Ok(())
    }
}

/// The fused kernels take float32 `[n, c, h, w]` on the CPU.
fn fused_kernels_apply(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 4
}

#[cfg(test)]
impl BatchNorm2d {
    /// A layer around `weight` and `bias` with running mean 0 and variance 1.
    pub(crate) fn fresh(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let c = weight.dim(0)?;
        let dev = weight.device();
        Self::new(
            weight.clone(),
            bias.clone(),
            Var::zeros(c, DType::F32, dev)?.as_tensor().clone(),
            Var::ones(c, DType::F32, dev)?.as_tensor().clone(),
            1e-5,
        )
    }

    /// The running mean and variance.
    pub(crate) fn running(&self) -> (Tensor, Tensor) {
        (
            self.running_mean.as_tensor().clone(),
            self.running_var.as_tensor().clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    use crate::engine::ops::cpu_storage::relative;

    fn layer(c: usize, dev: &Device) -> Result<(BatchNorm2d, Var, Var)> {
        let weight = Var::from_tensor(&Tensor::randn(1f32, 0.3, c, dev)?)?;
        let bias = Var::from_tensor(&Tensor::randn(0f32, 0.3, c, dev)?)?;
        let mean = Var::from_tensor(&Tensor::zeros(c, DType::F32, dev)?)?;
        let var = Var::from_tensor(&Tensor::ones(c, DType::F32, dev)?)?;
        let bn = BatchNorm2d::new(
            weight.as_tensor().clone(),
            bias.as_tensor().clone(),
            mean.as_tensor().clone(),
            var.as_tensor().clone(),
            1e-5,
        )?;
        Ok((bn, weight, bias))
    }

    /// Output, gradients and running statistics of the fused kernel against candle_nn's
    /// BatchNorm followed by Candle's relu, both built from differentiable tensor ops.
    #[test]
    fn matches_candle_nn_with_and_without_relu() -> Result<()> {
        let dev = Device::Cpu;
        for (shape, relu) in [
            ((4, 3, 5, 6), true),
            ((2, 3, 9, 9), true),
            ((3, 5, 1, 1), false),
            ((3, 2, 7, 4), false),
        ] {
            let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, shape, &dev)? + 0.5)?)?;
            let (ours, w1, b1) = layer(shape.1, &dev)?;
            let (theirs, w2, b2) = layer(shape.1, &dev)?;
            w2.set(w1.as_tensor())?;
            b2.set(b1.as_tensor())?;
            let y_ours = ours.forward(&x, true, relu)?;
            let y_theirs = theirs.fallback.forward_t(&x, true)?;
            let y_theirs = if relu { y_theirs.relu()? } else { y_theirs };
            assert!(relative(&y_ours, &y_theirs)? < 1e-5);
            let weights = Tensor::randn(0f32, 1.0, shape, &dev)?;
            let g_ours = (y_ours * &weights)?.sum_all()?.backward()?;
            let g_theirs = (y_theirs * &weights)?.sum_all()?.backward()?;
            for (name, a, b) in [("x", &x, &x), ("weight", &w1, &w2), ("bias", &b1, &b2)] {
                let error = relative(g_ours.get(a).unwrap(), g_theirs.get(b).unwrap())?;
                assert!(
                    error < 1e-4,
                    "{shape:?} relu {relu}: {name} gradient {error}"
                );
            }
            let fallback_running = (
                theirs.fallback.running_mean().clone(),
                theirs.fallback.running_var().clone(),
            );
            for (a, b) in [
                (&ours.running_mean, &fallback_running.0),
                (&ours.running_var, &fallback_running.1),
            ] {
                assert!(relative(a.as_tensor(), b)? < 1e-5);
            }
        }
        Ok(())
    }
}
