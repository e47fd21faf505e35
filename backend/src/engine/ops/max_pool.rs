//! Max pooling as one CPU kernel each way: non-overlapping windows (the CNN's 2x2) and
//! ResNet's padded 3x3 stride-2 stem pool.
//!
//! Candle's backward for max_pool2d upsamples the output, compares it with the input, pools
//! the mask and upsamples again: six passes over the activations; it has none for windows
//! wider than the stride. Here the backward pass sends each output's gradient to the first
//! maximum of its window, as PyTorch does. Other devices use Candle's max_pool2d.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::cpu_storage::{contiguous_f32, par_build};

/// `x` `[n, c, h, w]` pooled by `(kh, kw)` windows with the same stride (the last partial
/// row or column of windows is dropped, as in PyTorch and Candle).
pub fn max_pool2d(x: &Tensor, (kh, kw): (usize, usize)) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if kh == 0 || kw == 0 || kh > h || kw > w {
        candle_core::bail!("max_pool2d: window {kh}x{kw} does not fit {h}x{w}");
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return window_max(x, (kh, kw));
    }
    let pool = MaxPool {
        window: Window::tiles((kh, kw)),
        argmax: Default::default(),
    };
    x.contiguous()?.apply_op1(pool)
}

/// The same pool from differentiable ops, for other devices: the windows as two axes of a
/// reshape, reduced by `max` (whose backward is right, unlike Candle's max_pool2d's).
fn window_max(x: &Tensor, (kh, kw): (usize, usize)) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / kh, w / kw);
    x.narrow(2, 0, oh * kh)?
        .narrow(3, 0, ow * kw)?
        .reshape((n, c, oh, kh, ow, kw))?
        .max(5)?
        .max(3)
}

/// `x` pooled by `window`: tiles on any device ([`max_pool2d`]), other windows on the CPU.
pub fn pool(x: &Tensor, window: Window) -> Result<Tensor> {
    if window == Window::tiles(window.size) {
        return max_pool2d(x, window.size);
    }
    let (_, _, h, w) = x.dims4()?;
    let ((kh, kw), p) = (window.size, window.padding);
    if !x.device().is_cpu()
        || x.dtype() != DType::F32
        || window.stride.0 == 0
        || window.stride.1 == 0
        || p >= kh.min(kw)
        || kh > h + 2 * p
        || kw > w + 2 * p
    {
        candle_core::bail!("max pool: {window:?} on a {h}x{w} input (CPU f32 only)");
    }
    let pool = MaxPool {
        window,
        argmax: Default::default(),
    };
    x.contiguous()?.apply_op1(pool)
}

/// Where a max pool's windows lie: their size, their stride and the zero padding around
/// the input (which never wins, as PyTorch's -inf).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Height and width of a window.
    pub size: (usize, usize),
    /// Rows and columns between windows.
    pub stride: (usize, usize),
    /// Zeros around the input on every side.
    pub padding: usize,
}

impl Window {
    /// Non-overlapping windows: the stride is the size.
    pub const fn tiles(size: (usize, usize)) -> Self {
        Self {
            size,
            stride: size,
            padding: 0,
        }
    }

    /// Square `k` windows.
    pub const fn padded(k: usize, stride: usize, padding: usize) -> Self {
        Self {
            size: (k, k),
            stride: (stride, stride),
            padding,
        }
    }

    /// Output rows and columns for an `h x w` input.
    pub fn output(&self, h: usize, w: usize) -> (usize, usize) {
        let p = 2 * self.padding;
        (
            (h + p - self.size.0) / self.stride.0 + 1,
            (w + p - self.size.1) / self.stride.1 + 1,
        )
    }

