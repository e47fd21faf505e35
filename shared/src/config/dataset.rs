//! The data a run trains on: [`DatasetConfig`], one variant per dataset, and each
//! dataset's settings.

use serde::{Deserialize, Serialize};

/// The data a run trains on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatasetConfig {
    /// Built-in Gaussian class clusters, one feature vector per modality; a modality with
    /// more noise is weaker, which is how imbalance is controlled.
    Synthetic(SyntheticConfig),
    /// UCI Multiple Features: 2,000 handwritten digits seen through several feature sets
    /// (views), each a modality. Read from the data directory.
    Mfeat(MfeatConfig),
    /// scikit-learn's 8x8 digits, left and right image halves as two modalities.
    /// Read from the data directory.
    DigitsHalves(SplitConfig),
    /// "AV digits": Free Spoken Digit Dataset recordings (log spectrograms) paired with an
    /// MNIST image of the same digit. Read from the data directory.
    AvDigits(AvDigitsConfig),
    /// CREMA-D (Cao et al., 2014): 7,442 clips of 91 actors, 6 emotions; audio + frames.
    /// Read from `{data dir}/{root}` in the layout of the reference code.
    CremaD(CremaDConfig),
    /// AVE (Tian et al., 2018): 4,143 videos of 28 audio-visual events; the event's audio and
    /// frames within its window. Read from `{data dir}/{root}`.
    Ave(AveConfig),
    /// UCF101 (Soomro et al., 2012): 101 actions; audio + RGB (the classes with sound) or
    /// RGB + optical flow. Read from `{data dir}/{root}`.
    Ucf101(Ucf101Config),
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self::Synthetic(SyntheticConfig::default())
    }
}

impl DatasetConfig {
    /// Number of modalities the dataset provides.
    pub fn modalities(&self) -> usize {
        match self {
            Self::Synthetic(s) => s.noise.len(),
            Self::Mfeat(m) => m.views.len(),
            Self::DigitsHalves(_)
            | Self::AvDigits(_)
            | Self::CremaD(_)
            | Self::Ave(_)
            | Self::Ucf101(_) => 2,
        }
    }

    /// Display names of the modalities, in model order.
    pub fn modality_names(&self) -> Vec<String> {
        match self {
            Self::Synthetic(s) => (s.noise.iter().enumerate())
                .map(|(m, n)| format!("m{m} (noise {n})"))
                .collect(),
            Self::Mfeat(m) => m.views.iter().map(|v| v.name().to_owned()).collect(),
            Self::DigitsHalves(_) => vec!["left half".into(), "right half".into()],
            Self::AvDigits(_) => vec!["audio".into(), "image".into()],
            Self::CremaD(_) | Self::Ave(_) => vec!["audio".into(), "visual".into()],
            Self::Ucf101(u) => match u.modalities {
                Ucf101Modalities::AudioRgb => vec!["audio".into(), "rgb".into()],
                Ucf101Modalities::RgbFlow => vec!["rgb".into(), "flow".into()],
            },
        }
    }

    /// The `kind` tag, as in the JSON and TOML forms.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Synthetic(_) => "synthetic",
            Self::Mfeat(_) => "mfeat",
            Self::DigitsHalves(_) => "digits_halves",
            Self::AvDigits(_) => "av_digits",
            Self::CremaD(_) => "crema_d",
            Self::Ave(_) => "ave",
            Self::Ucf101(_) => "ucf101",
        }
    }
}

/// How a dataset without a published split is split: stratified by class, seeded
/// separately from the run so that runs with different seeds share one split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// Fraction of every class held out for testing.
    pub test_fraction: f64,
    /// Seed of the split, independent of the run's seed.
    pub split_seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            test_fraction: 0.3,
            split_seed: 0,
        }
    }
}

/// The six FSDD speakers.
pub const FSDD_SPEAKERS: [&str; 6] = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"];

/// Which FSDD recordings are the test set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AvDigitsSplit {
    /// Takes 0-4 of every speaker and digit (FSDD's convention): 2,700 train, 300 test.
    #[default]
    Takes,
    /// Every recording of `test_speaker`: 2,500 train, 500 test, a speaker never heard.
    Speaker,
}

/// AV digits: which recordings are tested, and how they are paired with MNIST images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AvDigitsConfig {
    /// Which recordings are the test set.
    pub split: AvDigitsSplit,
    /// The held-out speaker of the `speaker` split.
    pub test_speaker: String,
    /// Which MNIST image of its digit each recording is paired with (train recordings with
    /// MNIST's training images, test recordings with its test images).
    pub pairing_seed: u64,
}

impl Default for AvDigitsConfig {
    fn default() -> Self {
        Self {
            split: AvDigitsSplit::Takes,
            test_speaker: "theo".into(),
            pairing_seed: 0,
        }
    }
}

/// Which CREMA-D clips are the test set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CremaDSplit {
    /// The `train.csv` / `test.csv` of the reference code (6,698 / 744 clips). Its speakers
    /// appear on both sides.
    #[default]
    Csv,
    /// Speaker-independent: actors in order of their id, actor `i` in fold `i % folds`; the
    /// test set is every clip of fold `fold`.
    SpeakerFold,
}

