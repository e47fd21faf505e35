//! "AV digits": Free Spoken Digit Dataset recordings paired with MNIST images of the same
//! digit, a small real audio-visual set in the spirit of AV-MNIST.
//!
//! Audio: `fsdd/recordings/{digit}_{speaker}_{take}.wav`, 8 kHz mono, tiled to 1 s as the
//! CREMA-D reference code tiles its clips, log-magnitude STFT (n_fft 256, hop 128):
//! 129 x 63, standardised with the training split's mean and deviation. Image: MNIST 28 x 28,
//! normalised with MNIST's usual mean 0.1307 and deviation 0.3081. Each recording gets an
//! image of its digit from a seeded per-digit permutation: training recordings from MNIST's
//! training part, test recordings from its test part, so no image is shared across splits.

use std::path::{Path, PathBuf};

use balancelab_shared::{AvDigitsConfig, AvDigitsSplit};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::audio::{read_wav, tile, LogSpectrogram};
use super::mnist::{load_mnist_part, MnistPart};
use super::{files_with_extension, DataError, Footprint};
use crate::engine::{Dataset, Split};

const SAMPLE_RATE: u32 = 8000;
const CLIP_SAMPLES: usize = 8000;
const N_FFT: usize = 256;
const HOP: usize = 128;
const CLASSES: usize = 10;

/// One FSDD recording, from its file name.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    /// The digit spoken, 0-9: the class.
    pub digit: u8,
    /// The speaker's name (`george`, `theo`, ...).
    pub speaker: String,
    /// The take's number; takes 0-4 are the test split by takes.
    pub take: u32,
    /// The wav file.
    pub path: PathBuf,
}

/// FSDD's wav files: `{root}/fsdd/recordings`.
pub fn recordings_dir(root: &Path) -> PathBuf {
    root.join("fsdd").join("recordings")
}

/// Every `.wav` in the recordings folder, sorted by name; a wav whose name does not follow
/// `{digit}_{speaker}_{take}.wav` is an error naming it.
pub fn list_recordings(root: &Path) -> Result<Vec<Recording>, DataError> {
    let dir = recordings_dir(root);
    let mut recordings = Vec::new();
    for path in files_with_extension(&dir, &["wav"])? {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let parts: Vec<&str> = stem.split('_').collect();
        let parsed = match parts[..] {
            [digit, speaker, take] => digit
                .parse::<u8>()
                .ok()
                .filter(|&d| d < 10)
                .zip(take.parse::<u32>().ok())
                .map(|(digit, take)| (digit, speaker.to_owned(), take)),
            _ => None,
        };
        let Some((digit, speaker, take)) = parsed else {
            return Err(DataError::Format {
                path,
                message: "not named {digit}_{speaker}_{take}.wav".into(),
            });
        };
        recordings.push(Recording {
            digit,
            speaker,
            take,
            path,
        });
    }
    if recordings.is_empty() {
        return Err(DataError::Format {
            path: dir,
            message: "no recordings".into(),
        });
    }
    Ok(recordings)
}

/// Log spectrograms of `recordings`, decoded on every core.
fn spectrograms(
    stft: &LogSpectrogram,
    recordings: &[&Recording],
) -> Result<Vec<Vec<f32>>, DataError> {
    let one = |r: &Recording| -> Result<Vec<f32>, DataError> {
        let (samples, rate) = read_wav(&r.path)?;
        if rate != SAMPLE_RATE {
            return Err(DataError::Format {
                path: r.path.clone(),
                message: format!("sample rate {rate} Hz, FSDD is {SAMPLE_RATE} Hz"),
            });
        }
        Ok(stft.compute(&tile(&samples, CLIP_SAMPLES)))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = recordings.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = recordings
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|r| one(r)).collect::<Result<Vec<_>, _>>())
            })
            .collect();
        let mut all = Vec::with_capacity(recordings.len());
        for worker in workers {
            all.extend(worker.join().expect("a decoding thread panicked")?);
        }
        Ok(all)
    })
}

