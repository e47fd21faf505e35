//! Fixture files the integration tests write.

use std::path::Path;

/// A mono 16-bit wav of a `frequency` Hz tone, `seconds` long, its folders created.
pub fn write_wav(path: &Path, rate: u32, seconds: f32, frequency: f32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(rate as f32 * seconds) as usize {
        let t = i as f32 / rate as f32;
        let value = (2.0 * std::f32::consts::PI * frequency * t).sin() * 0.4;
        writer.write_sample((value * 32767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
}
