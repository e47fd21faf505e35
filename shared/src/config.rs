//! Run configuration: what to train, on which data, with which balancing method.
//!
//! Every field has a default, so `{}` (JSON) or an empty TOML file is a valid run; unknown
//! keys are rejected so a typo never silently falls back to a default.

use serde::{Deserialize, Serialize};

use crate::device::ComputeDevice;
use crate::model::{EncoderConfig, FusionKind, ModelConfig};
use crate::optim::{CoefficientTarget, OptimizerConfig, ScheduleConfig};

/// A complete, reproducible description of one training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub dataset: DatasetConfig,
    pub method: MethodConfig,
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
    /// What the method's coefficients k_m multiply.
    pub coefficients_scale: CoefficientTarget,
    pub epochs: u32,
    pub batch_size: u32,
    /// Base learning rate of the optimiser, before the schedule.
    pub learning_rate: f64,
    /// Fraction of every class of the training split held out for validation (0: none).
    /// Early stopping, MSLR and the imbalance measure need it.
    pub validation_fraction: f64,
    /// Stop when validation accuracy has not improved for this many epochs.
    pub early_stopping_patience: Option<u32>,
    pub seed: u64,
    /// Where the run executes; `cuda:N` needs a build with the `cuda` feature and a GPU.
    pub device: ComputeDevice,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetConfig::default(),
            method: MethodConfig::default(),
            model: ModelConfig::default(),
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            coefficients_scale: CoefficientTarget::default(),
            epochs: 20,
            batch_size: 64,
            learning_rate: 0.01,
            validation_fraction: 0.1,
            early_stopping_patience: None,
            seed: 0,
            device: ComputeDevice::Cpu,
        }
    }
}

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

    /// Whether the dataset is read from the data directory (else it is generated).
    pub fn needs_data_dir(&self) -> bool {
        !matches!(self, Self::Synthetic(_))
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AvDigitsConfig {
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CremaDConfig {
    /// Folder of the dataset under the data directory.
    pub root: String,
    pub split: CremaDSplit,
    pub folds: u32,
    pub fold: u32,
    /// The reference code's `--fps`: frames per clip (1-3 in the papers).
    pub frames: u32,
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AveConfig {
    pub root: String,
    /// Frames per clip, drawn from the event window (4 in the papers).
    pub frames: u32,
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Ucf101Config {
    pub root: String,
    pub modalities: Ucf101Modalities,
    /// Which of the three official train/test splits (1-3).
    pub split: u32,
    pub frames: u32,
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
    pub const ALL: [MfeatView; 6] = [
        Self::Fou,
        Self::Fac,
        Self::Kar,
        Self::Pix,
        Self::Zer,
        Self::Mor,
    ];

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MfeatConfig {
    /// The views used as modalities, in model order. fac + mor is strongly imbalanced.
    pub views: Vec<MfeatView>,
    /// As in [`SplitConfig`].
    pub test_fraction: f64,
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
    pub fn split(&self) -> SplitConfig {
        SplitConfig {
            test_fraction: self.test_fraction,
            split_seed: self.split_seed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    pub classes: u32,
    /// Feature dimension of every modality.
    pub features: u32,
    pub train_samples: u32,
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

/// How the modalities are trained together (see the project's method spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// Cross-entropy of the fused output only. Unimodal heads are trained as linear probes
    /// on detached features, so they measure each encoder without steering it.
    Joint,
    /// Fused plus weighted unimodal cross-entropies, one backward pass.
    MultiLoss(MultiLossConfig),
    /// Multi-loss with the MLB per-modality gradient coefficients (Kontras et al., BMVC 2024).
    Mlb(MlbConfig),
    /// OGM / OGM-GE (Peng et al., CVPR 2022) on the fused loss; two modalities, late fusion.
    Ogm(OgmConfig),
    /// AGM (Li et al., ICCV 2023): Shapley-style unimodal outputs by zeroing the other input;
    /// two modalities.
    Agm(AgmConfig),
    /// MSLR (Yao & Mihalcea, 2022): per-modality learning-rate multipliers updated each epoch
    /// from validation accuracy; trained with the multi-loss.
    Mslr(MslrConfig),
    /// MMCosine (Xu et al., 2023): a late fusion of cosine similarities, scaled; fused loss.
    MmCosine(MmCosineConfig),
    /// PMR (Fan et al., CVPR 2023): class prototypes per modality, recomputed every epoch; the
    /// weaker modality by prototype score gets an extra prototype cross-entropy. Two modalities.
    Pmr(PmrConfig),
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self::Mlb(MlbConfig::default())
    }
}

impl MethodConfig {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Joint => "joint",
            Self::MultiLoss(_) => "multi_loss",
            Self::Mlb(_) => "mlb",
            Self::Ogm(_) => "ogm",
            Self::Agm(_) => "agm",
            Self::Mslr(_) => "mslr",
            Self::MmCosine(_) => "mm_cosine",
            Self::Pmr(_) => "pmr",
        }
    }
}

/// L = fused_weight CE(f, y) + sum_m unimodal_weights[m] CE(u_m, y).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MultiLossConfig {
    pub fused_weight: f64,
    /// One weight per modality; empty: all 1.
    pub unimodal_weights: Vec<f64>,
}

impl Default for MultiLossConfig {
    fn default() -> Self {
        Self {
            fused_weight: 1.0,
            unimodal_weights: Vec::new(),
        }
    }
}

impl MultiLossConfig {
    /// The weight of modality m's head.
    pub fn unimodal_weight(&self, m: usize) -> f64 {
        self.unimodal_weights.get(m).copied().unwrap_or(1.0)
    }
}

/// k_a = exp(alpha min(r_hat_a - r_a, 10)), from running means of the unimodal scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AgmConfig {
    pub alpha: f64,
    /// Gradient norm clip applied after modulation, as the authors' code does.
    pub clip_norm: f64,
}

impl Default for AgmConfig {
    fn default() -> Self {
        Self {
            alpha: 1.5,
            clip_norm: 1.0,
        }
    }
}

/// k_m = initial_m * acc_val_m / mean(last `window` validation accuracies of m).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MslrConfig {
    /// Initial multiplier of every modality; empty: 0.9 for the first, 1.1 for the others
    /// (the authors' setting for audio and video).
    pub initial: Vec<f64>,
    pub window: u32,
}

impl Default for MslrConfig {
    fn default() -> Self {
        Self {
            initial: Vec::new(),
            window: 5,
        }
    }
}

impl MslrConfig {
    pub fn initial_multiplier(&self, m: usize) -> f64 {
        match self.initial.get(m) {
            Some(&k) => k,
            None if m == 0 => 0.9,
            None => 1.1,
        }
    }
}

/// Weight of the prototype cross-entropy of the weaker modality.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PmrConfig {
    pub alpha: f64,
}

