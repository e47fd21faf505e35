//! The optimisers' updates as in-place CPU kernels, each one pass over its tensors.
//!
//! Written as tensor ops, an Adam step is about fifteen element-wise passes over every
//! parameter, each allocating its result (ResNet18 has 11M parameters per branch). Here the
//! moments and the parameter are updated where they lie, in three passes: 3% of a ResNet18
//! step on the CPU (perf, 2026-11-29). Other devices use the tensor ops in `optim.rs`.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use rayon::prelude::*;

use super::cpu_storage::{contiguous_f32, contiguous_f32_mut};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Whether the in-place kernels apply: f32 tensors of one shape in the CPU's memory, laid
/// out flat.
pub fn applies(tensors: &[&Tensor]) -> bool {
    tensors.iter().all(|t| {
        t.device().is_cpu()
            && t.dtype() == candle_core::DType::F32
            && t.is_contiguous()
            && t.shape() == tensors[0].shape()
    })
}

/// `moment = decay * moment + weight * g` (or `g^2` for a second moment), where
/// `g = grad + l2 * param` is the gradient with L2 weight decay.
pub struct Moment {
    /// How much of the old moment is kept (beta).
    pub decay: f32,
    /// The new gradient's weight (1 - beta for Adam, 1 for SGD's momentum).
    pub weight: f32,
    /// Whether the moment averages `g^2` (Adam's second moment).
    pub squared: bool,
    /// L2 weight decay folded into the gradient.
    pub l2: f32,
}

impl Moment {
    /// Updates `moment` in place from `grad` and `param`.
    pub fn update(&self, moment: &Tensor, grad: &Tensor, param: &Tensor) -> Result<()> {
        moment.inplace_op3(grad, param, self)
    }
}

impl InplaceOp3 for Moment {
    fn name(&self) -> &'static str {
        "optimizer-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<()> {
        let (moment, grad, param) = (
            contiguous_f32_mut(dst, dst_l)?,
            contiguous_f32(gs, gl)?,
            contiguous_f32(ps, pl)?,
        );
        let Self {
            decay,
            weight,
            squared,
            l2,
        } = *self;
        moment
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK).zip(param.par_chunks(CHUNK)))
            .for_each(|(moment, (grad, param))| {
                for ((m, &g), &p) in moment.iter_mut().zip(grad).zip(param) {
                    let g = g + l2 * p;
                    *m = decay * *m + weight * if squared { g * g } else { g };
                }
            });
        Ok(())
    }
}

/// Adam's step from updated moments `m` and `v`:
/// `param = param * (1 - lr * decay) - lr * (m / c1) / (sqrt(v / c2) + eps)`, with the bias
/// corrections `c1 = 1 - beta1^t`, `c2 = 1 - beta2^t` and AdamW's decoupled weight decay.
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// First moment's bias correction, `1 - beta1^t`.
    pub c1: f32,
    /// Second moment's bias correction, `1 - beta2^t`.
    pub c2: f32,
    /// AdamW's decoupled weight decay (0 for Adam).
    pub decay: f32,
}

impl AdamStep {
    /// Updates `param` in place from the moments `m` and `v`.
    pub fn apply(&self, param: &Tensor, m: &Tensor, v: &Tensor) -> Result<()> {
        param.inplace_op3(m, v, self)
    }
}

impl InplaceOp3 for AdamStep {
    fn name(&self) -> &'static str {
        "adam-step"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let (param, m, v) = (
            contiguous_f32_mut(dst, dst_l)?,
            contiguous_f32(ms, ml)?,
            contiguous_f32(vs, vl)?,
        );
        let Self {
            lr,
            eps,
            c1,
            c2,
            decay,
        } = *self;
        let keep = 1.0 - lr * decay;
        param
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(param, (m, v))| {
                for ((p, &m), &v) in param.iter_mut().zip(m).zip(v) {
                    *p = *p * keep - lr * (m / c1) / ((v / c2).sqrt() + eps);
                }
            });
        Ok(())
    }
}

/// SGD's step along `direction`: `param = param - lr * (direction + l2 * param)`; `l2` is
/// the weight decay when no momentum buffer already includes it.
pub struct SgdStep {
    /// Learning rate.
    pub lr: f32,
    /// L2 weight decay added to the direction.
    pub l2: f32,
}

impl SgdStep {
    /// Updates `param` in place along `direction`.
    pub fn apply(&self, param: &Tensor, direction: &Tensor) -> Result<()> {
        param.inplace_op2(direction, self)
    }
}

impl InplaceOp2 for SgdStep {
    fn name(&self) -> &'static str {
        "sgd-step"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<()> {
        let (param, direction) = (contiguous_f32_mut(dst, dst_l)?, contiguous_f32(ds, dl)?);
        let Self { lr, l2 } = *self;
        param
            .par_chunks_mut(CHUNK)
            .zip(direction.par_chunks(CHUNK))
            .for_each(|(param, direction)| {
                for (p, &d) in param.iter_mut().zip(direction) {
                    *p -= lr * (d + l2 * *p);
                }
            });
        Ok(())
    }
}