/// For each recording, the index of an MNIST image of its digit.
fn pair(recordings: &[&Recording], mnist: &MnistPart, seed: u64) -> Result<Vec<usize>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_digit: Vec<Vec<usize>> = vec![Vec::new(); CLASSES];
    for i in 0..mnist.len() {
        by_digit[mnist.labels[i] as usize].push(i);
    }
    for images in &mut by_digit {
        images.shuffle(&mut rng);
    }
    let mut used = [0usize; CLASSES];
    recordings
        .iter()
        .map(|r| {
            let images = &by_digit[r.digit as usize];
            if images.is_empty() {
                return Err(format!("MNIST has no image of digit {}", r.digit));
            }
            let i = images[used[r.digit as usize] % images.len()];
            used[r.digit as usize] += 1;
            Ok(i)
        })
        .collect()
}

/// FSDD's recordings: 6 speakers, 10 digits, 50 takes each.
const RECORDINGS: usize = 3000;

/// The spectrogram and image shapes, and every recording (paired with an image) in memory.
pub fn footprint() -> Footprint {
    let stft = LogSpectrogram::new(N_FFT, HOP);
    let side = MnistPart::SIDE;
    Footprint {
        shapes: vec![
            vec![1, stft.bins(), stft.frames(CLIP_SAMPLES)],
            vec![1, side, side],
        ],
        classes: CLASSES,
        samples_in_memory: Some(RECORDINGS),
    }
}

/// Loads AV digits into memory, split by take or by speaker as `config` asks, each recording
/// paired with an MNIST image of its digit.
pub fn load_av_digits(
    root: &Path,
    config: &AvDigitsConfig,
    device: &Device,
) -> Result<Dataset, DataError> {
    let recordings = list_recordings(root)?;
    let is_test = |r: &Recording| match config.split {
        AvDigitsSplit::Takes => r.take < 5,
        AvDigitsSplit::Speaker => r.speaker == config.test_speaker,
    };
    let (test, train): (Vec<&Recording>, Vec<&Recording>) =
        recordings.iter().partition(|r| is_test(r));
    let no_samples = |what: &str| DataError::Format {
        path: recordings_dir(root),
        message: format!("the {what} split has no recordings"),
    };
    if train.is_empty() {
        return Err(no_samples("training"));
    }
    if test.is_empty() {
        return Err(no_samples("test"));
    }
    let stft = LogSpectrogram::new(N_FFT, HOP);
    let train_audio = spectrograms(&stft, &train)?;
    let test_audio = spectrograms(&stft, &test)?;
    // One mean and deviation over every training spectrogram value.
    let (mean, std) = mean_std(&train_audio);

    let audio_shape = [1, stft.bins(), stft.frames(CLIP_SAMPLES)];
    let side = MnistPart::SIDE;
    let split =
        |recordings: &[&Recording], audio: Vec<Vec<f32>>, test: bool| -> Result<Split, DataError> {
            let mnist = load_mnist_part(root, test)?;
            let (images_path, _) = super::mnist::mnist_paths(root, test);
            let paired = pair(recordings, &mnist, config.pairing_seed).map_err(|message| {
                DataError::Format {
                    path: images_path,
                    message,
                }
            })?;
            let n = recordings.len();
            let audio: Vec<f32> = audio
                .into_iter()
                .flatten()
                .map(|v| (v - mean) / std)
                .collect();
            let images: Vec<f32> = paired
                .iter()
                .flat_map(|&i| {
                    mnist
                        .image(i)
                        .iter()
                        .map(|&p| (f32::from(p) / 255.0 - 0.1307) / 0.3081)
                })
                .collect();
            let labels: Vec<u32> = recordings.iter().map(|r| u32::from(r.digit)).collect();
            Ok(Split::new(
                vec![
                    Tensor::from_vec(
                        audio,
                        (n, audio_shape[0], audio_shape[1], audio_shape[2]),
                        device,
                    )?,
                    Tensor::from_vec(images, (n, 1, side, side), device)?,
                ],
                Tensor::from_vec(labels, n, device)?,
            ))
        };
    Ok(Dataset {
        train: split(&train, train_audio, false)?,
        validation: None,
        test: split(&test, test_audio, true)?,
        classes: CLASSES,
        input_shapes: vec![audio_shape.to_vec(), vec![1, side, side]],
    })
}

