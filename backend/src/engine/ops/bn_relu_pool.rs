//! `max_pool2d(relu(batch_norm(x)))` as one CPU kernel each way: how every block of the
//! max-pool CNN ends (2x2 tiles) and ResNet's stem (3x3 windows, stride 2, padding 1).
//!
//! Apart, the full-resolution normalised activations are written and pooled, and backward
//! the pool scatters its gradient into a full-resolution tensor, Candle accumulates it (a
//! zero-filled tensor plus an add) and batch norm reduces it: four passes over the largest
//! tensors of the model. Fused, the forward pass writes only the pooled output (and each
//! window's maximum, for the backward pass); the backward pass reduces over the pooled
//! gradient (a quarter of the values for 2x2 windows) and writes the input gradient once.
//! The layer ([`crate::engine::nn::BatchNorm2d`]) uses the separate ops for evaluation and
//! other devices; the tests check this kernel against them.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::batch_norm::{affine, flat_gradients, inv_std, moments, split_gradients};
use super::cpu_storage::{contiguous_f32, par_build};
use super::max_pool::Window;

/// `max_pool(relu(batch_norm(x)), window)` with `x`'s batch statistics (`[n, c, h, w]`,
/// float32, on the CPU; the window must fit the padded plane, see [`fits`]). Returns the
/// output and the batch mean and biased variance (`[mean; c]` then `[var; c]`).
pub fn batch_norm_relu_pool_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    window: Window,
) -> Result<(Tensor, Vec<f32>)> {
    let saved = Arc::new(Mutex::new(Saved::default()));
    let op = NormalizeReluPool {
        eps,
        window,
        saved: saved.clone(),
    };
    let y = x.contiguous()?.apply_op3(weight, bias, op)?;
    let stats = saved.lock().expect("no panics while held").stats.clone();
    Ok((y, stats))
}

/// Whether the kernel handles `window` over `x`: `x` is `[n, c, h, w]` and the window fits
/// inside the padded plane with less padding than its side.
pub fn fits(x: &Tensor, window: Window) -> bool {
    x.dims4().is_ok_and(|(_, _, h, w)| {
        let (kh, kw) = window.size;
        let p = 2 * window.padding;
        window.padding < kh.min(kw) && (1..=h + p).contains(&kh) && (1..=w + p).contains(&kw)
    })
}

/// What the forward pass leaves for the backward pass: the batch statistics (`[mean; c]`
/// then `[var; c]`) and, per output, the index in its input plane of its window's first
/// maximum.
#[derive(Default, Clone)]
struct Saved {
    stats: Vec<f32>,
    argmax: Vec<u32>,
}

/// The input planes' and the output planes' geometry.
#[derive(Clone, Copy)]
struct Planes {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    /// Values per input plane.
    input: usize,
    /// Output columns and values per output plane.
    oh: usize,
    ow: usize,
    output: usize,
}

impl Planes {
    fn new(x: &Layout, window: Window) -> Result<Self> {
        let (n, c, h, w) = x.shape().dims4()?;
        let (oh, ow) = window.output(h, w);
        Ok(Self {
            n,
            c,
            h,
            w,
            input: h * w,
            oh,
            ow,
            output: oh * ow,
        })
    }
}

/// `(x, weight, bias) -> max_pool2d(relu(batch_norm(x)))`.
struct NormalizeReluPool {
    eps: f64,
    window: Window,
    saved: Arc<Mutex<Saved>>,
}

