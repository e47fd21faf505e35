//! Layers and models: parameters with the modality that owns them, batch normalisation,
//! the encoders (MLP, CNN, ResNet18, transformer), the fusions, and the multimodal model
//! with its unimodal heads.
//!
//! Every parameter is created through a [`ParamStore`] with its [`Owner`] and [`Role`], so
//! the balancing methods ([`crate::engine::methods`]) find what a modality owns without
//! reading names.

mod batch_norm;
mod encoder;
mod fusion;
mod model;
mod params;
mod resnet;
mod transformer;

pub use batch_norm::BatchNorm2d;
pub use encoder::Encoder;
pub use fusion::{Fusion, WIDTH as FUSION_WIDTH};
pub use model::{MultimodalModel, Outputs, Pass};
pub use params::{Owner, Param, ParamStore, Role};
pub use resnet::{ResNet18, RESNET18_FEATURES};
