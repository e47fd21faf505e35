//! The training engine: data, models, balancing coefficients and the training loop.
//!
//! It knows nothing of HTTP, databases or the command line. A run is driven by [`train`],
//! which reports progress as [`TrainingEvent`]s to a listener; the server, the CLI and the
//! tests each subscribe in their own way.

mod add_relu;
mod agm;
mod balance;
mod batch_norm;
mod bn_add_relu;
mod bn_relu_pool;
pub mod checkpoint;
mod conv;
mod cpu_storage;
mod dataset;
mod encoder;
mod events;
mod fusion;
mod max_pool;
mod mlb;
mod model;
mod mslr;
mod ogm;
mod optim;
mod optim_cpu;
mod params;
mod pmr;
mod resnet;
mod trainer;
mod transformer;
mod winograd;

pub use agm::AgmState;
pub use balance::{balancer, Balancer, Objective, StepContext};
pub use dataset::{Batch, Batches, Dataset, SampleReader, Split};
pub use encoder::Encoder;
pub use events::{CancelToken, TrainingEvent};
pub use fusion::Fusion;
pub use mlb::mlb_coefficients;
pub use model::{MultimodalModel, Outputs, Pass};
pub use mslr::MslrState;
pub use ogm::{ogm_coefficients, ogm_score};
pub use optim::Optimizer;
pub use params::{Owner, Param, ParamStore, Role};
pub use pmr::{pmr_weights, prototype_logits, prototypes};
pub use resnet::ResNet18;
pub use trainer::{macro_f1, train, Checkpointing, RunSummary, Session};