impl CustomOp3 for NormalizeReluPool {
    fn name(&self) -> &'static str {
        "batch-norm-relu-max-pool-2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, weight, bias) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(ws, wl)?,
            contiguous_f32(bs, bl)?,
        );
        let g = Planes::new(xl, self.window)?;
        let (mean, var) = moments(x, g.n, g.c, g.input);
        let affine = affine(weight, bias, (&mean, &var), self.eps);
        // The normalisation is monotonic per channel but rounds; the maximum is taken over
        // the normalised values, as the separate ops do.
        let argmax: Vec<u32> = par_build(g.n * g.c * g.output, g.output, |p, argmax| {
            let (scale, shift) = affine[p % g.c];
            let plane = &x[p * g.input..(p + 1) * g.input];
            for (o, best) in argmax.iter_mut().enumerate() {
                let at = (o / g.ow, o % g.ow);
                let normalized = |x| x * scale + shift;
                *best = self.window.first_max(plane, (g.h, g.w), at, normalized) as u32;
            }
        });
        let y = par_build(argmax.len(), g.output, |p, y| {
            let (scale, shift) = affine[p % g.c];
            let plane = &x[p * g.input..(p + 1) * g.input];
            let argmax = &argmax[p * g.output..(p + 1) * g.output];
            for (y, &at) in y.iter_mut().zip(argmax) {
                *y = (plane[at as usize] * scale + shift).max(0.0);
            }
        });
        *self.saved.lock().expect("no panics while held") = Saved {
            stats: [mean, var].concat(),
            argmax,
        };
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.c, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = NormalizeReluPoolGrad {
            eps: self.eps,
            window: self.window,
            saved: self.saved.lock().expect("no panics while held").clone(),
            weight: weight.to_vec1()?,
        };
        split_gradients(&grad.contiguous()?.apply_op3_no_bwd(x, y, &op)?, x)
    }
}

/// `(grad_y, x, y) -> [grad_x, grad_weight, grad_bias]` flattened into one vector.
struct NormalizeReluPoolGrad {
    eps: f64,
    window: Window,
    saved: Saved,
    weight: Vec<f32>,
}

