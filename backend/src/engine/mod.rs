//! The training engine: data, models, balancing coefficients and the training loop.
//!
//! It knows nothing of HTTP, databases or the command line. A run is driven by [`train`],
//! which reports progress as [`TrainingEvent`]s to a listener; the server, the CLI and the
//! tests each subscribe in their own way.

mod balance;
mod events;
mod mlb;
mod model;
mod ogm;
mod optim;
mod params;
mod synthetic;
mod trainer;

pub use balance::{balancer, Balancer, StepOutputs};
pub use events::{CancelToken, TrainingEvent};
pub use mlb::mlb_coefficients;
pub use model::{LateFusionMlp, Outputs};
pub use ogm::{ogm_coefficients, ogm_score};
pub use params::{Owner, Param, ParamStore, Role};
pub use synthetic::{synthetic_dataset, Dataset, Split};
pub use trainer::{train, RunSummary};
