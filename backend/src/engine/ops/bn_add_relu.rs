//! `relu(batch_norm(x) + residual)` as one CPU kernel each way: how every ResNet block ends.
//!
//! Apart, the normalised activations are written, read again by the residual add, and
//! backward Candle accumulates their gradient (a zero-filled tensor plus an add) before batch
//! norm reduces it. Fused, the forward pass writes the block's output only, and the backward
//! pass is batch norm's own with the ReLU's mask taken from that output. The layer
//! ([`crate::engine::nn::BatchNorm2d`]) uses the separate ops for evaluation and other
//! devices; the test checks this kernel against them.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::add_relu::PassPositive;
use super::batch_norm::{affine, moments, normalize, NormalizeGrad};
use super::cpu_storage::contiguous_f32;

/// `relu(batch_norm(x) + residual)` with `x`'s batch statistics (`x` and `residual` of
/// the same shape `[n, c, h, w]`, float32, on the CPU). Returns the output and the batch
/// mean and biased variance (`[mean; c]` then `[var; c]`).
pub fn batch_norm_add_relu_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    eps: f64,
) -> Result<(Tensor, Vec<f32>)> {
    let stats = Arc::new(Mutex::new(Vec::new()));
    let op = NormalizeAddRelu {
        eps,
        stats: stats.clone(),
    };
    // A custom op has three inputs: the weight and the bias travel as one tensor, whose
    // gradient Candle splits back.
    let params = Tensor::cat(&[weight, bias], 0)?;
    let y = x
        .contiguous()?
        .apply_op3(&params, &residual.contiguous()?, op)?;
    let stats = stats.lock().expect("no panics while held").clone();
    Ok((y, stats))
}

/// `(x, [weight; bias], residual) -> y`; records the batch mean and variance in `stats`
/// (`[mean; c]` then `[var; c]`).
struct NormalizeAddRelu {
    eps: f64,
    stats: Arc<Mutex<Vec<f32>>>,
}

impl CustomOp3 for NormalizeAddRelu {
    fn name(&self) -> &'static str {
        "batch-norm-2d-add-relu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, params, residual) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(ps, pl)?,
            contiguous_f32(rs, rl)?,
        );
        let (n, c, h, w) = xl.shape().dims4()?;
        let plane = h * w;
        let (weight, bias) = params.split_at(c);
        let (mean, var) = moments(x, n, c, plane);
        let affine = affine(weight, bias, (&mean, &var), self.eps);
        let y = normalize(x, plane, &affine, Some(residual), true);
        *self.stats.lock().expect("no panics while held") = [mean, var].concat();
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        residual: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = x.dim(1)?;
        let grad = grad.contiguous()?;
        // The gradient past the ReLU goes to the residual as it is, and into batch norm's
        // backward, whose ReLU mask (the output's zeros) is this one's.
        let op = NormalizeGrad {
            eps: self.eps,
            relu: true,
            stats: self.stats.lock().expect("no panics while held").clone(),
            weight: params.narrow(0, 0, c)?.to_vec1()?,
        };
        let flat = grad.apply_op3_no_bwd(x, y, &op)?;
        // [dx; dweight; dbias]: the last 2c values are the parameters' gradient as laid out.
        let size = x.elem_count();
        let dx = flat.narrow(0, 0, size)?.reshape(x.shape())?;
        let dparams = flat.narrow(0, size, 2 * c)?;
        let dresidual = grad.apply_op2_no_bwd(y, &PassPositive)?;
        Ok((
            x.track_op().then_some(dx),
            Some(dparams),
            residual.track_op().then_some(dresidual),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::engine::nn::BatchNorm2d;
    use crate::engine::ops::add_relu::add_relu;
    use crate::engine::ops::cpu_storage::relative;

    /// Output, gradients (input, weight, bias, residual) and running statistics against the
    /// separate kernels (batch norm, then the residual add + ReLU; each checked against
    /// Candle in its own module), with a negative weight.
    #[test]
    fn matches_batch_norm_then_add_relu() -> Result<()> {
        let dev = Device::Cpu;
        for shape in [(4, 3, 5, 6), (2, 5, 4, 4), (3, 2, 1, 7)] {
            let c = shape.1;
            let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, shape, &dev)? + 0.5)?)?;
            let residual = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev)?)?;
            let mut w = Tensor::randn(1f32, 0.3, c, &dev)?.to_vec1::<f32>()?;
            w[0] = -w[0];
            let weight = Var::from_tensor(&Tensor::new(w, &dev)?)?;
            let bias = Var::from_tensor(&Tensor::randn(0f32, 0.3, c, &dev)?)?;
            let (fused, apart) = (
                BatchNorm2d::fresh(&weight, &bias)?,
                BatchNorm2d::fresh(&weight, &bias)?,
            );
            let y_fused = fused.forward_add_relu(&x, &residual, true)?;
            let y_apart = add_relu(&apart.forward(&x, true, false)?, &residual)?;
            assert!(relative(&y_fused, &y_apart)? < 1e-6, "{shape:?} output");
            let probe = Tensor::randn(0f32, 1.0, shape, &dev)?;
            let g_fused = (y_fused * &probe)?.sum_all()?.backward()?;
            let g_apart = (y_apart * &probe)?.sum_all()?.backward()?;
            for (name, v) in [
                ("x", &x),
                ("weight", &weight),
                ("bias", &bias),
                ("residual", &residual),
            ] {
                let error = relative(g_fused.get(v).unwrap(), g_apart.get(v).unwrap())?;
                assert!(error < 1e-4, "{shape:?}: {name} gradient {error}");
            }
            let (fused_mean, fused_var) = fused.running();
            let (apart_mean, apart_var) = apart.running();
            assert!(relative(&fused_mean, &apart_mean)? < 1e-6);
            assert!(relative(&fused_var, &apart_var)? < 1e-6);
        }
        Ok(())
    }
}