impl CustomOp3 for NormalizeReluPoolGrad {
    fn name(&self) -> &'static str {
        "batch-norm-relu-max-pool-2d-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (grad, x, y) = (
            contiguous_f32(gs, gl)?,
            contiguous_f32(xs, xl)?,
            contiguous_f32(ys, yl)?,
        );
        let g = Planes::new(xl, self.window)?;
        let (n, c) = (g.n, g.c);
        let argmax = &self.saved.argmax;
        let (mean, var) = self.saved.stats.split_at(c);
        let inv_std = inv_std(var, self.eps);
        // Only each window's maximum, where the ReLU passed, receives gradient: the sums of
        // that gradient `g` and of `g * x_hat` per channel run over the outputs alone.
        let (sum_g, sum_gx): (Vec<f64>, Vec<f64>) = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut sg, mut sgx) = (0f64, 0f64);
                for b in 0..n {
                    let p = b * c + ch;
                    let outputs = p * g.output..(p + 1) * g.output;
                    let plane = &x[p * g.input..(p + 1) * g.input];
                    let (mut a, mut b) = (0f32, 0f32);
                    for ((&dy, &y), &at) in grad[outputs.clone()]
                        .iter()
                        .zip(&y[outputs.clone()])
                        .zip(&argmax[outputs])
                    {
                        if y > 0.0 {
                            a += dy;
                            b += dy * (plane[at as usize] - mean[ch]);
                        }
                    }
                    sg += f64::from(a);
                    sgx += f64::from(b) * f64::from(inv_std[ch]);
                }
                (sg, sgx)
            })
            .unzip();
        let count = (n * g.input) as f64;
        let out = flat_gradients((n * c, g.input), (&sum_gx, &sum_g), |p, dx| {
            let ch = p % c;
            let (mean_g, mean_gx) = ((sum_g[ch] / count) as f32, (sum_gx[ch] / count) as f32);
            let scale = self.weight[ch] * inv_std[ch];
            // dx = scale * (g - mean_g - x_hat * mean_gx), g zero but at the maxima.
            let slope = -scale * inv_std[ch] * mean_gx;
            let offset = -scale * mean_g - slope * mean[ch];
            for (d, &x) in dx.iter_mut().zip(&x[p * g.input..(p + 1) * g.input]) {
                *d = x * slope + offset;
            }
            let outputs = p * g.output..(p + 1) * g.output;
            for ((&dy, &y), &at) in grad[outputs.clone()]
                .iter()
                .zip(&y[outputs.clone()])
                .zip(&argmax[outputs])
            {
                if y > 0.0 {
                    dx[at as usize] += scale * dy;
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::engine::nn::BatchNorm2d;
    use crate::engine::ops::cpu_storage::relative;
    use crate::engine::ops::max_pool::pool;

    /// Output, gradients (input, weight, bias) and running statistics against the separate
    /// kernels (batch norm + ReLU, then max pool; each checked against Candle in its own
    /// module), with windows that drop a row or column, 1-wide windows, overlapping padded
    /// windows, and a channel with a negative weight (the normalisation reverses the order
    /// of its values).
    #[test]
    fn matches_batch_norm_then_max_pool() -> Result<()> {
        let dev = Device::Cpu;
        for (shape, window) in [
            ((4, 3, 6, 8), Window::tiles((2, 2))),
            ((3, 2, 5, 7), Window::tiles((2, 2))),
            ((2, 3, 4, 5), Window::tiles((1, 2))),
            ((2, 2, 3, 3), Window::tiles((3, 3))),
            // ResNet's stem pool: overlapping windows (an input can be the maximum of
            // several), padding, odd and even sides.
            ((3, 3, 8, 8), Window::padded(3, 2, 1)),
            ((2, 2, 7, 6), Window::padded(3, 2, 1)),
        ] {
            let c = shape.1;
            let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, shape, &dev)? + 0.5)?)?;
            let mut w = Tensor::randn(1f32, 0.3, c, &dev)?.to_vec1::<f32>()?;
            w[0] = -w[0];
            let weight = Var::from_tensor(&Tensor::new(w, &dev)?)?;
            let bias = Var::from_tensor(&Tensor::randn(0f32, 0.3, c, &dev)?)?;
            let (fused, apart) = (
                BatchNorm2d::fresh(&weight, &bias)?,
                BatchNorm2d::fresh(&weight, &bias)?,
            );
            let y_fused = fused.forward_relu_pool(&x, true, window)?;
            let y_apart = pool(&apart.forward(&x, true, true)?, window)?;
            assert_eq!(y_fused.dims(), y_apart.dims());
            assert!(relative(&y_fused, &y_apart)? < 1e-6, "{shape:?} output");
            let probe = Tensor::randn(0f32, 1.0, y_fused.shape(), &dev)?;
            let g_fused = (y_fused * &probe)?.sum_all()?.backward()?;
            let g_apart = (y_apart * &probe)?.sum_all()?.backward()?;
            for (name, v) in [("x", &x), ("weight", &weight), ("bias", &bias)] {
                let error = relative(g_fused.get(v).unwrap(), g_apart.get(v).unwrap())?;
                assert!(
                    error < 1e-4,
                    "{shape:?} {window:?}: {name} gradient {error}"
                );
            }
            let (fused_mean, fused_var) = fused.running();
            let (apart_mean, apart_var) = apart.running();
            assert!(relative(&fused_mean, &apart_mean)? < 1e-6);
            assert!(relative(&fused_var, &apart_var)? < 1e-6);
        }
        Ok(())
    }

    /// Evaluation uses the running statistics, through the separate ops.
    #[test]
    fn evaluation_pools_the_running_normalisation() -> Result<()> {
        let dev = Device::Cpu;
        let weight = Tensor::new(&[1f32, -2.0], &dev)?;
        let bias = Tensor::new(&[0.5f32, 0.0], &dev)?;
        let bn = BatchNorm2d::fresh(&weight, &bias)?;
        let x = Tensor::arange(0f32, 16.0, &dev)?.reshape((1, 2, 2, 4))?;
        let y = bn.forward_relu_pool(&x, false, Window::tiles((2, 2)))?;
        // Running mean 0, variance 1: channel 0 is x + 0.5, channel 1 is -2x (all <= 0).
        let expected = [[[[5.5f32, 7.5]], [[0.0, 0.0]]]];
        assert!(relative(&y, &Tensor::new(&expected, &dev)?)? < 1e-4);
        Ok(())
    }
}
