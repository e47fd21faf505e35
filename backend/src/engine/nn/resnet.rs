//! ResNet18 (He et al., 2016) built from scratch, as the paper's audio and visual backbones:
//! torchvision's layout without the classifier, for any number of input channels.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};

use super::batch_norm::BatchNorm2d;
use super::params::{Owner, ParamStore, Role};
use crate::engine::ops::conv;
use crate::engine::ops::max_pool::Window;

/// Width of the pooled features.
pub const RESNET18_FEATURES: usize = 512;

fn conv(stride: usize, padding: usize) -> Conv2dConfig {
    Conv2dConfig {
        stride,
        padding,
        ..Conv2dConfig::default()
    }
}

/// A batch norm whose scale and shift are parameters and whose statistics are buffers.
pub fn batch_norm(
    store: &mut ParamStore,
    name: &str,
    owner_role: (Owner, Role),
    channels: usize,
) -> Result<BatchNorm2d> {
    let weight = store.constant(&format!("{name}.weight"), owner_role, &[channels], 1.0)?;
    let bias = store.constant(&format!("{name}.bias"), owner_role, &[channels], 0.0)?;
    let mean = store.buffer(&format!("{name}.running_mean"), &[channels], 0.0)?;
    let var = store.buffer(&format!("{name}.running_var"), &[channels], 1.0)?;
    BatchNorm2d::new(weight, bias, mean, var, 1e-5)
}

struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    fn new(
        store: &mut ParamStore,
        name: &str,
        owner_role: (Owner, Role),
        (cin, cout): (usize, usize),
        stride: usize,
    ) -> Result<Self> {
        let downsample = if stride != 1 || cin != cout {
            Some((
                store.conv2d(
                    &format!("{name}.downsample.0"),
                    owner_role,
                    (cin, cout),
                    1,
                    conv(stride, 0),
                )?,
                batch_norm(store, &format!("{name}.downsample.1"), owner_role, cout)?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: store.conv2d(
                &format!("{name}.conv1"),
                owner_role,
                (cin, cout),
                3,
                conv(stride, 1),
            )?,
            bn1: batch_norm(store, &format!("{name}.bn1"), owner_role, cout)?,
            conv2: store.conv2d(
                &format!("{name}.conv2"),
                owner_role,
                (cout, cout),
                3,
                conv(1, 1),
            )?,
            bn2: batch_norm(store, &format!("{name}.bn2"), owner_role, cout)?,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self
            .bn1
            .forward(&conv::apply(x, &self.conv1)?, train, true)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward(&conv::apply(x, conv)?, train, false)?,
            None => x.clone(),
        };
        self.bn2
            .forward_add_relu(&conv::apply(&y, &self.conv2)?, &shortcut, train)
    }
}

/// ResNet18 (He et al., 2016) as torchvision builds it, for any number of input channels;
/// its 512 features are average-pooled.
pub struct ResNet18 {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<BasicBlock>,
}

impl ResNet18 {
    /// A ResNet18 whose parameters are named `{name}.*` and owned as `owner_role`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        owner_role: (Owner, Role),
        channels: usize,
    ) -> Result<Self> {
        let conv1 = store.conv2d(
            &format!("{name}.conv1"),
            owner_role,
            (channels, 64),
            7,
            conv(2, 3),
        )?;
        let bn1 = batch_norm(store, &format!("{name}.bn1"), owner_role, 64)?;
        let mut blocks = Vec::new();
        let mut cin = 64;
        for (layer, cout) in [64, 128, 256, 512].into_iter().enumerate() {
            let stride = if layer == 0 { 1 } else { 2 };
            let prefix = format!("{name}.layer{}", layer + 1);
            blocks.push(BasicBlock::new(
                store,
                &format!("{prefix}.0"),
                owner_role,
                (cin, cout),
                stride,
            )?);
            blocks.push(BasicBlock::new(
                store,
                &format!("{prefix}.1"),
                owner_role,
                (cout, cout),
                1,
            )?);
            cin = cout;
        }
        Ok(Self { conv1, bn1, blocks })
    }

    /// `x` is `[batch, channels, h, w]`; returns globally average-pooled `[batch, 512]`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let z = conv::apply(x, &self.conv1)?;
        // The CPU pool kernel takes f32 only (like the fused one it falls back to).
        let mut x = if z.device().is_cpu() && z.dtype() == candle_core::DType::F32 {
            self.bn1.forward_relu_pool(&z, train, STEM_POOL)?
        } else {
            taps_max_pool(&self.bn1.forward(&z, train, true)?)?
        };
        for block in &self.blocks {
            x = block.forward(&x, train)?;
        }
        x.mean((2, 3))
    }
}

/// The stem's 3x3 max pool with stride 2 and padding 1: on the CPU fused with the batch
/// norm and ReLU before it, elsewhere [`taps_max_pool`].
const STEM_POOL: Window = Window::padded(3, 2, 1);

