//! Data as the engine sees it: splits of labelled samples, one tensor per modality. Small
//! datasets live in memory as tensors; large ones stay on disk and a [`SampleReader`] decodes
//! each batch in parallel on a background thread, and puts it on the device, while the
//! previous batch trains.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Error, Result, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

/// Batches decoded ahead of the one training: enough to hide decoding behind a step without
/// holding many batches of video in memory.
const PREFETCH: usize = 2;

/// Reads samples of a dataset that stays on disk.
pub trait SampleReader: Send + Sync {
    /// Shape of one sample of each modality, without the batch axis.
    fn shapes(&self) -> Vec<Vec<usize>>;

    /// Sample `item`: one row-major buffer per modality, of the sizes [`Self::shapes`] gives.
    /// `augment` seeds the training-time random transforms (crops, flips, frame choice);
    /// `None` asks for the deterministic evaluation transforms.
    fn read(
        &self,
        item: usize,
        augment: Option<u64>,
    ) -> std::result::Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Input values per evaluation batch, about 16 MB: whole-split passes of tabular data go
/// 512 at a time, video clips a few dozen, so activations stay within training's footprint.
const EVALUATION_VALUES: usize = 1 << 22;

/// The batch size of passes over a whole split whose samples hold `sample_values` values each:
/// up to 512 samples, fewer for large ones.
pub fn evaluation_batch(sample_values: usize) -> usize {
    (EVALUATION_VALUES / sample_values.max(1)).clamp(1, 512)
}

/// Labelled samples: `labels` is `[n]` (u32); a batch holds `[b, ...shape_m]` f32 per modality.
#[derive(Clone)]
pub struct Split {
    /// Class of every sample.
    pub labels: Tensor,
    samples: Samples,
}

#[derive(Clone)]
enum Samples {
    /// `[n, ...shape_m]` per modality.
    Memory(Vec<Tensor>),
    /// Sample `i` of the split is `items[i]` of the reader.
    Disk {
        reader: Arc<dyn SampleReader>,
        items: Vec<usize>,
    },
}

/// One batch: inputs per modality and labels.
pub type Batch = (Vec<Tensor>, Tensor);

impl Split {
    /// A split held in memory: `inputs[m]` is `[n, ...shape_m]`, `labels` `[n]`.
    pub fn new(inputs: Vec<Tensor>, labels: Tensor) -> Self {
        Self {
            labels,
            samples: Samples::Memory(inputs),
        }
    }

    /// A split read from disk: sample `i` is `reader`'s item `items[i]`, labelled `labels[i]`.
    pub fn on_disk(
        reader: Arc<dyn SampleReader>,
        items: Vec<usize>,
        labels: &[u32],
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            labels: Tensor::from_slice(labels, labels.len(), device)?,
            samples: Samples::Disk { reader, items },
        })
    }

    /// Samples in the split.
    pub fn len(&self) -> usize {
        self.labels.dims1().unwrap_or(0)
    }

    /// Whether the split has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The in-memory inputs, `None` for a split read from disk.
    pub fn tensors(&self) -> Option<&[Tensor]> {
        match &self.samples {
            Samples::Memory(inputs) => Some(inputs),
            Samples::Disk { .. } => None,
        }
    }

    /// The samples at `order`, `batch` at a time. `augment` seeds training-time transforms
    /// of samples read from disk (each sample's own seed mixes it with the sample index, so
    /// the result does not depend on thread timing); in-memory samples are not transformed.
    pub fn batches(&self, order: &[u32], batch: usize, augment: Option<u64>) -> Batches {
        let chunks: Vec<Vec<u32>> = order.chunks(batch.max(1)).map(<[u32]>::to_vec).collect();
        match &self.samples {
            Samples::Memory(inputs) => Batches::Memory {
                inputs: inputs.clone(),
                labels: self.labels.clone(),
                chunks: chunks.into_iter(),
            },
            Samples::Disk { reader, items } => {
                let (sender, receiver) = sync_channel(PREFETCH);
                let (reader, items) = (reader.clone(), items.clone());
                let labels = self.labels.clone();
                let producer = std::thread::spawn(move || {
                    let shapes = reader.shapes();
                    for chunk in chunks {
                        let batch = chunk
                            .par_iter()
                            .map(|&i| {
                                let seed = augment.map(|s| sample_seed(s, i));
                                reader.read(items[i as usize], seed).map_err(Error::wrap)
                            })
                            .collect::<Result<Vec<_>>>()
                            .and_then(|samples| assemble(&shapes, &labels, &chunk, &samples));
                        // A closed channel means the consumer stopped (a cancelled run).
                        if sender.send(batch).is_err() {
                            return;
                        }
                    }
                });
                Batches::Disk {
                    receiver: Some(receiver),
                    producer: Some(producer),
                }
            }
        }
    }

    /// Values in one sample, all modalities together.
    fn sample_values(&self) -> usize {
        match &self.samples {
            Samples::Memory(inputs) => (inputs.iter())
                .map(|x| x.dims().iter().skip(1).product::<usize>())
                .sum(),
            Samples::Disk { reader, .. } => (reader.shapes().iter())
                .map(|s| s.iter().product::<usize>())
                .sum(),
        }
    }

    /// The batch size for passes over the whole split (evaluation, prototypes): up to 512
    /// samples, fewer for large ones.
    pub fn evaluation_batch(&self) -> usize {
        evaluation_batch(self.sample_values())
    }

    /// Every sample, in order, in evaluation form.
    pub fn in_order(&self, batch: usize) -> Batches {
        let order: Vec<u32> = (0..self.len() as u32).collect();
        self.batches(&order, batch, None)
    }

    fn subset(&self, indices: &[u32]) -> Result<Split> {
        let index = Tensor::from_slice(indices, indices.len(), self.labels.device())?;
        let labels = self.labels.index_select(&index, 0)?;
        let samples = match &self.samples {
            Samples::Memory(inputs) => Samples::Memory(
                inputs
                    .iter()
                    .map(|x| x.index_select(&index, 0))
                    .collect::<Result<_>>()?,
            ),
            Samples::Disk { reader, items } => Samples::Disk {
                reader: reader.clone(),
                items: indices.iter().map(|&i| items[i as usize]).collect(),
            },
        };
        Ok(Split { labels, samples })
    }
}

