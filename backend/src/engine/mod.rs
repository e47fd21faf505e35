//! The training engine: data, models, balancing coefficients and the training loop.
//!
//! It knows nothing of HTTP, databases or the command line. A run is driven by [`train`],
//! which reports progress as [`TrainingEvent`]s to a listener; the server, the CLI and the
//! tests each subscribe in their own way.

mod balance;
mod dataset;
mod events;
mod mlb;
mod model;
mod ogm;
mod optim;
mod params;
mod trainer;

pub use balance::{balancer, Balancer, StepOutputs};
pub use dataset::{Dataset, Split};
pub use events::{CancelToken, TrainingEvent};
pub use mlb::mlb_coefficients;
pub use model::{LateFusionMlp, Outputs};
pub use ogm::{ogm_coefficients, ogm_score};
pub use params::{Owner, Param, ParamStore, Role};
pub use trainer::{train, RunSummary};