/// The stem pool for inputs that follow a ReLU (so zero padding acts as torch's -inf), from
/// differentiable ops: Candle's `max_pool2d` has no backward when the window is wider than
/// the stride, so the pool is the `maximum` of its nine taps, each a stride-2 view of the
/// padded input.
fn taps_max_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (out_h, out_w) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    // One row/column of padding before; after, enough for every tap's view to hold 2 * out.
    let x = x
        .pad_with_zeros(2, 1, 2 * out_h + 1 - h)?
        .pad_with_zeros(3, 1, 2 * out_w + 1 - w)?;
    let tap = |dy: usize, dx: usize| -> Result<Tensor> {
        x.narrow(2, dy, 2 * out_h)?
            .narrow(3, dx, 2 * out_w)?
            .reshape((n, c, out_h, 2, out_w, 2))?
            .narrow(3, 0, 1)?
            .narrow(5, 0, 1)?
            .reshape((n, c, out_h, out_w))
    };
    let mut pooled = tap(0, 0)?;
    for (dy, dx) in (0..3).flat_map(|dy| (0..3).map(move |dx| (dy, dx))).skip(1) {
        pooled = pooled.maximum(&tap(dy, dx)?)?;
    }
    Ok(pooled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops::max_pool::pool;
    use candle_core::{DType, Device};

    #[test]
    fn has_torchvision_resnet18_parameter_count() -> Result<()> {
        // torchvision.models.resnet18(): 11,689,512 parameters; without the 512x1000
        // classifier (513,000) 11,176,512; with a 1-channel stem 9,408 - 3,136 fewer.
        let mut store = ParamStore::new(0, &Device::Cpu);
        let rgb = ResNet18::new(&mut store, "rgb", (Owner::Modality(0), Role::Encoder), 3)?;
        assert_eq!(store.parameter_count(), 11_176_512);
        let mut store = ParamStore::new(0, &Device::Cpu);
        ResNet18::new(&mut store, "spec", (Owner::Modality(0), Role::Encoder), 1)?;
        assert_eq!(store.parameter_count(), 11_176_512 - 6_272);
        let z = rgb.forward(
            &Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu)?,
            false,
        )?;
        assert_eq!(z.dims(), [2, RESNET18_FEATURES]);
        Ok(())
    }

    /// The pool by its definition: each output is the largest input of its window.
    fn reference_pool(x: &[f32], h: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
        let (out_h, out_w) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let mut out = vec![0f32; out_h * out_w];
        // d(sum of outputs)/dx: how many windows each input is the maximum of.
        let mut grad = vec![0f32; h * w];
        for oy in 0..out_h {
            for ox in 0..out_w {
                let mut best: Option<usize> = None;
                for y in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h) {
                    for x_ in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(w) {
                        if best.is_none_or(|b| x[y * w + x_] > x[b]) {
                            best = Some(y * w + x_);
                        }
                    }
                }
                let best = best.unwrap();
                out[oy * out_w + ox] = x[best];
                grad[best] += 1.0;
            }
        }
        (out, grad)
    }

    #[test]
    fn stem_max_pool_matches_its_definition_with_gradients() -> Result<()> {
        // Even and odd sizes (a 257-row spectrogram's stem output is 129 rows).
        for (h, w) in [(6, 8), (7, 5), (9, 9)] {
            // Distinct positive values in a scrambled order: no ties, as after a ReLU.
            let values: Vec<f32> = (0..h * w)
                .map(|i| ((i * 37 + 11) % 101) as f32 + 1.0)
                .collect();
            let x = candle_core::Var::from_vec(values.clone(), (1, 1, h, w), &Device::Cpu)?;
            let (expected, expected_grad) = reference_pool(&values, h, w);
            // The CPU kernel, and the taps form other devices use.
            let cpu_kernel = pool(x.as_tensor(), STEM_POOL)?;
            for pooled in [cpu_kernel, taps_max_pool(x.as_tensor())?] {
                let grad = pooled.sum_all()?.backward()?;
                assert_eq!(pooled.flatten_all()?.to_vec1::<f32>()?, expected, "{h}x{w}");
                let grad = grad
                    .get(x.as_tensor())
                    .unwrap()
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                assert_eq!(grad, expected_grad, "{h}x{w}");
            }
        }
        Ok(())
    }

    #[test]
    fn trains_on_inputs_whose_sides_differ_in_parity() -> Result<()> {
        // 41x30 reaches 11x8 and then 6x4: every stride-2 layer sees odd x even sides.
        let mut store = ParamStore::new(0, &Device::Cpu);
        let net = ResNet18::new(&mut store, "spec", (Owner::Modality(0), Role::Encoder), 1)?;
        let x = Tensor::randn(0f32, 1.0, (2, 1, 41, 30), &Device::Cpu)?;
        let grads = net.forward(&x, true)?.sqr()?.sum_all()?.backward()?;
        for param in store.params() {
            let grad = grads.get(param.var.as_tensor());
            assert!(grad.is_some(), "no gradient for {}", param.name);
            assert_eq!(grad.unwrap().dims(), param.var.dims(), "{}", param.name);
        }
        Ok(())
    }
}
