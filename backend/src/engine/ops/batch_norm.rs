//! Batch normalisation over `[n, c, h, w]`, optionally followed by a ReLU, as one CPU kernel.
//!
//! In training, candle_nn's BatchNorm is a dozen tensor ops (transpose, copy, two means,
//! broadcasts), each a pass over the activations forward and more backward; with the ReLU
//! after it, element-wise passes were half of a CNN step on the CPU. Here the forward pass is
//! one pass for the statistics and one for the output, the backward pass the same, with
//! the running statistics left to the layer ([`crate::engine::nn::BatchNorm2d`]), which
//! also picks candle_nn's BatchNorm for evaluation and other devices. Its test compares
//! this kernel with candle_nn's BatchNorm, the slow reference.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::cpu_storage::{contiguous_f32, par_build};

/// Batch normalisation of `x` (`[n, c, h, w]`, float32, on the CPU) with its batch
/// statistics, then a ReLU if `relu`. Returns the output and the batch mean and biased
/// variance per channel (`[mean; c]` then `[var; c]`), for the running statistics.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Vec<f32>)> {
    let stats = Arc::new(Mutex::new(Vec::new()));
    let op = Normalize {
        eps,
        relu,
        stats: stats.clone(),
    };
    let y = x.contiguous()?.apply_op3(weight, bias, op)?;
    let stats = stats.lock().expect("no panics while held").clone();
    Ok((y, stats))
}

/// Over one plane: the sum of `g` and of `g * (x - mean)`, `g` zeroed where the ReLU output
/// `y` is (if `relu`).
fn plane_sums(grad: &[f32], x: &[f32], y: &[f32], mean: f32, relu: bool) -> (f32, f32) {
    Arch::new().dispatch(PlaneSums {
        grad,
        x,
        y: relu.then_some(y),
        mean,
    })
}

/// [`plane_sums`] in explicit SIMD: LLVM leaves these reductions scalar (perf annotate, also
/// with AVX2 enabled), and they were 14% of a max-pool CNN step.
struct PlaneSums<'a> {
    grad: &'a [f32],
    x: &'a [f32],
    y: Option<&'a [f32]>,
    mean: f32,
}

impl WithSimd for PlaneSums<'_> {
    type Output = (f32, f32);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (f32, f32) {
        let (grad, grad_tail) = S::as_simd_f32s(self.grad);
        let (x, x_tail) = S::as_simd_f32s(self.x);
        let (zero, mean) = (simd.splat_f32s(0.0), simd.splat_f32s(self.mean));
        let (mut sg, mut sgx) = (zero, zero);
        let mut add = |g, x| {
            sg = simd.add_f32s(sg, g);
            sgx = simd.mul_add_e_f32s(g, simd.sub_f32s(x, mean), sgx);
        };
        match self.y {
            Some(y) => {
                for ((&g, &x), &y) in grad.iter().zip(x).zip(S::as_simd_f32s(y).0) {
                    add(
                        simd.select_f32s(simd.less_than_or_equal_f32s(y, zero), zero, g),
                        x,
                    );
                }
            }
            None => grad.iter().zip(x).for_each(|(&g, &x)| add(g, x)),
        }
        let (mut a, mut b) = (simd.reduce_sum_f32s(sg), simd.reduce_sum_f32s(sgx));
        let y_tail = self.y.map(|y| &y[y.len() - grad_tail.len()..]);
        for (i, (&g, &x)) in grad_tail.iter().zip(x_tail).enumerate() {
            let g = if y_tail.is_some_and(|y| y[i] <= 0.0) {
                0.0
            } else {
                g
            };
            a += g;
            b += g * (x - self.mean);
        }
        (a, b)
    }
}

/// Sum and sum of squared deviations from `center` of one plane, in explicit SIMD (see
/// [`PlaneSums`]).
struct PlaneMoments<'a> {
    x: &'a [f32],
    center: f32,
}

