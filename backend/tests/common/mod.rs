//! Fixture files the integration tests write.

use std::path::Path;

/// A mono 16-bit wav of a `frequency` Hz tone, `seconds` long, its folders created.
pub fn write_wav(path: &Path, rate: u32, seconds: f32, frequency: f32) {
    let samples = (0..(rate as f32 * seconds) as usize).map(|i| {
        let t = i as f32 / rate as f32;
        let value = (2.0 * std::f32::consts::PI * frequency * t).sin() * 0.4;
        (value * 32767.0) as i16
    });
    balancelab::data::audio::write_wav(path, rate, samples).unwrap();
}