impl Default for PmrConfig {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

/// f = scale * sum_m cos(z_m, rows of A_m).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MmCosineConfig {
    pub scale: f64,
}

impl Default for MmCosineConfig {
    fn default() -> Self {
        Self { scale: 10.0 }
    }
}

/// k_m = 1 + tanh(alpha (r_m - 1)), or with the cap beta for the accelerated modality
/// (r_m > 1): k_m = 1 + (beta - 1) tanh(alpha (r_m - 1)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MlbConfig {
    pub alpha: f64,
    /// The journal variant's cap on k for the weaker modality (> 1); none: the BMVC form.
    pub beta: Option<f64>,
    /// First epoch (from 1) whose steps are balanced.
    pub start_epoch: u32,
    /// Last balanced epoch, inclusive; none: until the end.
    pub end_epoch: Option<u32>,
}

impl Default for MlbConfig {
    fn default() -> Self {
        Self {
            alpha: 0.8,
            beta: None,
            start_epoch: 1,
            end_epoch: None,
        }
    }
}

/// How OGM turns the score ratio rho into a coefficient for the dominant modality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OgmRatio {
    /// k = 1 - tanh(alpha relu(rho)), as the authors' public code computes it.
    PublicCode,
    /// k = 1 - tanh(alpha relu(rho - 1)), a reading of the paper's equation.
    Paper,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct OgmConfig {
    pub alpha: f64,
    /// OGM-GE: add N(0, std(grad) + 1e-8) to the encoders' weight gradients.
    pub generalization_enhancement: bool,
    pub ratio: OgmRatio,
    /// Last modulated epoch (from 1), inclusive; the authors modulate epochs 0..50.
    pub end_epoch: Option<u32>,
}