impl WithSimd for PlaneMoments<'_> {
    type Output = (f32, f32);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (f32, f32) {
        let (x, tail) = S::as_simd_f32s(self.x);
        let center = simd.splat_f32s(self.center);
        let (mut s, mut q) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
        for &x in x {
            let d = simd.sub_f32s(x, center);
            s = simd.add_f32s(s, d);
            q = simd.mul_add_e_f32s(d, d, q);
        }
        let (mut a, mut b) = (simd.reduce_sum_f32s(s), simd.reduce_sum_f32s(q));
        for &v in tail {
            let d = v - self.center;
            a += d;
            b += d * d;
        }
        (a, b)
    }
}

/// Per channel: the mean and biased variance of `x` (`[n, c, plane]`), in double precision.
pub(super) fn moments(x: &[f32], n: usize, c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            // Sums of deviations from a value of the channel keep float32 lanes accurate.
            let center = x[ch * plane];
            let (mut s, mut q) = (0f64, 0f64);
            for b in 0..n {
                let start = (b * c + ch) * plane;
                let (a, b) = Arch::new().dispatch(PlaneMoments {
                    x: &x[start..start + plane],
                    center,
                });
                s += f64::from(a);
                q += f64::from(b);
            }
            let count = (n * plane) as f64;
            let shift = s / count;
            let var = (q / count - shift * shift).max(0.0);
            ((f64::from(center) + shift) as f32, var as f32)
        })
        .unzip()
}

/// Per channel, `(scale, shift)` of the normalisation `x * scale + shift`.
pub(super) fn affine(
    weight: &[f32],
    bias: &[f32],
    (mean, var): (&[f32], &[f32]),
    eps: f64,
) -> Vec<(f32, f32)> {
    (0..weight.len())
        .map(|ch| {
            let scale = weight[ch] / (var[ch] + eps as f32).sqrt();
            (scale, bias[ch] - mean[ch] * scale)
        })
        .collect()
}

/// `x` (`[n, c, plane]`) normalised by each channel's `affine`, plus `residual` where given,
/// then a ReLU if `relu`; planes in parallel.
pub(super) fn normalize(
    x: &[f32],
    plane: usize,
    affine: &[(f32, f32)],
    residual: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    par_build(x.len(), plane, |i, y| {
        let (scale, shift) = affine[i % affine.len()];
        let at = i * plane..(i + 1) * plane;
        let activate = |v: f32| if relu { v.max(0.0) } else { v };
        match residual {
            Some(residual) => {
                for ((y, &x), &r) in y.iter_mut().zip(&x[at.clone()]).zip(&residual[at]) {
                    *y = activate(x * scale + shift + r);
                }
            }
            None => {
                for (y, &x) in y.iter_mut().zip(&x[at]) {
                    *y = activate(x * scale + shift);
                }
            }
        }
    })
}

/// `(x, weight, bias) -> y`; records the batch mean and variance in `stats` (`[mean; c]`
/// then `[var; c]`) for the running statistics and the backward pass.
struct Normalize {
    eps: f64,
    relu: bool,
    stats: Arc<Mutex<Vec<f32>>>,
}

impl CustomOp3 for Normalize {
    fn name(&self) -> &'static str {
        "batch-norm-2d"
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
        let (n, c, h, w) = xl.shape().dims4()?;
        let plane = h * w;
        let (mean, var) = moments(x, n, c, plane);
        let affine = affine(weight, bias, (&mean, &var), self.eps);
        let y = normalize(x, plane, &affine, None, self.relu);
        *self.stats.lock().expect("no panics while held") = [mean, var].concat();
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats.lock().expect("no panics while held").clone();
        let op = NormalizeGrad {
            eps: self.eps,
            relu: self.relu,
            stats,
            weight: weight.to_vec1()?,
        };
        split_gradients(&grad.contiguous()?.apply_op3_no_bwd(x, y, &op)?, x)
    }
}

