//! 2-D convolution on the CPU as im2col + GEMM, forward and backward.
//!
//! Candle 0.11 computes a convolution's input gradient with a direct transposed-convolution
//! loop and its weight gradient as a convolution whose kernel is the whole gradient map, both
//! several times slower than the forward pass; and it computes the input gradient of a first
//! layer, which nothing uses. Here every pass is a GEMM over the im2col matrix
//! (`[c_in * k * k, h_out * w_out]` per sample) of one sample, or of a few where a sample has
//! few positions; groups of samples spread over the threads, and the input gradient is
//! skipped when the input is data. Where even a thread's share of the batch has few positions
//! (the last stage of a ResNet), the weight gradient splits the input channels over the
//! threads instead. 3x3 "same" convolutions with 64 channels or more run forward and input
//! gradient through [`winograd`].
//! Other devices and dtypes use [`composed_conv`].

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use candle_nn::Conv2d;
use gemm::Parallelism;
use rayon::prelude::*;

use super::cpu_storage::{contiguous_f32, par_build, with_scratch};
use super::gemm::gemm;
use super::im2col::Geometry;
use super::{composed_conv, winograd};

/// A bias-free, undilated, ungrouped candle_nn convolution applied to `x`.
pub fn apply(x: &Tensor, conv: &Conv2d) -> Result<Tensor> {
    let config = conv.config();
    debug_assert!(conv.bias().is_none() && config.dilation == 1 && config.groups == 1);
    conv2d(x, conv.weight(), config.stride, config.padding)
}

/// `conv2d(x, w)` with `x` `[b, c_in, h, w]` and `w` `[c_out, c_in, k, k]`, no bias or dilation.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
        return composed_conv::conv2d(x, w, stride, padding);
    }
    let (_, c_in, h, w_in) = x.dims4()?;
    let (c_out, c_in_w, kh, kw) = w.dims4()?;
    if c_in != c_in_w || kh != kw {
        candle_core::bail!(
            "conv2d: input {:?} and square kernel {:?} disagree",
            x.dims(),
            w.dims()
        );
    }
    let geometry = Geometry {
        c_in,
        c_out,
        h,
        w: w_in,
        k: kh,
        stride,
        padding,
    };
    if geometry.h_out() == 0 || geometry.w_out() == 0 {
        candle_core::bail!("conv2d: kernel {kh} larger than the padded input {h}x{w_in}");
    }
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Forward(geometry))
}

impl Geometry {
    /// Whether [`winograd`] computes this convolution (and its input gradient, a
    /// convolution of the same kind). Its transforms cost per channel and its savings grow
    /// with the product of the channel counts: with fewer than 64 channels on a side (the
    /// small CNN's 16 and 32) it was 5% slower than im2col, and 5-12% faster on ResNet18.
    fn winograd(&self) -> bool {
        (self.k, self.stride, self.padding) == (3, 1, 1)
            && self.c_in.min(self.c_out) >= winograd::MIN_CHANNELS
    }

    /// A [`Geometry::winograd`] convolution of the `batch` samples `x` (`channels.0` each)
    /// with a transformed kernel, to `channels.1` each: groups of samples spread over the
    /// threads as in [`plan`].
    fn winograd_convolve(
        &self,
        x: &[f32],
        kernel: &[f32],
        (c_in, c_out): (usize, usize),
        batch: usize,
    ) -> Vec<f32> {
        let plane = self.h * self.w;
        let tiles = winograd::tiles(self.h, self.w);
        let (group, parallelism) = plan(batch, tiles, winograd::MIN_COLUMNS);
        par_build(batch * c_out * plane, group * c_out * plane, |i, y| {
            let n = y.len() / (c_out * plane);
            let x = &x[i * group * c_in * plane..][..n * c_in * plane];
            winograd::convolve(x, kernel, (c_in, c_out), (self.h, self.w), y, parallelism);
        })
    }