impl Default for OgmConfig {
    fn default() -> Self {
        Self {
            alpha: 0.8,
            generalization_enhancement: true,
            ratio: OgmRatio::PublicCode,
            end_epoch: Some(50),
        }
    }
}

/// One invalid field, named by its dotted path in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects range checks so that every bad field is reported at once.
#[derive(Default)]
struct Checker(Vec<FieldError>);

impl Checker {
    fn range<T: PartialOrd + std::fmt::Display>(&mut self, field: &str, value: T, min: T, max: T) {
        if !(value >= min && value <= max) {
            self.0.push(FieldError::new(
                field,
                format!("must be between {min} and {max}, got {value}"),
            ));
        }
    }

    fn split(&mut self, prefix: &str, split: &SplitConfig) {
        let field = format!("{prefix}.test_fraction");
        if !(split.test_fraction > 0.0 && split.test_fraction < 1.0) {
            self.0.push(FieldError::new(
                field,
                format!(
                    "must be between 0 and 1 (exclusive), got {}",
                    split.test_fraction
                ),
            ));
        }
    }

    /// A dataset folder under the data directory: relative, without `..`.
    fn root(&mut self, root: &str) {
        let path = std::path::Path::new(root);
        let inside = path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if root.is_empty() || !inside {
            self.error(
                "dataset.root",
                "must be a folder name under the data directory (relative, no ..)",
            );
        }
    }

    fn frames(&mut self, frames: u32, image_size: u32) {
        self.range("dataset.frames", frames, 1, 64);
        self.range("dataset.image_size", image_size, 8, 1024);
    }

    fn error(&mut self, field: &str, message: &str) {
        self.0.push(FieldError::new(field, message));
    }

    fn positive(&mut self, field: &str, value: f64, max: f64) {
        if !(value > 0.0 && value <= max) {
            self.0.push(FieldError::new(
                field,
                format!("must be greater than 0 and at most {max}, got {value}"),
            ));
        }
    }
}