/// SplitMix64's finaliser over the epoch seed and the sample index: independent streams
/// per sample from one seed.
fn sample_seed(seed: u64, index: u32) -> u64 {
    let mut z = seed ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Batches of a split, from [`Split::batches`].
pub enum Batches {
    Memory {
        inputs: Vec<Tensor>,
        labels: Tensor,
        chunks: std::vec::IntoIter<Vec<u32>>,
    },
    Disk {
        receiver: Option<Receiver<Result<Batch>>>,
        producer: Option<JoinHandle<()>>,
    },
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        match self {
            Batches::Memory {
                inputs,
                labels,
                chunks,
            } => {
                let chunk = chunks.next()?;
                Some((|| {
                    let index = Tensor::from_slice(&chunk, chunk.len(), labels.device())?;
                    let x = (inputs.iter())
                        .map(|x| x.index_select(&index, 0))
                        .collect::<Result<_>>()?;
                    Ok((x, labels.index_select(&index, 0)?))
                })())
            }
            Batches::Disk { receiver, .. } => receiver.as_ref()?.recv().ok(),
        }
    }
}

/// The decoded samples of `chunk` (one buffer per modality each) as a batch on the labels'
/// device. Done by the decoding thread: the copies (64 MB for 32 CREMA-D clips) then overlap
/// the step training, rather than come between two steps.
fn assemble(
    shapes: &[Vec<usize>],
    labels: &Tensor,
    chunk: &[u32],
    samples: &[Vec<Vec<f32>>],
) -> Result<Batch> {
    let device = labels.device();
    let index = Tensor::from_slice(chunk, chunk.len(), device)?;
    let x = (shapes.iter().enumerate())
        .map(|(m, shape)| {
            let flat: Vec<f32> = samples.iter().flat_map(|s| s[m].iter().copied()).collect();
            let mut dims = vec![chunk.len()];
            dims.extend(shape);
            Tensor::from_vec(flat, dims, device)
        })
        .collect::<Result<_>>()?;
    Ok((x, labels.index_select(&index, 0)?))
}

impl Drop for Batches {
    fn drop(&mut self) {
        if let Batches::Disk {
            receiver, producer, ..
        } = self
        {
            // Closing the channel first lets a producer blocked on a full channel finish.
            drop(receiver.take());
            if let Some(producer) = producer.take() {
                let _ = producer.join();
            }
        }
    }
}

