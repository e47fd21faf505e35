//! BalanceLab: a workbench for balanced multimodal learning.
//!
//! - [`engine`]: training (Candle), reporting progress as events; no HTTP, no database.
//! - [`store`]: runs and their metrics in SQLite.
//! - [`runner`]: executes queued runs in the background and fans their events out.
//! - [`api`]: the HTTP API (Axum).

pub mod api;
pub mod engine;
pub mod runner;
pub mod store;