    /// Index within the input plane (`h x w`) of the first maximum of `value` over output
    /// `(oy, ox)`'s window, padding left out.
    pub fn first_max(
        &self,
        plane: &[f32],
        (h, w): (usize, usize),
        (oy, ox): (usize, usize),
        value: impl Fn(f32) -> f32,
    ) -> usize {
        let p = self.padding;
        let (y0, x0) = (oy * self.stride.0, ox * self.stride.1);
        let rows = y0.max(p) - p..(y0 + self.size.0).min(h + p) - p;
        let cols = x0.max(p) - p..(x0 + self.size.1).min(w + p) - p;
        let mut best = rows.start * w + cols.start;
        let mut max = value(plane[best]);
        for row in rows.map(|y| y * w) {
            for (i, &x) in plane[row + cols.start..row + cols.end].iter().enumerate() {
                let v = value(x);
                if v > max {
                    (best, max) = (row + cols.start + i, v);
                }
            }
        }
        best
    }
}

struct MaxPool {
    window: Window,
    /// Per output, the index in its input plane of its window's first maximum, left by the
    /// forward pass for the backward pass (which would otherwise search the windows again).
    argmax: Arc<Mutex<Vec<u32>>>,
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool-2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout)?;
        let (n, c, h, w) = layout.shape().dims4()?;
        let (oh, ow) = self.window.output(h, w);
        let argmax: Vec<u32> = par_build(n * c * oh * ow, oh * ow, |i, argmax| {
            let plane = &x[i * h * w..(i + 1) * h * w];
            for (o, best) in argmax.iter_mut().enumerate() {
                *best = self
                    .window
                    .first_max(plane, (h, w), (o / ow, o % ow), |x| x)
                    as u32;
            }
        });
        let y = par_build(argmax.len(), oh * ow, |i, y| {
            let plane = &x[i * h * w..(i + 1) * h * w];
            for (y, &at) in y.iter_mut().zip(&argmax[i * oh * ow..(i + 1) * oh * ow]) {
                *y = plane[at as usize];
            }
        });
        *self.argmax.lock().expect("no panics while held") = argmax;
        Ok((CpuStorage::F32(y), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let argmax = self.argmax.lock().expect("no panics while held").clone();
        Ok(Some(
            grad.contiguous()?
                .apply_op2_no_bwd(x, &MaxPoolGrad(argmax))?,
        ))
    }
}

/// `(grad_y, x) -> grad_x`, from the forward pass's window maxima; `x` gives the shape.
struct MaxPoolGrad(Vec<u32>);

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max-pool-2d-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        _xs: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let grad = contiguous_f32(gs, gl)?;
        let (n, c, h, w) = xl.shape().dims4()?;
        let outputs = grad.len() / (n * c).max(1);
        let dx = par_build(xl.shape().elem_count(), h * w, |i, dx| {
            let at = i * outputs..(i + 1) * outputs;
            for (&g, &at) in grad[at.clone()].iter().zip(&self.0[at]) {
                dx[at as usize] += g;
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
            let grads = (&ours * &weights)?.sum_all()?.backward()?;
            // The other devices' form, run here on the CPU.
            let other = window_max(&x, (kh, kw))?;
            assert_eq!(flat(&other)?, flat(&ours)?);
            let other_grads = (other * &weights)?.sum_all()?.backward()?;
            assert_eq!(
                flat(other_grads.get(&x).unwrap())?,
                flat(grads.get(&x).unwrap())?
            );
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

    #[test]
    fn padding_never_wins() -> Result<()> {
        // All negative: a zero-padded pool would output zeros at the borders.
        let values: Vec<f32> = (0..20).map(|i| -1.0 - ((i * 7) % 20) as f32).collect();
        let x = Var::from_vec(values.clone(), (1, 1, 4, 5), &Device::Cpu)?;
        let pooled = pool(&x, Window::padded(3, 2, 1))?;
        assert_eq!(pooled.dims(), [1, 1, 2, 3]);
        let out = pooled.flatten_all()?.to_vec1::<f32>()?;
        // Window of output (0, 0): rows 0-1, columns 0-1.
        let expected = [values[0], values[1], values[5], values[6]]
            .into_iter()
            .fold(f32::MIN, f32::max);
        assert_eq!(out[0], expected);
        assert!(out.iter().all(|&v| v < 0.0));
        Ok(())
    }
}