impl RunConfig {
    /// Checks every value range; returns all violations, not just the first.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut c = Checker::default();
        c.range("epochs", self.epochs, 1, 10_000);
        c.range("batch_size", self.batch_size, 1, 65_536);
        c.positive("learning_rate", self.learning_rate, 10.0);
        c.range("validation_fraction", self.validation_fraction, 0.0, 0.5);
        let has_validation = self.validation_fraction > 0.0;
        if let Some(patience) = self.early_stopping_patience {
            c.range("early_stopping_patience", patience, 1, 10_000);
            if !has_validation {
                c.error(
                    "early_stopping_patience",
                    "needs a validation split: set validation_fraction above 0",
                );
            }
        }
        let modalities = self.dataset.modalities();
        if self.coefficients_scale == CoefficientTarget::LearningRate
            && !matches!(self.method, MethodConfig::Mlb(_))
        {
            c.error(
                "coefficients_scale",
                "only MLB's coefficients can be applied to the learning rate (MSLR's always are)",
            );
        }
        self.check_method(&mut c, modalities, has_validation);
        self.check_model(&mut c, modalities);
        self.check_optimizer(&mut c);
        match &self.dataset {
            DatasetConfig::Mfeat(m) => {
                c.range("dataset.views", m.views.len(), 2, MfeatView::ALL.len());
                for (i, view) in m.views.iter().enumerate() {
                    if m.views[..i].contains(view) {
                        c.0.push(FieldError::new(
                            format!("dataset.views[{i}]"),
                            format!("{} is used twice", view.name()),
                        ));
                    }
                }
                c.split("dataset", &m.split());
            }
            DatasetConfig::DigitsHalves(split) => c.split("dataset", split),
            DatasetConfig::AvDigits(av) => {
                if !FSDD_SPEAKERS.contains(&av.test_speaker.as_str()) {
                    c.error(
                        "dataset.test_speaker",
                        &format!("must be one of {}", FSDD_SPEAKERS.join(", ")),
                    );
                }
            }
            DatasetConfig::CremaD(d) => {
                c.root(&d.root);
                c.frames(d.frames, d.image_size);
                if d.split == CremaDSplit::SpeakerFold {
                    c.range("dataset.folds", d.folds, 2, 91);
                    c.range("dataset.fold", d.fold, 0, d.folds.max(1) - 1);
                }
            }
            DatasetConfig::Ave(d) => {
                c.root(&d.root);
                c.frames(d.frames, d.image_size);
            }
            DatasetConfig::Ucf101(d) => {
                c.root(&d.root);
                c.frames(d.frames, d.image_size);
                c.range("dataset.split", d.split, 1, 3);
            }
            DatasetConfig::Synthetic(s) => {
                c.range("dataset.classes", s.classes, 2, 1000);
                c.range("dataset.features", s.features, 1, 4096);
                c.range("dataset.train_samples", s.train_samples, 1, 1_000_000);
                c.range("dataset.test_samples", s.test_samples, 1, 1_000_000);
                if s.train_samples < s.classes {
                    c.0.push(FieldError::new(
                        "dataset.train_samples",
                        "must be at least the number of classes",
                    ));
                }
                c.range("dataset.noise", s.noise.len(), 2, 16);
                for (i, &n) in s.noise.iter().enumerate() {
                    c.positive(&format!("dataset.noise[{i}]"), n, 100.0);
                }
            }
        }
        if c.0.is_empty() {
            Ok(())
        } else {
            Err(c.0)
        }
    }

    fn check_method(&self, c: &mut Checker, modalities: usize, has_validation: bool) {
        let two_only = |c: &mut Checker, name: &str| {
            if modalities != 2 {
                c.error(
                    "method.kind",
                    &format!("{name} is defined for exactly two modalities"),
                );
            }
        };
        let late_only = |c: &mut Checker, name: &str| {
            if self.model.fusion != FusionKind::Late {
                c.error("model.fusion", &format!("{name} needs late fusion"));
            }
        };
        match &self.method {
            MethodConfig::Joint => {}
            MethodConfig::MultiLoss(ml) => {
                c.range("method.fused_weight", ml.fused_weight, 0.0, 100.0);
                if !ml.unimodal_weights.is_empty() && ml.unimodal_weights.len() != modalities {
                    c.error(
                        "method.unimodal_weights",
                        &format!("needs one weight per modality ({modalities})"),
                    );
                }
                for (i, &w) in ml.unimodal_weights.iter().enumerate() {
                    c.range(&format!("method.unimodal_weights[{i}]"), w, 0.0, 100.0);
                }
            }
            MethodConfig::Mlb(mlb) => {
                c.positive("method.alpha", mlb.alpha, 100.0);
                if let Some(beta) = mlb.beta {
                    c.range("method.beta", beta, 1.0, 100.0);
                }
                c.range("method.start_epoch", mlb.start_epoch, 1, self.epochs.max(1));
                if let Some(end) = mlb.end_epoch {
                    c.range("method.end_epoch", end, mlb.start_epoch, u32::MAX);
                }
            }
            MethodConfig::Ogm(ogm) => {
                c.positive("method.alpha", ogm.alpha, 100.0);
                two_only(c, "OGM");
                late_only(c, "OGM");
            }
            MethodConfig::Agm(agm) => {
                c.positive("method.alpha", agm.alpha, 100.0);
                c.positive("method.clip_norm", agm.clip_norm, 1e6);
                two_only(c, "AGM");
            }
            MethodConfig::Mslr(mslr) => {
                if !mslr.initial.is_empty() && mslr.initial.len() != modalities {
                    c.error(
                        "method.initial",
                        &format!("needs one multiplier per modality ({modalities})"),
                    );
                }
                for (i, &k) in mslr.initial.iter().enumerate() {
                    c.positive(&format!("method.initial[{i}]"), k, 100.0);
                }
                c.range("method.window", mslr.window, 1, 1000);
                if !has_validation {
                    c.error(
                        "validation_fraction",
                        "MSLR needs a validation split: set it above 0",
                    );
                }
            }
            MethodConfig::MmCosine(cos) => {
                c.positive("method.scale", cos.scale, 1000.0);
                late_only(c, "MMCosine");
            }
            MethodConfig::Pmr(pmr) => {
                c.positive("method.alpha", pmr.alpha, 100.0);
                two_only(c, "PMR");
            }
        }
    }

    fn check_model(&self, c: &mut Checker, modalities: usize) {
        let model = &self.model;
        c.range("model.feature_dim", model.feature_dim, 1, 4096);
        match &model.encoder {
            EncoderConfig::Mlp(mlp) => c.range("model.encoder.hidden", mlp.hidden, 1, 4096),
            EncoderConfig::Cnn(cnn) => c.range("model.encoder.channels", cnn.channels, 1, 256),
            EncoderConfig::Resnet18 => {}
            EncoderConfig::Transformer(t) => {
                c.range("model.encoder.layers", t.layers, 1, 24);
                c.range("model.encoder.heads", t.heads, 1, 64);
                if t.heads > 0 && !model.feature_dim.is_multiple_of(t.heads) {
                    c.error(
                        "model.encoder.heads",
                        &format!("must divide model.feature_dim ({})", model.feature_dim),
                    );
                }
            }
        }
        if model.fusion.two_modalities_only() && modalities != 2 {
            c.error(
                "model.fusion",
                &format!(
                    "{} fusion is defined for exactly two modalities",
                    model.fusion.name()
                ),
            );
        }
    }

    fn check_optimizer(&self, c: &mut Checker) {
        match &self.optimizer {
            OptimizerConfig::Sgd(sgd) => c.range("optimizer.momentum", sgd.momentum, 0.0, 0.999),
            OptimizerConfig::Adam(adam) | OptimizerConfig::AdamW(adam) => {
                c.range("optimizer.beta1", adam.beta1, 0.0, 0.999_999);
                c.range("optimizer.beta2", adam.beta2, 0.0, 0.999_999);
                c.positive("optimizer.eps", adam.eps, 1.0);
            }
        }
        c.range(
            "optimizer.weight_decay",
            self.optimizer.weight_decay(),
            0.0,
            1.0,
        );
        match self.schedule {
            ScheduleConfig::Constant => {}
            ScheduleConfig::Step { step_size, gamma } => {
                c.range("schedule.step_size", step_size, 1, 100_000);
                c.positive("schedule.gamma", gamma, 1.0);
            }
            ScheduleConfig::CosineWarmRestarts {
                start_epoch,
                t_0,
                t_mult,
                eta_min,
            } => {
                c.range("schedule.start_epoch", start_epoch, 1, 100_000);
                c.range("schedule.t_0", t_0, 1, 100_000);
                c.range("schedule.t_mult", t_mult, 1, 100);
                c.range("schedule.eta_min", eta_min, 0.0, self.learning_rate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_is_the_default_config() {
        let config: RunConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, RunConfig::default());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn method_is_tagged_by_kind() {
        let config: RunConfig =
            serde_json::from_str(r#"{"method": {"kind": "mlb", "alpha": 2.0}}"#).unwrap();
        let expected = MlbConfig {
            alpha: 2.0,
            ..MlbConfig::default()
        };
        assert_eq!(config.method, MethodConfig::Mlb(expected));
        let config: RunConfig =
            serde_json::from_str(r#"{"method": {"kind": "ogm", "ratio": "paper"}}"#).unwrap();
        let MethodConfig::Ogm(ogm) = config.method else {
            panic!("{config:?}")
        };
        assert_eq!((ogm.ratio, ogm.end_epoch), (OgmRatio::Paper, Some(50)));
        let json = serde_json::to_value(MethodConfig::Joint).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "joint"}));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        for json in [
            r#"{"epoch": 3}"#,
            r#"{"method": {"kind": "mlb", "epoch": 3}}"#,
            r#"{"dataset": {"kind": "synthetic", "epoch": 3}}"#,
        ] {
            let err = serde_json::from_str::<RunConfig>(json).unwrap_err();
            assert!(err.to_string().contains("unknown field `epoch`"), "{err}");
        }
    }

    #[test]
    fn validation_reports_every_bad_field() {
        let config = RunConfig {
            epochs: 0,
            learning_rate: -1.0,
            method: MethodConfig::Mlb(MlbConfig {
                alpha: 0.0,
                beta: Some(0.5),
                ..MlbConfig::default()
            }),
            dataset: DatasetConfig::Synthetic(SyntheticConfig {
                noise: vec![1.0],
                ..SyntheticConfig::default()
            }),
            ..RunConfig::default()
        };
        let fields: Vec<String> = config
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "epochs",
                "learning_rate",
                "method.alpha",
                "method.beta",
                "dataset.noise"
            ]
        );
    }

    #[test]
    fn mfeat_views_are_named_and_checked() {
        let json = r#"{"dataset": {"kind": "mfeat", "views": ["pix", "zer", "pix"], "test_fraction": 1.5}}"#;
        let config: RunConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.dataset.modality_names(), ["pix", "zer", "pix"]);
        let fields: Vec<String> = config
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["dataset.views[2]", "dataset.test_fraction"]);
    }

    #[test]
    fn ogm_needs_two_modalities() {
        let config = RunConfig {
            method: MethodConfig::Ogm(OgmConfig::default()),
            dataset: DatasetConfig::Synthetic(SyntheticConfig {
                noise: vec![1.0, 2.0, 3.0],
                ..SyntheticConfig::default()
            }),
            ..RunConfig::default()
        };
        assert_eq!(config.validate().unwrap_err()[0].field, "method.kind");
    }

    #[test]
    fn methods_check_fusion_and_validation_needs() {
        let config: RunConfig = serde_json::from_str(
            r#"{"method": {"kind": "mslr"}, "validation_fraction": 0.0,
                "model": {"fusion": "film"}, "early_stopping_patience": 3,
                "dataset": {"kind": "synthetic", "noise": [1, 2, 3]}}"#,
        )
        .unwrap();
        let fields: Vec<String> = config
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "early_stopping_patience",
                "validation_fraction",
                "model.fusion"
            ]
        );
        let config: RunConfig = serde_json::from_str(
            r#"{"method": {"kind": "mm_cosine"}, "model": {"fusion": "gated"}}"#,
        )
        .unwrap();
        assert_eq!(config.validate().unwrap_err()[0].field, "model.fusion");
    }

    #[test]
    fn training_settings_are_tagged_and_checked() {
        let toml = r#"{"optimizer": {"kind": "adam_w", "weight_decay": 2.0},
            "schedule": {"kind": "step", "step_size": 0, "gamma": 0.1},
            "model": {"encoder": {"kind": "transformer", "heads": 5}}}"#;
        let config: RunConfig = serde_json::from_str(toml).unwrap();
        assert_eq!(config.optimizer.name(), "adam_w");
        let fields: Vec<String> = config
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "model.encoder.heads",
                "optimizer.weight_decay",
                "schedule.step_size"
            ]
        );
    }

    #[test]
    fn nan_is_out_of_range() {
        let config = RunConfig {
            learning_rate: f64::NAN,
            ..RunConfig::default()
        };
        assert_eq!(config.validate().unwrap_err()[0].field, "learning_rate");
    }
}