/// The gradients of `x`, the weight and the bias from a backward kernel's one output
/// `[dx; dweight; dbias]` (a custom op has a single output).
#[allow(clippy::type_complexity)]
pub(super) fn split_gradients(
    flat: &Tensor,
    x: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let (size, c) = (x.elem_count(), x.dim(1)?);
    let dx = flat.narrow(0, 0, size)?.reshape(x.shape())?;
    let dweight = flat.narrow(0, size, c)?;
    let dbias = flat.narrow(0, size + c, c)?;
    Ok((x.track_op().then_some(dx), Some(dweight), Some(dbias)))
}

/// `1 / sqrt(var + eps)` per channel.
pub(super) fn inv_std(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter().map(|v| 1.0 / (v + eps as f32).sqrt()).collect()
}

/// `[dx; dweight; dbias]`: `plane_grad(p, dx)` writes input plane `p` of dx (`planes` of
/// `plane` values, chunks on the rayon threads); the sums of `g * x_hat` and of `g` per
/// channel are the weight's and the bias's gradients.
pub(super) fn flat_gradients(
    (planes, plane): (usize, usize),
    (sum_gx, sum_g): (&[f64], &[f64]),
    plane_grad: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    // The parameters' gradients follow the planes of dx: chunks from `planes` on.
    let dparams: Vec<f32> = sum_gx.iter().chain(sum_g).map(|&s| s as f32).collect();
    par_build(planes * plane + dparams.len(), plane, |p, dx| {
        if p < planes {
            plane_grad(p, dx);
        } else {
            let at = (p - planes) * plane;
            dx.copy_from_slice(&dparams[at..at + dx.len()]);
        }
    })
}

/// `(grad_y, x, y) -> [grad_x, grad_weight, grad_bias]` flattened into one vector.
pub(super) struct NormalizeGrad {
    pub(super) eps: f64,
    pub(super) relu: bool,
    pub(super) stats: Vec<f32>,
    pub(super) weight: Vec<f32>,
}

impl CustomOp3 for NormalizeGrad {
    fn name(&self) -> &'static str {
        "batch-norm-2d-grad"
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
        let (n, c, h, w) = xl.shape().dims4()?;
        let plane = h * w;
        let (mean, var) = self.stats.split_at(c);
        let inv_std = inv_std(var, self.eps);
        let relu = self.relu;
        // Per channel: sums of g and of g * x_hat, g being the gradient that reaches the
        // normalisation (zero where the ReLU clipped).
        let (sum_g, sum_gx): (Vec<f64>, Vec<f64>) = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut sg, mut sgx) = (0f64, 0f64);
                for b in 0..n {
                    let at = (b * c + ch) * plane..(b * c + ch + 1) * plane;
                    let (a, b) =
                        plane_sums(&grad[at.clone()], &x[at.clone()], &y[at], mean[ch], relu);
                    sg += f64::from(a);
                    // sum g (x - mean) inv_std
                    sgx += f64::from(b) * f64::from(inv_std[ch]);
                }
                (sg, sgx)
            })
            .unzip();
        let count = (n * plane) as f64;
        let out = flat_gradients((n * c, plane), (&sum_gx, &sum_g), |p, dx| {
            let ch = p % c;
            let (mean_g, mean_gx) = ((sum_g[ch] / count) as f32, (sum_gx[ch] / count) as f32);
            let scale = self.weight[ch] * inv_std[ch];
            let (m, s) = (mean[ch], inv_std[ch]);
            let at = p * plane..(p + 1) * plane;
            let (grad, x, y) = (&grad[at.clone()], &x[at.clone()], &y[at]);
            for (((d, &g), &x), &y) in dx.iter_mut().zip(grad).zip(x).zip(y) {
                let g = if relu && y <= 0.0 { 0.0 } else { g };
                *d = scale * (g - mean_g - (x - m) * s * mean_gx);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}
