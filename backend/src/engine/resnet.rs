//! ResNet18 (He et al., 2016) built from scratch, as the paper's audio and visual backbones:
//! torchvision's layout without the classifier, for any number of input channels.

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig};

use super::params::{Owner, ParamStore, Role};

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
) -> Result<BatchNorm> {
    let weight = store.constant(&format!("{name}.weight"), owner_role, &[channels], 1.0)?;
    let bias = store.constant(&format!("{name}.bias"), owner_role, &[channels], 0.0)?;
    let mean = store.buffer(&format!("{name}.running_mean"), &[channels], 0.0)?;
    let var = store.buffer(&format!("{name}.running_var"), &[channels], 1.0)?;
    BatchNorm::new(channels, mean, var, weight, bias, 1e-5)
}

struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
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
        let y = x.apply(&self.conv1)?.apply_t(&self.bn1, train)?.relu()?;
        let y = y.apply(&self.conv2)?.apply_t(&self.bn2, train)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => x.apply(conv)?.apply_t(bn, train)?,
            None => x.clone(),
        };
        (y + shortcut)?.relu()
    }
}

pub struct ResNet18 {
    conv1: Conv2d,
    bn1: BatchNorm,
    blocks: Vec<BasicBlock>,
}

impl ResNet18 {
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
        let x = x.apply(&self.conv1)?.apply_t(&self.bn1, train)?.relu()?;
        // 3x3 max pool, stride 2, padding 1: after the ReLU, zero padding acts as -inf.
        let x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
        let mut x = x.max_pool2d_with_stride(3, 2)?;
        for block in &self.blocks {
            x = block.forward(&x, train)?;
        }
        x.mean((2, 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
