//! Built-in synthetic multimodal data with controllable imbalance.
//!
//! Each class c has a mean vector mu_{c,m} ~ N(0, I) per modality m; a sample of class c is
//! mu_{c,m} + noise_m * N(0, I) in every modality. A larger noise_m makes modality m weaker,
//! so a run can start with a known, tunable imbalance and no files at all.

use balancelab_shared::SyntheticConfig;
use candle_core::{Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::engine::{Dataset, Split};

/// Draws the dataset; the same config and seed always give the same samples.
pub fn synthetic_dataset(config: &SyntheticConfig, seed: u64, device: &Device) -> Result<Dataset> {
    let mut rng = StdRng::seed_from_u64(seed);
    let classes = config.classes as usize;
    let dim = config.features as usize;
    let means: Vec<Vec<f32>> = config
        .noise
        .iter()
        .map(|_| {
            (0..classes * dim)
                .map(|_| rng.sample(StandardNormal))
                .collect()
        })
        .collect();
    let mut draw = |n: usize| -> Result<Split> {
        let labels: Vec<u32> = (0..n)
            .map(|_| rng.random_range(0..classes as u32))
            .collect();
        let inputs = config
            .noise
            .iter()
            .zip(&means)
            .map(|(&noise, means)| {
                let mut values = Vec::with_capacity(n * dim);
                for &y in &labels {
                    let mean = &means[y as usize * dim..(y as usize + 1) * dim];
                    values.extend(mean.iter().map(|&mu| {
                        let e: f32 = rng.sample(StandardNormal);
                        mu + noise as f32 * e
                    }));
                }
                Tensor::from_vec(values, (n, dim), device)
            })
            .collect::<Result<_>>()?;
        Ok(Split::new(inputs, Tensor::from_vec(labels, n, device)?))
    };
    let train = draw(config.train_samples as usize)?;
    let test = draw(config.test_samples as usize)?;
    Ok(Dataset {
        train,
        validation: None,
        test,
        classes,
        input_shapes: vec![vec![dim]; config.noise.len()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_sets_the_spread_around_the_class_mean() -> Result<()> {
        let config = SyntheticConfig {
            classes: 2,
            features: 50,
            train_samples: 2000,
            test_samples: 10,
            noise: vec![0.5, 2.0],
        };
        let data = synthetic_dataset(&config, 1, &Device::Cpu)?;
        assert_eq!(data.train.len(), 2000);
        assert_eq!(data.train.tensors().unwrap()[1].dims(), [2000, 50]);
        // Within-class standard deviation of each modality, from samples of class 0.
        let labels = data.train.labels.to_vec1::<u32>()?;
        let zeros: Vec<u32> = (0..2000u32).filter(|&i| labels[i as usize] == 0).collect();
        let idx = Tensor::new(zeros.as_slice(), &Device::Cpu)?;
        for (m, expected) in [(0, 0.5), (1, 2.0)] {
            let x = data.train.tensors().unwrap()[m].index_select(&idx, 0)?;
            let centered = x.broadcast_sub(&x.mean_keepdim(0)?)?;
            let std = centered.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()? as f64;
            assert!(
                (std - expected).abs() < 0.05 * expected,
                "modality {m}: std {std}"
            );
        }
        Ok(())
    }

    #[test]
    fn same_seed_same_data() -> Result<()> {
        let config = SyntheticConfig::default();
        let a = synthetic_dataset(&config, 3, &Device::Cpu)?;
        let b = synthetic_dataset(&config, 3, &Device::Cpu)?;
        let first = |d: &Dataset| d.test.tensors().unwrap()[1].flatten_all()?.to_vec1::<f32>();
        assert_eq!(first(&a)?, first(&b)?);
        Ok(())
    }
}
