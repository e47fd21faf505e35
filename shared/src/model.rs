//! Model configuration: the encoder every modality uses and how their features are fused.

use serde::{Deserialize, Serialize};

/// Encoders, unimodal heads and fusion head of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The encoder of every modality.
    pub encoder: EncoderConfig,
    /// How the modalities' features are fused.
    pub fusion: FusionKind,
    /// Width of every encoder's feature vector z_m.
    pub feature_dim: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderConfig::default(),
            fusion: FusionKind::Late,
            feature_dim: 64,
        }
    }
}

/// The backbone of every modality.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderConfig {
    /// Two ReLU layers; for feature vectors (any input is flattened).
    Mlp(MlpConfig),
    /// Three conv-BN-ReLU-pool blocks; for images and spectrograms `[channels, h, w]`.
    Cnn(CnnConfig),
    /// ResNet18 from scratch (He et al.), as the paper's audio and visual backbones; video
    /// clips `[frames, channels, h, w]` are encoded frame by frame and pooled over time.
    Resnet18,
    /// A pre-norm transformer over tokens: the rows of a `[tokens, dim]` input, or each
    /// scalar of a feature vector as one token (as FT-Transformer does).
    Transformer(TransformerConfig),
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self::Mlp(MlpConfig::default())
    }
}

impl EncoderConfig {
    /// The `kind` tag, as in the JSON and TOML forms (`cnn`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mlp(_) => "mlp",
            Self::Cnn(_) => "cnn",
            Self::Resnet18 => "resnet18",
            Self::Transformer(_) => "transformer",
        }
    }
}

/// Settings of the MLP encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    /// Width of the hidden layer.
    pub hidden: u32,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self { hidden: 64 }
    }
}

/// Settings of the CNN encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct CnnConfig {
    /// Channels of the first block; each following block doubles them.
    pub channels: u32,
    /// How each block halves the resolution.
    pub downsample: Downsample,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            channels: 16,
            downsample: Downsample::MaxPool,
        }
    }
}

/// How a CNN block halves the resolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Downsample {
    /// A 2x2 max pool after the convolution.
    #[default]
    MaxPool,
    /// The convolution itself has stride 2.
    Stride,
}

/// Settings of the transformer encoder; its width is `feature_dim`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TransformerConfig {
    /// Number of transformer blocks.
    pub layers: u32,
    /// Attention heads per block; must divide `feature_dim`.
    pub heads: u32,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        Self {
            layers: 2,
            heads: 4,
        }
    }
}

/// How the fusion head combines the modalities' features z_m into multimodal logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FusionKind {
    /// f = sum_m A_m z_m + b: one linear layer over the concatenation.
    Late,
    /// Each z_m projected to 64 dims, summed, then a small MLP.
    Mid,
    /// The first modality's features scale and shift the second's, then linear. Two only.
    Film,
    /// A sigmoid gate from the first modality multiplies the second, then linear. Two only.
    Gated,
    /// One token per modality plus a CLS token through a small transformer; CLS -> linear.
    Transformer,
    /// f = sum_m u_m: the unimodal heads' logits summed.
    Decision,
}

impl FusionKind {
    /// Every fusion, in the order the UI lists them.
    pub const ALL: [FusionKind; 6] = [
        Self::Late,
        Self::Mid,
        Self::Film,
        Self::Gated,
        Self::Transformer,
        Self::Decision,
    ];

    /// The fusion's name as in the JSON and TOML forms (`late`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Late => "late",
            Self::Mid => "mid",
            Self::Film => "film",
            Self::Gated => "gated",
            Self::Transformer => "transformer",
            Self::Decision => "decision",
        }
    }

    /// Whether the fusion is defined for two modalities only.
    pub fn two_modalities_only(self) -> bool {
        matches!(self, Self::Film | Self::Gated)
    }
}
