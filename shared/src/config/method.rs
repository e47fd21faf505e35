//! How the modalities are trained together: [`MethodConfig`], one variant per balancing
//! method, and each method's settings.

use serde::{Deserialize, Serialize};

/// How the modalities are trained together (see the project's method spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// One modality alone: its encoder and head trained on their cross-entropy, the head's
    /// output standing for the fused one; the papers' unimodal rows.
    Unimodal(UnimodalConfig),
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
    /// The `kind` tag, as in the JSON and TOML forms (`mlb`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Unimodal(_) => "unimodal",
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

/// The methods as a person picks them: one per [`MethodConfig`] kind, with OGM-GE and plain
/// OGM apart (one kind, generalisation enhancement on or off) as the papers name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// [`MethodConfig::Unimodal`].
    Unimodal,
    /// [`MethodConfig::Joint`].
    Joint,
    /// [`MethodConfig::MultiLoss`].
    MultiLoss,
    /// [`MethodConfig::Mlb`].
    Mlb,
    /// [`MethodConfig::Ogm`] with generalisation enhancement.
    OgmGe,
    /// [`MethodConfig::Ogm`] without generalisation enhancement.
    Ogm,
    /// [`MethodConfig::Agm`].
    Agm,
    /// [`MethodConfig::Mslr`].
    Mslr,
    /// [`MethodConfig::MmCosine`].
    MmCosine,
    /// [`MethodConfig::Pmr`].
    Pmr,
}

impl MethodKind {
    /// Every method, the baselines first: the order choice lists show them in.
    pub const ALL: [MethodKind; 10] = [
        Self::Unimodal,
        Self::Joint,
        Self::MultiLoss,
        Self::Mlb,
        Self::OgmGe,
        Self::Ogm,
        Self::Agm,
        Self::Mslr,
        Self::MmCosine,
        Self::Pmr,
    ];

    /// Its name in a form or a URL: the `kind` tag of its configuration ([`MethodConfig::name`]),
    /// except `ogm_ge` for OGM-GE.
    pub fn id(self) -> &'static str {
        match self {
            Self::OgmGe => "ogm_ge",
            other => MethodConfig::from(other).name(),
        }
    }

    /// The method whose [`MethodKind::id`] is `id`, if any.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.id() == id)
    }

    /// Its name for people, as tables and legends show it: `joint`, `MLB`, `OGM-GE`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unimodal => "unimodal",
            Self::Joint => "joint",
            Self::MultiLoss => "multi-loss",
            Self::Mlb => "MLB",
            Self::OgmGe => "OGM-GE",
            Self::Ogm => "OGM",
            Self::Agm => "AGM",
            Self::Mslr => "MSLR",
            Self::MmCosine => "MMCosine",
            Self::Pmr => "PMR",
        }
    }

    /// What it does, in a few words, for a list to choose from.
    pub fn summary(self) -> &'static str {
        match self {
            Self::Unimodal => "one modality alone",
            Self::Joint => "fused loss only",
            Self::MultiLoss => "fused + unimodal heads",
            Self::Mlb => "multi-loss + gradient balancing",
            Self::OgmGe => "on-the-fly modulation + noise",
            Self::Ogm => "on-the-fly modulation",
            Self::Agm => "adaptive gradient modulation",
            Self::Mslr => "modality-specific learning rates",
            Self::MmCosine => "cosine fusion",
            Self::Pmr => "prototypical rebalance",
        }
    }
}

impl From<&MethodConfig> for MethodKind {
    fn from(method: &MethodConfig) -> Self {
        match method {
            MethodConfig::Unimodal(_) => Self::Unimodal,
            MethodConfig::Joint => Self::Joint,
            MethodConfig::MultiLoss(_) => Self::MultiLoss,
            MethodConfig::Mlb(_) => Self::Mlb,
            MethodConfig::Ogm(ogm) if ogm.generalization_enhancement => Self::OgmGe,
            MethodConfig::Ogm(_) => Self::Ogm,
            MethodConfig::Agm(_) => Self::Agm,
            MethodConfig::Mslr(_) => Self::Mslr,
            MethodConfig::MmCosine(_) => Self::MmCosine,
            MethodConfig::Pmr(_) => Self::Pmr,
        }
    }
}

/// The method with its default settings.
impl From<MethodKind> for MethodConfig {
    fn from(kind: MethodKind) -> Self {
        match kind {
            MethodKind::Unimodal => Self::Unimodal(UnimodalConfig::default()),
            MethodKind::Joint => Self::Joint,
            MethodKind::MultiLoss => Self::MultiLoss(MultiLossConfig::default()),
            MethodKind::Mlb => Self::Mlb(MlbConfig::default()),
            MethodKind::OgmGe | MethodKind::Ogm => Self::Ogm(OgmConfig {
                generalization_enhancement: kind == MethodKind::OgmGe,
                ..OgmConfig::default()
            }),
            MethodKind::Agm => Self::Agm(AgmConfig::default()),
            MethodKind::Mslr => Self::Mslr(MslrConfig::default()),
            MethodKind::MmCosine => Self::MmCosine(MmCosineConfig::default()),
            MethodKind::Pmr => Self::Pmr(PmrConfig::default()),
        }
    }
}

/// Which modality a unimodal run trains alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct UnimodalConfig {
    /// The modality's position in the dataset, from 0.
    pub modality: usize,
}

/// L = fused_weight CE(f, y) + sum_m unimodal_weights[m] CE(u_m, y).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MultiLossConfig {
    /// Weight of the fused output's cross-entropy.
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
    /// Strength of the modulation.
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
    /// How many past validation accuracies the running mean takes.
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
    /// Modality `m`'s initial multiplier, from `initial` or the authors' setting.
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
    /// Weight of the weaker modality's prototype cross-entropy.
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
    /// Multiplies the summed cosine similarities into logits.
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
    /// How steeply k follows the score ratio r_m.
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

/// k = 1 - tanh(alpha relu(rho)) for the dominant modality (see [`OgmRatio`]); 1 for the other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct OgmConfig {
    /// How strongly the dominant modality is slowed.
    pub alpha: f64,
    /// OGM-GE: add N(0, std(grad) + 1e-8) to the encoders' weight gradients.
    pub generalization_enhancement: bool,
    /// How the score ratio rho becomes the coefficient.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

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
    fn every_method_kind_round_trips_through_its_config_and_id() {
        for kind in MethodKind::ALL {
            assert_eq!(MethodKind::from(&MethodConfig::from(kind)), kind);
            assert_eq!(MethodKind::from_id(kind.id()), Some(kind));
        }
        assert_eq!(MethodKind::from_id("ogm_ge"), Some(MethodKind::OgmGe));
        assert_eq!(MethodConfig::from(MethodKind::OgmGe).name(), "ogm");
        assert_eq!(MethodKind::from_id("mbl"), None);
    }
}
