//! Max pooling with non-overlapping windows (stride = window), as one CPU kernel each way.
//!
//! Candle's backward for max_pool2d upsamples the output, compares it with the input, pools
//! the mask and upsamples again: six passes over the activations. Here the backward pass
//! sends each output's gradient to the first maximum of its window, as PyTorch does.
//! Other devices use Candle's max_pool2d.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `x` `[n, c, h, w]` pooled by `(kh, kw)` windows with the same stride (the last partial
/// row or column of windows is dropped, as in PyTorch and Candle).
pub fn max_pool2d(x: &Tensor, (kh, kw): (usize, usize)) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return x.max_pool2d((kh, kw));
    }
    let (_, _, h, w) = x.dims4()?;
    if kh == 0 || kw == 0 || kh > h || kw > w {
        candle_core::bail!("max_pool2d: window {kh}x{kw} does not fit {h}x{w}");
    }
    x.contiguous()?.apply_op1(MaxPool { kh, kw })
}

#[derive(Clone, Copy)]
struct MaxPool {
    kh: usize,
    kw: usize,
}

impl MaxPool {
    /// Index within the input plane of the first maximum of output `(oy, ox)`'s window.
    fn argmax(&self, plane: &[f32], w: usize, oy: usize, ox: usize) -> usize {
        let mut best = oy * self.kh * w + ox * self.kw;
        if (self.kh, self.kw) == (2, 2) {
            // The common window, unrolled.
            let window = [best, best + 1, best + w, best + w + 1];
            for i in &window[1..] {
                if plane[*i] > plane[best] {
                    best = *i;
                }
            }
            return best;
        }
        for dy in 0..self.kh {
            let row = (oy * self.kh + dy) * w + ox * self.kw;
            for i in row..row + self.kw {
                if plane[i] > plane[best] {
                    best = i;
                }
            }
        }
        best
    }
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("max_pool2d expects contiguous tensors"),
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool-2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout)?;
        let (n, c, h, w) = layout.shape().dims4()?;
        let (oh, ow) = (h / self.kh, w / self.kw);
        let mut y = vec![0f32; n * c * oh * ow];
        y.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(h * w))
            .for_each(|(y, plane)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        y[oy * ow + ox] = plane[self.argmax(plane, w, oy, ox)];
                    }
                }
            });
        Ok((CpuStorage::F32(y), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?
                .apply_op2_no_bwd(x, &MaxPoolGrad(*self))?,
        ))
    }
}

/// `(grad_y, x) -> grad_x`.
struct MaxPoolGrad(MaxPool);

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max-pool-2d-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (grad, x) = (contiguous(gs, gl)?, contiguous(xs, xl)?);
        let (_, _, h, w) = xl.shape().dims4()?;
        let (oh, ow) = (h / self.0.kh, w / self.0.kw);
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .zip(grad.par_chunks(oh * ow))
            .for_each(|((dx, plane), grad)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        dx[self.0.argmax(plane, w, oy, ox)] += grad[oy * ow + ox];
                    }
                }
            });
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Forward against Candle's max_pool2d; the gradient against a brute-force one (every
    /// output's gradient lands on its window's maximum). Candle's own backward is not a
    /// reference: it multiplies by the pooled max-mask, 1/(kh kw) for a single maximum,
    /// where it should divide by the number of maxima, so its gradients are 4x too small
    /// for 2x2 windows.
    #[test]
    fn matches_candle_forward_and_sends_gradients_to_the_maximum() -> Result<()> {
        let dev = Device::Cpu;
        for ((n, c, h, w), (kh, kw)) in [
            ((2, 3, 8, 6), (2, 2)),
            ((1, 2, 7, 5), (2, 2)),
            ((2, 2, 1, 6), (1, 2)),
        ] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, c, h, w), &dev)?)?;
            let ours = max_pool2d(&x, (kh, kw))?;
            let theirs = x.max_pool2d((kh, kw))?;
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            assert_eq!(flat(&ours)?, flat(&theirs)?);
            let weights = Tensor::randn(0f32, 1.0, ours.dims(), &dev)?;
            let grads = (ours * &weights)?.sum_all()?.backward()?;
            let (values, weights) = (flat(&x)?, flat(&weights)?);
            let (oh, ow) = (h / kh, w / kw);
            let mut expected = vec![0f32; values.len()];
            for plane in 0..n * c {
                for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                    let window = (0..kh).flat_map(|dy| {
                        (0..kw).map(move |dx| plane * h * w + (oy * kh + dy) * w + ox * kw + dx)
                    });
                    let best = window
                        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
                        .unwrap();
                    expected[best] += weights[(plane * oh + oy) * ow + ox];
                }
            }
            assert_eq!(flat(grads.get(&x).unwrap())?, expected);
        }
        Ok(())
    }

    #[test]
    fn ties_go_to_the_first_maximum() -> Result<()> {
        let x = Var::from_tensor(&Tensor::new(&[[[[1f32, 1.0], [0.0, 1.0]]]], &Device::Cpu)?)?;
        let grads = max_pool2d(&x, (2, 2))?.sum_all()?.backward()?;
        let g = grads.get(&x).unwrap().flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(g, [1.0, 0.0, 0.0, 0.0]);
        Ok(())
    }
}