/// CREMA-D: where it is, which clips are tested, and the frames taken per clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CremaDConfig {
    /// Folder of the dataset under the data directory.
    pub root: String,
    /// Which clips are the test set.
    pub split: CremaDSplit,
    /// Number of speaker folds of the `speaker_fold` split.
    pub folds: u32,
    /// The fold held out for testing (from 0) in the `speaker_fold` split.
    pub fold: u32,
    /// The reference code's `--fps`: frames per clip (1-3 in the papers).
    pub frames: u32,
    /// Side of the square frames fed to the model, in pixels.
    pub image_size: u32,
}

impl Default for CremaDConfig {
    fn default() -> Self {
        Self {
            root: "CREMA-D".into(),
            split: CremaDSplit::Csv,
            folds: 5,
            fold: 0,
            frames: 1,
            image_size: 224,
        }
    }
}

/// AVE: where it is and the frames taken per clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AveConfig {
    /// Folder of the dataset under the data directory.
    pub root: String,
    /// Frames per clip, drawn from the event window (4 in the papers).
    pub frames: u32,
    /// Side of the square frames fed to the model, in pixels.
    pub image_size: u32,
}

impl Default for AveConfig {
    fn default() -> Self {
        Self {
            root: "AVE_Dataset".into(),
            frames: 4,
            image_size: 224,
        }
    }
}

/// Which two UCF101 streams are the modalities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Ucf101Modalities {
    /// Audio + RGB, over the videos that have a sound track (51 classes).
    #[default]
    AudioRgb,
    /// RGB + TV-L1 optical flow, all 101 classes.
    RgbFlow,
}

/// UCF101: where it is, which streams and official split, and the frames per clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Ucf101Config {
    /// Folder of the dataset under the data directory.
    pub root: String,
    /// The two streams used as modalities.
    pub modalities: Ucf101Modalities,
    /// Which of the three official train/test splits (1-3).
    pub split: u32,
    /// Frames per clip.
    pub frames: u32,
    /// Side of the square frames fed to the model, in pixels.
    pub image_size: u32,
}

impl Default for Ucf101Config {
    fn default() -> Self {
        Self {
            root: "UCF101".into(),
            modalities: Ucf101Modalities::AudioRgb,
            split: 1,
            frames: 3,
            image_size: 224,
        }
    }
}

/// The six feature sets of UCI Multiple Features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MfeatView {
    /// 76 Fourier coefficients of the character shapes.
    Fou,
    /// 216 profile correlations.
    Fac,
    /// 64 Karhunen-Loeve coefficients.
    Kar,
    /// 240 pixel averages in 2 x 3 windows.
    Pix,
    /// 47 Zernike moments.
    Zer,
    /// 6 morphological features.
    Mor,
}

impl MfeatView {
    /// Every view, in the order of the dataset's files.
    pub const ALL: [MfeatView; 6] = [
        Self::Fou,
        Self::Fac,
        Self::Kar,
        Self::Pix,
        Self::Zer,
        Self::Mor,
    ];

    /// Features per sample in the view's file.
    pub fn features(self) -> usize {
        match self {
            Self::Fou => 76,
            Self::Fac => 216,
            Self::Kar => 64,
            Self::Pix => 240,
            Self::Zer => 47,
            Self::Mor => 6,
        }
    }

    /// The view's name as in the JSON and TOML forms (`fac`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Fou => "fou",
            Self::Fac => "fac",
            Self::Kar => "kar",
            Self::Pix => "pix",
            Self::Zer => "zer",
            Self::Mor => "mor",
        }
    }
}

/// UCI Multiple Features: which views are the modalities, and the split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MfeatConfig {
    /// The views used as modalities, in model order. fac + mor is strongly imbalanced.
    pub views: Vec<MfeatView>,
    /// As in [`SplitConfig`].
    pub test_fraction: f64,
    /// As in [`SplitConfig`].
    pub split_seed: u64,
}

impl Default for MfeatConfig {
    fn default() -> Self {
        let split = SplitConfig::default();
        Self {
            views: vec![MfeatView::Fac, MfeatView::Mor],
            test_fraction: split.test_fraction,
            split_seed: split.split_seed,
        }
    }
}

impl MfeatConfig {
    /// The split settings as a [`SplitConfig`].
    pub fn split(&self) -> SplitConfig {
        SplitConfig {
            test_fraction: self.test_fraction,
            split_seed: self.split_seed,
        }
    }
}

/// Generated Gaussian class clusters, one feature vector per modality.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of classes.
    pub classes: u32,
    /// Feature dimension of every modality.
    pub features: u32,
    /// Samples generated for training (and validation).
    pub train_samples: u32,
    /// Samples generated for testing.
    pub test_samples: u32,
    /// Standard deviation of the noise added to each modality's class mean; its length is
    /// the number of modalities. The class means have unit variance per feature.
    pub noise: Vec<f64>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            classes: 8,
            features: 16,
            train_samples: 4000,
            test_samples: 1000,
            noise: vec![1.5, 3.0],
        }
    }
}
