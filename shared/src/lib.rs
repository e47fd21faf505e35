//! Types shared by the BalanceLab server, CLI and browser UI.
//!
//! Everything here is plain serde data with no I/O, so the wasm UI can validate a run
//! configuration with exactly the rules the server applies.

pub mod api;
pub mod config;
pub mod metrics;

pub use api::{DatasetInfo, ErrorBody, Run, RunDetail, RunEvent, RunStatus};
pub use config::{
    DatasetConfig, FieldError, MethodConfig, MfeatConfig, MfeatView, MlbConfig, OgmConfig,
    OgmRatio, RunConfig, SplitConfig, SyntheticConfig,
};
pub use metrics::{EpochMetrics, SplitAccuracy, StepMetrics};
