//! Run configuration: what to train, on which data, with which balancing method.
//!
//! Every field has a default, so `{}` (JSON) or an empty TOML file is a valid run; unknown
//! keys are rejected so a typo never silently falls back to a default.

mod dataset;
mod method;
mod run;
mod validation;

pub use dataset::{
    AvDigitsConfig, AvDigitsSplit, AveConfig, CremaDConfig, CremaDSplit, DatasetConfig,
    MfeatConfig, MfeatView, SplitConfig, SyntheticConfig, Ucf101Config, Ucf101Modalities,
    FSDD_SPEAKERS,
};
pub use method::{
    AgmConfig, MethodConfig, MethodKind, MlbConfig, MmCosineConfig, MslrConfig, MultiLossConfig,
    OgmConfig, OgmRatio, PmrConfig, UnimodalConfig,
};
pub use run::{OnDivergence, RunConfig};
pub use validation::FieldError;