/// A dataset as training reads it: its splits, classes and sample shapes.
#[derive(Clone)]
pub struct Dataset {
    /// What the model is trained on.
    pub train: Split,
    /// Held out from the training data for model selection, early stopping and MSLR.
    pub validation: Option<Split>,
    /// What the results are reported on.
    pub test: Split,
    /// Number of classes; labels are `0..classes`.
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
            train: Split::new(
                vec![Tensor::from_vec(features, (100, 1), &dev)?],
                Tensor::from_vec(labels, 100, &dev)?,
            ),
            validation: None,
            test: Split::new(vec![], Tensor::zeros(0, candle_core::DType::U32, &dev)?),
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
        let mut seen: Vec<f32> = data.train.tensors().unwrap()[0].flatten_all()?.to_vec1()?;
        seen.extend(
            validation.tensors().unwrap()[0]
                .flatten_all()?
                .to_vec1::<f32>()?,
        );
        seen.sort_by(f32::total_cmp);
        assert_eq!(seen, (0..100).map(|i| i as f32).collect::<Vec<_>>());
        Ok(())
    }

    /// Item `i` reads as `[i, seed % 1000]` (seed -1 in evaluation form); item 13 is unreadable.
    struct Numbers;

    impl SampleReader for Numbers {
        fn shapes(&self) -> Vec<Vec<usize>> {
            vec![vec![2]]
        }

        fn read(
            &self,
            item: usize,
            augment: Option<u64>,
        ) -> std::result::Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>> {
            if item == 13 {
                return Err("numbers/13: unreadable".into());
            }
            let seed = augment.map_or(-1.0, |s| (s % 1000) as f32);
            Ok(vec![vec![item as f32, seed]])
        }
    }

    fn disk_split(items: Vec<usize>) -> Result<Split> {
        let labels: Vec<u32> = items.iter().map(|&i| (i % 3) as u32).collect();
        Split::on_disk(Arc::new(Numbers), items, &labels, &Device::Cpu)
    }

    #[test]
    fn disk_batches_follow_the_order_with_per_sample_seeds() -> Result<()> {
        let split = disk_split((100..110).collect())?;
        let order = [9, 0, 4, 5, 1, 2, 3, 6, 7, 8];
        type Rows = Vec<(Vec<Vec<f32>>, Vec<u32>)>;
        let read = |augment| -> Result<Rows> {
            split
                .batches(&order, 4, augment)
                .map(|b| {
                    let (x, y) = b?;
                    Ok((x[0].to_vec2()?, y.to_vec1()?))
                })
                .collect()
        };
        let a = read(Some(7))?;
        assert_eq!(a.len(), 3);
        let items: Vec<f32> = a.iter().flat_map(|(x, _)| x.iter().map(|r| r[0])).collect();
        assert_eq!(items, order.map(|i| 100.0 + i as f32));
        let labels: Vec<u32> = a.iter().flat_map(|(_, y)| y.clone()).collect();
        assert_eq!(labels, order.map(|i| (100 + i) % 3));
        // Same seed, same transforms whatever the thread timing; another seed differs.
        assert_eq!(a, read(Some(7))?);
        assert_ne!(a, read(Some(8))?);
        let seeds: Vec<f32> = a.iter().flat_map(|(x, _)| x.iter().map(|r| r[1])).collect();
        assert!(seeds.iter().all(|&s| s >= 0.0));
        let plain = read(None)?;
        assert!(plain.iter().all(|(x, _)| x.iter().all(|r| r[1] == -1.0)));
        Ok(())
    }

    #[test]
    fn a_failing_read_is_an_error_and_stopping_early_is_clean() -> Result<()> {
        let split = disk_split((0..40).collect())?;
        let results: Vec<Result<Batch>> = split.in_order(5).collect();
        assert_eq!(results.len(), 8);
        let error = results[2].as_ref().expect_err("batch 2 holds item 13");
        assert!(error.to_string().contains("numbers/13"), "{error}");
        // Dropping the iterator after one batch stops the producer (the test would hang).
        let mut batches = split.in_order(1);
        assert!(batches.next().is_some());
        drop(batches);
        Ok(())
    }

    #[test]
    fn held_out_validation_of_a_disk_split_keeps_its_items() -> Result<()> {
        let mut data = Dataset {
            train: disk_split((100..130).collect())?,
            validation: None,
            test: disk_split(vec![])?,
            classes: 3,
            input_shapes: vec![vec![2]],
        };
        data.hold_out_validation(0.2, 0)?;
        let items = |split: &Split| -> Result<Vec<u32>> {
            let mut out = Vec::new();
            for batch in split.in_order(7) {
                let (x, y) = batch?;
                for (row, label) in x[0].to_vec2::<f32>()?.iter().zip(y.to_vec1::<u32>()?) {
                    assert_eq!(row[0] as u32 % 3, label);
                    out.push(row[0] as u32);
                }
            }
            Ok(out)
        };
        let (train, validation) = (
            items(&data.train)?,
            items(data.validation.as_ref().unwrap())?,
        );
        assert_eq!((train.len(), validation.len()), (24, 6));
        let mut all = [train, validation].concat();
        all.sort_unstable();
        assert_eq!(all, (100..130).collect::<Vec<_>>());
        Ok(())
    }

    #[test]
    fn evaluation_batches_shrink_for_large_samples() -> Result<()> {
        let small = Split::new(
            vec![Tensor::zeros(
                (3, 64),
                candle_core::DType::F32,
                &Device::Cpu,
            )?],
            Tensor::zeros(3, candle_core::DType::U32, &Device::Cpu)?,
        );
        assert_eq!(small.evaluation_batch(), 512);
        assert_eq!(disk_split(vec![1])?.evaluation_batch(), 512);
        // A CREMA-D sample, a 257 x 188 spectrogram and a 3 x 224 x 224 frame, is 198,844
        // values: 21 per batch of 2^22.
        let crema = Split::new(
            vec![
                Tensor::zeros((2, 1, 257, 188), candle_core::DType::F32, &Device::Cpu)?,
                Tensor::zeros((2, 1, 3, 224, 224), candle_core::DType::F32, &Device::Cpu)?,
            ],
            Tensor::zeros(2, candle_core::DType::U32, &Device::Cpu)?,
        );
        assert_eq!(crema.evaluation_batch(), 21);
        Ok(())
    }
}