    /// Whether a thread's share of the batch has too few output positions to fill a GEMM
    /// of [`MIN_COLUMNS`] (ResNet18's 4x4 last stage), so that the weight gradient splits
    /// the input channels over the threads rather than the samples.
    fn few_positions(&self, batch: usize) -> bool {
        let threads = rayon::current_num_threads();
        batch.div_ceil(threads) * self.positions() < MIN_COLUMNS && self.c_in >= threads
    }

    /// The weight gradient (`[c_out, c_in, k, k]`) with the input channels split over the
    /// threads: each im2cols its channels for the whole batch, and one GEMM computes their
    /// columns of the gradient, row-major like the gradient, so that the parts are only
    /// placed side by side. Split by sample, the last stage's GEMMs were small and the
    /// per-thread sums had to be added up and transposed: its 512x512 layer took 19-20 ms
    /// rather than 15 (32 samples of 4x4, 2 threads).
    fn weight_grad_by_channels(&self, grad: &[f32], x: &[f32], batch: usize) -> Vec<f32> {
        let (positions, plane) = (self.positions(), self.h * self.w);
        let columns = batch * positions;
        let mut gathered = vec![0f32; self.c_out * columns];
        gather(grad, self.c_out, positions, &mut gathered);
        let share = self.c_in.div_ceil(rayon::current_num_threads());
        let parts: Vec<Vec<f32>> = (0..self.c_in.div_ceil(share))
            .into_par_iter()
            .map(|part| {
                let channels = part * share..((part + 1) * share).min(self.c_in);
                let sub = Geometry {
                    c_in: channels.len(),
                    ..*self
                };
                let rows = sub.rows();
                // Element (o, r) at `r + o * rows`: the part's columns of the gradient.
                let mut dw = vec![0f32; self.c_out * rows];
                with_scratch(rows * columns + sub.split_len(), |scratch| {
                    let (cols, split) = scratch.split_at_mut(rows * columns);
                    let samples = x.chunks_exact(self.c_in * plane);
                    for (s, x) in samples.enumerate() {
                        let x = &x[channels.start * plane..channels.end * plane];
                        sub.im2col(x, cols, (columns, s * positions), split);
                    }
                    gemm(
                        (rows, self.c_out, columns),
                        &mut dw,
                        (1, rows),
                        false,
                        cols,
                        (columns, 1),
                        &gathered,
                        (1, columns),
                        Parallelism::None,
                    );
                });
                dw
            })
            .collect();
        par_build(self.c_out * self.rows(), self.rows(), |o, row| {
            let mut at = 0;
            for part in &parts {
                let n = part.len() / self.c_out;
                row[at..at + n].copy_from_slice(&part[o * n..][..n]);
                at += n;
            }
        })
    }
}

/// GEMM columns worth packing the other operand for: deep layers have few positions per
/// sample (4x4 in ResNet18's last stage), so their samples are multiplied together.
const MIN_COLUMNS: usize = 512;

