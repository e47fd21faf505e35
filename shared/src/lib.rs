//! Types shared by the BalanceLab server, CLI and browser UI.
//!
//! Everything here is plain serde data with no I/O, so the wasm UI can validate a run
//! configuration with exactly the rules the server applies.

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod device;
pub mod metrics;
pub mod model;
pub mod non_finite;
pub mod optim;
pub mod results;
pub mod series;
pub mod sweep;

pub use api::{
    AuditAction, AuditEntry, Comparison, Credentials, DatasetInfo, ErrorBody, Me, Member,
    PasswordChange, Preset, Project, Role, Run, RunDetail, RunEvent, RunPage, RunPatch, RunQuery,
    RunSort, RunStatus, Secret, ShareLink, SortOrder, TokenInfo, TokenRequest, User, UserChange,
};
pub use config::{
    AgmConfig, AvDigitsConfig, AvDigitsSplit, AveConfig, CremaDConfig, CremaDSplit, DatasetConfig,
    FieldError, MethodConfig, MethodKind, MfeatConfig, MfeatView, MlbConfig, MmCosineConfig,
    MslrConfig, MultiLossConfig, OgmConfig, OgmRatio, OnDivergence, PmrConfig, RunConfig,
    SplitConfig, SyntheticConfig, Ucf101Config, Ucf101Modalities, UnimodalConfig, FSDD_SPEAKERS,
};
pub use device::{ComputeDevice, Precision};
pub use metrics::{EpochMetrics, SplitScores, StepMetrics};
pub use model::{
    CnnConfig, Downsample, EncoderConfig, FusionKind, MlpConfig, ModelConfig, TransformerConfig,
};
pub use optim::{AdamConfig, CoefficientTarget, OptimizerConfig, ScheduleConfig, SgdConfig};
pub use results::{
    config_differences, method_columns, results_table, ConfigDifference, EpochChoice, ResultsRow,
    ResultsTable, RunResult, Summary,
};
pub use series::{downsample, smooth, Downsampler, MetricSeries, SeriesPoint, XAxis};
pub use sweep::Sweep;
