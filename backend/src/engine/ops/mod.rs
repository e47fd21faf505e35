//! CPU kernels: the operations Candle 0.11 runs slowly on the CPU, each as a Candle custom
//! op behind a public function, with its backward pass, and tested against Candle's own ops
//! (the slow reference) on random shapes.
//!
//! - [`conv`] (with [`im2col`], [`winograd`] and [`gemm`]): 2-D convolution as im2col +
//!   GEMM, forward and backward.
//! - [`batch_norm`], [`bn_add_relu`], [`bn_relu_pool`]: training-mode batch normalisation,
//!   alone or fused with what follows it in a block; the layer that picks among them is
//!   [`crate::engine::nn::BatchNorm2d`].
//! - [`max_pool`], [`add_relu`]: pooling and the residual join.
//! - [`optim_step`]: the optimisers' updates in place.
//! - [`cpu_storage`]: how the kernels read their inputs and build their outputs.
//!
//! Other devices and dtypes take Candle's ops, except the convolution's backward pass:
//! [`composed_conv`] builds it from the device's fast paths (forward convolutions and a
//! GEMM). The callers decide (each CPU kernel takes float32).

pub mod add_relu;
pub mod batch_norm;
pub mod bn_add_relu;
pub mod bn_relu_pool;
pub mod composed_conv;
pub mod conv;
pub mod cpu_storage;
pub mod gemm;
pub mod im2col;
pub mod max_pool;
pub mod optim_step;
pub mod winograd;
