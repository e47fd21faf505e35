//! The training engine: data, models, balancing coefficients and the training loop.
//!
//! It knows nothing of HTTP, databases or the command line. A run is driven by [`train`],
//! which reports progress as [`TrainingEvent`]s to a listener; the server, the CLI and the
//! tests each subscribe in their own way.

mod events;
mod mlb;
mod model;
mod optim;
mod params;
mod synthetic;
mod trainer;

pub use events::{CancelToken, TrainingEvent};
pub use mlb::mlb_coefficients;
pub use model::LateFusionMlp;
pub use params::{Owner, ParamStore};
pub use synthetic::{synthetic_dataset, Dataset, Split};
pub use trainer::{train, RunSummary};
