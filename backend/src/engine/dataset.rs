//! Data as the engine sees it: every split in memory as tensors, one per modality.

use candle_core::{Result, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Samples of one split: `inputs[m]` is `[n, ...shape_m]` (f32), `labels` is `[n]` (u32).
#[derive(Clone)]
pub struct Split {
    pub inputs: Vec<Tensor>,
    pub labels: Tensor,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.dims1().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices` (a `[b]` u32 tensor).
    pub fn select(&self, indices: &Tensor) -> Result<(Vec<Tensor>, Tensor)> {
        let inputs = self
            .inputs
            .iter()
            .map(|x| x.index_select(indices, 0))
            .collect::<Result<_>>()?;
        Ok((inputs, self.labels.index_select(indices, 0)?))
    }

    fn subset(&self, indices: &[u32]) -> Result<Split> {
        let indices = Tensor::from_slice(indices, indices.len(), self.labels.device())?;
        let (inputs, labels) = self.select(&indices)?;
        Ok(Split { inputs, labels })
    }
}

#[derive(Clone)]
pub struct Dataset {
    pub train: Split,
    /// Held out from the training data for model selection, early stopping and MSLR.
    pub validation: Option<Split>,
    pub test: Split,
    pub classes: usize,
    /// Shape of one sample of each modality, without the batch axis.
    pub input_shapes: Vec<Vec<usize>>,
}

impl Dataset {
    /// Moves `fraction` of every class of the training split (rounded, at least one sample
    /// of each class that has two) into a validation split, drawn with `seed`. A dataset that
    /// already has a validation split keeps it.
    pub fn hold_out_validation(&mut self, fraction: f64, seed: u64) -> Result<()> {
        if fraction <= 0.0 || self.validation.is_some() {
            return Ok(());
        }
        let labels = self.train.labels.to_vec1::<u32>()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut train, mut validation) = (Vec::new(), Vec::new());
        for class in 0..self.classes as u32 {
            let mut members: Vec<u32> = (0..labels.len() as u32)
                .filter(|&i| labels[i as usize] == class)
                .collect();
            members.shuffle(&mut rng);
            let held = ((members.len() as f64 * fraction).round() as usize)
                .max(usize::from(members.len() >= 2))
                .min(members.len().saturating_sub(1));
            validation.extend_from_slice(&members[..held]);
            train.extend_from_slice(&members[held..]);
        }
        train.sort_unstable();
        validation.sort_unstable();
        self.validation = Some(self.train.subset(&validation)?);
        self.train = self.train.subset(&train)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn validation_is_stratified_and_disjoint() -> Result<()> {
        let dev = Device::Cpu;
        // 100 samples, classes 0..4 with 10, 20, 30, 40 members; feature = index.
        let labels: Vec<u32> = (0..100u32)
            .map(|i| [0, 1, 1, 2, 2, 2, 3, 3, 3, 3][i as usize % 10])
            .collect();
        let features: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let mut data = Dataset {
            train: Split {
                inputs: vec![Tensor::from_vec(features, (100, 1), &dev)?],
                labels: Tensor::from_vec(labels, 100, &dev)?,
            },
            validation: None,
            test: Split {
                inputs: vec![],
                labels: Tensor::zeros(0, candle_core::DType::U32, &dev)?,
            },
            classes: 4,
            input_shapes: vec![vec![1]],
        };
        data.hold_out_validation(0.1, 0)?;
        let validation = data.validation.as_ref().unwrap();
        let mut counts = [0; 4];
        for y in validation.labels.to_vec1::<u32>()? {
            counts[y as usize] += 1;
        }
        assert_eq!(counts, [1, 2, 3, 4]);
        assert_eq!(data.train.len(), 90);
        let mut seen: Vec<f32> = data.train.inputs[0].flatten_all()?.to_vec1()?;
        seen.extend(validation.inputs[0].flatten_all()?.to_vec1::<f32>()?);
        seen.sort_by(f32::total_cmp);
        assert_eq!(seen, (0..100).map(|i| i as f32).collect::<Vec<_>>());
        Ok(())
    }
}
