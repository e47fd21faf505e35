//! The run presets of `presets/`, built into the binary so that the server offers them
//! wherever it runs. Each is a run configuration in TOML whose leading comment describes it.

use balancelab_shared::{Preset, RunConfig};

/// (name, TOML) of every file in `presets/`; a test checks that none is missing.
pub const PRESETS: [(&str, &str); 3] = [
    (
        "mlb-paper-training",
        include_str!("../../presets/mlb-paper-training.toml"),
    ),
    (
        "mlb-quick-digits",
        include_str!("../../presets/mlb-quick-digits.toml"),
    ),
    (
        "ogm-ge-paper-training",
        include_str!("../../presets/ogm-ge-paper-training.toml"),
    ),
];

/// Every preset, parsed. Panics on a preset that does not parse: the tests keep them valid.
pub fn presets() -> Vec<Preset> {
    PRESETS
        .iter()
        .map(|(name, toml_text)| {
            let config: RunConfig = toml::from_str(toml_text)
                .unwrap_or_else(|e| panic!("preset {name} does not parse: {e}"));
            let description: Vec<&str> = (toml_text.lines())
                .map_while(|line| line.strip_prefix('#'))
                .map(str::trim)
                .collect();
            Preset {
                name: (*name).to_owned(),
                description: description.join(" "),
                config,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_file_is_built_in_valid_and_described() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../presets");
        let mut files: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "toml"))
            .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let built_in: Vec<&str> = PRESETS.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            files, built_in,
            "presets/ and PRESETS must list the same files"
        );
        for preset in presets() {
            assert!(preset.config.validate().is_ok(), "{}", preset.name);
            assert!(
                preset.description.len() > 40,
                "{}: describe it",
                preset.name
            );
        }
    }
}
