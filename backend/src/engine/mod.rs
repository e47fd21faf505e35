//! The training engine: CPU kernels, layers and models, balancing methods, and the training
//! loop. It knows nothing of HTTP, databases or the command line.
//!
//! - [`ops`]: CPU kernels as Candle custom ops (convolution, batch norm, pooling, ...).
//! - [`nn`]: parameters and who owns them, layers, encoders, fusions, the multimodal model.
//! - [`methods`]: the balancing methods behind the [`methods::Balancer`] trait.
//! - [`train`]: the loop, evaluation, optimisers, checkpoints, batches and events.
//!
//! A run is driven by [`train()`], which reports progress as [`TrainingEvent`]s to a
//! listener; the server, the CLI and the tests each subscribe in their own way.

pub mod methods;
pub mod nn;
pub mod ops;
pub mod train;

pub use nn::Pass;
pub use train::{
    evaluation_batch, train, CancelToken, Checkpoint, Checkpointing, Dataset, RunSummary,
    SampleReader, Session, Split, TrainingEvent,
};
