//! 2-D convolution for the GPU (and every dtype but float32 on the CPU): Candle's forward
//! pass, with a backward pass composed of the device's fast paths.
//!
//! Candle 0.11's CUDA backend computes a convolution's input gradient with a direct
//! transposed-convolution kernel (each thread loops over every output its input element
//! touched) and its weight gradient as a convolution whose kernel is the whole gradient map,
//! `c_in` GEMMs of `k * k` rows each; that backward pass took 335 of a ResNet18 step's 453 ms
//! on an H200. Here the backward pass is made of ordinary tensor ops, which run unchanged on
//! every device and so are tested on the CPU:
//!
//! - input gradient: at stride 1, the output gradient convolved with the kernel flipped and
//!   transposed to `[c_in, c_out, k, k]`: Candle's forward convolution, im2col and one GEMM
//!   on CUDA; at stride s, `s * s` such convolutions, one per phase of the input's rows and
//!   columns with the kernel taps that reach it, interleaved;
//! - weight gradient: one GEMM of the output gradient `[c_out, b * positions]` with the
//!   input's im2col matrix, built by one strided copy of [`Tensor::unfold`]'s windows.
//!
//! The input gradient of data (an input no parameter produced) is skipped.

use std::sync::Mutex;

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};

/// `conv2d(x, w)` with `x` `[b, c_in, h, w]` and `w` `[c_out, c_in, k, k]`, no bias or
/// dilation, on any device and dtype.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let y = x.detach().conv2d(&w.detach(), padding, stride, 1, 1)?;
    if !x.track_op() && !w.track_op() {
        return Ok(y);
    }
    let geometry = Geometry::new(x, w, stride, padding)?;
    x.apply_op2(
        w,
        Convolution {
            geometry,
            output: Mutex::new(Some(y)),
        },
    )
}

/// What the backward pass needs to know besides the tensors.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn new(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Self> {
        let (_, c_in, h, width) = x.dims4()?;
        let (_, c_in_w, k, k_w) = w.dims4()?;
        if c_in != c_in_w || k != k_w {
            candle_core::bail!(
                "conv2d: input {:?} and square kernel {:?} disagree",
                x.dims(),
                w.dims()
            );
        }
        Ok(Self {
            h,
            w: width,
            k,
            stride,
            padding,
        })
    }
}

/// Records the convolution `(x, w) -> y` for the backward pass; `y` is computed by Candle
/// before the op is applied, and only moved into the graph here.
struct Convolution {
    geometry: Geometry,
    /// Taken by the forward pass: the graph keeps the op until the backward pass, and should
    /// not keep a second copy of every output with it.
    output: Mutex<Option<Tensor>>,
}

impl Convolution {
    fn take_output(&self) -> Result<Tensor> {
        let mut output = self
            .output
            .lock()
            .map_err(|_| candle_core::Error::Msg("conv2d: a thread panicked".into()))?;
        output
            .take()
            .ok_or_else(|| candle_core::Error::Msg("conv2d: the op ran twice".into()))
    }
}

/// A contiguous copy of `storage` as `layout` reads it.
fn copied<S>(storage: &S, layout: &Layout) -> Result<(S, Shape)>
where
    S: BackendStorage,
    S::Device: BackendDevice<Storage = S>,
{
    // SAFETY: every element is written by the copy below before anything reads it.
    let mut out = unsafe {
        storage
            .device()
            .alloc_uninit(layout.shape(), storage.dtype())?
    };
    storage.copy_strided_src(&mut out, 0, layout)?;
    Ok((out, layout.shape().clone()))
}