/// How a batch is cut: `group` samples per GEMM (at least `min_columns` columns of
/// `positions` per sample where the batch allows), groups spread over the threads, each GEMM
/// on one thread unless there are fewer groups than threads. The group divides each
/// thread's share of the batch, so that every thread gets as many groups: ResNet18's 7x7
/// layers, cut into 3 groups of 11 samples on 2 threads, ran at two thirds of the speed.
fn plan(batch: usize, positions: usize, min_columns: usize) -> (usize, Parallelism) {
    let threads = rayon::current_num_threads();
    let share = batch.div_ceil(threads).max(1);
    let group = (min_columns.div_ceil(positions).min(share)..=share)
        .find(|&group| share.is_multiple_of(group))
        .unwrap_or(share);
    let parallelism = if batch.div_ceil(group) >= threads {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    (group, parallelism)
}

/// The convolution: `(x, w) -> y`.
struct Forward(Geometry);

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "conv2d-gemm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let (x, w) = (contiguous_f32(xs, xl)?, contiguous_f32(ws, wl)?);
        let batch = xl.dims()[0];
        let shape = Shape::from((batch, g.c_out, g.h_out(), g.w_out()));
        if g.winograd() {
            let kernel = winograd::kernel(w, g.c_out, g.c_in);
            let y = g.winograd_convolve(x, &kernel, (g.c_in, g.c_out), batch);
            return Ok((CpuStorage::F32(y), shape));
        }
        let (rows, positions) = (g.rows(), g.positions());
        let (group, parallelism) = plan(batch, positions, MIN_COLUMNS);
        let (sample_in, sample_out) = (g.c_in * g.h * g.w, g.c_out * positions);
        let y = par_build(batch * sample_out, group * sample_out, |i, y| {
            let n = y.len() / sample_out;
            let x = &x[i * group * sample_in..][..n * sample_in];
            let columns = n * positions;
            let grouped = if n == 1 { 0 } else { g.c_out * columns };
            with_scratch(rows * columns + grouped + g.split_len(), |scratch| {
                let (cols, rest) = scratch.split_at_mut(rows * columns);
                let (out, split) = rest.split_at_mut(grouped);
                for (s, x) in x.chunks(sample_in).enumerate() {
                    g.im2col(x, cols, (columns, s * positions), split);
                }
                let shape = (g.c_out, columns, rows);
                if n == 1 {
                    gemm(
                        shape,
                        y,
                        (columns, 1),
                        false,
                        w,
                        (rows, 1),
                        cols,
                        (columns, 1),
                        parallelism,
                    );
                    return;
                }
                // [c_out, n * positions] back to n samples of [c_out, positions].
                gemm(
                    shape,
                    out,
                    (columns, 1),
                    false,
                    w,
                    (rows, 1),
                    cols,
                    (columns, 1),
                    parallelism,
                );
                for (s, y) in y.chunks_mut(sample_out).enumerate() {
                    for (o, y) in y.chunks_mut(positions).enumerate() {
                        let at = o * columns + s * positions;
                        y.copy_from_slice(&out[at..at + positions]);
                    }
                }
            });
        });
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dw = grad.apply_op2_no_bwd(x, &WeightGrad(self.0))?;
        // Data (a tensor no parameter produced) needs no gradient.
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &InputGrad(self.0))?)
        } else {
            None
        };
        Ok((dx, Some(dw)))
    }
}

/// A group's output gradients into `out` as one `[c_out, n * positions]` matrix.
fn gather(grad: &[f32], c_out: usize, positions: usize, out: &mut [f32]) {
    let n = grad.len() / (c_out * positions);
    let columns = n * positions;
    for (s, sample) in grad.chunks(c_out * positions).enumerate() {
        for (o, row) in sample.chunks(positions).enumerate() {
            let at = o * columns + s * positions;
            out[at..at + positions].copy_from_slice(row);
        }
    }
}

