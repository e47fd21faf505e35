//! Candle's CPU thread pool, told not to spin long after each element-wise op.
//!
//! Candle 0.11 runs element-wise ops (the adds of gradient accumulation, for one) on a pool
//! of its own whose workers spin 25,000 times after each op before they sleep. On a two-core
//! machine that spinning takes a core from the rayon threads running the convolutions:
//! ResNet18 trained 8-17% faster with 1,000 (`cpu_training` bench, three alternating pairs,
//! 2026-11-29), the CNNs no slower.

const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Sets Candle's spin limit to 1,000 unless the environment already sets it. Call first
/// thing in `main`, before any thread starts: the environment is not safe to change while
/// other threads may read it.
pub fn limit_candle_spinning() {
    if std::env::var_os(SPIN_LIMIT).is_none() {
        std::env::set_var(SPIN_LIMIT, "1000");
    }
}