/// The mean and the standard deviation (at least 1e-6) of every value of `values`.
fn mean_std(values: &[Vec<f32>]) -> (f32, f32) {
    let count = values.iter().map(Vec::len).sum::<usize>() as f64;
    let mean = values.iter().flatten().map(|&v| f64::from(v)).sum::<f64>() / count;
    let var = (values.iter().flatten())
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / count;
    (mean as f32, (var.sqrt() as f32).max(1e-6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::audio::write_wav;
    use crate::data::mnist::tests::write_mnist;

    /// An FSDD + MNIST tree in the published layout: digits 0-2, two speakers, takes 0-5;
    /// each digit a tone of its own pitch.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let recordings = recordings_dir(dir.path());
        std::fs::create_dir_all(&recordings).unwrap();
        for digit in 0..3u8 {
            for speaker in ["george", "theo"] {
                for take in 0..6 {
                    let pitch = 400.0 * (f32::from(digit) + 1.0);
                    let samples = (0..3000 + 100 * take).map(|n| {
                        ((2.0 * std::f32::consts::PI * pitch * n as f32 / 8000.0).sin() * 8000.0)
                            as i16
                    });
                    let path = recordings.join(format!("{digit}_{speaker}_{take}.wav"));
                    write_wav(&path, 8000, samples).unwrap();
                }
            }
        }
        write_mnist(dir.path(), false, &[0, 1, 2, 0, 1, 2]);
        write_mnist(dir.path(), true, &[2, 1, 0]);
        dir
    }

    #[test]
    fn loads_both_splits_with_paired_images() {
        let dir = fixture();
        let data = load_av_digits(dir.path(), &AvDigitsConfig::default(), &Device::Cpu).unwrap();
        // Takes 0-4 are test: 3 digits x 2 speakers x 5 takes; 1 take each for training.
        assert_eq!((data.train.len(), data.test.len()), (6, 30));
        assert_eq!(data.input_shapes, [vec![1, 129, 63], vec![1, 28, 28]]);
        assert_eq!(footprint().shapes, data.input_shapes);
        // Every image shows the recording's digit: fixture image i is filled with i, and
        // the test part's labels are [2, 1, 0], so digit d's image is filled with 2 - d.
        let labels = data.test.labels.to_vec1::<u32>().unwrap();
        let images = data.test.tensors().unwrap()[1]
            .flatten_from(1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (y, image) in labels.iter().zip(images) {
            let pixel = (image[0] * 0.3081 + 0.1307) * 255.0;
            assert!(
                (pixel - (2 - *y as i32) as f32).abs() < 1e-3,
                "digit {y}: {pixel}"
            );
        }
        let speaker = AvDigitsConfig {
            split: AvDigitsSplit::Speaker,
            ..AvDigitsConfig::default()
        };
        let data = load_av_digits(dir.path(), &speaker, &Device::Cpu).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (18, 18));
    }

    #[test]
    fn bad_recordings_are_named() {
        let dir = fixture();
        let recordings = recordings_dir(dir.path());
        let truncated = recordings.join("1_theo_3.wav");
        let bytes = std::fs::read(&truncated).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2 + 1]).unwrap();
        let err = load_av_digits(dir.path(), &AvDigitsConfig::default(), &Device::Cpu)
            .err()
            .unwrap();
        assert!(err.to_string().contains("1_theo_3.wav"), "{err}");

        let dir = fixture();
        write_wav(
            &recordings_dir(dir.path()).join("2_george_1.wav"),
            16_000,
            [0; 100],
        )
        .unwrap();
        let err = load_av_digits(dir.path(), &AvDigitsConfig::default(), &Device::Cpu)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("2_george_1.wav: sample rate 16000 Hz"),
            "{err}"
        );

        let dir = fixture();
        std::fs::write(recordings_dir(dir.path()).join("two_george.wav"), b"").unwrap();
        let err = load_av_digits(dir.path(), &AvDigitsConfig::default(), &Device::Cpu)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("two_george.wav: not named"),
            "{err}"
        );
    }
}