/// `(grad_y, x) -> grad_w`: the sum over samples of `grad_y[b] * im2col(x[b])^T`.
struct WeightGrad(Geometry);

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "conv2d-gemm-weight-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let (grad, x) = (contiguous_f32(gs, gl)?, contiguous_f32(xs, xl)?);
        let batch = xl.dims()[0];
        let shape = Shape::from((g.c_out, g.c_in, g.k, g.k));
        if g.few_positions(batch) {
            let dw = g.weight_grad_by_channels(grad, x, batch);
            return Ok((CpuStorage::F32(dw), shape));
        }
        let (rows, positions) = (g.rows(), g.positions());
        let (group, parallelism) = plan(batch, positions, MIN_COLUMNS);
        let (sample_in, sample_out) = (g.c_in * g.h * g.w, g.c_out * positions);
        // One accumulator per thread, over a contiguous run of groups: rayon's fold would
        // zero one per task it splits off, and add them all up.
        let groups = batch.div_ceil(group);
        let parts = rayon::current_num_threads().min(groups).max(1);
        let part_samples = groups.div_ceil(parts) * group;
        let sums: Vec<Vec<f32>> = (0..parts)
            .into_par_iter()
            .map(|part| {
                let mut dw_t = vec![0f32; g.c_out * rows];
                let samples =
                    (part * part_samples).min(batch)..((part + 1) * part_samples).min(batch);
                let grad = &grad[samples.start * sample_out..samples.end * sample_out];
                let x = &x[samples.start * sample_in..samples.end * sample_in];
                for (grad, x) in grad
                    .chunks(group * sample_out)
                    .zip(x.chunks(group * sample_in))
                {
                    let n = x.len() / sample_in;
                    let columns = n * positions;
                    let grouped = if n == 1 { 0 } else { g.c_out * columns };
                    with_scratch(rows * columns + grouped + g.split_len(), |scratch| {
                        let (cols, rest) = scratch.split_at_mut(rows * columns);
                        let (out, split) = rest.split_at_mut(grouped);
                        for (s, x) in x.chunks(sample_in).enumerate() {
                            g.im2col(x, cols, (columns, s * positions), split);
                        }
                        let grad = if n == 1 {
                            grad
                        } else {
                            gather(grad, g.c_out, positions, out);
                            out
                        };
                        // cols^T: element (p, r) is cols[r * columns + p]. The result
                        // goes in transposed (element (o, r) at dw_t[r * c_out + o]): the
                        // GEMM then packs the output gradient, not the nine times larger
                        // im2col matrix (perf: packing it was 7% of a ResNet18 step).
                        let shape = (g.c_out, rows, columns);
                        let (rhs, strides) = (&*cols, (1, columns));
                        gemm(
                            shape,
                            &mut dw_t,
                            (1, g.c_out),
                            true,
                            grad,
                            (columns, 1),
                            rhs,
                            strides,
                            parallelism,
                        );
                    });
                }
                dw_t
            })
            .collect();
        let dw = transpose_sum(&sums, (rows, g.c_out));
        Ok((CpuStorage::F32(dw), shape))
    }
}

/// The `cols x rows` transpose of the sum of the row-major `rows x cols` matrices `ms`, 16
/// output rows per task: each row of a matrix gives them one cache line (a column at a time
/// would miss the cache at every read). Summing on the way saves the weight gradient a pass
/// over its per-thread parts: both passes are bound by memory bandwidth.
fn transpose_sum<M: AsRef<[f32]> + Sync>(ms: &[M], (rows, cols): (usize, usize)) -> Vec<f32> {
    const BLOCK: usize = 16;
    par_build(rows * cols, BLOCK * rows, |block, out| {
        let n = out.len() / rows;
        for (k, m) in ms.iter().enumerate() {
            for (r, row) in m.as_ref().chunks(cols).enumerate() {
                for (j, &v) in row[block * BLOCK..][..n].iter().enumerate() {
                    let out = &mut out[j * rows + r];
                    *out = if k == 0 { v } else { *out + v };
                }
            }
        }
    })
}

