//! `relu(a + b)`, a residual connection's join, as one CPU kernel each way (Candle's form
//! is an add, a relu, and a comparison, a cast and a multiply backward). Other devices use
//! Candle's ops.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::cpu_storage::{contiguous_f32, par_build};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `relu(a + b)` for tensors of one shape: one kernel each way on the CPU in float32,
/// Candle's ops elsewhere.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !a.device().is_cpu() || a.dtype() != DType::F32 || a.shape() != b.shape() {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// `f` of the pairs of `a` and `b`, in parallel chunks.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    par_build(a.len(), CHUNK, |i, out| {
        let at = i * CHUNK..i * CHUNK + out.len();
        for ((o, &a), &b) in out.iter_mut().zip(&a[at.clone()]).zip(&b[at]) {
            *o = f(a, b);
        }
    })
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let y = zip_map(a, b, |a, b| (a + b).max(0.0));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?.apply_op2_no_bwd(y, &PassPositive)?;
        Ok((a.track_op().then(|| g.clone()), b.track_op().then_some(g)))
    }
}

/// `(grad, y) -> grad` where `y > 0`, else 0.
pub(super) struct PassPositive;

impl CustomOp2 for PassPositive {
    fn name(&self) -> &'static str {
        "add-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (grad, y) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let out = zip_map(grad, y, |g, y| if y > 0.0 { g } else { 0.0 });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candles_add_and_relu() -> Result<()> {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev)?)?;
        let weights = Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev)?;
        let ours = add_relu(&a, &b)?;
        let theirs = (a.as_tensor() + b.as_tensor())?.relu()?;
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        assert_eq!(flat(&ours)?, flat(&theirs)?);
        let g_ours = (ours * &weights)?.sum_all()?.backward()?;
        let g_theirs = (theirs * &weights)?.sum_all()?.backward()?;
        for v in [&a, &b] {
            assert_eq!(
                flat(g_ours.get(v).unwrap())?,
                flat(g_theirs.get(v).unwrap())?
            );
        }
        Ok(())
    }
}