impl CustomOp2 for Convolution {
    fn name(&self) -> &'static str {
        "conv2d-composed-backward"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = self.take_output()?;
        let (storage, layout) = y.storage_and_layout();
        match &*storage {
            Storage::Cpu(storage) => copied(storage, layout),
            _ => candle_core::bail!("conv2d: the output is not on the input's device"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let y = self.take_output()?;
        let (storage, layout) = y.storage_and_layout();
        match &*storage {
            Storage::Cuda(storage) => copied(storage, layout),
            _ => candle_core::bail!("conv2d: the output is not on the input's device"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dw = weight_gradient(x, grad, self.geometry)?;
        let dx = if x.track_op() {
            Some(input_gradient(grad, w, self.geometry)?)
        } else {
            None
        };
        Ok((dx, Some(dw)))
    }
}

/// `[c_out, c_in, k, k]`: the output gradient `[c_out, b * positions]` times the input's
/// im2col matrix, whose rows are `(c_in, kh, kw)` and columns `(b, positions)`.
fn weight_gradient(x: &Tensor, grad: &Tensor, g: Geometry) -> Result<Tensor> {
    let (b, c_in, _, _) = x.dims4()?;
    let (_, c_out, h_out, w_out) = grad.dims4()?;
    let columns = b * h_out * w_out;
    let p = g.padding;
    let cols = x
        .pad_with_zeros(2, p, p)?
        .pad_with_zeros(3, p, p)?
        // [b, c_in, h_out, w_out, kh, kw], a view with the stride in its steps.
        .unfold(2, g.k, g.stride)?
        .unfold(3, g.k, g.stride)?
        .permute((1, 4, 5, 0, 2, 3))?
        .contiguous()?
        .reshape((c_in * g.k * g.k, columns))?;
    let grad = grad
        .transpose(0, 1)?
        .contiguous()?
        .reshape((c_out, columns))?;
    grad.matmul(&cols.t()?)?.reshape((c_out, c_in, g.k, g.k))
}

/// `[b, c_in, h, w]`: the transposed convolution of the output gradient.
fn input_gradient(grad: &Tensor, w: &Tensor, g: Geometry) -> Result<Tensor> {
    match (g.stride, (g.k - 1).checked_sub(g.padding)) {
        // At stride 1 it is the "full" convolution with the flipped kernel (padded by k - 1
        // on each side), less the forward pass's padding.
        (1, Some(padding)) => grad.conv2d(&flipped(w)?, padding, 1, 1, 1),
        _ => by_phases(grad, w, g),
    }
}

/// `w` `[c_out, c_in, kh, kw]` flipped in both spatial directions, as `[c_in, c_out, kh, kw]`.
fn flipped(w: &Tensor) -> Result<Tensor> {
    w.contiguous()?.flip(&[2, 3])?.transpose(0, 1)?.contiguous()
}

/// The transposed convolution one phase at a time. In padded coordinates, the input rows
/// `r, r + s, r + 2s, ...` receive only the kernel's taps `r, r + s, ...`: each phase `(r, c)`
/// is a stride-1 "full" convolution of the output gradient with those taps, and the `s * s`
/// phases are interleaved. A convolution of the output gradient zero-dilated by the stride
/// would multiply by zero three times in four at stride 2 (it ran at 0.5-0.6x Candle's own
/// backward pass on the CPU).
fn by_phases(grad: &Tensor, w: &Tensor, g: Geometry) -> Result<Tensor> {
    let (b, _, h_out, w_out) = grad.dims4()?;
    let (c_out, c_in, k, _) = w.dims4()?;
    let s = g.stride;
    // How many taps phase r has, and the most any has.
    let taps = |r: usize| k.saturating_sub(r).div_ceil(s);
    let most = taps(0);
    // Each phase's rows and columns, in padded coordinates.
    let (rows, cols) = ((g.h + g.padding).div_ceil(s), (g.w + g.padding).div_ceil(s));
    let pad = most - 1;
    let grad = grad
        .pad_with_zeros(2, pad, rows.saturating_sub(h_out))?
        .pad_with_zeros(3, pad, cols.saturating_sub(w_out))?;
    // [c_out, c_in, tap t, phase r, tap t, phase c]: kernel tap r + s * t, zero past k.
    let side = most * s;
    let kernel = w
        .pad_with_zeros(2, 0, side - k)?
        .pad_with_zeros(3, 0, side - k)?
        .reshape((c_out, c_in, most, s, most, s))?;
    let phase = |r: usize, c: usize| -> Result<Tensor> {
        let (t_r, t_c) = (taps(r), taps(c));
        if t_r == 0 || t_c == 0 {
            return Tensor::zeros((b, c_in, rows, cols), grad.dtype(), grad.device());
        }
        let sub = (kernel.narrow(3, r, 1)?.narrow(5, c, 1)?)
            .squeeze(5)?
            .squeeze(3)?
            .narrow(2, 0, t_r)?
            .narrow(3, 0, t_c)?;
        // The full convolution's output `Y` is at `Y + pad + 1 - taps` of this one.
        grad.conv2d(&flipped(&sub)?, 0, 1, 1, 1)?
            .narrow(2, pad + 1 - t_r, rows)?
            .narrow(3, pad + 1 - t_c, cols)
    };
    let bands = (0..s)
        .map(|r| {
            let phases = (0..s).map(|c| phase(r, c)).collect::<Result<Vec<_>>>()?;
            Tensor::stack(&phases, 4)
        })
        .collect::<Result<Vec<_>>>()?;
    // [b, c_in, rows, s, cols, s]: row r of band i is padded row i * s + r.
    Tensor::stack(&bands, 3)?
        .reshape((b, c_in, rows * s, cols * s))?
        .narrow(2, g.padding, g.h)?
        .narrow(3, g.padding, g.w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use crate::engine::ops::conv::conv2d as cpu_conv2d;
    use crate::engine::ops::cpu_storage::relative;

    /// Output, input gradient and weight gradient of `f` for `x` and `w`, with a loss that
    /// weighs every output differently.
    fn run(
        f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
        x: &Tensor,
        w: &Tensor,
        weights: &Tensor,
    ) -> Result<[Tensor; 3]> {
        let (x, w) = (Var::from_tensor(x)?, Var::from_tensor(w)?);
        let y = f(&x, &w)?;
        let grads = (y.to_dtype(DType::F32)? * weights)?.sum_all()?.backward()?;
        let grad = |v: &Var| grads.get(v).unwrap().to_dtype(DType::F32);
        Ok([y.to_dtype(DType::F32)?, grad(&x)?, grad(&w)?])
    }

    /// Checks each of output, input gradient and weight gradient against `reference`.
    fn assert_agree(ours: &[Tensor; 3], reference: &[Tensor; 3], tolerance: f32, what: &str) {
        let names = ["output", "input gradient", "weight gradient"];
        for ((a, b), name) in ours.iter().zip(reference).zip(names) {
            let error = relative(a, b).unwrap();
            assert!(error < tolerance, "{what}: {name} {error} off");
        }
    }

    /// The loss weights for `x` convolved with `kernel`: one per output.
    fn output_weights(
        x: &Tensor,
        kernel: &Tensor,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let (c_out, _, k, _) = kernel.dims4()?;
        let side = |n: usize| (n + 2 * padding - k) / stride + 1;
        Tensor::randn(0f32, 1.0, (b, c_out, side(h), side(w)), x.device())
    }

    /// Random shapes (strides 1 to 3, kernels 1 to 7, odd and mixed-parity sides, padding up
    /// to past the kernel's reach) against BalanceLab's CPU kernels, and against Candle's own
    /// convolution where its backward pass works (sides of one parity at stride 2).
    #[test]
    fn matches_the_cpu_kernels_and_candle_on_random_shapes() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(7);
        let mut compared_with_candle = 0;
        for case in 0..60 {
            let k: usize = [1, 3, 5, 7][rng.random_range(0..4)];
            let stride = rng.random_range(1..=3);
            // Mostly "same"-style padding; a few cases pad further than k - 1.
            let padding = if case % 10 == 9 {
                k
            } else {
                rng.random_range(0..=k / 2)
            };
            let smallest = k.saturating_sub(2 * padding).max(1);
            let (h, w) = (
                rng.random_range(smallest..18),
                rng.random_range(smallest..18),
            );
            let (b, c_in, c_out) = (
                rng.random_range(1..4),
                rng.random_range(1..5),
                rng.random_range(1..6),
            );
            let x = Tensor::randn(0f32, 1.0, (b, c_in, h, w), &dev)?;
            let kernel = Tensor::randn(0f32, 1.0, (c_out, c_in, k, k), &dev)?;
            let weights = output_weights(&x, &kernel, stride, padding)?;
            let label = format!("{b}x{c_in}x{h}x{w}, k{k} s{stride} p{padding}");

            let ours = run(|x, w| conv2d(x, w, stride, padding), &x, &kernel, &weights)?;
            let cpu = |x: &Tensor, w: &Tensor| cpu_conv2d(x, w, stride, padding);
            let cpu = run(cpu, &x, &kernel, &weights)?;
            assert_agree(
                &ours,
                &cpu,
                1e-5,
                &format!("{label} against the CPU kernels"),
            );
            if stride == 1 || (h % 2 == w % 2 && stride == 2) {
                let candle = |x: &Tensor, w: &Tensor| x.conv2d(w, padding, stride, 1, 1);
                let candle = run(candle, &x, &kernel, &weights)?;
                assert_agree(&ours, &candle, 1e-5, &format!("{label} against Candle"));
                compared_with_candle += 1;
            }
        }
        assert!(compared_with_candle >= 20, "{compared_with_candle}");
        Ok(())
    }

    /// The shapes of ResNet18's layers, scaled down: stem 7x7/2 on a mixed-parity
    /// spectrogram, 3x3/1, 3x3/2 and the 1x1/2 shortcut.
    #[test]
    fn resnet_layers_match_the_cpu_kernels() -> Result<()> {
        let dev = Device::Cpu;
        for ((b, c_in, h, w), c_out, k, stride, padding) in [
            ((2, 1, 33, 24), 8, 7, 2, 3),
            ((2, 8, 9, 6), 8, 3, 1, 1),
            ((2, 8, 9, 6), 16, 3, 2, 1),
            ((2, 8, 9, 6), 16, 1, 2, 0),
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, c_in, h, w), &dev)?;
            let kernel = Tensor::randn(0f32, 1.0, (c_out, c_in, k, k), &dev)?;
            let weights = output_weights(&x, &kernel, stride, padding)?;
            let ours = run(|x, w| conv2d(x, w, stride, padding), &x, &kernel, &weights)?;
            let cpu = |x: &Tensor, w: &Tensor| cpu_conv2d(x, w, stride, padding);
            let cpu = run(cpu, &x, &kernel, &weights)?;
            assert_agree(&ours, &cpu, 1e-5, &format!("{h}x{w} k{k} s{stride}"));
        }
        Ok(())
    }

    /// Half precision goes through the same composition: values within its rounding of
    /// float32's. (Candle's CPU matmul has no bfloat16; on CUDA it is cuBLAS's.)
    #[test]
    fn half_precision_follows_float32() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 4, 11, 10), &dev)?;
        let kernel = Tensor::randn(0f32, 1.0, (6, 4, 3, 3), &dev)?;
        let weights = Tensor::randn(0f32, 1.0, (2, 6, 6, 5), &dev)?;
        let conv = |x: &Tensor, w: &Tensor| conv2d(x, w, 2, 1);
        let float = run(conv, &x, &kernel, &weights)?;
        let half = run(
            conv,
            &x.to_dtype(DType::F16)?,
            &kernel.to_dtype(DType::F16)?,
            &weights,
        )?;
        assert_agree(&half, &float, 5e-3, "half precision");
        Ok(())
    }

    #[test]
    fn data_inputs_get_no_gradient_and_inference_records_nothing() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 6, 6), &dev)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3, 3, 3), &dev)?)?;
        let grads = conv2d(&x, &w, 1, 1)?.sum_all()?.backward()?;
        assert!(grads.get(&x).is_none() && grads.get(&w).is_some());
        let y = conv2d(&x, &w.as_tensor().detach(), 1, 1)?;
        assert!(!y.track_op());
        Ok(())
    }
}