/// `(grad_y, w) -> grad_x`: col2im of `w^T * grad_y[b]` for every sample.
struct InputGrad(Geometry);

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "conv2d-gemm-input-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let (grad, w) = (contiguous_f32(gs, gl)?, contiguous_f32(ws, wl)?);
        let batch = gl.dims()[0];
        let shape = Shape::from((batch, g.c_in, g.h, g.w));
        if g.winograd() {
            let kernel = winograd::kernel(&winograd::flipped(w, g.c_out, g.c_in), g.c_in, g.c_out);
            let dx = g.winograd_convolve(grad, &kernel, (g.c_out, g.c_in), batch);
            return Ok((CpuStorage::F32(dx), shape));
        }
        // w^T laid out row-major once, so that no GEMM below packs it again.
        let w_t = transpose_sum(&[w], (g.c_out, g.rows()));
        let (rows, positions) = (g.rows(), g.positions());
        let (group, parallelism) = plan(batch, positions, MIN_COLUMNS);
        let (sample_in, sample_out) = (g.c_in * g.h * g.w, g.c_out * positions);
        let dx = par_build(batch * sample_in, group * sample_in, |i, dx| {
            let n = dx.len() / sample_in;
            let grad = &grad[i * group * sample_out..][..n * sample_out];
            let columns = n * positions;
            let grouped = if n == 1 { 0 } else { g.c_out * columns };
            with_scratch(rows * columns + grouped + g.split_len(), |scratch| {
                let (cols, rest) = scratch.split_at_mut(rows * columns);
                let (out, split) = rest.split_at_mut(grouped);
                let grad = if n == 1 {
                    grad
                } else {
                    gather(grad, g.c_out, positions, out);
                    out
                };
                let shape = (rows, columns, g.c_out);
                gemm(
                    shape,
                    cols,
                    (columns, 1),
                    false,
                    &w_t,
                    (g.c_out, 1),
                    grad,
                    (columns, 1),
                    parallelism,
                );
                for (s, dx) in dx.chunks_mut(sample_in).enumerate() {
                    g.col2im(cols, (columns, s * positions), dx, split);
                }
            });
        });
        Ok((CpuStorage::F32(dx), shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::engine::ops::cpu_storage::relative;

    /// Output, input gradient and weight gradient against Candle's own conv2d, whose
    /// backward is checked against finite differences in Candle's test suite.
    #[test]
    fn matches_candles_convolution_and_gradients() -> Result<()> {
        let dev = Device::Cpu;
        for (shape, c_out, k, stride, padding) in [
            ((2, 3, 9, 7), 4, 3, 1, 1),
            ((3, 2, 8, 8), 5, 3, 2, 1),
            // Sides of one parity: Candle's own backward fails on mixed parity at stride 2
            // (composed_conv's tests compare those).
            ((2, 3, 13, 11), 6, 7, 2, 3),
            ((1, 4, 5, 6), 3, 1, 1, 0),
            ((2, 4, 6, 6), 3, 1, 2, 0),
            ((4, 2, 2, 2), 3, 3, 2, 1),
            // Few positions per sample: samples share a GEMM (on 2 threads, groups of 4, and
            // of 4 and a last of 3).
            ((8, 3, 6, 6), 4, 3, 1, 1),
            ((7, 5, 4, 4), 6, 3, 2, 1),
            ((2, 2, 10, 10), 3, 3, 3, 1),
            // Enough positions per thread for the weight gradient to split the samples (on
            // 2 threads; the cases above split the input channels): one sample per GEMM,
            // then groups of 2, the last of 1.
            ((2, 3, 24, 24), 4, 3, 1, 1),
            ((7, 3, 16, 16), 4, 3, 1, 1),
            // 3x3 "same" convolutions with 64 channels or more go through Winograd's
            // F(2x2, 3x3): odd sides cut the last tiles; on 2 threads, groups of 3 and a
            // last of 2.
            ((5, 64, 3, 3), 64, 3, 1, 1),
            ((2, 64, 7, 4), 72, 3, 1, 1),
            // "Same" padding on planes smaller than the kernel: taps with no valid output.
            ((2, 3, 3, 4), 4, 5, 1, 2),
            ((2, 2, 5, 1), 3, 3, 1, 1),
        ] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev)?)?;
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (c_out, shape.1, k, k), &dev)?)?;
            let ours = conv2d(&x, &w, stride, padding)?;
            let theirs = x.conv2d(&w, padding, stride, 1, 1)?;
            assert_eq!(ours.dims(), theirs.dims());
            assert!(relative(&ours, &theirs)? < 1e-5, "{shape:?} k{k} s{stride}");
            // A loss that weighs every output differently.
            let weights = Tensor::randn(0f32, 1.0, ours.dims(), &dev)?;
            let g_ours = (ours * &weights)?.sum_all()?.backward()?;
            let g_theirs = (theirs * &weights)?.sum_all()?.backward()?;
            for (name, v) in [("input", &x), ("weight", &w)] {
                let (a, b) = (g_ours.get(v).unwrap(), g_theirs.get(v).unwrap());
                let error = relative(a, b)?;
                assert!(
                    error < 1e-4,
                    "{shape:?} k{k} s{stride}: {name} gradient {error}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn data_inputs_get_no_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 6, 6), &dev)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3, 3, 3), &dev)?)?;
        let grads = conv2d(&x, &w, 1, 1)?.sum_all()?.backward()?;
        assert!(grads.get(&x).is_none() && grads.get(&w).is_some());
        Ok(())
    }
}
